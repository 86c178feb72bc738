//! Issue 6 acceptance with the real binary: disk queues survive kill -9 at random moments,
//! a corrupt queue tail is reported and skipped, a long outage ends in the dead-letter file and
//! `dlq replay` delivers it, and a full queue means backpressure (or counted drops).
//!
//! The "SIEM" here is the file exporter writing to `./siem/`: while `./siem` is a regular file the
//! exporter cannot write (ENOTDIR) and retries, exactly like a SIEM that is down; replacing it
//! with a directory brings the SIEM back.

use siemrelay_e2e::{Siemrelay, free_port, read_ndjson_files, run_cli};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

fn config(port: u16, queue: &str, retry: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
  otlp:
    protocols:
      http: {{ endpoint: "127.0.0.1:{otlp}" }}
exporters:
  file: {{ path: "./siem/events.ndjson", queue: {queue}, retry: {retry} }}
service:
  shutdown_timeout: 5s
  pipelines:
    security: {{ receivers: [webhook, otlp], exporters: [file] }}
"#,
        otlp = port + 1
    )
}

fn siem_down(dir: &Path) {
    let siem = dir.join("siem");
    if siem.is_dir() {
        std::fs::remove_dir_all(&siem).unwrap();
    }
    std::fs::write(siem, b"SIEM is down").unwrap();
}

fn siem_up(dir: &Path) {
    let siem = dir.join("siem");
    if siem.is_file() {
        std::fs::remove_file(&siem).unwrap();
    }
    std::fs::create_dir_all(siem).unwrap();
}

fn delivered(dir: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in read_ndjson_files(&dir.join("siem"), "events") {
        *counts
            .entry(event["event_id"].as_str().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    counts
}

fn ndjson(n: usize, tag: &str) -> (String, Vec<String>) {
    let mut body = String::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        body.push_str(&format!("{{\"event_id\":\"{id}\",\"event_type\":\"anomaly\",\"severity\":\"high\",\"summary\":\"{tag} {i}\"}}\n"));
        ids.push(id);
    }
    (body, ids)
}

fn otlp_json(n: usize) -> (String, Vec<String>) {
    let mut records = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        records.push(format!(
            r#"{{"timeUnixNano":"1732000000000000000","severityNumber":17,"body":{{"stringValue":"otlp {i}"}},"attributes":[{{"key":"event.id","value":{{"stringValue":"{id}"}}}},{{"key":"event.name","value":{{"stringValue":"anomaly"}}}}]}}"#
        ));
        ids.push(id);
    }
    (
        format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[]}},"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
            records.join(",")
        ),
        ids,
    )
}

/// Posts continuously from two senders (webhook NDJSON and OTLP/HTTP JSON) until the process
/// dies; returns the ids whose request got a success answer.
async fn load_until_dead(port: u16, tag: usize) -> Vec<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let webhook = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for request in 0..100_000 {
                let (body, ids) = ndjson(20, &format!("run{tag} req{request}"));
                match client
                    .post(format!("http://127.0.0.1:{port}/v1/events"))
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => acked.extend(ids),
                    Ok(r) if r.status() == 503 => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    _ => break,
                }
            }
            acked
        })
    };
    let otlp = tokio::spawn(async move {
        let mut acked = Vec::new();
        for _ in 0..100_000 {
            let (body, ids) = otlp_json(10);
            match client
                .post(format!("http://127.0.0.1:{}/v1/logs", port + 1))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => acked.extend(ids),
                Ok(r) if r.status() == 503 => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => break,
            }
        }
        acked
    });
    let mut acked = webhook.await.unwrap();
    acked.extend(otlp.await.unwrap());
    acked
}

fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

#[tokio::test]
async fn kill_9_at_random_moments_loses_no_acknowledged_event() {
    let port = free_port();
    let config = config(
        port,
        "{ type: disk, max_events: 1000000 }",
        "{ initial_interval: 50ms, max_interval: 200ms }",
    );
    let mut dir = tempfile::tempdir().unwrap();
    siem_down(dir.path());
    let mut acked: Vec<String> = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..12 {
        let mut relay = Siemrelay::start_in(dir, &config, &[], &[]);
        relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
        relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port + 1)));
        let load = tokio::spawn(load_until_dead(port, round));
        // A pseudo-random moment between 150 and 900 ms into the load.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(150 + seed % 750)).await;
        let logs = relay.logs();
        dir = relay.into_dir(); // SIGKILL
        let round_acked = load.await.unwrap();
        assert!(
            !round_acked.is_empty(),
            "round {round}: the load ran\n{logs}"
        );
        acked.extend(round_acked);
    }
    // The SIEM comes back; one more start delivers everything.
    siem_up(dir.path());
    let mut relay = Siemrelay::start_in(dir, &config, &[], &[]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let ok = wait_until(Duration::from_secs(90), || {
        let counts = delivered(relay.dir());
        acked.iter().all(|id| counts.contains_key(id))
    });
    let counts = delivered(relay.dir());
    let missing = acked.iter().filter(|id| !counts.contains_key(*id)).count();
    assert!(
        ok && missing == 0,
        "{missing} of {} acknowledged events never arrived\n{}",
        acked.len(),
        relay.logs()
    );
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    // Duplicates come only from chunks in flight at a kill: bounded by the kills × what a chunk holds.
    assert!(duplicates <= 12 * 4 * 8192, "{duplicates} duplicates");
    assert!(
        relay
            .terminate(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );
}

#[tokio::test]
async fn a_corrupt_queue_tail_is_reported_and_the_intact_events_delivered() {
    let port = free_port();
    let config = config(
        port,
        "{ type: disk }",
        "{ initial_interval: 50ms, max_interval: 200ms }",
    );
    let dir = tempfile::tempdir().unwrap();
    siem_down(dir.path());
    let mut relay = Siemrelay::start_in(dir, &config, &[], &[]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    for request in 0..20 {
        let (body, ids) = ndjson(50, &format!("req{request}"));
        let r = client
            .post(format!("http://127.0.0.1:{port}/v1/events"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        acked.push(ids);
    }
    let dir = relay.into_dir();
    // Damage the end of the newest segment: cut the last record in half and add garbage.
    let queue_dir = dir.path().join("siemrelay-data/queues/file");
    let mut segments: Vec<_> = std::fs::read_dir(&queue_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let newest = segments.last().expect("a segment file");
    let len = std::fs::metadata(newest).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap();
    file.set_len(len - 300).unwrap();
    drop(file);
    let mut bytes = std::fs::read(newest).unwrap();
    bytes.extend_from_slice(b"\x00garbage after a torn write\xff\xfe");
    std::fs::write(newest, bytes).unwrap();
    // The inspect tool sees the damage without changing anything.
    let inspect = run_cli(
        &["queue", "inspect", queue_dir.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(
        inspect.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );
    siem_up(dir.path());
    let mut relay = Siemrelay::start_in(dir, &config, &[], &[]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let client = reqwest::Client::new();
    // All requests but the last (whose record was cut) are intact and delivered.
    let intact: Vec<&String> = acked[..19].iter().flatten().collect();
    let ok = wait_until(Duration::from_secs(30), || {
        let counts = delivered(relay.dir());
        intact.iter().all(|id| counts.contains_key(*id))
    });
    assert!(ok, "intact events were not delivered\n{}", relay.logs());
    assert!(
        relay.logs().contains("recovered from damage"),
        "the damage is reported\n{}",
        relay.logs()
    );
    // The queue keeps working after the repair.
    let (body, ids) = ndjson(5, "after");
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(wait_until(Duration::from_secs(20), || {
        let c = delivered(relay.dir());
        ids.iter().all(|id| c.contains_key(id))
    }));
}

#[tokio::test]
async fn a_long_outage_ends_in_the_dead_letter_file_and_replay_delivers_it() {
    let port = free_port();
    let config = config(
        port,
        "{ type: disk }",
        "{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 2s }",
    );
    let dir = tempfile::tempdir().unwrap();
    siem_down(dir.path());
    let mut relay = Siemrelay::start_in(dir, &config, &[], &[]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let client = reqwest::Client::new();
    let (body, ids) = ndjson(300, "outage");
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dlq = relay.dir().join("siemrelay-data/dead_letter/file.ndjson");
    let all_dead = wait_until(Duration::from_secs(30), || {
        read_ndjson_files(dlq.parent().unwrap(), "file.ndjson").len() == 300
    });
    assert!(
        all_dead,
        "events should be dead-lettered after max_elapsed_time\n{}",
        relay.logs()
    );
    let logs = relay.logs();
    assert!(
        logs.contains("degraded") && logs.contains("failed"),
        "status transitions are logged\n{logs}"
    );
    let entries = read_ndjson_files(dlq.parent().unwrap(), "file.ndjson");
    assert!(entries.iter().all(|e| {
        e["error"]
            .as_str()
            .unwrap_or_default()
            .contains("retries exhausted")
            && e["attempts"].as_u64() >= Some(2)
    }));
    // The SIEM is back: the exporter recovers for new events, and dlq replay delivers the old ones.
    siem_up(relay.dir());
    let list = run_cli(
        &["dlq", "list", "file", "--config", "siemrelay.yaml"],
        relay.dir(),
    );
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("300 dead-lettered event(s)"),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );
    let replay = run_cli(
        &["dlq", "replay", "file", "--config", "siemrelay.yaml"],
        relay.dir(),
    );
    let out = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(out.contains("300 delivered"), "{out}");
    let counts = delivered(relay.dir());
    assert!(
        ids.iter().all(|id| counts.get(id) == Some(&1)),
        "each replayed event delivered once"
    );
    let list = run_cli(
        &["dlq", "list", "file", "--config", "siemrelay.yaml"],
        relay.dir(),
    );
    assert!(String::from_utf8_lossy(&list.stdout).contains("0 dead-lettered event(s)"));
}

#[tokio::test]
async fn a_full_disk_queue_means_backpressure_or_counted_drops() {
    for (when_full, expect_refusals) in [("backpressure", true), ("drop_oldest", false)] {
        let port = free_port();
        let config = config(
            port,
            &format!("{{ type: disk, max_events: 500, when_full: {when_full} }}"),
            "{ initial_interval: 50ms, max_interval: 200ms }",
        );
        let dir = tempfile::tempdir().unwrap();
        siem_down(dir.path());
        let mut relay = Siemrelay::start_in(dir, &config, &[], &[]);
        relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
        let client = reqwest::Client::new();
        let mut refused = 0;
        for request in 0..30 {
            let (body, _) = ndjson(50, &format!("full{request}"));
            let r = client
                .post(format!("http://127.0.0.1:{port}/v1/events"))
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .unwrap();
            if r.status() == 503 {
                refused += 1;
            } else {
                assert_eq!(r.status(), 200);
            }
        }
        if expect_refusals {
            assert!(refused >= 19, "{when_full}: {refused} refusals");
        } else {
            assert_eq!(refused, 0, "{when_full} never refuses");
            let logs = relay.logs();
            assert!(logs.contains("dropped"), "drops are logged\n{logs}");
        }
    }
}
