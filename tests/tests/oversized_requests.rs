//! Requests larger than an exporter's queue, with the real binary: the runtime queues them in
//! parts, and once a part is queued the request is not refused for lack of room (its sender
//! would resend the queued part). Senders with a real retry loop post 50-event requests to a
//! webhook receiver whose Splunk HEC exporter holds 20 events, while the fake HEC answers
//! "server is busy" for longer than the old per-part wait: every event must reach the SIEM
//! exactly once.

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

fn config(webhook: u16, hec: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  splunk_hec:
    endpoint: "{hec}"
    token: "{HEC_TOKEN}"
    index: security
    queue: {{ type: memory, max_events: 20 }}
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
async fn sender(port: u16, tag: &str, requests: usize) -> Sent {
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
            body.push_str(&format!(
                "{{\"event_id\":\"{id}\",\"event_type\":\"login\",\"severity\":\"high\",\"summary\":\"{tag} {request} {i}\"}}\n"
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
    let hec = FakeHec::start_default();
    hec.set_behaviour(Behaviour::Busy);
    let webhook = free_port();
    let mut relay = Siemrelay::start(&config(webhook, &hec.url()));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));

    let busy_since = Instant::now();
    let senders = tokio::spawn(async move {
        let (a, b) = tokio::join!(sender(webhook, "a", 3), sender(webhook, "b", 3));
        (a, b)
    });
    // The SIEM is busy well past the first parts being queued, then recovers.
    tokio::time::sleep(BUSY_FOR.saturating_sub(busy_since.elapsed())).await;
    hec.set_behaviour(Behaviour::Normal);
    let (a, b) = senders.await.unwrap();
    let acked: Vec<String> = a.acked.into_iter().chain(b.acked).collect();
    assert_eq!(acked.len(), 6 * EVENTS_PER_REQUEST);
    // A clean shutdown delivers everything queued, so a late duplicate cannot hide.
    let status = relay.terminate(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "siemrelay did not stop cleanly: {status:?}\n{}",
        relay.logs()
    );

    let counts = hec.counts();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    let duplicated: HashMap<&String, u32> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (id, *n))
        .collect();
    assert!(
        missing.is_empty() && duplicated.is_empty(),
        "{} of {} acknowledged events missing, {} delivered more than once (senders refused {} times)\n{}",
        missing.len(),
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
