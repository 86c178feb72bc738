//! Issue 11 acceptance: `docs/openapi.json` is a valid OpenAPI document (openapi-spec-validator),
//! it is what the binary serves, and a property-based run of schemathesis against the live binary
//! (every check except `positive_data_acceptance`: whether an exporter config is valid cannot be
//! said in a JSON schema, and such configs rightly answer 400 with the offending key) finds no
//! 5xx and no response that breaks the schema.

mod admin_support;

use admin_support::{Admin, TOKEN, ndjson, post_webhook};
use siemrelay_e2e::fake::hec::{FakeHec, TOKEN as HEC_TOKEN};
use siemrelay_e2e::{Siemrelay, free_port};
use siemrelay_e2e::{python, repo as workspace};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

fn python_module(module: &str, args: &[&str]) -> std::process::Output {
    // Run in a scratch directory: schemathesis keeps a cache where it runs.
    let scratch = tempfile::tempdir().expect("tempdir");
    let output = Command::new(python())
        .arg("-m")
        .arg(module)
        .args(args)
        .current_dir(scratch.path())
        .output()
        .expect("run python");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named"),
        "{module} is not installed: run `bash scripts/setup-test-env.sh` (tests/python/requirements.txt lists it): {stderr}"
    );
    output
}

#[test]
fn the_openapi_document_is_valid() {
    let doc = workspace().join("docs/openapi.json");
    let output = python_module("openapi_spec_validator", &[&doc.display().to_string()]);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // A broken document must be caught by the same check.
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.json");
    let text = std::fs::read_to_string(&doc)
        .expect("read the document")
        .replacen("\"responses\"", "\"responsez\"", 1);
    std::fs::write(&broken, text).expect("write");
    let output = python_module("openapi_spec_validator", &[&broken.display().to_string()]);
    assert!(
        !output.status.success(),
        "the validator accepts a broken document"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let hec = FakeHec::start_default();
    let (webhook, admin_port) = (free_port(), free_port());
    let yaml = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  file: {{ path: "./archive/events.ndjson" }}
  splunk_hec/prod:
    endpoint: "{hec}"
    token: "{HEC_TOKEN}"
    index: security
    sending: {{ timeout: 2s }}
service:
  shutdown_timeout: 3s
  admin:
    endpoint: "127.0.0.1:{admin_port}"
    auth: {{ bearer_token: "${{env:SIEMRELAY_ADMIN_TOKEN}}" }}
    allow_config_changes: true
  pipelines:
    security: {{ receivers: [webhook], exporters: [file, splunk_hec/prod] }}
"#,
        hec = hec.url()
    );
    let mut relay = Siemrelay::start_with(&yaml, &[], &[("SIEMRELAY_ADMIN_TOKEN", TOKEN)]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin_port)));
    post_webhook(
        &reqwest::Client::new(),
        webhook,
        ndjson(10, "seed", false).0,
    )
    .await;
    assert!(hec.events_reached(10, Duration::from_secs(10)).await);

    let admin = Admin::new(admin_port, None);
    let served = admin.get("/api/v1/openapi.json").await;
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("docs/openapi.json")).expect("read"),
    )
    .expect("json");
    assert_eq!(served, file, "the binary serves docs/openapi.json");

    let base = admin.base().to_string();
    let schema = format!("{base}/api/v1/openapi.json");
    let header = format!("Authorization: Bearer {TOKEN}");
    let output = tokio::task::spawn_blocking(move || {
        let args = [
            "run",
            &schema,
            "--url",
            &base,
            "-H",
            &header,
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            // A tap streams until its limit or the client leaves: a request/response fuzzer
            // cannot check it (tests/tests/tap.rs does, with the real CLI and raw reads).
            "--exclude-operation-id",
            "tapComponent",
            "--max-examples",
            "15",
            "--workers",
            "1",
            "--seed",
            "11",
            "--request-timeout",
            "10",
            "--no-color",
        ];
        python_module("schemathesis.cli", &args)
    })
    .await
    .expect("schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("passed") && stdout.contains("API Operations"),
        "schemathesis ran no test:\n{stdout}"
    );
    // The API stayed healthy and the pipeline kept delivering.
    assert_eq!(
        Admin::new(admin_port, Some(TOKEN))
            .call(reqwest::Method::GET, "/readyz", None)
            .await
            .0,
        200
    );
    assert!(
        relay
            .terminate(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "{}",
        relay.logs()
    );
}
