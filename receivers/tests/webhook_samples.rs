//! Every sample sender file, posted unchanged with the README's config for that sender, is
//! accepted and loses no field: each input field is found, with the same value and JSON type,
//! in the JSON form of the event the pipeline got.

mod webhook_support;

use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use webhook_support::{CollectingSink, hmac_hex, send, start};

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/samples")
}

/// The input objects of a sample file (NDJSON or a JSON array).
fn input_objects(name: &str, text: &str) -> Vec<Map<String, Value>> {
    let values: Vec<Value> = if name.ends_with(".ndjson") {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("sample line is JSON"))
            .collect()
    } else {
        serde_json::from_str(text).expect("sample file is a JSON array")
    };
    values
        .into_iter()
        .map(|v| match v {
            Value::Object(map) => map,
            other => panic!("{name}: sample item is not an object: {other}"),
        })
        .collect()
}

/// Differences between `expected` and `actual`, compared recursively by value and JSON type.
fn differences(path: &str, expected: &Value, actual: Option<&Value>, out: &mut Vec<String>) {
    let Some(actual) = actual else {
        out.push(format!("{path}: missing"));
        return;
    };
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                differences(&format!("{path}.{key}"), value, a.get(key), out);
            }
            if e.len() != a.len() {
                out.push(format!("{path}: {} keys, expected {}", a.len(), e.len()));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!("{path}: {} items, expected {}", a.len(), e.len()));
            }
            for (index, value) in e.iter().enumerate() {
                differences(&format!("{path}[{index}]"), value, a.get(index), out);
            }
        }
        // Number equality is type-aware: 1 and 1.0 differ.
        (e, a) if e == a => {}
        (e, a) => out.push(format!("{path}: got {a}, expected {e}")),
    }
}

/// Where an input field must appear in the event's JSON form.
fn location<'e>(event: &'e Value, field: &str, mapping: &Map<String, Value>) -> Option<&'e Value> {
    const WELL_KNOWN: [&str; 6] = [
        "event_id",
        "timestamp",
        "event_type",
        "severity",
        "summary",
        "source",
    ];
    if let Some((target, _)) = mapping
        .iter()
        .find(|(_, source)| source.as_str() == Some(field))
    {
        return event.get(target);
    }
    if WELL_KNOWN.contains(&field) && !mapping.contains_key(field) {
        return event.get(field);
    }
    event.get("attributes").and_then(|a| a.get(field))
}

async fn check_sample(file: &str, config: Value, signature_header: Option<&str>) {
    let text = std::fs::read_to_string(samples_dir().join(file)).expect("sample file readable");
    let inputs = input_objects(file, &text);
    let content_type = if file.ends_with(".ndjson") {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    let mapping = config
        .get("mapping")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();

    let sink = Arc::new(CollectingSink::default());
    let server = start(config, sink.clone()).await;
    let mut request = reqwest::Client::new()
        .post(server.url("/v1/events"))
        .header("content-type", content_type)
        .body(text.clone());
    if let Some(header) = signature_header {
        let signature = format!("sha256={}", hmac_hex(b"sample-secret", &[text.as_bytes()]));
        request = request.header(header, signature);
    }
    let reply = send(request).await;
    assert_eq!(reply.status, 200, "{file}: {}", reply.body);
    assert_eq!(
        reply.body,
        json!({"accepted": inputs.len(), "queued": inputs.len()})
    );

    let events: Vec<Value> = sink
        .batches()
        .concat()
        .iter()
        .map(|e| e.to_json_value())
        .collect();
    assert_eq!(
        events.len(),
        inputs.len(),
        "{file}: one event per input object, in order"
    );
    let mut problems = Vec::new();
    for (index, (input, event)) in inputs.iter().zip(&events).enumerate() {
        for (field, value) in input {
            let found = location(event, field, &mapping);
            differences(
                &format!("{file}[{index}].{field}"),
                value,
                found,
                &mut problems,
            );
        }
        if let Some(note) = event["attributes"].get("mapping_error") {
            problems.push(format!("{file}[{index}]: mapping error {note}"));
        }
        if signature_header.is_some() {
            let verified_by = &event["attributes"]["verified_by"];
            assert_eq!(
                verified_by,
                &json!({"scheme": "hmac_sha256", "secret_index": 0})
            );
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn toktra_sample_keeps_every_field() {
    let config = json!({"verify": {"scheme": "hmac_sha256", "header": "X-Toktra-Signature",
                                   "secrets": ["sample-secret"]}});
    check_sample("toktra.ndjson", config, Some("x-toktra-signature")).await;
}

#[tokio::test]
async fn truthlocks_sample_keeps_every_field_with_its_mapping() {
    let config = json!({
        "path": "/v1/events",
        "mapping": {"event_id": "id", "event_type": "type", "timestamp": "created_at", "severity": "level"},
        "verify": {"scheme": "hmac_sha256", "header": "X-Truthlocks-Signature", "secrets": ["sample-secret"]}
    });
    check_sample("truthlocks.json", config, Some("x-truthlocks-signature")).await;
}

#[tokio::test]
async fn keeptrusts_sample_keeps_every_field() {
    check_sample("keeptrusts.ndjson", json!({}), None).await;
}

#[tokio::test]
async fn neuraltrust_sample_keeps_every_field_with_its_mapping() {
    check_sample(
        "neuraltrust.json",
        json!({"mapping": {"summary": "message"}}),
        None,
    )
    .await;
}

#[test]
fn comparison_detects_lost_fields_and_changed_types() {
    let mut problems = Vec::new();
    let expected = json!({"a": 1, "b": {"c": [1.5, null]}});
    differences(
        "x",
        &expected,
        Some(&json!({"a": 1.0, "b": {"c": [1.5]}})),
        &mut problems,
    );
    assert_eq!(problems.len(), 3, "{problems:?}");
    problems.clear();
    differences("x", &expected, Some(&expected.clone()), &mut problems);
    assert!(problems.is_empty());
}
