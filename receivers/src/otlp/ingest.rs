//! What both protocols do with a request's protobuf bytes: decode them into events, hand the
//! batch to the pipeline, count.

use super::decode::decode_request;
use super::mapping::MappedRequest;
use super::wire::WireError;
use siemrelay_core::ingest::receiver_namespace;
use siemrelay_core::{EventSink, Refusal, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Counter of log records received, per request.
const RECEIVED_TOTAL: &str = "siemrelay_receiver_events_received_total";
/// Counter of log records not accepted, by reason.
const REFUSED_TOTAL: &str = "siemrelay_receiver_events_refused_total";

/// Retry delay suggested when the pipeline refuses without one (shutting down, failed).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The outcome of an accepted request.
#[derive(Debug, Default)]
pub struct Exported {
    /// Log records that could not be mapped (`partial_success.rejected_log_records`).
    pub rejected: u64,
    /// `partial_success.error_message` ("" when nothing was rejected).
    pub error_message: String,
}

/// Hands requests to the pipeline for one receiver.
#[derive(Clone)]
pub struct Ingest {
    receiver: Arc<str>,
    namespace: Uuid,
    sink: Arc<dyn EventSink>,
}

impl Ingest {
    /// An ingest path for the receiver `receiver` into `sink`.
    pub fn new(receiver: &str, sink: Arc<dyn EventSink>) -> Ingest {
        Ingest {
            receiver: receiver.into(),
            namespace: receiver_namespace(receiver),
            sink,
        }
    }

    /// Decodes the `ExportLogsServiceRequest` in `body` (holding `records` log records, as
    /// the census counted) into events received now; refused whole when any part is invalid.
    pub fn decode(&self, body: &[u8], records: usize) -> Result<MappedRequest, WireError> {
        decode_request(body, records, Timestamp::now(), self.namespace)
    }

    /// Waits until the pipeline accepted (or refused) the events of a decoded request.
    pub async fn export(&self, mapped: MappedRequest) -> Result<Exported, Refusal> {
        let MappedRequest {
            events, rejected, ..
        } = &mapped;
        let received = events.len() as u64 + rejected;
        if received == 0 {
            return Ok(Exported::default());
        }
        let receiver = self.receiver.to_string();
        metrics::counter!(RECEIVED_TOTAL, "receiver" => receiver.clone()).increment(received);
        if *rejected > 0 {
            metrics::counter!(REFUSED_TOTAL, "receiver" => receiver.clone(), "reason" => "unmappable")
                .increment(*rejected);
        }
        let exported = Exported {
            rejected: mapped.rejected,
            error_message: mapped.rejection_message(),
        };
        let count = mapped.events.len() as u64;
        if count == 0 {
            return Ok(exported);
        }
        match self.sink.accept(mapped.events).await {
            Ok(_) => Ok(exported),
            Err(refusal) => {
                let reason = match refusal {
                    Refusal::Full { .. } => "backpressure",
                    Refusal::ShuttingDown => "shutting_down",
                    Refusal::Failed(_) => "queue_failed",
                };
                metrics::counter!(REFUSED_TOTAL, "receiver" => receiver, "reason" => reason)
                    .increment(count);
                Err(refusal)
            }
        }
    }
}

/// How long a sender should wait before retrying after `refusal`.
pub fn retry_after(refusal: &Refusal) -> Duration {
    match refusal {
        Refusal::Full { retry_after } => *retry_after,
        Refusal::ShuttingDown | Refusal::Failed(_) => DEFAULT_RETRY_AFTER,
    }
}

/// Checks an `Authorization` header value against the expected bearer token in constant time.
pub fn bearer_matches(header: Option<&[u8]>, token: &str) -> bool {
    let Some(header) = header else { return false };
    let Some(scheme) = header.get(..7) else {
        return false;
    };
    scheme.eq_ignore_ascii_case(b"bearer ")
        && bool::from(header[7..].trim_ascii().ct_eq(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;
    use siemrelay_core::{Accepted, Batch};

    struct FullSink;

    #[async_trait::async_trait]
    impl EventSink for FullSink {
        async fn accept(&self, _batch: Batch) -> Result<Accepted, Refusal> {
            Err(Refusal::Full {
                retry_after: Duration::from_secs(3),
            })
        }
    }

    #[test]
    fn metrics_count_received_and_refused_records_per_request() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut records = vec![LogRecord::default(); 3];
        records[0].severity_number = 77;
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        };
        let result = metrics::with_local_recorder(&recorder, || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(async {
                    let ingest = Ingest::new("otlp/test", Arc::new(FullSink));
                    let mapped = ingest.decode(&request.encode_to_vec(), 3).unwrap();
                    ingest.export(mapped).await
                })
        });
        let refusal = result.unwrap_err();
        assert_eq!(retry_after(&refusal), Duration::from_secs(3));
        let mut counters: Vec<(String, Vec<String>, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let DebugValue::Counter(n) = value else {
                    panic!("counter")
                };
                let (_, key) = key.into_parts();
                let labels = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                (key.name().to_string(), labels, n)
            })
            .collect();
        counters.sort();
        assert_eq!(
            counters,
            [
                (RECEIVED_TOTAL.into(), vec!["receiver=otlp/test".into()], 3),
                (
                    REFUSED_TOTAL.into(),
                    vec!["receiver=otlp/test".into(), "reason=backpressure".into()],
                    2
                ),
                (
                    REFUSED_TOTAL.into(),
                    vec!["receiver=otlp/test".into(), "reason=unmappable".into()],
                    1
                ),
            ]
        );
    }

    #[test]
    fn bearer_tokens_are_checked_exactly() {
        assert!(bearer_matches(Some(b"Bearer s3cret"), "s3cret"));
        assert!(bearer_matches(Some(b"bearer s3cret "), "s3cret"));
        assert!(!bearer_matches(Some(b"Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(Some(b"Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(Some(b"Bear"), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
    }
}
