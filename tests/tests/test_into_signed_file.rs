//! `siemrelay test file` (and the API's test delivery) never writes an unsigned event into a
//! signed daily file: the file is checked to be writable, and `siemrelay verify --chain` still
//! passes over everything the pipeline wrote around the tests. An unsigned file still gets the
//! test event.

mod admin_support;

use admin_support::{Admin, TOKEN, encode, ndjson, post_webhook};
use siemrelay_e2e::{Siemrelay, free_port, read_ndjson_files, run_cli};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

const KEY: &str = "test-into-signed-file-key-0123456789";

fn cli_test(relay: &Siemrelay, exporter: &str) -> (bool, String) {
    let output = Command::new(siemrelay_e2e::siemrelay_bin())
        .args(["test", exporter, "--config", "siemrelay.yaml"])
        .env("SIGN_KEY", KEY)
        .env("SIEMRELAY_ADMIN_TOKEN", TOKEN)
        .current_dir(relay.dir())
        .output()
        .expect("run siemrelay test");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_never_writes_an_unsigned_event_into_a_signed_file() {
    let (webhook, admin_port) = (free_port(), free_port());
    let yaml = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
processors:
  sign: {{ keys: [{{ id: k1, secret: "${{env:SIGN_KEY}}" }}], chain: true }}
exporters:
  file/signed: {{ path: "./signed/events-%Y-%m-%d.ndjson" }}
  file/plain: {{ path: "./plain/events-%Y-%m-%d.ndjson" }}
service:
  shutdown_timeout: 5s
  admin:
    endpoint: "127.0.0.1:{admin_port}"
    auth: {{ bearer_token: "${{env:SIEMRELAY_ADMIN_TOKEN}}" }}
    allow_config_changes: true
  pipelines:
    signed: {{ receivers: [webhook], processors: [sign], exporters: [file/signed] }}
    plain: {{ receivers: [webhook], exporters: [file/plain] }}
"#
    );
    let mut relay = Siemrelay::start_with(
        &yaml,
        &[],
        &[("SIGN_KEY", KEY), ("SIEMRELAY_ADMIN_TOKEN", TOKEN)],
    );
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin_port)));
    let client = reqwest::Client::new();
    let admin = Admin::new(admin_port, Some(TOKEN));
    post_webhook(&client, webhook, ndjson(10, "before", false).0).await;
    admin
        .wait_exporter("file/signed", Duration::from_secs(20), |e| {
            e["events_sent"].as_u64() == Some(10)
        })
        .await;

    // The CLI: the signed file is checked, not written.
    let (ok, said) = cli_test(&relay, "file/signed");
    assert!(ok, "{said}");
    assert!(
        said.contains("writable") && said.contains("no test event was written"),
        "{said}"
    );
    // The API (the status page's "Test delivery") does the same.
    let (status, report) = admin
        .post(&format!("/api/v1/exporters/{}/test", encode("file/signed")))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["outcome"], "checked", "{report}");

    // An unsigned file still receives the test event.
    let (ok, said) = cli_test(&relay, "file/plain");
    assert!(ok && said.contains("delivered"), "{said}");

    post_webhook(&client, webhook, ndjson(10, "after", false).0).await;
    admin
        .wait_exporter("file/signed", Duration::from_secs(20), |e| {
            e["events_sent"].as_u64() == Some(20)
        })
        .await;
    assert!(
        relay
            .terminate(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "{}",
        relay.logs()
    );

    let signed = read_ndjson_files(&relay.dir().join("signed"), "events-");
    assert_eq!(
        signed.len(),
        20,
        "only the pipeline's events are in the signed file"
    );
    assert!(signed.iter().all(|e| e["event_type"] != "test_connection"));
    let plain = read_ndjson_files(&relay.dir().join("plain"), "events-");
    assert_eq!(
        plain
            .iter()
            .filter(|e| e["event_type"] == "test_connection")
            .count(),
        1,
        "the unsigned file got the CLI's test event"
    );

    let keys = relay.dir().join("keys.yaml");
    std::fs::write(
        &keys,
        format!("keys:\n  - {{ id: k1, secret: \"{KEY}\" }}\n"),
    )
    .expect("write keys");
    let signed_file = std::fs::read_dir(relay.dir().join("signed"))
        .expect("signed dir")
        .flatten()
        .map(|e| e.path())
        .next()
        .expect("a signed file");
    let output = run_cli(
        &[
            "verify",
            "--keys",
            &keys.display().to_string(),
            "--chain",
            &signed_file.display().to_string(),
        ],
        relay.dir(),
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains("OK: 20 events verified, chain intact"),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
