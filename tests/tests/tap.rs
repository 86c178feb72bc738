//! `siemrelay tap` with the real binary: the events passing a receiver, a processor or an
//! exporter, sampled and limited, streamed from `GET /api/v1/tap/{id}` (token required); and a
//! tapper that does not read loses copies, counted in the stream, while the pipeline delivers
//! everything at full pace.

mod admin_support;

use admin_support::{Admin, TOKEN, post_webhook};
use serde_json::Value;
use siemrelay_e2e::{Siemrelay, free_port, siemrelay_bin};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(webhook: u16, admin: u16) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
processors:
  filter/high: {{ include: {{ min_severity: high }} }}
exporters:
  file: {{ path: "./out/events.ndjson", fsync: never, queue: {{ max_events: 100000, max_size: 256MiB }} }}
service:
  shutdown_timeout: 10s
  admin:
    endpoint: "127.0.0.1:{admin}"
    auth: {{ bearer_token: "${{env:TAP_TEST_ADMIN_TOKEN}}" }}
  pipelines:
    security: {{ receivers: [webhook], processors: [filter/high], exporters: [file] }}
"#
    )
}

/// `n` events, alternately high and low severity, tagged `tag-<i>`.
fn mixed(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| {
            let severity = if i % 2 == 0 { "high" } else { "low" };
            format!(
                "{{\"event_type\":\"tap_test\",\"severity\":\"{severity}\",\"summary\":\"{tag}-{i}\"}}\n"
            )
        })
        .collect()
}

fn start() -> (Siemrelay, u16, u16) {
    let (webhook, admin) = (free_port(), free_port());
    let mut relay = Siemrelay::start_with(
        &config(webhook, admin),
        &[],
        &[("TAP_TEST_ADMIN_TOKEN", TOKEN)],
    );
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin)));
    (relay, webhook, admin)
}

/// Runs `siemrelay tap ARGS --config siemrelay.yaml`; waits until it says it is tapping.
fn spawn_tap(
    relay: &Siemrelay,
    args: &[&str],
) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new(siemrelay_bin())
        .arg("tap")
        .args(args)
        .args(["--config", "siemrelay.yaml"])
        .env("TAP_TEST_ADMIN_TOKEN", TOKEN)
        .env_remove("SIEMRELAY_ADMIN_TOKEN")
        .current_dir(relay.dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run siemrelay tap");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    stderr.read_line(&mut first).expect("read tap stderr");
    assert!(first.starts_with("tapping "), "siemrelay tap said: {first}");
    (child, stderr)
}

fn finish(
    mut child: std::process::Child,
    mut stderr: BufReader<std::process::ChildStderr>,
) -> (Vec<Value>, String) {
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read tap stdout");
    let mut notes = String::new();
    stderr.read_to_string(&mut notes).expect("read tap stderr");
    let status = child.wait().expect("wait for siemrelay tap");
    assert!(status.success(), "siemrelay tap failed: {notes}");
    let events = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (events, notes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_prints_sampled_events_of_receivers_processors_and_exporters() {
    let (mut relay, webhook, admin_port) = start();
    let client = reqwest::Client::new();

    // Without the token the stream is refused.
    let anonymous = Admin::new(admin_port, None);
    assert_eq!(
        anonymous
            .call(reqwest::Method::GET, "/api/v1/tap/webhook", None)
            .await
            .0,
        401
    );
    let admin = Admin::new(admin_port, Some(TOKEN));
    let (status, body) = admin
        .call(reqwest::Method::GET, "/api/v1/tap/nope", None)
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("filter/high"),
        "{body}"
    );
    let (status, _) = admin
        .call(reqwest::Method::GET, "/api/v1/tap/webhook?sample=0", None)
        .await;
    assert_eq!(status, 400);

    // The filter's output, one in two, five events: high ones only, every second of them.
    let (filter_tap, filter_notes) =
        spawn_tap(&relay, &["filter/high", "--sample", "2", "--limit", "5"]);
    let (receiver_tap, receiver_notes) = spawn_tap(&relay, &["webhook", "--limit", "6"]);
    let (exporter_tap, exporter_notes) = spawn_tap(&relay, &["file", "--limit", "3"]);
    post_webhook(&client, webhook, mixed(40, "a")).await;

    let (events, notes) = finish(filter_tap, filter_notes);
    let summaries: Vec<&str> = events
        .iter()
        .filter_map(|e| e["summary"].as_str())
        .collect();
    assert_eq!(
        summaries,
        ["a-0", "a-4", "a-8", "a-12", "a-16"],
        "one in two of the filter's output (the even, high events): {notes}"
    );
    assert!(notes.contains("limit reached (5 events)"), "{notes}");

    let (events, _) = finish(receiver_tap, receiver_notes);
    let summaries: Vec<&str> = events
        .iter()
        .filter_map(|e| e["summary"].as_str())
        .collect();
    assert_eq!(
        summaries,
        ["a-0", "a-1", "a-2", "a-3", "a-4", "a-5"],
        "the receiver sees every event"
    );
    assert!(events.iter().all(|e| e["event_id"].is_string()));

    let (events, _) = finish(exporter_tap, exporter_notes);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["severity"] == "high"), "{events:?}");

    assert!(
        relay
            .terminate(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "{}",
        relay.logs()
    );
}

/// A raw HTTP/1.1 GET whose response is not read until asked.
fn open_unread_tap(admin_port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let mut stream =
        TcpStream::connect(("127.0.0.1", admin_port)).expect("connect to the admin listener");
    write!(
        stream,
        "GET /api/v1/tap/webhook HTTP/1.1\r\nHost: 127.0.0.1:{admin_port}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .expect("send the request");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("read the status line");
    assert!(
        line.starts_with("HTTP/1.1 200"),
        "GET /api/v1/tap/webhook: {line}"
    );
    // Read up to the first line of the body (the tap's header): the tap is open from there.
    loop {
        line.clear();
        reader.read_line(&mut line).expect("read the response");
        assert!(!line.is_empty(), "the admin listener closed the tap");
        if line.contains("\"tap\"") {
            break;
        }
    }
    (stream, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tapper_that_does_not_read_loses_copies_counted_and_never_slows_the_pipeline() {
    let (mut relay, webhook, admin_port) = start();
    let (_stream, mut reader) = open_unread_tap(admin_port);

    // Enough events to fill every buffer between the tap and this test many times over.
    const REQUESTS: usize = 80;
    const PER_REQUEST: usize = 500;
    let client = reqwest::Client::new();
    for request in 0..REQUESTS {
        post_webhook(&client, webhook, mixed(PER_REQUEST, &format!("r{request}"))).await;
    }
    let total = REQUESTS * PER_REQUEST;
    // Every high event reaches the file while the tapper reads nothing (waits on progress).
    let admin = Admin::new(admin_port, Some(TOKEN));
    let mut last = 0;
    let mut moved = Instant::now();
    loop {
        let sent = admin.exporter("file").await["events_sent"]
            .as_u64()
            .unwrap_or(0);
        if sent as usize == total / 2 {
            break;
        }
        if sent != last {
            last = sent;
            moved = Instant::now();
        }
        assert!(
            moved.elapsed() < Duration::from_secs(30),
            "the pipeline stalled at {sent} of {} while a tapper did not read",
            total / 2
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Now read: every event the receiver passed was either streamed or reported as dropped.
    let counted = tokio::task::spawn_blocking(move || {
        let (mut events, mut dropped) = (0usize, 0usize);
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while events + dropped < total && Instant::now() < deadline {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            // Chunked transfer coding: size lines are hex digits only.
            let text = line.trim();
            if text.is_empty() || text.chars().all(|c| c.is_ascii_hexdigit()) {
                continue;
            }
            let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            match value.get("tap") {
                Some(notice) => dropped += notice["dropped"].as_u64().unwrap_or(0) as usize,
                None => events += 1,
            }
        }
        (events, dropped)
    })
    .await
    .expect("read the tap");
    let (events, dropped) = counted;
    assert!(
        dropped > 0,
        "a tapper that did not read lost nothing ({events} events)?"
    );
    assert_eq!(
        events + dropped,
        total,
        "streamed {events} + reported dropped {dropped} must account for every event"
    );
    assert!(
        relay
            .terminate(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "{}",
        relay.logs()
    );
}
