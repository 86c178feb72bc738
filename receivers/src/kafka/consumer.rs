//! The consume loop: fill a batch, hand it to the pipeline, commit its offsets only after every
//! exporter finished its events (`commit: after_delivery`, see [`super::commit`]) or after the
//! pipeline accepted it (`commit: after_queue`). While the pipeline refuses (`Refusal::Full`), the
//! assigned partitions are paused and the same batch is offered again after `retry_after`; the
//! consumer keeps polling meanwhile, so it stays in the group. Partitions revoked by a rebalance
//! take their uncommitted messages with them: the new owner reads them again.

use super::batch::{RawBatch, offset_list};
use super::commit::DeliveryTracker;
use rdkafka::ClientContext;
use rdkafka::TopicPartitionList;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::message::Message;
use siemrelay_core::component::{EventSink, Refusal};
use siemrelay_core::ingest::IngestOptions;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Events received (per accepted batch).
pub const EVENTS_RECEIVED: &str = "siemrelay_receiver_events_received_total";
/// Messages that were not JSON objects (became `parse_error` events).
pub const PARSE_ERRORS: &str = "siemrelay_receiver_parse_errors_total";
/// Fields that did not fit their well-known slot.
pub const MAPPING_ERRORS: &str = "siemrelay_receiver_mapping_errors_total";
/// Batches the pipeline refused (offered again later).
pub const BATCHES_REFUSED: &str = "siemrelay_receiver_batches_refused_total";
/// Messages dropped from memory because their partition was revoked (re-read by the new owner).
pub const REVOKED_MESSAGES: &str = "siemrelay_receiver_revoked_messages_total";
/// Offset commits the broker did not confirm.
pub const COMMIT_FAILURES: &str = "siemrelay_receiver_commit_failures_total";
/// Messages handed to the pipelines whose offsets are not committed yet (`after_delivery`).
pub const UNCOMMITTED: &str = "siemrelay_receiver_uncommitted_events";
/// Times consumption paused because `max_uncommitted_events` was reached.
pub const UNCOMMITTED_PAUSES: &str = "siemrelay_receiver_uncommitted_pauses_total";

/// Longest wait at shutdown for deliveries in flight to finish, so their offsets are
/// committed (what is not finished by then is read again after the restart).
const SHUTDOWN_COMMIT_WAIT: Duration = Duration::from_secs(10);

/// Delay before offering a batch again after `Refusal::Failed`.
const FAILED_RETRY: Duration = Duration::from_secs(1);
/// Least time between two logs of the same consumer error.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Rebalance and commit callbacks, shared between librdkafka's callbacks and the loop.
pub struct GroupContext {
    id: String,
    /// True while a refused batch is held: partitions assigned meanwhile are paused at once.
    holding: AtomicBool,
    /// Bumped on every revocation, so the loop notices cheaply.
    revocations: AtomicU64,
    /// Partitions revoked since the loop last pruned its batch.
    revoked: Mutex<Vec<(String, i32)>>,
}

impl GroupContext {
    /// A context for receiver `id`.
    pub fn new(id: &str) -> GroupContext {
        GroupContext {
            id: id.to_string(),
            holding: AtomicBool::new(false),
            revocations: AtomicU64::new(0),
            revoked: Mutex::new(Vec::new()),
        }
    }

    fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(receiver = %self.id, facility = %facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(receiver = %self.id, facility = %facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(receiver = %self.id, facility = %facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(receiver = %self.id, facility = %facility, "librdkafka: {message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(receiver = %self.id, error = %error, "kafka consumer: {reason}");
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let gone: Vec<(String, i32)> = list
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            tracing::info!(receiver = %self.id, partitions = %describe(&gone), "kafka partitions revoked");
            self.revoked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(gone);
            self.revocations.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let got: Vec<(String, i32)> = list
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                tracing::info!(receiver = %self.id, partitions = %describe(&got), "kafka partitions assigned");
                if self.holding.load(Ordering::SeqCst)
                    && let Err(e) = consumer.pause(list)
                {
                    tracing::warn!(receiver = %self.id, error = %e, "cannot pause newly assigned partitions");
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(receiver = %self.id, error = %e, "kafka rebalance failed")
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            metrics::counter!(COMMIT_FAILURES, "receiver" => self.id.clone()).increment(1);
            tracing::warn!(receiver = %self.id, error = %e, partitions = offsets.count(),
                "offset commit failed; those messages may be delivered again");
        }
    }
}

fn describe(partitions: &[(String, i32)]) -> String {
    partitions
        .iter()
        .map(|(topic, partition)| format!("{topic}[{partition}]"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The consumer type the receiver runs.
pub type GroupConsumer = StreamConsumer<GroupContext>;

/// Everything the loop needs.
pub struct Consume {
    /// Receiver id, for logs and metrics.
    pub id: String,
    /// The subscribed consumer.
    pub consumer: Arc<GroupConsumer>,
    /// Where batches go.
    pub sink: Arc<dyn EventSink>,
    /// Message → event options.
    pub options: IngestOptions,
    /// Most messages per batch.
    pub max_events: usize,
    /// Longest wait to fill a batch after its first message.
    pub max_wait: Duration,
    /// `commit: after_delivery`: which offsets are finished everywhere. `None`: commit once
    /// accepted (`after_queue`).
    pub tracker: Option<Arc<DeliveryTracker>>,
    /// With a tracker: most messages handed over and not committed before partitions pause.
    pub max_uncommitted: usize,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
}

/// How a hand-over ended.
enum HandOver {
    /// The pipeline accepted it; its offsets may be committed.
    Accepted,
    /// Every message of the batch was revoked while waiting.
    Revoked,
    /// Shutting down; the batch stays uncommitted and is read again later.
    Shutdown,
}

impl Consume {
    /// Runs until shutdown, then commits what was accepted and leaves the group.
    pub async fn run(self) {
        let mut batch = RawBatch::default();
        let mut seen_revocations = self.context().revocations.load(Ordering::SeqCst);
        let mut errors = ErrorLog::default();
        loop {
            if !self
                .fill(&mut batch, &mut seen_revocations, &mut errors)
                .await
            {
                break;
            }
            if batch.is_empty() {
                continue;
            }
            if !self
                .wait_for_room(&mut batch, &mut seen_revocations, &mut errors)
                .await
            {
                break;
            }
            if batch.is_empty() {
                continue;
            }
            match self
                .hand_over(&mut batch, &mut seen_revocations, &mut errors)
                .await
            {
                HandOver::Accepted if self.tracker.is_none() => {
                    self.commit(batch.offsets_to_commit())
                }
                HandOver::Accepted => self.commit_finished(),
                HandOver::Revoked => {}
                HandOver::Shutdown => break,
            }
            batch.clear();
        }
        self.finish_deliveries().await;
        self.close().await;
    }

    /// Waits until a tracked batch finished; never returns without a tracker.
    async fn delivery_finished(&self) {
        match &self.tracker {
            Some(tracker) => tracker.finished().await,
            None => std::future::pending().await,
        }
    }

    /// Commits what every exporter finished since the last commit (`after_delivery`).
    fn commit_finished(&self) {
        let Some(tracker) = &self.tracker else {
            return;
        };
        let commits = tracker.take_commits();
        metrics::gauge!(UNCOMMITTED, "receiver" => self.id.clone())
            .set(tracker.uncommitted() as f64);
        if !commits.is_empty() {
            self.commit(offset_list(commits));
        }
    }

    /// True while handing over `incoming` more messages would pass `max_uncommitted_events`
    /// (a batch is always taken when nothing is outstanding).
    fn over_bound(&self, incoming: usize) -> bool {
        self.tracker.as_ref().is_some_and(|tracker| {
            let outstanding = tracker.uncommitted();
            outstanding > 0 && outstanding + incoming > self.max_uncommitted
        })
    }

    /// At `max_uncommitted_events`, pauses the partitions (as for backpressure) and keeps
    /// polling and committing until deliveries made room. Returns false at shutdown.
    async fn wait_for_room(
        &self,
        batch: &mut RawBatch,
        seen: &mut u64,
        errors: &mut ErrorLog,
    ) -> bool {
        if !self.over_bound(batch.len()) {
            return true;
        }
        self.pause_all();
        metrics::counter!(UNCOMMITTED_PAUSES, "receiver" => self.id.clone()).increment(1);
        tracing::info!(receiver = %self.id, max_uncommitted_events = self.max_uncommitted,
            "max_uncommitted_events reached: partitions paused until deliveries finish");
        let room = loop {
            self.commit_finished();
            if !self.over_bound(batch.len()) || batch.is_empty() {
                break true;
            }
            tokio::select! {
                result = self.consumer.recv() => self.hold(result, batch, seen, errors),
                _ = self.delivery_finished() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => self.prune(batch, seen),
                _ = self.shutdown.cancelled() => break false,
            }
        };
        self.resume_all();
        room
    }

    /// At shutdown (`after_delivery`): while the exporters still deliver, waits a little for
    /// the batches in flight to finish and commits them, so a restart re-reads less.
    async fn finish_deliveries(&self) {
        let Some(tracker) = &self.tracker else {
            return;
        };
        let deadline = tokio::time::Instant::now() + SHUTDOWN_COMMIT_WAIT;
        loop {
            self.commit_finished();
            if tracker.uncommitted() == 0 {
                return;
            }
            tokio::select! {
                _ = tracker.finished() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::info!(receiver = %self.id, events = tracker.uncommitted(),
                        "shutdown: events still being delivered stay uncommitted and are read again after the restart");
                    return;
                }
            }
        }
    }

    fn context(&self) -> &GroupContext {
        self.consumer.context()
    }

    /// Drops messages of partitions revoked since the last look.
    fn prune(&self, batch: &mut RawBatch, seen: &mut u64) {
        let now = self.context().revocations.load(Ordering::SeqCst);
        if now == *seen {
            return;
        }
        *seen = now;
        let revoked = self.context().take_revoked();
        if let Some(tracker) = &self.tracker {
            tracker.revoke(&revoked);
        }
        let dropped = batch.retain_partitions(|topic, partition| {
            !revoked.iter().any(|(t, p)| t == topic && *p == partition)
        });
        if dropped > 0 {
            metrics::counter!(REVOKED_MESSAGES, "receiver" => self.id.clone())
                .increment(dropped as u64);
            tracing::info!(receiver = %self.id, messages = dropped,
                "dropped uncommitted messages of revoked partitions; their new owner reads them again");
        }
    }

    /// Takes one consumer result: prunes first (a message returned after a revocation belongs to
    /// the new assignment), then keeps the message.
    fn take(
        &self,
        result: Result<BorrowedMessage<'_>, KafkaError>,
        batch: &mut RawBatch,
        seen: &mut u64,
        errors: &mut ErrorLog,
    ) -> Option<(String, i32)> {
        self.prune(batch, seen);
        match result {
            Ok(message) => {
                batch.push(&message);
                Some((message.topic().to_string(), message.partition()))
            }
            Err(e) => {
                errors.log(&self.id, &e);
                None
            }
        }
    }

    /// Waits for a first message, then collects up to `max_events` or until `max_wait` passed.
    /// Returns false at shutdown.
    async fn fill(&self, batch: &mut RawBatch, seen: &mut u64, errors: &mut ErrorLog) -> bool {
        loop {
            tokio::select! {
                result = self.consumer.recv() => {
                    self.take(result, batch, seen, errors);
                    if !batch.is_empty() {
                        break;
                    }
                }
                _ = self.delivery_finished() => self.commit_finished(),
                _ = self.shutdown.cancelled() => return false,
            }
        }
        let deadline = tokio::time::Instant::now() + self.max_wait;
        while batch.len() < self.max_events {
            tokio::select! {
                result = self.consumer.recv() => { self.take(result, batch, seen, errors); }
                _ = self.delivery_finished() => self.commit_finished(),
                _ = tokio::time::sleep_until(deadline) => break,
                _ = self.shutdown.cancelled() => return false,
            }
        }
        self.prune(batch, seen);
        true
    }

    /// Offers the batch until the pipeline accepts it, pausing the partitions while it refuses.
    async fn hand_over(
        &self,
        batch: &mut RawBatch,
        seen: &mut u64,
        errors: &mut ErrorLog,
    ) -> HandOver {
        let mut paused = false;
        let outcome = loop {
            let mut decoded = batch.decode(&self.options);
            let (events, malformed, mapping_errors) = (
                decoded.events.len(),
                decoded.malformed,
                decoded.mapping_errors,
            );
            let tracked = self.tracker.as_ref().map(|tracker| {
                let (id, token) = tracker.begin(&batch.spans());
                for event in decoded.events.iter_mut() {
                    event.completion = Some(token.clone());
                }
                id
            });
            let result = self.sink.accept(decoded.events).await;
            if result.is_err()
                && let (Some(tracker), Some(id)) = (&self.tracker, tracked)
            {
                tracker.cancel(id);
            }
            let retry_after = match result {
                Ok(_) => {
                    self.count(events, malformed, mapping_errors);
                    break HandOver::Accepted;
                }
                Err(Refusal::ShuttingDown) => break HandOver::Shutdown,
                Err(Refusal::Full { retry_after }) => retry_after,
                Err(Refusal::Failed(reason)) => {
                    tracing::error!(receiver = %self.id, events, reason = %reason, "the pipeline could not queue a batch; offering it again");
                    FAILED_RETRY
                }
            };
            metrics::counter!(BATCHES_REFUSED, "receiver" => self.id.clone()).increment(1);
            if !paused {
                paused = true;
                self.pause_all();
                tracing::info!(receiver = %self.id, events, retry_after_ms = retry_after.as_millis() as u64,
                    "pipeline full: partitions paused, batch held");
            }
            if !self.wait_paused(retry_after, batch, seen, errors).await {
                break HandOver::Shutdown;
            }
            if batch.is_empty() {
                break HandOver::Revoked;
            }
        };
        if paused {
            self.resume_all();
        }
        outcome
    }

    /// Sleeps `delay` while still polling (group membership, rebalances). A message that still
    /// arrives (prefetched, or of a partition assigned in between) joins the held batch and its
    /// partition is paused. Returns false at shutdown.
    async fn wait_paused(
        &self,
        delay: Duration,
        batch: &mut RawBatch,
        seen: &mut u64,
        errors: &mut ErrorLog,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                result = self.consumer.recv() => self.hold(result, batch, seen, errors),
                _ = self.delivery_finished() => self.commit_finished(),
                _ = tokio::time::sleep_until(deadline) => {
                    self.prune(batch, seen);
                    return true;
                }
                _ = self.shutdown.cancelled() => return false,
            }
        }
    }

    /// Takes a message that arrived while paused into the held batch and pauses its partition.
    fn hold(
        &self,
        result: Result<BorrowedMessage<'_>, KafkaError>,
        batch: &mut RawBatch,
        seen: &mut u64,
        errors: &mut ErrorLog,
    ) {
        if let Some((topic, partition)) = self.take(result, batch, seen, errors) {
            let mut list = TopicPartitionList::new();
            list.add_partition(&topic, partition);
            if let Err(e) = self.consumer.pause(&list) {
                tracing::warn!(receiver = %self.id, error = %e, "cannot pause {topic}[{partition}]");
            }
        }
    }

    fn pause_all(&self) {
        self.context().holding.store(true, Ordering::SeqCst);
        match self.consumer.assignment() {
            Ok(list) => {
                if let Err(e) = self.consumer.pause(&list) {
                    tracing::warn!(receiver = %self.id, error = %e, "cannot pause partitions");
                }
            }
            Err(e) => {
                tracing::warn!(receiver = %self.id, error = %e, "cannot read the assignment to pause it")
            }
        }
    }

    fn resume_all(&self) {
        self.context().holding.store(false, Ordering::SeqCst);
        match self.consumer.assignment() {
            Ok(list) => {
                if let Err(e) = self.consumer.resume(&list) {
                    tracing::warn!(receiver = %self.id, error = %e, "cannot resume partitions");
                }
            }
            Err(e) => {
                tracing::warn!(receiver = %self.id, error = %e, "cannot read the assignment to resume it")
            }
        }
        tracing::info!(receiver = %self.id, "pipeline accepting again: partitions resumed");
    }

    fn count(&self, events: usize, malformed: usize, mapping_errors: usize) {
        metrics::counter!(EVENTS_RECEIVED, "receiver" => self.id.clone()).increment(events as u64);
        if malformed > 0 {
            metrics::counter!(PARSE_ERRORS, "receiver" => self.id.clone())
                .increment(malformed as u64);
            tracing::warn!(receiver = %self.id, messages = malformed,
                "messages that are not JSON objects were received as malformed_message events");
        }
        if mapping_errors > 0 {
            metrics::counter!(MAPPING_ERRORS, "receiver" => self.id.clone())
                .increment(mapping_errors as u64);
        }
    }

    /// Stores offsets and commits them (asynchronously: a lost commit only means those
    /// messages are read again).
    fn commit(&self, offsets: TopicPartitionList) {
        if let Err(e) = self.consumer.store_offsets(&offsets) {
            tracing::warn!(receiver = %self.id, error = %e, "cannot store offsets; those messages may be delivered again");
            return;
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Async) {
            metrics::counter!(COMMIT_FAILURES, "receiver" => self.id.clone()).increment(1);
            tracing::warn!(receiver = %self.id, error = %e, "offset commit failed; those messages may be delivered again");
        }
    }

    /// Commits the stored offsets synchronously and leaves the group (off the async threads:
    /// both block).
    async fn close(self) {
        let Consume { id, consumer, .. } = self;
        let closing = tokio::task::spawn_blocking(move || {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                // Nothing stored since the last commit.
                Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => {
                    tracing::warn!(receiver = %id, error = %e, "final offset commit failed; the last batches may be delivered again")
                }
            }
            consumer.unsubscribe();
            drop(consumer);
            id
        });
        if let Ok(id) = closing.await {
            tracing::info!(receiver = %id, "kafka consumer closed");
        }
    }
}

/// Logs consumer errors, the same one at most every 30 seconds.
#[derive(Default)]
struct ErrorLog {
    last: Option<(String, Instant)>,
}

impl ErrorLog {
    fn log(&mut self, id: &str, error: &KafkaError) {
        let text = error.to_string();
        let repeat = self
            .last
            .as_ref()
            .is_some_and(|(last, at)| *last == text && at.elapsed() < ERROR_LOG_INTERVAL);
        if !repeat {
            tracing::warn!(receiver = %id, error = %text, "kafka consumer error");
            self.last = Some((text, Instant::now()));
        }
    }
}
