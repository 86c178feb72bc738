//! The `kafka` receiver's configuration, its checks, and the librdkafka consumer settings made
//! from it.

use rdkafka::ClientConfig;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::config_types::ConfigDuration;
use siemrelay_core::ingest::FieldMapping;
pub use siemrelay_core::kafka::{KafkaSasl, KafkaTls, SaslMechanism};
use siemrelay_core::kafka::{check_brokers, check_tls, security_properties};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default most events handed to the pipeline at once.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 2000;
/// Default longest wait to fill a batch once its first message arrived.
pub const DEFAULT_MAX_BATCH_WAIT: Duration = Duration::from_millis(100);
/// Default most messages handed over and not yet committed (`commit: after_delivery`).
pub const DEFAULT_MAX_UNCOMMITTED_EVENTS: usize = 100_000;
/// Default group session timeout (librdkafka's): how long a silent member keeps its partitions.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);

/// librdkafka properties the receiver sets itself; `options` may not override them, because
/// the at-least-once guarantee depends on them.
pub const RESERVED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "enable.partition.eof",
    "isolation.level",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "session.timeout.ms",
    "heartbeat.interval.ms",
];

/// `kafka:` receiver settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaReceiverConfig {
    /// Bootstrap brokers, `host:port` each. Required (at least one).
    pub brokers: Vec<String>,
    /// Topics to consume. Required (at least one).
    pub topics: Vec<String>,
    /// Consumer group: every siemrelay with the same `group_id` shares the topics' partitions.
    /// Required.
    pub group_id: String,
    /// Where a group with no committed offset starts: `earliest` (default) or `latest`.
    #[serde(default)]
    pub initial_offset: InitialOffset,
    /// Most events handed to the pipeline at once. Default 2000.
    #[serde(default = "default_max_batch_events")]
    pub max_batch_events: usize,
    /// Longest wait to fill a batch after its first message. Default `100ms`.
    #[serde(default)]
    pub max_batch_wait: Option<ConfigDuration>,
    /// How long the group waits for a silent member before giving its partitions to the
    /// others (a killed siemrelay's partitions move after this). Default `45s`.
    #[serde(default)]
    pub session_timeout: Option<ConfigDuration>,
    /// When offsets are committed: `after_delivery` (default: once every exporter delivered or
    /// dead-lettered every event up to them) or `after_queue` (once the events are in every
    /// exporter queue).
    #[serde(default)]
    pub commit: CommitPoint,
    /// With `after_delivery`: most messages handed over whose offsets are not committed yet;
    /// at the bound the partitions are paused until deliveries finish. Default 100000.
    #[serde(default = "default_max_uncommitted_events")]
    pub max_uncommitted_events: usize,
    /// `client.id` the brokers see. Default `siemrelay`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Which message field feeds each well-known event field (for foreign producers).
    /// Default: none (messages in siemrelay's JSON form need none).
    #[serde(default)]
    pub mapping: FieldMapping,
    /// TLS to the brokers. Default: plaintext.
    #[serde(default)]
    pub tls: Option<KafkaTls>,
    /// SASL authentication. Default: none.
    #[serde(default)]
    pub sasl: Option<KafkaSasl>,
    /// Further librdkafka consumer properties; the ones the guarantee depends on are refused.
    /// Default: none.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Where a new consumer group starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialOffset {
    /// The oldest retained message (default): nothing already in the topic is skipped.
    #[default]
    Earliest,
    /// Only messages produced after the group first joined.
    Latest,
}

/// When the receiver commits a batch's offsets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitPoint {
    /// Once every exporter of the pipelines delivered or dead-lettered every event up to the
    /// offset (default): the log is the buffer, a crash loses nothing whatever the queues.
    #[default]
    AfterDelivery,
    /// Once the events are in every exporter queue: a crash loses what memory queues held.
    AfterQueue,
}

fn default_max_uncommitted_events() -> usize {
    DEFAULT_MAX_UNCOMMITTED_EVENTS
}

fn default_max_batch_events() -> usize {
    DEFAULT_MAX_BATCH_EVENTS
}

fn default_client_id() -> String {
    "siemrelay".to_string()
}

impl KafkaReceiverConfig {
    /// Semantic checks that need no broker; each issue names its key inside the block.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = check_brokers(&self.brokers);
        if self.topics.is_empty() {
            issues.push(ConfigIssue::new("topics", "at least one topic is required"));
        }
        for (index, topic) in self.topics.iter().enumerate() {
            let valid = !topic.is_empty()
                && topic.len() <= 249
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid {
                issues.push(ConfigIssue::new(
                    format!("topics[{index}]"),
                    format!("{topic:?} is not a topic name (1-249 letters, digits, '.', '_', '-')"),
                ));
            }
        }
        if self.group_id.trim().is_empty() {
            issues.push(ConfigIssue::new("group_id", "must not be empty"));
        }
        if self.max_batch_events == 0 || self.max_batch_events > 100_000 {
            issues.push(ConfigIssue::new(
                "max_batch_events",
                "must be between 1 and 100000",
            ));
        }
        if self.max_uncommitted_events == 0 || self.max_uncommitted_events > 10_000_000 {
            issues.push(ConfigIssue::new(
                "max_uncommitted_events",
                "must be between 1 and 10000000",
            ));
        }
        if let Some(timeout) = self.session_timeout
            && !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&timeout.0)
        {
            issues.push(ConfigIssue::new(
                "session_timeout",
                "must be between 1s and 1h",
            ));
        }
        if let Some(tls) = &self.tls {
            issues.extend(check_tls(tls));
        }
        if let Some(sasl) = &self.sasl
            && sasl.username.is_empty()
        {
            issues.push(ConfigIssue::new("sasl.username", "must not be empty"));
        }
        for key in self.options.keys() {
            if RESERVED_PROPERTIES.contains(&key.as_str()) {
                issues.push(ConfigIssue::new(
                    format!("options.{key}"),
                    "is set by siemrelay (at-least-once delivery depends on it); use the receiver's own keys",
                ));
            }
        }
        if issues.is_empty()
            && let Err(e) = self.client_config().create_native_config()
        {
            issues.push(ConfigIssue::new(
                "options",
                format!("librdkafka refused the settings: {e}"),
            ));
        }
        issues
    }

    /// The longest wait to fill a batch.
    pub fn batch_wait(&self) -> Duration {
        self.max_batch_wait
            .map_or(DEFAULT_MAX_BATCH_WAIT, Duration::from)
    }

    /// The librdkafka consumer settings: a consumer group with auto-commit off and offsets
    /// stored only by the receiver, after the pipeline accepted the batch.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.options {
            config.set(key, value);
        }
        let session = self
            .session_timeout
            .map_or(DEFAULT_SESSION_TIMEOUT, Duration::from);
        let heartbeat = (session / 3)
            .min(Duration::from_secs(3))
            .max(Duration::from_millis(100));
        config
            .set("bootstrap.servers", self.brokers.join(","))
            .set("group.id", &self.group_id)
            .set("client.id", &self.client_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed")
            .set(
                "auto.offset.reset",
                match self.initial_offset {
                    InitialOffset::Earliest => "earliest",
                    InitialOffset::Latest => "latest",
                },
            )
            .set("session.timeout.ms", session.as_millis().to_string())
            .set("heartbeat.interval.ms", heartbeat.as_millis().to_string());
        for (key, value) in security_properties(self.tls.as_ref(), self.sasl.as_ref()) {
            config.set(key, value);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> KafkaReceiverConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn documented_example_validates_into_an_at_least_once_consumer() {
        let config = parse(serde_json::json!({
            "brokers": ["kafka-1:9092"], "topics": ["security-events"],
            "group_id": "siemrelay-aggregators", "initial_offset": "earliest",
            "session_timeout": "6s"
        }));
        assert_eq!(config.validate(), vec![]);
        let client = config.client_config();
        assert_eq!(client.get("enable.auto.commit"), Some("false"));
        assert_eq!(client.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(client.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(client.get("session.timeout.ms"), Some("6000"));
        assert_eq!(client.get("heartbeat.interval.ms"), Some("2000"));
        assert_eq!(config.max_batch_events, DEFAULT_MAX_BATCH_EVENTS);
        assert_eq!(config.commit, CommitPoint::AfterDelivery);
        assert_eq!(
            config.max_uncommitted_events,
            DEFAULT_MAX_UNCOMMITTED_EVENTS
        );
        let queue = parse(serde_json::json!({
            "brokers": ["k:9092"], "topics": ["t"], "group_id": "g", "commit": "after_queue"
        }));
        assert_eq!(queue.commit, CommitPoint::AfterQueue);
    }

    #[test]
    fn bad_settings_are_named_by_key() {
        let config = parse(serde_json::json!({
            "brokers": ["nohost"], "topics": ["bad topic"], "group_id": " ",
            "max_batch_events": 0, "session_timeout": "10ms", "max_uncommitted_events": 0,
            "sasl": {"mechanism": "PLAIN", "username": "", "password": "pw-secret"},
            "options": {"enable.auto.commit": "true"}
        }));
        let issues = config.validate();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        for key in [
            "brokers[0]",
            "topics[0]",
            "group_id",
            "max_batch_events",
            "max_uncommitted_events",
            "session_timeout",
            "sasl.username",
            "options.enable.auto.commit",
        ] {
            assert!(keys.contains(&key), "{key} missing from {issues:?}");
        }
        assert!(!format!("{issues:?}").contains("pw-secret"));
        assert!(
            serde_json::from_value::<KafkaReceiverConfig>(serde_json::json!({
                "brokers": ["a:1"], "topics": ["t"], "group_id": "g", "initial_offset": "middle"
            }))
            .is_err()
        );
    }
}
