//! The plugin host with real shared libraries: a plugin written in C (compiled here with `cc`),
//! libraries siemrelay must refuse (wrong ABI version, no entry symbol, missing file), and the
//! Rust SDK testkit plugin (built with `cargo build -p siemrelay-plugin-testkit`) panicking and
//! blocking.

use siemrelay_core::Event;
use siemrelay_exporters::delivery::Outcome;
use siemrelay_exporters::plugin::{PluginConfig, build};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
}

/// Compiles `tests/plugins/<name>/plugin.c` into `<dir>/lib<name>.so`.
fn c_plugin(name: &str, dir: &Path) -> PathBuf {
    let out = dir.join(format!("lib{name}.so"));
    let output = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c11", "-Wall", "-Werror", "-shared", "-fPIC", "-I"])
        .arg(repo().join("plugin-sdk/include"))
        .arg(repo().join(format!("tests/plugins/{name}/plugin.c")))
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run the C compiler `cc` (install gcc, or set CC)");
    assert!(
        output.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Builds the testkit plugin once (`cargo build -p siemrelay-plugin-testkit`) and returns its path.
fn testkit() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let target_dir = profile_dir.parent().expect("target dir");
        let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        command
            .args(["build", "-p", "siemrelay-plugin-testkit", "--target-dir"])
            .arg(target_dir)
            .current_dir(repo());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p siemrelay-plugin-testkit failed"
        );
        let path = profile_dir.join("libsiemrelay_plugin_testkit.so");
        assert!(path.exists(), "{} was not built", path.display());
        path
    })
}

/// The plugin config; plugins load only from the plugins directory, here the library's own.
fn config(library: &Path, config: serde_json::Value) -> PluginConfig {
    siemrelay_exporters::plugin::trust::set_directory(library.parent().expect("a directory"));
    PluginConfig {
        library: library.to_path_buf(),
        config,
    }
}

fn event(summary: &str) -> Event {
    let mut event = Event::new("test");
    event.summary = Some(summary.into());
    event
}

fn issue_text(config: &PluginConfig) -> Vec<String> {
    config
        .validate()
        .into_iter()
        .map(|i| i.to_string())
        .collect()
}

#[tokio::test]
async fn a_c_plugin_receives_batches_and_its_outcomes_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let library = c_plugin("c_echo", dir.path());
    let output = dir.path().join("echo.ndjson");
    let missing = issue_text(&config(&library, serde_json::json!({})));
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(
        missing[0].starts_with("config.output: is required"),
        "{missing:?}"
    );
    assert!(missing[0].contains("plugin c_echo 1.0.0"), "{missing:?}");
    let good = config(&library, serde_json::json!({ "output": output }));
    assert!(good.validate().is_empty());

    let sink = build("plugin/echo", &good, Some(4)).unwrap();
    assert_eq!(
        sink.default_concurrency(),
        1,
        "c_echo asks for max_concurrency 1"
    );
    let events = [event("hello"), event("retry-me"), event("reject-me")];
    let report = sink.send(&events).await;
    assert_eq!(report.outcomes.get(0).unwrap(), &Outcome::Delivered);
    assert_eq!(
        report.outcomes.get(1).unwrap(),
        &Outcome::Retry {
            reason: "c_echo retries retry-me".into(),
            after: Some(Duration::from_millis(10))
        }
    );
    assert_eq!(
        report.outcomes.get(2).unwrap(),
        &Outcome::permanent("c_echo rejects reject-me")
    );
    let written = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["summary"], "retry-me");
    assert_eq!(lines[0]["event_id"], events[0].event_id.to_string());
}

#[test]
fn incompatible_libraries_are_refused_with_the_library_key() {
    let dir = tempfile::tempdir().unwrap();
    let wrong_abi = c_plugin("wrong_abi", dir.path());
    let issues = issue_text(&config(&wrong_abi, serde_json::Value::Null));
    assert_eq!(issues.len(), 1);
    assert!(issues[0].starts_with("library: "), "{issues:?}");
    assert!(
        issues[0].contains("ABI version 99") && issues[0].contains("libwrong_abi.so"),
        "{issues:?}"
    );

    let no_entry = c_plugin("no_entry", dir.path());
    let issues = issue_text(&config(&no_entry, serde_json::Value::Null));
    assert!(issues[0].contains("not a siemrelay plugin"), "{issues:?}");

    let issues = issue_text(&config(
        &dir.path().join("libmissing.so"),
        serde_json::Value::Null,
    ));
    assert!(
        issues[0].starts_with("library: ") && issues[0].contains("not found"),
        "{issues:?}"
    );

    let issues = issue_text(&config(&no_entry, serde_json::json!(["not", "a", "map"])));
    assert!(issues[0].starts_with("config: must be a map"), "{issues:?}");
}

#[tokio::test]
async fn a_panic_in_a_rust_plugin_becomes_a_retry_and_the_plugin_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.ndjson");
    let cfg = config(
        testkit(),
        serde_json::json!({ "output": output, "panic_on": "boom" }),
    );
    assert!(cfg.validate().is_empty());
    let bad = issue_text(&config(
        testkit(),
        serde_json::json!({ "output": output, "panic_evry": 3 }),
    ));
    assert!(
        bad[0].starts_with("config.panic_evry: unknown field"),
        "{bad:?}"
    );

    let sink = build("plugin/testkit", &cfg, None).unwrap();
    let report = sink.send(&[event("a"), event("boom")]).await;
    match report.outcomes.get(1).unwrap() {
        Outcome::Retry { reason, .. } => {
            assert!(
                reason.contains("plugin panicked") && reason.contains("boom"),
                "{reason}"
            )
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    let report = sink.send(&[event("fine")]).await;
    assert_eq!(report.outcomes.get(0).unwrap(), &Outcome::Delivered);
    assert_eq!(std::fs::read_to_string(&output).unwrap().lines().count(), 1);
}

#[tokio::test]
async fn a_stuck_plugin_times_out_without_blocking_another_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let stuck_cfg = config(
        testkit(),
        serde_json::json!({ "output": dir.path().join("stuck"), "block_on": "*", "block_ms": 1500 }),
    );
    let stuck = build("plugin/stuck", &stuck_cfg, Some(1)).unwrap();
    let healthy_cfg = config(
        testkit(),
        serde_json::json!({ "output": dir.path().join("healthy") }),
    );
    let healthy = build("plugin/healthy", &healthy_cfg, Some(1)).unwrap();

    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    assert!(
        tokio::time::timeout(timeout, stuck.send(&[event("first")]))
            .await
            .is_err()
    );
    // The only plugin thread is busy: the next send waits for it and times out too, without
    // queueing work behind the stuck call.
    assert!(
        tokio::time::timeout(timeout, stuck.send(&[event("second")]))
            .await
            .is_err()
    );
    assert!(started.elapsed() < Duration::from_millis(1000));
    // Another plugin exporter (same library, other instance and threads) is unaffected.
    let report = tokio::time::timeout(timeout, healthy.send(&[event("ok")]))
        .await
        .unwrap();
    assert_eq!(report.outcomes.get(0).unwrap(), &Outcome::Delivered);
    // Once the stuck call returns, the exporter works again; the timed-out results were dropped
    // and the timed-out "second" batch was never handed to the plugin.
    let report = stuck.send(&[event("third")]).await;
    assert_eq!(report.outcomes.get(0).unwrap(), &Outcome::Delivered);
    let written = std::fs::read_to_string(dir.path().join("stuck")).unwrap();
    assert!(
        written.contains("first") && written.contains("third") && !written.contains("second"),
        "{written}"
    );
}
