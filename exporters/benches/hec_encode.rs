//! Splunk HEC envelope encoding of 1000 reference-sized events: serializing each event, and
//! copying the JSON form the `sign` processor kept ("sign the bytes you send"); then the same
//! kept events with `schema: flat`, `ecs` and `ocsf` (`native` is the `kept_form` case: the
//! schema adds one `match` to it).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use siemrelay_core::{Event, Severity};
use siemrelay_exporters::delivery::Schema;
use siemrelay_exporters::splunk_hec::{HecEncoder, SplunkHecConfig};

fn events() -> Vec<Event> {
    (0..1000)
        .map(|i| {
            let mut event = Event::new("policy_violation");
            event.severity = Severity::from_name("high").unwrap_or_default();
            event.source = Some("toktra-gateway".into());
            event.summary = Some(format!(
                "Blocked upload of a file classified confidential to an unsanctioned domain #{i}"
            ));
            if let serde_json::Value::Object(attributes) = json!({
                "user_email": format!("user{i}@acme.example"),
                "policy_id": "dlp-007", "action": "block", "bytes": 48213 + i,
                "destination": "files.example.net", "client_ip": "10.1.2.3",
                "tags": {"env": "prod", "team": "sec", "region": "eu"},
                "deployment": {"env": "prod"}, "relay": {"region": "eu-west-1"}
            }) {
                *event.attributes = attributes;
            }
            event
        })
        .collect()
}

fn hec_encode(c: &mut Criterion) {
    let config: SplunkHecConfig =
        serde_json::from_value(json!({"endpoint": "http://127.0.0.1:8088", "token": "t"}))
            .expect("a valid HEC config");
    let encoder = HecEncoder::new("http://127.0.0.1:8088", &config, None).expect("encoder");
    let plain = events();
    let mut kept = events();
    for event in &mut kept {
        let json = event.to_json_bytes();
        event.keep_written_json(json);
    }
    let mut group = c.benchmark_group("hec_envelope");
    group.throughput(Throughput::Elements(plain.len() as u64));
    for (name, batch) in [("serialize", &plain), ("kept_form", &kept)] {
        let mut out = Vec::with_capacity(1 << 20);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for event in batch {
                    encoder.write_envelope(event, &mut out);
                }
                out.len()
            })
        });
    }
    for schema in [Schema::Flat, Schema::Ecs, Schema::Ocsf] {
        let shaped = HecEncoder::new("http://127.0.0.1:8088", &config, None)
            .expect("encoder")
            .with_schema(schema);
        let mut out = Vec::with_capacity(1 << 20);
        group.bench_function(format!("schema_{}", schema.name()), |b| {
            b.iter(|| {
                out.clear();
                for event in &kept {
                    shaped.write_envelope(event, &mut out);
                }
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hec_encode);
criterion_main!(benches);
