//! Per-exporter status (`active` / `degraded` / `failed` / `disabled`), counters and a bounded
//! delivery history. Updated once per request, never per event.

use serde::Serialize;
use siemrelay_core::Timestamp;
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many requests the delivery history keeps per exporter.
pub const HISTORY_LEN: usize = 100;

/// The health of an exporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExporterState {
    /// Delivering.
    Active,
    /// Failing and retrying.
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
    pub outcome: &'static str,
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
    /// Failed requests since start.
    pub failure_count: u64,
    /// Last error text.
    pub last_error: Option<String>,
    /// Last successful delivery (RFC 3339).
    pub last_success: Option<String>,
    /// Events delivered since start.
    pub events_sent: u64,
    /// Events dead-lettered since start.
    pub events_dead_lettered: u64,
    /// Event deliveries retried since start.
    pub events_retried: u64,
}

struct Inner {
    state: ExporterState,
    enabled_state: ExporterState,
    failure_count: u64,
    last_error: Option<String>,
    last_success: Option<Timestamp>,
    events_sent: u64,
    events_dead_lettered: u64,
    events_retried: u64,
    history: VecDeque<DeliveryRecord>,
}

/// Shared, updatable status of one exporter.
pub struct ExporterStatus {
    id: String,
    inner: Mutex<Inner>,
}

impl ExporterStatus {
    /// A new, active exporter status.
    pub fn new(id: &str) -> ExporterStatus {
        ExporterStatus {
            id: id.to_string(),
            inner: Mutex::new(Inner {
                state: ExporterState::Active,
                enabled_state: ExporterState::Active,
                failure_count: 0,
                last_error: None,
                last_success: None,
                events_sent: 0,
                events_dead_lettered: 0,
                events_retried: 0,
                history: VecDeque::with_capacity(HISTORY_LEN),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn transition(&self, inner: &mut Inner, to: ExporterState) {
        if inner.state == ExporterState::Disabled && to != ExporterState::Disabled {
            // Outcomes of requests that were in flight when disabled do not re-enable it.
            inner.enabled_state = to;
            return;
        }
        if inner.state != to {
            let from = inner.state;
            inner.state = to;
            match to {
                ExporterState::Active => {
                    tracing::info!(exporter = %self.id, ?from, "exporter is active")
                }
                ExporterState::Degraded => tracing::warn!(
                    exporter = %self.id, ?from, last_error = inner.last_error.as_deref().unwrap_or(""),
                    "exporter is degraded: deliveries are failing and being retried"),
                ExporterState::Failed => tracing::error!(
                    exporter = %self.id, ?from, last_error = inner.last_error.as_deref().unwrap_or(""),
                    "exporter failed: retries exhausted; events keep queueing, probing every retry.max_interval"),
                ExporterState::Disabled => {
                    tracing::warn!(exporter = %self.id, ?from, "exporter disabled; events keep queueing")
                }
            }
            metrics::gauge!("siemrelay_exporter_status", "exporter" => self.id.clone())
                .set(to.gauge());
        }
    }

    /// Records a request and moves the state according to its outcome (its error text scrubbed
    /// of secrets: a SIEM may echo the request's credentials).
    pub fn record(&self, mut record: DeliveryRecord) {
        record.error = record.error.map(siemrelay_core::scrub::scrub_owned);
        let mut inner = self.lock();
        let ok = record.outcome == "delivered" || record.outcome == "partial";
        if ok {
            inner.last_success = Some(Timestamp::now());
        } else {
            inner.failure_count += 1;
        }
        if let Some(error) = &record.error {
            inner.last_error = Some(error.clone());
        }
        let next = match record.outcome {
            "retry" => {
                if inner.state == ExporterState::Failed {
                    ExporterState::Failed
                } else {
                    ExporterState::Degraded
                }
            }
            _ if ok => ExporterState::Active,
            _ => inner.state,
        };
        if inner.history.len() == HISTORY_LEN {
            inner.history.pop_front();
        }
        inner.history.push_back(record);
        self.transition(&mut inner, next);
    }

    /// Adds delivered and retried event counts of one send.
    pub fn record_counts(&self, delivered: usize, retried: usize) {
        let mut inner = self.lock();
        inner.events_sent += delivered as u64;
        inner.events_retried += retried as u64;
    }

    /// Counts dead-lettered events.
    pub fn dead_lettered(&self, events: usize) {
        self.lock().events_dead_lettered += events as u64;
    }

    /// Retries ran out: the exporter is `failed`.
    pub fn exhausted(&self, error: &str) {
        let mut inner = self.lock();
        inner.last_error = Some(siemrelay_core::scrub::scrub(error).into_owned());
        self.transition(&mut inner, ExporterState::Failed);
    }

    /// Switches the exporter off or back on (`failed` becomes `active` on enable).
    pub fn set_enabled(&self, enabled: bool) {
        let mut inner = self.lock();
        if enabled {
            if inner.state == ExporterState::Disabled {
                inner.state = inner.enabled_state;
            }
            let to = if inner.state == ExporterState::Failed {
                ExporterState::Active
            } else {
                inner.state
            };
            self.transition(&mut inner, to);
        } else if inner.state != ExporterState::Disabled {
            inner.enabled_state = inner.state;
            self.transition(&mut inner, ExporterState::Disabled);
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
            failure_count: inner.failure_count,
            last_error: inner.last_error.clone(),
            last_success: inner.last_success.map(|t| t.to_rfc3339()),
            events_sent: inner.events_sent,
            events_dead_lettered: inner.events_dead_lettered,
            events_retried: inner.events_retried,
        }
    }

    /// The recent delivery history, oldest first.
    pub fn history(&self) -> Vec<DeliveryRecord> {
        self.lock().history.iter().cloned().collect()
    }
}
