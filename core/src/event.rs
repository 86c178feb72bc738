//! The security event every component shares, and its JSON form.
//!
//! JSON form (one object per event; NDJSON in files):
//! ```json
//! {"event_id":"0192…","timestamp":"2026-11-20T09:00:00.123456Z","observed_timestamp":"…",
//!  "event_type":"policy_violation","severity":"high","severity_number":17,"source":"toktra",
//!  "summary":"…","attributes":{…},"resource":{…},"signature":{…}}
//! ```
//! `source`, `summary`, `resource` and `signature` are left out when absent or empty.

use crate::attributes::Attributes;
use crate::severity::Severity;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// Attribute values: null, bool, integer (exact up to 64 bits), float, string, array, map.
pub type Value = serde_json::Value;
/// A nested attribute map whose keys keep the order they were received in.
pub type Map = serde_json::Map<String, Value>;

/// The names of the well-known top-level fields of the JSON form.
pub const WELL_KNOWN_FIELDS: &[&str] = &[
    "event_id",
    "timestamp",
    "observed_timestamp",
    "event_type",
    "severity",
    "severity_number",
    "source",
    "summary",
    "attributes",
    "resource",
    "signature",
];

/// A per-event HMAC signature added by the `sign` processor.
///
/// Its members are [`SignatureText`]s, not `String`s: the sign processor signs every event, and
/// its algorithm name is a constant, its key id is shared by every event it signs, and the MAC
/// and chain link are 64 hex digits held inline, so a signature is one allocation (its box in
/// the event), not five. The JSON form is the same as with strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Algorithm name, `HMAC-SHA256`.
    pub alg: SignatureText,
    /// Id of the key that signed the event.
    pub kid: SignatureText,
    /// Lowercase hex of the MAC.
    pub value: SignatureText,
    /// With chaining: hex SHA-256 of the previous signed event of the same pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<SignatureText>,
}

/// The text of a [`Signature`] member: reads as a `str` (`Deref`), compares and serializes as
/// one, and is held without a heap string of its own where it can be.
#[derive(Clone)]
pub struct SignatureText(TextRepr);

#[derive(Clone)]
enum TextRepr {
    /// A text fixed in the program (the algorithm name).
    Static(&'static str),
    /// A text shared by many signatures (the key id of one sign processor).
    Shared(Arc<str>),
    /// 64 ASCII characters (a SHA-256 digest or MAC in hex), inline.
    Ascii64([u8; 64]),
    /// Any other text (as received).
    Other(Box<str>),
}

impl SignatureText {
    /// A text fixed in the program, held by reference.
    pub const fn from_static(text: &'static str) -> SignatureText {
        SignatureText(TextRepr::Static(text))
    }

    /// 64 ASCII characters (hex digits) held inline; `None` when a byte is not ASCII.
    pub fn ascii64(bytes: [u8; 64]) -> Option<SignatureText> {
        bytes
            .is_ascii()
            .then_some(SignatureText(TextRepr::Ascii64(bytes)))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            TextRepr::Static(text) => text,
            TextRepr::Shared(text) => text,
            // Only ASCII is put there (checked), so it is valid UTF-8.
            TextRepr::Ascii64(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            TextRepr::Other(text) => text,
        }
    }
}

/// Copies `text`: inline when it is 64 ASCII characters.
impl From<&str> for SignatureText {
    fn from(text: &str) -> SignatureText {
        let ascii64 = <[u8; 64]>::try_from(text.as_bytes())
            .ok()
            .and_then(SignatureText::ascii64);
        ascii64.unwrap_or_else(|| SignatureText(TextRepr::Other(text.into())))
    }
}

/// Inline when it is 64 ASCII characters, else the string's own buffer.
impl From<String> for SignatureText {
    fn from(text: String) -> SignatureText {
        if text.len() == 64 {
            return SignatureText::from(text.as_str());
        }
        SignatureText(TextRepr::Other(text.into_boxed_str()))
    }
}

/// Shares the text (e.g. a key id with the processor that signs).
impl From<Arc<str>> for SignatureText {
    fn from(text: Arc<str>) -> SignatureText {
        SignatureText(TextRepr::Shared(text))
    }
}

impl std::ops::Deref for SignatureText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SignatureText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for SignatureText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for SignatureText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for SignatureText {
    fn eq(&self, other: &SignatureText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SignatureText {}

impl PartialEq<str> for SignatureText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SignatureText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for SignatureText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

/// Serialized as the string.
impl Serialize for SignatureText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Read from a string, as a `String` would be (the same errors for other types).
impl<'de> Deserialize<'de> for SignatureText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = SignatureText;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<SignatureText, E> {
                Ok(SignatureText::from(text))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<SignatureText, E> {
                Ok(SignatureText::from(text))
            }
        }
        deserializer.deserialize_string(Text)
    }
}

/// The event's JSON form as bytes, written once by the processor that last changed the event
/// (the `sign` processor keeps the form it signed) or read back from a disk queue, so exporters
/// copy it instead of serializing the event again: "sign the bytes you send".
///
/// A cache derived from the fields, held privately by [`Event`]: any mutable access to the
/// fields (through `DerefMut`) drops it, so it can never disagree with them and no processor
/// has to declare anything about it. It takes no part in comparing events.
#[derive(Clone, Debug, Default)]
pub struct WrittenJson(Option<Vec<u8>>);

impl WrittenJson {
    /// The bytes, when the event's JSON form was written and not changed since.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }
}

/// The fields of one security event: what its JSON form holds. Read them through [`Event`]
/// (`event.attributes`); changing them through `&mut Event` drops the kept JSON form.
#[derive(Clone, Debug, PartialEq)]
pub struct EventFields {
    /// Unique id (UUIDv7 assigned at ingest when the sender gave none); SIEMs de-duplicate on it.
    pub event_id: Uuid,
    /// When the event happened.
    pub timestamp: Timestamp,
    /// When siemrelay received it.
    pub observed_timestamp: Timestamp,
    /// Kind of event, e.g. `policy_violation`, `lockout`, `test_connection`.
    pub event_type: String,
    /// Severity number and text.
    pub severity: Severity,
    /// The product or system that produced the event.
    pub source: Option<String>,
    /// Human-readable text or body.
    pub summary: Option<String>,
    /// Everything else the sender said: a typed tree, or the JSON bytes of one that are
    /// parsed on first read (see [`Attributes`]).
    pub attributes: Attributes,
    /// Attributes of the sender (OpenTelemetry resource).
    pub resource: Map,
    /// Signature added by the `sign` processor (boxed: most events have none, and a queued
    /// event's size should not pay for one).
    pub signature: Option<Box<Signature>>,
}

/// One security event: its fields (read and changed through `Deref`/`DerefMut` to
/// [`EventFields`]), its kept JSON form (private: dropped by any change to the fields) and its
/// batch's completion token.
///
/// Once processed, an event is made *compact* ([`Event::compact`]) before it waits in an
/// exporter's queue: its JSON form is kept and its attribute tree, summary and signature are
/// freed on the thread that built them, so a queue holds encoded bytes (one allocation per
/// event), not trees of dozens of heap objects. The scalar fields stay readable without cost
/// ([`Event::head`], [`Event::host`]); reading any other field of a compact event parses the
/// kept form once (exporters that reshape events), and changing a field makes it whole again.
#[derive(Clone, Debug)]
pub struct Event {
    /// All fields; in a compact event only the scalar ones (see [`Event::head`]) and `resource`.
    fields: EventFields,
    /// This event's JSON form, when already written (see [`WrittenJson`]).
    written_json: WrittenJson,
    /// Set while the event is compact: the host name read before the tree was freed.
    compact: Option<Box<CompactState>>,
    /// The token of the batch this event came in, when its receiver waits for delivery
    /// (see [`crate::completion`]); `None` otherwise. Not part of the JSON form.
    pub completion: Option<crate::completion::Completion>,
}

/// What a compact event keeps besides its scalar fields and JSON form.
#[derive(Clone, Debug, Default)]
struct CompactState {
    /// [`Event::host`], computed before the attributes were freed.
    host: Option<Box<str>>,
    /// The whole fields, parsed back from the JSON form on first read of a freed field.
    restored: std::sync::OnceLock<Box<EventFields>>,
}

/// The scalar fields of an event, readable without parsing a compact event back: what routing,
/// batching, status and most envelopes need.
#[derive(Clone, Copy, Debug)]
pub struct Head<'a> {
    /// See [`EventFields::event_id`].
    pub event_id: &'a Uuid,
    /// See [`EventFields::timestamp`].
    pub timestamp: &'a Timestamp,
    /// See [`EventFields::observed_timestamp`].
    pub observed_timestamp: &'a Timestamp,
    /// See [`EventFields::event_type`].
    pub event_type: &'a str,
    /// See [`EventFields::severity`].
    pub severity: &'a Severity,
    /// See [`EventFields::source`].
    pub source: Option<&'a str>,
    /// See [`EventFields::resource`] (kept in compact events: usually empty or shared-small).
    pub resource: &'a Map,
}

/// Events are equal when their fields and completion tokens are; the kept JSON form is derived
/// from the fields and is left out.
impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        **self == **other && self.completion == other.completion
    }
}

impl std::ops::Deref for Event {
    type Target = EventFields;

    fn deref(&self) -> &EventFields {
        match &self.compact {
            None => &self.fields,
            Some(state) => state
                .restored
                .get_or_init(|| Box::new(self.restore_fields())),
        }
    }
}

/// Mutable access to the fields drops the kept JSON form: the next [`Event::write_json`]
/// serializes the changed fields. A compact event is made whole first.
impl std::ops::DerefMut for Event {
    fn deref_mut(&mut self) -> &mut EventFields {
        self.make_whole();
        self.written_json.0 = None;
        &mut self.fields
    }
}

impl From<EventFields> for Event {
    fn from(fields: EventFields) -> Event {
        Event {
            fields,
            written_json: WrittenJson::default(),
            compact: None,
            completion: None,
        }
    }
}

impl Event {
    /// A new event of the given type, stamped now, with a fresh UUIDv7 and no attributes.
    pub fn new(event_type: impl Into<String>) -> Event {
        let now = Timestamp::now();
        Event::from(EventFields {
            event_id: Uuid::now_v7(),
            timestamp: now,
            observed_timestamp: now,
            event_type: event_type.into(),
            severity: Severity::default(),
            source: None,
            summary: None,
            attributes: Attributes::new(),
            resource: Map::new(),
            signature: None,
        })
    }

    /// Keeps `json` as this event's JSON form, for [`Event::write_json`] to copy. The caller
    /// guarantees that `json` is a JSON object with exactly this event's fields and values.
    pub fn keep_written_json(&mut self, json: Vec<u8>) {
        self.written_json = WrittenJson(Some(json));
    }

    /// The fields, taken out of the event.
    pub fn into_fields(mut self) -> EventFields {
        self.make_whole();
        self.fields
    }

    /// The scalar fields, read without parsing a compact event back.
    pub fn head(&self) -> Head<'_> {
        let f = &self.fields;
        Head {
            event_id: &f.event_id,
            timestamp: &f.timestamp,
            observed_timestamp: &f.observed_timestamp,
            event_type: &f.event_type,
            severity: &f.severity,
            source: f.source.as_deref(),
            resource: &f.resource,
        }
    }

    /// The name of the host the event is about, for envelopes that carry one (Splunk's `host`,
    /// syslog's HOSTNAME): the resource's `host.name` (or `host: {name}`), else the attribute
    /// `host` (a string, or an object's `name`). Read without parsing a compact event back.
    pub fn host(&self) -> Option<&str> {
        match &self.compact {
            Some(state) => state.host.as_deref(),
            None => host_of(&self.fields),
        }
    }

    /// True while the event is compact (see [`Event::compact`]).
    pub fn is_compact(&self) -> bool {
        self.compact.is_some()
    }

    /// Makes the event compact: writes its JSON form if it has none, then frees its attribute
    /// tree, summary and signature, keeping the scalar fields, the resource and the host name.
    /// What it holds afterwards is its encoded form; reading a freed field parses it back.
    pub fn compact(&mut self) {
        if self.compact.is_some() {
            return;
        }
        if self.written_json.0.is_none() {
            let mut json = Vec::with_capacity(self.estimated_size());
            self.write_json(&mut json);
            self.written_json = WrittenJson(Some(json));
        }
        let host = host_owned(&self.fields);
        let f = &mut self.fields;
        f.attributes = Attributes::new();
        f.summary = None;
        f.signature = None;
        self.compact = Some(Box::new(CompactState {
            host,
            restored: std::sync::OnceLock::new(),
        }));
    }

    /// Turns a compact event back into a whole one (parsing its JSON form unless a read already
    /// did); the kept form stays valid.
    fn make_whole(&mut self) {
        if let Some(state) = self.compact.take() {
            self.fields = match state.restored.into_inner() {
                Some(fields) => *fields,
                None => self.restore_fields(),
            };
        }
    }

    /// The whole fields of a compact event, parsed from its kept JSON form. The form was
    /// written by siemrelay from these very fields, so it parses; should it not, the scalar
    /// fields are kept and the failure is logged, never a panic.
    fn restore_fields(&self) -> EventFields {
        let parsed = self
            .written_json
            .bytes()
            .ok_or_else(|| "no kept JSON form".to_string())
            .and_then(|json| crate::ingest::event_from_json_form(json).map_err(|e| e.to_string()));
        match parsed {
            Ok(fields) => fields,
            Err(reason) => {
                tracing::error!(event_id = %self.fields.event_id, %reason,
                    "a compact event's JSON form did not parse back; its attributes are lost");
                self.fields.clone()
            }
        }
    }

    /// The kept JSON form, when there is one (see [`WrittenJson`]).
    pub fn written_json(&self) -> Option<&[u8]> {
        self.written_json.bytes()
    }

    /// Appends this event's JSON form to `out` (no trailing newline): the kept form when there
    /// is one (its members may come in another order), else the fields serialized now.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        if let Some(json) = self.written_json.bytes() {
            out.extend_from_slice(json);
            return;
        }
        if let Some(attributes) = self.attributes.raw_json() {
            write_json_form_with_raw_attributes(self, attributes, out);
            return;
        }
        // Writing into a Vec cannot fail, and every field serializes.
        let _ = serde_json::to_writer(&mut *out, &JsonForm(self));
    }

    /// This event's JSON form as bytes.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_json(&mut out);
        out
    }

    /// This event's JSON form as a `serde_json::Value` (for canonicalization and mapping).
    pub fn to_json_value(&self) -> Value {
        serde_json::to_value(JsonForm(self)).unwrap_or(Value::Null)
    }

    /// Size of the event's JSON form in bytes, for queue accounting: exact when the form is
    /// kept (compact events), else estimated from the fields.
    pub fn estimated_size(&self) -> usize {
        if let Some(json) = self.written_json.bytes() {
            return json.len();
        }
        fn value_size(value: &Value) -> usize {
            match value {
                Value::Null | Value::Bool(_) => 5,
                Value::Number(_) => 12,
                Value::String(s) => s.len() + 2,
                Value::Array(items) => 2 + items.iter().map(|v| value_size(v) + 1).sum::<usize>(),
                Value::Object(map) => map_size(map),
            }
        }
        fn map_size(map: &Map) -> usize {
            2 + map
                .iter()
                .map(|(k, v)| k.len() + 4 + value_size(v))
                .sum::<usize>()
        }
        200 + self.event_type.len()
            + self.severity.text.len()
            + self.source.as_ref().map_or(0, String::len)
            + self.summary.as_ref().map_or(0, String::len)
            + self
                .attributes
                .raw_len()
                .unwrap_or_else(|| map_size(&self.attributes))
            + map_size(&self.resource)
            + self.signature.as_ref().map_or(0, |s| 160 + s.value.len())
    }
}

/// See [`Event::host`].
fn host_of(fields: &EventFields) -> Option<&str> {
    fn text(value: Option<&Value>) -> Option<&str> {
        value.and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    fn name(value: Option<&Value>) -> Option<&str> {
        text(value.and_then(|v| v.get("name")))
    }
    text(fields.resource.get("host.name"))
        .or_else(|| name(fields.resource.get("host")))
        .or_else(|| text(fields.attributes.get("host")))
        .or_else(|| name(fields.attributes.get("host")))
}

/// [`host_of`], owned, reading raw attributes without parsing them (what a compact event keeps).
fn host_owned(fields: &EventFields) -> Option<Box<str>> {
    if fields.attributes.raw_json().is_none() {
        return host_of(fields).map(Box::from);
    }
    fn text(value: Option<&Value>) -> Option<&str> {
        value.and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    if let Some(host) = text(fields.resource.get("host.name"))
        .or_else(|| text(fields.resource.get("host").and_then(|v| v.get("name"))))
    {
        return Some(Box::from(host));
    }
    let json = fields.attributes.raw_member("host")?;
    let value: Value = if json.first() == Some(&b'"') {
        Value::String(serde_json::from_slice(json).ok()?)
    } else if json.first() == Some(&b'{') {
        serde_json::from_slice(json).ok()?
    } else {
        return None;
    };
    text(Some(&value))
        .or_else(|| text(value.get("name")))
        .map(Box::from)
}

/// The JSON form of an event whose attributes are held raw: the same members as [`JsonForm`],
/// with the attributes' bytes copied.
fn write_json_form_with_raw_attributes(event: &Event, attributes: &[u8], out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and every field serializes.
    let mut id_buf = Uuid::encode_buffer();
    let mut time = crate::time::Rfc3339Buf::default();
    out.extend_from_slice(b"{\"event_id\":\"");
    out.extend_from_slice(
        event
            .event_id
            .hyphenated()
            .encode_lower(&mut id_buf)
            .as_bytes(),
    );
    out.extend_from_slice(b"\",\"timestamp\":");
    let _ = serde_json::to_writer(&mut *out, event.timestamp.format_rfc3339(&mut time));
    out.extend_from_slice(b",\"observed_timestamp\":");
    let _ = serde_json::to_writer(
        &mut *out,
        event.observed_timestamp.format_rfc3339(&mut time),
    );
    out.extend_from_slice(b",\"event_type\":");
    let _ = serde_json::to_writer(&mut *out, &event.event_type);
    out.extend_from_slice(b",\"severity\":");
    let _ = serde_json::to_writer(&mut *out, &event.severity.text);
    out.extend_from_slice(b",\"severity_number\":");
    let _ = serde_json::to_writer(&mut *out, &event.severity.number);
    if let Some(source) = &event.source {
        out.extend_from_slice(b",\"source\":");
        let _ = serde_json::to_writer(&mut *out, source);
    }
    if let Some(summary) = &event.summary {
        out.extend_from_slice(b",\"summary\":");
        let _ = serde_json::to_writer(&mut *out, summary);
    }
    out.extend_from_slice(b",\"attributes\":");
    out.extend_from_slice(attributes);
    if !event.resource.is_empty() {
        out.extend_from_slice(b",\"resource\":");
        let _ = serde_json::to_writer(&mut *out, &event.resource);
    }
    if let Some(signature) = &event.signature {
        out.extend_from_slice(b",\"signature\":");
        let _ = serde_json::to_writer(&mut *out, signature);
    }
    out.push(b'}');
}

/// Serializes an event in its JSON form.
struct JsonForm<'a>(&'a Event);

impl Serialize for JsonForm<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.0;
        let mut map = serializer.serialize_map(None)?;
        let mut id_buf = Uuid::encode_buffer();
        map.serialize_entry(
            "event_id",
            e.event_id.hyphenated().encode_lower(&mut id_buf),
        )?;
        let mut buf = crate::time::Rfc3339Buf::default();
        map.serialize_entry("timestamp", e.timestamp.format_rfc3339(&mut buf))?;
        map.serialize_entry(
            "observed_timestamp",
            e.observed_timestamp.format_rfc3339(&mut buf),
        )?;
        map.serialize_entry("event_type", &e.event_type)?;
        map.serialize_entry("severity", &e.severity.text)?;
        map.serialize_entry("severity_number", &e.severity.number)?;
        if let Some(source) = &e.source {
            map.serialize_entry("source", source)?;
        }
        if let Some(summary) = &e.summary {
            map.serialize_entry("summary", summary)?;
        }
        map.serialize_entry("attributes", &e.attributes)?;
        if !e.resource.is_empty() {
            map.serialize_entry("resource", &e.resource)?;
        }
        if let Some(signature) = &e.signature {
            map.serialize_entry("signature", signature)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_through_the_fields_drops_the_kept_form_and_the_form_never_counts_in_equality() {
        let mut event = Event::new("login");
        let plain = event.clone();
        event.keep_written_json(b"{\"kept\":true}".to_vec());
        assert_eq!(event.to_json_bytes(), b"{\"kept\":true}");
        assert_eq!(event, plain, "the kept form is not part of equality");
        // Reading keeps it.
        assert_eq!(event.event_type, "login");
        assert!(event.written_json().is_some());
        // Any change drops it: the fields are serialized again.
        event.attributes.insert("user".into(), "alice".into());
        assert!(event.written_json().is_none());
        let value: Value = serde_json::from_slice(&event.to_json_bytes()).unwrap();
        assert_eq!(value["attributes"]["user"], "alice");
        assert_ne!(event, plain, "a changed field makes events unequal");
    }

    fn sample() -> Event {
        let mut event = Event::new("policy_violation");
        event.source = Some("toktra".into());
        event.summary = Some("blocked a prompt".into());
        event.attributes.insert("host".into(), "gw-1".into());
        event
            .attributes
            .insert("user".into(), serde_json::json!({"email": "a@example.com"}));
        event
            .attributes
            .insert("score".into(), serde_json::json!(0.5));
        event
    }

    #[test]
    fn a_compact_event_keeps_its_encoded_form_and_scalars_and_frees_its_tree() {
        let whole = sample();
        let mut event = whole.clone();
        event.compact();
        assert!(event.is_compact());
        // The tree is gone from the held fields; what is held is the JSON form.
        assert!(event.fields.attributes.is_empty() && event.fields.summary.is_none());
        assert!(event.fields.attributes.raw_json().is_none());
        assert_eq!(event.written_json(), Some(&whole.to_json_bytes()[..]));
        assert_eq!(event.estimated_size(), whole.to_json_bytes().len());
        // Scalars and the host are read without parsing anything back.
        let head = event.head();
        assert_eq!(head.event_type, "policy_violation");
        assert_eq!(head.source, Some("toktra"));
        assert_eq!(head.event_id, &whole.event_id);
        assert_eq!(event.host(), Some("gw-1"));
        let restored = match &event.compact {
            Some(state) => state.restored.get().is_some(),
            None => true,
        };
        assert!(!restored, "reading the head parses nothing back");
        // Reading a freed field parses the form back: the event equals the whole one.
        assert_eq!(event.attributes, whole.attributes);
        assert_eq!(event, whole);
        assert!(event.is_compact(), "reading keeps it compact");
    }

    #[test]
    fn changing_a_compact_event_makes_it_whole_and_drops_its_form() {
        let mut event = sample();
        event.compact();
        event.attributes.insert("extra".into(), true.into());
        assert!(!event.is_compact());
        assert!(event.written_json().is_none());
        assert_eq!(event.attributes["user"]["email"], "a@example.com");
        assert_eq!(event.attributes["extra"], true);
        let fields = event.clone().into_fields();
        assert_eq!(fields.summary.as_deref(), Some("blocked a prompt"));
    }

    #[test]
    fn a_signed_events_kept_form_is_what_its_compact_form_holds() {
        let mut event = sample();
        let whole = event.clone();
        event.keep_written_json(event.to_json_bytes());
        let kept = event.written_json().map(<[u8]>::to_vec);
        event.compact();
        assert_eq!(event.written_json().map(<[u8]>::to_vec), kept);
        assert_eq!(event.into_fields(), whole.into_fields());
    }

    #[test]
    fn a_signature_reads_and_writes_as_strings_whatever_holds_its_members() {
        let hex = "ab".repeat(32);
        let zeros = "0".repeat(64);
        let signature = Signature {
            alg: SignatureText::from_static("HMAC-SHA256"),
            kid: SignatureText::from(Arc::<str>::from("k1")),
            value: SignatureText::from(hex.as_str()),
            prev: Some(SignatureText::from(zeros.clone())),
        };
        assert!(matches!(signature.value.0, TextRepr::Ascii64(_)));
        let json = serde_json::to_string(&signature).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"alg":"HMAC-SHA256","kid":"k1","value":"{hex}","prev":"{zeros}"}}"#)
        );
        let back: Signature = serde_json::from_str(&json).unwrap();
        assert_eq!(back, signature);
        assert_eq!(back.kid, "k1");
        assert_eq!(back.prev.as_deref(), Some(zeros.as_str()));
        // Any string reads back as it was sent: short, long, escaped, 64 bytes not all ASCII.
        for text in [
            String::new(),
            "00".into(),
            "x".repeat(65),
            "é".repeat(32),
            "\"q\\\n".into(),
        ] {
            let sent = serde_json::json!({"alg": text, "kid": text, "value": text});
            let read: Signature = serde_json::from_value(sent.clone()).unwrap();
            assert_eq!(read.value, text);
            assert_eq!(serde_json::to_value(&read).unwrap(), sent);
        }
        // Not a string: the error a `String` member gave.
        let error = serde_json::from_str::<Signature>(r#"{"alg":5,"kid":"k","value":"v"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("invalid type: integer `5`, expected a string"),
            "{error}"
        );
        // The JSON form with a signature reads back (what a disk queue stores).
        let mut event = Event::new("login");
        event.signature = Some(Box::new(signature));
        let bytes = event.to_json_bytes();
        let read = crate::ingest::event_from_json_form(&bytes).unwrap();
        assert_eq!(read.signature, event.signature);
        assert_eq!(Event::from(read).to_json_bytes(), bytes);
    }
}
