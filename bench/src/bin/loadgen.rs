//! HTTP load generator: POSTs NDJSON bodies of reference events to a webhook with N concurrent
//! connections for a duration, and prints requests and events per second.

use clap::Parser;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Webhook URL.
    #[arg(long, default_value = "http://127.0.0.1:8088/v1/events")]
    url: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    events: usize,
    /// Run time in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // A pool of distinct bodies, built before the clock starts.
    let mut bodies = Vec::new();
    let mut sequence = 0u64;
    for _ in 0..64 {
        let mut body = String::with_capacity(args.events * 420);
        for _ in 0..args.events {
            siemrelay_bench::reference_event(sequence, &mut body);
            sequence += 1;
        }
        bodies.push(bytes::Bytes::from(body));
    }
    let bodies = Arc::new(bodies);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.connections {
        let (client, url, bodies) = (client.clone(), args.url.clone(), bodies.clone());
        let (ok, refused, errors) = (ok.clone(), refused.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while Instant::now() < deadline {
                let body = bodies[i % bodies.len()].clone();
                i += 1;
                match client
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status().as_u16() == 503 => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "{{\"requests_ok\":{ok},\"requests_refused\":{},\"errors\":{},\"events_accepted\":{},\"seconds\":{elapsed:.2},\"events_per_second\":{:.0}}}",
        refused.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        ok * args.events as u64,
        (ok * args.events as u64) as f64 / elapsed
    );
    Ok(())
}
