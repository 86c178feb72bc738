//! The delivery layer every exporter shares.
//!
//! ```text
//! pipeline ──push──▶ DeliveryQueue ──pop (batch policy, request limits)──▶ worker × concurrency
//!                                                          │ Sink::send (exporter-specific)
//!                        delivered ◀───────────────────────┤
//!                        retry with backoff (only the failed events) ◀─┤
//!                        dead-letter file (permanent / past max_elapsed_time) ◀─┘
//! ```
//! Events leave a queue only on a final outcome: delivered or dead-lettered.

pub mod assemble;
pub mod auth;
pub mod completion;
pub mod config;
pub mod dead_letter;
pub mod disk_queue;
pub mod endpoint;
pub mod exporter;
pub mod factory;
pub mod http;
pub mod memory_queue;
pub mod pack;
pub mod queue;
pub mod retry;
pub mod signing;
pub mod status;

pub use config::{BatchPolicy, DeliveryConfig, QueueConfig, RetryConfig, SendingConfig};
pub use exporter::{ExporterHandle, ExporterShutdown, TestReport, test_delivery};
pub use queue::{DeliveryQueue, QueueDepth, QueueError, Reservation};
pub use status::{DeliveryRecord, ExporterState, ExporterStatus, RestoredStatus, StatusSnapshot};

use async_trait::async_trait;
use siemrelay_core::Event;
use std::sync::Arc;
use std::time::Duration;

/// How much one request to a SIEM may carry. The delivery layer hands a sink chunks within
/// these limits (bytes by estimate); the sink splits further if its exact encoding is larger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Maximum events per request.
    pub max_events: usize,
    /// Maximum encoded (uncompressed) bytes per request.
    pub max_bytes: usize,
}

/// The final or temporary outcome for one event (or a whole request).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The SIEM accepted it.
    Delivered,
    /// A temporary failure: send again later (after `after`, when the SIEM said so).
    Retry {
        /// Why, for logs, status and the dead-letter file.
        reason: Arc<str>,
        /// A delay the SIEM asked for (Retry-After).
        after: Option<Duration>,
    },
    /// A failure that resending will not fix: dead-letter it.
    Permanent {
        /// Why, for logs, status and the dead-letter file.
        reason: Arc<str>,
    },
}

impl Outcome {
    /// A retryable outcome without a requested delay.
    pub fn retry(reason: impl Into<Arc<str>>) -> Outcome {
        Outcome::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    /// A permanent outcome.
    pub fn permanent(reason: impl Into<Arc<str>>) -> Outcome {
        Outcome::Permanent {
            reason: reason.into(),
        }
    }

    /// Why it failed; `None` when delivered.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Delivered => None,
            Outcome::Retry { reason, .. } | Outcome::Permanent { reason } => Some(reason),
        }
    }
}

/// Outcomes for the events of one `Sink::send` call.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcomes {
    /// Every event had the same outcome.
    Uniform(Outcome),
    /// One outcome per event, in the order the events were given.
    PerEvent(Vec<Outcome>),
}

impl Outcomes {
    /// The outcome of event `index`; `None` when a per-event list is too short (a sink bug,
    /// which the delivery layer treats as a failure: never as delivered).
    pub fn get(&self, index: usize) -> Option<&Outcome> {
        match self {
            Outcomes::Uniform(outcome) => Some(outcome),
            Outcomes::PerEvent(list) => list.get(index),
        }
    }

    /// Checks that there is an outcome for each of `events` events.
    pub fn check(&self, events: usize) -> Result<(), MissingOutcomes> {
        match self {
            Outcomes::PerEvent(list) if list.len() != events => Err(MissingOutcomes {
                reported: list.len(),
                events,
            }),
            _ => Ok(()),
        }
    }
}

/// A sink reported a different number of outcomes than it was given events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the exporter reported {reported} outcomes for {events} events (a bug in the exporter): the events without an outcome are sent again"
)]
pub struct MissingOutcomes {
    /// Outcomes reported.
    pub reported: usize,
    /// Events sent.
    pub events: usize,
}

/// The outcomes of a send's events, filled in as its requests finish. Every event starts out
/// delivered; a per-event list is made only once one differs.
#[derive(Debug)]
pub struct OutcomeSheet {
    len: usize,
    list: Vec<Outcome>,
}

impl OutcomeSheet {
    /// A sheet for `len` events, all delivered.
    pub fn new(len: usize) -> OutcomeSheet {
        OutcomeSheet {
            len,
            list: Vec::new(),
        }
    }

    /// Sets the outcome of event `index`.
    pub fn set(&mut self, index: usize, outcome: Outcome) {
        if self.list.is_empty() {
            if outcome == Outcome::Delivered {
                return;
            }
            self.list.resize(self.len, Outcome::Delivered);
        }
        if let Some(slot) = self.list.get_mut(index) {
            *slot = outcome;
        }
    }

    /// Sets one outcome for the events at `indices`.
    pub fn set_all(&mut self, indices: &[usize], outcome: &Outcome) {
        for index in indices {
            self.set(*index, outcome.clone());
        }
    }

    /// The outcome of event `index` so far.
    pub fn get(&self, index: usize) -> &Outcome {
        self.list.get(index).unwrap_or(&Outcome::Delivered)
    }

    /// The outcomes: uniform while every event is delivered.
    pub fn finish(self) -> Outcomes {
        if self.list.is_empty() {
            Outcomes::Uniform(Outcome::Delivered)
        } else {
            Outcomes::PerEvent(self.list)
        }
    }
}

/// How one request ended, for status, history and the `siemrelay_exporter_requests_total`
/// metric's `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    /// Every event of the request was accepted.
    Delivered,
    /// Some events were accepted, others refused.
    Partial,
    /// Nothing was accepted and (some of) the events are to be sent again.
    Retry,
    /// Nothing was accepted and nothing will be sent again.
    Permanent,
}

impl RequestOutcome {
    /// Every value, for metrics registered at 0.
    pub const ALL: [RequestOutcome; 4] = [
        RequestOutcome::Delivered,
        RequestOutcome::Partial,
        RequestOutcome::Retry,
        RequestOutcome::Permanent,
    ];

    /// The word in metrics, status and history.
    pub fn name(self) -> &'static str {
        match self {
            RequestOutcome::Delivered => "delivered",
            RequestOutcome::Partial => "partial",
            RequestOutcome::Retry => "retry",
            RequestOutcome::Permanent => "permanent",
        }
    }

    /// True when the SIEM accepted at least part of the request.
    pub fn accepted(self) -> bool {
        matches!(self, RequestOutcome::Delivered | RequestOutcome::Partial)
    }

    /// The outcome of a request from the outcomes of its events: delivered when all were,
    /// partial when some were, else retry when any is to be retried, else permanent.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> RequestOutcome {
        let (mut delivered, mut retry, mut failed) = (false, false, false);
        for outcome in outcomes {
            match outcome {
                Outcome::Delivered => delivered = true,
                Outcome::Retry { .. } => (retry, failed) = (true, true),
                Outcome::Permanent { .. } => failed = true,
            }
        }
        match (delivered, failed) {
            (_, false) => RequestOutcome::Delivered,
            (true, true) => RequestOutcome::Partial,
            (false, true) if retry => RequestOutcome::Retry,
            (false, true) => RequestOutcome::Permanent,
        }
    }
}

/// What one HTTP (or other) request of a `send` call did, for status and delivery history.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestRecord {
    /// Events in the request.
    pub events: usize,
    /// Bytes on the wire (after compression).
    pub bytes: usize,
    /// HTTP status, when there was a response.
    pub http_status: Option<u16>,
    /// The SIEM's reply (truncated) or the transport error.
    pub reply: Option<String>,
    /// Time from sending to the reply.
    pub latency: Duration,
    /// How the request ended; `None`: worked out from the outcomes of the send's events.
    pub outcome: Option<RequestOutcome>,
    /// The SIEM's error code, when its reply names one (AWS `__type`), for hints.
    pub error_code: Option<String>,
}

/// The result of `Sink::send`: per-event outcomes and what each request did.
#[derive(Clone, Debug)]
pub struct SendReport {
    /// Outcome per event.
    pub outcomes: Outcomes,
    /// One record per request made.
    pub requests: Vec<RequestRecord>,
}

impl SendReport {
    /// A report with one outcome for all events and the given request records.
    pub fn uniform(outcome: Outcome, requests: Vec<RequestRecord>) -> SendReport {
        SendReport {
            outcomes: Outcomes::Uniform(outcome),
            requests,
        }
    }
}

/// What an exporter implements: encode events, send them, classify the replies.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Per-request limits of this SIEM.
    fn limits(&self) -> RequestLimits;

    /// Sends `events` (within `limits` by estimate) and reports an outcome per event.
    async fn send(&self, events: &[Event]) -> SendReport;

    /// Requests in flight at once when `sending.concurrency` is not set.
    fn default_concurrency(&self) -> usize {
        4
    }

    /// True when the sink times out each of its requests itself (`sending.timeout` per
    /// request): the delivery layer then does not cut a whole `send` short, which may make many
    /// requests (splitting on 413). False: the whole `send` gets `sending.timeout`.
    fn times_out_requests(&self) -> bool {
        false
    }

    /// Checks, without sending events, whether the SIEM answers again: used for a `failed`
    /// exporter whose queue is empty (with events queued, the next delivery is the probe).
    /// `None` when the sink has no such check; `Some(Err(reason))` while the SIEM is still
    /// unreachable or failing.
    async fn probe(&self) -> Option<Result<(), String>> {
        None
    }

    /// A hint for a failed `siemrelay test` (bad token, unknown index, unreachable …).
    fn hint(&self, record: &RequestRecord) -> Option<String> {
        default_hint(record)
    }
}

/// Generic hints from the HTTP status of a failed request.
pub fn default_hint(record: &RequestRecord) -> Option<String> {
    match record.http_status {
        None => Some(
            "the endpoint is unreachable: check the host, port, TLS settings and firewall".into(),
        ),
        Some(401) | Some(403) => Some("authentication failed: check the token or API key".into()),
        Some(404) => {
            Some("not found: check the endpoint URL and path (index, stream or rule id)".into())
        }
        Some(413) => Some("request too large for the SIEM: lower the batch size".into()),
        Some(429) => Some("the SIEM is throttling: lower the rate or raise its quota".into()),
        Some(status) if status >= 500 => {
            Some("the SIEM reported a server error: it may be down or overloaded".into())
        }
        _ => None,
    }
}
