//! Requests larger than an exporter's queue, with the real binary: the runtime queues them in
//! parts, and once a part is queued the request is not refused for lack of room (its sender
//! would resend the queued part). Senders with a real retry loop post 50-event requests to a
//! webhook receiver whose Splunk HEC exporter holds 20 events (or 5 KiB of events of varied
//! sizes, so a part's real size can exceed the room reserved for it; or 20 events on disk),
//! while the fake HEC answers "server is busy" for longer than the old per-part wait: every
//! event must reach the SIEM exactly once.

use siemrelay_e2e::Siemrelay;
use siemrelay_e2e::fake::hec::{Behaviour, FakeHec, TOKEN as HEC_TOKEN};
use siemrelay_e2e::free_port;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Events per request: more than twice the queue, so a request is queued in several parts.
const EVENTS_PER_REQUEST: usize = 50;
/// How long the SIEM is busy: longer than the 5 s the runtime used to give a later part.
const BUSY_FOR: Duration = Duration::from_secs(8);

fn config(webhook: u16, hec: &str, queue: &str) -> String {
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
    sending: {{ batch_size: 5, batch_timeout: 20ms }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms }}
service:
  shutdown_timeout: 30s
  pipelines:
    security: {{ receivers: [webhook], exporters: [splunk_hec] }}
"#
    )
}

/// What one sender saw: the ids of its answered requests and how many times it was refused.
#[derive(Default)]
struct Sent {
    acked: Vec<String>,
    refusals: usize,
}

/// A sender as a real client is written: each request is resent (after `Retry-After`) until it
/// is answered 200. The client timeout is far above the SIEM's outage, as a sender's should be
/// above its receiver's backpressure.
async fn sender(port: u16, tag: &str, requests: usize, varied: bool) -> Sent {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut sent = Sent::default();
    for request in 0..requests {
        let mut body = String::new();
        let mut ids = Vec::new();
        for i in 0..EVENTS_PER_REQUEST {
            let id = uuid::Uuid::new_v4().to_string();
            let pad = if varied {
                (i * 37 + request * 11) % 600
            } else {
                0
            };
            body.push_str(&format!(
                "{{\"event_id\":\"{id}\",\"event_type\":\"login\",\"severity\":\"high\",\"summary\":\"{tag} {request} {i} {}\"}}\n",
                "x".repeat(pad)
            ));
            ids.push(id);
        }
        loop {
            let reply = client
                .post(format!("http://127.0.0.1:{port}/v1/events"))
                .header("content-type", "application/x-ndjson")
                .body(body.clone())
                .send()
                .await;
            match reply {
                Ok(r) if r.status() == 200 => break,
                Ok(r) if r.status() != 503 => {
                    panic!("{tag}: request {request} answered {}", r.status())
                }
                Ok(r) => {
                    sent.refusals += 1;
                    let wait = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                Err(e) => panic!("{tag}: request {request} failed: {e}"),
            }
        }
        sent.acked.extend(ids);
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_larger_than_the_queue_reach_a_busy_siem_exactly_once() {
    exactly_once("{ type: memory, max_events: 20 }", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_larger_than_a_byte_sized_queue_reach_a_busy_siem_exactly_once() {
    exactly_once("{ type: memory, max_events: 100000, max_size: 5KiB }", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_larger_than_a_disk_queue_reach_a_busy_siem_exactly_once() {
    exactly_once("{ type: disk, max_events: 20, max_size: 256KiB }", true).await;
}

/// The event ids the SIEM received more than once.
fn duplicates(hec: &FakeHec) -> HashMap<String, u32> {
    hec.counts().into_iter().filter(|(_, n)| *n > 1).collect()
}

/// Two senders post three requests each through `queue` while the SIEM is busy, then every
/// acknowledged event must be in the SIEM once.
async fn exactly_once(queue: &str, varied: bool) {
    let hec = FakeHec::start_default();
    hec.set_behaviour(Behaviour::Busy);
    let webhook = free_port();
    let mut relay = Siemrelay::start(&config(webhook, &hec.url(), queue));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));

    let busy_since = Instant::now();
    let senders = tokio::spawn(async move {
        tokio::join!(
            sender(webhook, "a", 3, varied),
            sender(webhook, "b", 3, varied)
        )
    });
    // The SIEM is busy well past the first parts being queued, then recovers. A duplicate
    // fails the test as soon as it arrives (a request refused after its first parts were
    // queued is resent, and could be refused that way again and again).
    while !senders.is_finished() {
        if busy_since.elapsed() >= BUSY_FOR {
            hec.set_behaviour(Behaviour::Normal);
        }
        let duplicated = duplicates(&hec);
        assert!(
            duplicated.is_empty(),
            "{} events delivered more than once while the senders still retry\n{}",
            duplicated.len(),
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (a, b) = senders.await.unwrap();
    let acked: Vec<String> = a.acked.into_iter().chain(b.acked).collect();
    assert_eq!(acked.len(), 6 * EVENTS_PER_REQUEST);
    // A clean shutdown delivers everything queued, so a late duplicate cannot hide.
    hec.set_behaviour(Behaviour::Normal);
    let status = relay.terminate(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "siemrelay did not stop cleanly: {status:?}\n{}",
        relay.logs()
    );

    let counts = hec.counts();
    let missing = acked.iter().filter(|id| !counts.contains_key(*id)).count();
    let duplicated = duplicates(&hec);
    assert!(
        missing == 0 && duplicated.is_empty(),
        "{missing} of {} acknowledged events missing, {} delivered more than once (senders refused {} times)\n{}",
        acked.len(),
        duplicated.len(),
        a.refusals + b.refusals,
        relay.logs()
    );
    assert_eq!(hec.total_events(), acked.len());
    assert!(hec.violations().is_empty(), "{:?}", hec.violations());
    // The busy SIEM did hold the requests back: senders met backpressure (their first parts
    // refused while the queue was full), so the later parts really waited.
    assert!(
        a.refusals + b.refusals > 0,
        "the queue never filled; the test did not exercise a waiting part"
    );
}
