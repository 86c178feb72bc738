//! The security event every component shares, and its JSON form.
//!
//! JSON form (one object per event; NDJSON in files):
//! ```json
//! {"event_id":"0192…","timestamp":"2026-11-20T09:00:00.123456Z","observed_timestamp":"…",
//!  "event_type":"policy_violation","severity":"high","severity_number":17,"source":"toktra",
//!  "summary":"…","attributes":{…},"resource":{…},"signature":{…}}
//! ```
//! `source`, `summary`, `resource` and `signature` are left out when absent or empty.

use crate::severity::Severity;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Algorithm name, `HMAC-SHA256`.
    pub alg: String,
    /// Id of the key that signed the event.
    pub kid: String,
    /// Lowercase hex of the MAC.
    pub value: String,
    /// With chaining: hex SHA-256 of the previous signed event of the same pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
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
    /// Everything else the sender said, as a typed tree.
    pub attributes: Map,
    /// Attributes of the sender (OpenTelemetry resource).
    pub resource: Map,
    /// Signature added by the `sign` processor.
    pub signature: Option<Signature>,
}

/// One security event: its fields (read and changed through `Deref`/`DerefMut` to
/// [`EventFields`]), its kept JSON form (private: dropped by any change to the fields) and its
/// batch's completion token.
#[derive(Clone, Debug)]
pub struct Event {
    fields: EventFields,
    /// This event's JSON form, when already written (see [`WrittenJson`]).
    written_json: WrittenJson,
    /// The token of the batch this event came in, when its receiver waits for delivery
    /// (see [`crate::completion`]); `None` otherwise. Not part of the JSON form.
    pub completion: Option<crate::completion::Completion>,
}

/// Events are equal when their fields and completion tokens are; the kept JSON form is derived
/// from the fields and is left out.
impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.fields == other.fields && self.completion == other.completion
    }
}

impl std::ops::Deref for Event {
    type Target = EventFields;

    fn deref(&self) -> &EventFields {
        &self.fields
    }
}

/// Mutable access to the fields drops the kept JSON form: the next [`Event::write_json`]
/// serializes the changed fields.
impl std::ops::DerefMut for Event {
    fn deref_mut(&mut self) -> &mut EventFields {
        self.written_json.0 = None;
        &mut self.fields
    }
}

impl From<EventFields> for Event {
    fn from(fields: EventFields) -> Event {
        Event {
            fields,
            written_json: WrittenJson::default(),
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
            attributes: Map::new(),
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
    pub fn into_fields(self) -> EventFields {
        self.fields
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

    /// Rough size of the event's JSON form in bytes, for queue accounting.
    pub fn estimated_size(&self) -> usize {
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
            + map_size(&self.attributes)
            + map_size(&self.resource)
            + self.signature.as_ref().map_or(0, |s| 160 + s.value.len())
    }
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
}
