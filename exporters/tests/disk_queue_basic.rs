//! Disk queue semantics on a real directory: order, ids, redelivery after a restart, capacity,
//! drop_oldest, segment rollover and deletion, concurrency.

use siemrelay_core::{Event, Timestamp};
use siemrelay_exporters::delivery::config::WhenFull;
use siemrelay_exporters::delivery::disk_queue::{DiskQueue, DiskQueueOptions};
use siemrelay_exporters::delivery::queue::{DeliveryQueue, PopLimits, QueueError, SizedBatch};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

fn sized(tag: &str, n: usize) -> SizedBatch {
    SizedBatch::new((0..n).map(|i| Event::new(format!("{tag}-{i}"))).collect())
}

fn limits(max: usize) -> PopLimits {
    PopLimits {
        max_events: max,
        max_bytes: usize::MAX,
        min_events: 1,
        linger: Duration::ZERO,
    }
}

fn options(segment_bytes: u64) -> DiskQueueOptions {
    let mut options = DiskQueueOptions::new(1_000_000, usize::MAX, WhenFull::Backpressure);
    options.segment_bytes = segment_bytes;
    options
}

fn open(dir: &Path) -> DiskQueue {
    DiskQueue::open(dir, "t", 1_000_000, usize::MAX, WhenFull::Backpressure)
        .unwrap()
        .0
}

async fn push(queue: &DiskQueue, batch: SizedBatch) -> Result<(), QueueError> {
    let reservation = queue.try_reserve(batch.len(), batch.total_bytes)?;
    queue.push(reservation, batch).await
}

async fn drain(queue: &DiskQueue) -> Vec<Event> {
    queue.close();
    let mut out = Vec::new();
    while let Some(chunk) = queue.pop(limits(5)).await {
        out.extend(chunk.events);
        queue.complete(chunk.receipt);
    }
    out
}

fn types(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.event_type.clone()).collect()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn round_trip_keeps_order_and_event_ids() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(dir.path());
    let a = sized("a", 3);
    let b = sized("b", 4);
    let ids: Vec<Uuid> = a
        .events
        .iter()
        .chain(&b.events)
        .map(|e| e.event_id)
        .collect();
    push(&queue, a).await.unwrap();
    push(&queue, b).await.unwrap();
    let chunk = queue.pop(limits(5)).await.unwrap();
    // A chunk may take part of a record; the receipt says which.
    assert_eq!(types(&chunk.events), ["a-0", "a-1", "a-2", "b-0", "b-1"]);
    assert_eq!(chunk.receipt.records.len(), 2);
    assert_eq!(chunk.receipt.records[1].events, 2);
    let mut got: Vec<Uuid> = chunk.events.iter().map(|e| e.event_id).collect();
    queue.complete(chunk.receipt);
    let rest = drain(&queue).await;
    got.extend(rest.iter().map(|e| e.event_id));
    assert_eq!(got, ids);
    assert_eq!(queue.depth().events, 0);
}

#[tokio::test]
async fn in_flight_and_queued_events_come_back_after_a_restart_completed_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let pushed_at;
    {
        let queue = open(dir.path());
        pushed_at = Timestamp::now();
        for tag in ["done", "flying", "queued"] {
            push(&queue, sized(tag, 2)).await.unwrap();
        }
        let done = queue.pop(limits(2)).await.unwrap();
        queue.complete(done.receipt);
        let flying = queue.pop(limits(2)).await.unwrap();
        assert_eq!(types(&flying.events), ["flying-0", "flying-1"]);
        // Dropped without completing `flying`: a crash or a shutdown past its deadline.
    }
    let (queue, report) =
        DiskQueue::open(dir.path(), "t", 100, usize::MAX, WhenFull::Backpressure).unwrap();
    assert_eq!((report.records_recovered, report.events_recovered), (2, 4));
    assert!(report.is_clean());
    assert_eq!(queue.depth().events, 4);
    let chunk = queue.pop(limits(10)).await.unwrap();
    // The enqueue time survives, so retry deadlines continue across restarts.
    assert!(chunk.enqueued_at.0 <= pushed_at.0 + 1_000_000_000);
    assert!(chunk.enqueued_at.0 >= pushed_at.0 - 1_000_000_000);
    assert_eq!(
        types(&chunk.events),
        ["flying-0", "flying-1", "queued-0", "queued-1"]
    );
}

#[tokio::test]
async fn linger_holds_a_partial_batch_until_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(dir.path());
    push(&queue, sized("x", 3)).await.unwrap();
    let started = std::time::Instant::now();
    let chunk = queue
        .pop(PopLimits {
            max_events: 100,
            max_bytes: usize::MAX,
            min_events: 50,
            linger: Duration::from_millis(150),
        })
        .await
        .unwrap();
    assert_eq!(chunk.events.len(), 3);
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn full_queue_refuses_and_counts_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) =
        DiskQueue::open(dir.path(), "t", 10, usize::MAX, WhenFull::Backpressure).unwrap();
    push(&queue, sized("a", 8)).await.unwrap();
    assert_eq!(queue.try_reserve(5, 10), Err(QueueError::Full));
    let chunk = queue.pop(limits(8)).await.unwrap();
    assert_eq!(queue.try_reserve(5, 10), Err(QueueError::Full));
    queue.complete(chunk.receipt);
    let reservation = queue.try_reserve(5, 10).unwrap();
    queue.cancel(reservation);
    assert_eq!(queue.depth().events, 0);
    assert_eq!(queue.depth().bytes, 0);
}

#[tokio::test]
async fn byte_capacity_counts_bytes_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = DiskQueue::open(dir.path(), "t", 1000, 3000, WhenFull::Backpressure).unwrap();
    push(&queue, sized("a", 5)).await.unwrap();
    let on_disk = queue.depth().bytes;
    let segment_len: u64 = dir_bytes(dir.path());
    assert_eq!(
        on_disk as u64, segment_len,
        "one data record, nothing else written"
    );
    assert!(queue.try_reserve(5, 3000).is_err());
}

#[tokio::test]
async fn drop_oldest_evicts_queued_records_but_never_in_flight_ones() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (queue, _) =
            DiskQueue::open(dir.path(), "t", 10, usize::MAX, WhenFull::DropOldest).unwrap();
        push(&queue, sized("flying", 3)).await.unwrap();
        let flying = queue.pop(limits(3)).await.unwrap();
        push(&queue, sized("old", 4)).await.unwrap();
        push(&queue, sized("new", 4)).await.unwrap();
        // 3 in flight + 4 old + 4 new > 10: the old (not in flight) record goes.
        assert_eq!(queue.dropped(), 4);
        assert_eq!(queue.depth().events, 7);
        queue.complete(flying.receipt);
        queue.flush().unwrap();
    }
    // The drop is durable: "old" does not come back.
    let queue = open(dir.path());
    assert_eq!(
        types(&drain(&queue).await),
        ["new-0", "new-1", "new-2", "new-3"]
    );
}

#[tokio::test]
async fn segments_roll_over_and_acked_ones_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = DiskQueue::open_with(dir.path(), "t", options(4096)).unwrap();
    for i in 0..40 {
        push(&queue, sized(&format!("b{i}"), 5)).await.unwrap();
    }
    let segments = queue.segment_count();
    assert!(segments > 10, "{segments} segments");
    let full = dir_bytes(dir.path());
    let mut seen = 0;
    while seen < 200 {
        let chunk = queue.pop(limits(16)).await.unwrap();
        seen += chunk.events.len();
        queue.complete(chunk.receipt);
    }
    queue.flush().unwrap();
    assert_eq!(
        queue.segment_count(),
        1,
        "only the segment being written is kept"
    );
    let after = dir_bytes(dir.path());
    assert!(after * 4 < full, "disk usage went from {full} to {after}");
    drop(queue);
    let (queue, report) = DiskQueue::open_with(dir.path(), "t", options(4096)).unwrap();
    assert_eq!(report.records_recovered, 0);
    assert_eq!(queue.depth().events, 0);
}

#[tokio::test]
async fn records_beyond_the_memory_cache_are_read_back_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(1 << 20);
    options.cache_bytes = 1000;
    let (queue, _) = DiskQueue::open_with(dir.path(), "t", options).unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        let batch = sized(&format!("b{i}"), 5);
        ids.extend(batch.events.iter().map(|e| e.event_id));
        push(&queue, batch).await.unwrap();
    }
    let got: Vec<Uuid> = drain(&queue).await.iter().map(|e| e.event_id).collect();
    assert_eq!(got, ids);
}

#[tokio::test]
async fn the_directory_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let _queue = open(dir.path());
    let second = DiskQueue::open(dir.path(), "t", 10, 10, WhenFull::Backpressure);
    assert!(second.is_err_and(|e| e.to_string().contains("in use")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushers_and_out_of_order_workers_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = DiskQueue::open_with(dir.path(), "t", options(64 << 10)).unwrap();
    let queue = Arc::new(queue);
    let mut pushers = Vec::new();
    for p in 0..16 {
        let queue = queue.clone();
        pushers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for b in 0..20 {
                let batch = sized(&format!("p{p}-{b}"), 10);
                ids.extend(batch.events.iter().map(|e| e.event_id));
                push(&queue, batch).await.unwrap();
            }
            ids
        }));
    }
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let queue = queue.clone();
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut held = Vec::new();
            while let Some(chunk) = queue.pop(limits(37)).await {
                got.extend(chunk.events.iter().map(|e| e.event_id));
                // Complete out of order: hold some receipts back for a while.
                held.push(chunk.receipt);
                if held.len() > (w as usize % 3) + 1 {
                    let receipt = held.remove(held.len() / 2);
                    queue.complete(receipt);
                }
            }
            for receipt in held {
                queue.complete(receipt);
            }
            got
        }));
    }
    let mut pushed = Vec::new();
    for pusher in pushers {
        pushed.extend(pusher.await.unwrap());
    }
    queue.close();
    let mut delivered = Vec::new();
    for worker in workers {
        delivered.extend(worker.await.unwrap());
    }
    assert_eq!(pushed.len(), 3200);
    let unique: HashSet<Uuid> = delivered.iter().copied().collect();
    assert_eq!(unique.len(), delivered.len(), "duplicates in a clean run");
    assert_eq!(unique, pushed.iter().copied().collect::<HashSet<Uuid>>());
    assert_eq!(queue.depth().events, 0);
    assert_eq!(queue.depth().bytes, 0);
    drop(queue);
    let (_queue, report) = DiskQueue::open_with(dir.path(), "t", options(64 << 10)).unwrap();
    assert_eq!(report.records_recovered, 0, "every ack was made durable");
}
