//! Issue 26 acceptance, "state that survives a restart", with the real binary: an exporter
//! disabled through the admin API is still disabled after a restart (SIGTERM, then the same
//! config and storage), with its delivery history, last success and last error as they were;
//! enabled again, it stays enabled across the next restart. A corrupt state file is moved aside
//! with a warning naming it and the start goes on fresh. A reload that removes an exporter drops
//! its state; added back, it starts fresh. A reload that replaces an exporter (its config
//! changed, with or without a disk queue to hand over) keeps its status and history.

mod admin_support;

use admin_support::{Admin, TOKEN, encode, ndjson, post_webhook};
use serde_json::Value;
use siemrelay_e2e::fake::http_sink::{FakeHttpSink, HttpSinkOptions, ScriptedReply};
use siemrelay_e2e::{Siemrelay, free_port};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ENV: [(&str, &str); 1] = [("SIEMRELAY_ADMIN_TOKEN", TOKEN)];
const SIEM: &str = "webhook/siem";

fn config(webhook: u16, admin: u16, siem: &str, with_siem: bool) -> String {
    let (exporter, listed) = if with_siem {
        (
            format!(
                r#"
  webhook/siem:
    endpoint: "{siem}/hooks"
    format: json_array
    retry: {{ initial_interval: 20ms, max_interval: 200ms, max_elapsed_time: 10m }}"#
            ),
            ", webhook/siem",
        )
    } else {
        (String::new(), "")
    };
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  file: {{ path: ./out/events.ndjson }}{exporter}
service:
  shutdown_timeout: 5s
  admin:
    endpoint: "127.0.0.1:{admin}"
    auth: {{ bearer_token: "${{env:SIEMRELAY_ADMIN_TOKEN}}" }}
    allow_config_changes: true
  pipelines:
    security: {{ receivers: [webhook], exporters: [file{listed}] }}
"#
    )
}

struct Ports {
    webhook: u16,
    admin: u16,
}

fn start(dir: Option<tempfile::TempDir>, yaml: &str, ports: &Ports) -> Siemrelay {
    let mut relay = match dir {
        Some(dir) => Siemrelay::start_in(dir, yaml, &[], &ENV),
        None => Siemrelay::start_with(yaml, &[], &ENV),
    };
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], ports.webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], ports.admin)));
    relay
}

/// SIGTERM, a clean exit, and the directory back for the next start.
fn stop(mut relay: Siemrelay) -> tempfile::TempDir {
    let status = relay.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "siemrelay did not exit cleanly on SIGTERM ({status:?}):\n{}",
        relay.logs()
    );
    relay.into_dir()
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("siemrelay-data/state/exporters.json")
}

/// The fields that must survive a restart.
fn kept(exporter: &Value) -> Value {
    serde_json::json!({
        "status": exporter["status"],
        "last_success": exporter["last_success"],
        "last_error": exporter["last_error"],
        "last_error_at": exporter["last_error_at"],
        "last_error_current": exporter["last_error_current"],
    })
}

async fn deliveries(admin: &Admin, id: &str) -> Vec<Value> {
    let body = admin
        .get(&format!("/api/v1/exporters/{}/deliveries", encode(id)))
        .await;
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

/// Waits (up to 10 s) until the exporter runs (`running`) or not; returns it when it runs.
async fn wait_running(admin: &Admin, id: &str, running: bool) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path = format!("/api/v1/exporters/{}", encode(id));
        let (status, body) = admin.call(reqwest::Method::GET, &path, None).await;
        let found = (status == 200).then_some(body);
        if found.is_some() == running || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_exporter_stays_disabled_across_restarts_with_its_history() {
    let siem = FakeHttpSink::start(HttpSinkOptions {
        path: Some("/hooks".into()),
        ..Default::default()
    });
    let ports = Ports {
        webhook: free_port(),
        admin: free_port(),
    };
    let yaml = config(ports.webhook, ports.admin, &siem.url(), true);
    let relay = start(None, &yaml, &ports);
    let admin = Admin::new(ports.admin, Some(TOKEN));
    let client = reqwest::Client::new();

    // A first request refused (503, retried), then deliveries: history, last error (past) and
    // last success.
    siem.script([ScriptedReply::status(503)]);
    post_webhook(&client, ports.webhook, ndjson(5, "first", false).0).await;
    assert!(siem.events_reached(5, Duration::from_secs(20)).await);
    post_webhook(&client, ports.webhook, ndjson(3, "second", false).0).await;
    assert!(siem.events_reached(8, Duration::from_secs(20)).await);
    let before = admin
        .wait_exporter(SIEM, Duration::from_secs(10), |e| {
            e["events_sent"] == 8 && e["last_error_current"] == false
        })
        .await;
    assert_eq!(before["events_sent"], 8, "{before}");
    assert!(
        before["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{before}"
    );
    assert!(before["last_success"].is_string(), "{before}");
    let history = deliveries(&admin, SIEM).await;
    let outcomes: Vec<&str> = history
        .iter()
        .filter_map(|d| d["outcome"].as_str())
        .collect();
    assert!(
        outcomes.contains(&"retry") && outcomes.contains(&"delivered"),
        "{outcomes:?}"
    );

    // Disabled through the API: the state file says so at once, not at the next periodic write.
    let (status, body) = admin
        .post(&format!("/api/v1/exporters/{}/disable", encode(SIEM)))
        .await;
    assert_eq!(status, 200, "{body}");
    let disabled_at_answer = Instant::now();
    let saved: Value = serde_json::from_slice(
        &std::fs::read(state_file(relay.dir())).expect("the state file is written at once"),
    )
    .expect("the state file is JSON");
    assert!(
        disabled_at_answer.elapsed() < Duration::from_secs(1),
        "read right after the answer"
    );
    assert_eq!(saved["format"], 1, "{saved}");
    assert_eq!(saved["exporters"][SIEM]["disabled"], true, "{saved}");
    assert!(
        saved["exporters"][SIEM]["disabled_at"].is_string(),
        "{saved}"
    );
    let before = admin.exporter(SIEM).await;
    assert_eq!(before["status"], "disabled");
    let history_before = deliveries(&admin, SIEM).await;
    assert_eq!(history_before.len(), history.len());

    // Restart: still disabled, with the same history and last times; the log says why.
    let dir = stop(relay);
    let relay = start(Some(dir), &yaml, &ports);
    let after = admin.exporter(SIEM).await;
    assert_eq!(kept(&after), kept(&before), "after the restart: {after}");
    assert_eq!(after["events_sent"], 0, "counters restart at zero");
    assert_eq!(deliveries(&admin, SIEM).await, history_before);
    let logs = relay.logs();
    assert!(
        logs.contains(&format!(
            "exporter {SIEM} restored as disabled (disabled through the API at "
        )),
        "the start does not say why the exporter is disabled:\n{logs}"
    );
    assert_eq!(admin.exporter("file").await["status"], "active");

    // Disabled means disabled: events queue, nothing reaches the SIEM.
    post_webhook(&client, ports.webhook, ndjson(4, "while disabled", false).0).await;
    let queued = admin
        .wait_exporter(SIEM, Duration::from_secs(5), |e| e["queue"]["events"] == 4)
        .await;
    assert_eq!(queued["queue"]["events"], 4, "{queued}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(siem.distinct_events(), 8, "a disabled exporter sent events");

    // Enabled again: the queued events go out, and a restart keeps it enabled.
    let (status, body) = admin
        .post(&format!("/api/v1/exporters/{}/enable", encode(SIEM)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(siem.events_reached(12, Duration::from_secs(20)).await);
    let enabled = admin
        .wait_exporter(SIEM, Duration::from_secs(10), |e| e["events_sent"] == 4)
        .await;
    let history_enabled = deliveries(&admin, SIEM).await;
    assert!(
        history_enabled.len() > history_before.len(),
        "the new delivery joins the restored history"
    );
    let dir = stop(relay);
    let relay = start(Some(dir), &yaml, &ports);
    let after = admin.exporter(SIEM).await;
    assert_eq!(after["status"], "active", "{after}");
    assert_eq!(kept(&after), kept(&enabled));
    assert_eq!(deliveries(&admin, SIEM).await, history_enabled);
    assert!(!relay.logs().contains("restored as disabled"));
    stop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_is_set_aside_with_a_warning_and_the_start_goes_on() {
    let siem = FakeHttpSink::start(HttpSinkOptions::default());
    let ports = Ports {
        webhook: free_port(),
        admin: free_port(),
    };
    let yaml = config(ports.webhook, ports.admin, &siem.url(), true);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = state_file(dir.path());
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(
        &file,
        br#"{"format": 1, "saved_at": "2026-12-04T20:00:00Z", "exporters": {"webhook/siem": {"disabled": tr"#,
    )
    .expect("write a torn state file");

    let relay = start(Some(dir), &yaml, &ports);
    let admin = Admin::new(ports.admin, Some(TOKEN));
    let logs = relay.logs();
    let warning = logs
        .lines()
        .find(|l| l.contains("WARN") && l.contains("exporter state file"))
        .unwrap_or_else(|| panic!("no warning about the state file:\n{logs}"));
    assert!(
        warning.contains(&file.display().to_string())
            && warning.contains("starting with fresh exporter state"),
        "the warning does not name the file and what happens: {warning}"
    );
    assert_eq!(admin.exporter(SIEM).await["status"], "active");
    let aside = file.with_extension("json.corrupt");
    assert!(aside.exists(), "the bad file is kept for a look");

    // A fresh, valid file is written on the next change.
    let (status, body) = admin
        .post(&format!("/api/v1/exporters/{}/disable", encode(SIEM)))
        .await;
    assert_eq!(status, 200, "{body}");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("written")).expect("valid JSON");
    assert_eq!(saved["exporters"][SIEM]["disabled"], true);
    stop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_an_exporter_drops_its_state() {
    let siem = FakeHttpSink::start(HttpSinkOptions::default());
    let ports = Ports {
        webhook: free_port(),
        admin: free_port(),
    };
    let with = config(ports.webhook, ports.admin, &siem.url(), true);
    let without = config(ports.webhook, ports.admin, &siem.url(), false);
    let relay = start(None, &with, &ports);
    let admin = Admin::new(ports.admin, Some(TOKEN));
    let (status, _) = admin
        .post(&format!("/api/v1/exporters/{}/disable", encode(SIEM)))
        .await;
    assert_eq!(status, 200);
    let config_file = relay.dir().join("siemrelay.yaml");
    let reload = |yaml: &str| {
        std::fs::write(&config_file, yaml).expect("write the config");
        relay.signal(libc::SIGHUP);
    };

    reload(&without);
    let gone = wait_running(&admin, SIEM, false).await;
    assert!(gone.is_none(), "the reload did not remove {SIEM}");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(state_file(relay.dir())).expect("state file"))
            .expect("JSON");
    assert!(
        saved["exporters"].get(SIEM).is_none(),
        "the removed exporter's state is still saved: {saved}"
    );

    reload(&with);
    let back = wait_running(&admin, SIEM, true)
        .await
        .unwrap_or_else(|| panic!("the reload did not add {SIEM} back:\n{}", relay.logs()));
    assert_eq!(
        back["status"], "active",
        "added back, it starts fresh: {back}"
    );
    stop(relay);
}

/// A reload that changes an exporter's config replaces it; the replacement starts from the old
/// one's status: still disabled, with its history and last success. `disk` replaces it by
/// handing its disk queue over (the old one closes first), otherwise the new one starts next to
/// the old one.
async fn a_replaced_exporter_keeps_its_status(disk: bool) {
    let siem = FakeHttpSink::start(HttpSinkOptions {
        path: Some("/hooks".into()),
        ..Default::default()
    });
    let ports = Ports {
        webhook: free_port(),
        admin: free_port(),
    };
    let mut yaml = config(ports.webhook, ports.admin, &siem.url(), true);
    if disk {
        yaml = yaml.replace(
            "format: json_array",
            "format: json_array\n    queue: { type: disk }",
        );
    }
    let changed = yaml.replace("max_elapsed_time: 10m", "max_elapsed_time: 9m");
    let relay = start(None, &yaml, &ports);
    let admin = Admin::new(ports.admin, Some(TOKEN));
    let client = reqwest::Client::new();

    post_webhook(&client, ports.webhook, ndjson(3, "before", false).0).await;
    assert!(siem.events_reached(3, Duration::from_secs(20)).await);
    admin
        .wait_exporter(SIEM, Duration::from_secs(10), |e| e["events_sent"] == 3)
        .await;
    let (status, body) = admin
        .post(&format!("/api/v1/exporters/{}/disable", encode(SIEM)))
        .await;
    assert_eq!(status, 200, "{body}");
    let before = admin.exporter(SIEM).await;
    assert_eq!(before["status"], "disabled", "{before}");
    let history = deliveries(&admin, SIEM).await;
    assert!(!history.is_empty(), "no delivery history before the reload");

    std::fs::write(relay.dir().join("siemrelay.yaml"), &changed).expect("write the config");
    relay.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !relay.logs().contains("configuration reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload happened:\n{}",
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = relay.logs();
    assert!(
        logs.contains(&format!("restarted=exporters.{SIEM}")),
        "the exporter was not replaced:\n{logs}"
    );
    let after = wait_running(&admin, SIEM, true)
        .await
        .unwrap_or_else(|| panic!("{SIEM} does not run after the reload:\n{logs}"));
    assert_eq!(kept(&after), kept(&before), "after the reload: {after}");
    assert_eq!(deliveries(&admin, SIEM).await, history);

    // Still disabled: events queue, nothing reaches the SIEM until it is enabled.
    post_webhook(&client, ports.webhook, ndjson(2, "while disabled", false).0).await;
    let queued = admin
        .wait_exporter(SIEM, Duration::from_secs(5), |e| e["queue"]["events"] == 2)
        .await;
    assert_eq!(queued["queue"]["events"], 2, "{queued}");
    assert_eq!(siem.distinct_events(), 3, "a disabled exporter sent events");
    let (status, body) = admin
        .post(&format!("/api/v1/exporters/{}/enable", encode(SIEM)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(siem.events_reached(5, Duration::from_secs(20)).await);
    stop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_exporter_keeps_its_status_and_history() {
    a_replaced_exporter_keeps_its_status(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exporter_whose_disk_queue_is_handed_over_keeps_its_status_and_history() {
    a_replaced_exporter_keeps_its_status(true).await;
}
