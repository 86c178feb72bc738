//! Issue 23, `splunk_hec` receiver, through the real binary with real HEC clients:
//!
//! - Splunk's Node.js library `splunk-logging` (npm, tests/node-splunk) and the Python
//!   `splunk-hec-handler` (PyPI) each send 10,000 events to a `file` exporter: all arrive once,
//!   with every field.
//! - Under backpressure (the file exporter's output blocked, a small queue) they get 503 code 9
//!   "Server is busy". Neither library retries it: splunk-logging reports it to its `error`
//!   handler (it retries network errors only), splunk-hec-handler raises `requests.HTTPError`
//!   from the logging call. Their application (the driver script) sends the batch again after
//!   `Retry-After`, and once the output is back every event is there once.
//! - siemrelay's own `splunk_hec` exporter (acknowledgements on) in front of a second
//!   siemrelay's `splunk_hec` receiver (acknowledgements on, its queue blocked for a while):
//!   10,000 events arrive once with every field.
//! - Auth and reply codes, compared byte for byte with the replies of Splunk's documentation
//!   (tests/fixtures/splunk_hec/documented_replies.json: "Troubleshoot HTTP Event Collector",
//!   "About HTTP Event Collector Indexer Acknowledgment"), and the refusals on the admin API.

use serde_json::Value;
use siemrelay_e2e::events::post_events;
use siemrelay_e2e::{Siemrelay, free_port, python, read_ndjson_files, repo};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "0b9d5a8e-5f0c-4a39-9a3b-2f6c1de0e0a1";

/// A relay with one `splunk_hec` receiver (`extra` lines under it) feeding a `file` exporter
/// (`queue` settings) at `./out/events.ndjson`, and an admin listener.
fn start(port: u16, admin: u16, extra: &str, queue: &str, blocked: bool) -> Siemrelay {
    let dir = tempfile::tempdir().expect("tempdir");
    if blocked {
        std::fs::write(dir.path().join("out"), b"blocked").expect("block the output");
    }
    let config = format!(
        r#"
receivers:
  splunk_hec:
    endpoint: "127.0.0.1:{port}"
    tokens:
      - {{ token: "${{env:HEC_TOKEN}}", index: main, allowed_indexes: [main, security] }}
{extra}
exporters:
  file: {{ path: "./out/events.ndjson", queue: {queue}, retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 1h }} }}
service:
  shutdown_timeout: 10s
  admin: {{ endpoint: "127.0.0.1:{admin}" }}
  pipelines:
    hec: {{ receivers: [splunk_hec], processors: [], exporters: [file] }}
"#
    );
    let mut relay = Siemrelay::start_in(dir, &config, &[], &[("HEC_TOKEN", TOKEN)]);
    relay.wait_ready(([127, 0, 0, 1], port).into());
    relay.wait_ready(([127, 0, 0, 1], admin).into());
    relay
}

fn unblock(relay: &Siemrelay) {
    siemrelay_e2e::intake::unblock_out(relay);
}

/// Output events by the id at `path` (`attributes.message.id`, …).
fn output_by(
    relay: &Siemrelay,
    id_of: impl Fn(&Value) -> Option<String>,
) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for event in read_ndjson_files(&relay.dir().join("out"), "events") {
        if let Some(id) = id_of(&event) {
            out.entry(id).or_default().push(event);
        }
    }
    out
}

/// Waits until every id arrived (or the deadline passes) and returns the output.
async fn wait_for(
    relay: &Siemrelay,
    ids: &[String],
    id_of: impl Fn(&Value) -> Option<String> + Copy,
    timeout: Duration,
) -> HashMap<String, Vec<Value>> {
    let deadline = Instant::now() + timeout;
    loop {
        let out = output_by(relay, id_of);
        if ids.iter().all(|id| out.contains_key(id)) || Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_once(out: &HashMap<String, Vec<Value>>, ids: &[String], relay: &Siemrelay) {
    let wrong: Vec<(&String, usize)> = ids
        .iter()
        .map(|id| (id, out.get(id).map_or(0, Vec::len)))
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} events not delivered exactly once: {:?}\nlogs:\n{}",
        wrong.len(),
        ids.len(),
        &wrong[..wrong.len().min(5)],
        relay.logs()
    );
}

/// The driver's summary line: the ids it sent and what it saw.
fn summary(child: Child, what: &str) -> (Vec<String>, Value) {
    let output = child.wait_with_output().expect("driver output");
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: bad summary ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let ids = line["sent"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    (ids, line["seen"].clone())
}

fn node_splunk_logging(port: u16, count: usize, busy_marker: Option<&Path>) -> Child {
    let dir = repo().join("tests/node-splunk");
    assert!(
        dir.join("node_modules/splunk-logging").exists(),
        "splunk-logging is not installed: run `bash scripts/setup-test-env.sh` (npm ci in tests/node-splunk)"
    );
    Command::new("node")
        .arg(dir.join("send.js"))
        .args([
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--token",
            TOKEN,
        ])
        .args(["--count", &count.to_string(), "--batch", "100"])
        .args([
            "--retry-busy",
            if busy_marker.is_some() {
                "true"
            } else {
                "false"
            },
        ])
        .args(
            busy_marker
                .map(|m| vec!["--busy-marker".into(), m.display().to_string()])
                .unwrap_or_default(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (install Node.js 20+)")
}

fn python_hec_handler(port: u16, count: usize, busy_marker: Option<&Path>) -> Child {
    let mut command = Command::new(python());
    command
        .arg(repo().join("tests/python/splunk_hec_handler_send.py"))
        .args(["--port", &port.to_string(), "--token", TOKEN])
        .args(["--count", &count.to_string()]);
    if let Some(marker) = busy_marker {
        command.arg("--retry-busy").arg("--busy-marker").arg(marker);
    }
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run splunk_hec_handler_send.py")
}

fn node_id(event: &Value) -> Option<String> {
    event["attributes"]["message"]["id"]
        .as_str()
        .map(str::to_string)
}

fn python_id(event: &Value) -> Option<String> {
    event["attributes"]["id"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_logging_for_node_sends_10000_events_that_arrive_once_with_every_field() {
    let (port, admin) = (free_port(), free_port());
    let relay = start(
        port,
        admin,
        "",
        "{ type: memory, max_events: 20000 }",
        false,
    );
    let (ids, seen) = summary(node_splunk_logging(port, 10_000, None), "send.js");
    assert_eq!(ids.len(), 10_000);
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    let out = wait_for(&relay, &ids, node_id, Duration::from_secs(60)).await;
    assert_once(&out, &ids, &relay);
    for (id, events) in out.iter() {
        let event = &events[0];
        let message = &event["attributes"]["message"];
        let seq = message["seq"].as_u64().expect("seq");
        assert_eq!(message["id"], id.as_str());
        assert_eq!(message["user"], format!("u{seq}@acme.example"));
        assert_eq!(message["text"], "tab\t quote\" unicode é ✓");
        // JavaScript writes 3 * 1.5 as 4.5 and 2 * 1.5 as 3: compare the number's value.
        assert_eq!(message["nested"]["n"].as_f64(), Some(seq as f64 * 1.5));
        assert_eq!(message["nested"]["ok"], true);
        assert_eq!(
            message["nested"]["list"],
            serde_json::json!([1, "two", null])
        );
        // splunk-logging's default event: {"message": …, "severity": "warn"}.
        assert_eq!(event["severity"], "warn");
        assert_eq!(event["source"], "node-app");
        assert_eq!(
            event["resource"],
            serde_json::json!({"host.name": "node-host", "com.splunk.source": "node-app",
                "com.splunk.sourcetype": "node:json", "com.splunk.index": "main",
                "com.splunk.time": event["resource"]["com.splunk.time"].clone()})
        );
        // `time` is sent as a string of epoch seconds with milliseconds.
        let time = event["resource"]["com.splunk.time"]
            .as_str()
            .expect("time as sent");
        let (secs, fraction) = time.split_once('.').expect("seconds.millis");
        let secs: u64 = secs.parse().expect("epoch seconds");
        let timestamp = event["timestamp"].as_str().expect("timestamp");
        let fraction = fraction.trim_end_matches('0');
        let expected = format!(
            ":{:02}:{:02}{}{fraction:0<3}Z",
            secs / 60 % 60,
            secs % 60,
            if fraction.is_empty() { "" } else { "." }
        )
        .replace(".Z", "Z")
        .replace("000Z", "Z");
        assert!(timestamp.ends_with(&expected), "{timestamp} vs {time}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec_handler_for_python_sends_10000_events_that_arrive_once_with_every_field() {
    let (port, admin) = (free_port(), free_port());
    let relay = start(
        port,
        admin,
        "",
        "{ type: memory, max_events: 20000 }",
        false,
    );
    let (ids, seen) = summary(
        python_hec_handler(port, 10_000, None),
        "splunk_hec_handler_send.py",
    );
    assert_eq!(ids.len(), 10_000);
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    let out = wait_for(&relay, &ids, python_id, Duration::from_secs(60)).await;
    assert_once(&out, &ids, &relay);
    for (id, events) in out.iter() {
        let event = &events[0];
        let attributes = &event["attributes"];
        let seq = attributes["seq"].as_u64().expect("seq");
        assert_eq!(attributes["id"], id.as_str());
        assert_eq!(attributes["log_level"], "WARNING");
        assert_eq!(attributes["user"], format!("u{seq}@acme.example"));
        assert_eq!(
            attributes["detail"],
            serde_json::json!({"ok": true, "ratio": seq as f64 / 4.0, "tags": ["a", "b"]})
        );
        // The handler's `fields` are Splunk indexed fields: kept as attributes.
        assert_eq!(attributes["tenant"], "t1");
        assert_eq!(attributes["seq_field"], seq.to_string());
        assert_eq!(event["source"], "py-app");
        assert_eq!(event["resource"]["host.name"], "py-host");
        assert_eq!(event["resource"]["com.splunk.sourcetype"], "py:json");
        assert_eq!(event["resource"]["com.splunk.index"], "main");
        assert!(event["resource"]["com.splunk.time"].is_f64(), "{event}");
    }
}

/// Waits until the receiver has refused events for a full queue (the admin API's count).
async fn wait_backpressure(admin: u16, relay: &Siemrelay) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let refused = receiver_view(admin).await["events_refused"]["backpressure"]
            .as_u64()
            .unwrap_or(0);
        if refused > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no backpressure refusal; logs:\n{}",
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The receiver as the admin API shows it (`/api/v1/pipelines`).
async fn receiver_view(admin: u16) -> Value {
    let pipelines: Value = reqwest::get(format!("http://127.0.0.1:{admin}/api/v1/pipelines"))
        .await
        .expect("admin API")
        .json()
        .await
        .expect("admin JSON");
    pipelines["pipelines"][0]["receivers"][0].clone()
}

fn assert_busy_seen(seen: &Value, key: &str, what: &str) {
    assert!(
        seen["busy"].as_u64().unwrap_or(0) > 0,
        "{what} never saw code 9: {seen}"
    );
    for reply in seen[key].as_array().expect("busy replies") {
        assert_eq!(reply["status"], 503, "{what}: {reply}");
        assert_eq!(
            reply["body"], r#"{"text":"Server is busy","code":9}"#,
            "{what}: {reply}"
        );
        let retry_after = reply["retry_after"]
            .as_str()
            .or(reply["retryAfter"].as_str());
        assert!(
            retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)),
            "{what}: Retry-After missing: {reply}"
        );
    }
    assert_eq!(seen["errors"], serde_json::json!([]), "{what}: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_backpressure_both_libraries_get_code_9_and_a_resend_brings_every_event_in() {
    let (port, admin) = (free_port(), free_port());
    let relay = start(port, admin, "", "{ type: memory, max_events: 300 }", true);
    let markers = tempfile::tempdir().expect("tempdir");
    let (node_busy, py_busy) = (markers.path().join("node"), markers.path().join("py"));
    let node = node_splunk_logging(port, 1000, Some(&node_busy));
    let py = python_hec_handler(port, 600, Some(&py_busy));
    wait_backpressure(admin, &relay).await;
    // Each sender has been told "Server is busy" at least once before the output comes back.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(node_busy.exists() && py_busy.exists()) {
        assert!(
            Instant::now() < deadline,
            "a sender was never refused; logs:\n{}",
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // While the queue is full (and the senders keep being refused), health says so: code 18.
    let health = format!("http://127.0.0.1:{port}/services/collector/health");
    let response = reqwest::get(&health).await.expect("health");
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.text().await.expect("health body"),
        r#"{"text":"HEC is unhealthy, queues are full","code":18}"#
    );
    unblock(&relay);
    let (node_ids, node_seen) = summary(node, "send.js");
    let (py_ids, py_seen) = summary(py, "splunk_hec_handler_send.py");
    assert_busy_seen(&node_seen, "busyReplies", "splunk-logging");
    assert_busy_seen(&py_seen, "busy_replies", "splunk-hec-handler");
    let out = wait_for(&relay, &node_ids, node_id, Duration::from_secs(60)).await;
    assert_once(&out, &node_ids, &relay);
    let out = wait_for(&relay, &py_ids, python_id, Duration::from_secs(60)).await;
    assert_once(&out, &py_ids, &relay);
    // Room again: healthy (code 17) once the last refusal's Retry-After has passed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = reqwest::get(&health).await.expect("health");
        if response.status() == 200 {
            assert_eq!(
                response.text().await.expect("health body"),
                r#"{"text":"HEC is healthy","code":17}"#
            );
            break;
        }
        assert!(Instant::now() < deadline, "health stayed unhealthy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_to_aggregator_over_hec_with_acknowledgements_delivers_every_event_once() {
    // The aggregator: acknowledgements on, its output blocked at first (a queue of 2,000).
    let (hec, agg_admin) = (free_port(), free_port());
    let aggregator = start(
        hec,
        agg_admin,
        "    acknowledgements: true",
        "{ type: memory, max_events: 2000 }",
        true,
    );
    // The edge: webhook in, siemrelay's own splunk_hec exporter out (acks on).
    let webhook = free_port();
    let edge_config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  splunk_hec:
    endpoint: "http://127.0.0.1:{hec}"
    token: "${{env:HEC_TOKEN}}"
    index: security
    acknowledgements: true
    ack_poll_interval: 100ms
    retry: {{ initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 10m }}
    queue: {{ max_events: 20000 }}
service:
  pipelines:
    edge: {{ receivers: [webhook], processors: [], exporters: [splunk_hec] }}
"#
    );
    let mut edge = Siemrelay::start_with(&edge_config, &[], &[("HEC_TOKEN", TOKEN)]);
    edge.wait_ready(([127, 0, 0, 1], webhook).into());
    let ids = post_events(webhook, 100, 100).await;
    wait_backpressure(agg_admin, &aggregator).await;
    unblock(&aggregator);
    let by_id = |event: &Value| event["event_id"].as_str().map(str::to_string);
    let out = wait_for(&aggregator, &ids, by_id, Duration::from_secs(120)).await;
    assert_once(&out, &ids, &aggregator);
    for events in out.values() {
        let event = &events[0];
        let summary = event["summary"].as_str().expect("summary");
        let i: usize = summary
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("n");
        assert_eq!(event["event_type"], "policy_violation");
        assert_eq!(event["severity"], "high");
        assert_eq!(event["severity_number"], 17);
        assert_eq!(event["source"], "toktra");
        // Microseconds 0..100: six fraction digits, none for 0 (RFC 3339 as short as exact).
        let fraction = if i == 0 {
            String::new()
        } else {
            format!(".{i:06}")
        };
        assert_eq!(
            event["timestamp"],
            format!("2026-11-20T09:00:00{fraction}Z")
        );
        assert_eq!(
            event["attributes"]["user_email"],
            format!("u{i}@acme.example")
        );
        assert_eq!(event["resource"]["com.splunk.index"], "security");
        assert_eq!(
            event["resource"]["com.splunk.sourcetype"],
            "siemrelay:security"
        );
    }
    // The edge counted them delivered only through acks that read true.
    assert!(
        !edge.logs().contains("did not acknowledge"),
        "{}",
        edge.logs()
    );
}

/// One request to the receiver; returns status, body and `Retry-After`.
async fn hec_request(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, response.text().await.expect("body"), retry_after)
}

/// One request of the reply-code table: the documented reply it must get, path, headers, body.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, String);

fn documented() -> Value {
    let path = repo().join("tests/fixtures/splunk_hec/documented_replies.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

fn assert_documented(docs: &Value, name: &str, got: &(u16, String, Option<String>)) {
    let want = &docs["replies"][name];
    assert_eq!(
        (u64::from(got.0), got.1.as_str()),
        (
            want["status"].as_u64().expect("status"),
            want["body"].as_str().expect("body")
        ),
        "{name}: the reply differs from Splunk's documented one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_reply_codes_match_splunks_documented_replies() {
    let docs = documented();
    let (port, admin) = (free_port(), free_port());
    let relay = start(port, admin, "", "{ type: memory }", false);
    let auth = ("authorization", format!("Splunk {TOKEN}"));
    let auth = (auth.0, auth.1.as_str());
    let ok = r#"{"event":"hello","sourcetype":"manual"}"#;
    let query_token = format!("/services/collector/event?token={TOKEN}");
    let cases: Vec<Case> = vec![
        (
            "success",
            "/services/collector/event",
            vec![auth],
            ok.into(),
        ),
        ("success", "/services/collector", vec![auth], ok.into()),
        (
            "success",
            "/services/collector/event/1.0",
            vec![auth],
            ok.into(),
        ),
        (
            "success",
            "/services/collector/raw",
            vec![auth],
            "line one\nline two\n".into(),
        ),
        (
            "token_required",
            "/services/collector/event",
            vec![],
            ok.into(),
        ),
        (
            "invalid_authorization",
            "/services/collector/event",
            vec![("authorization", TOKEN)],
            ok.into(),
        ),
        (
            "invalid_token",
            "/services/collector/event",
            vec![(
                "authorization",
                "Splunk 00000000-0000-0000-0000-000000000000",
            )],
            ok.into(),
        ),
        (
            "no_data",
            "/services/collector/event",
            vec![auth],
            String::new(),
        ),
        (
            "invalid_data_format",
            "/services/collector/event",
            vec![auth],
            format!("{ok}{{\"event\":"),
        ),
        (
            "incorrect_index",
            "/services/collector/event",
            vec![auth],
            r#"{"event":"x","index":"other"}"#.into(),
        ),
        (
            "event_required",
            "/services/collector/event",
            vec![auth],
            r#"{"time":1718000000}"#.into(),
        ),
        (
            "event_blank",
            "/services/collector/event",
            vec![auth],
            r#"{"event":" "}"#.into(),
        ),
        (
            "indexed_fields",
            "/services/collector/event",
            vec![auth],
            r#"{"event":"x","fields":{"a":{"b":"c"}}}"#.into(),
        ),
        ("query_token_disabled", &query_token, vec![], ok.into()),
        (
            "ack_disabled",
            "/services/collector/ack",
            vec![auth],
            r#"{"acks":[0]}"#.into(),
        ),
    ];
    for (name, path, headers, body) in &cases {
        let got = hec_request(port, path, headers, body).await;
        assert_documented(&docs, name, &got);
    }
    // Basic auth with the token as the password.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("x:{TOKEN}")
        )
    );
    let got = hec_request(
        port,
        "/services/collector",
        &[("authorization", &basic)],
        ok,
    )
    .await;
    assert_documented(&docs, "success", &got);
    let health = reqwest::get(format!("http://127.0.0.1:{port}/services/collector/health"))
        .await
        .expect("health");
    let got = (
        health.status().as_u16(),
        health.text().await.expect("body"),
        None,
    );
    assert_documented(&docs, "healthy", &got);
    // The invalid-data-format case queued the event before the bad envelope (Splunk indexes
    // objects 0..N-1): 4 events from /event and 2 raw lines and 1 from basic auth.
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_ndjson_files(&relay.dir().join("out"), "events").len() < 7
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = read_ndjson_files(&relay.dir().join("out"), "events");
    assert_eq!(out.len(), 7, "{out:?}");
    // The status page's data: received and refused by reason.
    let receiver = receiver_view(admin).await;
    assert_eq!(receiver["type"], "splunk_hec");
    assert_eq!(receiver["events_received"], 7);
    let refused = &receiver["events_refused"];
    assert_eq!(refused["auth"], 4, "{receiver}");
    assert_eq!(refused["malformed"], 5, "{receiver}");
    assert_eq!(refused["index"], 1, "{receiver}");
    assert_eq!(refused["channel"], 1, "{receiver}");
    let metrics = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains(
            r#"siemrelay_receiver_events_refused_total{receiver="splunk_hec",reason="auth"} 4"#
        ),
        "{metrics}"
    );
    // No log line carries the token.
    assert!(!relay.logs().contains(TOKEN), "a log line shows the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgement_channels_ids_and_caps_answer_like_splunk() {
    let docs = documented();
    let (port, admin) = (free_port(), free_port());
    let relay = start(
        port,
        admin,
        "    acknowledgements: true\n    allow_query_token: true\n    max_pending_acks_per_channel: 2",
        "{ type: memory }",
        false,
    );
    let auth = format!("Splunk {TOKEN}");
    let channel = "FE0ECFAD-13D5-401B-847D-77833BD77131";
    let ok = r#"{"event":"Hello World"}"#;
    let with_channel = [
        ("authorization", auth.as_str()),
        ("x-splunk-request-channel", channel),
    ];
    let got = hec_request(
        port,
        "/services/collector/event",
        &[("authorization", &auth)],
        ok,
    )
    .await;
    assert_documented(&docs, "channel_missing", &got);
    let got = hec_request(
        port,
        "/services/collector/raw",
        &[("authorization", &auth)],
        "x\n",
    )
    .await;
    assert_documented(&docs, "channel_missing", &got);
    let bad = [
        ("authorization", auth.as_str()),
        ("x-splunk-request-channel", "not-a-guid"),
    ];
    let got = hec_request(port, "/services/collector/event", &bad, ok).await;
    assert_documented(&docs, "invalid_channel", &got);
    // Ids count from 0 per channel; the channel may come in the query string too.
    let got = hec_request(port, "/services/collector/event", &with_channel, ok).await;
    assert_documented(&docs, "success_with_ack", &got);
    let path = format!("/services/collector/raw?channel={channel}&token={TOKEN}");
    let got = hec_request(port, &path, &[], "a line\n").await;
    assert_eq!(got.1, r#"{"text":"Success","code":0,"ackId":1}"#);
    // Two ids unread: the channel is at max_pending_acks_per_channel (2): busy, nothing queued.
    let got = hec_request(port, "/services/collector/event", &with_channel, ok).await;
    assert_documented(&docs, "server_busy", &got);
    assert_eq!(got.2.as_deref(), Some("1"), "Retry-After");
    // Another channel is not held up.
    let other = [
        ("authorization", auth.as_str()),
        (
            "x-splunk-request-channel",
            "0d1f6c1e-9c4b-4f0e-8a57-3f1b2d6c7e80",
        ),
    ];
    let got = hec_request(port, "/services/collector/event", &other, ok).await;
    assert_eq!(got.1, r#"{"text":"Success","code":0,"ackId":0}"#);
    // Ack 0 read true (and forgotten), 1 true, 7 never issued: false.
    let got = hec_request(
        port,
        "/services/collector/ack",
        &with_channel,
        r#"{"acks":[0,7]}"#,
    )
    .await;
    assert_eq!(got.1, r#"{"acks":{"0":true,"7":false}}"#);
    let got = hec_request(
        port,
        "/services/collector/ack",
        &with_channel,
        r#"{"acks":[0,1]}"#,
    )
    .await;
    assert_eq!(got.1, r#"{"acks":{"0":false,"1":true}}"#);
    let got = hec_request(port, "/services/collector/ack", &other, r#"{"acks":[0,1]}"#).await;
    assert_documented(&docs, "ack_status", &got);
    // Polled: room again.
    let got = hec_request(port, "/services/collector/event", &with_channel, ok).await;
    assert_eq!(got.1, r#"{"text":"Success","code":0,"ackId":2}"#);
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_ndjson_files(&relay.dir().join("out"), "events").len() < 4
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        read_ndjson_files(&relay.dir().join("out"), "events").len(),
        4
    );
    let refused = receiver_view(admin).await["events_refused"].clone();
    assert_eq!(refused["ack_capacity"], 1, "{refused}");
    assert_eq!(refused["channel"], 3, "{refused}");
}
