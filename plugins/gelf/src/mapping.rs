//! From siemrelay's event JSON form to a GELF 1.1 message.
//!
//! | GELF field | from |
//! |---|---|
//! | `version` | `"1.1"` |
//! | `host` | `source`, else the resource's `host.name`, else `default_host` |
//! | `short_message` | the first line of `summary`, else `event_type` |
//! | `full_message` | the whole `summary`, only when it has several lines |
//! | `timestamp` | `timestamp` as Unix seconds with milliseconds (`1795165200.123`) |
//! | `level` | syslog level from `severity_number` (see [`syslog_level`]) |
//! | `_event_id`, `_event_type`, `_severity` | `event_id`, `event_type`, severity text |
//! | `_<key>` | each attribute, nested keys joined with `_` (`user.email` → `_user_email`) |
//! | `_resource_<key>` | each resource attribute, flattened the same way |
//!
//! Field names keep only `[A-Za-z0-9_.-]` (other characters become `_`); `_id` (reserved by
//! GELF) is sent as `_attr_id`. Values: strings and numbers as they are, booleans as `"true"` /
//! `"false"`, arrays as JSON text; nulls are left out. The fixed fields win over attributes of the
//! same name.

use serde_json::{Map, Value};
use siemrelay_plugin_sdk::{Event, parse_rfc3339};

/// The syslog level (0–7) of an OpenTelemetry severity number:
/// FATAL (21–24) → 2 critical, ERROR (17–20) → 3 error, WARN (13–16) → 4 warning,
/// INFO (9–12) and unspecified (0) → 6 informational, TRACE/DEBUG (1–8) → 7 debug.
pub fn syslog_level(severity_number: u8) -> u8 {
    match severity_number {
        21.. => 2,
        17..=20 => 3,
        13..=16 => 4,
        1..=8 => 7,
        _ => 6,
    }
}

/// The GELF message for one event.
pub fn to_gelf(event: &Event, default_host: &str) -> Map<String, Value> {
    let mut gelf = Map::new();
    gelf.insert("version".into(), "1.1".into());
    let host = event
        .source
        .as_deref()
        .filter(|s| !s.is_empty())
        .or_else(|| event.resource.get("host.name").and_then(Value::as_str))
        .unwrap_or(default_host);
    gelf.insert("host".into(), host.into());
    let summary = event.summary.as_deref().filter(|s| !s.trim().is_empty());
    match summary {
        Some(text) => {
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or(text);
            gelf.insert("short_message".into(), first.into());
            if text.trim_end().contains('\n') {
                gelf.insert("full_message".into(), text.into());
            }
        }
        None => {
            gelf.insert("short_message".into(), event.event_type.as_str().into());
        }
    }
    if let Some((seconds, nanos)) = parse_rfc3339(&event.timestamp) {
        let millis = i64::from(nanos / 1_000_000);
        let value = (seconds * 1000 + millis) as f64 / 1000.0;
        if let Some(number) = serde_json::Number::from_f64(value) {
            gelf.insert("timestamp".into(), Value::Number(number));
        }
    }
    gelf.insert("level".into(), syslog_level(event.severity_number).into());
    gelf.insert("_event_id".into(), event.event_id.as_str().into());
    gelf.insert("_event_type".into(), event.event_type.as_str().into());
    if let Some(severity) = &event.severity {
        gelf.insert("_severity".into(), severity.as_str().into());
    }
    let mut name = String::from("_");
    flatten(&event.attributes, &mut name, &mut gelf);
    let mut name = String::from("_resource_");
    flatten(&event.resource, &mut name, &mut gelf);
    gelf
}

/// Adds `map`'s leaves as fields named `prefix` + flattened key (`prefix` ends in `_`).
fn flatten(map: &Map<String, Value>, prefix: &mut String, gelf: &mut Map<String, Value>) {
    let base = prefix.len();
    for (key, value) in map {
        prefix.truncate(base);
        prefix.extend(key.chars().map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        }));
        match value {
            Value::Null => {}
            Value::Object(inner) => {
                prefix.push('_');
                flatten(inner, prefix, gelf);
            }
            leaf => {
                let name = if prefix == "_id" {
                    "_attr_id".to_string()
                } else {
                    prefix.clone()
                };
                if gelf.contains_key(&name) {
                    continue;
                }
                let value = match leaf {
                    Value::Bool(b) => Value::String(b.to_string()),
                    Value::Array(_) => Value::String(leaf.to_string()),
                    other => other.clone(),
                };
                gelf.insert(name, value);
            }
        }
    }
    prefix.truncate(base);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: Value) -> Event {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn maps_the_documented_fields() {
        let e = event(json!({
            "event_id": "0192f0c1-0000-7000-8000-000000000001",
            "timestamp": "2026-11-20T09:00:00.123456Z",
            "event_type": "policy_violation",
            "severity": "high", "severity_number": 17,
            "source": "toktra",
            "summary": "blocked upload\nfile: secrets.txt",
            "attributes": {"user": {"email": "a@b.c", "id": 7}, "id": "x", "tags": ["a", "b"],
                           "allowed": false, "gone": null, "event_type": "spoof", "odd key!": 1},
            "resource": {"host.name": "gw-1", "service": {"name": "gateway"}}
        }));
        let gelf = to_gelf(&e, "siemrelay");
        assert_eq!(
            Value::Object(gelf),
            json!({
                "version": "1.1", "host": "toktra",
                "short_message": "blocked upload",
                "full_message": "blocked upload\nfile: secrets.txt",
                "timestamp": 1795165200.123, "level": 3,
                "_event_id": "0192f0c1-0000-7000-8000-000000000001",
                "_event_type": "policy_violation", "_severity": "high",
                "_user_email": "a@b.c", "_user_id": 7, "_attr_id": "x", "_tags": "[\"a\",\"b\"]",
                "_allowed": "false", "_odd_key_": 1,
                "_resource_host.name": "gw-1", "_resource_service_name": "gateway"
            })
        );
    }

    #[test]
    fn falls_back_to_event_type_and_host_name() {
        let e = event(json!({
            "event_id": "1", "timestamp": "2026-11-20T09:00:00Z", "event_type": "lockout",
            "severity_number": 0, "resource": {"host.name": "idp-3"}
        }));
        let gelf = to_gelf(&e, "siemrelay");
        assert_eq!(gelf["short_message"], "lockout");
        assert_eq!(gelf["host"], "idp-3");
        assert_eq!(gelf["level"], 6);
        assert!(!gelf.contains_key("full_message"));
        let bare = event(json!({"event_id": "2", "timestamp": "bad", "event_type": "t"}));
        let gelf = to_gelf(&bare, "relay-a");
        assert_eq!(gelf["host"], "relay-a");
        assert!(!gelf.contains_key("timestamp"));
    }

    #[test]
    fn levels_follow_the_table() {
        let levels: Vec<u8> = [0, 1, 5, 9, 12, 13, 17, 21, 24]
            .into_iter()
            .map(syslog_level)
            .collect();
        assert_eq!(levels, [6, 7, 7, 6, 6, 4, 3, 2, 2]);
    }
}
