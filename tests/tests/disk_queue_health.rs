//! Issue 21 §1-3 on the real binary: a disk queue on a small volume (a tmpfs the test mounts)
//! that fills up refuses intake with a status, a gauge and one log line per change, and heals by
//! itself once the SIEM takes the events back, without a restart; a volume smaller than one
//! segment and a `max_size` below one segment are refused. A deleted or zero-filled middle
//! segment is a loss counted in events: logged, counted, `queue inspect` exits 1, and the status
//! and `siemrelay status` show it until an operator acknowledges it (API or restart flag).

mod admin_support;

use admin_support::{Admin, TOKEN, metric, ndjson};
use serde_json::Value;
use siemrelay_e2e::fake::hec::{FakeHec, TOKEN as HEC_TOKEN};
use siemrelay_e2e::{Siemrelay, free_port, run_cli};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted by the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`20m`), or says why it cannot.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (needs root or CAP_SYS_ADMIN): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn config(webhook: u16, admin: u16, hec: &str, queue: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  splunk_hec:
    endpoint: "{hec}"
    token: "{HEC_TOKEN}"
    index: security
    queue: {queue}
    retry: {{ initial_interval: 20ms, max_interval: 200ms }}
service:
  shutdown_timeout: 3s
  admin:
    endpoint: "127.0.0.1:{admin}"
    auth: {{ bearer_token: "${{env:SIEMRELAY_ADMIN_TOKEN}}" }}
    allow_config_changes: true
  pipelines:
    security: {{ receivers: [webhook], exporters: [splunk_hec] }}
"#
    )
}

const ENV: [(&str, &str); 1] = [("SIEMRELAY_ADMIN_TOKEN", TOKEN)];

fn start_in(dir: tempfile::TempDir, config: &str, args: &[&str], ports: [u16; 2]) -> Siemrelay {
    let mut relay = Siemrelay::start_in(dir, config, args, &ENV);
    for port in ports {
        relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    relay
}

/// Posts `events` events; returns the HTTP status and the ids.
async fn post(client: &reqwest::Client, port: u16, events: usize, tag: &str) -> (u16, Vec<String>) {
    let (body, ids) = ndjson(events, tag, false);
    let status = client
        .post(format!("http://127.0.0.1:{port}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    (status, ids)
}

fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_small_volume_refuses_intake_visibly_and_heals_without_a_restart() {
    let volume = match Tmpfs::mount("20m") {
        Ok(volume) => volume,
        Err(reason) => {
            println!("SKIPPED: a small volume is needed: {reason}");
            return;
        }
    };
    let hec = FakeHec::start_default();
    let (webhook, admin_port) = (free_port(), free_port());
    let queue = format!(
        "{{ type: disk, max_events: 1000000, directory: \"{}\" }}",
        volume.path().join("q").display()
    );
    let config = config(webhook, admin_port, &hec.url(), &queue);
    let relay = start_in(
        tempfile::tempdir().unwrap(),
        &config,
        &[],
        [webhook, admin_port],
    );
    let admin = Admin::new(admin_port, Some(TOKEN));
    // The volume cannot hold the default max_size (1 GiB): said at start, and in the status.
    let exporter = admin.exporter("splunk_hec").await;
    assert!(
        exporter["notice"]
            .as_str()
            .unwrap_or_default()
            .contains("less than queue.max_size"),
        "{exporter}"
    );

    hec.go_down();
    let client = reqwest::Client::new();
    let mut acked: Vec<String> = Vec::new();
    let mut refused = 0;
    for request in 0..2000 {
        let (status, ids) = post(&client, webhook, 500, &format!("fill{request}")).await;
        match status {
            200 => acked.extend(ids),
            503 => {
                refused += 1;
                if refused >= 25 {
                    break;
                }
            }
            other => panic!("request {request}: HTTP {other}\n{}", relay.logs()),
        }
    }
    assert!(refused >= 25, "the volume never filled\n{}", relay.logs());
    assert!(acked.len() > 10_000, "{} events fit", acked.len());
    let exporter = admin.exporter("splunk_hec").await;
    assert_eq!(exporter["status"], "degraded", "{exporter}");
    let reason = exporter["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no space left"), "{reason}");
    let metrics = admin.metrics().await;
    let labels = [("exporter", "splunk_hec")];
    assert_eq!(
        metric(&metrics, "siemrelay_exporter_queue_intake_refused", &labels),
        Some(1.0)
    );
    let logs = relay.logs();
    assert_eq!(
        count_lines(&logs, "intake refused: no space left"),
        1,
        "one log line per change, not per refused request\n{logs}"
    );

    // The SIEM comes back: everything acknowledged arrives, and intake resumes by itself.
    hec.come_up();
    let back_at = Instant::now();
    assert!(
        hec.events_reached(acked.len(), Duration::from_secs(120))
            .await,
        "{} of {} delivered\n{}",
        hec.distinct_events(),
        acked.len(),
        relay.logs()
    );
    assert!(acked.iter().all(|id| hec.count_of(id) >= 1));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    while Instant::now() < deadline {
        status = post(&client, webhook, 500, "after").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "intake did not resume\n{}", relay.logs());
    println!(
        "20 MiB volume: {} events acknowledged before it was full, {refused} requests refused; \
         delivered and accepting again {:?} after the SIEM came back",
        acked.len(),
        back_at.elapsed()
    );
    let exporter = admin
        .wait_exporter("splunk_hec", Duration::from_secs(20), |e| {
            e["status"] == "active"
        })
        .await;
    assert_eq!(exporter["status"], "active", "{exporter}");
    let metrics = admin.metrics().await;
    assert_eq!(
        metric(&metrics, "siemrelay_exporter_queue_intake_refused", &labels),
        Some(0.0)
    );
    assert_eq!(count_lines(&relay.logs(), "intake resumes"), 1);
}

#[tokio::test]
async fn a_volume_or_max_size_smaller_than_one_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (webhook, admin_port) = (free_port(), free_port());
    let path = dir.path().join("small.yaml");
    let small = config(
        webhook,
        admin_port,
        "http://127.0.0.1:9",
        "{ type: disk, max_size: 100KiB }",
    )
    .replace("${env:SIEMRELAY_ADMIN_TOKEN}", TOKEN);
    std::fs::write(&path, small).unwrap();
    let output = run_cli(
        &["validate", "--config", path.to_str().unwrap()],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("queue.max_size") && text.contains("256KiB"),
        "{text}"
    );

    let volume = match Tmpfs::mount("128k") {
        Ok(volume) => volume,
        Err(reason) => {
            println!("SKIPPED (volume part): {reason}");
            return;
        }
    };
    let queue = format!(
        "{{ type: disk, max_size: 64MiB, directory: \"{}\" }}",
        volume.path().join("q").display()
    );
    let mut relay = Siemrelay::start_with(
        &config(webhook, admin_port, "http://127.0.0.1:9", &queue),
        &[],
        &ENV,
    );
    let status = relay.wait_exit(Duration::from_secs(20));
    assert!(status.is_some_and(|s| !s.success()), "{}", relay.logs());
    assert!(
        relay.logs().contains("less than one segment"),
        "{}",
        relay.logs()
    );
}

/// Events per request (and so per queued record) in the loss tests.
const PER_RECORD: u64 = 100;

/// Fills a disk queue with fifty 100-event batches while the SIEM is down and stops siemrelay;
/// returns its directory, the queue directory and the ids sent.
async fn filled_queue(
    config: &str,
    hec: &FakeHec,
    ports: [u16; 2],
) -> (tempfile::TempDir, PathBuf, Vec<String>) {
    hec.go_down();
    let relay = start_in(tempfile::tempdir().unwrap(), config, &[], ports);
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for request in 0..50 {
        let (status, sent) = post(
            &client,
            ports[0],
            PER_RECORD as usize,
            &format!("q{request}"),
        )
        .await;
        assert_eq!(status, 200, "{}", relay.logs());
        ids.extend(sent);
    }
    let dir = relay.into_dir();
    let queue = dir.path().join("siemrelay-data/queues/splunk_hec");
    (dir, queue, ids)
}

/// Ports and config of the loss tests: a disk queue of 256 KiB segments.
fn loss_config(hec: &FakeHec) -> ([u16; 2], String) {
    let (webhook, admin_port) = (free_port(), free_port());
    let config = config(
        webhook,
        admin_port,
        &hec.url(),
        "{ type: disk, max_events: 1000000, max_size: 2MiB }",
    );
    ([webhook, admin_port], config)
}

/// The segment files of a queue directory, oldest first, with their data records (at least
/// three).
fn segments(queue: &Path) -> Vec<(PathBuf, u64)> {
    let output = run_cli(&["queue", "inspect", queue.to_str().unwrap()], queue);
    let report: Value = serde_json::from_slice(&output.stdout).expect("inspect JSON");
    let files: Vec<(PathBuf, u64)> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                queue.join(s["file"].as_str().unwrap()),
                s["data_records"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    files
}

fn inspect(queue: &Path) -> (Option<i32>, Value) {
    let output = run_cli(&["queue", "inspect", queue.to_str().unwrap()], queue);
    (
        output.status.code(),
        serde_json::from_slice(&output.stdout).expect("inspect JSON"),
    )
}

async fn delivered_exactly(hec: &FakeHec, ids: &[String], expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = || ids.iter().filter(|id| hec.count_of(id) > 0).count();
    while count() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing more arrives afterwards.
    tokio::time::sleep(Duration::from_millis(500)).await;
    count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_middle_segment_is_a_loss_counted_in_events_until_acknowledged() {
    let hec = FakeHec::start_default();
    let (ports, config) = loss_config(&hec);
    let admin_port = ports[1];
    let (dir, queue, ids) = filled_queue(&config, &hec, ports).await;
    let files = segments(&queue);
    let lost = PER_RECORD * files[1].1;
    assert!(files[1].1 > 1, "{files:?}");
    std::fs::remove_file(&files[1].0).unwrap();
    let (code, report) = inspect(&queue);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["events_lost"], lost, "{report}");
    assert_eq!(report["losses"][0]["cause"], "missing_segment");

    hec.come_up();
    let relay = start_in(dir, &config, &[], ports);
    let admin = Admin::new(admin_port, Some(TOKEN));
    assert!(relay.logs().contains("EVENTS LOST"), "{}", relay.logs());
    let exporter = admin.exporter("splunk_hec").await;
    assert_eq!(exporter["queue_losses"][0]["events"], lost, "{exporter}");
    assert_eq!(
        metric(
            &admin.metrics().await,
            "siemrelay_exporter_queue_events_lost_total",
            &[("exporter", "splunk_hec")]
        ),
        Some(lost as f64)
    );
    let expected = ids.len() - lost as usize;
    assert_eq!(delivered_exactly(&hec, &ids, expected).await, expected);
    // Everything left is delivered, yet the loss keeps the exporter degraded, here and in
    // `siemrelay status`, until someone acknowledges it.
    let exporter = admin.exporter("splunk_hec").await;
    assert_eq!(exporter["status"], "degraded", "{exporter}");
    let status = run_cli(
        &[
            "status",
            "--admin",
            &format!("127.0.0.1:{admin_port}"),
            "--token",
            TOKEN,
        ],
        relay.dir(),
    );
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table.contains("QUEUE LOSS") && table.contains(&format!("{lost} events")),
        "{table}"
    );
    let (code, body) = admin
        .post("/api/v1/exporters/splunk_hec/acknowledge-losses")
        .await;
    assert_eq!(
        (code, body["acknowledged"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    assert_eq!(body["exporter"]["status"], "active", "{body}");
    // Acknowledged for good: not shown after a restart.
    let dir = relay.into_dir();
    let _relay = start_in(dir, &config, &[], ports);
    let exporter = admin.exporter("splunk_hec").await;
    assert_eq!(exporter["queue_losses"], Value::Array(vec![]), "{exporter}");
    println!(
        "deleted segment: {} records, {lost} events lost, reported exactly; {expected} delivered",
        files[1].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_filled_segment_reports_its_records_and_events_and_a_restart_flag_acknowledges() {
    let hec = FakeHec::start_default();
    let (ports, config) = loss_config(&hec);
    let admin_port = ports[1];
    let (dir, queue, ids) = filled_queue(&config, &hec, ports).await;
    let files = segments(&queue);
    let records = files[1].1;
    let lost = PER_RECORD * records;
    let len = std::fs::metadata(&files[1].0).unwrap().len() as usize;
    std::fs::write(&files[1].0, vec![0u8; len]).unwrap();
    let (code, report) = inspect(&queue);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["events_lost"], lost, "{report}");
    assert_eq!(report["losses"][0]["cause"], "damaged_region");

    hec.come_up();
    let relay = start_in(dir, &config, &["--acknowledge-queue-losses"], ports);
    let admin = Admin::new(admin_port, Some(TOKEN));
    let logs = relay.logs();
    assert!(logs.contains("EVENTS LOST"), "{logs}");
    assert!(
        logs.contains("acknowledged by --acknowledge-queue-losses"),
        "{logs}"
    );
    let metrics = admin.metrics().await;
    let labels = [("exporter", "splunk_hec")];
    assert!(
        metric(
            &metrics,
            "siemrelay_exporter_queue_corrupt_records_total",
            &labels
        ) >= Some(records as f64),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "siemrelay_exporter_queue_events_lost_total",
            &labels
        ),
        Some(lost as f64)
    );
    let expected = ids.len() - lost as usize;
    assert_eq!(delivered_exactly(&hec, &ids, expected).await, expected);
    let exporter = admin
        .wait_exporter("splunk_hec", Duration::from_secs(10), |e| {
            e["status"] == "active"
        })
        .await;
    assert_eq!(exporter["status"], "active", "{exporter}");
    assert_eq!(exporter["queue_losses"], Value::Array(vec![]));
    let delivered: HashSet<&String> = ids.iter().filter(|id| hec.count_of(id) > 0).collect();
    println!(
        "zero-filled segment: {records} records, {lost} events lost; {} delivered",
        delivered.len()
    );
}
