//! Issue 9 acceptance with the real binary: webhook receiver → `sentinel` exporter → the fake
//! Entra ID + Logs Ingestion endpoint (a token that expires mid-run, 413 split, 429), and
//! `siemrelay test` with a good secret, a bad secret and an unreachable endpoint.

use siemrelay_e2e::events::{post_events, start_listening};
use siemrelay_e2e::fake::azure::{
    AzureOptions, CLIENT_ID, CLIENT_SECRET, DCR_ID, FakeAzure, STREAM, Scripted, TENANT_ID,
};
use siemrelay_e2e::{free_port, run_test_command};
use std::time::Duration;

fn config(receiver_port: u16, url: &str, secret: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
exporters:
  sentinel:
    endpoint: "{url}"
    authority_host: "{url}"
    dcr_immutable_id: {DCR_ID}
    stream_name: {STREAM}
    tenant_id: {TENANT_ID}
    client_id: {CLIENT_ID}
    client_secret: "{secret}"
    sending: {{ timeout: 5s }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 30s }}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [sentinel] }}
"#
    )
}

#[tokio::test]
async fn ten_thousand_events_via_the_webhook_reach_sentinel_once_each() {
    let fake = FakeAzure::start_with(AzureOptions {
        token_lifetime: 2,
        ..Default::default()
    });
    fake.script([Scripted::throttled(1)]);
    fake.set_max_body(400_000);
    let port = free_port();
    let mut relay = start_listening(&config(port, &fake.url(), CLIENT_SECRET), &[], port);
    let mut sent = post_events(port, 50, 100).await;
    assert!(
        fake.events_reached(5_000, Duration::from_secs(30)).await,
        "logs:\n{}",
        relay.logs()
    );
    // Past the first token's lifetime: the second half needs a refreshed token.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    sent.extend(post_events(port, 50, 100).await);
    assert!(
        fake.events_reached(10_000, Duration::from_secs(60)).await,
        "only {} of 10,000 events arrived; logs:\n{}",
        fake.distinct_events(),
        relay.logs()
    );
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean shutdown");
    fake.read(|state| {
        assert_eq!(
            state.records.total(),
            10_000,
            "{:?}",
            state.records.duplicates()
        );
        assert!(state.tokens_issued >= 2, "{}", state.tokens_issued);
        assert_eq!(state.uploads_with(401), 0);
        assert_eq!(state.uploads_with(429), 1);
        assert!(state.uploads_with(413) >= 1);
        let by_id = state.records_by_id();
        for id in &sent {
            let record = by_id
                .get(id.as_str())
                .copied()
                .unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(record["EventType"], "policy_violation");
            assert_eq!(record["Severity"], "high");
            assert_eq!(record["SeverityNumber"], 17);
            assert_eq!(record["Source"], "toktra");
            assert!(
                record["TimeGenerated"]
                    .as_str()
                    .unwrap()
                    .starts_with("2026-11-20T09:00:00.")
            );
            assert!(
                record["Attributes"]["user_email"]
                    .as_str()
                    .unwrap()
                    .starts_with('u')
            );
        }
    });
    assert!(
        !relay.logs().contains(CLIENT_SECRET),
        "the secret never prints"
    );
}

fn siemrelay_test(config: &str) -> (bool, String) {
    run_test_command("sentinel", config, &[])
}

#[test]
fn siemrelay_test_reports_good_bad_secret_and_unreachable() {
    let fake = FakeAzure::start();
    let (ok, text) = siemrelay_test(&config(free_port(), &fake.url(), CLIENT_SECRET));
    assert!(ok, "{text}");
    assert!(text.contains("delivered"), "{text}");
    assert_eq!(fake.distinct_events(), 1);

    let (ok, text) = siemrelay_test(&config(free_port(), &fake.url(), "bad-secret-value"));
    assert!(!ok, "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(text.contains("client_secret"), "{text}");
    assert!(
        !text.contains("bad-secret-value"),
        "the secret never prints: {text}"
    );

    fake.set_forbidden(true);
    let (ok, text) = siemrelay_test(&config(free_port(), &fake.url(), CLIENT_SECRET));
    assert!(!ok, "{text}");
    assert!(
        text.contains("403") && text.contains("Monitoring Metrics Publisher"),
        "{text}"
    );

    let closed = format!("http://127.0.0.1:{}", free_port());
    let (ok, text) = siemrelay_test(&config(free_port(), &closed, CLIENT_SECRET));
    assert!(!ok, "{text}");
    assert!(text.contains("cannot reach"), "{text}");
}
