//! LEEF and CEF output checked by an independent parser written in Python from IBM's LEEF 2.0
//! guide and ArcSight's CEF implementation standard (`tests/python/leef_cef_parse.py`), not by
//! siemrelay's own code: header fields without escaped pipes, `src`/`dst` only for IP
//! addresses, custom keys that are single words, unique and never a typed predefined key with a
//! value of the wrong type, and no tab in a LEEF value.

use serde_json::{Value, json};
use siemrelay_core::{Event, Severity, Timestamp};
use siemrelay_exporters::syslog::cef::{CefEncoder, CefOptions};
use siemrelay_exporters::syslog::fields::FieldMapping;
use siemrelay_exporters::syslog::leef::{LeefEncoder, LeefOptions};
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs the Python parser over `lines`; one parsed object per line.
fn parse_with_python(lines: &[String]) -> Vec<Value> {
    let script = siemrelay_e2e::repo().join("tests/python/leef_cef_parse.py");
    let mut child = Command::new(siemrelay_e2e::python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python LEEF/CEF parser");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for line in lines {
            stdin.write_all(line.as_bytes()).expect("write");
            stdin.write_all(b"\n").expect("write");
        }
    }
    let output = child.wait_with_output().expect("parser output");
    assert!(
        output.status.success(),
        "parser failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Vec<Value> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(parsed.len(), lines.len());
    parsed
}

fn pairs(parsed: &Value) -> HashMap<String, String> {
    parsed["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn tricky_event() -> Event {
    let mut event = Event::new("lock|out\\");
    event.timestamp = Timestamp(1_718_000_000_123_000_000);
    event.severity = Severity::from_name("high").unwrap();
    event.source = Some("toktra".into());
    event.summary = Some("blocked | by policy".into());
    let attributes = json!({
        "src": "gateway.internal",
        "dst_ip": "2001:db8::7",
        "user_email": "alice@example.com",
        "tags": { "env": "prod", "team name": "blue" },
        "tags_env": "collides with tags.env",
        "tags-env": "collides too",
        "srcPort": "https",
        "dstPort": 443,
        "spt": "not a port",
        "policy": "block-exfil",
        "isLoginEvent": "maybe",
        "note": "tab\there and\nnewline",
        "msg": "an attribute called msg",
        "ünï": "non-ascii key",
    });
    for (key, value) in attributes.as_object().unwrap() {
        event.attributes.insert(key.clone(), value.clone());
    }
    event
        .resource
        .insert("service.name".into(), "gateway|edge".into());
    event
}

fn leef_line(delimiter: &str) -> String {
    let options = LeefOptions {
        vendor: "Ac|me\\".into(),
        delimiter: delimiter.into(),
        ..LeefOptions::default()
    };
    let encoder = LeefEncoder::new(&options, FieldMapping::default()).expect("encoder");
    let mut out = Vec::new();
    encoder.encode(&tricky_event(), &mut out);
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn leef_output_conforms_to_ibms_leef_2_guide() {
    let lines = vec![leef_line("x09"), leef_line("^")];
    for (parsed, line) in parse_with_python(&lines).iter().zip(&lines) {
        assert_eq!(parsed["violations"], json!([]), "{line}");
        let header = &parsed["header"];
        assert_eq!(header["vendor"], "Ac_me_", "{line}");
        assert_eq!(header["event_id"], "lock_out_", "{line}");
        let attrs = pairs(parsed);
        // A host name is not an IP address: it goes to srcHostName, not src.
        assert!(!attrs.contains_key("src"), "{line}");
        assert_eq!(attrs["srcHostName"], "gateway.internal");
        assert_eq!(attrs["dst"], "2001:db8::7");
        assert_eq!(attrs["usrName"], "alice@example.com");
        // Custom keys: single words, collisions resolved in name order.
        assert_eq!(attrs["tags_env"], "prod");
        assert_eq!(attrs["tags_team_name"], "blue");
        assert_eq!(attrs["tags_env_2"], "collides too");
        assert_eq!(attrs["tags_env_3"], "collides with tags.env");
        // Predefined keys keep their type or the attribute is renamed.
        assert_eq!(attrs["attributes_srcPort"], "https");
        assert_eq!(attrs["dstPort"], "443");
        assert_eq!(attrs["policy"], "block-exfil");
        assert_eq!(attrs["attributes_isLoginEvent"], "maybe");
        assert_eq!(attrs["attributes_src"], "gateway.internal");
        assert_eq!(attrs["attributes_msg"], "an attribute called msg");
        assert_eq!(attrs["msg"], "blocked | by policy");
        assert_eq!(attrs["_n_"], "non-ascii key");
        // No tab and no line break inside a value.
        assert_eq!(attrs["note"], "tab here and\\nnewline");
        assert_eq!(attrs["resource_service_name"], "gateway|edge");
        assert_eq!(attrs["sev"], "8");
    }
}

#[test]
fn cef_output_conforms_to_the_arcsight_cef_standard() {
    let options = CefOptions {
        vendor: "Ven|dor\\".into(),
        ..CefOptions::default()
    };
    let encoder = CefEncoder::new(&options, FieldMapping::default());
    let mut out = Vec::new();
    encoder.encode(&tricky_event(), &mut out);
    let line = String::from_utf8(out).expect("utf-8");
    let parsed = &parse_with_python(std::slice::from_ref(&line))[0];
    assert_eq!(parsed["violations"], json!([]), "{line}");
    // CEF defines header escaping: values come back exactly.
    assert_eq!(parsed["header"]["vendor"], "Ven|dor\\");
    assert_eq!(parsed["header"]["signature_id"], "lock|out\\");
    assert_eq!(parsed["header"]["name"], "blocked | by policy");
    assert_eq!(parsed["header"]["severity"], "8");
    let ext = pairs(parsed);
    assert_eq!(ext["shost"], "gateway.internal");
    assert!(!ext.contains_key("src"), "{line}");
    assert_eq!(ext["dst"], "2001:db8::7");
    assert_eq!(ext["suser"], "alice@example.com");
    assert_eq!(ext["tags_env"], "prod");
    assert_eq!(ext["tags_env_2"], "collides too");
    assert_eq!(ext["tags_env_3"], "collides with tags.env");
    assert_eq!(ext["attributes_spt"], "not a port");
    assert_eq!(ext["srcPort"], "https");
    assert_eq!(ext["attributes_msg"], "an attribute called msg");
    assert_eq!(ext["note"], "tab\there and\nnewline");
    assert_eq!(ext["resource_service_name"], "gateway|edge");
}
