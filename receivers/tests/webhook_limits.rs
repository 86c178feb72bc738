//! The webhook receiver's limits over real sockets (issue 20 §1, §4, §5): events per request,
//! the admission budget, concurrent requests, client addresses, slow clients and replays.

mod webhook_support;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use siemrelay_core::admission::MemoryBudget;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use webhook_support::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

fn ndjson(events: usize) -> String {
    (0..events)
        .map(|i| format!("{{\"event_type\":\"t\",\"n\":{i}}}\n"))
        .collect()
}

async fn post_ndjson(running: &Running, body: impl Into<reqwest::Body>) -> Reply {
    send(
        reqwest::Client::new()
            .post(running.url("/v1/events"))
            .header("content-type", "application/x-ndjson")
            .body(body),
    )
    .await
}

/// Reads from `stream` until the peer closes it (or `limit` passes); returns what was read and
/// whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&seen).into(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&seen).into(), false),
        }
    }
}

#[tokio::test]
async fn more_events_than_max_events_per_request_get_413_and_nothing_is_kept() {
    let sink = Arc::new(CollectingSink::default());
    let running = start(json!({"max_events_per_request": 5}), sink.clone()).await;
    let reply = post_ndjson(&running, ndjson(6)).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(
        reply.body["error"]
            .as_str()
            .unwrap()
            .contains("max_events_per_request (5)"),
        "{}",
        reply.body
    );
    assert_eq!(post_ndjson(&running, ndjson(5)).await.status, 200);
    assert_eq!(sink.event_count(), 5);

    // 10,230 bytes of gzip that decode to 10 MiB of `[{},{},…]` stop at the default limit.
    let running = start(json!({}), sink.clone()).await;
    let mut body = String::from("[{}");
    while body.len() < 10 * 1024 * 1024 - 4 {
        body.push_str(",{}");
    }
    body.push(']');
    let bomb = gzip(body.as_bytes());
    assert!(bomb.len() < 20_000, "{}", bomb.len());
    let reply = send(
        reqwest::Client::new()
            .post(running.url("/v1/events"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(bomb),
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(
        reply.body["error"]
            .as_str()
            .unwrap()
            .contains("max_events_per_request (10000)")
    );
    assert_eq!(sink.event_count(), 5, "nothing of the refused request kept");
}

#[tokio::test]
async fn a_request_that_does_not_fit_the_memory_budget_waits_then_gets_503() {
    let budget = MemoryBudget::new(8 * 1024 * 1024);
    let collected = Arc::new(CollectingSink::default());
    let sink = Arc::new(BudgetedSink {
        inner: collected.clone(),
        budget: budget.clone(),
    });
    let running = start(json!({}), sink).await;
    let body = ndjson(2_000);
    assert!(body.len() > 40_000);

    // Others hold almost all of it: the request waits (2 s), then 503 + Retry-After.
    let held = budget.try_reserve(8 * 1024 * 1024 - 20 * 1024).unwrap();
    let started = Instant::now();
    let reply = post_ndjson(&running, body.clone()).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(reply.headers["retry-after"], "1");
    assert!(
        reply.body["error"]
            .as_str()
            .unwrap()
            .contains("service.memory_limit")
    );

    // Memory given back while it waits: the request goes through.
    let client = reqwest::Client::new();
    let waiting = tokio::spawn({
        let (url, body) = (running.url("/v1/events"), body.clone());
        async move {
            send(
                client
                    .post(url)
                    .header("content-type", "application/x-ndjson")
                    .body(body),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(held);
    assert_eq!(waiting.await.unwrap().status, 200);
    assert_eq!(collected.event_count(), 2_000);
    assert_eq!(budget.used(), 0, "every reservation is given back");

    // A body larger than the whole budget can never fit: 413, not a retry loop.
    let big = format!("{{\"s\":\"{}\"}}", "x".repeat(9 * 1024 * 1024));
    let reply = post_ndjson(&running, big).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(
        reply.body["error"]
            .as_str()
            .unwrap()
            .contains("service.memory_limit")
    );
}

#[tokio::test]
async fn requests_over_max_concurrent_requests_get_503_at_once() {
    let blocking = Arc::new(BlockingSink::default());
    let running = start(
        json!({"limits": {"max_concurrent_requests": 1}}),
        blocking.clone(),
    )
    .await;
    let first = tokio::spawn({
        let url = running.url("/v1/events");
        async move {
            send(
                reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/json")
                    .body("{}"),
            )
            .await
        }
    });
    blocking.entered.notified().await;
    let reply = post_ndjson(&running, ndjson(1)).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.headers["retry-after"], "1");
    blocking.release.add_permits(1);
    assert_eq!(first.await.unwrap().status, 200);
}

#[tokio::test]
async fn clients_outside_allowed_cidrs_get_403_before_the_body_is_read() {
    let sink = Arc::new(CollectingSink::default());
    let running = start(
        json!({"allowed_cidrs": ["10.0.0.0/8", "fd00::/8"]}),
        sink.clone(),
    )
    .await;
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    // A 10 MB body is announced but never sent: the answer comes without it.
    stream
        .write_all(
            b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10000000\r\n\r\n",
        )
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("allowed_cidrs"), "{answer}");
    assert!(closed, "the connection is closed after the refusal");
    assert_eq!(sink.event_count(), 0);

    let open = start(json!({"allowed_cidrs": ["127.0.0.0/8"]}), sink.clone()).await;
    assert_eq!(post_ndjson(&open, ndjson(1)).await.status, 200);
}

#[tokio::test]
async fn trickled_headers_and_bodies_are_cut_off_while_others_are_served() {
    let sink = Arc::new(CollectingSink::default());
    let running = start(
        json!({"limits": {"header_read_timeout": "1s", "min_body_rate": 1000, "idle_timeout": "3s"}}),
        sink.clone(),
    )
    .await;
    let request = b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ncontent-length: 50\r\n\r\n";

    // Headers at 5 bytes/s: closed about header_read_timeout after the first byte.
    let mut slow_head = TcpStream::connect(running.addr).await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for byte in request {
            if slow_head.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), trickle).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(8),
        "the trickling head was not cut off ({elapsed:?})"
    );

    // A body at 5 bytes/s against 1000 bytes/s: refused after the grace period.
    let mut slow_body = TcpStream::connect(running.addr).await.unwrap();
    slow_body.write_all(request).await.unwrap();
    let mut answer = String::new();
    for _ in 0..50 {
        if slow_body.write_all(b"{").await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), slow_body.read(&mut buf)).await
        {
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("min_body_rate"), "{answer}");

    // Meanwhile a normal sender is served, and an idle keep-alive connection lives past the
    // header timeout but not past idle_timeout.
    let mut keep_alive = TcpStream::connect(running.addr).await.unwrap();
    let good = b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    for pause in [Duration::ZERO, Duration::from_millis(1500)] {
        tokio::time::sleep(pause).await;
        keep_alive.write_all(good).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), keep_alive.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    let idle_from = Instant::now();
    let (_, closed) = read_until_closed(&mut keep_alive, Duration::from_secs(15)).await;
    assert!(closed, "the idle connection was not closed");
    assert!(
        idle_from.elapsed() >= Duration::from_secs(2),
        "{:?}",
        idle_from.elapsed()
    );
    assert_eq!(sink.event_count(), 2);
}

#[tokio::test]
async fn a_replayed_signed_request_is_refused_with_401() {
    let sink = Arc::new(CollectingSink::default());
    let running = start(
        json!({"verify": {"scheme": "stripe", "secrets": ["whsec_test"]}}),
        sink.clone(),
    )
    .await;
    let body = r#"{"event_type":"payment","id":"evt_1"}"#;
    let t = chrono::Utc::now().timestamp().to_string();
    let signature = hmac_hex(b"whsec_test", &[t.as_bytes(), b".", body.as_bytes()]);
    let request = || {
        reqwest::Client::new()
            .post(running.url("/v1/events"))
            .header("content-type", "application/json")
            .header("stripe-signature", format!("t={t},v1={signature}"))
            .body(body)
    };
    assert_eq!(send(request()).await.status, 200);
    let replay = send(request()).await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert!(
        replay.body["error"].as_str().unwrap().contains("replay"),
        "{}",
        replay.body
    );
    assert_eq!(sink.event_count(), 1);
}

#[tokio::test]
async fn what_is_written_is_what_was_seen() {
    let sink = Arc::new(CollectingSink::default());
    let running = start(json!({}), sink.clone()).await;
    let body = r#"{"event_id":"evt_8a7f","event_type":"x","observed_timestamp":"2001-01-01T00:00:00Z","user":"ann","user":"bob","tags":{"env":"a","env":"b"}}"#;
    let before = chrono::Utc::now();
    assert_eq!(post_ndjson(&running, body).await.status, 200);
    assert_eq!(post_ndjson(&running, body).await.status, 200);
    let batches = sink.batches();
    let (first, retry) = (&batches[0][0], &batches[1][0]);
    // The sender's retry keeps its id: a UUIDv5 in the receiver's namespace.
    assert_eq!(first.event_id, retry.event_id);
    assert_eq!(first.event_id.get_version_num(), 5);
    assert_eq!(first.attributes["event_id"], "evt_8a7f");
    // observed_timestamp is the receive time; the sender's value is kept.
    assert!(first.observed_timestamp.0 >= before.timestamp_nanos_opt().unwrap());
    assert_eq!(
        first.attributes["observed_timestamp"],
        "2001-01-01T00:00:00Z"
    );
    // Repeated keys lose nothing.
    assert_eq!(first.attributes["user"], "ann");
    assert_eq!(first.attributes["_duplicate"]["user"], json!(["bob"]));
    assert_eq!(
        first.attributes["tags"],
        json!({"env": "a", "_duplicate": {"env": ["b"]}})
    );
    // An integer wider than 64 bits is refused, naming the field.
    let reply = post_ndjson(&running, r#"{"a":{"b":123456789012345678901234}}"#).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body["error"].as_str().unwrap().contains("a.b"),
        "{}",
        reply.body
    );
    // In strict mode a repeated key is refused.
    let strict = start(json!({"strict": true}), sink.clone()).await;
    let reply = post_ndjson(&strict, body).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}

/// A body refused before it is read (over `max_body_size`) still gets its answer: the client
/// finishes writing it and reads the 413, instead of a reset that destroys the answer. The
/// server keeps reading and discarding for a while after answering, as nginx's lingering close
/// does. Without that, a client whose body arrives in pieces sees "broken pipe" and no status.
#[tokio::test]
async fn a_body_refused_before_it_is_read_still_gets_its_413() {
    let sink = Arc::new(CollectingSink::default());
    let running = start(json!({"max_body_size": "64KiB"}), sink.clone()).await;
    let length = 2 * 1024 * 1024;
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    stream
        .write_all(
            format!("POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ncontent-length: {length}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    // The body comes in pieces, as over a real network: the server has answered long before
    // the last one, and finds nothing to read for a moment between them.
    let piece = vec![b' '; 64 * 1024];
    for i in 0..length / piece.len() {
        if let Err(e) = stream.write_all(&piece).await {
            panic!("writing piece {i} of the body failed: {e}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_body_size"), "{answer}");
    assert!(closed, "the connection is closed after the refusal");
    assert_eq!(post_ndjson(&running, ndjson(1)).await.status, 200);
    assert_eq!(sink.event_count(), 1);
}
