//! The official OpenTelemetry Python SDK (tests/python/otlp_send.py) exports 1,000 log records
//! over gRPC and HTTP, gzip on and off; every record arrives with its fields mapped.
//!
//! Needs the virtualenv made by `scripts/setup-test-env.sh` (or `SIEMRELAY_PYTHON` pointing at
//! a Python with the OpenTelemetry SDK and OTLP exporters). Without it these tests fail.

mod otlp_support;

use otlp_support::{Mode, Running, by_seq, plain_config, start};
use serde_json::json;
use std::path::PathBuf;

const RECORDS: usize = 1_000;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let python = std::env::var_os("SIEMRELAY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/py-venv/bin/python"));
    assert!(
        python.exists(),
        "Python with the OpenTelemetry SDK not found at {}; create it with \
         `scripts/setup-test-env.sh` (from the workspace root) or set SIEMRELAY_PYTHON",
        python.display()
    );
    python
}

/// Runs otlp_send.py against the receiver and asserts it exited 0.
async fn send(running: &Running, protocol: &str, gzip: bool, token: Option<&str>) {
    let endpoint = match protocol {
        "grpc" => running.grpc_url(),
        _ => running.http_url("/v1/logs"),
    };
    let mut command = tokio::process::Command::new(python());
    command
        .arg(workspace().join("tests/python/otlp_send.py"))
        .args(["--protocol", protocol, "--endpoint", &endpoint])
        .args(["--count", &RECORDS.to_string()])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .kill_on_drop(true);
    if gzip {
        command.arg("--gzip");
    }
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .expect("otlp_send.py finishes within 60 s")
        .expect("run otlp_send.py");
    assert!(
        output.status.success(),
        "otlp_send.py --protocol {protocol} gzip={gzip} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn check(events: Vec<siemrelay_core::Event>) {
    for (seq, event) in by_seq(events, RECORDS).iter().enumerate() {
        let a = &event.attributes;
        assert_eq!(
            event.summary.as_deref(),
            Some(format!("python record {seq}").as_str())
        );
        assert_eq!(event.event_type, "python.login");
        assert_eq!(
            event.event_id.to_string(),
            format!("0192f0c4-8a52-7c3e-9d4b-{seq:012x}"),
            "event.id attribute becomes event_id"
        );
        assert_eq!(
            (event.severity.number, event.severity.text.as_str()),
            (13, "WARN")
        );
        assert_eq!(a["user"], format!("user-{seq}"));
        assert_eq!(a["ratio"], 0.5);
        assert_eq!(a["tags"], json!(["a", "b"]));
        assert_eq!(a["otel.scope.name"], "siemrelay.python");
        assert_eq!(a["otel.scope.version"], "2.0");
        assert_eq!(event.source.as_deref(), Some("python-sdk"));
        assert_eq!(event.resource["host.name"], "test-host");
        assert_eq!(event.resource["telemetry.sdk.language"], "python");
        assert!(event.timestamp.0 > 1_600_000_000_000_000_000);
    }
}

async fn round_trip(protocol: &str, gzip: bool) {
    let running = start(plain_config(), Mode::Accept).await;
    send(&running, protocol, gzip, None).await;
    check(running.sink.wait_for(RECORDS).await);
    running.stop().await;
}

#[tokio::test]
async fn python_grpc_plain() {
    round_trip("grpc", false).await;
}

#[tokio::test]
async fn python_grpc_gzip() {
    round_trip("grpc", true).await;
}

#[tokio::test]
async fn python_http_plain() {
    round_trip("http", false).await;
}

#[tokio::test]
async fn python_http_gzip() {
    round_trip("http", true).await;
}

/// With a bearer token required and the first batch refused (`Full`), the Python exporter
/// authenticates, retries on UNAVAILABLE / 503 and loses nothing.
#[tokio::test]
async fn python_retries_after_full_with_token() {
    for protocol in ["grpc", "http"] {
        let config = json!({"protocols": {
            "grpc": {"endpoint": "127.0.0.1:0", "auth": {"bearer_token": "py-token"}},
            "http": {"endpoint": "127.0.0.1:0", "auth": {"bearer_token": "py-token"}},
        }});
        let running = start(config, Mode::RefuseFirst(1)).await;
        send(&running, protocol, false, Some("py-token")).await;
        check(running.sink.wait_for(RECORDS).await);
        assert!(running.sink.calls() >= 2, "{protocol}: first call refused");
        running.stop().await;
    }
}
