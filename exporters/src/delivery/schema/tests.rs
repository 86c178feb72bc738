use super::*;
use siemrelay_core::{Signature, Timestamp};

fn keeptrusts_blocked() -> Event {
    let mut event = Event::new("blocked");
    event.timestamp = Timestamp::parse_rfc3339("2026-11-20T09:00:37.123456Z").unwrap();
    event.observed_timestamp = event.timestamp;
    event.source = Some("keeptrusts".into());
    *event.attributes = serde_json::json!({
        "action": "block", "policy_name": "prompt-injection", "model": "claude-y",
        "gateway_id": "gw-eu-2", "user_id": "svc-1", "org_id": "org-7",
        "severity": "sender's own", "client_ip": "203.0.113.9"
    })
    .as_object()
    .unwrap()
    .clone();
    event
}

fn shaped(event: &Event, schema: Schema) -> Value {
    let mut out = Vec::new();
    schema.write_event(event, &mut out);
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn native_is_the_event_json_form() {
    let event = keeptrusts_blocked();
    let mut out = Vec::new();
    Schema::Native.write_event(&event, &mut out);
    assert_eq!(out, event.to_json_bytes());
    // The members helper writes the same object.
    let via_members = serde_json::to_vec(&Shaped::new(&event, Schema::Native)).unwrap();
    assert_eq!(via_members, event.to_json_bytes());
}

#[test]
fn flat_lifts_attributes_and_keeps_colliding_ones_nested() {
    let value = shaped(&keeptrusts_blocked(), Schema::Flat);
    assert_eq!(value["action"], "block");
    assert_eq!(value["policy_name"], "prompt-injection");
    assert_eq!(
        value["severity"], "unspecified",
        "the well-known field keeps its value"
    );
    assert_eq!(
        value["attributes"],
        serde_json::json!({"severity": "sender's own"})
    );
    assert_eq!(value["event_type"], "blocked");
    assert!(value.get("signed_json").is_none());
}

#[test]
fn ecs_places_the_seed_fields() {
    let value = shaped(&keeptrusts_blocked(), Schema::Ecs);
    assert_eq!(value["@timestamp"], "2026-11-20T09:00:37.123456Z");
    assert_eq!(value["event"]["action"], "block");
    assert_eq!(value["event"]["kind"], "alert");
    assert_eq!(
        value["event"]["category"],
        serde_json::json!(["intrusion_detection"])
    );
    assert_eq!(value["event"]["type"], serde_json::json!(["denied"]));
    assert_eq!(value["rule"]["name"], "prompt-injection");
    assert_eq!(value["user"]["id"], "svc-1");
    assert_eq!(value["source"]["ip"], "203.0.113.9");
    assert_eq!(value["observer"]["name"], "gw-eu-2");
    assert_eq!(value["organization"]["id"], "org-7");
    assert_eq!(
        value["siemrelay"]["attributes"],
        serde_json::json!({"model": "claude-y", "severity": "sender's own"})
    );
}

#[test]
fn ecs_maps_only_values_of_the_ecs_type() {
    let mut event = Event::new("x");
    *event.attributes = serde_json::json!({"client_ip": "not-an-ip", "tags": {"a": {"b": 1}}})
        .as_object()
        .unwrap()
        .clone();
    let value = shaped(&event, Schema::Ecs);
    assert!(value.get("source").is_none() && value.get("labels").is_none());
    assert_eq!(
        value["siemrelay"]["attributes"],
        Value::Object(event.attributes.clone().into())
    );
}

#[test]
fn ocsf_chooses_the_class_per_event_type() {
    let finding = shaped(&keeptrusts_blocked(), Schema::Ocsf);
    assert_eq!(
        (
            &finding["class_uid"],
            &finding["category_uid"],
            &finding["type_uid"]
        ),
        (&2004.into(), &2.into(), &200401.into())
    );
    assert_eq!(
        finding["finding_info"]["types"],
        serde_json::json!(["blocked"])
    );
    assert_eq!(finding["unmapped"]["attributes"]["action"], "block");

    let mut lockout = Event::new("lockout");
    lockout.severity = siemrelay_core::Severity::from_name("critical").unwrap();
    lockout
        .attributes
        .insert("user_email".into(), "a@b.example".into());
    let auth = shaped(&lockout, Schema::Ocsf);
    assert_eq!(
        (&auth["class_uid"], &auth["type_uid"]),
        (&3002.into(), &300201.into())
    );
    assert_eq!(auth["severity_id"], 5);
    assert_eq!(auth["user"]["email_addr"], "a@b.example");
    assert_eq!(auth["status_id"], 2);
    assert!(auth["unmapped"].get("attributes").is_none());

    let other = shaped(&Event::new("budget_alert"), Schema::Ocsf);
    assert_eq!(
        (&other["class_uid"], &other["type_uid"]),
        (&0.into(), &99.into())
    );
}

#[test]
fn a_signed_event_carries_its_native_form_in_every_shape() {
    let mut event = keeptrusts_blocked();
    event.signature = Some(Box::new(Signature {
        alg: "HMAC-SHA256".into(),
        kid: "k1".into(),
        value: "00".repeat(32).into(),
        prev: None,
    }));
    let native = String::from_utf8(event.to_json_bytes()).unwrap();
    for schema in [Schema::Flat, Schema::Ecs, Schema::Ocsf] {
        let value = shaped(&event, schema);
        assert_eq!(
            carried_native_json(schema, &value),
            Some(native.as_str()),
            "{schema:?}"
        );
    }
}

#[test]
fn members_can_leave_out_names() {
    let event = keeptrusts_blocked();
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    let mut map = ser.serialize_map(None).unwrap();
    Schema::Flat
        .write_members(&event, &mut map, &["timestamp", "action"])
        .unwrap();
    SerializeMap::end(map).unwrap();
    let value: Value = serde_json::from_slice(&out).unwrap();
    assert!(value.get("timestamp").is_none() && value.get("action").is_none());
    assert_eq!(value["model"], "claude-y");
}
