//! Issue 2 acceptance with the real binary: webhook → file, default config, 10,000 events once
//! each, SIGTERM during a stream, backpressure with bounded memory, bad input.

use siemrelay_e2e::events::ndjson_body;
use siemrelay_e2e::{Siemrelay, free_port, read_ndjson_files};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

fn webhook_file_config(port: u16, extra_exporter_keys: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
exporters:
  file: {{ path: "./out/events-%Y-%m-%d.ndjson" {extra_exporter_keys} }}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [file] }}
"#
    )
}

fn count_ids(dir: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in read_ndjson_files(&dir.join("out"), "events-") {
        let id = event["event_id"].as_str().unwrap_or_default().to_string();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: String,
    content_type: &str,
) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn run_without_flags_uses_the_embedded_default_config() {
    // The embedded default listens on 127.0.0.1:8088 and writes ./siemrelay-data/events-*.ndjson.
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(siemrelay_e2e::siemrelay_bin())
        .arg("run")
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: SocketAddr = "127.0.0.1:8088".parse().unwrap();
    assert!(
        siemrelay_e2e::wait_for_port(addr, Duration::from_secs(20)),
        "default config did not listen on 8088"
    );
    let client = reqwest::Client::new();
    let response = post(
        &client,
        "http://127.0.0.1:8088/v1/events",
        r#"{"event_type":"lockout","severity":"critical","summary":"user locked out","user":"alice"}"#.into(),
        "application/json",
    )
    .await;
    assert_eq!(response.status(), 200);
    let found = wait_until(Duration::from_secs(10), || {
        read_ndjson_files(&dir.path().join("siemrelay-data"), "events-")
            .iter()
            .any(|e| e["event_type"] == "lockout" && e["attributes"]["user"] == "alice")
    });
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(
        found,
        "the event did not reach ./siemrelay-data/events-*.ndjson"
    );
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
}

#[test]
fn a_sigterm_while_starting_up_is_a_clean_stop_not_a_kill() {
    // The signal comes once the webhook listens, before `run` says it is running: the moment a
    // service manager's stop or a rolling update can hit. It must be waited for like any other
    // SIGTERM (a clean drain, exit 0), not end the process by the signal's default action.
    let port = free_port();
    let mut relay = Siemrelay::start(&webhook_file_config(port, ""));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err() {
        assert!(
            Instant::now() < deadline,
            "the webhook did not listen:\n{}",
            relay.logs()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = relay.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit after a SIGTERM while starting up: {status:?}\n{}",
        relay.logs()
    );
    assert!(
        relay.logs().contains("signal received"),
        "the signal was handled:\n{}",
        relay.logs()
    );
}

#[tokio::test]
async fn ten_thousand_events_in_100_requests_arrive_once_each() {
    let port = free_port();
    let mut relay = Siemrelay::start(&webhook_file_config(port, ""));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let mut sent = Vec::new();
    let mut tasks = Vec::new();
    for request in 0..100 {
        let (body, ids) = ndjson_body(request, 100);
        sent.extend(ids);
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let response = post(&client, &url, body, "application/x-ndjson").await;
            let status = response.status();
            let reply: serde_json::Value = response.json().await.unwrap_or_default();
            (status, reply)
        }));
    }
    for task in tasks {
        let (status, reply) = task.await.unwrap();
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["accepted"], 100, "{reply}");
    }
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean shutdown");
    let counts = count_ids(relay.dir());
    assert_eq!(counts.len(), 10_000, "distinct events in the file");
    for id in &sent {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "event {id} must be in the file exactly once"
        );
    }
}

#[tokio::test]
async fn sigterm_during_a_stream_keeps_every_acknowledged_event() {
    let port = free_port();
    let mut relay = Siemrelay::start(&webhook_file_config(port, ""));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let client = reqwest::Client::new();
    // Four senders post continuously; SIGTERM lands in the middle.
    let mut senders = Vec::new();
    for sender in 0..4 {
        let (client, url) = (client.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for request in 0..10_000 {
                let (body, ids) = ndjson_body(sender * 100_000 + request, 50);
                match client
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(response) if response.status() == 200 => acknowledged.extend(ids),
                    Ok(_) | Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = relay.pid();
    assert!(pid > 0);
    relay.signal(libc::SIGTERM);
    let mut acknowledged = Vec::new();
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }
    let status = relay.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after drain: {status:?}\n{}",
        relay.logs()
    );
    assert!(
        acknowledged.len() >= 500,
        "the stream ran before the signal ({} acknowledged)",
        acknowledged.len()
    );
    let counts = count_ids(relay.dir());
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing after SIGTERM, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert!(counts.values().all(|n| *n == 1), "no duplicates");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn blocked_exporter_gives_503_and_memory_stays_bounded() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    // `out` is a regular file, so the exporter can never create out/events-*.ndjson: it retries
    // forever and its queue (1,000 events) fills up.
    std::fs::write(dir.path().join("out"), b"not a directory").unwrap();
    let config = webhook_file_config(
        port,
        ", queue: { max_events: 1000 }, retry: { initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 1h }",
    );
    let mut relay = Siemrelay::start_in(dir, &config, &[], &[]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let client = reqwest::Client::new();
    let mut accepted = 0;
    let mut refused = 0;
    let mut retry_after = None;
    let mut peak_rss = 0;
    for request in 0..2000 {
        let (body, _) = ndjson_body(request, 100);
        let response = post(&client, &url, body, "application/x-ndjson").await;
        match response.status().as_u16() {
            200 => accepted += 1,
            503 => {
                refused += 1;
                retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
            other => panic!("unexpected status {other}"),
        }
        if request % 50 == 0 {
            peak_rss = peak_rss.max(rss_kib(relay.pid()));
        }
    }
    assert!(
        accepted <= 11,
        "the queue holds 1,000 events: at most ~10 requests of 100 fit, {accepted} were accepted"
    );
    assert!(refused >= 1980, "the rest get 503 ({refused})");
    assert!(
        retry_after.is_some_and(|v| v.parse::<u64>().is_ok()),
        "503 carries Retry-After"
    );
    // ~200,000 refused events (~80 MB of request bodies) must not accumulate: memory stays at
    // the plateau of a full 1,000-event queue plus the allocator's working set.
    assert!(peak_rss > 0, "RSS was read");
    assert!(
        peak_rss < 96 * 1024,
        "peak RSS {peak_rss} KiB while refusing 200,000 events"
    );
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_the_server_keeps_serving() {
    let port = free_port();
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}", max_body_size: 64KiB, auth: {{ bearer_token: "${{env:E2E_TOKEN}}" }} }}
exporters:
  file: {{ path: "./out/events-%Y-%m-%d.ndjson" }}
service:
  pipelines:
    security: {{ receivers: [webhook], exporters: [file] }}
"#
    );
    let mut relay = Siemrelay::start_with(&config, &[], &[("E2E_TOKEN", "e2e-token-123")]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let client = reqwest::Client::new();
    let send = |body: String, content_type: &'static str, token: Option<&'static str>| {
        let mut request = client
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let good = || r#"{"event_type":"anomaly","summary":"ok"}"#.to_string();
    let cases: Vec<(String, &str, Option<&str>, u16, &str)> = vec![
        (good(), "application/json", None, 401, "token"),
        (good(), "application/json", Some("wrong"), 401, "token"),
        (
            "{\"event_type\": \"x\",\n \"broken\": }".into(),
            "application/json",
            Some("e2e-token-123"),
            400,
            "line 2",
        ),
        (
            good(),
            "text/plain",
            Some("e2e-token-123"),
            415,
            "application/json",
        ),
        (
            "x".repeat(100 * 1024),
            "application/json",
            Some("e2e-token-123"),
            413,
            "",
        ),
    ];
    for (body, content_type, token, want, needle) in cases {
        let response = send(body, content_type, token).await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, want, "{text}");
        assert!(text.contains("error"), "JSON error body: {text}");
        assert!(text.contains(needle), "{text} should mention {needle}");
        // The server keeps serving after every bad request.
        let ok = send(good(), "application/json", Some("e2e-token-123"))
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    }
    assert!(
        relay
            .terminate(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );
    let events = read_ndjson_files(&relay.dir().join("out"), "events-");
    assert_eq!(events.len(), 5, "only the five good requests were written");
}

/// `service.watch_config: true`: editing the file reloads it (checked every 2 s); a broken edit
/// is reported and the running configuration keeps serving.
#[tokio::test]
async fn an_edited_config_file_is_reloaded_and_a_broken_edit_is_ignored() {
    let port = free_port();
    let config = |path: &str, min_severity: &str| {
        format!(
            r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
processors:
  filter: {{ include: {{ min_severity: {min_severity} }} }}
exporters:
  file: {{ path: "./out/{path}.ndjson" }}
service:
  watch_config: true
  pipelines:
    security: {{ receivers: [webhook], processors: [filter], exporters: [file] }}
"#
        )
    };
    let mut relay = Siemrelay::start(&config("events-first", "info"));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let body = |severity: &str, n: usize| {
        (0..n)
            .map(|i| {
                format!(
                    "{{\"event_type\":\"login\",\"severity\":\"{severity}\",\"summary\":\"{i}\"}}\n"
                )
            })
            .collect::<String>()
    };
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let send = async |text: String| {
        let status = post(&client, &url, text, "application/x-ndjson")
            .await
            .status();
        assert_eq!(status, 200);
    };
    let lines = |name: &str| {
        std::fs::read_to_string(relay.dir().join("out").join(name))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    };
    send(body("low", 5)).await;
    assert!(wait_until(Duration::from_secs(10), || lines(
        "events-first.ndjson"
    ) == 5));

    // Edit: new file name, and `low` events are now filtered out.
    let path = relay.dir().join("siemrelay.yaml");
    std::fs::write(&path, config("events-second", "high")).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || relay
            .logs()
            .contains("configuration reloaded")),
        "no reload after the edit:\n{}",
        relay.logs()
    );
    send(body("low", 4) + &body("critical", 3)).await;
    assert!(wait_until(Duration::from_secs(10), || lines(
        "events-second.ndjson"
    ) == 3));
    assert_eq!(
        lines("events-first.ndjson"),
        5,
        "the old exporter got nothing more"
    );

    // A broken edit is reported by key and changes nothing.
    std::fs::write(&path, config("events-third", "no-such-severity")).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || relay
            .logs()
            .contains("reload refused")),
        "the broken edit was not reported:\n{}",
        relay.logs()
    );
    assert!(relay.logs().contains("min_severity"), "{}", relay.logs());
    send(body("critical", 2)).await;
    assert!(wait_until(Duration::from_secs(10), || lines(
        "events-second.ndjson"
    ) == 5));
    assert_eq!(lines("events-third.ndjson"), 0);
    relay.terminate(Duration::from_secs(20));
}
