//! The `kafka` exporter: each event becomes one Kafka message (its JSON form, signature
//! included) with the headers `event_id` and `event_type`, keyed by a chosen field so events of
//! one key stay in order on one partition.
//!
//! The producer is idempotent with `acks=all`. An event counts as delivered only when the broker
//! acknowledged it: `send` enqueues the whole chunk, then awaits every delivery report. Errors are
//! classified per event (see [`classify`]): retriable ones (queue full, broker down, timeouts)
//! are retried by the delivery layer, permanent ones (message too large, unknown topic,
//! authorization) are dead-lettered with the reason. So the shared queue, retries, dead-letter
//! file and status apply unchanged. See README-kafka.md.

pub mod config;
pub mod factory;
pub mod record;

pub use config::{KafkaCompression, KafkaConfig, KafkaSasl, KafkaTls, SaslMechanism};
pub use record::{EventField, PartitionKey, TopicTemplate};

use crate::delivery::{
    Outcome, OutcomeSheet, RequestLimits, RequestOutcome, RequestRecord, Schema, SendReport, Sink,
};
use async_trait::async_trait;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use siemrelay_core::Event;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Producers replaced after a fatal error or a stall (label `exporter`).
pub const PRODUCERS_REPLACED: &str = "siemrelay_exporter_kafka_producers_replaced_total";

/// Most events handed to one `send` (librdkafka's own queue holds 100,000 messages).
pub const MAX_EVENTS_PER_SEND: usize = 10_000;
/// Most bytes (by estimate) handed to one `send`.
pub const MAX_BYTES_PER_SEND: usize = 32 << 20;

/// Routes librdkafka's logs and client errors to tracing, tagged with the exporter id.
pub struct ProducerContext {
    id: String,
}

impl ClientContext for ProducerContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(exporter = %self.id, facility = %facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(exporter = %self.id, facility = %facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(exporter = %self.id, facility = %facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(exporter = %self.id, facility = %facility, "librdkafka: {message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(exporter = %self.id, error = %error, "kafka producer: {reason}");
    }
}

type Producer = FutureProducer<ProducerContext>;

/// Sends events to Kafka.
pub struct KafkaSink {
    id: String,
    client: rdkafka::ClientConfig,
    /// Replaced when the idempotent producer hits a fatal error (it cannot be used after one).
    producer: RwLock<Arc<Producer>>,
    topic: TopicTemplate,
    key: PartitionKey,
    /// How long one `send` waits for acknowledgements.
    ack_deadline: Duration,
    /// Sends in a row in which nothing was acknowledged (timeouts only).
    stalled_sends: std::sync::atomic::AtomicU32,
    /// Producers replaced so far (also counted in [`PRODUCERS_REPLACED`]).
    replaced: std::sync::atomic::AtomicU64,
    /// The shape of each record's value (the shared `schema` key).
    schema: Schema,
}

impl KafkaSink {
    /// A sink for a validated config. Creating the producer does not contact the brokers.
    pub fn new(
        id: &str,
        config: &KafkaConfig,
        send_timeout: Duration,
    ) -> anyhow::Result<KafkaSink> {
        let invalid = |message: String| anyhow::anyhow!("exporter {id}: {message}");
        let topic =
            TopicTemplate::parse(&config.topic).map_err(|e| invalid(format!("topic: {e}")))?;
        let key = config
            .partition_key()
            .map_err(|e| invalid(format!("key: {e}")))?;
        let client = config.client_config(send_timeout);
        let producer = create_producer(id, &client)?;
        // The series exists from the start, so an alert on its increase sees the first one.
        metrics::counter!(PRODUCERS_REPLACED, "exporter" => id.to_string()).increment(0);
        Ok(KafkaSink {
            id: id.to_string(),
            client,
            producer: RwLock::new(Arc::new(producer)),
            topic,
            key,
            ack_deadline: config::ack_deadline(send_timeout),
            stalled_sends: std::sync::atomic::AtomicU32::new(0),
            replaced: std::sync::atomic::AtomicU64::new(0),
            schema: Schema::Native,
        })
    }

    /// Writes each record's value in `schema` (the shared `schema` key).
    pub fn with_schema(self, schema: Schema) -> KafkaSink {
        KafkaSink { schema, ..self }
    }

    /// How many times this sink replaced its producer (after a fatal error, a fence or a stall).
    pub fn producers_replaced(&self) -> u64 {
        self.replaced.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn producer(&self) -> Arc<Producer> {
        self.producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The producer to send with: the current one, replaced first when it hit a fatal error
    /// since the last send (a fenced idempotent producer accepts nothing more).
    fn usable_producer(&self) -> Arc<Producer> {
        let producer = self.producer();
        match producer.client().fatal_error() {
            None => producer,
            Some((code, reason)) => {
                self.renew_producer(&producer, &format!("fatal error {code:?}: {reason}"));
                retire(producer);
                self.producer()
            }
        }
    }

    /// Replaces a producer that hit a fatal error or stalled (unless another send already did).
    ///
    /// Nothing is lost or stranded by the replacement: every event the old producer did not
    /// get acknowledged was already reported as a retry by the `send` that used it (it awaits
    /// each delivery report, or gives up on it at the deadline), so the delivery layer sends it
    /// again through the new producer. Dropping the old producer purges what it still held;
    /// what it had already written may reach Kafka as well: a duplicate, de-duplicated
    /// downstream by `event_id`, never a loss.
    fn renew_producer(&self, broken: &Arc<Producer>, why: &str) {
        let mut slot = self.producer.write().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&slot, broken) {
            return;
        }
        match create_producer(&self.id, &self.client) {
            Ok(fresh) => {
                metrics::counter!(PRODUCERS_REPLACED, "exporter" => self.id.clone()).increment(1);
                self.replaced
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(exporter = %self.id, reason = why,
                    "kafka producer replaced (failed or stalled); its unacknowledged events are sent again by the new one");
                *slot = Arc::new(fresh);
            }
            Err(e) => {
                tracing::error!(exporter = %self.id, error = %e, "cannot recreate the kafka producer")
            }
        }
    }

    /// Enqueues every event; returns the pending deliveries, the bytes enqueued and whether the
    /// producer refused because it cannot go on; the outcomes already known are set.
    fn enqueue(
        &self,
        producer: &Producer,
        events: &[Event],
        outcomes: &mut OutcomeSheet,
    ) -> (Vec<(usize, DeliveryFuture)>, usize, bool) {
        let mut pending = Vec::with_capacity(events.len());
        let mut payload = Vec::with_capacity(1024);
        let mut key = Vec::with_capacity(64);
        let mut id_text = Vec::with_capacity(36);
        let mut bytes = 0;
        for (index, event) in events.iter().enumerate() {
            payload.clear();
            self.schema.write_event(event, &mut payload);
            key.clear();
            let keyed = self.key.write(event, &mut key);
            id_text.clear();
            record::write_event_id(event, &mut id_text);
            let rendered;
            let topic = match self.topic.fixed() {
                Some(topic) => topic,
                None => {
                    rendered = self.topic.render(event);
                    rendered.as_str()
                }
            };
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header {
                    key: record::HEADER_EVENT_ID,
                    value: Some(id_text.as_slice()),
                })
                .insert(Header {
                    key: record::HEADER_EVENT_TYPE,
                    value: Some(event.event_type.as_bytes()),
                });
            let mut message = FutureRecord::to(topic)
                .payload(payload.as_slice())
                .headers(headers);
            if keyed {
                message = message.key(key.as_slice());
            }
            match producer.send_result(message) {
                Ok(delivery) => {
                    bytes += payload.len();
                    pending.push((index, delivery));
                }
                Err((error, _)) => {
                    let code = error.rdkafka_error_code();
                    let queue_full = code == Some(RDKafkaErrorCode::QueueFull);
                    if needs_new_producer(code) {
                        // Every further event would meet the same dead producer.
                        outcomes.set_from(index, &classify(&error));
                        return (pending, bytes, true);
                    }
                    if queue_full {
                        // The rest would meet the same full queue: retry them later.
                        outcomes.set_from(index, &classify(&error));
                        break;
                    }
                    outcomes.set(index, classify(&error));
                }
            }
        }
        (pending, bytes, false)
    }
}

/// Lets go of a producer that may have been replaced. Dropping the last handle purges its
/// queues, flushes for up to 500 ms and waits for librdkafka's threads: that runs on a
/// blocking thread, not on the runtime's workers.
fn retire(producer: Arc<Producer>) {
    if Arc::strong_count(&producer) == 1 {
        tokio::task::spawn_blocking(move || drop(producer));
    }
}

fn create_producer(id: &str, client: &rdkafka::ClientConfig) -> anyhow::Result<Producer> {
    client
        .create_with_context(ProducerContext { id: id.to_string() })
        .map_err(|e| anyhow::anyhow!("exporter {id}: cannot create the kafka producer: {e}"))
}

/// Errors after which the idempotent producer cannot go on (it is replaced; the events are
/// retried): librdkafka's fatal error, being fenced (the broker's code, or librdkafka's own
/// `Fenced` that it reports for it), and the broker no longer knowing or accepting its
/// producer id or epoch.
fn needs_new_producer(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
        )
    )
}

/// Whole sends that only timed out before the producer is replaced.
const STALLED_SENDS_BEFORE_RENEWAL: u32 = 3;

impl KafkaSink {
    /// Counts sends in which every event timed out. After a few in a row the producer is
    /// replaced: an idempotent producer whose in-flight requests timed out must re-register with
    /// the brokers (epoch bump), and if a broker lost that state the old producer can stay stuck.
    fn stalled(&self, outcomes: &OutcomeSheet) -> bool {
        use std::sync::atomic::Ordering;
        let all_timed_out = !outcomes.is_empty()
            && outcomes.iter().all(|o| match o {
                Outcome::Retry { reason, .. } => {
                    reason.contains("MessageTimedOut") || reason.contains("no acknowledgement")
                }
                _ => false,
            });
        if !all_timed_out {
            self.stalled_sends.store(0, Ordering::Relaxed);
            return false;
        }
        if self.stalled_sends.fetch_add(1, Ordering::Relaxed) + 1 >= STALLED_SENDS_BEFORE_RENEWAL {
            self.stalled_sends.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// Sorts a Kafka error into retry (transient: queue full, brokers unreachable, timeouts, leader
/// changes) or permanent (the event or the settings are wrong: too large, unknown or invalid
/// topic, authentication or authorization refused, policy violations).
pub fn classify(error: &KafkaError) -> Outcome {
    use RDKafkaErrorCode as Code;
    let permanent = matches!(
        error.rdkafka_error_code(),
        Some(
            Code::MessageSizeTooLarge
                | Code::InvalidMessageSize
                | Code::MessageBatchTooLarge
                | Code::InvalidMessage
                | Code::BadMessage
                | Code::InvalidRecord
                | Code::InvalidTimestamp
                | Code::UnknownTopic
                | Code::UnknownTopicOrPartition
                | Code::UnknownPartition
                | Code::InvalidTopic
                | Code::TopicAuthorizationFailed
                | Code::ClusterAuthorizationFailed
                | Code::TransactionalIdAuthorizationFailed
                | Code::SaslAuthenticationFailed
                | Code::Authentication
                | Code::PolicyViolation
                | Code::UnsupportedCompressionType
                | Code::UnsupportedForMessageFormat
                | Code::InvalidRequiredAcks
        )
    );
    let reason = format!("kafka: {error}");
    if permanent {
        Outcome::permanent(reason)
    } else {
        Outcome::retry(reason)
    }
}

#[async_trait]
impl Sink for KafkaSink {
    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_events: MAX_EVENTS_PER_SEND,
            max_bytes: MAX_BYTES_PER_SEND,
        }
    }

    /// One chunk at a time keeps events of one key in order (a retried chunk holds back the
    /// next); `sending.concurrency` can raise it at the cost of that order.
    fn default_concurrency(&self) -> usize {
        1
    }

    async fn send(&self, events: &[Event]) -> SendReport {
        let started = Instant::now();
        let producer = self.usable_producer();
        // An event the loop below never gets to is retried, never counted as delivered.
        let mut outcomes = OutcomeSheet::filled(events.len(), Outcome::retry("kafka: not sent"));
        let (pending, bytes, mut fatal) = self.enqueue(&producer, events, &mut outcomes);
        let deadline = tokio::time::Instant::from_std(started + self.ack_deadline);
        for (index, delivery) in pending {
            let outcome = match tokio::time::timeout_at(deadline, delivery).await {
                Ok(Ok(Ok(_))) => Outcome::Delivered,
                Ok(Ok(Err((error, _)))) => {
                    fatal |= needs_new_producer(error.rdkafka_error_code());
                    classify(&error)
                }
                Ok(Err(_)) => {
                    Outcome::retry("kafka: the producer was closed before the broker answered")
                }
                Err(_) => Outcome::retry(format!(
                    "kafka: no acknowledgement from the brokers within {:?}",
                    self.ack_deadline
                )),
            };
            outcomes.set(index, outcome);
        }
        if let Some((code, reason)) = producer.client().fatal_error() {
            self.renew_producer(&producer, &format!("fatal error {code:?}: {reason}"));
        } else if fatal {
            self.renew_producer(&producer, "the broker fenced it or forgot its producer id");
        } else if self.stalled(&outcomes) {
            self.renew_producer(
                &producer,
                "several sends in a row were not acknowledged at all",
            );
        }
        retire(producer);
        let record = RequestRecord {
            events: events.len(),
            bytes,
            http_status: None,
            reply: outcomes.first_reason().map(str::to_string),
            latency: started.elapsed(),
            outcome: Some(RequestOutcome::of(outcomes.iter())),
            ..Default::default()
        };
        SendReport {
            outcomes: outcomes.finish(),
            requests: vec![record],
        }
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        let reply = record.reply.as_deref()?.to_ascii_lowercase();
        let hint = if reply.contains("authentication") || reply.contains("sasl") {
            "authentication failed: check sasl.mechanism, sasl.username and the password"
        } else if reply.contains("authorization") {
            "the broker refused access: check the ACLs for this user on the topic"
        } else if reply.contains("unknown topic") || reply.contains("unknown partition") {
            "the topic does not exist: create it, or enable auto-creation on the brokers"
        } else if reply.contains("too large") || reply.contains("message size") {
            "the event is larger than message_max_bytes or the topic's max.message.bytes"
        } else if reply.contains("ssl") || reply.contains("certificate") {
            "TLS failed: check tls.ca_file and that the brokers speak TLS on this port"
        } else {
            "the brokers did not acknowledge in time: check the brokers' host:port, that they are up, the advertised listeners and the firewall"
        };
        Some(hint.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_into_retry_and_permanent() {
        use RDKafkaErrorCode as Code;
        for code in [
            Code::QueueFull,
            Code::BrokerTransportFailure,
            Code::AllBrokersDown,
            Code::MessageTimedOut,
            Code::RequestTimedOut,
            Code::NotEnoughReplicas,
            Code::LeaderNotAvailable,
            Code::Fatal,
        ] {
            let outcome = classify(&KafkaError::MessageProduction(code));
            assert!(
                matches!(outcome, Outcome::Retry { .. }),
                "{code:?}: {outcome:?}"
            );
        }
        for code in [
            Code::MessageSizeTooLarge,
            Code::UnknownTopic,
            Code::UnknownTopicOrPartition,
            Code::TopicAuthorizationFailed,
            Code::SaslAuthenticationFailed,
            Code::InvalidTopic,
        ] {
            let outcome = classify(&KafkaError::MessageProduction(code));
            let Outcome::Permanent { reason } = outcome else {
                panic!("{code:?} should be permanent");
            };
            assert!(reason.starts_with("kafka: "), "{reason}");
        }
    }

    #[tokio::test]
    async fn oversized_event_is_permanent_and_unreachable_broker_is_retried() {
        let config: KafkaConfig =
            serde_yaml::from_str("brokers: [\"127.0.0.1:1\"]\ntopic: t\nmessage_max_bytes: 2000\n")
                .unwrap();
        let sink = KafkaSink::new("kafka/test", &config, Duration::from_secs(2)).unwrap();
        let mut big = Event::new("big");
        big.summary = Some("x".repeat(5000));
        let small = Event::new("small");
        let report = sink.send(&[big, small]).await;
        assert!(
            matches!(report.outcomes.get(0).unwrap(), Outcome::Permanent { reason } if reason.contains("too large")),
            "{:?}",
            report.outcomes
        );
        assert!(
            matches!(report.outcomes.get(1).unwrap(), Outcome::Retry { .. }),
            "{:?}",
            report.outcomes
        );
        let record = &report.requests[0];
        assert_eq!(record.events, 2);
        assert!(sink.hint(record).is_some());
    }
}
