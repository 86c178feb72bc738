//! Issue 10 acceptance with the real binary: a plugin written in C (compiled here with `cc`)
//! whose per-event outcomes are honoured; libraries `siemrelay validate` must refuse cleanly; a
//! Rust SDK plugin that panics on every third batch or blocks past `sending.timeout` without
//! hurting other exporters and pipelines.

mod plugin_support;

use plugin_support::{c_plugin, event_line, testkit_plugin, wait_dead_letters};
use siemrelay_e2e::post_ndjson_bodies as post_bodies;
use siemrelay_e2e::{Siemrelay, free_port, read_ndjson_files, run_cli};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

fn ids_in(path: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("plugin output is NDJSON");
        *counts
            .entry(value["event_id"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    counts
}

fn start(config: &str, port: u16) -> Siemrelay {
    let mut relay = Siemrelay::start(config);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    relay
}

#[tokio::test(flavor = "multi_thread")]
async fn a_c_plugin_receives_batches_and_its_outcomes_are_honoured() {
    let libs = tempfile::tempdir().unwrap();
    let library = c_plugin("c_echo", libs.path());
    let output = libs.path().join("echo.ndjson");
    let port = free_port();
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
exporters:
  plugin/echo:
    library: "{}"
    config: {{ output: "{}" }}
    retry: {{ initial_interval: 50ms, max_interval: 100ms, max_elapsed_time: 1s }}
service:
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [plugin/echo] }}
"#,
        library.display(),
        output.display()
    );
    let mut relay = start(&plugin_support::in_plugins_dir(&config), port);
    let mut body = String::new();
    let normal: Vec<String> = (0..20).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for id in &normal {
        body.push_str(&event_line(id, "hello"));
    }
    let (retry, reject) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    body.push_str(&event_line(&retry, "retry-me"));
    body.push_str(&event_line(&reject, "reject-me"));
    post_bodies(port, vec![body]).await;

    let dead = relay
        .dir()
        .join("siemrelay-data/dead_letter/plugin__echo.ndjson");
    let lines = wait_dead_letters(&dead, 2, Duration::from_secs(15)).await;
    assert_eq!(lines.len(), 2, "logs:\n{}", relay.logs());
    let by_id: HashMap<&str, &serde_json::Value> = lines
        .iter()
        .map(|l| (l["event"]["event_id"].as_str().unwrap_or_default(), l))
        .collect();
    assert_eq!(by_id[reject.as_str()]["error"], "c_echo rejects reject-me");
    assert_eq!(by_id[reject.as_str()]["attempts"], 1);
    let retried = by_id[retry.as_str()];
    let error = retried["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("retries exhausted") && error.contains("c_echo retries retry-me"),
        "{error}"
    );
    assert!(retried["attempts"].as_u64().unwrap_or(0) >= 2);
    relay.terminate(Duration::from_secs(10));

    let seen = ids_in(&output);
    for id in &normal {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "event {id} must reach the C plugin exactly once"
        );
    }
    assert_eq!(seen.get(&reject), Some(&1));
    assert!(
        seen.get(&retry).copied().unwrap_or(0) >= 2,
        "retry-me must be resent"
    );
}

fn validate_exporter(library: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{}" }}
exporters:
  plugin/thirdparty:
    library: "{library}"
    config: {{ endpoint: "http://example.com" }}
service:
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [plugin/thirdparty] }}
"#,
        free_port()
    );
    std::fs::write(
        dir.path().join("siemrelay.yaml"),
        plugin_support::in_plugins_dir(&config),
    )
    .unwrap();
    let out = run_cli(&["validate", "--config", "siemrelay.yaml"], dir.path());
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn validate_refuses_wrong_abi_missing_entry_and_missing_file_cleanly() {
    let libs = tempfile::tempdir().unwrap();
    let cases = [
        (
            c_plugin("wrong_abi", libs.path()),
            "built for plugin ABI version 99, this siemrelay speaks version 1",
        ),
        (
            c_plugin("no_entry", libs.path()),
            "not a siemrelay plugin: it exports no `siemrelay_plugin_entry` symbol",
        ),
        (
            libs.path().join("libnot-there.so"),
            "plugin library not found",
        ),
    ];
    for (library, reason) in cases {
        let shown = library.display().to_string();
        let (code, text) = validate_exporter(&shown);
        assert_eq!(code, Some(1), "exit 1, not a crash, for {shown}:\n{text}");
        assert!(
            text.contains("exporters.plugin/thirdparty.library"),
            "{text}"
        );
        assert!(
            text.contains(&shown),
            "the error names the library path:\n{text}"
        );
        assert!(text.contains(reason), "expected {reason:?}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_panicking_on_every_third_batch_neither_crashes_nor_stalls_other_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("panicky.ndjson");
    let port = free_port();
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
processors:
  batch: {{ send_batch_size: 1, send_batch_max_size: 1, timeout: 10ms }}
exporters:
  plugin/panicky:
    library: "{}"
    config: {{ output: "{}", panic_on: "panic-me" }}
    # Enough workers that every panicking batch is tried (and retried) before its deadline.
    sending: {{ concurrency: 16 }}
    retry: {{ initial_interval: 50ms, max_interval: 100ms, max_elapsed_time: 1s }}
  file: {{ path: "./files/events.ndjson" }}
service:
  pipelines:
    plugin: {{ receivers: [webhook], processors: [batch], exporters: [plugin/panicky] }}
    files: {{ receivers: [webhook], processors: [], exporters: [file] }}
"#,
        testkit_plugin().display(),
        output.display()
    );
    let mut relay = start(&plugin_support::in_plugins_dir(&config), port);
    let mut body = String::new();
    let mut good = Vec::new();
    let mut poisoned = Vec::new();
    for n in 0..30 {
        let id = uuid::Uuid::new_v4().to_string();
        // One event per batch: every third batch makes the plugin panic, every time it is sent.
        if n % 3 == 2 {
            body.push_str(&event_line(&id, "please panic-me"));
            poisoned.push(id);
        } else {
            body.push_str(&event_line(&id, "fine"));
            good.push(id);
        }
    }
    post_bodies(port, vec![body]).await;
    let dead = relay
        .dir()
        .join("siemrelay-data/dead_letter/plugin__panicky.ndjson");
    let lines = wait_dead_letters(&dead, poisoned.len(), Duration::from_secs(20)).await;
    assert_eq!(lines.len(), poisoned.len(), "logs:\n{}", relay.logs());
    for line in &lines {
        let id = line["event"]["event_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            poisoned.contains(&id),
            "only the panicking batches are dead-lettered"
        );
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("plugin panicked") && error.contains("panic-me"),
            "{error}"
        );
        assert!(
            line["attempts"].as_u64().unwrap_or(0) >= 2,
            "retried before dead-lettering"
        );
    }
    // Still alive and delivering, in both pipelines.
    let later = uuid::Uuid::new_v4().to_string();
    post_bodies(port, vec![event_line(&later, "after the panics")]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ids_in(&output).contains_key(&later) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exit = relay.terminate(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|s| s.success()),
        "clean exit, not a crash: {exit:?}\n{}",
        relay.logs()
    );
    let seen = ids_in(&output);
    for id in good.iter().chain([&later]) {
        assert_eq!(seen.get(id), Some(&1), "event {id}");
    }
    let files = read_ndjson_files(&relay.dir().join("files"), "events");
    assert_eq!(files.len(), 31, "the file pipeline got every event");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_blocking_past_the_timeout_does_not_hold_up_other_exporters() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
exporters:
  plugin/stuck:
    library: "{}"
    config: {{ output: "{}", block_on: "*", block_ms: 60000 }}
    sending: {{ timeout: 300ms, concurrency: 2 }}
    retry: {{ initial_interval: 50ms, max_interval: 100ms, max_elapsed_time: 1s }}
  file: {{ path: "./files/events.ndjson" }}
service:
  shutdown_timeout: 2s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [plugin/stuck, file] }}
"#,
        testkit_plugin().display(),
        dir.path().join("stuck.ndjson").display()
    );
    let mut relay = start(&plugin_support::in_plugins_dir(&config), port);
    let started = Instant::now();
    let ids = plugin_support::post_events(port, 5, 20).await;
    let dead = relay
        .dir()
        .join("siemrelay-data/dead_letter/plugin__stuck.ndjson");
    let lines = wait_dead_letters(&dead, ids.len(), Duration::from_secs(20)).await;
    assert_eq!(lines.len(), ids.len(), "logs:\n{}", relay.logs());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "timeouts, not the 60 s block, decide"
    );
    let error = lines[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out"), "{error}");
    // The file exporter in the same pipeline got everything.
    let files = read_ndjson_files(&relay.dir().join("files"), "events");
    assert_eq!(files.len(), ids.len());
    // Shutting down does not wait for the stuck plugin threads.
    let stopping = Instant::now();
    let exit = relay.terminate(Duration::from_secs(10));
    assert!(
        exit.is_some(),
        "siemrelay did not exit; logs:\n{}",
        relay.logs()
    );
    assert!(stopping.elapsed() < Duration::from_secs(8));
}
