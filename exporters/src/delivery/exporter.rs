//! A running exporter: its queue, its delivery workers, its dead-letter file and its status.

use super::config::{BatchPolicy, DeliveryConfig};
use super::dead_letter::DeadLetter;
use super::queue::{Chunk, DeliveryQueue, PopLimits, QueueError};
use super::retry::Backoff;
use super::status::{DeliveryRecord, ExporterState, ExporterStatus, RestoredStatus};
use super::{
    MissingOutcomes, Outcome, ProbeError, RequestLimits, RequestOutcome, RequestRecord, SendReport,
    Sink, default_hint,
};
use siemrelay_core::{Event, Severity, Timestamp};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Shared {
    id: String,
    sink: Arc<dyn Sink>,
    queue: Arc<dyn DeliveryQueue>,
    dead_letter: DeadLetter,
    status: Arc<ExporterStatus>,
    timeout: Duration,
    max_elapsed: Duration,
    backoff: Backoff,
    pop_limits: PopLimits,
    enabled: watch::Sender<bool>,
    /// Cancelled when the shutdown timeout has passed: stop retrying now.
    abort: CancellationToken,
    /// While `failed`, only the holder of this lock sends (one probe at a time).
    probe: tokio::sync::Mutex<()>,
}

/// A running exporter.
pub struct ExporterHandle {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    prober: JoinHandle<()>,
}

/// What happened to an exporter's events at shutdown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExporterShutdown {
    /// True when every queued event was handled before the deadline.
    pub drained: bool,
    /// Events written to the dead-letter file because the deadline passed (memory queues).
    pub dead_lettered: usize,
    /// Events left in a durable queue for the next start.
    pub left_queued: usize,
}

impl ExporterHandle {
    /// Starts `config.sending.concurrency` delivery workers draining `queue` into `sink`.
    pub fn start(
        id: &str,
        sink: Arc<dyn Sink>,
        config: &DeliveryConfig,
        batch: BatchPolicy,
        queue: Arc<dyn DeliveryQueue>,
        dead_letter: DeadLetter,
    ) -> ExporterHandle {
        Self::start_restored(
            id,
            sink,
            config,
            batch,
            queue,
            dead_letter,
            RestoredStatus::default(),
        )
    }

    /// Like [`ExporterHandle::start`], with the status a previous run left: an exporter restored
    /// as disabled sends nothing, not even what its disk queue holds, until it is enabled.
    pub fn start_restored(
        id: &str,
        sink: Arc<dyn Sink>,
        config: &DeliveryConfig,
        batch: BatchPolicy,
        queue: Arc<dyn DeliveryQueue>,
        dead_letter: DeadLetter,
        restored: RestoredStatus,
    ) -> ExporterHandle {
        let pop_limits = pop_limits(batch, sink.limits(), config.queue.max_events);
        register_metrics(id);
        let enabled = !restored.disabled;
        let status = Arc::new(ExporterStatus::new(id));
        status.restore(restored);
        queue.attach(status.clone());
        let shared = Arc::new(Shared {
            id: id.to_string(),
            sink,
            queue,
            dead_letter,
            status,
            timeout: config.sending.timeout.0,
            max_elapsed: config.max_elapsed_time(),
            backoff: Backoff {
                initial: config.retry.initial_interval.0,
                max: config.retry.max_interval.0,
            },
            pop_limits,
            enabled: watch::Sender::new(enabled),
            abort: CancellationToken::new(),
            probe: tokio::sync::Mutex::new(()),
        });
        let concurrency = config
            .sending
            .concurrency
            .unwrap_or_else(|| shared.sink.default_concurrency());
        let workers = (0..concurrency.max(1))
            .map(|_| {
                let shared = shared.clone();
                tokio::spawn(async move { shared.work().await })
            })
            .collect();
        let prober = tokio::spawn(shared.clone().probe_while_failed());
        ExporterHandle {
            shared,
            workers: Mutex::new(workers),
            prober,
        }
    }

    /// The exporter's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The queue the pipelines push into.
    pub fn queue(&self) -> &Arc<dyn DeliveryQueue> {
        &self.shared.queue
    }

    /// Status, counters and delivery history.
    pub fn status(&self) -> &ExporterStatus {
        &self.shared.status
    }

    /// The dead-letter file.
    pub fn dead_letter(&self) -> &DeadLetter {
        &self.shared.dead_letter
    }

    /// The sink, for test deliveries.
    pub fn sink(&self) -> &Arc<dyn Sink> {
        &self.shared.sink
    }

    /// Marks the losses the disk queue found at open as acknowledged by an operator; returns
    /// how many were not yet.
    pub fn acknowledge_losses(&self) -> Result<usize, QueueError> {
        self.shared.queue.acknowledge_losses()
    }

    /// Disables (events keep queueing) or re-enables the exporter.
    pub fn set_enabled(&self, enabled: bool) {
        self.shared.status.set_enabled(enabled);
        self.shared.enabled.send_replace(enabled);
    }

    /// Stops taking events, delivers what is queued until `deadline`, then gives up: a memory
    /// queue's leftovers go to the dead-letter file, a disk queue keeps them for the next start.
    pub async fn shutdown(&self, deadline: Instant) -> ExporterShutdown {
        let shared = &self.shared;
        self.prober.abort();
        shared.queue.close();
        // A disabled exporter is enabled for the drain: closing must not strand events in memory.
        if !shared.queue.is_durable() {
            shared.enabled.send_replace(true);
        }
        let workers: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        let all_done = futures_join_all(workers);
        tokio::pin!(all_done);
        let drained = tokio::time::timeout_at(deadline.into(), &mut all_done)
            .await
            .is_ok();
        let mut report = ExporterShutdown {
            drained,
            ..Default::default()
        };
        if !drained {
            shared.abort.cancel();
            all_done.await;
            if shared.queue.is_durable() {
                report.left_queued = shared.queue.depth().events;
            } else {
                let remaining = shared.queue.take_remaining();
                report.dead_lettered = remaining.len();
                shared
                    .dead_letter_events(
                        &remaining,
                        "siemrelay shut down before this event could be delivered",
                        0,
                    )
                    .await;
            }
        }
        report
    }
}

impl Drop for ExporterHandle {
    fn drop(&mut self) {
        self.prober.abort();
    }
}

/// Every counter an alert may watch exists at 0 from the start (an `increase(…) > 0` alert then
/// sees the first incident), with every `outcome` of the request counter.
fn register_metrics(id: &str) {
    for name in [
        "siemrelay_exporter_events_sent_total",
        "siemrelay_exporter_events_failed_total",
        "siemrelay_exporter_events_retried_total",
        "siemrelay_exporter_events_dead_lettered_total",
        "siemrelay_exporter_events_dropped_total",
    ] {
        metrics::counter!(name, "exporter" => id.to_string()).increment(0);
    }
    for outcome in RequestOutcome::ALL {
        metrics::counter!("siemrelay_exporter_requests_total", "exporter" => id.to_string(), "outcome" => outcome.name())
            .increment(0);
    }
    metrics::describe_gauge!(
        "siemrelay_exporter_dead_letter_ratio",
        "Share of the events with a final outcome in the last 20 deliveries that were dead-lettered"
    );
    metrics::describe_gauge!(
        "siemrelay_exporter_queue_intake_refused",
        "1 while the exporter's queue refuses new events because its storage fails (disk full)"
    );
    metrics::describe_counter!(
        "siemrelay_exporter_queue_losses_total",
        "Losses (missing sequence numbers) a disk queue found when it opened"
    );
    metrics::describe_counter!(
        "siemrelay_exporter_queue_records_lost_total",
        "Records a disk queue found lost when it opened (where countable)"
    );
    metrics::describe_counter!(
        "siemrelay_exporter_queue_events_lost_total",
        "Events a disk queue found lost when it opened (where countable)"
    );
}

async fn futures_join_all(handles: Vec<JoinHandle<()>>) {
    for handle in handles {
        if let Err(e) = handle.await {
            tracing::error!(error = %e, "delivery worker ended abnormally");
        }
    }
}

impl Shared {
    /// A `failed` exporter with an empty queue has no delivery to probe with: ask the sink to
    /// probe the SIEM every `retry.max_interval`, so the state follows a recovered SIEM
    /// without waiting for new events.
    async fn probe_while_failed(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.backoff.max) => {}
                _ = self.abort.cancelled() => return,
            }
            let idle = self.queue.depth().events == 0;
            if self.status.state() != ExporterState::Failed || !idle || !*self.enabled.borrow() {
                continue;
            }
            let Ok(_turn) = self.probe.try_lock() else {
                continue;
            };
            let result = tokio::time::timeout(self.timeout, self.sink.probe()).await;
            match result {
                Ok(Some(result)) => self.status.probed(result),
                Ok(None) => {}
                Err(_) => self.status.probed(Err(ProbeError::Timeout(self.timeout))),
            }
        }
    }

    async fn work(self: Arc<Self>) {
        loop {
            if !self.wait_until_enabled().await {
                return;
            }
            let chunk = tokio::select! {
                chunk = self.queue.pop(self.pop_limits) => chunk,
                _ = self.abort.cancelled() => return,
            };
            let Some(chunk) = chunk else { return };
            let receipt = chunk.receipt.clone();
            if self.deliver(chunk).await {
                self.queue.complete(receipt);
            }
            self.report_queue_depth();
        }
    }

    /// Waits while disabled. Returns false when aborted.
    async fn wait_until_enabled(&self) -> bool {
        let mut enabled = self.enabled.subscribe();
        tokio::select! {
            result = enabled.wait_for(|on| *on) => result.is_ok(),
            _ = self.abort.cancelled() => false,
        }
    }

    fn report_queue_depth(&self) {
        let depth = self.queue.depth();
        metrics::gauge!("siemrelay_exporter_queue_events", "exporter" => self.id.clone())
            .set(depth.events as f64);
        metrics::gauge!("siemrelay_exporter_queue_bytes", "exporter" => self.id.clone())
            .set(depth.bytes as f64);
    }

    /// Delivers a chunk until every event has a final outcome. Returns false if aborted first
    /// (the chunk then stays in a durable queue, or was dead-lettered from a memory queue).
    async fn deliver(&self, chunk: Chunk) -> bool {
        let deadline = chunk
            .enqueued_at
            .0
            .saturating_add(self.max_elapsed.as_nanos() as i64);
        let mut pending = chunk.events;
        let mut attempt: u32 = 0;
        loop {
            if !self.wait_until_enabled().await {
                return self.abandon(pending).await;
            }
            // While failed, one probe at a time, spaced by max_interval.
            let probe_guard = if self.status.state() == ExporterState::Failed {
                tokio::select! {
                    guard = self.probe.lock() => Some(guard),
                    _ = self.abort.cancelled() => return self.abandon(pending).await,
                }
            } else {
                None
            };
            attempt += 1;
            let started = Instant::now();
            // A sink that times out each of its requests (HTTP) is not cut off as a whole: a
            // send that splits on 413 makes many requests.
            let limit = if self.sink.times_out_requests() {
                Duration::MAX
            } else {
                self.timeout
            };
            let report = tokio::select! {
                report = timeout_or_not(limit, self.sink.send(&pending)) => report.unwrap_or_else(|_| {
                    SendReport::uniform(
                        Outcome::retry(format!("request timed out after {:?}", self.timeout)),
                        vec![RequestRecord { events: pending.len(), latency: started.elapsed(), reply: Some("timeout".into()), ..Default::default() }],
                    )
                }),
                _ = self.abort.cancelled() => return self.abandon(pending).await,
            };
            self.status.set_sink_notice(self.sink.notice());
            let (retry, retry_after, retry_reason) = self.settle(pending, report, attempt).await;
            if retry.is_empty() {
                return true;
            }
            if Timestamp::now().0 >= deadline {
                let reason = format!(
                    "retries exhausted after {attempt} attempts over {}: {retry_reason}",
                    short_duration(self.max_elapsed)
                );
                self.status.exhausted(&reason);
                self.dead_letter_events(&retry, &reason, attempt).await;
                return true;
            }
            let delay = if probe_guard.is_some() || self.status.state() == ExporterState::Failed {
                retry_after
                    .unwrap_or(self.backoff.max)
                    .max(self.backoff.max)
            } else {
                self.backoff.delay(attempt - 1, retry_after)
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.abort.cancelled() => return self.abandon(retry).await,
            }
            drop(probe_guard);
            pending = retry;
        }
    }

    /// Sorts a send's events into delivered, to-retry and dead-lettered, and records the requests.
    async fn settle(
        &self,
        pending: Vec<Event>,
        report: SendReport,
        attempt: u32,
    ) -> (Vec<Event>, Option<Duration>, String) {
        let total = pending.len();
        let mut retry = Vec::new();
        let mut retry_after: Option<Duration> = None;
        let mut retry_reason = String::new();
        let mut permanent: Vec<(Arc<str>, Vec<Event>)> = Vec::new();
        let mut delivered = 0usize;
        let missing = report.outcomes.check(total).err().map(|problem| {
            tracing::error!(exporter = %self.id, error = %problem, "an exporter reported too few or too many outcomes");
            Outcome::retry(problem.to_string())
        });
        for (index, event) in pending.into_iter().enumerate() {
            let outcome = report.outcomes.get(index).or(missing.as_ref());
            match outcome.unwrap_or(&Outcome::Delivered) {
                Outcome::Delivered => delivered += 1,
                Outcome::Retry { reason, after } => {
                    if retry_reason.is_empty() {
                        retry_reason = reason.to_string();
                    }
                    if let Some(after) = after {
                        retry_after = Some(retry_after.map_or(*after, |a| a.max(*after)));
                    }
                    retry.push(event);
                }
                Outcome::Permanent { reason } => {
                    match permanent.iter_mut().find(|(r, _)| r == reason) {
                        Some((_, events)) => events.push(event),
                        None => permanent.push((reason.clone(), vec![event])),
                    }
                }
            }
        }
        let dead = total - delivered - retry.len();
        let overall = RequestOutcome::from_counts(delivered, retry.len(), dead);
        let first_error = if !retry_reason.is_empty() {
            Some(retry_reason.clone())
        } else {
            permanent.first().map(|(r, _)| r.to_string())
        };
        let records = if report.requests.is_empty() {
            vec![RequestRecord {
                events: total,
                ..Default::default()
            }]
        } else {
            report.requests
        };
        let single = records.len() == 1;
        for record in records {
            let outcome = record.outcome.unwrap_or(overall);
            let error = if outcome == RequestOutcome::Delivered {
                None
            } else if single || record.reply.is_none() {
                first_error.clone()
            } else {
                record.reply.clone()
            };
            metrics::counter!("siemrelay_exporter_requests_total", "exporter" => self.id.clone(), "outcome" => outcome.name())
                .increment(1);
            metrics::histogram!("siemrelay_exporter_request_duration_seconds", "exporter" => self.id.clone())
                .record(record.latency.as_secs_f64());
            self.status.record(DeliveryRecord {
                time: Timestamp::now().to_rfc3339(),
                events: record.events,
                bytes: record.bytes,
                outcome,
                http_status: record.http_status,
                error,
                latency_ms: record.latency.as_millis() as u64,
                attempt,
            });
        }
        self.status.record_counts(
            delivered,
            dead,
            retry.len(),
            permanent.first().map(|(reason, _)| &**reason),
        );
        metrics::counter!("siemrelay_exporter_events_sent_total", "exporter" => self.id.clone())
            .increment(delivered as u64);
        if !retry.is_empty() {
            metrics::counter!("siemrelay_exporter_events_retried_total", "exporter" => self.id.clone())
                .increment(retry.len() as u64);
        }
        if !permanent.is_empty() {
            let entries: Vec<(&Event, &str)> = permanent
                .iter()
                .flat_map(|(reason, events)| events.iter().map(move |e| (e, &**reason)))
                .collect();
            metrics::counter!("siemrelay_exporter_events_failed_total", "exporter" => self.id.clone())
                .increment(entries.len() as u64);
            self.dead_letter_entries(&entries, attempt).await;
        }
        (retry, retry_after, retry_reason)
    }

    /// Gives up on a chunk at the shutdown deadline. Memory queues dead-letter it; durable queues
    /// keep it (it was never completed, so it is delivered after the restart).
    async fn abandon(&self, pending: Vec<Event>) -> bool {
        if !self.queue.is_durable() {
            self.dead_letter_events(
                &pending,
                "siemrelay shut down before this event could be delivered",
                0,
            )
            .await;
        }
        false
    }

    /// Dead-letters events that share one reason.
    async fn dead_letter_events(&self, events: &[Event], reason: &str, attempts: u32) {
        let entries: Vec<(&Event, &str)> = events.iter().map(|e| (e, reason)).collect();
        self.dead_letter_entries(&entries, attempts).await;
    }

    /// Writes events with their own reasons to the dead-letter file in one write, retrying
    /// until it works (a full disk is waited out, with a loud log, rather than losing events)
    /// or the shutdown deadline has passed.
    async fn dead_letter_entries(&self, entries: &[(&Event, &str)], attempts: u32) {
        if entries.is_empty() {
            return;
        }
        loop {
            match self.dead_letter.write_each(entries, attempts) {
                Ok(()) => {
                    self.status.dead_lettered(entries.len());
                    tracing::warn!(exporter = %self.id, events = entries.len(), reason = entries[0].1, file = %self.dead_letter.path().display(), "events dead-lettered");
                    return;
                }
                Err(e) => {
                    tracing::error!(exporter = %self.id, events = entries.len(), error = %e, file = %self.dead_letter.path().display(), "cannot write the dead-letter file; retrying");
                    if self.abort.is_cancelled() {
                        tracing::error!(exporter = %self.id, events = entries.len(), "events LOST: shutdown deadline passed and the dead-letter file cannot be written");
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// `tokio::time::timeout`, or no timeout at all for `Duration::MAX`.
async fn timeout_or_not<F: std::future::Future>(
    limit: Duration,
    future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    if limit == Duration::MAX {
        Ok(future.await)
    } else {
        tokio::time::timeout(limit, future).await
    }
}

fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else if secs > 0 {
        format!("{secs}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The result of a synthetic `test_connection` delivery.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TestReport {
    /// True when the SIEM accepted the event.
    pub ok: bool,
    /// `delivered`, `retry` or `permanent`.
    pub outcome: String,
    /// HTTP status, if there was a reply.
    pub http_status: Option<u16>,
    /// The SIEM's reply or the transport error.
    pub reply: Option<String>,
    /// Round-trip time in milliseconds.
    pub latency_ms: u64,
    /// What to check, on failure.
    pub hint: Option<String>,
    /// The id of the synthetic event.
    pub event_id: String,
}

/// Sends one synthetic `test_connection` event straight through a sink (no queue, no retry).
pub async fn test_delivery(sink: &dyn Sink, timeout: Duration) -> TestReport {
    let mut event = Event::new("test_connection");
    event.severity = Severity::from_name("info").unwrap_or_default();
    event.source = Some("siemrelay".into());
    event.summary = Some("siemrelay test delivery".into());
    let started = Instant::now();
    let report = tokio::time::timeout(timeout, sink.send(std::slice::from_ref(&event)))
        .await
        .unwrap_or_else(|_| {
            SendReport::uniform(
                Outcome::retry(format!("no reply within {timeout:?}")),
                vec![RequestRecord {
                    events: 1,
                    reply: Some(format!("no reply within {timeout:?}")),
                    ..Default::default()
                }],
            )
        });
    let record = report.requests.first().cloned().unwrap_or_default();
    let outcome = match report.outcomes.get(0) {
        Some(outcome) => outcome.clone(),
        None => Outcome::retry(
            MissingOutcomes {
                reported: 0,
                events: 1,
            }
            .to_string(),
        ),
    };
    let (ok, label, reason) = match &outcome {
        Outcome::Delivered => (true, "delivered", None),
        Outcome::Retry { reason, .. } => (false, "retry", Some(reason.to_string())),
        Outcome::Permanent { reason } => (false, "permanent", Some(reason.to_string())),
    };
    let hint = if ok {
        None
    } else {
        sink.hint(&record).or_else(|| default_hint(&record))
    };
    TestReport {
        ok,
        outcome: label.to_string(),
        http_status: record.http_status,
        reply: record.reply.or(reason),
        latency_ms: started.elapsed().as_millis() as u64,
        hint,
        event_id: event.event_id.to_string(),
    }
}

/// How workers take chunks from the queue: the batch policy within the SIEM's request limits.
/// A batch never waits for more events than half the queue holds: a queue smaller than
/// `send_batch_size` would otherwise fill up, refuse senders, and still wait for the linger.
fn pop_limits(batch: BatchPolicy, limits: RequestLimits, queue_max_events: usize) -> PopLimits {
    let max_events = match batch.max_events {
        0 => limits.max_events,
        n => n.min(limits.max_events),
    }
    .max(1);
    PopLimits {
        max_events,
        max_bytes: limits.max_bytes,
        min_events: batch
            .min_events
            .clamp(1, max_events)
            .min((queue_max_events / 2).max(1)),
        linger: batch.linger,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min_events: usize, max_events: usize) -> BatchPolicy {
        BatchPolicy {
            min_events,
            max_events,
            linger: std::time::Duration::from_millis(200),
        }
    }

    #[test]
    fn a_batch_never_waits_for_more_than_half_the_queue() {
        let siem = RequestLimits {
            max_events: 5000,
            max_bytes: 1 << 20,
        };
        // The default batch (8192) against a 1000-event queue: send at 500, not after the linger.
        let limits = pop_limits(policy(8192, 0), siem, 1000);
        assert_eq!((limits.min_events, limits.max_events), (500, 5000));
        // A roomy queue leaves the batch to the SIEM's limit and the configured sizes.
        let limits = pop_limits(policy(8192, 0), siem, 100_000);
        assert_eq!((limits.min_events, limits.max_events), (5000, 5000));
        let limits = pop_limits(policy(100, 300), siem, 100_000);
        assert_eq!((limits.min_events, limits.max_events), (100, 300));
        // Degenerate sizes still send.
        let limits = pop_limits(policy(0, 0), siem, 1);
        assert_eq!(limits.min_events, 1);
    }
}
