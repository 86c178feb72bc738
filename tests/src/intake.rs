//! Shared steps of the drop-in receivers' end-to-end tests (a real client library sends to
//! siemrelay, a `file` exporter writes to `<relay dir>/out`): the client's JSON report, waiting
//! for a run's events, and what the admin API shows of the receiver.

use crate::{Siemrelay, read_ndjson_files, repo};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The JSON report a client script (`script`, named in the failure) printed on stdout.
pub fn client_report(script: &str, output: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{script} printed no report ({e}); stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Waits (on progress: the output growing) until `want` events whose `attributes.run` is `run`
/// are in the relay's `out` directory; fails when none more arrive for 60 s.
pub fn wait_run_output(relay: &Siemrelay, run: &str, want: usize) -> Vec<Value> {
    let mut last = (0, Instant::now());
    loop {
        let events: Vec<Value> = read_ndjson_files(&relay.dir().join("out"), "events")
            .into_iter()
            .filter(|e| e["attributes"]["run"] == json!(run))
            .collect();
        if events.len() >= want {
            return events;
        }
        if events.len() > last.0 {
            last = (events.len(), Instant::now());
        }
        assert!(
            last.1.elapsed() < Duration::from_secs(60),
            "{} of {want} events arrived and none more for 60 s; logs:\n{}",
            events.len(),
            relay.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first receiver's row in the admin API's pipelines (what the status page shows).
pub async fn receiver_status_row(admin: u16) -> Value {
    let pipelines: Value = reqwest::get(format!("http://127.0.0.1:{admin}/api/v1/pipelines"))
        .await
        .expect("pipelines")
        .json()
        .await
        .expect("pipelines JSON");
    pipelines["pipelines"][0]["receivers"][0].clone()
}

/// The sum of the `/metrics` samples named `name` that carry all of `labels`.
pub async fn admin_metric(admin: u16, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|line| {
            line.starts_with(name)
                && labels
                    .iter()
                    .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits (at most 60 s) until `receiver` has answered a request "busy": the queue is full.
pub async fn wait_for_backpressure(relay: &Siemrelay, admin: u16, receiver: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let labels = [("receiver", receiver), ("reason", "backpressure")];
    while admin_metric(admin, "siemrelay_receiver_events_refused_total", &labels).await == 0.0 {
        assert!(
            Instant::now() < deadline,
            "no backpressure answer; logs:\n{}",
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Unblocks the file exporter of these tests, held back by a plain file where its `out`
/// directory belongs: the file becomes the directory. Returns the directory.
pub fn unblock_out(relay: &Siemrelay) -> std::path::PathBuf {
    let out = relay.dir().join("out");
    std::fs::remove_file(&out).expect("unblock the output");
    // The file exporter's next retry may make the directory first (it creates missing
    // parents): either way the output is a directory now.
    match std::fs::create_dir(&out) {
        Err(e) if !(e.kind() == std::io::ErrorKind::AlreadyExists && out.is_dir()) => {
            panic!("unblock the output: {e}")
        }
        _ => {}
    }
    out
}

/// A JSON fixture: `tests/fixtures/<dir>/<name>`.
pub fn json_fixture(dir: &str, name: &str) -> Value {
    let path = repo().join("tests/fixtures").join(dir).join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture JSON")
}
