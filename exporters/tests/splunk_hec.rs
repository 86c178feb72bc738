//! The `splunk_hec` exporter through a real `ExporterHandle` (queue, workers, retries, dead-letter
//! file, status) against the fake HEC over real sockets.

mod support;

use serde_json::{Value, json};
use siemrelay_core::{Event, Timestamp};
use siemrelay_e2e::fake::hec::{AckRelease, Behaviour, FakeHec, HecOptions, Scripted, TOKEN};
use siemrelay_exporters::delivery::http::HttpOptions;
use siemrelay_exporters::delivery::{DeliveryConfig, ExporterState, Sink, test_delivery};
use siemrelay_exporters::splunk_hec::{self, SplunkHecConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::{Rig, eventually};

const ID: &str = "splunk_hec/test";

fn delivery(retry: Value) -> DeliveryConfig {
    serde_json::from_value(
        json!({ "sending": { "concurrency": 4, "timeout": "5s" }, "retry": retry }),
    )
    .expect("delivery config")
}

fn fast_retry() -> DeliveryConfig {
    delivery(
        json!({ "initial_interval": "20ms", "max_interval": "100ms", "max_elapsed_time": "20s" }),
    )
}

fn sink(endpoint: &str, extra: Value, http: Value) -> Arc<dyn Sink> {
    let mut config = json!({ "endpoint": endpoint, "token": TOKEN });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    let config: SplunkHecConfig = serde_json::from_value(config).expect("hec config");
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let http: HttpOptions = serde_json::from_value(http).expect("http options");
    splunk_hec::build(ID, config, &http, Duration::from_secs(5)).expect("build")
}

/// Starts the sink with the batch settings these tests use.
fn start_rig(sink: Arc<dyn Sink>, config: &DeliveryConfig) -> Rig {
    Rig::start(ID, sink, config, 2_000, Duration::from_millis(20))
}

/// Events with a mix of host sources: resource `host.name`, attribute `host`, or none.
fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut event = Event::new("policy_violation");
            event.timestamp = Timestamp(1_795_165_200_000_000_000 + i as i64 * 1_234_567);
            if i % 3 == 0 {
                event.source = Some("toktra".into());
            }
            match i % 4 {
                0 => {
                    event
                        .resource
                        .insert("host.name".into(), format!("sensor-{}", i % 10).into());
                }
                1 => {
                    event.attributes.insert("host".into(), "db-1".into());
                }
                _ => {}
            }
            event.summary = Some(format!("rule R{} matched", i % 50));
            event.attributes.insert("seq".into(), i.into());
            event
        })
        .collect()
}

fn expected_host(event: &Event) -> Option<String> {
    event
        .resource
        .get("host.name")
        .or_else(|| event.attributes.get("host"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_arrive_once_with_the_documented_mapping() {
    let hec = FakeHec::start_default();
    let rig = start_rig(
        sink(
            &format!("{}/", hec.url()),
            json!({ "index": "security" }),
            json!({ "compression": "gzip" }),
        ),
        &fast_retry(),
    );
    let sent = events(10_000);
    rig.push(&sent).await;
    assert!(
        hec.events_reached(10_000, Duration::from_secs(20)).await,
        "only {} arrived",
        hec.distinct_events()
    );
    rig.drain().await;

    assert_eq!(
        hec.total_events(),
        10_000,
        "duplicates: {:?}",
        hec.read(|s| s.events.duplicates())
    );
    assert!(hec.violations().is_empty(), "{:?}", hec.violations());
    let by_id: HashMap<String, &Event> = sent.iter().map(|e| (e.event_id.to_string(), e)).collect();
    hec.read(|state| {
        assert!(
            state.requests >= 5,
            "10,000 events of ~500 bytes need several 1 MB requests"
        );
        assert!(
            state.max_body_bytes <= 1_000_000,
            "a request carried {} bytes",
            state.max_body_bytes
        );
        assert!(
            state.statuses.iter().all(|s| *s == 200),
            "{:?}",
            state.statuses
        );
        for headers in &state.headers {
            assert_eq!(headers["authorization"], format!("Splunk {TOKEN}").as_str());
            assert_eq!(headers["content-encoding"], "gzip");
            assert_eq!(headers["content-type"], "application/json");
        }
        for envelope in &state.events.items {
            let event_json = &envelope["event"];
            let event = by_id[event_json["event_id"].as_str().expect("event_id")];
            assert_eq!(event_json, &event.to_json_value());
            let micros = (envelope["time"].as_f64().expect("time") * 1e6).round() as i64;
            assert_eq!(micros, event.timestamp.0 / 1_000);
            assert_eq!(
                envelope
                    .get("host")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                expected_host(event)
            );
            assert_eq!(
                envelope.get("source").and_then(Value::as_str),
                event.source.as_deref()
            );
            assert_eq!(envelope["sourcetype"], "siemrelay:security");
            assert_eq!(envelope["index"], "security");
            let mut keys: Vec<&str> = envelope
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            keys.retain(|k| !["host", "source"].contains(k));
            keys.sort_unstable();
            // Only the HEC envelope keys (their order is checked on the encoder's bytes in the
            // unit tests; the fake parses into a map).
            assert_eq!(keys, ["event", "index", "sourcetype", "time"]);
        }
    });
    let status = rig.handle.status().snapshot();
    assert_eq!(
        (status.events_sent, status.events_dead_lettered),
        (10_000, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_and_failing_hec_is_retried_until_each_event_is_delivered_once() {
    let hec = FakeHec::start_default();
    hec.script([
        Scripted::busy(),
        Scripted::internal_error(),
        Scripted::busy(),
        Scripted::queues_full(),
        Scripted::throttled(1),
    ]);
    let rig = start_rig(
        sink(
            &hec.url(),
            json!({ "max_request_size": 100_000 }),
            json!({}),
        ),
        &fast_retry(),
    );
    let sent = events(2_000);
    rig.push(&sent).await;
    assert!(hec.events_reached(2_000, Duration::from_secs(20)).await);
    rig.drain().await;

    assert_eq!(
        hec.total_events(),
        2_000,
        "duplicates: {:?}",
        hec.read(|s| s.events.duplicates())
    );
    let statuses = hec.read(|s| s.statuses.clone());
    for status in [503, 500, 429] {
        assert!(
            statuses.contains(&status),
            "{status} never answered: {statuses:?}"
        );
    }
    let status = rig.handle.status().snapshot();
    assert_eq!(
        (status.events_sent, status.events_dead_lettered),
        (2_000, 0)
    );
    assert!(status.events_retried > 0);
    assert_eq!(status.state, ExporterState::Active);
    let history = rig.handle.status().history();
    assert!(
        history.iter().any(|r| r.outcome.name() == "retry"
            && r.http_status == Some(503)
            && r.error
                .as_deref()
                .is_some_and(|e| e.contains("Server is busy"))),
        "{history:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_event_number_dead_letters_only_the_bad_event() {
    let hec = FakeHec::start_default();
    let sent = events(3_000);
    let bad: Vec<String> = [10, 1_500, 2_999]
        .iter()
        .map(|i| sent[*i].event_id.to_string())
        .collect();
    hec.reject_event_ids(bad.clone());
    let rig = start_rig(
        sink(
            &hec.url(),
            json!({ "max_request_size": 200_000 }),
            json!({}),
        ),
        &fast_retry(),
    );
    rig.push(&sent).await;
    rig.drain().await;

    assert_eq!(hec.distinct_events(), 2_997);
    assert_eq!(
        hec.total_events(),
        2_997,
        "duplicates: {:?}",
        hec.read(|s| s.events.duplicates())
    );
    let entries = rig.dead_letters();
    let mut dead: Vec<String> = entries
        .iter()
        .map(|e| e.event["event_id"].as_str().unwrap_or("").to_string())
        .collect();
    dead.sort();
    let mut expected = bad.clone();
    expected.sort();
    assert_eq!(dead, expected);
    for entry in &entries {
        assert!(
            entry.error.contains("code 6: Invalid data format"),
            "{}",
            entry.error
        );
        assert!(
            entry.error.contains("invalid-event-number"),
            "{}",
            entry.error
        );
        assert_eq!(entry.attempts, 1);
        assert_eq!(entry.exporter, ID);
        let original = sent
            .iter()
            .find(|e| e.event_id.to_string() == entry.event["event_id"])
            .expect("sent");
        assert_eq!(entry.event, original.to_json_value());
    }
    let status = rig.handle.status().snapshot();
    assert_eq!(
        (status.events_sent, status.events_dead_lettered),
        (2_997, 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_invalid_event_number_splits_one_request() {
    let hec = FakeHec::start_default();
    hec.script([Scripted::InvalidEventAt(5)]);
    let rig = start_rig(sink(&hec.url(), json!({}), json!({})), &fast_retry());
    let sent = events(100);
    rig.push(&sent).await;
    rig.drain().await;

    let entries = rig.dead_letters();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].event["event_id"], sent[5].event_id.to_string());
    assert_eq!(hec.distinct_events(), 99);
    assert_eq!(
        hec.total_events(),
        99,
        "events before position 5 must not be resent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hec_down_longer_than_max_elapsed_time_fails_then_recovers() {
    let hec = FakeHec::start_default();
    hec.go_down();
    let config = delivery(
        json!({ "initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "1s" }),
    );
    let rig = start_rig(sink(&hec.url(), json!({}), json!({})), &config);
    let sent = events(100);
    rig.push(&sent).await;
    let status = rig.handle.status();
    assert!(
        eventually(Duration::from_secs(3), || status.state()
            == ExporterState::Degraded)
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || status.state()
            == ExporterState::Failed)
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || rig
            .handle
            .dead_letter()
            .written()
            == 100)
        .await
    );

    let snapshot = status.snapshot();
    let queued = rig.handle.queue().depth().events as u64;
    assert_eq!(
        snapshot.events_sent + snapshot.events_dead_lettered + queued,
        100
    );
    assert_eq!(snapshot.events_dead_lettered, 100);
    // The last error is the one that dead-lettered the events, or, once the failed exporter
    // has been probed, the probe's (the SIEM is still down).
    let last_error = snapshot.last_error.unwrap_or_default();
    assert!(
        last_error.contains("retries exhausted")
            || (last_error.starts_with("probe failed: ")
                && last_error.contains("Connection refused")),
        "{last_error}"
    );
    let entries = rig.dead_letters();
    assert_eq!(entries.len(), 100);
    assert!(
        entries[0].error.contains("retries exhausted")
            && entries[0].error.contains("request failed")
    );
    assert!(entries[0].attempts >= 2);

    // Back up: the failed exporter's probe succeeds and it becomes active again.
    hec.come_up();
    let later = events(10);
    rig.push(&later).await;
    assert!(hec.events_reached(10, Duration::from_secs(5)).await);
    assert!(
        eventually(Duration::from_secs(3), || status.state()
            == ExporterState::Active)
        .await
    );
    rig.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_signatures_verify_with_the_secret_and_fail_with_a_wrong_one() {
    let hec = FakeHec::start(HecOptions {
        signing_secret: Some("shared-secret".into()),
        ..Default::default()
    });
    let sent = events(1_000);
    let right = start_rig(
        sink(
            &hec.url(),
            json!({}),
            json!({ "compression": "gzip", "signing": { "secret": "shared-secret" } }),
        ),
        &fast_retry(),
    );
    right.push(&sent[..500]).await;
    right.drain().await;
    let checks = hec.signatures();
    assert!(checks.passed > 0);
    assert_eq!(checks.failed, 0);

    let wrong = start_rig(
        sink(
            &hec.url(),
            json!({}),
            json!({ "signing": { "secret": "not-it" } }),
        ),
        &fast_retry(),
    );
    wrong.push(&sent[500..]).await;
    wrong.drain().await;
    let after = hec.signatures();
    assert_eq!(after.passed, checks.passed);
    assert!(after.failed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_reports_good_bad_token_and_unreachable() {
    let hec = FakeHec::start_default();
    let good = test_delivery(
        sink(&hec.url(), json!({}), json!({})).as_ref(),
        Duration::from_secs(5),
    )
    .await;
    assert!(good.ok, "{good:?}");
    assert_eq!(good.outcome, "delivered");
    assert_eq!(hec.count_of(&good.event_id), 1);

    let config: SplunkHecConfig = serde_json::from_value(
        json!({ "endpoint": hec.url(), "token": "00000000-0000-0000-0000-000000000000" }),
    )
    .expect("config");
    let bad_sink = splunk_hec::build(ID, config, &HttpOptions::default(), Duration::from_secs(5))
        .expect("build");
    let bad = test_delivery(bad_sink.as_ref(), Duration::from_secs(5)).await;
    assert!(!bad.ok);
    assert_eq!(
        (bad.outcome.as_str(), bad.http_status),
        ("permanent", Some(403))
    );
    assert!(
        bad.hint.as_deref().unwrap_or("").contains("token"),
        "{bad:?}"
    );

    let port = siemrelay_e2e::free_port();
    let unreachable = test_delivery(
        sink(&format!("http://127.0.0.1:{port}"), json!({}), json!({})).as_ref(),
        Duration::from_secs(5),
    )
    .await;
    assert!(!unreachable.ok);
    assert_eq!(unreachable.outcome, "retry");
    assert!(
        unreachable
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("unreachable"),
        "{unreachable:?}"
    );
}

fn ack_sink(hec: &FakeHec, ack_timeout: &str) -> Arc<dyn Sink> {
    sink(
        &hec.url(),
        json!({ "acknowledgements": true, "ack_poll_interval": "20ms", "ack_timeout": ack_timeout }),
        json!({}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_acknowledgements_events_count_only_once_acked() {
    let hec = FakeHec::start(HecOptions {
        ack: true,
        ..Default::default()
    });
    hec.set_ack_release(AckRelease::Manually);
    let rig = start_rig(ack_sink(&hec, "3s"), &fast_retry());
    rig.push(&events(500)).await;
    assert!(hec.events_reached(500, Duration::from_secs(5)).await);
    assert!(
        hec.recorder()
            .wait_until_async(Duration::from_secs(2), |s| s.ack_polls >= 2)
            .await
    );
    assert_eq!(
        rig.handle.status().snapshot().events_sent,
        0,
        "indexed but not acknowledged yet"
    );

    hec.release_acks();
    let status = rig.handle.status();
    assert!(
        eventually(Duration::from_secs(3), || status.snapshot().events_sent
            == 500)
        .await
    );
    rig.drain().await;
    assert_eq!(hec.total_events(), 500);
    hec.read(|state| {
        assert_eq!(state.channels.len(), 1, "one channel per exporter instance");
        assert!(state.acks_confirmed >= 1);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_requests_are_resent_after_the_ack_timeout() {
    let hec = FakeHec::start(HecOptions {
        ack: true,
        ..Default::default()
    });
    hec.set_ack_release(AckRelease::Never);
    let rig = start_rig(ack_sink(&hec, "300ms"), &fast_retry());
    rig.push(&events(50)).await;
    let status = rig.handle.status();
    assert!(
        eventually(Duration::from_secs(3), || status.snapshot().events_retried
            > 0)
        .await
    );
    assert_eq!(status.state(), ExporterState::Degraded);
    assert!(
        status
            .snapshot()
            .last_error
            .unwrap_or_default()
            .contains("did not acknowledge")
    );

    hec.set_ack_release(AckRelease::Immediately);
    rig.drain().await;
    let snapshot = status.snapshot();
    assert_eq!(
        (snapshot.events_sent, snapshot.events_dead_lettered),
        (50, 0)
    );
    assert_eq!(hec.distinct_events(), 50);
    assert!(
        hec.total_events() >= 100,
        "unacknowledged requests are resent: duplicates, never losses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_hec_for_every_request_keeps_events_queued_and_retried() {
    let hec = FakeHec::start_default();
    hec.set_behaviour(Behaviour::Busy);
    let rig = start_rig(sink(&hec.url(), json!({}), json!({})), &fast_retry());
    rig.push(&events(20)).await;
    let status = rig.handle.status();
    assert!(
        eventually(Duration::from_secs(3), || status.snapshot().events_retried
            >= 40)
        .await
    );
    assert_eq!(hec.distinct_events(), 0);
    hec.set_behaviour(Behaviour::Normal);
    rig.drain().await;
    assert_eq!(hec.total_events(), 20);
}

/// The indexed envelope of event `id`.
fn envelope_of<'a>(items: &'a [Value], id: &str) -> &'a Value {
    items
        .iter()
        .find(|envelope| envelope["event"]["event_id"] == id)
        .unwrap_or_else(|| panic!("event {id} was not indexed"))
}

/// Issue 25: `indexed_fields` land in the envelope's `fields`, flat, as HEC documents them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_fields_are_sent_flat_in_the_envelope_fields() {
    let hec = FakeHec::start_default();
    let rig = start_rig(
        sink(
            &hec.url(),
            json!({ "indexed_fields": ["tags.env", "user_email", "n", "list", "nested", "absent"] }),
            json!({}),
        ),
        &fast_retry(),
    );
    let mut sent = events(50);
    for (i, event) in sent.iter_mut().enumerate() {
        event
            .attributes
            .insert("tags".into(), json!({ "env": format!("env{}", i % 3) }));
        event
            .attributes
            .insert("user_email".into(), format!("u{i}@x.example").into());
        event.attributes.insert("n".into(), i.into());
        event
            .attributes
            .insert("list".into(), json!(["a", 1, true, null, {"x": 1}]));
        event.attributes.insert("nested".into(), json!({ "x": 1 }));
    }
    rig.push(&sent).await;
    rig.drain().await;
    assert_eq!(hec.distinct_events(), 50);
    assert!(hec.violations().is_empty(), "{:?}", hec.violations());
    assert!(rig.dead_letters().is_empty());
    hec.read(|state| {
        for (i, event) in sent.iter().enumerate() {
            let id = event.event_id.to_string();
            let envelope = envelope_of(&state.events.items, &id);
            assert_eq!(
                envelope["fields"],
                json!({
                    "tags.env": format!("env{}", i % 3),
                    "user_email": format!("u{i}@x.example"),
                    "n": i.to_string(),
                    "list": ["a", "1", "true"],
                }),
                "{envelope}"
            );
        }
    });
}

/// Issue 25: `index_from` / `sourcetype_from` route each event, the static settings are the
/// fallback, and an index the token may not write to dead-letters that event only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_and_sourcetype_follow_the_event_with_the_static_fallback() {
    let hec = FakeHec::start_default();
    let rig = start_rig(
        sink(
            &hec.url(),
            json!({
                "index": "main", "sourcetype": "siemrelay:security",
                "index_from": "route.index", "sourcetype_from": "route.sourcetype"
            }),
            json!({}),
        ),
        &fast_retry(),
    );
    let mut sent = events(40);
    let forbidden = sent[17].event_id.to_string();
    for (i, event) in sent.iter_mut().enumerate() {
        let route = match i % 4 {
            0 => json!({ "index": "security", "sourcetype": "acme:alert" }),
            1 => json!({ "sourcetype": "acme:audit" }),
            2 => json!({ "index": "Not An Index" }),
            _ => json!({}),
        };
        event.attributes.insert("route".into(), route);
    }
    sent[17]
        .attributes
        .insert("route".into(), json!({ "index": "forbidden" }));
    rig.push(&sent).await;
    rig.drain().await;
    assert!(hec.violations().is_empty(), "{:?}", hec.violations());
    assert_eq!(hec.distinct_events(), 39);
    assert_eq!(hec.total_events(), 39, "each event indexed once");
    let dead = rig.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].event["event_id"], forbidden.as_str());
    assert!(dead[0].error.contains("code 7"), "{}", dead[0].error);
    hec.read(|state| {
        for (i, event) in sent.iter().enumerate() {
            if i == 17 {
                continue;
            }
            let envelope = envelope_of(&state.events.items, &event.event_id.to_string());
            let (index, sourcetype) = match i % 4 {
                0 => ("security", "acme:alert"),
                1 => ("main", "acme:audit"),
                _ => ("main", "siemrelay:security"),
            };
            assert_eq!(envelope["index"], index, "{envelope}");
            assert_eq!(envelope["sourcetype"], sourcetype, "{envelope}");
        }
    });
}

/// Issue 25: `endpoint_kind: raw` posts lines to `/services/collector/raw` with the channel
/// header and the metadata as query parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_endpoint_gets_lines_with_a_channel_and_query_metadata() {
    let hec = FakeHec::start_default();
    let rig = start_rig(
        sink(
            &hec.url(),
            json!({
                "endpoint_kind": "raw", "index": "security", "sourcetype": "acme:log",
                "source": "/var/log/app.log", "host": "relay-1"
            }),
            json!({ "compression": "gzip" }),
        ),
        &fast_retry(),
    );
    let mut sent = events(30);
    sent[3].summary = Some("two\nlines".into());
    sent[4].summary = None;
    rig.push(&sent).await;
    rig.drain().await;
    assert!(rig.dead_letters().is_empty());
    hec.read(|state| {
        assert!(
            state.raw_statuses.iter().all(|s| *s == 200),
            "{:?}",
            state.raw_statuses
        );
        assert_eq!(state.requests, 0, "nothing went to /event");
        assert_eq!(state.raw_channels.len(), 1, "one channel per exporter");
        assert_eq!(state.raw.len(), 30, "{:?}", state.raw);
        let lines: Vec<&str> = state
            .raw
            .iter()
            .map(|r| r["raw"].as_str().unwrap())
            .collect();
        for (i, event) in sent.iter().enumerate() {
            let expected = match i {
                3 => "two lines".to_string(),
                4 => String::from_utf8(event.to_json_bytes()).unwrap(),
                _ => event.summary.clone().unwrap(),
            };
            assert!(lines.contains(&expected.as_str()), "{expected:?} missing");
        }
        for item in &state.raw {
            assert_eq!(item["index"], "security");
            assert_eq!(item["sourcetype"], "acme:log");
            assert_eq!(item["source"], "/var/log/app.log");
            assert_eq!(item["host"], "relay-1");
        }
    });
}
