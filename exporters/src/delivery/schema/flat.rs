//! `schema: flat`: the native fields with the sender's attributes lifted to the top level.
//!
//! Well-known fields keep their names and values (`event_id`, `timestamp`, …, `resource`,
//! `signature`). Each attribute becomes a top-level member of the same name and value, except
//! one whose name is a well-known field name (or [`super::SIGNED_JSON`]): those stay nested,
//! in order, under `attributes`. So `attributes.action` arrives as `action`, and a sender's own
//! `severity` is not confused with siemrelay's.

use super::{Members, SIGNED_JSON, signed_json};
use serde::ser::{Serialize, SerializeMap, Serializer};
use siemrelay_core::event::WELL_KNOWN_FIELDS;
use siemrelay_core::{Event, Map};

/// True when an attribute named `key` must stay nested under `attributes`.
pub fn stays_nested(key: &str) -> bool {
    key == SIGNED_JSON || WELL_KNOWN_FIELDS.contains(&key)
}

/// The attributes that stay nested (names that collide with well-known ones).
struct Colliding<'a>(&'a Map);

impl Serialize for Colliding<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0.iter().filter(|(k, _)| stays_nested(k)) {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Writes the flat members of `e`.
pub(super) fn members<M: SerializeMap>(e: &Event, mut m: Members<'_, M>) -> Result<(), M::Error> {
    let mut id_buf = uuid::Uuid::encode_buffer();
    m.entry(
        "event_id",
        e.event_id.hyphenated().encode_lower(&mut id_buf),
    )?;
    let mut buf = siemrelay_core::time::Rfc3339Buf::default();
    m.entry("timestamp", e.timestamp.format_rfc3339(&mut buf))?;
    m.entry(
        "observed_timestamp",
        e.observed_timestamp.format_rfc3339(&mut buf),
    )?;
    m.entry("event_type", &e.event_type)?;
    m.entry("severity", &e.severity.text)?;
    m.entry("severity_number", &e.severity.number)?;
    if let Some(source) = &e.source {
        m.entry("source", source)?;
    }
    if let Some(summary) = &e.summary {
        m.entry("summary", summary)?;
    }
    let mut colliding = false;
    for (key, value) in &e.attributes {
        if stays_nested(key) {
            colliding = true;
        } else {
            m.entry(key, value)?;
        }
    }
    if colliding {
        m.entry("attributes", &Colliding(&e.attributes))?;
    }
    if !e.resource.is_empty() {
        m.entry("resource", &e.resource)?;
    }
    if let Some(signature) = &e.signature {
        m.entry("signature", signature)?;
    }
    if let Some(native) = signed_json(e) {
        m.entry(SIGNED_JSON, &native)?;
    }
    Ok(())
}
