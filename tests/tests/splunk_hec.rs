//! Issue 5 acceptance with the real binary: webhook receiver → `splunk_hec` exporter → fake HEC,
//! and `siemrelay test` against a good, a bad-token and an unreachable HEC.

use siemrelay_e2e::events::{post_events, start_listening};
use siemrelay_e2e::fake::hec::{FakeHec, HecOptions, Scripted, TOKEN};
use siemrelay_e2e::{Siemrelay, free_port, run_test_command};
use std::collections::HashMap;
use std::time::Duration;

const SECRET: &str = "e2e-signing-secret";

fn config(receiver_port: u16, hec_url: &str, extra: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
exporters:
  splunk_hec/prod:
    endpoint: "{hec_url}"
    token: "${{env:HEC_TOKEN}}"
    index: security
    compression: gzip
    signing: {{ secret: "${{env:SIGNING_SECRET}}" }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 30s }}
    {extra}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [splunk_hec/prod] }}
"#
    )
}

fn start(port: u16, hec: &FakeHec, extra: &str) -> Siemrelay {
    start_listening(
        &config(port, &hec.url(), extra),
        &[("HEC_TOKEN", TOKEN), ("SIGNING_SECRET", SECRET)],
        port,
    )
}

#[tokio::test]
async fn ten_thousand_events_via_the_webhook_reach_hec_once_each() {
    let hec = FakeHec::start(HecOptions {
        signing_secret: Some(SECRET.into()),
        ..Default::default()
    });
    let port = free_port();
    let mut relay = start(port, &hec, "");
    let sent = post_events(port, 100, 100).await;
    assert!(
        hec.events_reached(10_000, Duration::from_secs(60)).await,
        "only {} of 10,000 events reached HEC; logs:\n{}",
        hec.distinct_events(),
        relay.logs()
    );
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean shutdown");

    assert_eq!(
        hec.total_events(),
        10_000,
        "duplicates: {:?}",
        hec.read(|s| s.events.duplicates())
    );
    assert!(hec.violations().is_empty(), "{:?}", hec.violations());
    let by_id: HashMap<String, serde_json::Value> = hec.read(|s| {
        s.events
            .items
            .iter()
            .map(|e| {
                (
                    e["event"]["event_id"].as_str().unwrap_or("").to_string(),
                    e.clone(),
                )
            })
            .collect()
    });
    for id in &sent {
        let envelope = by_id
            .get(id)
            .unwrap_or_else(|| panic!("event {id} missing at HEC"));
        assert_eq!(envelope["sourcetype"], "siemrelay:security");
        assert_eq!(envelope["index"], "security");
        assert_eq!(envelope["source"], "toktra");
        assert_eq!(envelope["event"]["event_type"], "policy_violation");
        assert!(envelope["event"]["attributes"]["user_email"].is_string());
        let time = envelope["time"].as_f64().expect("numeric time");
        assert_eq!(time.trunc(), 1_795_165_200.0);
    }
    hec.read(|state| {
        assert!(
            state.max_body_bytes <= 1_000_000,
            "request of {} bytes",
            state.max_body_bytes
        );
        for headers in &state.headers {
            assert_eq!(headers["authorization"], format!("Splunk {TOKEN}").as_str());
            assert_eq!(headers["content-encoding"], "gzip");
        }
        assert_eq!(state.signatures.failed, 0);
        assert_eq!(state.signatures.passed, state.requests);
    });
}

#[tokio::test]
async fn a_busy_hec_is_retried_and_every_event_arrives_once() {
    let hec = FakeHec::start_default();
    hec.script([
        Scripted::busy(),
        Scripted::internal_error(),
        Scripted::busy(),
    ]);
    let port = free_port();
    let mut relay = start(port, &hec, "");
    let sent = post_events(port, 10, 100).await;
    assert!(
        hec.events_reached(1_000, Duration::from_secs(30)).await,
        "logs:\n{}",
        relay.logs()
    );
    relay.terminate(Duration::from_secs(30));
    for id in &sent {
        assert_eq!(hec.count_of(id), 1, "event {id}");
    }
    assert!(hec.read(|s| s.statuses.contains(&503)));
}

fn test_config(endpoint: &str, token: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{}" }}
exporters:
  splunk_hec/prod: {{ endpoint: "{endpoint}", token: "{token}", sending: {{ timeout: 5s }} }}
service:
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [splunk_hec/prod] }}
"#,
        free_port()
    )
}

fn siemrelay_test(config: &str) -> (bool, String) {
    run_test_command("splunk_hec/prod", config, &[])
}

#[test]
fn siemrelay_test_reports_good_bad_token_and_unreachable() {
    let hec = FakeHec::start_default();
    let (ok, text) = siemrelay_test(&test_config(&hec.url(), TOKEN));
    assert!(ok, "{text}");
    assert!(text.contains("delivered"), "{text}");
    assert_eq!(hec.distinct_events(), 1);

    let (ok, text) = siemrelay_test(&test_config(
        &hec.url(),
        "00000000-0000-0000-0000-000000000000",
    ));
    assert!(!ok, "{text}");
    assert!(text.contains("HTTP 403"), "{text}");
    assert!(text.contains("hint:") && text.contains("token"), "{text}");
    assert!(
        !text.contains("00000000-0000-0000-0000-000000000000"),
        "the token never prints: {text}"
    );

    let (ok, text) = siemrelay_test(&test_config(
        &format!("http://127.0.0.1:{}", free_port()),
        TOKEN,
    ));
    assert!(!ok, "{text}");
    assert!(text.contains("unreachable"), "{text}");
}
