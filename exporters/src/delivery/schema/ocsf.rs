//! `schema: ocsf`: the Open Cybersecurity Schema Framework 1.1, one class per event type.
//!
//! | event types | class | activity |
//! |---|---|---|
//! | `policy_violation`, `anomaly`, `blocked`, `escalated`, `detection`, `alert` | Detection Finding (2004, Findings) | 1 Create |
//! | `lockout`, `account_locked`, `login`, `login_failed` (and `user.` forms), with a user | Authentication (3002, IAM) | 1 Logon; status Failure or Success |
//! | anything else (the documented default) | Base Event (0, Uncategorized) | 99 Other |
//!
//! Every event has `class_uid`, `category_uid`, `activity_id`, `type_uid` (class × 100 +
//! activity), `severity_id`, `time` (epoch milliseconds), `metadata.product`,
//! `metadata.version` (the OCSF version) and `metadata.uid` (the event id); what the class has
//! no attribute for goes under `unmapped` (`event_type`, `severity`, the remaining
//! `attributes`, `resource`, `signature`, `signed_json`). Tables in `docs/schemas.md`.

use super::ecs::{Slot, slot_of};
use super::{Members, SIGNED_JSON, signed_json};
use serde::ser::{Serialize, SerializeMap, Serializer};
use siemrelay_core::{Event, Map, Value};

/// The OCSF version the shape follows (`metadata.version`).
pub const OCSF_VERSION: &str = "1.1.0";

/// An OCSF event class siemrelay writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Detection Finding (2004).
    DetectionFinding,
    /// Authentication (3002).
    Authentication,
    /// Base Event (0).
    BaseEvent,
}

impl Class {
    /// `class_uid`.
    pub fn uid(self) -> u32 {
        match self {
            Class::DetectionFinding => 2004,
            Class::Authentication => 3002,
            Class::BaseEvent => 0,
        }
    }

    /// `category_uid`.
    pub fn category_uid(self) -> u32 {
        self.uid() / 1000
    }

    fn names(self) -> (&'static str, &'static str) {
        match self {
            Class::DetectionFinding => ("Detection Finding", "Findings"),
            Class::Authentication => ("Authentication", "Identity & Access Management"),
            Class::BaseEvent => ("Base Event", "Uncategorized"),
        }
    }

    /// `activity_id` and its caption.
    fn activity(self) -> (u32, &'static str) {
        match self {
            Class::DetectionFinding => (1, "Create"),
            Class::Authentication => (1, "Logon"),
            Class::BaseEvent => (99, "Other"),
        }
    }
}

/// The class of an event type; an authentication type without any user falls back to the
/// Base Event (Authentication requires `user`).
pub fn class_of(event_type: &str, has_user: bool) -> Class {
    match event_type.to_ascii_lowercase().as_str() {
        "policy_violation" | "anomaly" | "blocked" | "escalated" | "detection" | "alert" => {
            Class::DetectionFinding
        }
        "lockout" | "account_locked" | "user.locked" | "login" | "user.login" | "login_failed"
        | "user.login_failed"
            if has_user =>
        {
            Class::Authentication
        }
        _ => Class::BaseEvent,
    }
}

/// `status_id`, `status` and `status_detail` of an authentication event type.
fn auth_status(event_type: &str) -> (u32, &'static str, Option<&'static str>) {
    match event_type.to_ascii_lowercase().as_str() {
        "login" | "user.login" => (1, "Success", None),
        "lockout" | "account_locked" | "user.locked" => (2, "Failure", Some("account locked")),
        _ => (2, "Failure", None),
    }
}

/// `severity_id` and its caption for an OpenTelemetry severity number.
pub fn severity_id(number: u8) -> (u32, &'static str) {
    match number {
        0 => (0, "Unknown"),
        1..=9 => (1, "Informational"),
        10..=12 => (2, "Low"),
        13..=16 => (3, "Medium"),
        17..=20 => (4, "High"),
        _ => (5, "Critical"),
    }
}

/// The attributes Authentication takes: user email, name and id, source IP.
struct Taken<'a> {
    email: Option<&'a Value>,
    name: Option<&'a Value>,
    id: Option<&'a Value>,
    ip: Option<&'a Value>,
}

impl<'a> Taken<'a> {
    fn of(attributes: &'a Map) -> Taken<'a> {
        let mut taken = Taken {
            email: None,
            name: None,
            id: None,
            ip: None,
        };
        for (key, value) in attributes {
            let slot = match slot_of(key, value) {
                Some(Slot::UserEmail) => &mut taken.email,
                Some(Slot::UserName) => &mut taken.name,
                Some(Slot::UserId) => &mut taken.id,
                Some(Slot::SourceIp) => &mut taken.ip,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        taken
    }

    fn has_user(&self) -> bool {
        self.email.is_some() || self.name.is_some() || self.id.is_some()
    }

    fn took(&self, value: &Value) -> bool {
        [self.email, self.name, self.id, self.ip]
            .into_iter()
            .flatten()
            .any(|taken| std::ptr::eq(taken, value))
    }
}

/// `user`: `name` (the user name, else the email), `uid`, `email_addr`.
struct User<'a>(&'a Taken<'a>);

impl Serialize for User<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut map = serializer.serialize_map(None)?;
        if let Some(name) = t.name.or(t.email) {
            map.serialize_entry("name", name)?;
        }
        if let Some(id) = t.id {
            map.serialize_entry("uid", id)?;
        }
        if let Some(email) = t.email {
            map.serialize_entry("email_addr", email)?;
        }
        map.end()
    }
}

/// `metadata`.
struct Metadata<'a>(&'a Event);

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let product = e.source.as_deref().unwrap_or("siemrelay");
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "product",
            &Pairs(&[("name", product), ("vendor_name", product)]),
        )?;
        map.serialize_entry("version", OCSF_VERSION)?;
        let mut id_buf = uuid::Uuid::encode_buffer();
        map.serialize_entry("uid", e.event_id.hyphenated().encode_lower(&mut id_buf))?;
        map.serialize_entry("logged_time", &e.observed_timestamp.as_epoch_millis())?;
        map.serialize_entry("log_provider", "siemrelay")?;
        map.end()
    }
}

/// A JSON object of string members.
struct Pairs<'a>(&'a [(&'a str, &'a str)]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `unmapped`.
struct Unmapped<'a> {
    e: &'a Event,
    taken: &'a Taken<'a>,
    signed: Option<String>,
}

/// The attributes the class did not take.
struct RestAttributes<'a>(&'a Map, &'a Taken<'a>);

impl Serialize for RestAttributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0.iter().filter(|(_, v)| !self.1.took(v)) {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Serialize for Unmapped<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.e;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("event_type", &e.event_type)?;
        map.serialize_entry("severity", &e.severity.text)?;
        if let Some(source) = &e.source {
            map.serialize_entry("source", source)?;
        }
        if e.attributes.values().any(|v| !self.taken.took(v)) {
            map.serialize_entry("attributes", &RestAttributes(&e.attributes, self.taken))?;
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

/// `finding_info` of a Detection Finding.
struct FindingInfo<'a>(&'a Event);

impl Serialize for FindingInfo<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut map = serializer.serialize_map(None)?;
        let mut id_buf = uuid::Uuid::encode_buffer();
        map.serialize_entry("uid", e.event_id.hyphenated().encode_lower(&mut id_buf))?;
        map.serialize_entry("title", e.summary.as_deref().unwrap_or(&e.event_type))?;
        map.serialize_entry("types", &[&e.event_type])?;
        map.end()
    }
}

/// Writes the OCSF members of `e`.
pub(super) fn members<M: SerializeMap>(e: &Event, mut m: Members<'_, M>) -> Result<(), M::Error> {
    let mut taken = Taken::of(&e.attributes);
    let class = class_of(&e.event_type, taken.has_user());
    if class != Class::Authentication {
        // Only Authentication places user and address attributes; elsewhere they stay in
        // `unmapped`.
        taken = Taken {
            email: None,
            name: None,
            id: None,
            ip: None,
        };
    }
    let (class_name, category_name) = class.names();
    let (activity_id, activity_name) = class.activity();
    let (severity_id, severity) = severity_id(e.severity.number);
    m.entry("class_uid", &class.uid())?;
    m.entry("class_name", class_name)?;
    m.entry("category_uid", &class.category_uid())?;
    m.entry("category_name", category_name)?;
    m.entry("activity_id", &activity_id)?;
    m.entry("activity_name", activity_name)?;
    m.entry(
        "type_uid",
        &(u64::from(class.uid()) * 100 + u64::from(activity_id)),
    )?;
    m.entry("severity_id", &severity_id)?;
    m.entry("severity", severity)?;
    m.entry("time", &e.timestamp.as_epoch_millis())?;
    if let Some(summary) = &e.summary {
        m.entry("message", summary)?;
    }
    m.entry("metadata", &Metadata(e))?;
    match class {
        Class::DetectionFinding => m.entry("finding_info", &FindingInfo(e))?,
        Class::Authentication => {
            let (status_id, status, detail) = auth_status(&e.event_type);
            m.entry("status_id", &status_id)?;
            m.entry("status", status)?;
            if let Some(detail) = detail {
                m.entry("status_detail", detail)?;
            }
            m.entry("user", &User(&taken))?;
            let service = e.source.as_deref().unwrap_or("unknown");
            m.entry("service", &Pairs(&[("name", service)]))?;
            if let Some(Value::String(ip)) = taken.ip {
                m.entry("src_endpoint", &Pairs(&[("ip", ip)]))?;
            }
        }
        Class::BaseEvent => {}
    }
    m.entry(
        "unmapped",
        &Unmapped {
            e,
            taken: &taken,
            signed: signed_json(e),
        },
    )
}
