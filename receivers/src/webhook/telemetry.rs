//! What the webhook receiver reports about each request: one place for its metric names and
//! log lines, counted per request (never per event).

use super::intake::Rejection;
use siemrelay_core::Refusal;
use std::net::SocketAddr;

/// Events parsed from requests (counted once per request, by its number of events).
pub const EVENTS_RECEIVED: &str = "siemrelay_receiver_events_received_total";
/// Refused events by reason; a request refused before its body was parsed counts as one.
pub const EVENTS_REFUSED: &str = "siemrelay_receiver_events_refused_total";
/// Fields that could not be mapped into their well-known slot.
pub const MAPPING_ERRORS: &str = "siemrelay_receiver_mapping_errors_total";
/// Requests whose signature did not verify, by which check failed.
pub const VERIFICATION_FAILURES: &str = "siemrelay_receiver_verification_failures_total";

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

    /// The receiver's component id.
    pub fn receiver(&self) -> &str {
        &self.receiver
    }

    /// A request was parsed into `events` events with `mapping_errors` unmappable fields.
    pub fn received(&self, events: usize, mapping_errors: usize) {
        metrics::counter!(EVENTS_RECEIVED, "receiver" => self.receiver.clone())
            .increment(events as u64);
        if mapping_errors > 0 {
            metrics::counter!(MAPPING_ERRORS, "receiver" => self.receiver.clone())
                .increment(mapping_errors as u64);
        }
    }

    /// A request was rejected before reaching the pipeline.
    pub fn rejected(&self, rejection: &Rejection, peer: SocketAddr) {
        self.refused(rejection.reason(), 1);
        match rejection {
            Rejection::Signature(failure) => {
                metrics::counter!(VERIFICATION_FAILURES,
                    "receiver" => self.receiver.clone(), "reason" => failure.reason())
                .increment(1);
                tracing::warn!(receiver = %self.receiver, %peer, reason = %failure.reason(),
                    "webhook request failed signature verification: {failure}");
            }
            Rejection::Unauthorized(message) => {
                tracing::warn!(receiver = %self.receiver, %peer, "webhook request refused: {message}");
            }
            other => {
                tracing::debug!(receiver = %self.receiver, %peer, reason = %other.reason(),
                    "webhook request refused: {other}");
            }
        }
    }

    /// The pipeline refused a parsed batch of `events` events.
    pub fn refused_by_pipeline(&self, refusal: &Refusal, events: usize) {
        let reason = match refusal {
            Refusal::Full { .. } => "backpressure",
            Refusal::ShuttingDown => "shutting_down",
            Refusal::Failed(_) => "queue_failed",
        };
        self.refused(reason, events as u64);
        if let Refusal::Failed(_) = refusal {
            tracing::warn!(receiver = %self.receiver, events, "webhook batch not queued: {refusal}");
        }
    }

    /// `events` events refused for `reason` (a request refused before parsing counts as one);
    /// also used by the Datadog and Elasticsearch receivers, which share these metric names.
    pub fn refused(&self, reason: &'static str, events: u64) {
        metrics::counter!(EVENTS_REFUSED, "receiver" => self.receiver.clone(), "reason" => reason)
            .increment(events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::verify::VerifyFailure;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use std::time::Duration;

    /// Counter values as `name{label=value,…}` → count.
    fn counters(run: impl FnOnce()) -> Vec<(String, u64)> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, run);
        let mut out: Vec<(String, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| {
                let DebugValue::Counter(count) = value else {
                    return None;
                };
                let key = key.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                Some((format!("{}{{{}}}", key.name(), labels.join(",")), count))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn requests_are_counted_by_reason() {
        let telemetry = Telemetry::new("webhook/t");
        let peer = SocketAddr::from(([192, 0, 2, 1], 40000));
        let got = counters(|| {
            telemetry.received(3, 2);
            telemetry.rejected(&Rejection::Signature(VerifyFailure::NoMatch), peer);
            telemetry.rejected(&Rejection::Unauthorized("no token"), peer);
            let full = Refusal::Full {
                retry_after: Duration::from_secs(1),
            };
            telemetry.refused_by_pipeline(&full, 5);
        });
        let expected = [
            (
                "siemrelay_receiver_events_received_total{receiver=webhook/t}",
                3,
            ),
            (
                "siemrelay_receiver_events_refused_total{receiver=webhook/t,reason=auth}",
                1,
            ),
            (
                "siemrelay_receiver_events_refused_total{receiver=webhook/t,reason=backpressure}",
                5,
            ),
            (
                "siemrelay_receiver_events_refused_total{receiver=webhook/t,reason=signature}",
                1,
            ),
            (
                "siemrelay_receiver_mapping_errors_total{receiver=webhook/t}",
                2,
            ),
            (
                "siemrelay_receiver_verification_failures_total{receiver=webhook/t,reason=no_match}",
                1,
            ),
        ];
        let expected: Vec<(String, u64)> =
            expected.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(got, expected);
    }
}
