//! What the key=value formats (LEEF, CEF) share: which attributes feed the well-known fields
//! (user, source and destination address, category), flattening attribute trees into
//! `tags.env`-style keys, value text, and the severity scales.

use serde::Deserialize;
use siemrelay_core::path::AttrPath;
use siemrelay_core::{Map, Value};
use std::fmt::Write as _;

/// `fields:` — the attributes that feed the well-known fields of LEEF and CEF. For each, the first
/// path present (and not null) wins.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldMapping {
    /// User name: LEEF `usrName`, CEF `suser`
    /// (default `user`, `user_name`, `username`, `user_email`, `actor.email`, `actor.name`).
    pub user: Vec<AttrPath>,
    /// Source address: `src` (an IP) or LEEF `srcHostName` / CEF `shost` (anything else)
    /// (default `src`, `src_ip`, `source_ip`, `client_ip`, `source.ip`).
    pub src: Vec<AttrPath>,
    /// Destination address: `dst` (an IP) or LEEF `dstHostName` / CEF `dhost` (anything else)
    /// (default `dst`, `dst_ip`, `destination_ip`, `server_ip`, `destination.ip`).
    pub dst: Vec<AttrPath>,
    /// Category: LEEF and CEF `cat` (default `category`; otherwise the event's `source`).
    pub category: Vec<AttrPath>,
}

fn paths(list: &[&str]) -> Vec<AttrPath> {
    list.iter()
        .filter_map(|p| AttrPath::parse(p).ok())
        .collect()
}

impl Default for FieldMapping {
    fn default() -> Self {
        FieldMapping {
            user: paths(&[
                "user",
                "user_name",
                "username",
                "user_email",
                "actor.email",
                "actor.name",
            ]),
            src: paths(&["src", "src_ip", "source_ip", "client_ip", "source.ip"]),
            dst: paths(&[
                "dst",
                "dst_ip",
                "destination_ip",
                "server_ip",
                "destination.ip",
            ]),
            category: paths(&["category"]),
        }
    }
}

/// The first of `paths` present in `attributes` with a non-null, non-map value.
pub fn first_value<'a>(attributes: &'a Map, paths: &[AttrPath]) -> Option<&'a Value> {
    paths
        .iter()
        .filter_map(|path| path.get(attributes))
        .find(|value| !value.is_null() && !value.is_object())
}

/// The text of a leaf value: strings as they are, numbers and booleans as written in JSON, arrays
/// and maps as compact JSON; `None` for null. Non-string text is built in `scratch`.
pub fn value_text<'a>(value: &'a Value, scratch: &'a mut String) -> Option<&'a str> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text),
        Value::Bool(flag) => Some(if *flag { "true" } else { "false" }),
        Value::Number(number) => {
            scratch.clear();
            let _ = write!(scratch, "{number}");
            Some(scratch)
        }
        Value::Array(_) | Value::Object(_) => {
            scratch.clear();
            scratch.push_str(&value.to_string());
            Some(scratch)
        }
    }
}

/// Calls `visit(key, value)` for every leaf of `map` (maps are walked, arrays are leaves), with
/// nested keys joined by `.` after `prefix`. `key` is a reused buffer.
pub fn flatten(map: &Map, key: &mut String, visit: &mut dyn FnMut(&str, &Value)) {
    let base = key.len();
    for (name, value) in map {
        key.truncate(base);
        if base > 0 {
            key.push('.');
        }
        key.push_str(name);
        match value {
            Value::Object(inner) => flatten(inner, key, visit),
            Value::Null => {}
            leaf => visit(key, leaf),
        }
    }
    key.truncate(base);
}

/// Severity on the 0–10 scale of CEF from an OpenTelemetry number: the words `low`, `medium`,
/// `high`, `critical` give 3, 5, 8, 10.
///
/// | OpenTelemetry | 0 (unspecified) | 1–8 trace/debug | 9 info | 10–12 low/INFO2-4 | 13–16 warn/medium | 17–20 error/high | 21–24 fatal/critical |
/// |---|---|---|---|---|---|---|---|
/// | CEF | 5 | 0 | 1 | 3 | 5 | 8 | 10 |
/// | LEEF `sev` | 5 | 1 | 2 | 3 | 5 | 8 | 10 |
pub fn severity_0_10(number: u8) -> u8 {
    match number {
        0 => 5,
        1..=8 => 0,
        9 => 1,
        10..=12 => 3,
        13..=16 => 5,
        17..=20 => 8,
        _ => 10,
    }
}

/// LEEF `sev` (1–10): the CEF scale with trace/debug at 1 and info at 2.
pub fn severity_1_10(number: u8) -> u8 {
    match number {
        1..=8 => 1,
        9 => 2,
        other => severity_0_10(other),
    }
}

/// Writes `2026-11-20T09:00:00.123` (UTC, milliseconds) for a time in nanoseconds.
pub fn write_datetime_millis(nanos: i64, out: &mut Vec<u8>) {
    use chrono::{Datelike, Timelike};
    use std::io::Write as _;
    let time = chrono::DateTime::from_timestamp_nanos(nanos);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.timestamp_subsec_millis().min(999)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flatten_walks_maps_and_keeps_arrays_as_leaves() {
        let map = json!({"a": 1, "tags": {"env": "prod", "deep": {"x": true}}, "list": [1, 2], "n": null, "empty": {}});
        let mut seen = Vec::new();
        let mut key = String::new();
        flatten(map.as_object().unwrap(), &mut key, &mut |k, v| {
            let mut scratch = String::new();
            seen.push(format!("{k}={}", value_text(v, &mut scratch).unwrap()));
        });
        assert_eq!(
            seen,
            ["a=1", "list=[1,2]", "tags.deep.x=true", "tags.env=prod"]
        );
    }

    #[test]
    fn mapping_takes_the_first_present_path() {
        let attrs = json!({"user_email": "a@x", "actor": {"email": "b@x"}, "user": null});
        let found = first_value(attrs.as_object().unwrap(), &FieldMapping::default().user);
        assert_eq!(found, Some(&json!("a@x")));
    }

    #[test]
    fn severity_words_map_to_documented_levels() {
        for (word, cef, leef) in [
            ("debug", 0, 1),
            ("info", 1, 2),
            ("low", 3, 3),
            ("medium", 5, 5),
            ("high", 8, 8),
            ("critical", 10, 10),
        ] {
            let number = siemrelay_core::severity::number_for_name(word).unwrap();
            assert_eq!(severity_0_10(number), cef, "{word}");
            assert_eq!(severity_1_10(number), leef, "{word}");
        }
        assert_eq!(severity_0_10(0), 5);
    }

    #[test]
    fn datetime_has_millisecond_precision() {
        let mut out = Vec::new();
        write_datetime_millis(1_718_000_000_123_456_789, &mut out);
        assert_eq!(out, b"2024-06-10T06:13:20.123");
    }
}
