//! A fast Splunk HEC responder for benchmarks: answers `{"text":"Success","code":0}` at once and
//! counts the events it received (concatenated JSON objects). `GET /count` returns the count.
//! With `--delay-ms`, every reply is delayed (a slow SIEM, for the bounded-memory check).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use clap::Parser;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:18088")]
    listen: String,
    /// Delay before each reply, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

struct Counters {
    events: AtomicU64,
    requests: AtomicU64,
    delay: Duration,
}

async fn collect(State(counters): State<Arc<Counters>>, body: Bytes) -> &'static str {
    // Each HEC envelope has exactly one `"event":{` (the event's own keys are `event_id`, …).
    let events = memchr_count(&body, b"\"event\":{");
    counters.events.fetch_add(events, Ordering::Relaxed);
    counters.requests.fetch_add(1, Ordering::Relaxed);
    if !counters.delay.is_zero() {
        tokio::time::sleep(counters.delay).await;
    }
    "{\"text\":\"Success\",\"code\":0}"
}

fn memchr_count(haystack: &[u8], needle: &[u8]) -> u64 {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count() as u64
}

async fn count(State(counters): State<Arc<Counters>>) -> String {
    format!(
        "{{\"events\":{},\"requests\":{}}}",
        counters.events.load(Ordering::Relaxed),
        counters.requests.load(Ordering::Relaxed)
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let counters = Arc::new(Counters {
        events: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        delay: Duration::from_millis(args.delay_ms),
    });
    let app = Router::new()
        .route("/services/collector/event", post(collect))
        .route("/count", get(count))
        .with_state(counters);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
