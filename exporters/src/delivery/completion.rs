//! Keeps completion tokens ([`siemrelay_core::Completion`]) across a queue that does not hold
//! events in memory: the disk queue writes events to its log and drops them, so their tokens
//! would fire at queueing time, not at delivery. [`KeepCompletions`] takes the tokens off the
//! events before they are stored and puts them back (by `event_id`) on the events a worker pops,
//! so they are dropped only when the worker is done with the event: delivered or dead-lettered.
//!
//! Events are matched by `event_id`; two queued events with the same id share their tokens in
//! arrival order (whichever copy finishes first releases the older token), which is right for an
//! id that names one event. Tokens of events still queued when the process stops are simply
//! lost with it: their receiver never committed them, and reads them again after the restart.
//!
//! Nothing is done for events without a token beyond one branch per event at push and one
//! atomic load per popped chunk.

use super::queue::{
    Chunk, DeliveryQueue, PopLimits, QueueDepth, QueueError, Receipt, Reservation, SizedBatch,
};
use super::status::ExporterStatus;
use async_trait::async_trait;
use siemrelay_core::{Completion, Event};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

/// A queue wrapper that carries completion tokens from `push` to `pop` (see the module doc).
pub struct KeepCompletions {
    inner: Arc<dyn DeliveryQueue>,
    held: Mutex<HashMap<Uuid, Vec<Completion>>>,
    /// Tokens held: lets `pop` skip the map when there are none.
    count: AtomicUsize,
}

impl KeepCompletions {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn DeliveryQueue>) -> KeepCompletions {
        KeepCompletions {
            inner,
            held: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<Uuid, Vec<Completion>>> {
        // Every update is a map insert or removal: a panic cannot leave it half done.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tokens kept for events not yet popped.
    pub fn held_tokens(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    fn release(&self, ids: &[Uuid]) {
        let mut held = self.held();
        for id in ids {
            if let Some(tokens) = held.get_mut(id) {
                tokens.pop();
                self.count.fetch_sub(1, Ordering::AcqRel);
                if tokens.is_empty() {
                    held.remove(id);
                }
            }
        }
    }

    fn reattach(&self, events: &mut [Event]) {
        let mut held = self.held();
        for event in events {
            if let Some(tokens) = held.get_mut(event.head().event_id) {
                event.completion = Some(tokens.remove(0));
                self.count.fetch_sub(1, Ordering::AcqRel);
                if tokens.is_empty() {
                    held.remove(event.head().event_id);
                }
            }
        }
    }
}

#[async_trait]
impl DeliveryQueue for KeepCompletions {
    fn try_reserve(&self, events: usize, bytes: usize) -> Result<Reservation, QueueError> {
        self.inner.try_reserve(events, bytes)
    }

    fn cancel(&self, reservation: Reservation) {
        self.inner.cancel(reservation)
    }

    async fn push(
        &self,
        reservation: Reservation,
        mut batch: SizedBatch,
    ) -> Result<(), QueueError> {
        let mut kept: Vec<(Uuid, Completion)> = Vec::new();
        for event in batch.events.iter_mut() {
            if let Some(token) = event.completion.take() {
                kept.push((*event.head().event_id, token));
            }
        }
        let mut ids: Vec<Uuid> = Vec::new();
        if !kept.is_empty() {
            // Kept before the events are stored: a worker may pop them at once.
            ids.reserve(kept.len());
            let mut held = self.held();
            self.count.fetch_add(kept.len(), Ordering::AcqRel);
            for (id, token) in kept {
                ids.push(id);
                held.entry(id).or_default().push(token);
            }
        }
        let result = self.inner.push(reservation, batch).await;
        if result.is_err() && !ids.is_empty() {
            self.release(&ids);
        }
        result
    }

    async fn pop(&self, limits: PopLimits) -> Option<Chunk> {
        let mut chunk = self.inner.pop(limits).await?;
        if self.count.load(Ordering::Acquire) > 0 {
            self.reattach(&mut chunk.events);
        }
        Some(chunk)
    }

    fn complete(&self, receipt: Receipt) {
        self.inner.complete(receipt)
    }

    fn depth(&self) -> QueueDepth {
        self.inner.depth()
    }

    fn close(&self) {
        self.inner.close()
    }

    fn is_durable(&self) -> bool {
        self.inner.is_durable()
    }

    fn take_remaining(&self) -> Vec<Event> {
        let mut events = self.inner.take_remaining();
        if self.count.load(Ordering::Acquire) > 0 {
            self.reattach(&mut events);
        }
        events
    }

    fn attach(&self, status: Arc<ExporterStatus>) {
        self.inner.attach(status)
    }

    fn acknowledge_losses(&self) -> Result<usize, QueueError> {
        self.inner.acknowledge_losses()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::config::WhenFull;
    use crate::delivery::disk_queue::DiskQueue;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    fn limits() -> PopLimits {
        PopLimits {
            max_events: 100,
            max_bytes: usize::MAX,
            min_events: 1,
            linger: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn a_disk_queue_token_fires_after_the_popped_events_are_dropped_not_at_push() {
        let dir = tempfile::tempdir().unwrap();
        let (disk, _) = DiskQueue::open(dir.path(), "t", 1000, 1 << 20, WhenFull::Backpressure)
            .expect("disk queue");
        let queue = KeepCompletions::new(Arc::new(disk));
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        let token = Completion::new(move || flag.store(true, Ordering::SeqCst));
        let events: Vec<Event> = (0..3)
            .map(|i| {
                let mut event = Event::new(format!("t{i}"));
                event.completion = Some(token.clone());
                event
            })
            .collect();
        drop(token);
        let batch = SizedBatch::new(events);
        let reservation = queue.try_reserve(batch.len(), batch.total_bytes).unwrap();
        queue.push(reservation, batch).await.unwrap();
        assert!(!fired.load(Ordering::SeqCst), "queued is not finished");
        assert_eq!(queue.held_tokens(), 3);
        let chunk = queue.pop(limits()).await.unwrap();
        assert_eq!(chunk.events.len(), 3);
        assert!(chunk.events.iter().all(|e| e.completion.is_some()));
        assert_eq!(queue.held_tokens(), 0);
        assert!(!fired.load(Ordering::SeqCst), "in flight is not finished");
        queue.complete(chunk.receipt.clone());
        drop(chunk);
        assert!(fired.load(Ordering::SeqCst), "delivered: finished");
    }
}
