//! Issue 5 acceptance with the real binary: webhook receiver → `webhook` exporter → fake webhook
//! receiver (signature verified, custom headers), and `siemrelay test` good / refused / unreachable.

use siemrelay_e2e::events::{post_events, start_listening};
use siemrelay_e2e::fake::http_sink::{FakeHttpSink, HttpSinkOptions, ScriptedReply};
use siemrelay_e2e::{free_port, run_test_command};
use std::time::Duration;

const SECRET: &str = "hook-secret";
const PATH: &str = "/hooks/siem";

fn config(receiver_port: u16, hook_url: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
exporters:
  webhook/soar:
    endpoint: "{hook_url}{PATH}"
    format: json_array
    headers: {{ X-Team: sec, Authorization: "Bearer ${{env:HOOK_TOKEN}}" }}
    signing: {{ secret: "${{env:HOOK_SECRET}}", header: X-Toktra-Signature }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 30s }}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [webhook/soar] }}
"#
    )
}

fn receiver() -> FakeHttpSink {
    FakeHttpSink::start(HttpSinkOptions {
        path: Some(PATH.into()),
        secret: Some(SECRET.into()),
        signature_header: "X-Toktra-Signature".into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn ten_thousand_events_reach_the_hook_once_each_signed() {
    let hook = receiver();
    hook.script([ScriptedReply::status(503), ScriptedReply::throttled(1)]);
    let port = free_port();
    let mut relay = start_listening(
        &config(port, &hook.url()),
        &[("HOOK_SECRET", SECRET), ("HOOK_TOKEN", "t0k")],
        port,
    );
    let sent = post_events(port, 100, 100).await;
    assert!(
        hook.events_reached(10_000, Duration::from_secs(60)).await,
        "only {} arrived; logs:\n{}",
        hook.distinct_events(),
        relay.logs()
    );
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean shutdown");
    hook.read(|state| {
        assert_eq!(
            state.events.total(),
            10_000,
            "duplicates: {:?}",
            state.events.duplicates()
        );
        for id in &sent {
            assert_eq!(state.events.counts.get(id), Some(&1), "event {id}");
        }
        assert!(state.max_items <= 1_000);
        for request in state.requests.iter().filter(|r| r.status == 200) {
            assert_eq!(request.headers["x-team"], "sec");
            assert_eq!(request.headers["authorization"], "Bearer t0k");
            assert_eq!(request.headers["content-type"], "application/json");
        }
        assert_eq!(state.signatures.failed, 0);
    });
    assert!(
        !relay.logs().contains("t0k"),
        "header values are never logged"
    );
}

fn siemrelay_test(endpoint: &str) -> (bool, String) {
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{}" }}
exporters:
  webhook/soar: {{ endpoint: "{endpoint}", sending: {{ timeout: 5s }} }}
service:
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [webhook/soar] }}
"#,
        free_port()
    );
    run_test_command("webhook/soar", &config, &[])
}

#[test]
fn siemrelay_test_reports_good_refused_and_unreachable() {
    let hook = FakeHttpSink::start(HttpSinkOptions {
        path: Some(PATH.into()),
        ..Default::default()
    });
    let (ok, text) = siemrelay_test(&format!("{}{PATH}", hook.url()));
    assert!(ok, "{text}");
    assert_eq!(hook.distinct_events(), 1);

    hook.script([ScriptedReply::status(401)]);
    let (ok, text) = siemrelay_test(&format!("{}{PATH}", hook.url()));
    assert!(!ok, "{text}");
    assert!(
        text.contains("HTTP 401") && text.contains("Authorization"),
        "{text}"
    );

    let (ok, text) = siemrelay_test(&format!("http://127.0.0.1:{}{PATH}", free_port()));
    assert!(!ok, "{text}");
    assert!(text.contains("unreachable"), "{text}");
}
