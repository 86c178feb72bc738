//! push + pop + complete throughput of the memory and disk queues: 16 concurrent pushers of
//! 100-event batches (~400 bytes per event), 4 workers popping and completing.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use siemrelay_core::Event;
use siemrelay_exporters::delivery::config::WhenFull;
use siemrelay_exporters::delivery::disk_queue::DiskQueue;
use siemrelay_exporters::delivery::memory_queue::MemoryQueue;
use siemrelay_exporters::delivery::queue::{DeliveryQueue, PopLimits, SizedBatch};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PUSHERS: usize = 16;
const BATCHES_PER_PUSHER: usize = 10;
const BATCH: usize = 100;
const EVENTS: usize = PUSHERS * BATCHES_PER_PUSHER * BATCH;

fn event(i: usize) -> Event {
    let mut event = Event::new("policy_violation");
    event.source = Some("bench".into());
    event.summary = Some(format!("user {i} violated policy 7 on host h{}", i % 97));
    event
        .attributes
        .insert("detail".into(), "x".repeat(120).into());
    event.attributes.insert("n".into(), (i as u64).into());
    event
}

fn batches() -> Vec<SizedBatch> {
    (0..PUSHERS * BATCHES_PER_PUSHER)
        .map(|b| SizedBatch::new((0..BATCH).map(|i| event(b * BATCH + i)).collect()))
        .collect()
}

/// Pushes every batch from 16 tasks while 4 workers pop and complete; returns the elapsed time.
async fn run(queue: Arc<dyn DeliveryQueue>, mut input: Vec<SizedBatch>) -> Duration {
    let started = Instant::now();
    let mut pushers = Vec::new();
    for _ in 0..PUSHERS {
        let mine: Vec<SizedBatch> = input.drain(..BATCHES_PER_PUSHER).collect();
        let queue = queue.clone();
        pushers.push(tokio::spawn(async move {
            for batch in mine {
                loop {
                    match queue.try_reserve(batch.len(), batch.total_bytes) {
                        Ok(reservation) => {
                            queue.push(reservation, batch).await.expect("push");
                            break;
                        }
                        Err(_) => tokio::task::yield_now().await,
                    }
                }
            }
        }));
    }
    let mut workers = Vec::new();
    for _ in 0..4 {
        let queue = queue.clone();
        workers.push(tokio::spawn(async move {
            let mut seen = 0usize;
            let limits = PopLimits {
                max_events: 500,
                max_bytes: usize::MAX,
                min_events: 100,
                linger: Duration::from_millis(1),
            };
            while let Some(chunk) = queue.pop(limits).await {
                seen += chunk.events.len();
                queue.complete(chunk.receipt);
            }
            seen
        }));
    }
    for pusher in pushers {
        pusher.await.expect("pusher");
    }
    queue.close();
    let mut seen = 0;
    for worker in workers {
        seen += worker.await.expect("worker");
    }
    assert_eq!(seen, EVENTS);
    started.elapsed()
}

fn queues(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("queue_push_pop_complete");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("memory", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let queue: Arc<dyn DeliveryQueue> = Arc::new(MemoryQueue::new(
                    "bench",
                    1 << 30,
                    usize::MAX,
                    WhenFull::Backpressure,
                ));
                total += runtime.block_on(run(queue, batches()));
            }
            total
        })
    });
    group.bench_function("disk", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let (queue, _) = DiskQueue::open(
                    dir.path(),
                    "bench",
                    1 << 30,
                    usize::MAX,
                    WhenFull::Backpressure,
                )
                .expect("open");
                total += runtime.block_on(run(Arc::new(queue), batches()));
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, queues);
criterion_main!(benches);
