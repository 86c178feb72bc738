//! Issue 9 acceptance with the real binary: webhook receiver → `cloudwatch_logs` exporter → the
//! `moto` AWS emulator (credentials from the environment through the standard AWS chain), and
//! `siemrelay test` against the fake CloudWatch Logs endpoint with good and bad credentials and
//! an unreachable endpoint.

use siemrelay_e2e::events::start_listening;
use siemrelay_e2e::fake::cloudwatch::{ACCESS_KEY, FakeCloudWatch, Moto, REGION, SECRET_KEY};
use siemrelay_e2e::{free_port, run_test_command};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const GROUP: &str = "/security/siemrelay";

fn config(receiver_port: u16, endpoint: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
exporters:
  cloudwatch_logs:
    region: {REGION}
    log_group: {GROUP}
    log_stream: "{{host}}"
    endpoint: "{endpoint}"
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 30s }}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [cloudwatch_logs] }}
"#
    )
}

/// Credentials for the AWS chain from the environment only (no files, no instance metadata).
fn aws_env<'a>(key: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        ),
    ]
}

/// NDJSON bodies: events over the last three days (out of order), hosts host-0..host-3.
fn ndjson_bodies(
    requests: usize,
    per_request: usize,
) -> (Vec<String>, HashMap<String, (String, i64)>) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let total = requests * per_request;
    let span_ms = 72 * 3_600_000i64;
    let mut expected = HashMap::new();
    let mut bodies = Vec::new();
    for request in 0..requests {
        let mut body = String::new();
        for i in 0..per_request {
            let n = request * per_request + i;
            let slot = (n * 7919) % total;
            let millis = now_ms - 3_600_000 - slot as i64 * span_ms / total as i64;
            let id = uuid::Uuid::new_v4().to_string();
            let host = format!("host-{}", n % 4);
            body.push_str(&format!(
                "{{\"event_id\":\"{id}\",\"timestamp\":{millis},\"event_type\":\"policy_violation\",\"severity\":\"high\",\"source\":\"toktra\",\"summary\":\"event {n}\",\"host\":\"{host}\"}}\n"
            ));
            expected.insert(id, (host, millis));
        }
        bodies.push(body);
    }
    (bodies, expected)
}

#[tokio::test]
async fn ten_thousand_events_via_the_webhook_reach_moto_once_each() {
    let moto = Moto::start();
    let port = free_port();
    let mut relay = start_listening(
        &config(port, &moto.url()),
        &aws_env("testing", "testing"),
        port,
    );
    let (bodies, expected) = ndjson_bodies(100, 100);
    siemrelay_e2e::post_ndjson_bodies(port, bodies).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = moto.read_events(GROUP);
        if stored.len() >= 10_000 || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let status = relay.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean shutdown; logs:\n{}",
        relay.logs()
    );
    assert_eq!(stored.len(), 10_000, "logs:\n{}", relay.logs());
    let mut seen = HashMap::new();
    for (stream, timestamp, message) in stored {
        let event: serde_json::Value =
            serde_json::from_str(&message).expect("message is the JSON form");
        let id = event["event_id"].as_str().unwrap().to_string();
        let (host, millis) = &expected[&id];
        assert_eq!(&stream, host);
        assert_eq!(timestamp, *millis);
        assert_eq!(event["event_type"], "policy_violation");
        assert_eq!(event["severity"], "high");
        assert_eq!(event["source"], "toktra");
        assert!(seen.insert(id, ()).is_none(), "an event was stored twice");
    }
    let mut streams = moto.streams(GROUP);
    streams.sort();
    assert_eq!(streams, ["host-0", "host-1", "host-2", "host-3"]);
}

fn siemrelay_test(endpoint: &str, key: &str, secret: &str) -> (bool, String) {
    run_test_command(
        "cloudwatch_logs",
        &config(free_port(), endpoint),
        &aws_env(key, secret),
    )
}

#[test]
fn siemrelay_test_reports_good_bad_credentials_and_unreachable() {
    let fake = FakeCloudWatch::start();
    let (ok, text) = siemrelay_test(&fake.url(), ACCESS_KEY, SECRET_KEY);
    assert!(ok, "{text}");
    assert!(text.contains("delivered"), "{text}");
    assert_eq!(fake.distinct_events(), 1);
    assert_eq!(
        fake.read(|s| s.streams.len()),
        1,
        "stream created on first use"
    );

    let (ok, text) = siemrelay_test(&fake.url(), ACCESS_KEY, "wrong-secret-value");
    assert!(!ok, "{text}");
    assert!(text.contains("InvalidSignatureException"), "{text}");
    assert!(text.contains("AWS_SECRET_ACCESS_KEY"), "{text}");
    assert!(
        !text.contains("wrong-secret-value"),
        "the secret never prints: {text}"
    );

    let (ok, text) = siemrelay_test(
        &format!("http://127.0.0.1:{}", free_port()),
        ACCESS_KEY,
        SECRET_KEY,
    );
    assert!(!ok, "{text}");
    assert!(text.contains("cannot reach CloudWatch Logs"), "{text}");
}
