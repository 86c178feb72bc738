//! Per-exporter status (`active` / `degraded` / `failed` / `disabled`) with the reason when it is
//! not `active`, counters and a bounded delivery history. Updated once per request or delivery,
//! never per event.
//!
//! # How the state is decided
//! - `disabled`: switched off by an operator.
//! - `failed`: a delivery ran out of retries (`retry.max_elapsed_time`); one probe goes out every
//!   `retry.max_interval` (a real delivery, or [`crate::delivery::Sink::probe`] when the queue is
//!   empty) until one succeeds.
//! - `degraded`, with the first reason that applies:
//!   1. the queue refuses new events for lack of disk space (or a storage error);
//!   2. deliveries are failing and being retried (the last request asked for a retry);
//!   3. the disk queue found a loss when it opened, not yet acknowledged by an operator;
//!   4. more than [`DEAD_LETTER_RATIO`] of the events that reached a final outcome in the last
//!      [`DEAD_LETTER_WINDOW`] deliveries were dead-lettered (refused permanently by the SIEM).
//! - `active` otherwise.

use super::RequestOutcome;
use super::disk_queue::losses::LossEntry;
use serde::Serialize;
use siemrelay_core::Timestamp;
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many requests the delivery history keeps per exporter.
pub const HISTORY_LEN: usize = 100;

/// Deliveries (one batch's attempt: one or more requests) the dead-letter rule looks back on.
pub const DEAD_LETTER_WINDOW: usize = 20;

/// Above this share of dead-lettered events (of those delivered or dead-lettered in the window)
/// the exporter is `degraded`.
pub const DEAD_LETTER_RATIO: f64 = 0.5;

/// The health of an exporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExporterState {
    /// Delivering.
    Active,
    /// Delivering with trouble: retrying, refusing intake for lack of disk space, an
    /// unacknowledged queue loss, or most events refused permanently (see `reason`).
    Degraded,
    /// Retries exhausted; events keep queueing and one probe request goes out every
    /// `retry.max_interval` until one succeeds.
    Failed,
    /// Switched off by an operator; events keep queueing.
    Disabled,
}

impl ExporterState {
    /// The gauge value: 0 active, 1 degraded, 2 failed, 3 disabled.
    pub fn gauge(self) -> f64 {
        match self {
            ExporterState::Active => 0.0,
            ExporterState::Degraded => 1.0,
            ExporterState::Failed => 2.0,
            ExporterState::Disabled => 3.0,
        }
    }

    /// The word operators see.
    pub fn name(self) -> &'static str {
        match self {
            ExporterState::Active => "active",
            ExporterState::Degraded => "degraded",
            ExporterState::Failed => "failed",
            ExporterState::Disabled => "disabled",
        }
    }
}

/// One request in the delivery history.
#[derive(Clone, Debug, Serialize)]
pub struct DeliveryRecord {
    /// When the reply came (RFC 3339).
    pub time: String,
    /// Events in the request.
    pub events: usize,
    /// Bytes on the wire.
    pub bytes: usize,
    /// `delivered`, `partial`, `retry` or `permanent`.
    pub outcome: RequestOutcome,
    /// HTTP status, if any.
    pub http_status: Option<u16>,
    /// Error text, if any.
    pub error: Option<String>,
    /// Milliseconds from send to reply.
    pub latency_ms: u64,
    /// Attempt number of these events (1 = first try).
    pub attempt: u32,
}

/// A point-in-time copy of an exporter's status.
#[derive(Clone, Debug, Serialize)]
pub struct StatusSnapshot {
    /// Current state.
    pub state: ExporterState,
    /// Why the state is not `active` (`None` when it is).
    pub reason: Option<String>,
    /// Failed requests since start (requests, not events).
    pub failure_count: u64,
    /// Last error text.
    pub last_error: Option<String>,
    /// When the last error happened (RFC 3339).
    pub last_error_at: Option<String>,
    /// False once a successful delivery (or probe) came after the last error: the error is
    /// past.
    pub last_error_current: bool,
    /// Last successful delivery (RFC 3339).
    pub last_success: Option<String>,
    /// Events delivered since start.
    pub events_sent: u64,
    /// Events dead-lettered since start.
    pub events_dead_lettered: u64,
    /// Events whose delivery failed temporarily and was retried, since start (an event retried
    /// three times counts three).
    pub events_retried: u64,
    /// Share of the events that reached a final outcome in the last [`DEAD_LETTER_WINDOW`]
    /// deliveries that were dead-lettered (0 when none did).
    pub recent_dead_letter_ratio: f64,
    /// Losses the disk queue found when it opened that no operator acknowledged yet.
    pub queue_losses: Vec<LossEntry>,
    /// Something an operator should know that does not change the state (a disk queue whose
    /// volume cannot hold its `max_size`).
    pub notice: Option<String>,
}

/// What a previous run left of an exporter's status, put back at start (the runtime keeps it in
/// its state file): whether an operator disabled it, its last success and last error, and its
/// delivery history. Counters are not part of it: they restart at zero, as Prometheus expects.
#[derive(Clone, Debug, Default)]
pub struct RestoredStatus {
    /// Disabled by an operator.
    pub disabled: bool,
    /// Last successful delivery.
    pub last_success: Option<Timestamp>,
    /// Last error text (scrubbed again on restore).
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<Timestamp>,
    /// No success came after the last error.
    pub last_error_current: bool,
    /// The delivery history, oldest first (only the newest [`HISTORY_LEN`] are kept).
    pub history: Vec<DeliveryRecord>,
}

struct Inner {
    /// The state shown (derived from the fields below).
    state: ExporterState,
    reason: Option<String>,
    disabled: bool,
    failed: bool,
    retrying: bool,
    intake_refused: Option<String>,
    queue_losses: Vec<LossEntry>,
    notice: Option<String>,
    /// What the sink reported about its one-time work (a template left alone).
    sink_notice: Option<String>,
    /// (delivered, dead-lettered) events of the last deliveries.
    window: VecDeque<(u64, u64)>,
    window_delivered: u64,
    window_dead: u64,
    last_permanent: Option<String>,
    failure_count: u64,
    last_error: Option<String>,
    last_error_at: Option<Timestamp>,
    last_error_current: bool,
    last_success: Option<Timestamp>,
    events_sent: u64,
    events_dead_lettered: u64,
    events_retried: u64,
    history: VecDeque<DeliveryRecord>,
}

impl Inner {
    fn dead_ratio(&self) -> f64 {
        let total = self.window_delivered + self.window_dead;
        if total == 0 {
            0.0
        } else {
            self.window_dead as f64 / total as f64
        }
    }

    /// The state and its reason, from the conditions.
    fn derive(&self) -> (ExporterState, Option<String>) {
        let error = || self.last_error.clone().unwrap_or_default();
        if self.disabled {
            return (
                ExporterState::Disabled,
                Some("disabled by an operator; events keep queueing".into()),
            );
        }
        if self.failed {
            return (
                ExporterState::Failed,
                Some(format!(
                    "retries exhausted; probing every retry.max_interval: {}",
                    error()
                )),
            );
        }
        let ratio = self.dead_ratio();
        let reason = if let Some(refused) = &self.intake_refused {
            Some(refused.clone())
        } else if self.retrying {
            Some(format!(
                "deliveries are failing and being retried: {}",
                error()
            ))
        } else if !self.queue_losses.is_empty() {
            let events: Option<u64> = self.queue_losses.iter().map(|l| l.loss.events).sum();
            Some(format!(
                "the disk queue found {} loss(es) ({} events) when it opened; acknowledge with \
                 POST /api/v1/exporters/<id>/acknowledge-losses or restart with \
                 --acknowledge-queue-losses: {}",
                self.queue_losses.len(),
                events.map_or_else(|| "unknown number of".to_string(), |n| n.to_string()),
                self.queue_losses[0].loss.describe()
            ))
        } else if ratio > DEAD_LETTER_RATIO {
            Some(format!(
                "{} of the last {} events with a final outcome were dead-lettered (refused \
                 permanently): {}",
                self.window_dead,
                self.window_dead + self.window_delivered,
                self.last_permanent.as_deref().unwrap_or("")
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => (ExporterState::Degraded, Some(reason)),
            None => (ExporterState::Active, None),
        }
    }
}

/// Shared, updatable status of one exporter.
pub struct ExporterStatus {
    id: String,
    inner: Mutex<Inner>,
}

impl ExporterStatus {
    /// A new, active exporter status.
    pub fn new(id: &str) -> ExporterStatus {
        let status = ExporterStatus {
            id: id.to_string(),
            inner: Mutex::new(Inner {
                state: ExporterState::Active,
                reason: None,
                disabled: false,
                failed: false,
                retrying: false,
                intake_refused: None,
                queue_losses: Vec::new(),
                notice: None,
                sink_notice: None,
                window: VecDeque::with_capacity(DEAD_LETTER_WINDOW),
                window_delivered: 0,
                window_dead: 0,
                last_permanent: None,
                failure_count: 0,
                last_error: None,
                last_error_at: None,
                last_error_current: false,
                last_success: None,
                events_sent: 0,
                events_dead_lettered: 0,
                events_retried: 0,
                history: VecDeque::with_capacity(HISTORY_LEN),
            }),
        };
        metrics::gauge!("siemrelay_exporter_status", "exporter" => status.id.clone())
            .set(ExporterState::Active.gauge());
        metrics::gauge!("siemrelay_exporter_dead_letter_ratio", "exporter" => status.id.clone())
            .set(0.0);
        status
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-derives the state; logs and sets the gauge when it changed.
    fn update(&self, inner: &mut Inner) {
        let (to, reason) = inner.derive();
        let from = inner.state;
        let changed = from != to;
        inner.state = to;
        inner.reason = reason;
        if !changed {
            return;
        }
        let reason = inner.reason.as_deref().unwrap_or("");
        let (id, from) = (&self.id, from.name());
        match to {
            ExporterState::Active => tracing::info!(exporter = %id, from, "exporter is active"),
            ExporterState::Degraded => {
                tracing::warn!(exporter = %id, from, reason, "exporter is degraded")
            }
            ExporterState::Failed => tracing::error!(
                exporter = %id, from, reason,
                "exporter failed: retries exhausted; events keep queueing, probing every retry.max_interval"),
            ExporterState::Disabled => {
                tracing::warn!(exporter = %id, from, "exporter disabled; events keep queueing")
            }
        }
        metrics::gauge!("siemrelay_exporter_status", "exporter" => self.id.clone()).set(to.gauge());
    }

    /// Keeps the last error, scrubbed of secrets (a SIEM may echo the request's credentials).
    fn error(inner: &mut Inner, error: &str) {
        inner.last_error = Some(siemrelay_core::scrub::scrub(error).into_owned());
        inner.last_error_at = Some(Timestamp::now());
        inner.last_error_current = true;
    }

    fn success(inner: &mut Inner) {
        inner.last_success = Some(Timestamp::now());
        inner.last_error_current = false;
        inner.retrying = false;
        inner.failed = false;
    }

    /// Records a request and moves the state according to its outcome (its error text scrubbed
    /// of secrets: a SIEM may echo the request's credentials).
    pub fn record(&self, mut record: DeliveryRecord) {
        record.error = record.error.map(siemrelay_core::scrub::scrub_owned);
        let mut inner = self.lock();
        let ok = record.outcome.accepted();
        if !ok {
            inner.failure_count += 1;
        }
        if let Some(error) = &record.error {
            Self::error(&mut inner, error);
        }
        if ok {
            Self::success(&mut inner);
        } else if record.outcome == RequestOutcome::Retry {
            inner.retrying = true;
        }
        if inner.history.len() == HISTORY_LEN {
            inner.history.pop_front();
        }
        inner.history.push_back(record);
        self.update(&mut inner);
    }

    /// Adds the event outcomes of one delivery: delivered, dead-lettered (refused permanently)
    /// and retried events. Feeds the dead-letter rule.
    pub fn record_counts(
        &self,
        delivered: usize,
        dead: usize,
        retried: usize,
        permanent_reason: Option<&str>,
    ) {
        let mut inner = self.lock();
        inner.events_sent += delivered as u64;
        inner.events_retried += retried as u64;
        if let Some(reason) = permanent_reason {
            inner.last_permanent = Some(reason.to_string());
        }
        if delivered + dead > 0 {
            if inner.window.len() == DEAD_LETTER_WINDOW
                && let Some((d, x)) = inner.window.pop_front()
            {
                inner.window_delivered -= d;
                inner.window_dead -= x;
            }
            inner.window.push_back((delivered as u64, dead as u64));
            inner.window_delivered += delivered as u64;
            inner.window_dead += dead as u64;
            metrics::gauge!("siemrelay_exporter_dead_letter_ratio", "exporter" => self.id.clone())
                .set(inner.dead_ratio());
        }
        self.update(&mut inner);
    }

    /// Counts dead-lettered events.
    pub fn dead_lettered(&self, events: usize) {
        self.lock().events_dead_lettered += events as u64;
    }

    /// Retries ran out: the exporter is `failed`.
    pub fn exhausted(&self, error: &str) {
        let mut inner = self.lock();
        Self::error(&mut inner, error);
        inner.failed = true;
        self.update(&mut inner);
    }

    /// A probe of a `failed` exporter with nothing queued: success makes it `active` again.
    pub fn probed(&self, result: Result<(), super::ProbeError>) {
        let mut inner = self.lock();
        match result {
            Ok(()) => {
                Self::success(&mut inner);
                tracing::info!(exporter = %self.id, "probe succeeded: the SIEM answers again");
            }
            Err(error) => {
                inner.failure_count += 1;
                Self::error(&mut inner, &format!("probe failed: {error}"));
            }
        }
        self.update(&mut inner);
    }

    /// Sets or clears why the queue refuses new events (disk space).
    pub fn set_intake_refused(&self, reason: Option<String>) {
        let mut inner = self.lock();
        inner.intake_refused = reason;
        self.update(&mut inner);
    }

    /// Sets the disk queue's unacknowledged losses.
    pub fn set_queue_losses(&self, losses: Vec<LossEntry>) {
        let mut inner = self.lock();
        inner.queue_losses = losses;
        self.update(&mut inner);
    }

    /// Sets or clears the notice (it does not change the state).
    pub fn set_queue_notice(&self, notice: Option<String>) {
        self.lock().notice = notice;
    }

    /// Sets or clears what the sink reports about its one-time work ([`super::Sink::notice`]),
    /// scrubbed of secrets; shown after the queue's notice; it does not change the state.
    pub fn set_sink_notice(&self, notice: Option<String>) {
        self.lock().sink_notice = notice.map(siemrelay_core::scrub::scrub_owned);
    }

    /// Switches the exporter off or back on (`failed` becomes `active` on enable).
    pub fn set_enabled(&self, enabled: bool) {
        let mut inner = self.lock();
        if enabled && inner.failed {
            // The operator asks for a fresh start: deliveries are tried again as if new.
            inner.failed = false;
            inner.retrying = false;
        }
        inner.disabled = !enabled;
        self.update(&mut inner);
    }

    /// Puts back what a previous run left (see [`RestoredStatus`]); meant for a status that has
    /// seen nothing yet.
    pub fn restore(&self, restored: RestoredStatus) {
        let mut inner = self.lock();
        inner.disabled = restored.disabled;
        inner.last_success = restored.last_success;
        inner.last_error = restored.last_error.map(siemrelay_core::scrub::scrub_owned);
        inner.last_error_at = restored.last_error_at;
        inner.last_error_current = restored.last_error_current && inner.last_error.is_some();
        let skip = restored.history.len().saturating_sub(HISTORY_LEN);
        inner.history = restored
            .history
            .into_iter()
            .skip(skip)
            .map(|mut record| {
                record.error = record.error.map(siemrelay_core::scrub::scrub_owned);
                record
            })
            .collect();
        self.update(&mut inner);
    }

    /// What a later run needs to restore this status (see [`RestoredStatus`]).
    pub fn to_restore(&self) -> RestoredStatus {
        let inner = self.lock();
        RestoredStatus {
            disabled: inner.disabled,
            last_success: inner.last_success,
            last_error: inner.last_error.clone(),
            last_error_at: inner.last_error_at,
            last_error_current: inner.last_error_current,
            history: inner.history.iter().cloned().collect(),
        }
    }

    /// The current state.
    pub fn state(&self) -> ExporterState {
        self.lock().state
    }

    /// A copy of the counters and state.
    pub fn snapshot(&self) -> StatusSnapshot {
        let inner = self.lock();
        StatusSnapshot {
            state: inner.state,
            reason: inner.reason.clone(),
            failure_count: inner.failure_count,
            last_error: inner.last_error.clone(),
            last_error_at: inner.last_error_at.map(|t| t.to_rfc3339()),
            last_error_current: inner.last_error_current,
            last_success: inner.last_success.map(|t| t.to_rfc3339()),
            events_sent: inner.events_sent,
            events_dead_lettered: inner.events_dead_lettered,
            events_retried: inner.events_retried,
            recent_dead_letter_ratio: inner.dead_ratio(),
            queue_losses: inner.queue_losses.clone(),
            notice: match (&inner.notice, &inner.sink_notice) {
                (Some(queue), Some(sink)) => Some(format!("{queue}; {sink}")),
                (queue, sink) => queue.clone().or_else(|| sink.clone()),
            },
        }
    }

    /// The recent delivery history, oldest first.
    pub fn history(&self) -> Vec<DeliveryRecord> {
        self.lock().history.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(outcome: &'static str, error: Option<&str>) -> DeliveryRecord {
        let outcome = RequestOutcome::ALL
            .into_iter()
            .find(|o| o.name() == outcome)
            .unwrap();
        DeliveryRecord {
            time: Timestamp::now().to_rfc3339(),
            events: 10,
            bytes: 100,
            outcome,
            http_status: Some(200),
            error: error.map(str::to_string),
            latency_ms: 1,
            attempt: 1,
        }
    }

    #[test]
    fn a_siem_that_refuses_every_event_makes_the_exporter_degraded_with_the_rate() {
        let status = ExporterStatus::new("t");
        for _ in 0..5 {
            status.record(request(
                "permanent",
                Some("HTTP 400, code 6: Invalid data format"),
            ));
            status.record_counts(0, 10, 0, Some("HTTP 400, code 6: Invalid data format"));
        }
        let snapshot = status.snapshot();
        assert_eq!(snapshot.state, ExporterState::Degraded);
        assert_eq!(snapshot.recent_dead_letter_ratio, 1.0);
        let reason = snapshot.reason.unwrap();
        assert!(
            reason.contains("50 of the last 50 events") && reason.contains("code 6"),
            "{reason}"
        );
        // Good deliveries push the refusals out of the window.
        for _ in 0..DEAD_LETTER_WINDOW {
            status.record(request("delivered", None));
            status.record_counts(10, 0, 0, None);
        }
        let snapshot = status.snapshot();
        assert_eq!(snapshot.state, ExporterState::Active, "{snapshot:?}");
        assert_eq!(snapshot.recent_dead_letter_ratio, 0.0);
        assert!(!snapshot.last_error_current, "the error is past");
        assert!(snapshot.last_error_at.is_some());
    }

    #[test]
    fn a_few_refused_events_among_many_keep_it_active() {
        let status = ExporterStatus::new("t");
        for _ in 0..DEAD_LETTER_WINDOW {
            status.record(request("partial", Some("HEC rejected this event")));
            status.record_counts(499, 1, 0, Some("HEC rejected this event"));
        }
        let snapshot = status.snapshot();
        assert_eq!(snapshot.state, ExporterState::Active);
        assert!(snapshot.recent_dead_letter_ratio < 0.01);
    }

    #[test]
    fn a_probe_ends_failed_and_marks_the_error_past() {
        let status = ExporterStatus::new("t");
        status.record(request("retry", Some("connection refused")));
        assert_eq!(status.state(), ExporterState::Degraded);
        status.exhausted("retries exhausted: connection refused");
        assert_eq!(status.state(), ExporterState::Failed);
        assert!(status.snapshot().last_error_current);
        status.probed(Err(super::super::ProbeError::Failed(
            "connection refused".into(),
        )));
        assert_eq!(status.state(), ExporterState::Failed);
        status.probed(Ok(()));
        let snapshot = status.snapshot();
        assert_eq!(snapshot.state, ExporterState::Active);
        assert!(!snapshot.last_error_current);
        assert_eq!(
            snapshot.last_error.as_deref(),
            Some("probe failed: connection refused")
        );
    }

    #[test]
    fn intake_refusal_and_disable_show_in_the_state() {
        let status = ExporterStatus::new("t");
        status.set_intake_refused(Some("intake refused: no space left".into()));
        let snapshot = status.snapshot();
        assert_eq!(snapshot.state, ExporterState::Degraded);
        assert_eq!(
            snapshot.reason.as_deref(),
            Some("intake refused: no space left")
        );
        status.set_enabled(false);
        assert_eq!(status.state(), ExporterState::Disabled);
        status.set_enabled(true);
        assert_eq!(status.state(), ExporterState::Degraded);
        status.set_intake_refused(None);
        assert_eq!(status.state(), ExporterState::Active);
    }

    #[test]
    fn a_restored_status_keeps_disabled_the_last_times_and_the_newest_history() {
        let before = ExporterStatus::new("t");
        for i in 0..HISTORY_LEN + 6 {
            let outcome = if i % 2 == 0 { "delivered" } else { "retry" };
            before.record(request(outcome, (i % 2 == 1).then_some("HTTP 503")));
        }
        before.set_enabled(false);
        let mut saved = before.to_restore();
        assert!(saved.disabled);
        assert_eq!(saved.history.len(), HISTORY_LEN);
        saved.history.insert(0, request("delivered", None));

        let after = ExporterStatus::new("t");
        after.restore(saved.clone());
        let snapshot = after.snapshot();
        assert_eq!(snapshot.state, ExporterState::Disabled);
        assert_eq!(snapshot.last_success, before.snapshot().last_success);
        assert_eq!(snapshot.last_error.as_deref(), Some("HTTP 503"));
        assert!(
            snapshot.last_error_current,
            "no success came after the last error"
        );
        assert_eq!(snapshot.failure_count, 0, "counters restart at zero");
        let history = after.history();
        assert_eq!(history.len(), HISTORY_LEN, "only the newest are kept");
        assert_eq!(
            history.last().map(|r| r.time.clone()),
            saved.history.last().map(|r| r.time.clone())
        );
        after.set_enabled(true);
        assert_eq!(after.state(), ExporterState::Active);
    }
}
