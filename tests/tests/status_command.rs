//! `siemrelay status --config FILE` against the real binary: the admin address and the token
//! come from the running siemrelay's own config (the token through `${env:…}` as it is written
//! there), the table shows each queue's capacity, and the last error is printed whole.

mod admin_support;

use admin_support::{Admin, TOKEN, ndjson, post_webhook};
use siemrelay_e2e::{Siemrelay, free_port, siemrelay_bin};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_the_admin_address_and_token_from_the_config() {
    let (webhook, admin_port, dead) = (free_port(), free_port(), free_port());
    // A long path makes a long error: the table must not cut it.
    let long_path = format!("/hooks/{}", "security-events-".repeat(8));
    let yaml = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  file: {{ path: "./out/events.ndjson" }}
  webhook/soar:
    endpoint: "http://127.0.0.1:{dead}{long_path}"
    sending: {{ timeout: 1s }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 10m }}
    queue: {{ max_events: 7000, max_size: 3MiB }}
service:
  shutdown_timeout: 2s
  admin:
    endpoint: "127.0.0.1:{admin_port}"
    auth: {{ bearer_token: "${{env:STATUS_TEST_ADMIN_TOKEN}}" }}
  pipelines:
    security: {{ receivers: [webhook], exporters: [file, webhook/soar] }}
"#
    );
    let mut relay = Siemrelay::start_with(&yaml, &[], &[("STATUS_TEST_ADMIN_TOKEN", TOKEN)]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin_port)));
    post_webhook(
        &reqwest::Client::new(),
        webhook,
        ndjson(5, "status", false).0,
    )
    .await;
    let admin = Admin::new(admin_port, Some(TOKEN));
    let soar = admin
        .wait_exporter("webhook/soar", Duration::from_secs(20), |e| {
            e["last_error"].as_str().is_some_and(|t| t.len() > 100)
        })
        .await;
    let last_error = soar["last_error"]
        .as_str()
        .unwrap_or_else(|| panic!("{soar}"));
    assert!(last_error.len() > 100, "{soar}");

    let status = |env: &[(&str, &str)], args: &[&str]| {
        let mut command = Command::new(siemrelay_bin());
        command
            .arg("status")
            .args(args)
            .current_dir(relay.dir())
            .env_remove("SIEMRELAY_ADMIN_TOKEN")
            .env("COLUMNS", "400");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("run siemrelay status")
    };
    let output = status(
        &[("STATUS_TEST_ADMIN_TOKEN", TOKEN)],
        &["--config", "siemrelay.yaml"],
    );
    let table = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("webhook/soar"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("/ 7000"), "queue capacity in events: {row}");
    assert!(row.contains("/ 3.0 MiB"), "queue capacity in bytes: {row}");
    // The error may have been updated between the two reads; its long, stable part must be whole.
    assert!(
        row.contains(&format!("127.0.0.1:{dead}{long_path}")),
        "the last error is cut:\n{row}\nfull: {last_error}"
    );
    assert!(table.lines().any(|l| l.starts_with("file ")), "{table}");

    // Without the token's variable the config cannot give it: the error says what to do.
    let output = status(&[], &["--config", "siemrelay.yaml"]);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && said.contains("STATUS_TEST_ADMIN_TOKEN")
            && said.contains("--token"),
        "{said}"
    );
    // --token given: the config still gives the address.
    let output = status(&[], &["--config", "siemrelay.yaml", "--token", TOKEN]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    relay.terminate(Duration::from_secs(15));
}
