//! The exporter test rig shared by the exporter integration tests: a sink running behind a real
//! `ExporterHandle` (memory queue, workers, retries, dead-letter file in a temp dir, status).
#![allow(dead_code)] // Each test file uses a different part of the rig.

use serde_json::{Value, json};
use siemrelay_core::Event;
use siemrelay_exporters::delivery::config::WhenFull;
use siemrelay_exporters::delivery::dead_letter::{DeadLetter, DeadLetterEntry, read_entries};
use siemrelay_exporters::delivery::memory_queue::MemoryQueue;
use siemrelay_exporters::delivery::queue::SizedBatch;
use siemrelay_exporters::delivery::{BatchPolicy, DeliveryConfig, ExporterHandle, Sink};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An exporter running on a memory queue with its dead-letter file in a temp dir.
pub struct Rig {
    /// The running exporter.
    pub handle: ExporterHandle,
    _dir: tempfile::TempDir,
}

/// A delivery config from its JSON form (`{"retry": {...}, "sending": {...}}`).
pub fn delivery(config: Value) -> DeliveryConfig {
    serde_json::from_value(config).expect("delivery config")
}

/// Short retry settings for tests: 50 ms … 200 ms, give up after 30 s.
pub fn fast_retry() -> Value {
    json!({"retry": {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "30s"}})
}

impl Rig {
    /// Starts `sink` as exporter `id`; batches of up to `min_events` go out after `linger`.
    pub fn start(
        id: &str,
        sink: Arc<dyn Sink>,
        config: &DeliveryConfig,
        min_events: usize,
        linger: Duration,
    ) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = Arc::new(MemoryQueue::new(
            id,
            100_000,
            512 << 20,
            WhenFull::Backpressure,
        ));
        let batch = BatchPolicy {
            min_events,
            max_events: 0,
            linger,
        };
        let handle = ExporterHandle::start(
            id,
            sink,
            config,
            batch,
            queue,
            DeadLetter::new(dir.path(), id),
        );
        Rig { handle, _dir: dir }
    }

    /// Queues events in batches of 500.
    pub async fn push(&self, events: impl AsRef<[Event]>) {
        for chunk in events.as_ref().chunks(500) {
            let batch = SizedBatch::new(chunk.to_vec());
            let queue = self.handle.queue();
            let reservation = queue
                .try_reserve(batch.len(), batch.total_bytes)
                .expect("room in the queue");
            queue.push(reservation, batch).await.expect("push");
        }
    }

    /// Waits until `total` events have a final outcome (sent or dead-lettered) and the queue is
    /// empty; false on timeout.
    pub async fn settled(&self, total: u64, timeout: Duration) -> bool {
        eventually(timeout, || {
            let s = self.handle.status().snapshot();
            s.events_sent + s.events_dead_lettered >= total
                && self.handle.queue().depth().events == 0
        })
        .await
    }

    /// Closes the queue and waits until every event reached a final outcome.
    pub async fn drain(&self) {
        let report = self
            .handle
            .shutdown(Instant::now() + Duration::from_secs(20))
            .await;
        assert!(report.drained, "not drained: {report:?}");
    }

    /// The dead-letter file's entries.
    pub fn dead_letters(&self) -> Vec<DeadLetterEntry> {
        let (entries, problems) =
            read_entries(self.handle.dead_letter().path()).expect("read dead letters");
        assert!(problems.is_empty(), "{problems:?}");
        entries
    }
}

/// Polls `done` every 10 ms (status has no change notification) until it holds or `timeout`.
pub async fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}
