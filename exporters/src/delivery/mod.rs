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
pub mod schema;
pub mod signing;
pub mod status;

pub use config::{BatchPolicy, DeliveryConfig, QueueConfig, RetryConfig, SendingConfig};
pub use exporter::{ExporterHandle, ExporterShutdown, TestReport, test_delivery};
pub use queue::{DeliveryQueue, QueueDepth, QueueError, Reservation};
pub use schema::Schema;
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

    /// One outcome per event, collapsed to `Uniform(Delivered)` when every event was delivered.
    pub fn from_list(list: Vec<Outcome>) -> Outcomes {
        if list.iter().all(|o| *o == Outcome::Delivered) {
            Outcomes::Uniform(Outcome::Delivered)
        } else {
            Outcomes::PerEvent(list)
        }
    }

    /// Gives every delivered event `outcome` instead (a delivery that was taken back); the
    /// others keep theirs.
    pub fn replace_delivered(&mut self, outcome: &Outcome) {
        match self {
            Outcomes::Uniform(current) => {
                if *current == Outcome::Delivered {
                    *current = outcome.clone();
                }
            }
            Outcomes::PerEvent(list) => {
                for slot in list.iter_mut().filter(|o| **o == Outcome::Delivered) {
                    *slot = outcome.clone();
                }
            }
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

    /// A sheet for `len` events that all start out as `outcome` (an exporter whose events are
    /// only delivered once each is confirmed starts them as a retry, so that an event it never
    /// gets to is never counted as delivered).
    pub fn filled(len: usize, outcome: Outcome) -> OutcomeSheet {
        let list = if outcome == Outcome::Delivered || len == 0 {
            Vec::new()
        } else {
            vec![outcome; len]
        };
        OutcomeSheet { len, list }
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

    /// Sets `outcome` for every event from `start` on.
    pub fn set_from(&mut self, start: usize, outcome: &Outcome) {
        for index in start..self.len {
            self.set(index, outcome.clone());
        }
    }

    /// The outcome of event `index` so far.
    pub fn get(&self, index: usize) -> &Outcome {
        self.list.get(index).unwrap_or(&Outcome::Delivered)
    }

    /// The number of events on the sheet.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a sheet of no events.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every event's outcome so far, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Outcome> {
        (0..self.len).map(|index| self.get(index))
    }

    /// The reason of the first event that failed, if any did.
    pub fn first_reason(&self) -> Option<&str> {
        self.list.iter().find_map(Outcome::reason)
    }

    /// The outcomes: uniform when every event is delivered.
    pub fn finish(self) -> Outcomes {
        Outcomes::from_list(self.list)
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
        let (mut delivered, mut retried, mut dead) = (0, 0, 0);
        for outcome in outcomes {
            match outcome {
                Outcome::Delivered => delivered += 1,
                Outcome::Retry { .. } => retried += 1,
                Outcome::Permanent { .. } => dead += 1,
            }
        }
        RequestOutcome::from_counts(delivered, retried, dead)
    }

    /// The same judgement from counts: `delivered`, `retried` and `dead` (permanent) events.
    pub fn from_counts(delivered: usize, retried: usize, dead: usize) -> RequestOutcome {
        if retried == 0 && dead == 0 {
            RequestOutcome::Delivered
        } else if delivered > 0 {
            RequestOutcome::Partial
        } else if retried > 0 {
            RequestOutcome::Retry
        } else {
            RequestOutcome::Permanent
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

impl SendReport {
    /// Takes back the send's deliveries (a confirmation that never came): its delivered events
    /// get `outcome`, and each request `affected` picks is judged by `outcome`, with its reason
    /// as the request's reply.
    pub fn revoke_delivered(
        &mut self,
        outcome: Outcome,
        affected: impl Fn(&RequestRecord) -> bool,
    ) {
        self.outcomes.replace_delivered(&outcome);
        let judged = RequestOutcome::of([&outcome]);
        for record in self.requests.iter_mut().filter(|r| affected(r)) {
            record.outcome = Some(judged);
            record.reply = outcome.reason().map(str::to_string);
        }
    }
}

/// Why a probe of a `failed` exporter's SIEM (or output) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The SIEM answered, with a status that means it is not serving yet (408, 429, 5xx).
    #[error("the SIEM answered HTTP {0} to a probe")]
    Status(u16),
    /// No answer within the exporter's `sending.timeout`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The probe could not be made or reached nothing: the transport's, the credentials' or
    /// the output's own error.
    #[error("{0}")]
    Failed(String),
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
    async fn probe(&self) -> Option<Result<(), ProbeError>> {
        None
    }

    /// A hint for a failed `siemrelay test` (bad token, unknown index, unreachable …).
    fn hint(&self, record: &RequestRecord) -> Option<String> {
        default_hint(record)
    }

    /// Something an operator should know about the sink's one-time work that does not fail
    /// deliveries (an index template it left alone); shown in the exporter's status `notice`.
    fn notice(&self) -> Option<String> {
        None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_sheet_never_counts_an_untouched_event_as_delivered() {
        let mut sheet = OutcomeSheet::filled(3, Outcome::retry("not sent"));
        sheet.set(0, Outcome::Delivered);
        sheet.set(2, Outcome::Delivered);
        assert_eq!(sheet.first_reason(), Some("not sent"));
        assert_eq!(RequestOutcome::of(sheet.iter()), RequestOutcome::Partial);
        assert_eq!(sheet.finish().get(1), Some(&Outcome::retry("not sent")));

        let mut all = OutcomeSheet::filled(2, Outcome::retry("not sent"));
        all.set_from(0, &Outcome::Delivered);
        assert_eq!(all.finish(), Outcomes::Uniform(Outcome::Delivered));
    }

    #[test]
    fn counts_and_outcomes_are_judged_alike() {
        let d = Outcome::Delivered;
        let r = Outcome::retry("r");
        let p = Outcome::permanent("p");
        for case in [
            vec![],
            vec![&d],
            vec![&d, &r],
            vec![&d, &p],
            vec![&r, &p],
            vec![&p],
            vec![&r],
        ] {
            let count = |want: fn(&Outcome) -> bool| case.iter().filter(|o| want(o)).count();
            let by_counts = RequestOutcome::from_counts(
                count(|o| matches!(o, Outcome::Delivered)),
                count(|o| matches!(o, Outcome::Retry { .. })),
                count(|o| matches!(o, Outcome::Permanent { .. })),
            );
            assert_eq!(
                RequestOutcome::of(case.iter().copied()),
                by_counts,
                "{case:?}"
            );
        }
        assert_eq!(RequestOutcome::of([&r, &p]), RequestOutcome::Retry);
        assert_eq!(RequestOutcome::of([&d, &p]), RequestOutcome::Partial);
    }

    #[test]
    fn revoking_turns_only_delivered_events_and_the_picked_requests() {
        let mut report = SendReport {
            outcomes: Outcomes::Uniform(Outcome::Delivered),
            requests: vec![
                RequestRecord {
                    http_status: Some(200),
                    ..Default::default()
                },
                RequestRecord {
                    http_status: Some(503),
                    outcome: Some(RequestOutcome::Retry),
                    reply: Some("busy".into()),
                    ..Default::default()
                },
            ],
        };
        report.revoke_delivered(Outcome::retry("unconfirmed"), |r| {
            r.http_status == Some(200)
        });
        assert_eq!(
            report.outcomes,
            Outcomes::Uniform(Outcome::retry("unconfirmed"))
        );
        assert_eq!(report.requests[0].outcome, Some(RequestOutcome::Retry));
        assert_eq!(report.requests[0].reply.as_deref(), Some("unconfirmed"));
        assert_eq!(report.requests[1].reply.as_deref(), Some("busy"));

        let mut failed = Outcomes::Uniform(Outcome::permanent("bad"));
        failed.replace_delivered(&Outcome::retry("x"));
        assert_eq!(failed, Outcomes::Uniform(Outcome::permanent("bad")));
    }
}
