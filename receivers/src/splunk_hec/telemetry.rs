//! What the `splunk_hec` receiver reports, counted per request (never per event), under the
//! metric names every receiver shares, so the metrics page and the status page show it like
//! the others.

use crate::webhook::telemetry::{EVENTS_RECEIVED, EVENTS_REFUSED, MAPPING_ERRORS};
use siemrelay_core::Refusal;
use std::net::SocketAddr;

/// Reports for one receiver.
#[derive(Clone, Debug)]
pub struct Telemetry {
    receiver: String,
}

impl Telemetry {
    /// Reports for the receiver with component id `receiver`.
    pub fn new(receiver: &str) -> Telemetry {
        Telemetry {
            receiver: receiver.to_string(),
        }
    }

    /// A request gave `events` events with `mapping_errors` unmappable fields.
    pub fn received(&self, events: usize, mapping_errors: usize) {
        metrics::counter!(EVENTS_RECEIVED, "receiver" => self.receiver.clone())
            .increment(events as u64);
        if mapping_errors > 0 {
            metrics::counter!(MAPPING_ERRORS, "receiver" => self.receiver.clone())
                .increment(mapping_errors as u64);
        }
    }

    /// A request (or the rest of one, from the envelope at fault) was refused for `reason`
    /// (`auth`, `channel`, `ack_capacity`, `content_type`, `too_large`, `too_many_events`,
    /// `memory_limit`, `too_slow`, `malformed`, `index`); counts 1.
    pub fn refused(&self, reason: &'static str, peer: SocketAddr, detail: &str) {
        metrics::counter!(EVENTS_REFUSED, "receiver" => self.receiver.clone(), "reason" => reason)
            .increment(1);
        if reason == "auth" {
            tracing::warn!(receiver = %self.receiver, %peer, "HEC request refused: {detail}");
        } else {
            tracing::debug!(receiver = %self.receiver, %peer, reason, "HEC request refused: {detail}");
        }
    }

    /// The pipeline refused a batch of `events` events.
    pub fn refused_by_pipeline(&self, refusal: &Refusal, events: usize) {
        let reason = match refusal {
            Refusal::Full { .. } => "backpressure",
            Refusal::ShuttingDown => "shutting_down",
            Refusal::Failed(_) => "queue_failed",
        };
        metrics::counter!(EVENTS_REFUSED, "receiver" => self.receiver.clone(), "reason" => reason)
            .increment(events as u64);
        if let Refusal::Failed(_) = refusal {
            tracing::warn!(receiver = %self.receiver, events, "HEC batch not queued: {refusal}");
        }
    }
}
