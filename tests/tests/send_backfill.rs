//! Issue 9 backfill with the real binary: `siemrelay send` delivers 100,000 archived events
//! (the file exporter's NDJSON) through an exporter's real delivery layer into the fake HEC, each
//! once, with a right summary; a re-run is reported the same way and ids are kept; anything
//! dead-lettered makes the exit code non-zero.

use siemrelay_e2e::fake::hec::{FakeHec, TOKEN};
use siemrelay_e2e::run_cli;
use std::io::Write;
use std::time::Instant;

fn config(hec_url: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:1" }}
exporters:
  splunk_hec/archive:
    endpoint: "{hec_url}"
    token: "{TOKEN}"
    index: security
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 3s }}
service:
  pipelines:
    backfill: {{ receivers: [webhook], exporters: [splunk_hec/archive] }}
"#
    )
}

fn archive(dir: &std::path::Path, name: &str, events: usize, start: usize) -> Vec<String> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).unwrap());
    let mut ids = Vec::with_capacity(events);
    for i in start..start + events {
        let id = uuid::Uuid::new_v4().to_string();
        writeln!(
            file,
            "{{\"event_id\":\"{id}\",\"timestamp\":\"2026-11-20T09:00:00.{:06}Z\",\"observed_timestamp\":\"2026-11-20T09:00:01Z\",\"event_type\":\"policy_violation\",\"severity\":\"high\",\"severity_number\":17,\"summary\":\"archived {i}\",\"attributes\":{{\"n\":{i}}}}}",
            i % 1_000_000
        )
        .unwrap();
        ids.push(id);
    }
    ids
}

#[test]
fn send_backfills_100000_archived_events_once_each() {
    let hec = FakeHec::start_default();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("relay.yaml"), config(&hec.url())).unwrap();
    let mut ids = archive(dir.path(), "events-2026-11-20.ndjson", 60_000, 0);
    ids.extend(archive(
        dir.path(),
        "events-2026-11-21.ndjson",
        40_000,
        60_000,
    ));
    let started = Instant::now();
    let out = run_cli(
        &[
            "send",
            "splunk_hec/archive",
            "events-2026-11-20.ndjson",
            "events-2026-11-21.ndjson",
            "--config",
            "relay.yaml",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout
            .contains("sent 100000 event(s) to splunk_hec/archive, 0 dead-lettered, 0 unreadable"),
        "{stdout}"
    );
    assert!(
        stdout.contains("events/s"),
        "the summary gives the rate: {stdout}"
    );
    assert!(
        stderr.contains("queued"),
        "progress lines are printed when not on a terminal: {stderr}"
    );
    assert_eq!(hec.total_events(), 100_000, "{stdout}");
    assert_eq!(hec.distinct_events(), 100_000);
    for id in ids.iter().step_by(997) {
        assert_eq!(hec.count_of(id), 1, "{id}");
    }
    eprintln!("100,000 events backfilled in {:?}", started.elapsed());
}

#[test]
fn send_reads_stdin_accepts_exporter_flag_and_fails_on_dead_letters() {
    let hec = FakeHec::start_default();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("relay.yaml"), config(&hec.url())).unwrap();
    let ids = archive(dir.path(), "a.ndjson", 50, 0);
    // Two of them are refused by the SIEM for good: the run must say so and exit 1.
    hec.reject_event_ids(ids[..2].iter().cloned());
    let input = std::fs::read(dir.path().join("a.ndjson")).unwrap();
    let mut child = std::process::Command::new(siemrelay_e2e::siemrelay_bin())
        .args([
            "send",
            "--exporter",
            "splunk_hec/archive",
            "--config",
            "relay.yaml",
            "-",
        ])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("dead-lettered"), "{stdout}");
    assert!(!stdout.contains(" 0 dead-lettered"), "{stdout}");
    let dlq = std::fs::read_to_string(
        dir.path()
            .join("siemrelay-data/dead_letter/splunk_hec__archive.ndjson"),
    )
    .unwrap();
    assert!(
        dlq.lines().count() >= 1,
        "the refused events are in the dead-letter file"
    );
}

/// One archived event at `2026-11-<day>T09:00:00Z` as a JSON object.
fn archived(id: &str, day: u32) -> serde_json::Value {
    serde_json::json!({
        "event_id": id,
        "timestamp": format!("2026-11-{day:02}T09:00:00Z"),
        "event_type": "policy_violation",
        "severity": "high",
        "summary": format!("archived on day {day}"),
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Issue 25: `send` reads JSON arrays and gzip files (NDJSON or array) and keeps only the
/// events inside `--since` (inclusive) / `--until` (exclusive).
#[test]
fn send_reads_json_arrays_and_gzip_and_filters_by_time() {
    let hec = FakeHec::start_default();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("relay.yaml"), config(&hec.url())).unwrap();
    let mut inside = Vec::new();
    let mut outside = Vec::new();
    let mut make = |n: usize| -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| {
                let id = uuid::Uuid::new_v4().to_string();
                // Days 19..=23; the window keeps 20, 21 and 22.
                let day = 19 + (i % 5) as u32;
                if (20..23).contains(&day) {
                    inside.push(id.clone());
                } else {
                    outside.push(id.clone());
                }
                archived(&id, day)
            })
            .collect()
    };
    let array = serde_json::Value::Array(make(2_500));
    std::fs::write(dir.path().join("array.json"), array.to_string()).unwrap();
    let array_gz = serde_json::Value::Array(make(1_500));
    std::fs::write(
        dir.path().join("array.json.gz"),
        gzip(format!("  \n{array_gz}").as_bytes()),
    )
    .unwrap();
    let lines: String = make(2_000).iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(dir.path().join("lines.ndjson.gz"), gzip(lines.as_bytes())).unwrap();
    let out = run_cli(
        &[
            "send",
            "splunk_hec/archive",
            "array.json",
            "array.json.gz",
            "lines.ndjson.gz",
            "--since",
            "2026-11-20T00:00:00Z",
            "--until",
            "2026-11-23T09:00:00Z",
            "--config",
            "relay.yaml",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!((inside.len(), outside.len()), (3_600, 2_400));
    assert!(
        stdout.contains(
            "sent 3600 event(s) to splunk_hec/archive, 0 dead-lettered, 0 unreadable, 2400 outside --since/--until"
        ),
        "{stdout}"
    );
    assert_eq!(hec.total_events(), 3_600);
    for id in &inside {
        assert_eq!(hec.count_of(id), 1, "{id}");
    }
    for id in outside.iter().step_by(37) {
        assert_eq!(hec.count_of(id), 0, "{id} is outside the window");
    }

    let bad = run_cli(
        &[
            "send",
            "splunk_hec/archive",
            "array.json",
            "--since",
            "yesterday",
            "--config",
            "relay.yaml",
        ],
        dir.path(),
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--since") && stderr.contains("RFC 3339"),
        "{stderr}"
    );
}

/// Issue 25: on a terminal (a pseudo-terminal made by util-linux `script`) `send` draws an
/// `indicatif` progress bar with the rate and ETA; piped, it prints plain progress lines only.
#[test]
fn send_shows_a_progress_bar_with_rate_and_eta_on_a_terminal_only() {
    let script = std::path::Path::new("/usr/bin/script");
    assert!(
        script.exists(),
        "util-linux `script` is needed to give the test a terminal (Debian package bsdutils)"
    );
    let hec = FakeHec::start_default();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("relay.yaml"), config(&hec.url())).unwrap();
    archive(dir.path(), "big.ndjson", 30_000, 0);
    let command = format!(
        "{} send splunk_hec/archive big.ndjson --config relay.yaml",
        siemrelay_e2e::siemrelay_bin().display()
    );
    let out = std::process::Command::new(script)
        .args(["-qefc", &command, "/dev/null"])
        .current_dir(dir.path())
        .env("TERM", "xterm")
        .output()
        .expect("run script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ETA"), "a bar with an ETA: {text}");
    assert!(text.contains("events/s)"), "the bar shows the rate: {text}");
    assert!(text.contains('%'), "{text}");
    assert!(
        text.contains("sent 30000 event(s) to splunk_hec/archive"),
        "{text}"
    );
    assert!(
        !text.contains("queued "),
        "no plain progress lines on a terminal: {text}"
    );

    let piped = run_cli(
        &[
            "send",
            "splunk_hec/archive",
            "big.ndjson",
            "--config",
            "relay.yaml",
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success(), "{stderr}");
    assert!(
        !stderr.contains("ETA"),
        "no bar when not on a terminal: {stderr}"
    );
    assert!(stderr.contains("queued"), "{stderr}");
}

/// Issue 25: `--receiver NAME` reads the objects with that receiver's `mapping`.
#[test]
fn send_applies_a_receivers_mapping() {
    let hec = FakeHec::start_default();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&hec.url()).replace(
        "  webhook: { endpoint: \"127.0.0.1:1\" }",
        "  webhook: { endpoint: \"127.0.0.1:1\", mapping: { event_id: id, event_type: kind, timestamp: ts, severity: level } }",
    );
    assert!(config.contains("mapping"), "{config}");
    std::fs::write(dir.path().join("relay.yaml"), config).unwrap();
    let ids: Vec<String> = (0..20).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let lines: String = ids
        .iter()
        .map(|id| {
            format!(
                "{{\"id\":\"{id}\",\"kind\":\"login_failed\",\"ts\":\"2026-11-21T09:00:00Z\",\"level\":\"critical\",\"user\":\"u\"}}\n"
            )
        })
        .collect();
    std::fs::write(dir.path().join("vendor.ndjson"), lines).unwrap();
    let out = run_cli(
        &[
            "send",
            "splunk_hec/archive",
            "vendor.ndjson",
            "--receiver",
            "webhook",
            "--config",
            "relay.yaml",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(hec.total_events(), 20);
    hec.read(|state| {
        for envelope in &state.events.items {
            let event = &envelope["event"];
            assert!(
                ids.iter().any(|id| event["event_id"] == id.as_str()),
                "{event}"
            );
            assert_eq!(event["event_type"], "login_failed");
            assert_eq!(event["severity"], "critical");
            assert_eq!(event["timestamp"], "2026-11-21T09:00:00Z");
        }
    });
    let missing = run_cli(
        &[
            "send",
            "splunk_hec/archive",
            "vendor.ndjson",
            "--receiver",
            "nope",
            "--config",
            "relay.yaml",
        ],
        dir.path(),
    );
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--receiver nope"), "{stderr}");
}

/// Issue 25: `--pipeline NAME` runs that pipeline's processors on the events before sending.
#[test]
fn send_runs_a_pipelines_processors_when_asked() {
    let hec = FakeHec::start_default();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&hec.url())
        .replace(
            "exporters:\n",
            "processors:\n  filter/no-test:\n    exclude: { event_types: [\"test_*\"] }\nexporters:\n",
        )
        .replace(
            "backfill: { receivers: [webhook], exporters: [splunk_hec/archive] }",
            "backfill: { receivers: [webhook], processors: [filter/no-test], exporters: [splunk_hec/archive] }",
        );
    assert!(config.contains("processors: [filter/no-test]"), "{config}");
    std::fs::write(dir.path().join("relay.yaml"), config).unwrap();
    let lines: String = (0..30)
        .map(|i| {
            let kind = if i % 3 == 0 { "test_ping" } else { "lockout" };
            format!(
                "{{\"event_id\":\"{}\",\"event_type\":\"{kind}\",\"timestamp\":\"2026-11-21T09:00:00Z\"}}\n",
                uuid::Uuid::new_v4()
            )
        })
        .collect();
    std::fs::write(dir.path().join("mixed.ndjson"), lines).unwrap();
    let out = run_cli(
        &[
            "send",
            "splunk_hec/archive",
            "mixed.ndjson",
            "--pipeline",
            "backfill",
            "--config",
            "relay.yaml",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sent 20 event(s)")
            && stdout.contains("10 dropped by --pipeline processors"),
        "{stdout}"
    );
    assert_eq!(hec.total_events(), 20);
    hec.read(|state| {
        assert!(
            state
                .events
                .items
                .iter()
                .all(|e| e["event"]["event_type"] == "lockout")
        );
    });
    let missing = run_cli(
        &[
            "send",
            "splunk_hec/archive",
            "mixed.ndjson",
            "--pipeline",
            "nope",
            "--config",
            "relay.yaml",
        ],
        dir.path(),
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--pipeline nope"));
}
