//! Issue 25, outbound webhook signatures, with the real binary: for each `signing.scheme`
//! (`body`, `timestamped`, `standard_webhooks`) a relay's `webhook` exporter sends to a second
//! relay whose webhook receiver verifies the matching `verify.scheme`; the `standard_webhooks`
//! requests verify with the Standard Webhooks reference library (`standardwebhooks` from PyPI);
//! a captured timestamped request replayed within the window is refused as a replay, and
//! outside the window as too old.

use siemrelay_e2e::events::{post_events, start_listening};
use siemrelay_e2e::fake::http_sink::{FakeHttpSink, HttpSinkOptions, SeenRequest};
use siemrelay_e2e::{free_port, python, read_ndjson_files};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// A `standard_webhooks` secret: `whsec_` + base64 of 32 bytes.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";
const PLAIN: &str = "plain-shared-secret";

/// The exporter's `signing` block and the receiver's `verify` block for one scheme.
fn blocks(scheme: &str) -> (String, String) {
    match scheme {
        "body" => (
            format!("{{ secret: \"{PLAIN}\" }}"),
            format!(
                "{{ scheme: hmac_sha256, header: X-Siemrelay-Signature, secrets: [\"{PLAIN}\"] }}"
            ),
        ),
        "timestamped" => (
            format!("{{ secret: \"{PLAIN}\", scheme: timestamped }}"),
            format!("{{ scheme: timestamped, secrets: [\"{PLAIN}\"], tolerance: 2s }}"),
        ),
        "standard_webhooks" => (
            format!("{{ secret: \"{WHSEC}\", scheme: standard_webhooks }}"),
            format!("{{ scheme: standard_webhooks, secrets: [\"{WHSEC}\"], tolerance: 2s }}"),
        ),
        other => panic!("unknown scheme {other}"),
    }
}

fn sender_config(port: u16, url: &str, signing: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
exporters:
  webhook/next:
    endpoint: "{url}"
    format: ndjson
    signing: {signing}
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 60s }}
service:
  pipelines:
    p: {{ receivers: [webhook], processors: [], exporters: [webhook/next] }}
"#
    )
}

fn verifying_config(port: u16, verify: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}", verify: {verify} }}
exporters:
  file: {{ path: "./out/events.ndjson" }}
service:
  pipelines:
    p: {{ receivers: [webhook], processors: [], exporters: [file] }}
"#
    )
}

#[tokio::test]
async fn each_scheme_of_our_exporter_verifies_at_our_receiver() {
    for scheme in ["body", "timestamped", "standard_webhooks"] {
        let (signing, verify) = blocks(scheme);
        let verifying_port = free_port();
        let mut verifying = start_listening(
            &verifying_config(verifying_port, &verify),
            &[],
            verifying_port,
        );
        let sender_port = free_port();
        let url = format!("http://127.0.0.1:{verifying_port}/v1/events");
        let mut sender = start_listening(
            &sender_config(sender_port, &url, &signing),
            &[],
            sender_port,
        );
        let sent: HashSet<String> = post_events(sender_port, 5, 40).await.into_iter().collect();
        let out = verifying.dir().join("out");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut events = Vec::new();
        while Instant::now() < deadline {
            events = read_ndjson_files(&out, "events");
            if events.len() >= sent.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let verified_by = match scheme {
            "body" => "hmac_sha256",
            other => other,
        };
        assert_eq!(
            events.len(),
            sent.len(),
            "{scheme}: sender logs:\n{}\nreceiver logs:\n{}",
            sender.logs(),
            verifying.logs()
        );
        for event in &events {
            let id = event["event_id"].as_str().expect("event_id");
            assert!(sent.contains(id), "{scheme}: unexpected {id}");
            assert_eq!(
                event["attributes"]["verified_by"]["scheme"], verified_by,
                "{scheme}: {event}"
            );
        }
        assert!(
            !verifying.logs().contains("signature verification failed"),
            "{scheme}: {}",
            verifying.logs()
        );
        sender.terminate(Duration::from_secs(20));
        verifying.terminate(Duration::from_secs(20));
    }
}

/// Starts a relay signing with `signing` towards a recording fake; returns the first request
/// it sent (after posting a few events).
async fn capture_signed_request(signing: &str) -> SeenRequest {
    let hook = FakeHttpSink::start(HttpSinkOptions {
        path: Some("/hook".into()),
        ..Default::default()
    });
    let port = free_port();
    let url = format!("{}/hook", hook.url());
    let mut relay = start_listening(&sender_config(port, &url, signing), &[], port);
    post_events(port, 1, 10).await;
    assert!(
        hook.events_reached(10, Duration::from_secs(30)).await,
        "logs:\n{}",
        relay.logs()
    );
    relay.terminate(Duration::from_secs(20));
    hook.read(|state| state.requests[0].clone())
}

#[tokio::test]
async fn standard_webhooks_requests_verify_with_the_reference_library() {
    let (signing, _) = blocks("standard_webhooks");
    let request = capture_signed_request(&signing).await;
    let header = |name: &str| {
        request.headers[name]
            .to_str()
            .expect("ascii header")
            .to_string()
    };
    let signature = header("webhook-signature");
    assert!(signature.starts_with("v1,"), "{signature}");
    let dir = tempfile::tempdir().expect("tempdir");
    let body_path = dir.path().join("body");
    std::fs::write(&body_path, &request.body).expect("write body");
    let headers = serde_json::json!({
        "webhook-id": header("webhook-id"),
        "webhook-timestamp": header("webhook-timestamp"),
        "webhook-signature": signature,
    });
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
secret, headers, body_path = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
body = open(body_path, "rb").read()
Webhook(secret).verify(body, headers, json_parse=False)
try:
    Webhook(secret).verify(body + b" ", headers, json_parse=False)
    print("tampered body verified")
    sys.exit(1)
except WebhookVerificationError:
    pass
print("verified")
"#;
    let output = std::process::Command::new(python())
        .args(["-c", script, WHSEC, &headers.to_string()])
        .arg(&body_path)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "the `standardwebhooks` package (tests/python/requirements.txt; run \
         scripts/setup-test-env.sh) refused our request: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "verified");
}

/// Replays `request` to a receiver verifying with `verify`; returns status and body.
async fn replay(port: u16, request: &SeenRequest) -> (u16, String) {
    let mut builder = reqwest::Client::new().post(format!("http://127.0.0.1:{port}/v1/events"));
    for (name, value) in &request.headers {
        if name.as_str().starts_with("webhook-")
            || name.as_str().starts_with("x-siemrelay-")
            || name == "content-type"
        {
            builder = builder.header(name, value);
        }
    }
    let response = builder
        .body(request.body.clone())
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn replays_inside_and_outside_the_window_are_refused() {
    for scheme in ["timestamped", "standard_webhooks"] {
        let (signing, verify) = blocks(scheme);
        let request = capture_signed_request(&signing).await;
        let port = free_port();
        let mut verifying = start_listening(&verifying_config(port, &verify), &[], port);
        let (status, body) = replay(port, &request).await;
        assert_eq!(status, 200, "{scheme}: first delivery: {body}");
        let (status, body) = replay(port, &request).await;
        assert_eq!(status, 401, "{scheme}: replay inside the window: {body}");
        assert!(body.contains("replay"), "{scheme}: {body}");
        // Wait until the signed timestamp is more than the 2 s tolerance in the past.
        let ts_header = if scheme == "timestamped" {
            "x-siemrelay-timestamp"
        } else {
            "webhook-timestamp"
        };
        let signed: u64 = request.headers[ts_header]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("unix seconds");
        while std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            <= signed + 3
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (status, body) = replay(port, &request).await;
        assert_eq!(status, 401, "{scheme}: replay outside the window: {body}");
        assert!(body.contains("tolerance"), "{scheme}: {body}");
        verifying.terminate(Duration::from_secs(20));
    }
}
