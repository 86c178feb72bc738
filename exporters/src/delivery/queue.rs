//! The interface between the pipeline runtime and an exporter's pending events.
//!
//! The runtime reserves room in every target queue of a batch first and pushes only when all
//! reservations succeeded, so a batch is queued for all of its exporters or for none.
//! Workers pop chunks, and `complete` a chunk only when every event in it reached a final outcome
//! (delivered or dead-lettered): until then its room stays taken.

use super::status::ExporterStatus;
use async_trait::async_trait;
use siemrelay_core::{Batch, Event, Timestamp};
use std::sync::Arc;
use std::time::Duration;

/// A batch with the estimated encoded size of each event, computed once by the runtime.
#[derive(Clone, Debug, Default)]
pub struct SizedBatch {
    /// The events.
    pub events: Batch,
    /// Estimated size of each event in bytes.
    pub sizes: Vec<u32>,
    /// Sum of `sizes`.
    pub total_bytes: usize,
}

impl SizedBatch {
    /// Makes every event of a batch compact (see [`Event::compact`]: what waits in a queue is
    /// each event's encoded form, its tree freed here on the thread that built it) and
    /// measures it.
    pub fn new(mut events: Batch) -> SizedBatch {
        let mut total_bytes = 0;
        let sizes: Vec<u32> = events
            .iter_mut()
            .map(|event| {
                event.compact();
                let size = event.estimated_size();
                total_bytes += size;
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .collect();
        SizedBatch {
            events,
            sizes,
            total_bytes,
        }
    }

    /// Splits off the events from `at` on (with their sizes) into a batch of their own.
    pub fn split_off(&mut self, at: usize) -> SizedBatch {
        let events = self.events.split_off(at);
        let sizes = self.sizes.split_off(at);
        let total_bytes: usize = sizes.iter().map(|s| *s as usize).sum();
        self.total_bytes -= total_bytes;
        SizedBatch {
            events,
            sizes,
            total_bytes,
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Room taken in a queue for one batch, to be used by `push` or given back by `cancel`.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation must be pushed or cancelled"]
pub struct Reservation {
    /// Events reserved.
    pub events: usize,
    /// Bytes reserved.
    pub bytes: usize,
}

/// Why a queue did not take a batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// No room left.
    #[error("queue is full")]
    Full,
    /// The queue is closed (shutting down).
    #[error("queue is closed")]
    Closed,
    /// Storage failed (disk queues).
    #[error("queue storage error: {0}")]
    Storage(String),
    /// The batch is larger than the whole queue (`max_events`, `max_size`): it can never be
    /// taken as one; split it.
    #[error("{0}")]
    TooLarge(String),
}

/// One part of a popped chunk that came from one stored record (disk queues ack per record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordPart {
    /// Record sequence number.
    pub seq: u64,
    /// Events of that record in the chunk.
    pub events: u32,
}

/// Proof of what a chunk took from the queue, handed back to `complete`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Events in the chunk.
    pub events: usize,
    /// Estimated bytes in the chunk.
    pub bytes: usize,
    /// Records the events came from (empty for memory queues).
    pub records: Vec<RecordPart>,
}

/// Events taken from a queue for delivery.
#[derive(Debug)]
pub struct Chunk {
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// When the oldest event of the chunk was queued (retry deadlines count from here).
    pub enqueued_at: Timestamp,
    /// What to hand back to `complete`.
    pub receipt: Receipt,
}

/// How a worker wants its next chunk.
#[derive(Clone, Copy, Debug)]
pub struct PopLimits {
    /// Most events in the chunk.
    pub max_events: usize,
    /// Most estimated bytes in the chunk (at least one event is always taken).
    pub max_bytes: usize,
    /// Wait for this many events (the batch size)…
    pub min_events: usize,
    /// …but hold the oldest queued event no longer than this.
    pub linger: Duration,
}

/// What a batch of `events` costs in a queue whose recent batches cost `per_event` bytes per
/// event, when the caller gave no size.
pub fn bytes_hint(events: usize, bytes: usize, per_event: usize) -> usize {
    if bytes > 0 {
        bytes
    } else {
        events.saturating_mul(per_event)
    }
}

/// Why a batch can never fit a queue, or `None` when it can.
pub fn too_large(
    events: usize,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
) -> Option<QueueError> {
    if events > max_events {
        Some(QueueError::TooLarge(format!(
            "a batch of {events} events is larger than the queue (max_events {max_events})"
        )))
    } else if bytes > max_bytes {
        Some(QueueError::TooLarge(format!(
            "a batch of {bytes} bytes ({events} events) is larger than the queue (max_size {max_bytes} bytes)"
        )))
    } else {
        None
    }
}

/// Fill level of a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    /// Events queued or in flight.
    pub events: usize,
    /// Estimated bytes queued or in flight.
    pub bytes: usize,
    /// Event capacity.
    pub max_events: usize,
    /// Byte capacity.
    pub max_bytes: usize,
}

/// A bounded FIFO of events waiting for one exporter.
///
/// A queue never holds more than its `max_events` and `max_size`, whatever the batch: a batch
/// larger than the whole queue is refused with [`QueueError::TooLarge`] (the caller splits it),
/// also when the queue is empty.
#[async_trait]
pub trait DeliveryQueue: Send + Sync + 'static {
    /// Takes room for a batch without waiting; `Err(Full)` when there is none, `Err(TooLarge)`
    /// when there never will be. `bytes` may be 0 (not known yet): the queue then reserves
    /// what its recent batches cost per event, and `push` settles the real size.
    fn try_reserve(&self, events: usize, bytes: usize) -> Result<Reservation, QueueError>;

    /// Gives back room that will not be used.
    fn cancel(&self, reservation: Reservation);

    /// Stores a batch in reserved room; returns once stored (durably, for disk queues). A batch
    /// larger in bytes than its reservation needs the difference to be free (or evicted with
    /// `drop_oldest`), else it is refused with `Full` (or `TooLarge`), its reservation given
    /// back.
    async fn push(&self, reservation: Reservation, batch: SizedBatch) -> Result<(), QueueError>;

    /// Waits for the next chunk. Returns `None` once the queue is closed and empty.
    async fn pop(&self, limits: PopLimits) -> Option<Chunk>;

    /// Marks a chunk's events as finally handled (delivered or dead-lettered), freeing room.
    fn complete(&self, receipt: Receipt);

    /// Current fill level.
    fn depth(&self) -> QueueDepth;

    /// Refuses further pushes; `pop` drains what is left and then returns `None`.
    fn close(&self);

    /// True when the queue survives a crash (then pending events need not be dead-lettered at
    /// shutdown: they are delivered after the restart).
    fn is_durable(&self) -> bool;

    /// Removes and returns every queued event that is not in flight (used at a shutdown timeout
    /// to dead-letter what a memory queue still holds).
    fn take_remaining(&self) -> Vec<Event>;

    /// Gives the queue its exporter's status, to report what the status must show (intake
    /// refused for lack of disk space, losses found at open). Called once when the exporter
    /// starts.
    fn attach(&self, _status: Arc<ExporterStatus>) {}

    /// Marks the losses the queue found at open as acknowledged by an operator; returns how
    /// many were not yet.
    fn acknowledge_losses(&self) -> Result<usize, QueueError> {
        Ok(0)
    }
}
