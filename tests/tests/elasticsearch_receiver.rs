//! Issue 23, `elasticsearch` receiver, through the real binary:
//! - Elastic's official Python client (`elasticsearch`: `helpers.bulk` with basic auth,
//!   `helpers.streaming_bulk` with an API key) and `opensearch-py` (`helpers.bulk`) each send
//!   10,000 documents (half `index`, half `create`; half with a UUID `_id`, half with a text
//!   one): each arrives once at a `file` exporter with every field.
//! - Under backpressure (the file exporter's output blocked, its queue full) the bulk answer has
//!   `errors: true` and item 429s; `streaming_bulk` retries just those items and every document
//!   gets in once the output is back.
//! - Answers compared with the documented examples of Elastic's reference (Bulk API:
//!   <https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-bulk.html>, `GET /`:
//!   <https://www.elastic.co/guide/en/elasticsearch/reference/current/rest-api-root.html>), kept
//!   in `tests/fixtures/elasticsearch/`.

use serde_json::{Value, json};
use siemrelay_e2e::intake::{
    admin_metric, client_report, json_fixture, receiver_status_row, unblock_out,
    wait_for_backpressure, wait_run_output,
};
use siemrelay_e2e::{Siemrelay, free_port, python, repo};
use std::collections::HashMap;
use std::net::SocketAddr;

const PASSWORD: &str = "es-receiver-pass-3b7d";
/// An `encoded` API key value (base64 of `id:api_key`).
const API_KEY: &str = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";

fn config(port: u16, admin: u16, queue: &str, extra: &str) -> String {
    format!(
        r#"
receivers:
  elasticsearch/nt:
    endpoint: "127.0.0.1:{port}"
    auth:
      basic: [{{ username: neuraltrust, password: "${{env:ES_PASSWORD}}" }}]
      api_keys: ["${{env:ES_API_KEY}}"]
{extra}
exporters:
  file: {{ path: "./out/events.ndjson", queue: {queue}, retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 1h }} }}
service:
  shutdown_timeout: 10s
  admin: {{ endpoint: "127.0.0.1:{admin}" }}
  pipelines:
    logs: {{ receivers: [elasticsearch/nt], processors: [], exporters: [file] }}
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
        &[("ES_PASSWORD", PASSWORD), ("ES_API_KEY", API_KEY)],
    );
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin)));
    (relay, port, admin)
}

fn client(port: u16, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(python());
    command
        .arg(repo().join("tests/python/es_bulk_client.py"))
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(args);
    command
}

/// Every document of `run` once, with every field, its `_id` as the event id (a UUID as is, a
/// text id as the receiver's UUIDv5 of it).
fn assert_each_once_with_every_field(events: &[Value], run: &str, count: usize) {
    let namespace = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        b"urn:siemrelay:receiver:elasticsearch/nt",
    );
    let mut by_seq: HashMap<u64, &Value> = HashMap::new();
    for event in events {
        let seq = event["attributes"]["seq"].as_u64().expect("seq kept");
        assert!(
            by_seq.insert(seq, event).is_none(),
            "{run}: seq {seq} arrived twice"
        );
    }
    assert_eq!(by_seq.len(), count, "{run}");
    for seq in 0..count as u64 {
        let event = by_seq
            .get(&seq)
            .unwrap_or_else(|| panic!("{run}: seq {seq} missing"));
        let (id, event_id) = if seq % 2 == 0 {
            let id = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_URL,
                format!("{run}/{seq}").as_bytes(),
            );
            (id.to_string(), id)
        } else {
            let text = format!("nt-{run}-{seq}");
            (
                text.clone(),
                uuid::Uuid::new_v5(&namespace, text.as_bytes()),
            )
        };
        assert_eq!(event["event_id"], json!(event_id.to_string()), "{event}");
        let attributes = &event["attributes"];
        assert_eq!(attributes["_id"], json!(id));
        assert_eq!(attributes["_index"], "logs-neuraltrust");
        assert_eq!(
            attributes["_op_type"],
            if seq % 4 < 2 { "create" } else { "index" }
        );
        assert_eq!(
            event["summary"],
            json!(format!(
                "event {seq}: action by José Müller — \"quoted\" and tab\there"
            ))
        );
        assert_eq!(event["timestamp"], "2026-11-20T09:00:00.123Z");
        assert_eq!(event["event_type"], "login");
        assert_eq!(
            event["severity"],
            ["info", "warning", "error"][seq as usize % 3]
        );
        assert_eq!(attributes["category"], "Authentication");
        assert_eq!(
            attributes["actor"],
            json!({"email": "jose.mueller@corp.example", "roles": ["admin", "auditor"]})
        );
        assert_eq!(
            attributes["details"],
            json!({"mfa": seq % 2 == 0, "score": 0.5, "ticket": null})
        );
        assert!(attributes.get("mapping_error").is_none(), "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_send_10000_documents_each_arriving_once_with_every_field() {
    let (relay, port, admin) = start("{ type: memory, max_events: 40000 }", "", false);
    let runs: [(&str, Vec<&str>); 3] = [
        (
            "es-bulk",
            vec![
                "--client",
                "elasticsearch",
                "--helper",
                "bulk",
                "--user",
                "neuraltrust",
                "--password",
                PASSWORD,
            ],
        ),
        (
            "es-streaming",
            vec![
                "--client",
                "elasticsearch",
                "--helper",
                "streaming_bulk",
                "--api-key",
                API_KEY,
            ],
        ),
        (
            "os-bulk",
            vec![
                "--client",
                "opensearch",
                "--helper",
                "bulk",
                "--user",
                "neuraltrust",
                "--password",
                PASSWORD,
            ],
        ),
    ];
    for (run, args) in &runs {
        let output = client(port, args)
            .args(["--count", "10000", "--chunk", "500", "--run", run])
            .output()
            .expect("run es_bulk_client.py");
        let answer = client_report("es_bulk_client.py", &output);
        assert!(
            output.status.success(),
            "{run}: {answer}\nlogs:\n{}",
            relay.logs()
        );
        assert_eq!(answer["ok"], 10_000, "{run}");
        assert_eq!(answer["info"]["tagline"], "You Know, for Search");
        let events = wait_run_output(&relay, run, 10_000);
        assert_each_once_with_every_field(&events, run, 10_000);
    }
    let received = admin_metric(
        admin,
        "siemrelay_receiver_events_received_total",
        &[("receiver", "elasticsearch/nt")],
    )
    .await;
    assert_eq!(received, 30_000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_item_429s_and_streaming_bulk_retries_bring_every_document_in() {
    let (relay, port, admin) = start("{ type: memory, max_events: 300 }", "", true);
    let sender = client(
        port,
        &[
            "--client",
            "elasticsearch",
            "--helper",
            "streaming_bulk",
            "--api-key",
            API_KEY,
            "--count",
            "2000",
            "--chunk",
            "100",
            "--run",
            "busy",
            "--retries",
            "1000",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("run es_bulk_client.py");
    wait_for_backpressure(&relay, admin, "elasticsearch/nt").await;
    unblock_out(&relay);
    let output = tokio::task::spawn_blocking(move || sender.wait_with_output())
        .await
        .expect("join")
        .expect("client output");
    let answer = client_report("es_bulk_client.py", &output);
    assert!(output.status.success(), "{answer}\nlogs:\n{}", relay.logs());
    assert_eq!(answer["ok"], 2000);
    let events = wait_run_output(&relay, "busy", 2000);
    assert_each_once_with_every_field(&events, "busy", 2000);
    // The status page shows the receiver like the others: events in, refused by reason.
    let row = receiver_status_row(admin).await;
    assert_eq!(row["id"], "elasticsearch/nt");
    assert!(
        row["events_received"].as_u64().is_some_and(|n| n >= 2000),
        "{row}"
    );
    assert!(
        row["events_refused"]["backpressure"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{row}"
    );
}

/// Every key of the documented example is in `got`, with a value of the same JSON type
/// (recursively; arrays by their first element).
fn has_shape(got: &Value, documented: &Value) -> bool {
    match (got, documented) {
        (Value::Object(a), Value::Object(b)) => b
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|g| has_shape(g, v))),
        (Value::Array(a), Value::Array(b)) => match (a.first(), b.first()) {
            (Some(g), Some(d)) => has_shape(g, d),
            (_, None) => true,
            (None, Some(_)) => false,
        },
        (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_)) => true,
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

async fn send(
    method: reqwest::Method,
    port: u16,
    path: &str,
    auth: bool,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/x-ndjson")
        .body(body.to_string());
    if auth {
        request = request.header("authorization", format!("ApiKey {API_KEY}"));
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_the_documented_examples() {
    let (relay, port, _admin) = start(
        "{ type: memory, max_events: 3 }",
        "    max_body_size: 64KiB",
        true,
    );
    let product = |headers: &reqwest::header::HeaderMap| {
        headers
            .get("x-elastic-product")
            .and_then(|v| v.to_str().ok())
            == Some("Elasticsearch")
    };

    let (status, headers, root) = send(reqwest::Method::GET, port, "/", true, "").await;
    assert_eq!(status, 200);
    assert!(product(&headers));
    assert!(
        has_shape(&root, &json_fixture("elasticsearch", "root.json")),
        "{root}"
    );
    assert_eq!(root["version"]["number"], "8.17.0");
    let (status, headers, _) = send(reqwest::Method::HEAD, port, "/", true, "").await;
    assert!(status == 200 && product(&headers));

    let (status, headers, body) = send(reqwest::Method::POST, port, "/_bulk", false, "").await;
    assert_eq!(status, 401);
    assert!(product(&headers));
    assert!(
        has_shape(&body, &json_fixture("elasticsearch", "security_401.json")),
        "{body}"
    );
    assert!(
        headers
            .get_all("www-authenticate")
            .iter()
            .any(|v| v == "ApiKey")
    );

    let bulk = concat!(
        "{\"index\":{\"_index\":\"test\",\"_id\":\"1\"}}\n{\"field1\":\"value1\",\"run\":\"r\"}\n",
        "{\"delete\":{\"_index\":\"test\",\"_id\":\"2\"}}\n",
        "{\"create\":{\"_index\":\"test\",\"_id\":\"3\"}}\n{\"field1\":\"value3\",\"run\":\"r\"}\n",
        "{\"update\":{\"_id\":\"1\",\"_index\":\"test\"}}\n{\"doc\":{\"field2\":\"value2\"}}\n",
    );
    let (status, headers, body) = send(
        reqwest::Method::POST,
        port,
        "/_bulk?pipeline=p1",
        true,
        bulk,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(product(&headers));
    let items = body["items"].as_array().expect("items");
    let actions: Vec<&str> = items
        .iter()
        .filter_map(|i| i.as_object()?.keys().next().map(String::as_str))
        .collect();
    assert_eq!(actions, ["index", "delete", "create", "update"]);
    assert_eq!(body["errors"], true);
    let documented = json_fixture("elasticsearch", "bulk_response.json");
    assert!(
        has_shape(&items[0], &documented["items"][0]),
        "{}",
        items[0]
    );
    assert!(
        has_shape(&items[2], &documented["items"][1]),
        "{}",
        items[2]
    );
    assert_eq!(items[0]["index"]["status"], 201);
    let errors = json_fixture("elasticsearch", "bulk_errors.json");
    for (item, action) in [(&items[1], "delete"), (&items[3], "update")] {
        assert_eq!(item[action]["status"], 400, "{item}");
        let error = &item[action]["error"];
        assert!(
            has_shape(
                &json!({"_index": item[action]["_index"], "_id": item[action]["_id"], "status": 400, "error": {"type": error["type"], "reason": error["reason"]}}),
                &json!({"_index": "", "_id": "", "status": 0, "error": {"type": errors["items"][0]["update"]["error"]["type"], "reason": ""}})
            ),
            "{item}"
        );
    }

    // The queue holds 3 events (2 queued above): a bulk of 2 more gets item 429s.
    let (status, _, body) = send(
        reqwest::Method::POST,
        port,
        "/logs/_bulk",
        true,
        "{\"create\":{}}\n{\"run\":\"x\"}\n{\"index\":{}}\n{\"run\":\"x\"}\n",
    )
    .await;
    assert_eq!((status, &body["errors"]), (200, &json!(true)), "{body}");
    for item in body["items"].as_array().expect("items") {
        let inner = item
            .as_object()
            .and_then(|o| o.values().next())
            .expect("item");
        assert_eq!(inner["status"], 429, "{item}");
        assert_eq!(inner["error"]["type"], "es_rejected_execution_exception");
        assert_eq!(inner["_index"], "logs");
    }

    let (status, _, body) = send(
        reqwest::Method::POST,
        port,
        "/_bulk",
        true,
        &"x".repeat(70 * 1024),
    )
    .await;
    assert_eq!((status, body), (413, Value::String(String::new())));
    let (status, _, body) = send(
        reqwest::Method::POST,
        port,
        "/_bulk",
        true,
        "{\"index\":{\"_index\":\"a\"}}\n{}",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "illegal_argument_exception");
    assert_eq!(body["status"], 400);

    unblock_out(&relay);
    let events = wait_run_output(&relay, "r", 2);
    assert!(
        events
            .iter()
            .all(|e| e["attributes"]["_pipeline"] == "p1" && e["attributes"]["_index"] == "test"),
        "{events:?}"
    );
}
