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

pub mod completion;
pub mod config;
pub mod dead_letter;
pub mod disk_queue;
pub mod exporter;
pub mod http;
pub mod memory_queue;
pub mod pack;
pub mod queue;
pub mod retry;
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
    /// The outcome of event `index`.
    pub fn get(&self, index: usize) -> &Outcome {
        match self {
            Outcomes::Uniform(outcome) => outcome,
            Outcomes::PerEvent(list) => list.get(index).unwrap_or(&Outcome::Delivered),
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
    /// `delivered`, `partial`, `retry` or `permanent` ("" = derive from the outcomes).
    pub outcome: &'static str,
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
