//! The shared `schema` key: the shape an exporter gives each event's JSON form on the wire.
//!
//! - `native` (default): siemrelay's own JSON form (see `siemrelay_core::event`), copied as is.
//! - `flat`: the same fields with the sender's attributes lifted to the top level; an attribute
//!   whose name is a well-known field name stays nested under `attributes`.
//! - `ecs`: Elastic Common Schema 8.x ([`ecs`]).
//! - `ocsf`: Open Cybersecurity Schema Framework 1.1, one class per event type ([`ocsf`]).
//!
//! The shapes are written straight into the request body while it is encoded (a `Serialize`
//! over borrowed fields: no second tree per event); `native` costs one `match`. The mapping
//! tables are in `docs/schemas.md`.
//!
//! # Signed events
//! A signature covers the canonical form of the event's native JSON form. A reshaped signed
//! event carries that native form, byte for byte as it was signed, as a string (`signed_json`
//! in `flat`, `siemrelay.signed_json` in `ecs`, `unmapped.signed_json` in `ocsf`), so
//! `siemrelay verify --schema <shape>` checks the signature over it and that the visible
//! fields are exactly its reshaping.

pub mod ecs;
pub mod flat;
pub mod ocsf;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::{Deserialize, Serialize as DeriveSerialize};
use siemrelay_core::{Event, Value};

/// The name of the field that carries a signed event's native JSON form in a reshaped event.
pub const SIGNED_JSON: &str = "signed_json";

/// `schema:` on an exporter that sends JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, DeriveSerialize)]
#[serde(rename_all = "snake_case")]
pub enum Schema {
    /// siemrelay's own JSON form (default).
    #[default]
    Native,
    /// Attributes lifted to the top level.
    Flat,
    /// Elastic Common Schema 8.x.
    Ecs,
    /// OCSF 1.1.
    Ocsf,
}

impl Schema {
    /// Every schema, for messages and tests.
    pub const ALL: [Schema; 4] = [Schema::Native, Schema::Flat, Schema::Ecs, Schema::Ocsf];

    /// The config word (`native`, `flat`, `ecs`, `ocsf`).
    pub fn name(self) -> &'static str {
        match self {
            Schema::Native => "native",
            Schema::Flat => "flat",
            Schema::Ecs => "ecs",
            Schema::Ocsf => "ocsf",
        }
    }

    /// Parses a config word.
    pub fn parse(word: &str) -> Option<Schema> {
        Schema::ALL.into_iter().find(|s| s.name() == word)
    }

    /// Appends `event`'s JSON object in this shape to `out` (no trailing newline). `native`
    /// copies the kept form when there is one.
    pub fn write_event(self, event: &Event, out: &mut Vec<u8>) {
        match self {
            Schema::Native => event.write_json(out),
            // Writing into a Vec cannot fail, and every member serializes.
            _ => {
                let _ = serde_json::to_writer(&mut *out, &Shaped::new(event, self));
            }
        }
    }

    /// Writes `event`'s members in this shape into an open map, leaving out the members named
    /// in `skip` (an exporter that adds members of its own, e.g. Datadog's reserved ones).
    pub fn write_members<M: SerializeMap>(
        self,
        event: &Event,
        map: &mut M,
        skip: &[&str],
    ) -> Result<(), M::Error> {
        let members = Members { map, skip };
        match self {
            Schema::Native => native_members(event, members),
            Schema::Flat => flat::members(event, members),
            Schema::Ecs => ecs::members(event, members),
            Schema::Ocsf => ocsf::members(event, members),
        }
    }
}

/// An event in a shape, as a `Serialize` value (a JSON object).
pub struct Shaped<'a> {
    event: &'a Event,
    schema: Schema,
}

impl<'a> Shaped<'a> {
    /// `event` in `schema`.
    pub fn new(event: &'a Event, schema: Schema) -> Shaped<'a> {
        Shaped { event, schema }
    }
}

impl Serialize for Shaped<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.schema.write_members(self.event, &mut map, &[])?;
        map.end()
    }
}

/// A map being written, with the member names to leave out.
pub struct Members<'m, M> {
    map: &'m mut M,
    skip: &'m [&'m str],
}

impl<M: SerializeMap> Members<'_, M> {
    /// Writes one member unless its name is skipped.
    pub fn entry<V: Serialize + ?Sized>(&mut self, key: &str, value: &V) -> Result<(), M::Error> {
        if self.skip.contains(&key) {
            return Ok(());
        }
        self.map.serialize_entry(key, value)
    }
}

/// The native members, in the order of the native form.
fn native_members<M: SerializeMap>(e: &Event, mut m: Members<'_, M>) -> Result<(), M::Error> {
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
    m.entry("attributes", &e.attributes)?;
    if !e.resource.is_empty() {
        m.entry("resource", &e.resource)?;
    }
    if let Some(signature) = &e.signature {
        m.entry("signature", signature)?;
    }
    Ok(())
}

/// A signed event's native JSON form, as the string a reshaped event carries; `None` when the
/// event is not signed.
pub(crate) fn signed_json(event: &Event) -> Option<String> {
    event.signature.as_ref()?;
    let mut bytes = Vec::with_capacity(512);
    event.write_json(&mut bytes);
    // The JSON form is UTF-8 (serde_json writes only UTF-8).
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// A string attribute value.
fn text(value: &Value) -> Option<&str> {
    value.as_str()
}

/// The event's host: resource `host.name` (flat or nested).
fn resource_host(event: &Event) -> Option<&str> {
    event
        .resource
        .get("host.name")
        .and_then(Value::as_str)
        .or_else(|| {
            event
                .resource
                .get("host")
                .and_then(|h| h.get("name"))
                .and_then(Value::as_str)
        })
}

/// Reads a reshaped event back to the native JSON form it carries (a signed event's
/// `signed_json`), for `siemrelay verify --schema`.
pub fn carried_native_json(schema: Schema, shaped: &Value) -> Option<&str> {
    let carrier = match schema {
        Schema::Native => return None,
        Schema::Flat => shaped.get(SIGNED_JSON),
        Schema::Ecs => shaped.get("siemrelay").and_then(|s| s.get(SIGNED_JSON)),
        Schema::Ocsf => shaped.get("unmapped").and_then(|s| s.get(SIGNED_JSON)),
    };
    carrier.and_then(Value::as_str)
}

#[cfg(test)]
mod tests;
