//! `schema: ecs`: Elastic Common Schema 8.x (fields and types as in ECS 8.17's `ecs_flat.yml`).
//!
//! Written as nested objects (`{"event":{"id":…}}`). Which attribute lands where is the table
//! [`slot_of`] (documented in `docs/schemas.md`); an attribute is mapped only when its value has
//! the ECS type (a string for keywords, an IP address for `*.ip`, a port number for `*.port`),
//! and the first of several candidates wins. Everything not mapped goes under `siemrelay`:
//! `siemrelay.attributes` (the remaining attributes, nested as sent), `siemrelay.resource`,
//! `siemrelay.signature`, `siemrelay.signed_json`, and `siemrelay.event_type`.

use super::{Members, SIGNED_JSON, resource_host, signed_json, text};
use serde::ser::{Serialize, SerializeMap, Serializer};
use siemrelay_core::{Event, Map, Value};

/// The ECS version the shape follows (`ecs.version`).
pub const ECS_VERSION: &str = "8.17.0";

/// ECS fields an attribute can fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// `user.email`.
    UserEmail,
    /// `user.name`.
    UserName,
    /// `user.id`.
    UserId,
    /// `event.action`.
    Action,
    /// `rule.name`.
    RuleName,
    /// `rule.id`.
    RuleId,
    /// `source.ip`.
    SourceIp,
    /// `source.port`.
    SourcePort,
    /// `destination.ip`.
    DestinationIp,
    /// `destination.port`.
    DestinationPort,
    /// `observer.name`.
    ObserverName,
    /// `organization.id`.
    OrganizationId,
    /// `user_agent.original`.
    UserAgent,
    /// `host.name`.
    HostName,
    /// `labels` (an object of scalars).
    Labels,
}

const SLOTS: usize = 15;

/// Where attribute `key` with `value` goes in ECS, if anywhere.
pub fn slot_of(key: &str, value: &Value) -> Option<Slot> {
    let is_text = value.is_string();
    let slot = match key {
        "user_email" | "email" | "user.email" if is_text => Slot::UserEmail,
        "user_name" | "username" | "user" | "user.name" if is_text => Slot::UserName,
        "user_id" | "user.id" if is_text => Slot::UserId,
        "action" if is_text => Slot::Action,
        "policy_name" | "policy" | "rule_name" | "rule.name" if is_text => Slot::RuleName,
        "policy_id" | "rule_id" | "rule.id" if is_text => Slot::RuleId,
        "source_ip" | "src_ip" | "client_ip" | "ip" | "source.ip" if is_ip(value) => Slot::SourceIp,
        "source_port" | "src_port" | "client_port" | "source.port" if is_port(value) => {
            Slot::SourcePort
        }
        "destination_ip" | "dest_ip" | "dst_ip" | "destination.ip" if is_ip(value) => {
            Slot::DestinationIp
        }
        "destination_port" | "dest_port" | "dst_port" | "destination.port" if is_port(value) => {
            Slot::DestinationPort
        }
        "gateway_id" | "observer.name" if is_text => Slot::ObserverName,
        "org_id" | "tenant_id" | "organization_id" | "organization.id" if is_text => {
            Slot::OrganizationId
        }
        "user_agent" | "user_agent.original" if is_text => Slot::UserAgent,
        "host" | "hostname" | "host.name" if is_text => Slot::HostName,
        "tags" | "labels" if is_scalar_object(value) => Slot::Labels,
        _ => return None,
    };
    Some(slot)
}

fn is_ip(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok())
}

/// An object whose members are all strings, numbers or booleans (so `labels` loses nothing).
fn is_scalar_object(value: &Value) -> bool {
    value.as_object().is_some_and(|map| {
        map.values()
            .all(|v| v.is_string() || v.is_number() || v.is_boolean())
    })
}

fn is_port(value: &Value) -> bool {
    value.as_u64().is_some_and(|p| p <= 65_535)
}

/// The attributes of one event sorted into ECS fields: the first candidate per slot.
struct Slots<'a>([Option<&'a Value>; SLOTS]);

impl<'a> Slots<'a> {
    fn of(attributes: &'a Map) -> Slots<'a> {
        let mut slots = [None; SLOTS];
        for (key, value) in attributes {
            if let Some(slot) = slot_of(key, value) {
                slots[slot as usize].get_or_insert(value);
            }
        }
        Slots(slots)
    }

    fn get(&self, slot: Slot) -> Option<&'a Value> {
        self.0[slot as usize]
    }

    fn text(&self, slot: Slot) -> Option<&'a str> {
        self.get(slot).and_then(text)
    }

    /// True when `value` (attribute `key`) was taken by a slot.
    fn took(&self, key: &str, value: &Value) -> bool {
        slot_of(key, value)
            .and_then(|slot| self.get(slot))
            .is_some_and(|taken| std::ptr::eq(taken, value))
    }
}

/// `event.kind`, `event.category`, `event.type` (before the action's say) and `event.outcome`
/// for an event type.
pub fn classify(
    event_type: &str,
) -> (
    &'static str,
    &'static [&'static str],
    &'static str,
    Option<&'static str>,
) {
    match event_type.to_ascii_lowercase().as_str() {
        "policy_violation" | "blocked" | "escalated" | "anomaly" | "detection" | "alert" => {
            ("alert", &["intrusion_detection"], "info", None)
        }
        "request" | "redacted" => ("event", &["intrusion_detection"], "info", None),
        "lockout" | "account_locked" | "user.locked" => {
            ("event", &["authentication"], "info", Some("failure"))
        }
        "login" | "user.login" => ("event", &["authentication"], "start", Some("success")),
        "login_failed" | "user.login_failed" => {
            ("event", &["authentication"], "start", Some("failure"))
        }
        "test_connection" => ("event", &["configuration"], "info", None),
        _ => ("event", &[], "info", None),
    }
}

/// `event.type` from the event's `action` when it says allowed or denied.
fn type_of_action(action: Option<&str>) -> Option<&'static str> {
    match action?.to_ascii_lowercase().as_str() {
        "block" | "blocked" | "deny" | "denied" | "reject" | "rejected" | "drop" => Some("denied"),
        "allow" | "allowed" | "permit" | "permitted" | "pass" => Some("allowed"),
        _ => None,
    }
}

/// A small object of optional members (at most three), written only when one is present.
struct Object<'a> {
    members: [Option<(&'static str, ObjectValue<'a>)>; 3],
    len: usize,
}

enum ObjectValue<'a> {
    Text(&'a str),
    Json(&'a Value),
}

impl<'a> Object<'a> {
    fn new() -> Object<'a> {
        Object {
            members: [None, None, None],
            len: 0,
        }
    }

    fn push(mut self, key: &'static str, value: ObjectValue<'a>) -> Object<'a> {
        self.members[self.len] = Some((key, value));
        self.len += 1;
        self
    }

    fn text(self, key: &'static str, value: Option<&'a str>) -> Object<'a> {
        match value {
            Some(value) => self.push(key, ObjectValue::Text(value)),
            None => self,
        }
    }

    fn json(self, key: &'static str, value: Option<&'a Value>) -> Object<'a> {
        match value {
            Some(value) => self.push(key, ObjectValue::Json(value)),
            None => self,
        }
    }

    fn write<M: SerializeMap>(&self, key: &str, m: &mut Members<'_, M>) -> Result<(), M::Error> {
        if self.len == 0 {
            return Ok(());
        }
        m.entry(key, self)
    }
}

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (key, value) in self.members.iter().flatten() {
            match value {
                ObjectValue::Text(text) => map.serialize_entry(key, text)?,
                ObjectValue::Json(json) => map.serialize_entry(key, json)?,
            }
        }
        map.end()
    }
}

/// `event.*`.
struct EventObject<'a> {
    e: &'a Event,
    action: &'a str,
    kind: &'static str,
    category: &'static [&'static str],
    kind_type: &'static str,
    outcome: Option<&'static str>,
}

impl Serialize for EventObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.e;
        let mut map = serializer.serialize_map(None)?;
        let mut id_buf = uuid::Uuid::encode_buffer();
        map.serialize_entry("id", e.event_id.hyphenated().encode_lower(&mut id_buf))?;
        map.serialize_entry("kind", self.kind)?;
        if !self.category.is_empty() {
            map.serialize_entry("category", self.category)?;
        }
        map.serialize_entry("type", &[self.kind_type])?;
        map.serialize_entry("action", self.action)?;
        map.serialize_entry("severity", &e.severity.number)?;
        let mut buf = siemrelay_core::time::Rfc3339Buf::default();
        map.serialize_entry("created", e.observed_timestamp.format_rfc3339(&mut buf))?;
        if let Some(source) = &e.source {
            map.serialize_entry("provider", source)?;
        }
        if let Some(outcome) = self.outcome {
            map.serialize_entry("outcome", outcome)?;
        }
        map.end()
    }
}

/// `labels`: the scalar members of a `tags` object, as strings (ECS `labels` are keywords).
struct Labels<'a>(&'a Map);

impl Serialize for Labels<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0 {
            match value {
                Value::String(s) => map.serialize_entry(key, s)?,
                Value::Number(n) => map.serialize_entry(key, &n.to_string())?,
                Value::Bool(b) => map.serialize_entry(key, if *b { "true" } else { "false" })?,
                _ => {}
            }
        }
        map.end()
    }
}

/// `siemrelay.*`: what ECS has no field for.
struct Rest<'a> {
    e: &'a Event,
    slots: &'a Slots<'a>,
    signed: Option<String>,
}

/// The attributes no slot took (and a `tags` object's non-scalar members stay with it).
struct RestAttributes<'a> {
    attributes: &'a Map,
    slots: &'a Slots<'a>,
}

impl Serialize for RestAttributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.attributes {
            if !self.slots.took(key, value) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl Serialize for Rest<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.e;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("event_type", &e.event_type)?;
        let rest = RestAttributes {
            attributes: &e.attributes,
            slots: self.slots,
        };
        if e.attributes.iter().any(|(k, v)| !self.slots.took(k, v)) {
            map.serialize_entry("attributes", &rest)?;
        }
        if !e.resource.is_empty() {
            map.serialize_entry("resource", &e.resource)?;
        }
        if let Some(signature) = &e.signature {
            map.serialize_entry("signature", signature)?;
        }
        if let Some(signed) = &self.signed {
            map.serialize_entry(SIGNED_JSON, signed)?;
        }
        map.end()
    }
}

/// Writes the ECS members of `e`.
pub(super) fn members<M: SerializeMap>(e: &Event, mut m: Members<'_, M>) -> Result<(), M::Error> {
    let slots = Slots::of(&e.attributes);
    let mut buf = siemrelay_core::time::Rfc3339Buf::default();
    m.entry("@timestamp", e.timestamp.format_rfc3339(&mut buf))?;
    m.entry("ecs", &Object::new().text("version", Some(ECS_VERSION)))?;
    let action = slots.text(Slot::Action);
    let (kind, category, kind_type, outcome) = classify(&e.event_type);
    let kind_type = type_of_action(action)
        .filter(|_| category.contains(&"intrusion_detection") || category.is_empty())
        .unwrap_or(kind_type);
    m.entry(
        "event",
        &EventObject {
            e,
            action: action.unwrap_or(&e.event_type),
            kind,
            category,
            kind_type,
            outcome,
        },
    )?;
    m.entry("log", &Object::new().text("level", Some(&e.severity.text)))?;
    if let Some(summary) = &e.summary {
        m.entry("message", summary)?;
    }
    Object::new()
        .text("email", slots.text(Slot::UserEmail))
        .text("name", slots.text(Slot::UserName))
        .text("id", slots.text(Slot::UserId))
        .write("user", &mut m)?;
    Object::new()
        .text("ip", slots.text(Slot::SourceIp))
        .json("port", slots.get(Slot::SourcePort))
        .write("source", &mut m)?;
    Object::new()
        .text("ip", slots.text(Slot::DestinationIp))
        .json("port", slots.get(Slot::DestinationPort))
        .write("destination", &mut m)?;
    Object::new()
        .text("name", slots.text(Slot::HostName))
        .write("host", &mut m)?;
    Object::new()
        .text("product", e.source.as_deref())
        .text("name", slots.text(Slot::ObserverName))
        .text("hostname", resource_host(e))
        .write("observer", &mut m)?;
    Object::new()
        .text("id", slots.text(Slot::OrganizationId))
        .write("organization", &mut m)?;
    Object::new()
        .text("name", slots.text(Slot::RuleName))
        .text("id", slots.text(Slot::RuleId))
        .write("rule", &mut m)?;
    Object::new()
        .text("original", slots.text(Slot::UserAgent))
        .write("user_agent", &mut m)?;
    if let Some(Value::Object(tags)) = slots.get(Slot::Labels) {
        m.entry("labels", &Labels(tags))?;
    }
    m.entry(
        "siemrelay",
        &Rest {
            e,
            slots: &slots,
            signed: signed_json(e),
        },
    )
}
