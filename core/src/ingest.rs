//! Turning received JSON into events: body framing (one object, an array, NDJSON), the
//! well-known fields of the JSON form, optional field mapping, and where every other field lands.
//!
//! Rules (documented in the README):
//! - Every top-level field that is not well-known is kept under `attributes` with its JSON type.
//!   If an explicit `attributes` object already holds that key, the top-level value is kept under
//!   `attributes._toplevel.<key>`; nothing is dropped.
//! - A well-known field whose value does not fit (an `event_id` that is not a UUID, an unknown
//!   severity name, …) is kept unchanged under `attributes.<field>` and the event gets a
//!   `attributes.mapping_error` note; with `strict: true` the request is rejected instead.
//! - With a mapping (`mapping: { event_id: id, … }`) the mapped source field is moved into the
//!   well-known field; a top-level field of the well-known name that is displaced by a mapping is
//!   kept under `attributes`.

use crate::event::{Event, Map, Signature, Value};
use crate::path::AttrPath;
use crate::severity::Severity;
use crate::time::Timestamp;
use serde::Deserialize;
use std::borrow::Cow;
use uuid::Uuid;

/// Key under `attributes` for top-level fields that clash with explicit attributes.
pub const TOPLEVEL_COLLISION_KEY: &str = "_toplevel";
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
}

/// How a receiver turns JSON objects into events.
#[derive(Clone, Debug, Default)]
pub struct IngestOptions {
    /// Sender field → well-known field.
    pub mapping: FieldMapping,
    /// Reject an event (and so its request) whose mapped or well-known field does not fit.
    pub strict: bool,
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

/// Builds an event from one JSON object of a request.
pub fn event_from_object<'a>(
    object: impl Into<Members<'a>>,
    options: &IngestOptions,
    observed: Timestamp,
) -> Result<Ingested, IngestError> {
    let mut members = object.into().0;
    let mut event = Event {
        event_id: Uuid::nil(),
        timestamp: Timestamp(0),
        observed_timestamp: observed,
        event_type: String::new(),
        severity: Severity::default(),
        source: None,
        summary: None,
        attributes: Map::new(),
        resource: Map::new(),
        signature: None,
        written_json: Default::default(),
        completion: None,
    };
    let mut misfits: Vec<Misfit> = Vec::new();
    let mut displaced: Vec<(String, Value)> = Vec::new();

    // Take mapped source fields out first so they do not also land in attributes.
    let mut mapped: Vec<(&'static str, String, Value)> = Vec::new();
    if !options.mapping.is_empty() {
        let mut object: Map = members
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v))
            .collect();
        for (target, source) in options.mapping.entries() {
            match source.remove(&mut object) {
                Some(value) => mapped.push((target, source.to_string(), value)),
                None => misfits.push(Misfit {
                    key: source.to_string(),
                    value: None,
                    reason: format!("mapped field {source} for {target} is missing"),
                }),
            }
        }
        members = object
            .into_iter()
            .map(|(k, v)| (Cow::Owned(k), v))
            .collect();
    }
    let is_mapped = |name: &str| mapped.iter().any(|(target, _, _)| *target == name);

    let mut extras: Vec<(String, Value)> = Vec::new();
    let mut severity_number: Option<Value> = None;
    for (key, value) in members {
        if is_mapped(&key) {
            displaced.push((key.into_owned(), value));
            continue;
        }
        match key.as_ref() {
            "attributes" => match value {
                Value::Object(map) => event.attributes = map,
                other => misfits.push(Misfit {
                    reason: "attributes must be a JSON object".into(),
                    key: key.into_owned(),
                    value: Some(other),
                }),
            },
            "resource" => match value {
                Value::Object(map) => event.resource = map,
                other => misfits.push(Misfit {
                    reason: "resource must be a JSON object".into(),
                    key: key.into_owned(),
                    value: Some(other),
                }),
            },
            "signature" => match Signature::deserialize(&value) {
                Ok(signature) => event.signature = Some(signature),
                Err(e) => misfits.push(Misfit {
                    reason: format!("signature: {e}"),
                    key: key.into_owned(),
                    value: Some(value),
                }),
            },
            "severity_number" => severity_number = Some(value),
            "event_id" | "timestamp" | "observed_timestamp" | "event_type" | "severity"
            | "source" | "summary" => {
                if let Err((reason, value)) = set_well_known(&mut event, &key, value) {
                    misfits.push(Misfit {
                        reason,
                        key: key.into_owned(),
                        value: Some(value),
                    });
                }
            }
            _ => extras.push((key.into_owned(), value)),
        }
    }
    for (target, source, value) in mapped {
        if let Err((reason, value)) = set_well_known(&mut event, target, value) {
            misfits.push(Misfit {
                reason: format!("mapped field {source} for {target}: {reason}"),
                key: source,
                value: Some(value),
            });
        }
    }
    if let Some(value) = severity_number {
        match value.as_i64().and_then(Severity::from_number) {
            Some(from_number) => {
                let text_given = event.severity.number != 0 || event.severity.text != "unspecified";
                event.severity.number = from_number.number;
                if !text_given {
                    event.severity.text = from_number.text;
                }
            }
            None => misfits.push(Misfit {
                key: "severity_number".into(),
                reason: "severity_number must be an integer 0-24".into(),
                value: Some(value),
            }),
        }
    }

    if options.strict
        && let Some(first) = misfits.first()
    {
        return Err(IngestError {
            field: first.key.clone(),
            reason: first.reason.clone(),
        });
    }

    for (key, value) in extras.into_iter().chain(displaced) {
        keep_attribute(&mut event.attributes, key, value);
    }
    let mapping_errors = misfits.len();
    if !misfits.is_empty() {
        let note = misfits
            .iter()
            .map(|m| m.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        for misfit in misfits {
            if let Some(value) = misfit.value {
                keep_attribute(&mut event.attributes, misfit.key, value);
            }
        }
        keep_attribute(
            &mut event.attributes,
            MAPPING_ERROR_KEY.to_string(),
            Value::String(note),
        );
    }

    if event.event_id.is_nil() {
        event.event_id = Uuid::now_v7();
    }
    if event.timestamp.0 == 0 {
        event.timestamp = observed;
    }
    if event.event_type.is_empty() {
        event.event_type = String::from("unknown");
    }
    Ok(Ingested {
        event,
        mapping_errors,
    })
}

/// Inserts `key` into attributes, moving a clashing value under `_toplevel` so nothing is lost.
fn keep_attribute(attributes: &mut Map, key: String, value: Value) {
    if attributes.contains_key(&key) {
        let slot = attributes
            .entry(TOPLEVEL_COLLISION_KEY)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = slot {
            map.insert(key, value);
        }
    } else {
        attributes.insert(key, value);
    }
}

/// Sets one well-known field from a JSON value (moving strings, not copying them), or says
/// why it does not fit and hands the value back.
fn set_well_known(event: &mut Event, field: &str, value: Value) -> Result<(), (String, Value)> {
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

/// A body that is not valid JSON of the expected shape, with where it went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    /// Human-readable reason with line and column (or element index).
    pub message: String,
}

/// Splits a request body into JSON objects. The whole body fails if any part is malformed.
pub fn parse_body(body: &[u8], format: BodyFormat) -> Result<Vec<Members<'_>>, BodyError> {
    match format {
        BodyFormat::Json => {
            if let Ok(text) = std::str::from_utf8(body) {
                if let Ok(members) = serde_json::from_str::<Members<'_>>(text) {
                    return Ok(vec![members]);
                }
                if let Ok(objects) = serde_json::from_str::<Vec<Members<'_>>>(text) {
                    return Ok(objects);
                }
            }
            // Not an object or an array of objects: parse again only to say what is wrong.
            let value: Value = serde_json::from_slice(body).map_err(|e| BodyError {
                message: format!(
                    "malformed JSON at line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ),
            })?;
            match value {
                Value::Object(map) => Ok(vec![map.into()]),
                Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| match item {
                        Value::Object(map) => Ok(map.into()),
                        other => Err(BodyError {
                            message: format!(
                                "array element {index} is {}, expected a JSON object",
                                json_type_name(&other)
                            ),
                        }),
                    })
                    .collect(),
                other => Err(BodyError {
                    message: format!(
                        "body is {}, expected a JSON object or an array of objects",
                        json_type_name(&other)
                    ),
                }),
            }
        }
        BodyFormat::Ndjson => {
            // One UTF-8 check of the whole body costs far less than one per JSON string;
            // a valid body is then parsed as text, which serde_json does not check again.
            let text = std::str::from_utf8(body).ok();
            let mut objects = Vec::new();
            let mut start = 0;
            let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
            for (index, end) in ends.enumerate() {
                let (from, mut to) = (start, end);
                start = end + 1;
                if to > from && body[to - 1] == b'\r' {
                    to -= 1;
                }
                let line = &body[from..to];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let line_number = index + 1;
                // Line ends are ASCII, so `from..to` falls on character boundaries.
                let parsed = match text {
                    Some(text) => serde_json::from_str::<Members<'_>>(&text[from..to]),
                    None => serde_json::from_slice::<Members<'_>>(line),
                };
                if let Ok(members) = parsed {
                    objects.push(members);
                    continue;
                }
                // Not an object: parse again only to say what it is.
                match serde_json::from_slice::<Value>(line) {
                    Ok(Value::Object(map)) => objects.push(map.into()),
                    Ok(other) => {
                        return Err(BodyError {
                            message: format!(
                                "line {line_number} is {}, expected a JSON object",
                                json_type_name(&other)
                            ),
                        });
                    }
                    Err(e) => {
                        return Err(BodyError {
                            message: format!(
                                "malformed JSON at line {line_number}, column {}: {e}",
                                e.column()
                            ),
                        });
                    }
                }
            }
            Ok(objects)
        }
    }
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
            strict: false,
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
        assert_eq!(out.event.attributes["_toplevel"]["a"], json!(2));
    }

    #[test]
    fn body_framing_errors_name_the_position() {
        let err = parse_body(b"{\"a\":1}\n{\"b\":", BodyFormat::Ndjson).unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
        // Invalid UTF-8 is found in its line, not just somewhere in the body.
        let err = parse_body(b"{\"a\":1}\r\n{\"b\":\"\xff\"}\n", BodyFormat::Ndjson).unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
        let err = parse_body(b"[{}, 3]", BodyFormat::Json).unwrap_err();
        assert!(err.message.contains("element 1"), "{}", err.message);
        let err = parse_body(b"{\n \"a\": }", BodyFormat::Json).unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
        assert_eq!(parse_body(b"[{},{}]", BodyFormat::Json).unwrap().len(), 2);
        assert_eq!(
            parse_body(b"{}\r\n\n{}\n", BodyFormat::Ndjson)
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
            let objects = parse_body(body, format).unwrap();
            let event =
                event_from_object(objects[0].clone(), &IngestOptions::default(), Timestamp(1))
                    .unwrap()
                    .event;
            assert_eq!(event.attributes["user"], json!("ann"));
            assert_eq!(event.attributes["_toplevel"]["user"], json!("bob"));
        }
    }

    #[test]
    fn keys_borrow_from_the_body_unless_escaped() {
        let objects = parse_body(br#"{"plain":1,"esc\u0061ped":2}"#, BodyFormat::Ndjson).unwrap();
        let keys: Vec<(bool, &str)> = objects[0]
            .0
            .iter()
            .map(|(k, _)| (matches!(k, Cow::Borrowed(_)), k.as_ref()))
            .collect();
        assert_eq!(keys, [(true, "plain"), (false, "escaped")]);
    }
}
