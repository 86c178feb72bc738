//! What `deliver` returns: outcomes per batch or per event, and optional request records.

use std::time::Duration;

/// The outcome of one event or of a whole batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The SIEM accepted it.
    Delivered,
    /// A temporary failure: siemrelay sends it again later, with backoff.
    Retry {
        /// Why (logs, status, dead-letter file).
        reason: String,
        /// A delay the SIEM asked for (Retry-After).
        after: Option<Duration>,
    },
    /// A failure resending will not fix: siemrelay writes it to the dead-letter file.
    Permanent {
        /// Why (logs, status, dead-letter file).
        reason: String,
    },
}

impl Outcome {
    /// A retryable outcome without a requested delay.
    pub fn retry(reason: impl Into<String>) -> Outcome {
        Outcome::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    /// A permanent outcome.
    pub fn permanent(reason: impl Into<String>) -> Outcome {
        Outcome::Permanent {
            reason: reason.into(),
        }
    }
}

/// Outcomes of one `deliver` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcomes {
    /// Every event had this outcome.
    All(Outcome),
    /// One outcome per event, in batch order (exactly as many as the batch has events).
    PerEvent(Vec<Outcome>),
}

/// What one request to the SIEM did, shown in siemrelay's status and `siemrelay test`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Events in the request.
    pub events: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// HTTP status, when there was an HTTP reply.
    pub http_status: Option<u16>,
    /// Time from sending to the reply.
    pub latency: Duration,
    /// The SIEM's reply (keep it short) or the transport error.
    pub reply: Option<String>,
}

/// The result of [`crate::Exporter::deliver`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Outcomes.
    pub outcomes: Outcomes,
    /// Requests made (may be empty).
    pub requests: Vec<Request>,
}

impl Delivery {
    /// One outcome for every event of the batch.
    pub fn all(outcome: Outcome) -> Delivery {
        Delivery {
            outcomes: Outcomes::All(outcome),
            requests: Vec::new(),
        }
    }

    /// One outcome per event, in batch order.
    pub fn per_event(outcomes: Vec<Outcome>) -> Delivery {
        Delivery {
            outcomes: Outcomes::PerEvent(outcomes),
            requests: Vec::new(),
        }
    }

    /// Adds a request record.
    pub fn with_request(mut self, request: Request) -> Delivery {
        self.requests.push(request);
        self
    }
}
