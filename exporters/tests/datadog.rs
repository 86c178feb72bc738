//! The `datadog` exporter through a real `ExporterHandle` against the fake Datadog intake over
//! real sockets: mapping, limits, auth, gzip, 429/Retry-After, 413 split, oversized logs, the
//! intake down past `max_elapsed_time`, payload signatures and `siemrelay test` outcomes.

mod support;

use siemrelay_core::config_types::Secret;
use siemrelay_core::{Event, Severity, Timestamp};
use siemrelay_e2e::fake::datadog::{API_KEY, DatadogOptions, FakeDatadog, Scripted};
use siemrelay_exporters::datadog::{self, DatadogConfig};
use siemrelay_exporters::delivery::dead_letter::read_entries;
use siemrelay_exporters::delivery::http::{HttpOptions, SigningConfig};
use siemrelay_exporters::delivery::{ExporterState, Sink, test_delivery};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Rig, fast_retry};

const SECRET: &str = "shared-signing-secret";

/// Varied events: types, severities, sources, summaries, tags, hosts, two days of event time.
fn events(n: usize) -> Vec<Event> {
    let base = Timestamp::parse_rfc3339("2024-06-10T12:00:00.123Z").unwrap();
    (0..n)
        .map(|i| {
            let mut event = Event::new(["lockout", "policy_violation", "malware"][i % 3]);
            event.timestamp = Timestamp(base.0 + i as i64 * 20_000_000_000);
            event.severity = Severity::from_number([0, 5, 9, 13, 17, 21][i % 6]).unwrap();
            event.source = (i % 4 != 0).then(|| format!("sensor-{}", i % 5));
            event.summary = (i % 2 == 0).then(|| format!("event number {i}"));
            let env = ["prod", "stage"][i % 2];
            *event.attributes = serde_json::json!({
                "tags": {"env": env}, "user": format!("u{i}"), "n": i,
            })
            .as_object()
            .unwrap()
            .clone();
            if i % 3 == 0 {
                event
                    .resource
                    .insert("host.name".into(), format!("host-{}", i % 7).into());
            }
            event
        })
        .collect()
}

fn config(endpoint: &str, key: &str) -> DatadogConfig {
    serde_json::from_value(serde_json::json!({
        "api_key": key, "site": "datadoghq.eu", "endpoint": endpoint, "ddtags": "env:prod, team:sec",
        "service": "gateway", "tag_attributes": ["tags.env"],
    }))
    .unwrap()
}

fn http(secret: Option<&str>) -> HttpOptions {
    HttpOptions {
        signing: secret.map(|s| SigningConfig {
            secret: Secret::new(s),
            header: "X-Siemrelay-Signature".into(),
            timestamp_header: "X-Siemrelay-Timestamp".into(),
            scheme: Default::default(),
        }),
        ..Default::default()
    }
}

fn sink(endpoint: &str, key: &str, secret: Option<&str>) -> Arc<dyn Sink> {
    datadog::build(
        "datadog/test",
        config(endpoint, key),
        &http(secret),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn start(sink: Arc<dyn Sink>, delivery: serde_json::Value) -> Rig {
    Rig::start(
        "datadog/test",
        sink,
        &support::delivery(delivery),
        1000,
        Duration::from_millis(50),
    )
}

fn expected_status(number: u8) -> &'static str {
    match number {
        0 | 9..=12 => "info",
        1..=8 => "debug",
        13..=16 => "warning",
        17..=20 => "error",
        _ => "critical",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_arrive_once_with_the_documented_mapping() {
    let fake = FakeDatadog::start_with(DatadogOptions {
        signing_secret: Some(SECRET.into()),
        ..Default::default()
    });
    let running = start(sink(&fake.url(), API_KEY, Some(SECRET)), fast_retry());
    let sent = events(10_000);
    running.push(sent.clone()).await;
    assert!(fake.events_reached(10_000, Duration::from_secs(20)).await);
    assert!(running.settled(10_000, Duration::from_secs(5)).await);
    fake.read(|state| {
        assert_eq!(
            state.logs.total(),
            10_000,
            "duplicates: {:?}",
            state.logs.duplicates()
        );
        assert!(state.max_entries <= 1000, "{}", state.max_entries);
        assert!(state.max_body_bytes <= 5_000_000);
        assert!(state.requests.len() >= 10);
        for request in &state.requests {
            assert_eq!(request.status, 202);
            assert_eq!(request.headers["dd-api-key"], API_KEY);
            assert_eq!(request.headers["content-encoding"], "gzip");
            assert_eq!(request.headers["content-type"], "application/json");
            assert!(
                request.wire_bytes < request.body_bytes,
                "gzip must shrink the body"
            );
        }
        for event in &sent {
            let id = event.event_id.to_string();
            let log = state.log(&id).unwrap_or_else(|| panic!("{id} missing"));
            let env = event.attributes["tags"]["env"].as_str().unwrap();
            let mut expected = serde_json::json!({
                "message": event.summary.clone().unwrap_or_else(|| event.event_type.clone()),
                "ddsource": "siemrelay",
                "ddtags": format!("env:prod,team:sec,event_type:{},env:{env}", event.event_type),
                "service": "gateway",
                "status": expected_status(event.severity.number),
                "timestamp": event.timestamp.as_epoch_millis(),
                "event_id": id,
                "event_type": event.event_type,
                "severity": event.severity.text,
                "severity_number": event.severity.number,
                "observed_timestamp": event.observed_timestamp.to_rfc3339(),
                "attributes": event.attributes,
            });
            let object = expected.as_object_mut().unwrap();
            if let Some(host) = event.resource.get("host.name") {
                object.insert("hostname".into(), host.clone());
                object.insert("resource".into(), event.resource.clone().into());
            }
            if let Some(source) = &event.source {
                object.insert("source".into(), source.clone().into());
            }
            assert_eq!(log, &expected);
        }
        assert_eq!(state.signatures.failed, 0);
        assert_eq!(state.signatures.passed, state.requests.len());
    });
    let status = running.handle.status().snapshot();
    assert_eq!(status.events_sent, 10_000);
    assert_eq!(status.events_dead_lettered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_waits_for_retry_after_and_delivers_each_event_once() {
    let fake = FakeDatadog::start();
    fake.script([Scripted::throttled(1), Scripted::throttled(1)]);
    let running = start(sink(&fake.url(), API_KEY, None), fast_retry());
    let started = Instant::now();
    running.push(events(500)).await;
    assert!(fake.events_reached(500, Duration::from_secs(10)).await);
    // Two 429s with Retry-After: 1 → at least ~2 s, far more than the 50–200 ms backoff.
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    assert!(running.settled(500, Duration::from_secs(5)).await);
    fake.read(|state| {
        assert_eq!(state.requests_with_status(429), 2);
        assert_eq!(state.logs.total(), 500);
        assert!(state.logs.duplicates().is_empty());
    });
    let status = running.handle.status().snapshot();
    assert_eq!(status.events_sent, 500);
    assert!(status.events_retried >= 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_answered_413_is_split_until_it_fits() {
    let fake = FakeDatadog::start();
    fake.set_limits(1000, 60_000);
    let running = start(sink(&fake.url(), API_KEY, None), fast_retry());
    running.push(events(1000)).await;
    assert!(fake.events_reached(1000, Duration::from_secs(10)).await);
    assert!(running.settled(1000, Duration::from_secs(5)).await);
    fake.read(|state| {
        assert!(state.requests_with_status(413) >= 1);
        assert!(state.max_body_bytes <= 60_000);
        assert_eq!(state.logs.total(), 1000);
    });
    assert_eq!(running.handle.status().snapshot().events_dead_lettered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_over_one_megabyte_is_dead_lettered_and_the_rest_delivered() {
    let fake = FakeDatadog::start();
    let running = start(sink(&fake.url(), API_KEY, None), fast_retry());
    let mut sent = events(20);
    sent[7].summary = Some("x".repeat(1_100_000));
    let big_id = sent[7].event_id.to_string();
    running.push(sent).await;
    assert!(running.settled(20, Duration::from_secs(10)).await);
    assert_eq!(fake.distinct_events(), 19);
    assert!(fake.read(|s| s.log(&big_id).is_none()));
    let (entries, problems) = read_entries(running.handle.dead_letter().path()).unwrap();
    assert!(problems.is_empty());
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].event["event_id"], big_id);
    assert!(
        entries[0].error.contains("bytes Datadog keeps per log"),
        "{}",
        entries[0].error
    );
    assert_eq!(entries[0].attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_down_past_max_elapsed_time_degrades_fails_and_dead_letters() {
    let fake = FakeDatadog::start();
    fake.server().go_down();
    let running = start(
        sink(&fake.url(), API_KEY, None),
        serde_json::json!({"retry": {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "1s"}}),
    );
    let sent = events(300);
    running.push(sent.clone()).await;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.handle.status().snapshot().events_dead_lettered < 300 && Instant::now() < deadline
    {
        let state = running.handle.status().state();
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen.push(running.handle.status().state());
    assert!(seen.contains(&ExporterState::Degraded), "{seen:?}");
    assert_eq!(seen.last(), Some(&ExporterState::Failed), "{seen:?}");
    let status = running.handle.status().snapshot();
    let queued = running.handle.queue().depth().events as u64;
    assert_eq!(
        status.events_sent + status.events_dead_lettered + queued,
        300
    );
    assert_eq!(status.events_dead_lettered, 300);
    let (entries, _) = read_entries(running.handle.dead_letter().path()).unwrap();
    assert_eq!(entries.len(), 300);
    let ids: HashSet<String> = entries
        .iter()
        .map(|e| e.event["event_id"].as_str().unwrap().to_string())
        .collect();
    let expected: HashSet<String> = sent.iter().map(|e| e.event_id.to_string()).collect();
    assert_eq!(ids, expected);
    for entry in &entries {
        assert!(entry.error.contains("retries exhausted"), "{}", entry.error);
        assert!(entry.attempts >= 2);
        assert_eq!(entry.exporter, "datadog/test");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_signing_secret_fails_verification_at_the_intake() {
    let fake = FakeDatadog::start_with(DatadogOptions {
        signing_secret: Some(SECRET.into()),
        ..Default::default()
    });
    let running = start(
        sink(&fake.url(), API_KEY, Some("not-the-secret")),
        fast_retry(),
    );
    running.push(events(50)).await;
    assert!(fake.events_reached(50, Duration::from_secs(10)).await);
    let checks = fake.signatures();
    assert_eq!(checks.passed, 0);
    assert!(checks.failed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_reports_good_bad_key_and_unreachable_with_hints() {
    let fake = FakeDatadog::start();
    let good = test_delivery(&*sink(&fake.url(), API_KEY, None), Duration::from_secs(5)).await;
    assert!(good.ok, "{good:?}");
    assert_eq!(good.http_status, Some(202));
    assert!(fake.read(|s| s.log(&good.event_id).is_some()));

    let bad = test_delivery(
        &*sink(&fake.url(), "wrong-key", None),
        Duration::from_secs(5),
    )
    .await;
    assert!(!bad.ok);
    assert_eq!(bad.outcome, "permanent");
    assert_eq!(bad.http_status, Some(403));
    let hint = bad.hint.unwrap();
    assert!(
        hint.contains("API key") && hint.contains(&fake.url()),
        "{hint}"
    );

    let closed = format!("http://127.0.0.1:{}", siemrelay_e2e::free_port());
    let unreachable = test_delivery(&*sink(&closed, API_KEY, None), Duration::from_secs(5)).await;
    assert!(!unreachable.ok);
    assert_eq!(unreachable.outcome, "retry");
    assert_eq!(unreachable.http_status, None);
    assert!(
        unreachable
            .hint
            .unwrap()
            .contains("cannot reach the Datadog intake")
    );
}
