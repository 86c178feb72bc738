//! Issue 5 acceptance with the real binary: webhook receiver → `datadog` exporter → fake Datadog
//! intake, and `siemrelay test` against a good key, a bad key and an unreachable intake.

use siemrelay_e2e::events::{ndjson_body_with, start_listening};
use siemrelay_e2e::fake::datadog::{API_KEY, DatadogOptions, FakeDatadog, Scripted};
use siemrelay_e2e::{Siemrelay, free_port, run_test_command};
use std::time::Duration;

const SECRET: &str = "e2e-signing-secret";

fn config(receiver_port: u16, endpoint: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
exporters:
  datadog:
    site: datadoghq.eu
    endpoint: "{endpoint}"
    api_key: "${{env:DD_API_KEY}}"
    service: gateway
    ddtags: "env:prod,team:sec"
    tag_attributes: [tags.env]
    signing: {{ secret: "${{env:SIGNING_SECRET}}" }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 30s }}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [datadog] }}
"#
    )
}

/// A standard event with a `tags.env` of `prod` or `stage` (for `tag_attributes`).
fn event_line(id: &str, request: usize, i: usize) -> String {
    let env = ["prod", "stage"][i % 2];
    siemrelay_e2e::events::event_line(id, request, i)
        .replace("}\n", &format!(",\"tags\":{{\"env\":\"{env}\"}}}}\n"))
}

async fn post_events(port: u16, requests: usize, per_request: usize) -> Vec<String> {
    siemrelay_e2e::post_ndjson_requests(port, requests, |request| {
        ndjson_body_with(per_request, |id, i| event_line(id, request, i))
    })
    .await
}

fn start(port: u16, fake: &FakeDatadog) -> Siemrelay {
    start_listening(
        &config(port, &fake.url()),
        &[("DD_API_KEY", API_KEY), ("SIGNING_SECRET", SECRET)],
        port,
    )
}

#[tokio::test]
async fn ten_thousand_events_via_the_webhook_reach_datadog_once_each() {
    let fake = FakeDatadog::start_with(DatadogOptions {
        signing_secret: Some(SECRET.into()),
        ..Default::default()
    });
    let port = free_port();
    let mut relay = start(port, &fake);
    let sent = post_events(port, 100, 100).await;
    assert!(
        fake.events_reached(10_000, Duration::from_secs(60)).await,
        "only {} of 10,000 events reached Datadog; logs:\n{}",
        fake.distinct_events(),
        relay.logs()
    );
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean shutdown");
    fake.read(|state| {
        assert_eq!(
            state.logs.total(),
            10_000,
            "duplicates: {:?}",
            state.logs.duplicates()
        );
        for id in &sent {
            let log = state
                .log(id)
                .unwrap_or_else(|| panic!("event {id} missing at Datadog"));
            assert_eq!(log["ddsource"], "siemrelay");
            assert_eq!(log["service"], "gateway");
            assert_eq!(log["status"], "error");
            assert_eq!(log["severity"], "high");
            assert_eq!(log["severity_number"], 17);
            assert_eq!(log["source"], "toktra");
            assert!(log["message"].as_str().unwrap().starts_with("request "));
            let env = log["attributes"]["tags"]["env"].as_str().unwrap();
            assert_eq!(
                log["ddtags"],
                format!("env:prod,team:sec,event_type:policy_violation,env:{env}")
            );
            let ms = log["timestamp"].as_i64().unwrap();
            assert_eq!(ms / 1000, 1_795_165_200);
        }
        assert!(state.max_entries <= 1000);
        assert!(state.max_body_bytes <= 5_000_000);
        for request in &state.requests {
            assert_eq!(request.headers["dd-api-key"], API_KEY);
            assert_eq!(request.headers["content-encoding"], "gzip");
        }
        assert_eq!(state.signatures.failed, 0);
        assert_eq!(state.signatures.passed, state.requests.len());
    });
}

#[tokio::test]
async fn throttled_intake_is_retried_after_retry_after_and_each_event_arrives_once() {
    let fake = FakeDatadog::start();
    fake.script([Scripted::throttled(1), Scripted::unavailable()]);
    let port = free_port();
    let mut relay = start(port, &fake);
    let sent = post_events(port, 10, 100).await;
    assert!(
        fake.events_reached(1_000, Duration::from_secs(30)).await,
        "logs:\n{}",
        relay.logs()
    );
    relay.terminate(Duration::from_secs(30));
    fake.read(|state| {
        for id in &sent {
            assert_eq!(state.logs.counts.get(id), Some(&1), "event {id}");
        }
        assert_eq!(state.requests_with_status(429), 1);
        assert_eq!(state.requests_with_status(503), 1);
    });
}

fn test_config(endpoint: &str, key: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{}" }}
exporters:
  datadog: {{ site: datadoghq.eu, endpoint: "{endpoint}", api_key: "{key}", sending: {{ timeout: 5s }} }}
service:
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [datadog] }}
"#,
        free_port()
    )
}

fn siemrelay_test(config: &str) -> (bool, String) {
    run_test_command("datadog", config, &[])
}

#[test]
fn siemrelay_test_reports_good_bad_key_and_unreachable() {
    let fake = FakeDatadog::start();
    let (ok, text) = siemrelay_test(&test_config(&fake.url(), API_KEY));
    assert!(ok, "{text}");
    assert!(text.contains("delivered"), "{text}");
    assert_eq!(fake.distinct_events(), 1);

    let (ok, text) = siemrelay_test(&test_config(&fake.url(), "bad-key-0000"));
    assert!(!ok, "{text}");
    assert!(text.contains("HTTP 403"), "{text}");
    assert!(text.contains("hint:") && text.contains("API key"), "{text}");
    assert!(
        !text.contains("bad-key-0000"),
        "the key never prints: {text}"
    );

    let (ok, text) = siemrelay_test(&test_config(
        &format!("http://127.0.0.1:{}", free_port()),
        API_KEY,
    ));
    assert!(!ok, "{text}");
    assert!(text.contains("cannot reach the Datadog intake"), "{text}");
}
