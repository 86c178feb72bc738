//! The `webhook` exporter through a real `ExporterHandle` (queue, workers, retries, dead-letter
//! file, status) against the fake webhook receiver over real sockets.

mod support;

use serde_json::{Value, json};
use siemrelay_core::Event;
use siemrelay_e2e::fake::http_sink::{FakeHttpSink, HttpSinkOptions, ScriptedReply};
use siemrelay_exporters::delivery::dead_letter::read_entries;
use siemrelay_exporters::delivery::http::HttpOptions;
use siemrelay_exporters::delivery::{DeliveryConfig, ExporterState, Sink, test_delivery};
use siemrelay_exporters::webhook::{self, WebhookConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::{Rig, eventually};

const ID: &str = "webhook/soar";
const PATH: &str = "/hooks/siem";

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
    let mut config = json!({ "endpoint": endpoint });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    let config: WebhookConfig = serde_json::from_value(config).expect("webhook config");
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let http: HttpOptions = serde_json::from_value(http).expect("http options");
    webhook::build(ID, config, &http, Duration::from_secs(5)).expect("build")
}

/// Starts the sink with the batch settings these tests use.
fn start_rig(sink: Arc<dyn Sink>, config: &DeliveryConfig) -> Rig {
    Rig::start(ID, sink, config, 2_000, Duration::from_millis(20))
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut event = Event::new("policy_violation");
            event.source = Some("toktra".into());
            event.attributes.insert("seq".into(), i.into());
            event
        })
        .collect()
}

fn receiver(secret: Option<&str>, header: &str) -> FakeHttpSink {
    FakeHttpSink::start(HttpSinkOptions {
        path: Some(PATH.into()),
        secret: secret.map(str::to_string),
        signature_header: header.into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_arrive_once_as_json_arrays_with_custom_headers() {
    let hook = receiver(None, "X-Siemrelay-Signature");
    let rig = start_rig(
        sink(
            &format!("{}{PATH}", hook.url()),
            json!({ "headers": { "X-Team": "sec", "Authorization": "Bearer t0k" } }),
            json!({}),
        ),
        &fast_retry(),
    );
    let sent = events(10_000);
    rig.push(&sent).await;
    assert!(
        hook.events_reached(10_000, Duration::from_secs(20)).await,
        "only {}",
        hook.distinct_events()
    );
    rig.drain().await;

    let by_id: HashMap<String, &Event> = sent.iter().map(|e| (e.event_id.to_string(), e)).collect();
    hook.read(|state| {
        assert_eq!(
            state.events.total(),
            10_000,
            "duplicates: {:?}",
            state.events.duplicates()
        );
        assert!(
            state.requests.len() >= 10,
            "max_events 1000 → at least 10 requests"
        );
        assert!(state.max_items <= 1_000);
        assert!(state.max_body_bytes <= 5 << 20);
        for request in &state.requests {
            assert_eq!(request.uri, PATH, "the URL is used exactly as given");
            assert_eq!(request.headers["content-type"], "application/json");
            assert_eq!(request.headers["x-team"], "sec");
            assert_eq!(request.headers["authorization"], "Bearer t0k");
            assert_eq!(request.status, 200);
            assert!(serde_json::from_slice::<Vec<Value>>(&request.body).is_ok());
        }
        for item in &state.events.items {
            let event = by_id[item["event_id"].as_str().expect("event_id")];
            assert_eq!(item, &event.to_json_value());
        }
    });
    assert_eq!(rig.handle.status().snapshot().events_sent, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_with_gzip_is_decoded_and_limits_hold() {
    let hook = receiver(None, "X-Siemrelay-Signature");
    let rig = start_rig(
        sink(
            &format!("{}{PATH}", hook.url()),
            json!({ "format": "ndjson", "max_events": 300, "max_request_size": "64KiB" }),
            json!({ "compression": "gzip" }),
        ),
        &fast_retry(),
    );
    rig.push(&events(2_000)).await;
    rig.drain().await;
    hook.read(|state| {
        assert_eq!(state.events.distinct(), 2_000);
        assert_eq!(state.events.total(), 2_000);
        assert!(state.max_items <= 300);
        assert!(state.max_body_bytes <= 64 << 10);
        for request in &state.requests {
            assert_eq!(request.headers["content-type"], "application/x-ndjson");
            assert_eq!(request.headers["content-encoding"], "gzip");
            assert!(request.wire_bytes < request.body.len(), "gzip shrinks JSON");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_throttling_are_retried_until_delivered_once() {
    let hook = receiver(None, "X-Siemrelay-Signature");
    hook.script([
        ScriptedReply::status(503),
        ScriptedReply::status(500),
        ScriptedReply::throttled(1),
    ]);
    let rig = start_rig(
        sink(
            &format!("{}{PATH}", hook.url()),
            json!({ "max_events": 100 }),
            json!({}),
        ),
        &fast_retry(),
    );
    rig.push(&events(1_000)).await;
    rig.drain().await;
    hook.read(|state| {
        assert_eq!(
            state.events.total(),
            1_000,
            "duplicates: {:?}",
            state.events.duplicates()
        );
        let statuses: Vec<u16> = state.requests.iter().map(|r| r.status).collect();
        for status in [503, 500, 429] {
            assert!(statuses.contains(&status), "{statuses:?}");
        }
    });
    let status = rig.handle.status().snapshot();
    assert_eq!(
        (status.events_sent, status.events_dead_lettered),
        (1_000, 0)
    );
    assert!(status.events_retried > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_dead_lettered_and_413_splits() {
    let hook = receiver(None, "X-Siemrelay-Signature");
    hook.script([ScriptedReply::status(422)]);
    let rig = start_rig(
        sink(
            &format!("{}{PATH}", hook.url()),
            json!({ "max_events": 10 }),
            json!({}),
        ),
        &fast_retry(),
    );
    let sent = events(10);
    rig.push(&sent).await;
    rig.drain().await;
    let (entries, _) = read_entries(rig.handle.dead_letter().path()).expect("dead letters");
    assert_eq!(entries.len(), 10);
    assert!(
        entries[0].error.contains("HTTP 422"),
        "{}",
        entries[0].error
    );
    assert_eq!(entries[0].attempts, 1);
    assert_eq!(hook.distinct_events(), 0);

    // A receiver that takes at most ~8 KiB answers 413 to a bigger body: the exporter halves it.
    let small = FakeHttpSink::start(HttpSinkOptions {
        path: Some(PATH.into()),
        max_body: 8 << 10,
        ..Default::default()
    });
    let rig = start_rig(
        sink(&format!("{}{PATH}", small.url()), json!({}), json!({})),
        &fast_retry(),
    );
    rig.push(&events(200)).await;
    rig.drain().await;
    small.read(|state| {
        assert_eq!(state.events.total(), 200);
        assert!(state.requests.iter().any(|r| r.status == 413));
        assert!(state.max_body_bytes <= 8 << 10);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_with_the_configured_header_and_secret() {
    let hook = receiver(Some("hook-secret"), "X-Toktra-Signature");
    let signing =
        |secret: &str| json!({ "signing": { "secret": secret, "header": "X-Toktra-Signature" } });
    let right = start_rig(
        sink(
            &format!("{}{PATH}", hook.url()),
            json!({ "max_events": 50 }),
            signing("hook-secret"),
        ),
        &fast_retry(),
    );
    right.push(&events(200)).await;
    right.drain().await;
    let checks = hook.signatures();
    assert!(checks.passed >= 4);
    assert_eq!(checks.failed, 0);

    let wrong = start_rig(
        sink(
            &format!("{}{PATH}", hook.url()),
            json!({}),
            signing("guess"),
        ),
        &fast_retry(),
    );
    wrong.push(&events(10)).await;
    wrong.drain().await;
    assert!(hook.signatures().failed >= 1);
    assert_eq!(hook.signatures().passed, checks.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_longer_than_max_elapsed_time_fails_and_dead_letters() {
    let hook = receiver(None, "X-Siemrelay-Signature");
    hook.server().go_down();
    let config = delivery(
        json!({ "initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "1s" }),
    );
    let rig = start_rig(
        sink(&format!("{}{PATH}", hook.url()), json!({}), json!({})),
        &config,
    );
    rig.push(&events(30)).await;
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
            == 30)
        .await
    );
    let snapshot = status.snapshot();
    assert_eq!(
        snapshot.events_sent
            + snapshot.events_dead_lettered
            + rig.handle.queue().depth().events as u64,
        30
    );
    rig.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_reports_good_unauthorized_and_unreachable() {
    let hook = receiver(None, "X-Siemrelay-Signature");
    let good = test_delivery(
        sink(&format!("{}{PATH}", hook.url()), json!({}), json!({})).as_ref(),
        Duration::from_secs(5),
    )
    .await;
    assert!(good.ok, "{good:?}");
    assert_eq!(
        hook.read(|s| s.events.counts.get(&good.event_id).copied()),
        Some(1)
    );

    hook.script([ScriptedReply::status(401)]);
    let denied = test_delivery(
        sink(&format!("{}{PATH}", hook.url()), json!({}), json!({})).as_ref(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        (denied.ok, denied.outcome.as_str(), denied.http_status),
        (false, "permanent", Some(401))
    );
    assert!(
        denied
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("Authorization"),
        "{denied:?}"
    );

    let wrong_path = test_delivery(
        sink(&format!("{}/nope", hook.url()), json!({}), json!({})).as_ref(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(wrong_path.http_status, Some(404));
    assert!(
        wrong_path.hint.as_deref().unwrap_or("").contains("/nope"),
        "{wrong_path:?}"
    );

    let port = siemrelay_e2e::free_port();
    let unreachable = test_delivery(
        sink(
            &format!("http://127.0.0.1:{port}{PATH}"),
            json!({}),
            json!({}),
        )
        .as_ref(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        (unreachable.ok, unreachable.outcome.as_str()),
        (false, "retry")
    );
    assert!(
        unreachable
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("unreachable"),
        "{unreachable:?}"
    );
}
