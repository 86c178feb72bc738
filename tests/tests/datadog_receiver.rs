//! Issue 23, `datadog` receiver, through the real binary:
//! - Datadog's official Python client (`datadog-api-client`, `LogsApi.submit_log`, pointed at the
//!   receiver with its documented `{protocol}://{name}` server) sends 10,000 logs (gzip, deflate
//!   and plain bodies): each arrives once at a `file` exporter with every field.
//! - Under backpressure (the file exporter's output blocked, its queue full) the client's own
//!   retry sees Datadog's busy answer (503 + `Retry-After`) and every log gets in once the
//!   output is back.
//! - Status codes and bodies match the documented examples of Datadog's "Send logs" API
//!   (<https://docs.datadoghq.com/api/latest/logs/send-logs/>), kept in
//!   `tests/fixtures/datadog/`.

use serde_json::{Value, json};
use siemrelay_e2e::intake::{
    admin_metric, client_report, json_fixture, receiver_status_row, unblock_out,
    wait_for_backpressure, wait_run_output,
};
use siemrelay_e2e::{Siemrelay, free_port, python, read_ndjson_files, repo};
use std::collections::HashMap;
use std::net::SocketAddr;

const KEY: &str = "dd-receiver-key-5e2a9c";

fn config(port: u16, admin: u16, queue: &str, extra: &str) -> String {
    format!(
        r#"
receivers:
  datadog/nt:
    endpoint: "127.0.0.1:{port}"
    api_keys: ["${{env:DD_RECEIVER_KEY}}"]
{extra}
exporters:
  file: {{ path: "./out/events.ndjson", queue: {queue}, retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 1h }} }}
service:
  shutdown_timeout: 10s
  admin: {{ endpoint: "127.0.0.1:{admin}" }}
  pipelines:
    logs: {{ receivers: [datadog/nt], processors: [], exporters: [file] }}
"#
    )
}

fn start(queue: &str, extra: &str, blocked: bool) -> (Siemrelay, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    if blocked {
        std::fs::write(dir.path().join("out"), b"blocked").expect("block the output");
    }
    let mut relay = Siemrelay::start_in(
        dir,
        &config(port, admin, queue, extra),
        &[],
        &[("DD_RECEIVER_KEY", KEY)],
    );
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin)));
    (relay, port, admin)
}

fn client(port: u16, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(python());
    command
        .arg(repo().join("tests/python/datadog_logs_client.py"))
        .args(["--address", &format!("127.0.0.1:{port}"), "--api-key", KEY])
        .args(args);
    command
}

fn assert_each_once(events: &[Value], count: usize) -> HashMap<u64, &Value> {
    let mut by_seq = HashMap::new();
    for event in events {
        let seq = event["attributes"]["seq"].as_u64().expect("seq kept");
        assert!(
            by_seq.insert(seq, event).is_none(),
            "seq {seq} arrived twice"
        );
    }
    assert_eq!(by_seq.len(), count);
    assert!((0..count as u64).all(|seq| by_seq.contains_key(&seq)));
    by_seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_api_client_sends_10000_logs_each_arriving_once_with_every_field() {
    let (relay, port, admin) = start("{ type: memory, max_events: 20000 }", "", false);
    let output = client(
        port,
        &[
            "--count",
            "10000",
            "--batch",
            "1000",
            "--run",
            "full",
            "--encoding",
            "mixed",
        ],
    )
    .output()
    .expect("run datadog_logs_client.py");
    let answer = client_report("datadog_logs_client.py", &output);
    assert!(output.status.success(), "{answer}\nlogs:\n{}", relay.logs());
    assert_eq!(answer["sent"], 10_000);
    let events = wait_run_output(&relay, "full", 10_000);
    let by_seq = assert_each_once(&events, 10_000);
    for (seq, event) in by_seq {
        let status = ["info", "warning", "error", "critical"][seq as usize % 4];
        assert_eq!(
            event["summary"],
            json!(format!(
                "event {seq}: action by José Müller — \"quoted\" and tab\there"
            ))
        );
        assert_eq!(event["source"], "neuraltrust");
        assert_eq!(event["severity"], status);
        assert_eq!(
            event["resource"],
            json!({"host.name": "gw-1", "service.name": "audit"})
        );
        assert_eq!(event["attributes"]["ddtags"], "env:test,run:full");
        assert_eq!(event["attributes"]["category"], "Authentication");
        assert_eq!(
            event["attributes"]["details"],
            json!({"n": seq, "mfa": seq % 2 == 0, "score": 0.5, "roles": ["admin", "auditor"], "ticket": null})
        );
        assert!(
            event["attributes"].get("mapping_error").is_none(),
            "{event}"
        );
    }
    let received = admin_metric(
        admin,
        "siemrelay_receiver_events_received_total",
        &[("receiver", "datadog/nt")],
    )
    .await;
    assert_eq!(received, 10_000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_the_clients_retry_brings_every_log_in() {
    let (relay, port, admin) = start("{ type: memory, max_events: 300 }", "", true);
    let sender = client(
        port,
        &[
            "--count",
            "2000",
            "--batch",
            "100",
            "--run",
            "busy",
            "--retry",
            "--encoding",
            "gzip",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("run datadog_logs_client.py");
    // Wait until the receiver has answered "busy" (the queue holds 300 of the 2000).
    wait_for_backpressure(&relay, admin, "datadog/nt").await;
    unblock_out(&relay);
    let output = tokio::task::spawn_blocking(move || sender.wait_with_output())
        .await
        .expect("join")
        .expect("client output");
    let answer = client_report("datadog_logs_client.py", &output);
    assert!(output.status.success(), "{answer}\nlogs:\n{}", relay.logs());
    let retried: Vec<u64> = answer["retried_statuses"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        !retried.is_empty() && retried.iter().all(|s| *s == 503),
        "the client retried {retried:?}"
    );
    let events = wait_run_output(&relay, "busy", 2000);
    assert_each_once(&events, 2000);
    // The status page shows the receiver like the others: events in, refused by reason.
    let row = receiver_status_row(admin).await;
    assert_eq!(row["id"], "datadog/nt");
    assert_eq!(row["events_received"], 2000, "{row}");
    assert!(
        row["events_refused"]["backpressure"]
            .as_u64()
            .is_some_and(|n| n >= 100),
        "{row}"
    );
}

/// Posts `body` and returns (status, Retry-After, JSON body).
async fn post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Option<String>, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .body(body);
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
    let text = response.text().await.unwrap_or_default();
    (
        status,
        retry_after,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Same keys and value types as the documented example, recursively.
fn same_shape(got: &Value, documented: &Value) -> bool {
    match (got, documented) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && b.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|g| same_shape(g, v)))
        }
        (Value::Array(a), Value::Array(b)) => {
            b.first()
                .is_none_or(|first| a.iter().all(|g| same_shape(g, first)))
                && a.is_empty() == b.is_empty()
        }
        (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => true,
        (Value::Number(_), Value::Number(_)) => true,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_match_the_documented_send_logs_examples() {
    let (relay, port, _admin) = start(
        "{ type: memory, max_events: 300 }",
        "    max_body_size: 64KiB",
        true,
    );
    let json = ("content-type", "application/json");
    let key = ("dd-api-key", KEY);
    let v2_error = json_fixture("datadog", "v2_error.json");
    let v1_error = json_fixture("datadog", "v1_error.json");
    let check_v2 = |(status, _, body): &(u16, Option<String>, Value), want: u16, title: &str| {
        assert_eq!(*status, want, "{body}");
        assert!(
            same_shape(body, &v2_error),
            "{body} is not shaped like {v2_error}"
        );
        assert_eq!(body["errors"][0]["status"], json!(want.to_string()));
        assert_eq!(body["errors"][0]["title"], title);
        assert!(!body.to_string().contains(KEY));
    };

    let ok = post(
        port,
        "/api/v2/logs",
        &[json, key],
        br#"[{"message":"one","run":"r"}]"#.to_vec(),
    )
    .await;
    assert_eq!(
        (ok.0, &ok.2),
        (202, &json_fixture("datadog", "v2_202.json"))
    );
    let ok = post(
        port,
        "/v1/input",
        &[json, key],
        br#"{"message":"two","run":"r"}"#.to_vec(),
    )
    .await;
    assert_eq!(
        (ok.0, &ok.2),
        (200, &json_fixture("datadog", "v1_200.json"))
    );
    let ok = post(
        port,
        &format!("/v1/input/{KEY}?ddsource=nginx&ddtags=env:prod"),
        &[("content-type", "text/plain")],
        b"three\nfour\n".to_vec(),
    )
    .await;
    assert_eq!(
        (ok.0, &ok.2),
        (200, &json_fixture("datadog", "v1_200.json"))
    );

    check_v2(
        &post(port, "/api/v2/logs", &[json], b"[]".to_vec()).await,
        401,
        "Unauthorized",
    );
    check_v2(
        &post(
            port,
            "/api/v2/logs",
            &[json, ("dd-api-key", "wrong-key-123")],
            b"[]".to_vec(),
        )
        .await,
        403,
        "Forbidden",
    );
    check_v2(
        &post(
            port,
            "/api/v2/logs",
            &[json, key],
            b"[{\"message\":".to_vec(),
        )
        .await,
        400,
        "Bad Request",
    );
    check_v2(
        &post(port, "/api/v2/logs", &[json, key], vec![b' '; 70 * 1024]).await,
        413,
        "Payload Too Large",
    );
    let too_many: String = format!("[{}]", vec!["{}"; 1001].join(","));
    check_v2(
        &post(port, "/api/v2/logs", &[json, key], too_many.into_bytes()).await,
        413,
        "Payload Too Large",
    );

    let (status, _, body) = post(port, "/v1/input", &[json, key], b"{".to_vec()).await;
    assert_eq!(status, 400);
    assert!(same_shape(&body, &v1_error), "{body}");
    assert_eq!(body["code"], 400);
    let (status, _, body) = post(port, "/v1/input/not-a-key", &[json], b"{}".to_vec()).await;
    assert_eq!(
        (status, same_shape(&body, &v1_error)),
        (403, true),
        "{body}"
    );

    // The queue holds 300: 300 more logs do not fit, the answer is 503 with Retry-After.
    let logs: Vec<Value> = (0..300)
        .map(|i| json!({"message": i, "run": "fill"}))
        .collect();
    let first = post(
        port,
        "/api/v2/logs",
        &[json, key],
        serde_json::to_vec(&logs).unwrap(),
    )
    .await;
    let full = if first.0 == 202 {
        post(
            port,
            "/api/v2/logs",
            &[json, key],
            serde_json::to_vec(&logs).unwrap(),
        )
        .await
    } else {
        first
    };
    check_v2(&full, 503, "Service Unavailable");
    assert!(
        full.1
            .as_deref()
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)),
        "{full:?}"
    );

    let out = unblock_out(&relay);
    let events = wait_run_output(&relay, "r", 2);
    let three = read_ndjson_files(&out, "events")
        .into_iter()
        .find(|e| e["summary"] == "three")
        .expect("a text line became a log");
    assert_eq!(
        (
            three["source"].clone(),
            three["attributes"]["ddtags"].clone()
        ),
        (json!("nginx"), json!("env:prod"))
    );
    assert_eq!(events.len(), 2);
}
