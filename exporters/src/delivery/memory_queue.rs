//! The bounded in-memory queue. A crash loses what it holds; a clean shutdown delivers it or,
//! past the shutdown timeout, writes it to the dead-letter file.

use super::config::WhenFull;
use super::queue::{
    Chunk, DeliveryQueue, PopLimits, QueueDepth, QueueError, Receipt, Reservation, SizedBatch,
    bytes_hint, too_large,
};
use async_trait::async_trait;
use siemrelay_core::{Event, Timestamp};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Most queue slots allocated up front; a larger queue grows past them as it fills.
const MAX_PREALLOCATED_SLOTS: usize = 1 << 16;

struct Queued {
    event: Event,
    size: u32,
    enqueued_at: Timestamp,
}

#[derive(Default)]
struct State {
    queued: VecDeque<Queued>,
    queued_bytes: usize,
    /// Queued + in flight + reserved.
    used_events: usize,
    used_bytes: usize,
    closed: bool,
}

/// A bounded FIFO in memory.
pub struct MemoryQueue {
    id: String,
    max_events: usize,
    max_bytes: usize,
    when_full: WhenFull,
    state: Mutex<State>,
    pushed: Notify,
    dropped: AtomicU64,
    /// Estimated bytes per event of the last batch offered (reservation size hint).
    per_event: AtomicUsize,
}

impl MemoryQueue {
    /// A queue for exporter `id` holding at most `max_events` and `max_bytes`.
    pub fn new(id: &str, max_events: usize, max_bytes: usize, when_full: WhenFull) -> MemoryQueue {
        MemoryQueue {
            id: id.to_string(),
            max_events,
            max_bytes,
            when_full,
            // Sized once: a deque that grows by doubling ends at the next power of two
            // (16,384 slots for the default 10,000), and its slots are all touched as it wraps.
            state: Mutex::new(State {
                queued: VecDeque::with_capacity(max_events.min(MAX_PREALLOCATED_SLOTS)),
                ..State::default()
            }),
            pushed: Notify::new(),
            dropped: AtomicU64::new(0),
            per_event: AtomicUsize::new(0),
        }
    }

    /// Events dropped by `when_full: drop_oldest` so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent (every update is
        // a few arithmetic steps), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fits(&self, state: &State, events: usize, bytes: usize) -> bool {
        state.used_events + events <= self.max_events && state.used_bytes + bytes <= self.max_bytes
    }

    /// Drops the oldest queued events (not those in flight) until `events` and `bytes` more
    /// fit; counted and logged.
    fn drop_oldest(&self, state: &mut State, events: usize, bytes: usize) {
        let mut dropped = 0u64;
        while !self.fits(state, events, bytes) {
            let Some(oldest) = state.queued.pop_front() else {
                break;
            };
            state.queued_bytes -= oldest.size as usize;
            state.used_events -= 1;
            state.used_bytes -= oldest.size as usize;
            dropped += 1;
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
            metrics::counter!("siemrelay_exporter_events_dropped_total", "exporter" => self.id.clone())
                .increment(dropped);
            tracing::warn!(exporter = %self.id, dropped, "queue full: dropped the oldest events (when_full: drop_oldest)");
        }
    }
}

#[async_trait]
impl DeliveryQueue for MemoryQueue {
    fn try_reserve(&self, events: usize, bytes: usize) -> Result<Reservation, QueueError> {
        let mut state = self.lock();
        if state.closed {
            return Err(QueueError::Closed);
        }
        let bytes = bytes_hint(events, bytes, self.per_event.load(Ordering::Relaxed));
        if let Some(error) = too_large(events, bytes, self.max_events, self.max_bytes) {
            return Err(error);
        }
        if !self.fits(&state, events, bytes) && self.when_full == WhenFull::DropOldest {
            self.drop_oldest(&mut state, events, bytes);
        }
        if !self.fits(&state, events, bytes) {
            return Err(QueueError::Full);
        }
        state.used_events += events;
        state.used_bytes += bytes;
        Ok(Reservation { events, bytes })
    }

    fn cancel(&self, reservation: Reservation) {
        let mut state = self.lock();
        state.used_events -= reservation.events;
        state.used_bytes -= reservation.bytes;
    }

    async fn push(&self, reservation: Reservation, batch: SizedBatch) -> Result<(), QueueError> {
        let now = Timestamp::now();
        if !batch.is_empty() {
            self.per_event
                .store(batch.total_bytes / batch.len(), Ordering::Relaxed);
        }
        {
            let mut state = self.lock();
            // Settle the reservation to the batch's real size: what it lacks must be free.
            state.used_events -= reservation.events;
            state.used_bytes -= reservation.bytes;
            if !self.fits(&state, batch.len(), batch.total_bytes) {
                if let Some(error) = too_large(
                    batch.len(),
                    batch.total_bytes,
                    self.max_events,
                    self.max_bytes,
                ) {
                    return Err(error);
                }
                if self.when_full == WhenFull::DropOldest {
                    self.drop_oldest(&mut state, batch.len(), batch.total_bytes);
                }
                if !self.fits(&state, batch.len(), batch.total_bytes) {
                    return Err(QueueError::Full);
                }
            }
            state.used_events += batch.len();
            state.used_bytes += batch.total_bytes;
            state.queued_bytes += batch.total_bytes;
            for (event, size) in batch.events.into_iter().zip(batch.sizes) {
                state.queued.push_back(Queued {
                    event,
                    size,
                    enqueued_at: now,
                });
            }
        }
        self.pushed.notify_waiters();
        Ok(())
    }

    async fn pop(&self, limits: PopLimits) -> Option<Chunk> {
        loop {
            let notified = self.pushed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Decide under the lock; wait (for more events or the linger deadline) after it.
            let wait: Option<std::time::Duration> = {
                let mut state = self.lock();
                match state.queued.front() {
                    None if state.closed => return None,
                    None => None,
                    Some(front) => {
                        let deadline = front
                            .enqueued_at
                            .0
                            .saturating_add(limits.linger.as_nanos() as i64);
                        let enough = state.queued.len() >= limits.min_events.max(1)
                            || state.queued_bytes >= limits.max_bytes
                            || state.closed;
                        let now = Timestamp::now().0;
                        if enough || now >= deadline {
                            return Some(take_chunk(&mut state, limits));
                        }
                        Some(std::time::Duration::from_nanos((deadline - now) as u64))
                    }
                }
            };
            match wait {
                None => notified.await,
                Some(until_deadline) => {
                    let _ = tokio::time::timeout(until_deadline, notified).await;
                }
            }
        }
    }

    fn complete(&self, receipt: Receipt) {
        let mut state = self.lock();
        state.used_events -= receipt.events;
        state.used_bytes -= receipt.bytes;
    }

    fn depth(&self) -> QueueDepth {
        let state = self.lock();
        QueueDepth {
            events: state.used_events,
            bytes: state.used_bytes,
            max_events: self.max_events,
            max_bytes: self.max_bytes,
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.pushed.notify_waiters();
    }

    fn is_durable(&self) -> bool {
        false
    }

    fn take_remaining(&self) -> Vec<Event> {
        let mut state = self.lock();
        let taken: Vec<Queued> = state.queued.drain(..).collect();
        let bytes: usize = taken.iter().map(|q| q.size as usize).sum();
        state.queued_bytes = 0;
        state.used_events -= taken.len();
        state.used_bytes -= bytes;
        taken.into_iter().map(|q| q.event).collect()
    }
}

fn take_chunk(state: &mut State, limits: PopLimits) -> Chunk {
    let mut events = Vec::with_capacity(limits.max_events.min(state.queued.len()));
    let mut bytes = 0usize;
    let enqueued_at = state.queued.front().map_or(Timestamp(0), |q| q.enqueued_at);
    while let Some(front) = state.queued.front() {
        let size = front.size as usize;
        if !events.is_empty()
            && (events.len() >= limits.max_events || bytes + size > limits.max_bytes)
        {
            break;
        }
        let Some(queued) = state.queued.pop_front() else {
            break;
        };
        bytes += size;
        events.push(queued.event);
    }
    state.queued_bytes -= bytes;
    let receipt = Receipt {
        events: events.len(),
        bytes,
        records: Vec::new(),
    };
    Chunk {
        events,
        enqueued_at,
        receipt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn batch(n: usize) -> SizedBatch {
        SizedBatch::new((0..n).map(|i| Event::new(format!("t{i}"))).collect())
    }

    fn limits(min: usize, max: usize, linger_ms: u64) -> PopLimits {
        PopLimits {
            max_events: max,
            max_bytes: usize::MAX,
            min_events: min,
            linger: Duration::from_millis(linger_ms),
        }
    }

    async fn push(queue: &MemoryQueue, b: SizedBatch) -> Result<(), QueueError> {
        let r = queue.try_reserve(b.len(), b.total_bytes)?;
        queue.push(r, b).await
    }

    #[tokio::test]
    async fn pops_at_batch_size_without_waiting_for_linger() {
        let queue = MemoryQueue::new("t", 1000, usize::MAX, WhenFull::Backpressure);
        push(&queue, batch(10)).await.unwrap();
        let started = std::time::Instant::now();
        let chunk = queue.pop(limits(10, 100, 5_000)).await.unwrap();
        assert_eq!(chunk.events.len(), 10);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn max_events_splits_and_order_is_kept() {
        let queue = MemoryQueue::new("t", 1000, usize::MAX, WhenFull::Backpressure);
        push(&queue, batch(25)).await.unwrap();
        let a = queue.pop(limits(1, 10, 0)).await.unwrap();
        let b = queue.pop(limits(1, 10, 0)).await.unwrap();
        let c = queue.pop(limits(1, 10, 0)).await.unwrap();
        assert_eq!(
            (a.events.len(), b.events.len(), c.events.len()),
            (10, 10, 5)
        );
        assert_eq!(a.events[0].event_type, "t0");
        assert_eq!(c.events[4].event_type, "t24");
    }

    #[tokio::test]
    async fn linger_releases_a_partial_batch_after_the_timeout() {
        let queue = MemoryQueue::new("t", 1000, usize::MAX, WhenFull::Backpressure);
        push(&queue, batch(3)).await.unwrap();
        let started = std::time::Instant::now();
        let chunk = queue.pop(limits(100, 1000, 150)).await.unwrap();
        let waited = started.elapsed();
        assert_eq!(chunk.events.len(), 3);
        assert!(
            waited >= Duration::from_millis(100),
            "released too early: {waited:?}"
        );
        assert!(waited < Duration::from_secs(2), "held too long: {waited:?}");
    }

    #[tokio::test]
    async fn full_queue_refuses_until_completed() {
        let queue = MemoryQueue::new("t", 20, usize::MAX, WhenFull::Backpressure);
        push(&queue, batch(15)).await.unwrap();
        assert_eq!(queue.try_reserve(10, 10), Err(QueueError::Full));
        let chunk = queue.pop(limits(1, 100, 0)).await.unwrap();
        // Popped but not completed: the room stays taken.
        assert_eq!(queue.try_reserve(10, 10), Err(QueueError::Full));
        queue.complete(chunk.receipt);
        let r = queue.try_reserve(10, 10).unwrap();
        queue.cancel(r);
        assert_eq!(queue.depth().events, 0);
    }

    #[tokio::test]
    async fn drop_oldest_makes_room_and_counts() {
        let queue = MemoryQueue::new("t", 20, usize::MAX, WhenFull::DropOldest);
        push(&queue, batch(15)).await.unwrap();
        push(&queue, batch(10)).await.unwrap();
        assert_eq!(queue.dropped(), 5);
        let chunk = queue.pop(limits(1, 100, 0)).await.unwrap();
        assert_eq!(chunk.events.len(), 20);
        assert_eq!(chunk.events[0].event_type, "t5");
    }

    #[tokio::test]
    async fn an_empty_queue_refuses_a_batch_larger_than_itself() {
        let queue = MemoryQueue::new("t", 20, 100_000, WhenFull::Backpressure);
        assert!(matches!(
            queue.try_reserve(21, 0),
            Err(QueueError::TooLarge(m)) if m.contains("max_events 20")
        ));
        // Bytes: the reservation does not know them, the push does.
        let big = batch(10);
        let bytes = big.total_bytes;
        let small = MemoryQueue::new("t", 20, bytes - 1, WhenFull::Backpressure);
        let r = small.try_reserve(10, 0).unwrap();
        assert!(matches!(
            small.push(r, big).await,
            Err(QueueError::TooLarge(_))
        ));
        assert_eq!(small.depth().events, 0);
        assert_eq!(small.depth().bytes, 0);
        // Now the queue knows what events cost: the next reservation is refused up front.
        assert!(matches!(
            small.try_reserve(10, 0),
            Err(QueueError::TooLarge(_))
        ));
        // A batch that fits, then one that would overflow the bytes: never more than max_size.
        let queue = MemoryQueue::new("t", 1000, bytes + bytes / 2, WhenFull::Backpressure);
        push(&queue, batch(10)).await.unwrap();
        let r = queue.try_reserve(10, 1).unwrap();
        assert_eq!(queue.push(r, batch(10)).await, Err(QueueError::Full));
        assert!(queue.depth().bytes <= queue.depth().max_bytes);
        assert_eq!(queue.depth().events, 10);
    }

    #[tokio::test]
    async fn close_drains_then_ends() {
        let queue = MemoryQueue::new("t", 100, usize::MAX, WhenFull::Backpressure);
        push(&queue, batch(2)).await.unwrap();
        queue.close();
        assert_eq!(queue.try_reserve(1, 1), Err(QueueError::Closed));
        assert_eq!(
            queue
                .pop(limits(100, 100, 60_000))
                .await
                .unwrap()
                .events
                .len(),
            2
        );
        assert!(queue.pop(limits(1, 100, 0)).await.is_none());
    }

    #[tokio::test]
    async fn a_full_queue_holds_exactly_its_slots_not_the_next_power_of_two() {
        let queue = MemoryQueue::new("q", 10_000, 1 << 30, WhenFull::Backpressure);
        for _ in 0..100 {
            push(&queue, batch(100)).await.unwrap();
        }
        let capacity = queue.lock().queued.capacity();
        assert!(
            (10_000..16_384).contains(&capacity),
            "{capacity} slots for 10,000 events"
        );
    }
}
