//! Turning received JSON into events: body framing (one object, an array, NDJSON), the
//! well-known fields of the JSON form, optional field mapping, and where every other field lands.
//!
//! Rules (documented in the README, "Events and their JSON form"):
//! - Every top-level field that is not well-known is kept under `attributes` with its JSON type.
//! - One rule for a key that is met twice (a repeated key in an object, a top-level field that
//!   is also in `attributes`, a well-known field sent twice): the first value keeps the key and
//!   every later one is appended to `_duplicate.<key>` (a list) of the object where the key
//!   lives (for top-level fields and attributes: `attributes._duplicate.<key>`). Nothing is
//!   dropped. With `strict: true` such a request is refused instead.
//! - A well-known field whose value does not fit (an unknown severity name, …) is kept unchanged
//!   under `attributes.<field>` and the event gets a `attributes.mapping_error` note; with
//!   `strict: true` the request is rejected instead.
//! - With a mapping (`mapping: { event_id: id, … }`) the mapped source field is moved into the
//!   well-known field; a top-level field of the well-known name that is displaced by a mapping is
//!   kept under `attributes`.
//! - Objects from a sender ([`SenderRules`], set by every receiver): `observed_timestamp` is
//!   siemrelay's own receive time and a sender's value is kept under
//!   `attributes.observed_timestamp`; an `event_id` that is not a UUID becomes the UUIDv5 of its
//!   text in the receiver's namespace ([`receiver_namespace`]) and the original stays under
//!   `attributes`. An object that carries a `signature` keeps every field as signed.

pub mod parse;
mod raw;
mod scan;

pub use parse::{
    DUPLICATE_KEY, Limits, Stop, keep_duplicate, parse_body, parse_body_raw, parse_object,
    parse_value,
};

use crate::admission::OverBudget;
use crate::attributes::Attributes;
use crate::event::{Event, EventFields, Map, Signature, Value};
use crate::path::AttrPath;
use crate::severity::Severity;
use crate::time::Timestamp;
use serde::Deserialize;
use std::borrow::Cow;
use uuid::Uuid;

/// Attribute that explains why a field could not be mapped.
pub const MAPPING_ERROR_KEY: &str = "mapping_error";

/// Which sender field feeds each well-known field (`mapping:` on a receiver).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// Source of `event_id`.
    pub event_id: Option<AttrPath>,
    /// Source of `timestamp`.
    pub timestamp: Option<AttrPath>,
    /// Source of `event_type`.
    pub event_type: Option<AttrPath>,
    /// Source of `severity`.
    pub severity: Option<AttrPath>,
    /// Source of `summary`.
    pub summary: Option<AttrPath>,
    /// Source of `source`.
    pub source: Option<AttrPath>,
}

impl FieldMapping {
    fn entries(&self) -> impl Iterator<Item = (&'static str, &AttrPath)> {
        [
            ("event_id", &self.event_id),
            ("timestamp", &self.timestamp),
            ("event_type", &self.event_type),
            ("severity", &self.severity),
            ("summary", &self.summary),
            ("source", &self.source),
        ]
        .into_iter()
        .filter_map(|(name, path)| path.as_ref().map(|p| (name, p)))
    }

    /// True when no field is mapped.
    pub fn is_empty(&self) -> bool {
        self.entries().next().is_none()
    }

    /// The top-level sender keys the mapping reads (the first segment of each source path): a
    /// protocol receiver that renames its envelope's keys leaves these where the mapping looks.
    pub fn source_roots(&self) -> Vec<&str> {
        self.entries()
            .filter_map(|(_, path)| path.segments().first().map(String::as_str))
            .collect()
    }
}

/// How a receiver turns JSON objects into events.
#[derive(Clone, Debug, Default)]
pub struct IngestOptions {
    /// Sender field → well-known field.
    pub mapping: FieldMapping,
    /// Reject an event (and so its request) whose mapped or well-known field does not fit, or
    /// that has a key twice.
    pub strict: bool,
    /// The rules for objects that come from a sender; `None` for events siemrelay wrote itself
    /// (disk queue records, dead letters), which keep every field as written.
    pub sender: Option<SenderRules>,
}

impl IngestOptions {
    /// The options of the receiver `receiver_id`: sender rules in its namespace.
    pub fn for_receiver(receiver_id: &str, mapping: FieldMapping, strict: bool) -> IngestOptions {
        IngestOptions {
            mapping,
            strict,
            sender: Some(SenderRules {
                id_namespace: receiver_namespace(receiver_id),
            }),
        }
    }
}

/// What siemrelay does with fields a sender sets that only siemrelay can vouch for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderRules {
    /// Namespace of the UUIDv5 derived from an `event_id` that is not a UUID.
    pub id_namespace: Uuid,
}

/// The UUIDv5 namespace of a receiver's derived event ids: the UUIDv5, in the URL namespace, of
/// `urn:siemrelay:receiver:<receiver id>`. The same sender id posted to the same receiver id
/// (on any instance) always gets the same `event_id`, so a SIEM de-duplicates a retry.
pub fn receiver_namespace(receiver_id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("urn:siemrelay:receiver:{receiver_id}").as_bytes(),
    )
}

/// An event that could not be ingested in strict mode.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field {field:?}: {reason}")]
pub struct IngestError {
    /// The well-known field (or mapped source) at fault.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// Result of ingesting one object.
#[derive(Debug)]
pub struct Ingested {
    /// The event.
    pub event: Event,
    /// How many fields could not be mapped (0 for a clean event).
    pub mapping_errors: usize,
}

/// A field's value that did not fit its well-known slot.
struct Misfit {
    key: String,
    value: Option<Value>,
    reason: String,
}

/// The members of one received JSON object in arrival order (a repeated key is kept, not
/// overwritten); keys borrow from the received bytes when they need no unescaping, so the
/// well-known keys cost no allocation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Members<'a>(pub Vec<(Cow<'a, str>, Value)>);

impl From<Map> for Members<'static> {
    fn from(object: Map) -> Self {
        Members(
            object
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), v))
                .collect(),
        )
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(Key(key)) = map.next_key()? {
                    members.push((key, map.next_value()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// One received object as [`parse_body_raw`] gives it: its well-known members, and its other
/// members already written as raw attributes (`serde_json::to_vec` of their map), for
/// [`event_from_received`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a> {
    /// The members kept as values (with [`parse_body_raw`]: the well-known fields).
    pub members: Members<'a>,
    /// The other members as raw attributes (`serde_json::to_vec` of their map) and where each
    /// top-level member starts in them; `None` when there are none or they are members.
    pub raw_attributes: Option<RawAttributes>,
    /// Well-known members the hand-written scanner parsed into their typed fields as it read
    /// them (see [`ParsedFields`]); not in `members`.
    pub parsed: ParsedFields,
}

/// The well-known members that only feed a typed field (`event_id`, `timestamp`,
/// `severity`), parsed by the hand-written scanner as it reads them: their text is never
/// copied. A value that does not parse stays in `members`, in its place, and takes the usual
/// path (kept as a misfit), so the event is the same either way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedFields {
    /// `event_id`, a UUID.
    pub event_id: Option<Uuid>,
    /// `timestamp`, RFC 3339 text.
    pub timestamp: Option<Timestamp>,
    /// `severity`, a known name.
    pub severity: Option<Severity>,
}

impl ParsedFields {
    /// Parses the string `text` of the well-known member `field` into its place; false (and
    /// nothing kept) when `field` is not one of these or the text does not parse.
    fn take(&mut self, field: WellKnown, text: &str) -> bool {
        match field {
            WellKnown::EventId => match Uuid::parse_str(text) {
                Ok(id) => self.event_id = Some(id),
                Err(_) => return false,
            },
            WellKnown::Timestamp => match Timestamp::parse_rfc3339(text) {
                Some(time) => self.timestamp = Some(time),
                None => return false,
            },
            WellKnown::Severity => match Severity::from_name(text) {
                Some(severity) => self.severity = Some(severity),
                None => return false,
            },
            _ => return false,
        }
        true
    }

    /// Sets the fields parsed.
    fn set(self, fields: &mut EventFields) {
        if let Some(id) = self.event_id {
            fields.event_id = id;
        }
        if let Some(time) = self.timestamp {
            fields.timestamp = time;
        }
        if let Some(severity) = self.severity {
            fields.severity = severity;
        }
    }
}

/// Raw attributes as ingest writes them: `serde_json::to_vec` of their map, the offset
/// where each top-level member starts, and whether the bytes are their own canonical form
/// (every key and float canonical as written: see [`Attributes::raw_canonical_json`]).
pub type RawAttributes = (Vec<u8>, Vec<u32>, bool);

impl<'a> From<Members<'a>> for Object<'a> {
    fn from(members: Members<'a>) -> Object<'a> {
        Object {
            members,
            raw_attributes: None,
            parsed: ParsedFields::default(),
        }
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key.to_string())))
            }
            fn visit_string<E>(self, key: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The top-level fields of the JSON form, told apart with one string match per member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WellKnown {
    EventId,
    Timestamp,
    ObservedTimestamp,
    EventType,
    Severity,
    SeverityNumber,
    Source,
    Summary,
    Attributes,
    Resource,
    Signature,
}

impl WellKnown {
    fn from_key(key: &str) -> Option<WellKnown> {
        Some(match key {
            "event_id" => WellKnown::EventId,
            "timestamp" => WellKnown::Timestamp,
            "observed_timestamp" => WellKnown::ObservedTimestamp,
            "event_type" => WellKnown::EventType,
            "severity" => WellKnown::Severity,
            "severity_number" => WellKnown::SeverityNumber,
            "source" => WellKnown::Source,
            "summary" => WellKnown::Summary,
            "attributes" => WellKnown::Attributes,
            "resource" => WellKnown::Resource,
            "signature" => WellKnown::Signature,
            _ => return None,
        })
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Why an event's JSON form (written by siemrelay: a disk queue record, a compact event) did
/// not parse back into its fields.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonFormError {
    /// The bytes are not a JSON object.
    #[error("not a JSON object: {0}")]
    NotAnObject(String),
    /// The object is not a valid event.
    #[error(transparent)]
    Event(#[from] IngestError),
}

/// The fields of an event from its JSON form (see [`crate::event`]), exactly as written: the
/// severity's text and number are taken as they are (ingest would refuse `unspecified`).
pub fn event_from_json_form(json: &[u8]) -> Result<EventFields, JsonFormError> {
    let Members(mut members) =
        serde_json::from_slice(json).map_err(|e| JsonFormError::NotAnObject(e.to_string()))?;
    let mut take = |name: &str| {
        let at = members.iter().position(|(key, _)| key == name)?;
        Some(members.remove(at).1)
    };
    let text = take("severity");
    let number = take("severity_number");
    let mut fields = event_from_object(Members(members), &IngestOptions::default(), Timestamp(0))?
        .event
        .into_fields();
    if let (Some(Value::String(text)), Some(number)) = (text, number.and_then(|n| n.as_u64())) {
        fields.severity = Severity {
            number: u8::try_from(number).unwrap_or(0),
            text,
        };
    }
    Ok(fields)
}

/// Builds an event from one JSON object of a request.
pub fn event_from_object<'a>(
    object: impl Into<Members<'a>>,
    options: &IngestOptions,
    observed: Timestamp,
) -> Result<Ingested, IngestError> {
    event_from_received(Object::from(object.into()), options, observed)
}

/// Builds an event from one object of a request as [`parse_body_raw`] gives it: the same
/// event as [`event_from_object`] gives for the object's members, with the attributes kept
/// raw when nothing (a mapping, a misfit, a clash) needs them as a map.
pub fn event_from_received(
    object: Object<'_>,
    options: &IngestOptions,
    observed: Timestamp,
) -> Result<Ingested, IngestError> {
    let Object {
        members: Members(mut members),
        raw_attributes,
        parsed,
    } = object;
    let mut raw = raw_attributes
        .map(|(json, starts, canonical)| Attributes::from_serialized_map(json, starts, canonical));
    if !options.mapping.is_empty()
        && let Some(attributes) = raw.take()
    {
        // A mapping reads the members as sent, which `parse_body_raw` keeps for it; should raw
        // attributes come here anyway, they are read as top-level members.
        members.extend(
            attributes
                .into_map()
                .into_iter()
                .map(|(key, value)| (Cow::Owned(key), value)),
        );
    }
    let object = Members(members);
    let mut fields = EventFields {
        event_id: Uuid::nil(),
        timestamp: Timestamp(0),
        observed_timestamp: observed,
        event_type: String::new(),
        severity: Severity::default(),
        source: None,
        summary: None,
        attributes: Attributes::new(),
        resource: Map::new(),
        signature: None,
    };
    // The scanner parses these only when there is no mapping (which reads members as sent).
    parsed.set(&mut fields);
    let mut sorted = Sorted::default();
    // Take mapped source fields out first so they do not also land in attributes.
    let (members, mapped) = take_mapped(object.0, &options.mapping, &mut sorted.misfits);
    sorted.sort_members(members, &mapped, &mut fields);
    sorted.set_mapped(mapped, &mut fields);
    sorted.set_severity_number(&mut fields);
    // A signed object keeps every field as signed; only then may a sender set these two.
    let sender = options.sender.filter(|_| fields.signature.is_none());
    sorted.set_observed_timestamp(sender, &mut fields);
    sorted.set_event_id(sender, &mut fields);
    let mapping_errors = sorted.keep_the_rest(options.strict, raw, &mut fields.attributes)?;
    if fields.event_id.is_nil() {
        fields.event_id = Uuid::now_v7();
    }
    if fields.timestamp.0 == 0 {
        fields.timestamp = observed;
    }
    if fields.event_type.is_empty() {
        fields.event_type = String::from("unknown");
    }
    Ok(Ingested {
        event: Event::from(fields),
        mapping_errors,
    })
}

/// A mapped source field: the well-known field it feeds, its path and its value.
type Mapped = (&'static str, String, Value);

/// Removes the mapped source fields from the members (a missing one is a misfit).
fn take_mapped<'a>(
    members: Vec<(Cow<'a, str>, Value)>,
    mapping: &FieldMapping,
    misfits: &mut Vec<Misfit>,
) -> (Vec<(Cow<'a, str>, Value)>, Vec<Mapped>) {
    let mut mapped = Vec::new();
    if mapping.is_empty() {
        return (members, mapped);
    }
    let mut object: Map = members
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v))
        .collect();
    for (target, source) in mapping.entries() {
        match source.remove(&mut object) {
            Some(value) => mapped.push((target, source.to_string(), value)),
            None => misfits.push(Misfit {
                key: source.to_string(),
                value: None,
                reason: format!("mapped field {source} for {target} is missing"),
            }),
        }
    }
    let members = object
        .into_iter()
        .map(|(k, v)| (Cow::Owned(k), v))
        .collect();
    (members, mapped)
}

/// What an object's members sort into on the way to an event.
#[derive(Default)]
struct Sorted {
    misfits: Vec<Misfit>,
    /// Members under the name of a well-known field that a mapping feeds instead.
    displaced: Vec<(String, Value)>,
    /// Members that are no well-known field: they become attributes.
    extras: Vec<(String, Value)>,
    /// Later values of a well-known field given twice.
    repeated: Vec<(String, Value)>,
    severity_number: Option<Value>,
    sender_observed: Option<Value>,
    /// The event_id value and the key it came under (or its mapping source and target note).
    id: Option<(Cow<'static, str>, Value, Option<String>)>,
}

impl Sorted {
    /// Sorts the members into the well-known fields and the rest.
    fn sort_members(
        &mut self,
        members: Vec<(Cow<'_, str>, Value)>,
        mapped: &[Mapped],
        fields: &mut EventFields,
    ) {
        let mut seen = 0u16;
        for (key, value) in members {
            if mapped.iter().any(|(target, _, _)| *target == key) {
                self.displaced.push((key.into_owned(), value));
                continue;
            }
            let Some(field) = WellKnown::from_key(&key) else {
                self.extras.push((key.into_owned(), value));
                continue;
            };
            if seen & field.bit() != 0 {
                self.repeated.push((key.into_owned(), value));
                continue;
            }
            seen |= field.bit();
            self.sort_well_known(field, key, value, fields);
        }
    }

    /// Sets one well-known field, or notes why it does not fit.
    fn sort_well_known(
        &mut self,
        field: WellKnown,
        key: Cow<'_, str>,
        value: Value,
        fields: &mut EventFields,
    ) {
        // The key is copied only when it is kept (a misfit, the event id).
        let misfit = |reason: String, value: Value| Misfit {
            reason,
            key: key.to_string(),
            value: Some(value),
        };
        match (field, value) {
            (WellKnown::Attributes, Value::Object(map)) => fields.attributes = map.into(),
            (WellKnown::Attributes, other) => self
                .misfits
                .push(misfit("attributes must be a JSON object".into(), other)),
            (WellKnown::Resource, Value::Object(map)) => fields.resource = map,
            (WellKnown::Resource, other) => self
                .misfits
                .push(misfit("resource must be a JSON object".into(), other)),
            (WellKnown::Signature, value) => match Signature::deserialize(&value) {
                Ok(signature) => fields.signature = Some(Box::new(signature)),
                Err(e) => self.misfits.push(misfit(format!("signature: {e}"), value)),
            },
            (WellKnown::SeverityNumber, value) => self.severity_number = Some(value),
            (WellKnown::ObservedTimestamp, value) => self.sender_observed = Some(value),
            // The key is the field's name (`WellKnown::from_key`).
            (WellKnown::EventId, value) => self.id = Some((Cow::Borrowed("event_id"), value, None)),
            (_, value) => {
                if let Err((reason, value)) = set_well_known(fields, &key, value) {
                    self.misfits.push(misfit(reason, value));
                }
            }
        }
    }

    /// Sets the fields fed by a mapping.
    fn set_mapped(&mut self, mapped: Vec<Mapped>, fields: &mut EventFields) {
        for (target, source, value) in mapped {
            if target == "event_id" {
                let note = format!("mapped field {source} for {target}");
                self.id = Some((Cow::Owned(source), value, Some(note)));
                continue;
            }
            if let Err((reason, value)) = set_well_known(fields, target, value) {
                self.misfits.push(Misfit {
                    reason: format!("mapped field {source} for {target}: {reason}"),
                    key: source,
                    value: Some(value),
                });
            }
        }
    }

    /// `severity_number` sets the number, and the text when no `severity` was given.
    fn set_severity_number(&mut self, fields: &mut EventFields) {
        let Some(value) = self.severity_number.take() else {
            return;
        };
        match value.as_i64().and_then(Severity::from_number) {
            Some(from_number) => {
                let text_given =
                    fields.severity.number != 0 || fields.severity.text != "unspecified";
                fields.severity.number = from_number.number;
                if !text_given {
                    fields.severity.text = from_number.text;
                }
            }
            None => self.misfits.push(Misfit {
                key: "severity_number".into(),
                reason: "severity_number must be an integer 0-24".into(),
                value: Some(value),
            }),
        }
    }

    /// A sender's `observed_timestamp` is kept as an attribute; siemrelay's own (or a signed
    /// object's) is the field.
    fn set_observed_timestamp(&mut self, sender: Option<SenderRules>, fields: &mut EventFields) {
        let Some(value) = self.sender_observed.take() else {
            return;
        };
        if sender.is_some() {
            self.extras.push(("observed_timestamp".to_string(), value));
        } else if let Err((reason, value)) = set_well_known(fields, "observed_timestamp", value) {
            self.misfits.push(Misfit {
                reason,
                key: "observed_timestamp".into(),
                value: Some(value),
            });
        }
    }

    /// A UUID `event_id` is the id; a sender's other id text gives a UUIDv5 (and is kept as an
    /// attribute); anything else is a misfit.
    fn set_event_id(&mut self, sender: Option<SenderRules>, fields: &mut EventFields) {
        let Some((key, value, note)) = self.id.take() else {
            return;
        };
        match (value.as_str().map(Uuid::parse_str), sender) {
            (Some(Ok(parsed)), _) => fields.event_id = parsed,
            (_, Some(rules)) if id_text(&value).is_some() => {
                let text = id_text(&value).unwrap_or_default();
                fields.event_id = Uuid::new_v5(&rules.id_namespace, text.as_bytes());
                self.extras.push((key.into_owned(), value));
            }
            (parsed, _) => {
                let reason = match parsed {
                    Some(_) => "event_id is not a UUID",
                    None => "event_id must be a UUID string",
                };
                self.misfits.push(Misfit {
                    reason: match note {
                        Some(note) => format!("{note}: {reason}"),
                        None => reason.to_string(),
                    },
                    key: key.into_owned(),
                    value: Some(value),
                });
            }
        }
    }

    /// Keeps extras, displaced and repeated members and misfit values as attributes (with a
    /// `mapping_error` note), or refuses the object in strict mode. Returns the misfit count.
    /// `raw`: the object's other members as raw attributes; they stay raw when nothing else
    /// but members they do not hold (a sender's `observed_timestamp`, a derived id's text) is
    /// added, else they are kept like extras.
    fn keep_the_rest(
        mut self,
        strict: bool,
        raw: Option<Attributes>,
        attributes: &mut Attributes,
    ) -> Result<usize, IngestError> {
        if let Some(mut raw) = raw {
            let simple = attributes.is_empty()
                && self.displaced.is_empty()
                && self.repeated.is_empty()
                && self.misfits.is_empty();
            if simple {
                let mut extras = std::mem::take(&mut self.extras).into_iter();
                for (key, value) in extras.by_ref() {
                    if !raw.insert_raw_if_absent(&key, &value) {
                        self.extras.push((key, value));
                        break;
                    }
                }
                self.extras.extend(extras);
                if self.extras.is_empty() {
                    *attributes = raw;
                    return Ok(0);
                }
            }
            let mut extras: Vec<(String, Value)> = raw.into_map().into_iter().collect();
            extras.append(&mut self.extras);
            self.extras = extras;
        }
        let attributes: &mut Map = attributes;
        if strict {
            if let Some(first) = self.misfits.first() {
                return Err(IngestError {
                    field: first.key.clone(),
                    reason: first.reason.clone(),
                });
            }
            if let Some((key, _)) = self.repeated.first() {
                return Err(repeated_key(key));
            }
        }
        let mut clashed: Option<String> = None;
        for (key, value) in self.extras.into_iter().chain(self.displaced) {
            if keep_attribute(attributes, key.clone(), value) && clashed.is_none() {
                clashed = Some(key);
            }
        }
        // A well-known field sent twice: the first value is the field, the later ones are kept.
        for (key, value) in self.repeated {
            keep_duplicate(attributes, key, value);
        }
        if strict && let Some(key) = clashed {
            return Err(repeated_key(&key));
        }
        let mapping_errors = self.misfits.len();
        if !self.misfits.is_empty() {
            let note = self
                .misfits
                .iter()
                .map(|m| m.reason.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            for misfit in self.misfits {
                if let Some(value) = misfit.value {
                    keep_attribute(attributes, misfit.key, value);
                }
            }
            keep_attribute(
                attributes,
                MAPPING_ERROR_KEY.to_string(),
                Value::String(note),
            );
        }
        Ok(mapping_errors)
    }
}

fn repeated_key(key: &str) -> IngestError {
    IngestError {
        field: key.to_string(),
        reason: "the key is given twice (top level and/or attributes); strict mode refuses \
                 repeated keys"
            .into(),
    }
}

/// The text a non-UUID sender id is hashed from: a string as it is, a number as written.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Inserts `key` into attributes; when the key is already there, the value goes to
/// `_duplicate.<key>` so nothing is lost. Returns true on such a clash.
fn keep_attribute(attributes: &mut Map, key: String, value: Value) -> bool {
    match attributes.entry(key) {
        serde_json::map::Entry::Vacant(slot) => {
            slot.insert(value);
            false
        }
        serde_json::map::Entry::Occupied(slot) => {
            let key = slot.key().clone();
            keep_duplicate(attributes, key, value);
            true
        }
    }
}

/// Sets an attribute siemrelay itself vouches for (`verified_by`, `log.file.path`): it takes
/// the key, and a value the sender had there moves to `_duplicate.<key>`.
pub fn insert_stamp(attributes: &mut Map, key: &str, value: Value) {
    if let Some(sender) = attributes.insert(key.to_string(), value) {
        keep_duplicate(attributes, key.to_string(), sender);
    }
}

/// Sets one well-known field from a JSON value (moving strings, not copying them), or says
/// why it does not fit and hands the value back.
fn set_well_known(
    event: &mut EventFields,
    field: &str,
    value: Value,
) -> Result<(), (String, Value)> {
    fn misfit(reason: impl Into<String>, value: Value) -> Result<(), (String, Value)> {
        Err((reason.into(), value))
    }
    match field {
        "event_id" => match value.as_str().map(Uuid::parse_str) {
            Some(Ok(id)) => event.event_id = id,
            Some(Err(_)) => return misfit("event_id is not a UUID", value),
            None => return misfit("event_id must be a UUID string", value),
        },
        "timestamp" => match parse_time(&value) {
            Some(time) => event.timestamp = time,
            None => return misfit("timestamp is not RFC 3339 or epoch time", value),
        },
        "observed_timestamp" => match parse_time(&value) {
            Some(time) => event.observed_timestamp = time,
            None => return misfit("observed_timestamp is not RFC 3339 or epoch time", value),
        },
        "event_type" => match value {
            Value::String(text) if !text.is_empty() => event.event_type = text,
            other => return misfit("event_type must be a non-empty string", other),
        },
        "severity" => {
            let severity = match &value {
                Value::String(text) => Severity::from_name(text)
                    .ok_or_else(|| format!("unknown severity name {text:?}")),
                Value::Number(n) => n
                    .as_i64()
                    .and_then(Severity::from_number)
                    .ok_or_else(|| "severity number must be 0-24".to_string()),
                _ => Err("severity must be a name or a number".to_string()),
            };
            match severity {
                Ok(severity) => event.severity = severity,
                Err(reason) => return misfit(reason, value),
            }
        }
        "source" => match value {
            Value::String(text) => event.source = Some(text),
            other => return misfit("source must be a string", other),
        },
        "summary" => match value {
            Value::String(text) => event.summary = Some(text),
            other => return misfit("summary must be a string", other),
        },
        _ => return misfit(format!("{field} is not a well-known field"), value),
    }
    Ok(())
}

fn parse_time(value: &Value) -> Option<Timestamp> {
    match value {
        Value::String(text) => Timestamp::parse_rfc3339(text),
        Value::Number(n) => match n.as_i64() {
            Some(int) => Timestamp::from_epoch_integer(int),
            None => n.as_f64().and_then(Timestamp::from_epoch_number),
        },
        _ => None,
    }
}

/// How a request body frames its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON object or a JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// A body that is not valid JSON of the expected shape, or that a limit stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    /// What stopped the parse.
    pub kind: BodyErrorKind,
    /// Human-readable reason with line and column (or element index).
    pub message: String,
}

/// What stopped a body's parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyErrorKind {
    /// Not valid JSON.
    Malformed {
        /// Line of the error (1-based; in NDJSON, within the failing line).
        line: usize,
        /// Column of the error (1-based).
        column: usize,
        /// What is wrong, without the position.
        reason: String,
    },
    /// A value that must be an object is not.
    Shape,
    /// More events than the limit.
    TooManyEvents {
        /// The configured limit.
        limit: usize,
    },
    /// The admission budget has no room for the parsed values.
    Memory(OverBudget),
    /// An integer that fits neither `i64` nor `u64`.
    WideInteger,
    /// A repeated key, refused in strict mode.
    RepeatedKey,
}

/// The JSON type of a value, for messages.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingest(value: Value, options: &IngestOptions) -> Ingested {
        let Value::Object(map) = value else {
            panic!("test input must be an object")
        };
        event_from_object(map, options, Timestamp(1)).unwrap()
    }

    #[test]
    fn well_known_fields_and_extras() {
        let out = ingest(
            json!({"event_id": "f77432cb-baef-55d1-9210-d970a8df777e", "event_type": "policy_violation",
                   "severity": "high", "timestamp": "2026-11-20T09:00:00.123456Z", "summary": "s",
                   "source": "toktra", "user_email": "u@x", "tags": {"env": "prod"}, "n": null}),
            &IngestOptions::default(),
        );
        let e = out.event;
        assert_eq!(out.mapping_errors, 0);
        assert_eq!(
            e.event_id.to_string(),
            "f77432cb-baef-55d1-9210-d970a8df777e"
        );
        assert_eq!(e.severity.number, 17);
        assert_eq!(e.severity.text, "high");
        assert_eq!(e.attributes["user_email"], json!("u@x"));
        assert_eq!(e.attributes["tags"], json!({"env": "prod"}));
        assert_eq!(e.attributes["n"], Value::Null);
        assert_eq!(e.timestamp.to_rfc3339(), "2026-11-20T09:00:00.123456Z");
    }

    #[test]
    fn misfits_are_kept_and_noted_or_rejected_when_strict() {
        let input = json!({"event_id": "evt-1", "severity": "severe", "event_type": "x"});
        let out = ingest(input.clone(), &IngestOptions::default());
        assert_eq!(out.mapping_errors, 2);
        assert_eq!(out.event.attributes["event_id"], json!("evt-1"));
        assert_eq!(out.event.attributes["severity"], json!("severe"));
        assert!(
            out.event.attributes["mapping_error"]
                .as_str()
                .unwrap()
                .contains("UUID")
        );
        assert_eq!(out.event.event_id.get_version_num(), 7);
        let strict = IngestOptions {
            strict: true,
            ..Default::default()
        };
        let Value::Object(map) = input else {
            unreachable!()
        };
        assert!(event_from_object(map, &strict, Timestamp(1)).is_err());
    }

    #[test]
    fn mapping_moves_fields_and_reports_missing_ones() {
        let mapping: FieldMapping = serde_json::from_value(json!({
            "event_id": "id", "event_type": "type", "timestamp": "created_at",
            "severity": "level", "summary": "meta.msg"}))
        .unwrap();
        let options = IngestOptions {
            mapping,
            ..Default::default()
        };
        let out = ingest(
            json!({"id": "2bb44865-eccb-5c7d-91c7-3da3db0040db", "type": "user.login",
                   "created_at": "2026-11-20T09:00:00Z", "level": "info", "meta": {"msg": "hello", "k": 1}}),
            &options,
        );
        assert_eq!(out.mapping_errors, 0);
        assert_eq!(out.event.event_type, "user.login");
        assert_eq!(out.event.summary.as_deref(), Some("hello"));
        assert_eq!(out.event.attributes["meta"], json!({"k": 1}));
        assert!(!out.event.attributes.contains_key("id"));

        let out = ingest(json!({"id": 5, "type": "t"}), &options);
        assert_eq!(out.event.attributes["id"], json!(5));
        assert!(out.mapping_errors >= 1);
    }

    #[test]
    fn clashing_top_level_field_is_kept() {
        let out = ingest(
            json!({"attributes": {"a": 1}, "a": 2}),
            &IngestOptions::default(),
        );
        assert_eq!(out.event.attributes["a"], json!(1));
        assert_eq!(out.event.attributes["_duplicate"]["a"], json!([2]));
    }

    #[test]
    fn body_framing_errors_name_the_position() {
        let err = parse_body(
            b"{\"a\":1}\n{\"b\":",
            BodyFormat::Ndjson,
            &Limits::unlimited(),
        )
        .unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
        // Invalid UTF-8 is found in its line, not just somewhere in the body.
        let err = parse_body(
            b"{\"a\":1}\r\n{\"b\":\"\xff\"}\n",
            BodyFormat::Ndjson,
            &Limits::unlimited(),
        )
        .unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
        let err = parse_body(b"[{}, 3]", BodyFormat::Json, &Limits::unlimited()).unwrap_err();
        assert!(err.message.contains("element 1"), "{}", err.message);
        let err = parse_body(b"{\n \"a\": }", BodyFormat::Json, &Limits::unlimited()).unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
        assert_eq!(
            parse_body(b"[{},{}]", BodyFormat::Json, &Limits::unlimited())
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse_body(b"{}\r\n\n{}\n", BodyFormat::Ndjson, &Limits::unlimited())
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_repeated_key_is_kept_not_overwritten() {
        for (body, format) in [
            (
                &br#"{"event_type":"x","user":"ann","user":"bob"}"#[..],
                BodyFormat::Ndjson,
            ),
            (
                &br#"[{"event_type":"x","user":"ann","user":"bob"}]"#[..],
                BodyFormat::Json,
            ),
        ] {
            let objects = parse_body(body, format, &Limits::unlimited()).unwrap();
            let event =
                event_from_object(objects[0].clone(), &IngestOptions::default(), Timestamp(1))
                    .unwrap()
                    .event;
            assert_eq!(event.attributes["user"], json!("ann"));
            assert_eq!(event.attributes["_duplicate"]["user"], json!(["bob"]));
        }
    }

    #[test]
    fn every_later_value_of_a_repeated_key_is_kept_or_refused_when_strict() {
        let body = br#"{"event_type":"x","event_type":"y","user":"ann","user":"bob","user":"cy","attributes":{"user":"dee"}}"#;
        let objects = parse_body(body, BodyFormat::Json, &Limits::unlimited()).unwrap();
        let event = event_from_object(objects[0].clone(), &IngestOptions::default(), Timestamp(1))
            .unwrap()
            .event;
        assert_eq!(event.event_type, "x");
        assert_eq!(event.attributes["user"], json!("dee"));
        assert_eq!(
            event.attributes["_duplicate"],
            json!({"user": ["ann", "bob", "cy"], "event_type": ["y"]})
        );
        let strict = IngestOptions {
            strict: true,
            ..Default::default()
        };
        let error = event_from_object(objects[0].clone(), &strict, Timestamp(1)).unwrap_err();
        assert_eq!(error.field, "event_type");
        let clash = parse_body(
            br#"{"a":1,"attributes":{"a":2}}"#,
            BodyFormat::Json,
            &Limits::unlimited(),
        )
        .unwrap();
        let error = event_from_object(clash[0].clone(), &strict, Timestamp(1)).unwrap_err();
        assert_eq!(error.field, "a");
        // The receiver's stamp takes its key; the sender's value is kept.
        let mut attributes = Map::new();
        attributes.insert("verified_by".into(), json!("me"));
        insert_stamp(&mut attributes, "verified_by", json!({"scheme": "github"}));
        assert_eq!(attributes["verified_by"]["scheme"], "github");
        assert_eq!(attributes["_duplicate"]["verified_by"], json!(["me"]));
    }

    #[test]
    fn observed_timestamp_is_the_receive_time_unless_the_object_is_signed() {
        let options = IngestOptions::for_receiver("webhook", FieldMapping::default(), false);
        let sent = json!({"event_type": "x", "observed_timestamp": "2020-01-01T00:00:00Z"});
        let out = ingest(sent.clone(), &options);
        assert_eq!(out.event.observed_timestamp, Timestamp(1));
        assert_eq!(
            out.event.attributes["observed_timestamp"],
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(out.mapping_errors, 0);
        // siemrelay's own stored events keep theirs.
        let stored = ingest(sent.clone(), &IngestOptions::default());
        assert_eq!(
            stored.event.observed_timestamp.to_rfc3339(),
            "2020-01-01T00:00:00Z"
        );
        // A signed object keeps every field as signed.
        let mut signed = sent;
        signed["signature"] = json!({"alg": "HMAC-SHA256", "kid": "k", "value": "00"});
        signed["event_id"] = json!("evt-1");
        let out = ingest(signed, &options);
        assert_eq!(
            out.event.observed_timestamp.to_rfc3339(),
            "2020-01-01T00:00:00Z"
        );
        assert!(!out.event.attributes.contains_key("observed_timestamp"));
        assert_eq!(
            out.event.event_id.get_version_num(),
            7,
            "a signed event's id is not derived"
        );
    }

    #[test]
    fn a_sender_id_that_is_not_a_uuid_gives_a_deterministic_uuid_v5() {
        let options =
            IngestOptions::for_receiver("webhook/truthlocks", FieldMapping::default(), true);
        let first = ingest(json!({"event_id": "evt_8a7f", "event_type": "x"}), &options);
        let retry = ingest(json!({"event_id": "evt_8a7f", "event_type": "x"}), &options);
        assert_eq!(first.event.event_id, retry.event.event_id);
        assert_eq!(first.event.event_id.get_version_num(), 5);
        assert_eq!(
            first.event.event_id,
            Uuid::new_v5(&receiver_namespace("webhook/truthlocks"), b"evt_8a7f")
        );
        assert_eq!(first.event.attributes["event_id"], "evt_8a7f");
        assert_eq!(first.mapping_errors, 0);
        // Another receiver id is another namespace.
        let other = IngestOptions::for_receiver("webhook/other", FieldMapping::default(), false);
        let elsewhere = ingest(json!({"event_id": "evt_8a7f"}), &other);
        assert_ne!(elsewhere.event.event_id, first.event.event_id);
        // A mapped numeric id works the same; the original stays under its own key.
        let mapping: FieldMapping = serde_json::from_value(json!({"event_id": "id"})).unwrap();
        let mapped = IngestOptions::for_receiver("webhook", mapping, false);
        let out = ingest(json!({"id": 4711}), &mapped);
        assert_eq!(
            out.event.event_id,
            Uuid::new_v5(&receiver_namespace("webhook"), b"4711")
        );
        assert_eq!(out.event.attributes["id"], 4711);
        // A real UUID is kept as it is.
        let uuid = "f77432cb-baef-55d1-9210-d970a8df777e";
        let out = ingest(json!({"event_id": uuid}), &options);
        assert_eq!(out.event.event_id.to_string(), uuid);
        assert!(!out.event.attributes.contains_key("event_id"));
    }

    #[test]
    fn keys_borrow_from_the_body_unless_escaped() {
        let objects = parse_body(
            br#"{"plain":1,"esc\u0061ped":2}"#,
            BodyFormat::Ndjson,
            &Limits::unlimited(),
        )
        .unwrap();
        let keys: Vec<(bool, &str)> = objects[0]
            .0
            .iter()
            .map(|(k, _)| (matches!(k, Cow::Borrowed(_)), k.as_ref()))
            .collect();
        assert_eq!(keys, [(true, "plain"), (false, "escaped")]);
    }
}
