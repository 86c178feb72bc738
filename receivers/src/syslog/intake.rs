//! Handing received messages to the pipeline, shared by the UDP and TCP listeners: memory is
//! reserved from `service.memory_limit` first, messages become events through the shared ingest,
//! and a batch the pipeline refuses because a queue is full is held and offered again (the raw
//! messages are kept, so nothing is cloned on the way) until it is accepted. The caller reads
//! no more from its socket meanwhile: TCP senders are slowed by TCP's own flow control.

use super::message::to_event;
use super::telemetry::{Reason, Telemetry};
use bytes::Bytes;
use siemrelay_core::admission::{ADMISSION_WAIT, MemoryBudget, OverBudget, Reservation};
use siemrelay_core::ingest::IngestOptions;
use siemrelay_core::{EventSink, Refusal, Timestamp};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Messages one batch holds at most. Small enough that a batch fits any sane exporter queue
/// whole: the runtime splits a batch larger than a queue and then holds the stream until every
/// part is queued, which a whole batch never needs.
pub const MAX_BATCH_MESSAGES: usize = 100;
/// Bytes of raw messages one batch holds at most.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Memory a message costs as an event, per byte received (the event's fields and JSON form).
const BYTES_PER_RAW_BYTE: usize = 4;
/// Wait before offering again a batch a queue could not store (`Refusal::Failed`).
const FAILED_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between offers of a refused batch, whatever the pipeline suggests.
const MAX_RETRY_WAIT: Duration = Duration::from_millis(500);

/// One received message and its sender.
#[derive(Clone, Debug)]
pub struct Received {
    /// The message without its framing.
    pub bytes: Bytes,
    /// The sender's address.
    pub peer: IpAddr,
}

/// Received messages waiting to be handed over.
#[derive(Debug, Default)]
pub struct Pending {
    messages: Vec<Received>,
    bytes: usize,
}

impl Pending {
    /// Adds a message.
    pub fn push(&mut self, received: Received) {
        self.bytes += received.bytes.len();
        self.messages.push(received);
    }

    /// True when no message waits.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True when the batch should be handed over now.
    pub fn is_full(&self) -> bool {
        self.messages.len() >= MAX_BATCH_MESSAGES || self.bytes >= MAX_BATCH_BYTES
    }

    fn clear(&mut self) {
        self.messages.clear();
        self.bytes = 0;
    }
}

/// The pipeline refused the batch for good (siemrelay is stopping); this many events were not
/// queued.
#[derive(Debug, PartialEq, Eq)]
pub struct NotQueued(pub usize);

/// What every listener of one receiver shares.
pub struct Intake {
    /// Where batches go.
    pub sink: Arc<dyn EventSink>,
    /// `service.memory_limit`.
    pub budget: Arc<MemoryBudget>,
    /// The shared ingest's rules for this receiver.
    pub options: IngestOptions,
    /// Metrics.
    pub telemetry: Telemetry,
    /// True while some listener holds a batch the pipeline refused (logged when it changes).
    pub paused: AtomicBool,
}

impl Intake {
    async fn reserve(&self, pending: &Pending, shutdown: &CancellationToken) -> Reservation {
        let needed = pending.bytes.saturating_mul(BYTES_PER_RAW_BYTE);
        loop {
            match self.budget.reserve(needed, ADMISSION_WAIT).await {
                Ok(reservation) => return reservation,
                // The batch alone is larger than the whole budget: it goes on uncounted rather
                // than being lost (batches are bounded by MAX_BATCH_BYTES).
                Err(OverBudget::NeverFits { .. }) => return self.budget.empty_reservation(),
                Err(OverBudget::Busy { .. }) if shutdown.is_cancelled() => {
                    return self.budget.empty_reservation();
                }
                Err(OverBudget::Busy { .. }) => {}
            }
        }
    }

    /// Hands `pending` to the pipeline, waiting while its queues are full, and empties it.
    /// Returns the events queued; `Err` when siemrelay stopped before they could be.
    pub async fn hand_over(
        &self,
        pending: &mut Pending,
        shutdown: &CancellationToken,
    ) -> Result<usize, NotQueued> {
        if pending.is_empty() {
            return Ok(0);
        }
        let _reservation = self.reserve(pending, shutdown).await;
        let mut refused_once = false;
        let result = loop {
            let observed = Timestamp::now();
            let mut batch = Vec::with_capacity(pending.len());
            let mut mapping_errors = 0;
            let mut invalid = 0;
            for message in &pending.messages {
                match to_event(&message.bytes, Some(message.peer), &self.options, observed) {
                    Ok(ingested) => {
                        mapping_errors += ingested.mapping_errors;
                        batch.push(ingested.event);
                    }
                    Err(error) => {
                        invalid += 1;
                        if !refused_once {
                            tracing::debug!(receiver = %self.telemetry.receiver(), peer = %message.peer, error = %error, "syslog message refused by strict mapping");
                        }
                    }
                }
            }
            if !refused_once {
                self.telemetry.refused(Reason::Invalid, invalid);
            }
            let events = batch.len();
            if events == 0 {
                break Ok(0);
            }
            let wait = match self.sink.accept(batch).await {
                Ok(_) => {
                    self.telemetry.received(events, mapping_errors);
                    if refused_once && self.paused.swap(false, Ordering::Relaxed) {
                        tracing::info!(receiver = %self.telemetry.receiver(), "pipeline accepting again: syslog reading resumed");
                    }
                    break Ok(events);
                }
                Err(Refusal::ShuttingDown) => break Err(NotQueued(events)),
                Err(Refusal::Full { retry_after }) => {
                    if !refused_once {
                        self.telemetry.refused(Reason::Backpressure, events);
                        if !self.paused.swap(true, Ordering::Relaxed) {
                            tracing::info!(receiver = %self.telemetry.receiver(), events, "pipeline full: syslog reading paused, batch held until it is queued");
                        }
                    }
                    retry_after.min(MAX_RETRY_WAIT)
                }
                Err(Refusal::Failed(reason)) => {
                    if !refused_once {
                        self.telemetry.refused(Reason::QueueFailed, events);
                    }
                    tracing::warn!(receiver = %self.telemetry.receiver(), events, %reason, "the pipeline could not queue a batch; offering it again");
                    FAILED_RETRY
                }
            };
            refused_once = true;
            if shutdown.is_cancelled() {
                // One last offer was made after shutdown began; what it did not queue is lost.
                break Err(NotQueued(events));
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => {}
            }
        };
        pending.clear();
        result
    }
}
