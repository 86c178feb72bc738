use super::*;
use crate::delivery::schema::{Shaped, carried_native_json};
use siemrelay_core::{Severity, Signature, Timestamp};
use std::collections::{BTreeMap, BTreeSet};

/// The shipped template, read as a user deploys it.
fn template() -> serde_json::Value {
    let text = include_str!("../../../../examples/sentinel/azuredeploy.json");
    serde_json::from_str(text).expect("the template is JSON")
}

/// The columns (name → type) the template's DCR declares for `stream`.
fn declared(stream: &str) -> BTreeMap<String, String> {
    let template = template();
    let dcr = template["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Microsoft.Insights/dataCollectionRules")
        .expect("a DCR");
    let columns = dcr["properties"]["streamDeclarations"][stream]["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("the template declares no stream {stream}"));
    columns
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn with_attributes(event_type: &str, attributes: serde_json::Value) -> Event {
    let mut e = Event::new(event_type);
    e.timestamp = Timestamp::parse_rfc3339("2026-11-20T09:00:37.123456789Z").unwrap();
    e.observed_timestamp = Timestamp::parse_rfc3339("2026-11-20T09:00:38Z").unwrap();
    e.severity = Severity::from_name("high").unwrap();
    *e.attributes = attributes.as_object().unwrap().clone();
    e
}

/// Events that together reach every column of every shape: a signed Keeptrusts block with
/// every seed field (and a colliding and a mistyped attribute), a lockout with a user and an
/// address, a plain event without source or summary.
fn events() -> Vec<Event> {
    let mut blocked = with_attributes(
        "blocked",
        serde_json::json!({
            "action": "block", "policy_name": "prompt-injection", "model": "claude-y",
            "gateway_id": "gw-eu-2", "user_id": "svc-1", "org_id": "org-7",
            "user_email": "a@example.com", "client_ip": "203.0.113.9",
            "tags": {"env": "prod"}, "actor": {"email": "a@example.com"},
            "severity": "sender's own", "details": {"n": 3},
            "destination_ip": "198.51.100.7", "host": "gw-host", "rule_id": "r-1",
            "user_agent": "curl/8"
        }),
    );
    blocked.source = Some("keeptrusts".into());
    blocked.summary = Some("prompt blocked".into());
    blocked
        .resource
        .insert("host.name".into(), "sensor-1".into());
    blocked.signature = Some(Box::new(Signature {
        alg: "HMAC-SHA256".into(),
        kid: "k1".into(),
        value: "ab".repeat(32).into(),
        prev: Some("cd".repeat(32).into()),
    }));
    let mut lockout = with_attributes(
        "lockout",
        serde_json::json!({"user_email": "b@example.com", "client_ip": "192.0.2.4", "action": 7}),
    );
    lockout.source = Some("toktra".into());
    let plain = with_attributes("heartbeat", serde_json::json!({}));
    vec![blocked, lockout, plain]
}

fn record(event: &Event, schema: Schema) -> serde_json::Map<String, Value> {
    let mut out = Vec::new();
    RecordShape::new(schema, Columns::default_mapping())
        .write_record(event, &mut out)
        .unwrap();
    match serde_json::from_slice(&out).unwrap() {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// True when `value` is what Log Analytics takes for a column of type `kind`.
fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "string" => value.is_string(),
        "datetime" => value
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
        "int" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "long" => value.is_i64(),
        "dynamic" => true,
        _ => false,
    }
}

/// What the exporter sends in each shape has exactly the columns the shipped template declares
/// for that shape's stream, each value of its declared type: no record has an undeclared
/// column, and every declared column is written by some event.
#[test]
fn every_shape_sends_exactly_the_columns_its_template_stream_declares() {
    for schema in Schema::ALL {
        let table = shape_table(schema);
        let declared = declared(table.stream);
        let ours: BTreeMap<String, String> = table
            .columns()
            .iter()
            .map(|(name, kind)| (name.to_string(), kind.name().to_string()))
            .collect();
        assert_eq!(ours, declared, "{}: the shape's column list", schema.name());
        let mut seen = BTreeSet::new();
        for event in events() {
            for (name, value) in record(&event, schema) {
                let kind = declared.get(&name).unwrap_or_else(|| {
                    panic!(
                        "{}: {name} is not declared by {}",
                        schema.name(),
                        table.stream
                    )
                });
                assert!(
                    has_type(&value, kind),
                    "{}: {name} is {kind} but got {value}",
                    schema.name()
                );
                seen.insert(name);
            }
        }
        let all: BTreeSet<String> = declared.keys().cloned().collect();
        assert_eq!(
            seen,
            all,
            "{}: every declared column is written",
            schema.name()
        );
    }
}

/// A reshaped record is the shape itself, with `TimeGenerated`/`EventTime` in front: ECS and
/// OCSF member for member (ECS's `@timestamp` is `EventTime`); flat with the attributes that
/// have no column of their own under `attributes`. A signed event carries its native form.
#[test]
fn reshaped_records_are_the_shapes_and_carry_the_signed_form() {
    for event in events() {
        let time = azure_time(event.timestamp);
        for schema in [Schema::Ecs, Schema::Ocsf] {
            let mut row = record(&event, schema);
            assert_eq!(row.remove("TimeGenerated"), Some(Value::from(time.clone())));
            assert_eq!(row.remove("EventTime"), Some(Value::from(time.clone())));
            let mut shape = serde_json::to_value(Shaped::new(&event, schema)).unwrap();
            shape.as_object_mut().unwrap().remove("@timestamp");
            assert_eq!(Value::Object(row.clone()), shape, "{}", schema.name());
            let row = Value::Object(row);
            assert_eq!(
                carried_native_json(schema, &row).map(|c| c.as_bytes().to_vec()),
                event.signature.as_ref().map(|_| event.to_json_bytes()),
                "{}: the signed native form, byte for byte",
                schema.name()
            );
        }
        let mut row = record(&event, Schema::Flat);
        let flat = serde_json::to_value(Shaped::new(&event, Schema::Flat)).unwrap();
        let flat = flat.as_object().unwrap();
        assert_eq!(row["timestamp"], Value::from(time.clone()));
        assert_eq!(row.remove("EventTime"), Some(Value::from(time)));
        for (key, value) in flat {
            match key.as_str() {
                "timestamp" | "observed_timestamp" => assert!(row.contains_key(key)),
                "attributes" => {
                    for (name, nested) in value.as_object().unwrap() {
                        assert_eq!(
                            row["attributes"][name.as_str()],
                            *nested,
                            "attributes.{name}"
                        );
                    }
                }
                _ if row.get(key) == Some(value) => {}
                _ => assert_eq!(
                    row["attributes"][key.as_str()],
                    *value,
                    "flat {key}: a column, or under attributes"
                ),
            }
        }
        let row = Value::Object(row);
        assert_eq!(
            carried_native_json(Schema::Flat, &row).map(|c| c.as_bytes().to_vec()),
            event.signature.as_ref().map(|_| event.to_json_bytes())
        );
    }
    let blocked = record(&events()[0], Schema::Flat);
    assert_eq!(
        blocked["action"], "block",
        "a Kusto `where action == \"block\"`"
    );
    assert_eq!(blocked["attributes"]["severity"], "sender's own");
    let lockout = record(&events()[1], Schema::Flat);
    assert_eq!(
        lockout["attributes"]["action"], 7,
        "a value of another type stays in attributes, never in the string column"
    );
    assert!(!lockout.contains_key("action"));
}
