//! Throughput of the filter, enrich and sign processors on batches of 1000 ~400-byte events.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use siemrelay_core::{Event, Processor, ProcessorContext, Severity};
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

fn bench<P: Processor>(c: &mut Criterion, name: &str, processor: &P) {
    let batch = events();
    let mut group = c.benchmark_group("processors");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(name, |b| {
        b.iter_batched_ref(
            || batch.clone(),
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
    let config =
        serde_yaml::from_str("{ keys: [{ id: k1, secret: bench-secret }] }").expect("sign config");
    bench(c, "sign", &sign::build(config, &ctx).expect("sign"));
}

criterion_group!(benches, processors);
criterion_main!(benches);
