//! Throughput of the filter, enrich and sign processors on batches of 1000 ~400-byte events.
//! The `_raw` cases hold the attributes as the webhook's ingest does (JSON bytes, flagged
//! canonical) and run the reference pipeline's enrich (two upserts of absent keys) and sign.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use siemrelay_core::ingest::{
    BodyFormat, FieldMapping, IngestOptions, Limits, event_from_received, parse_body_raw,
};
use siemrelay_core::{Event, Processor, ProcessorContext, Severity, Timestamp};
use siemrelay_processors::{enrich, filter, sign};

const BATCH: usize = 1000;

fn events() -> Vec<Event> {
    (0..BATCH)
        .map(|i| {
            let mut event = Event::new("policy_violation");
            let severity = if i % 10 == 0 { "info" } else { "high" };
            event.severity = Severity::from_name(severity).unwrap_or_default();
            event.source = Some("toktra".into());
            event.summary = Some(format!(
                "Blocked upload of customer export #{i:05} to an unapproved personal cloud storage domain"
            ));
            let email = if i % 7 == 0 { "qa@test.example" } else { "alice@corp.example" };
            *event.attributes = json!({
                "user_email": email,
                "policy": "dlp-uploads",
                "action": "block",
                "bytes": 1_048_576 + i,
                "dest_host": "files.example.net",
                "risk_score": 87.5,
                "tags": {"env": "prod", "team": "secops"}
            })
            .as_object()
            .cloned()
            .unwrap_or_default();
            event
        })
        .collect()
}

/// [`events`] as the webhook's raw ingest makes them of their JSON form: the attributes held
/// as bytes (flagged canonical), in buffers with the room the ingest leaves (a clone would
/// leave none).
fn raw_events(body: &[u8]) -> Vec<Event> {
    let options = IngestOptions::for_receiver("webhook/bench", FieldMapping::default(), false);
    let limits = Limits::new(BATCH);
    parse_body_raw(body, BodyFormat::Ndjson, &limits, &options.mapping)
        .expect("the events' JSON form parses")
        .into_iter()
        .map(|object| {
            let event = event_from_received(object, &options, Timestamp(1_700_000_000_000_000_000))
                .expect("an event")
                .event;
            assert!(event.attributes.raw_canonical_json().is_some());
            event
        })
        .collect()
}

/// The NDJSON body of [`events`] as a sender writes them: their JSON form without
/// `observed_timestamp` (siemrelay's own; a sender's is kept among the attributes).
fn events_body() -> Vec<u8> {
    let mut body = Vec::new();
    for event in events() {
        let mut form: serde_json::Value =
            serde_json::from_slice(&event.to_json_bytes()).expect("the JSON form");
        if let Some(form) = form.as_object_mut() {
            form.remove("observed_timestamp");
        }
        serde_json::to_writer(&mut body, &form).expect("written");
        body.push(b'\n');
    }
    body
}

fn bench<P: Processor>(c: &mut Criterion, name: &str, processor: &P) {
    let batch = events();
    bench_on(c, name, processor, || batch.clone());
}

/// Times `processor` on batches that `make` gives (not timed).
fn bench_on<P: Processor>(
    c: &mut Criterion,
    name: &str,
    processor: &P,
    make: impl Fn() -> Vec<Event>,
) {
    let mut group = c.benchmark_group("processors");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(name, |b| {
        b.iter_batched_ref(
            &make,
            |batch| processor.process(batch),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn processors(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ctx = ProcessorContext {
        id: "bench".into(),
        pipeline: "bench".into(),
        storage_dir: dir.path().to_path_buf(),
    };
    let size = events()[1].to_json_bytes().len();
    println!("event JSON size: {size} bytes");

    let config = serde_yaml::from_str(
        r#"
include: { event_types: [policy_violation, lockout, "anomaly*"], min_severity: warn }
exclude: { attributes: { user_email: { regex: ".*@test\\.example$" } } }
"#,
    )
    .expect("filter config");
    bench(c, "filter", &filter::build(config, &ctx).expect("filter"));

    let config = serde_yaml::from_str(
        r#"
actions:
  - { action: upsert, key: deployment.env, value: prod }
  - { action: insert, key: host, value_from: hostname }
  - { action: rename, from: action, to: outcome.action }
  - { action: delete, key: tags.team }
source: gateway
"#,
    )
    .expect("enrich config");
    bench(c, "enrich", &enrich::build(config, &ctx).expect("enrich"));

    let config = serde_yaml::from_str("{ keys: [{ id: k1, secret: bench-secret }], chain: true }")
        .expect("sign config");
    bench(c, "sign_chained", &sign::build(config, &ctx).expect("sign"));
    let config: sign::SignConfig =
        serde_yaml::from_str("{ keys: [{ id: k1, secret: bench-secret }] }").expect("sign config");
    bench(c, "sign", &sign::build(config.clone(), &ctx).expect("sign"));

    let reference = serde_yaml::from_str(
        r#"
actions:
  - { action: upsert, key: deployment.env, value: prod }
  - { action: upsert, key: relay.region, value: eu-west-1 }
"#,
    )
    .expect("enrich config");
    let reference = enrich::build(reference, &ctx).expect("enrich");
    let body = events_body();
    bench_on(c, "enrich_raw", &reference, || raw_events(&body));
    let enriched = || {
        let mut batch = raw_events(&body);
        reference.process(&mut batch);
        batch
    };
    let signer = sign::build(config, &ctx).expect("sign");
    bench_on(c, "sign_raw", &signer, enriched);
}

criterion_group!(benches, processors);
criterion_main!(benches);
