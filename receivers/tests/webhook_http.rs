//! The webhook receiver over real HTTP: body shapes, every rejection (and a good request right
//! after it), back-pressure, and graceful shutdown.

mod webhook_support;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use siemrelay_core::Refusal;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webhook_support::{BlockingSink, CollectingSink, RefusingSink, send, start};

const PATH: &str = "/v1/events";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data).expect("writes to memory");
    encoder.finish().expect("finishes in memory")
}

/// Posts a small valid request and checks that it is accepted.
async fn assert_good_request_succeeds(client: &reqwest::Client, url: &str, token: Option<&str>) {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(r#"{"event_type":"ok"}"#);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let reply = send(request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, json!({"accepted": 1, "queued": 1}));
}

#[tokio::test]
async fn every_body_shape_is_accepted_with_its_count() {
    let sink = Arc::new(CollectingSink::default());
    let server = start(json!({}), sink.clone()).await;
    let client = reqwest::Client::new();
    let url = server.url(PATH);
    let ndjson = "{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}";
    let cases: [(&str, Vec<u8>, &str, usize); 7] = [
        ("application/json", br#"{"a":1}"#.to_vec(), "", 1),
        (
            "application/json; charset=utf-8",
            br#"[{"a":1},{"a":2}]"#.to_vec(),
            "",
            2,
        ),
        ("application/x-ndjson", ndjson.into(), "", 3),
        ("application/jsonl", ndjson.into(), "", 3),
        (
            "Application/X-JSONLines; charset=UTF-8",
            ndjson.into(),
            "",
            3,
        ),
        ("application/json", gzip(br#"[{"a":1},{"a":2}]"#), "gzip", 2),
        ("application/x-ndjson", gzip(ndjson.as_bytes()), "gzip", 3),
    ];
    let mut expected_total = 0;
    for (content_type, body, encoding, count) in cases {
        let mut request = client
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        if !encoding.is_empty() {
            request = request.header("content-encoding", encoding);
        }
        let reply = send(request).await;
        assert_eq!(reply.status, 200, "{content_type}: {}", reply.body);
        assert_eq!(reply.body, json!({"accepted": count, "queued": count}));
        expected_total += count;
    }
    assert_eq!(sink.batches().len(), 7, "one batch per request");
    assert_eq!(sink.event_count(), expected_total);
    let first = &sink.batches()[2];
    let observed: Vec<_> = first.iter().map(|e| e.observed_timestamp).collect();
    assert!(
        observed.windows(2).all(|w| w[0] == w[1]),
        "one observed time per request"
    );
    assert_eq!(first[2].attributes["a"], json!(3));
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn malformed_json_names_line_and_column_and_nothing_is_kept() {
    let sink = Arc::new(CollectingSink::default());
    let server = start(json!({}), sink.clone()).await;
    let client = reqwest::Client::new();
    let url = server.url(PATH);
    let reply = send(
        client
            .post(&url)
            .header("content-type", "application/json")
            .body("[{\"a\": 1},\n {\"b\": }]"),
    )
    .await;
    assert_eq!(reply.status, 400);
    let message = reply.body["error"].as_str().expect("error message");
    assert!(message.contains("line 2, column"), "{message}");

    let reply = send(
        client
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .body("{\"a\":1}\n{\"a\":2}\n{oops}\n"),
    )
    .await;
    assert_eq!(reply.status, 400);
    let message = reply.body["error"].as_str().expect("error message");
    assert!(message.contains("line 3"), "{message}");
    assert_eq!(sink.event_count(), 0, "a rejected request keeps nothing");
    assert_good_request_succeeds(&client, &url, None).await;
}

#[tokio::test]
async fn strict_mode_rejects_the_request_naming_event_and_field() {
    let sink = Arc::new(CollectingSink::default());
    let server = start(json!({"strict": true}), sink.clone()).await;
    let client = reqwest::Client::new();
    let reply = send(
        client
            .post(server.url(PATH))
            .header("content-type", "application/json")
            .body(r#"[{"severity":"high"},{"severity":"severe"}]"#),
    )
    .await;
    assert_eq!(reply.status, 400);
    let message = reply.body["error"].as_str().expect("error message");
    assert!(
        message.contains("event 1") && message.contains("severity"),
        "{message}"
    );
    assert_eq!(sink.event_count(), 0);
    assert_good_request_succeeds(&client, &server.url(PATH), None).await;
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let sink = Arc::new(CollectingSink::default());
    let server = start(json!({"max_body_size": "1KiB"}), sink.clone()).await;
    let client = reqwest::Client::new();
    let url = server.url(PATH);
    let big = format!("[{}]", vec![r#"{"a":"xxxxxxxxxx"}"#; 100].join(","));
    let reply = send(
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(big.clone()),
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(reply.body["error"].as_str().unwrap_or("").contains("1024"));

    // A gzip bomb: small on the wire, large once decoded.
    let bomb = gzip(format!("[{}]", " ".repeat(1_000_000)).as_bytes());
    assert!(bomb.len() < 1024);
    let reply = send(
        client
            .post(&url)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(bomb),
    )
    .await;
    assert_eq!(reply.status, 413);
    assert!(
        reply.body["error"]
            .as_str()
            .unwrap_or("")
            .contains("gzip-decoded")
    );
    assert_good_request_succeeds(&client, &url, None).await;

    // Chunked, with no Content-Length: the limit is enforced while reading.
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connects");
    let chunk = "x".repeat(600);
    let request = format!(
        "POST {PATH} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.expect("reads");
        assert!(n > 0, "connection closed before the answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(sink.event_count(), 1, "only the good request got through");
    assert_good_request_succeeds(&client, &url, None).await;
}

#[tokio::test]
async fn wrong_or_missing_content_type_gets_415_naming_accepted_types() {
    let sink = Arc::new(CollectingSink::default());
    let server = start(json!({}), sink.clone()).await;
    let client = reqwest::Client::new();
    let url = server.url(PATH);
    for content_type in [Some("text/plain"), Some("application/xml"), None] {
        let mut request = client.post(&url).body(r#"{"a":1}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let reply = send(request).await;
        assert_eq!(reply.status, 415, "{content_type:?}");
        let message = reply.body["error"].as_str().unwrap_or("");
        assert!(
            message.contains("application/json") && message.contains("application/x-ndjson"),
            "{message}"
        );
        assert_good_request_succeeds(&client, &url, None).await;
    }
    let reply = send(
        client
            .post(&url)
            .header("content-type", "application/json")
            .header("content-encoding", "br")
            .body(r#"{"a":1}"#),
    )
    .await;
    assert_eq!(reply.status, 415);
    assert_eq!(sink.event_count(), 3);
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let sink = Arc::new(CollectingSink::default());
    let server = start(
        json!({"auth": {"bearer_token": "s3cret-token"}}),
        sink.clone(),
    )
    .await;
    let client = reqwest::Client::new();
    let url = server.url(PATH);
    for token in [None, Some("wrong"), Some("s3cret-token-but-longer")] {
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(r#"{"a":1}"#);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let reply = send(request).await;
        assert_eq!(reply.status, 401, "{token:?}");
        assert_eq!(
            reply
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        let message = reply.body["error"].as_str().unwrap_or("");
        assert!(!message.contains("s3cret"), "{message}");
        assert_good_request_succeeds(&client, &url, Some("s3cret-token")).await;
    }
    assert_eq!(sink.event_count(), 3);
}

#[tokio::test]
async fn other_paths_and_methods_get_json_404_and_405() {
    let server = start(
        json!({"path": "/hooks/truthlocks"}),
        Arc::new(CollectingSink::default()),
    )
    .await;
    let client = reqwest::Client::new();
    let reply = send(client.post(server.url("/v1/events")).body("{}")).await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.body["error"]
            .as_str()
            .unwrap_or("")
            .contains("/hooks/truthlocks")
    );
    let reply = send(client.get(server.url("/hooks/truthlocks"))).await;
    assert_eq!(reply.status, 405);
    assert_eq!(
        reply.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    assert_good_request_succeeds(&client, &server.url("/hooks/truthlocks"), None).await;
}

#[tokio::test]
async fn pipeline_refusals_answer_503() {
    let client = reqwest::Client::new();
    let full = Refusal::Full {
        retry_after: Duration::from_millis(2500),
    };
    let cases = [
        (full, Some("3")),
        (Refusal::ShuttingDown, None),
        (Refusal::Failed("disk full".into()), None),
    ];
    for (refusal, retry_after) in cases {
        let server = start(json!({}), Arc::new(RefusingSink(refusal.clone()))).await;
        let reply = send(
            client
                .post(server.url(PATH))
                .header("content-type", "application/json")
                .body(r#"[{"a":1},{"a":2}]"#),
        )
        .await;
        assert_eq!(reply.status, 503, "{refusal:?}");
        assert_eq!(
            reply
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            retry_after
        );
        assert!(reply.body["error"].as_str().is_some());
        server.stop().await.expect("clean stop");
    }
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops_listening() {
    let sink = Arc::new(BlockingSink::default());
    let server = start(json!({}), sink.clone()).await;
    let url = server.url(PATH);
    let in_flight = tokio::spawn(async move {
        send(
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(r#"{"a":1}"#),
        )
        .await
    });
    sink.entered.notified().await;
    server.shutdown.cancel();
    // The answer waits for the pipeline; release it only after shutdown began.
    sink.release.add_permits(1);
    let reply = in_flight.await.expect("request task");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, json!({"accepted": 1, "queued": 1}));
    let addr = server.addr;
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("run returns after shutdown")
        .expect("run task")
        .expect("run ends cleanly");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn address_in_use_fails_at_build_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = taken.local_addr().expect("address");
    let config = serde_json::from_value(json!({"endpoint": addr.to_string()})).expect("parses");
    let err = match siemrelay_receivers::webhook::build("webhook/busy", config).await {
        Ok(_) => panic!("a second listener on a taken address must fail"),
        Err(err) => format!("{err:#}"),
    };
    assert!(
        err.contains(&addr.to_string()) && err.contains("webhook/busy"),
        "{err}"
    );
}
