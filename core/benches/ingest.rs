//! Parsing a webhook body of reference events into events (the first step of the hot path).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use siemrelay_core::Timestamp;
use siemrelay_core::ingest::{
    BodyFormat, IngestOptions, Limits, event_from_object, event_from_received, parse_body,
    parse_body_raw,
};

fn reference_body(events: usize) -> Vec<u8> {
    let mut body = String::new();
    for i in 0..events {
        let severity = if i % 10 == 0 { "info" } else { "high" };
        body.push_str(&format!(
            concat!(
                "{{\"event_id\":\"0193a8e5-5c1e-7d4b-9f00-{:012x}\",\"timestamp\":\"2026-11-20T09:00:00.123456Z\",",
                "\"event_type\":\"policy_violation\",\"severity\":\"{}\",\"source\":\"toktra\",",
                "\"summary\":\"User exceeded the daily token policy eng-default (1200 of 1000 requests) on model gpt-x #{:08}\",",
                "\"user_email\":\"user{}@acme.example\",\"attributes\":{{\"policy\":\"eng-default\",\"model\":\"gpt-x\",",
                "\"requests\":1200,\"limit\":1000,\"ratio\":1.2,\"blocked\":true,",
                "\"tags\":{{\"team\":\"platform\",\"env\":\"prod\",\"cost_center\":\"CC-100\"}}}}}}\n"
            ),
            i, severity, i, i % 1000
        ));
    }
    body.into_bytes()
}

fn ingest(c: &mut Criterion) {
    let body = reference_body(100);
    let options = IngestOptions::default();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(100));
    group.bench_function("ndjson_100_reference_events", |b| {
        b.iter(|| {
            let objects =
                parse_body(&body, BodyFormat::Ndjson, &Limits::new(10_000)).expect("valid body");
            let observed = Timestamp::now();
            objects
                .into_iter()
                .map(|o| {
                    event_from_object(o, &options, observed)
                        .expect("ingest")
                        .event
                })
                .collect::<Vec<_>>()
        })
    });
    // The webhook's path: attributes written raw, no trees.
    group.bench_function("parse_raw_100_reference_events", |b| {
        b.iter(|| {
            parse_body_raw(
                &body,
                BodyFormat::Ndjson,
                &Limits::new(10_000),
                &options.mapping,
            )
            .expect("valid body")
        })
    });
    group.bench_function("ndjson_raw_100_reference_events", |b| {
        b.iter(|| {
            let objects = parse_body_raw(
                &body,
                BodyFormat::Ndjson,
                &Limits::new(10_000),
                &options.mapping,
            )
            .expect("valid body");
            let observed = Timestamp::now();
            objects
                .into_iter()
                .map(|o| {
                    event_from_received(o, &options, observed)
                        .expect("ingest")
                        .event
                })
                .collect::<Vec<_>>()
        })
    });
    let events: Vec<_> = parse_body(&body, BodyFormat::Ndjson, &Limits::new(10_000))
        .expect("valid body")
        .into_iter()
        .map(|o| {
            event_from_object(o, &options, Timestamp::now())
                .expect("ingest")
                .event
        })
        .collect();
    group.bench_function("write_json_100_events", |b| {
        let mut out = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            for event in &events {
                event.write_json(&mut out);
                out.push(b'\n');
            }
            out.len()
        })
    });
    group.bench_function("estimated_size_100_events", |b| {
        b.iter(|| events.iter().map(|e| e.estimated_size()).sum::<usize>())
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
