//! The `kafka` exporter's configuration, its checks, and the librdkafka producer settings made
//! from it.

use super::record::{PartitionKey, TopicTemplate};
use rdkafka::ClientConfig;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::config_types::{ConfigDuration, ConfigSize};
pub use siemrelay_core::kafka::{KafkaSasl, KafkaTls, SaslMechanism, check_tls};
use siemrelay_core::kafka::{check_brokers, security_properties};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default `client.id` the broker sees.
pub const DEFAULT_CLIENT_ID: &str = "siemrelay";
/// Default largest message (librdkafka's `message.max.bytes`): 1 MB, the broker's default.
pub const DEFAULT_MESSAGE_MAX_BYTES: u64 = 1_000_000;
/// Default time librdkafka waits to fill a produce batch.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);

/// librdkafka properties siemrelay sets itself; `options` may not override them, because the
/// delivery guarantee depends on them.
pub const RESERVED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "compression.type",
    "compression.codec",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "transactional.id",
];

/// `kafka:` exporter settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port` each. Required (at least one).
    pub brokers: Vec<String>,
    /// Topic, or a template with event fields: `security-{event_type}`; fields are `event_type`,
    /// `source`, `severity` and `attributes.<path>` (a missing field renders as `unknown`;
    /// characters Kafka does not allow in topic names become `_`). Required.
    pub topic: String,
    /// Partition key: `event_id` (default), `source`, `event_type`, `none` (no key: the
    /// producer spreads events), or an attribute path such as `attributes.user.email`
    /// (`user.email` works too). Events without the field fall back to their `event_id`.
    #[serde(default)]
    pub key: Option<String>,
    /// `none` (default), `gzip`, `lz4` or `zstd`.
    #[serde(default)]
    pub compression: KafkaCompression,
    /// TLS to the brokers. Default: plaintext.
    #[serde(default)]
    pub tls: Option<KafkaTls>,
    /// SASL authentication. Default: none.
    #[serde(default)]
    pub sasl: Option<KafkaSasl>,
    /// `client.id` the brokers see. Default `siemrelay`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Largest message (event JSON plus headers) the producer sends; larger events are
    /// dead-lettered. Must not exceed the topic's `max.message.bytes`. Default `1MB`.
    #[serde(default = "default_message_max_bytes")]
    pub message_max_bytes: ConfigSize,
    /// How long librdkafka waits to fill a batch to a partition. Default `5ms`.
    #[serde(default)]
    pub linger: Option<ConfigDuration>,
    /// Further librdkafka producer properties (`socket.keepalive.enable: "true"`). The ones
    /// the delivery guarantee depends on (acks, idempotence, timeouts, security) are refused.
    /// Default: none.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Compression codec of produced batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaCompression {
    /// No compression (default).
    #[default]
    None,
    /// gzip.
    Gzip,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl KafkaCompression {
    /// librdkafka's name of the codec.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaCompression::None => "none",
            KafkaCompression::Gzip => "gzip",
            KafkaCompression::Lz4 => "lz4",
            KafkaCompression::Zstd => "zstd",
        }
    }
}

fn default_client_id() -> String {
    DEFAULT_CLIENT_ID.to_string()
}

fn default_message_max_bytes() -> ConfigSize {
    ConfigSize(DEFAULT_MESSAGE_MAX_BYTES)
}

impl KafkaConfig {
    /// Semantic checks that need no broker; each issue names its key inside the block.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = check_brokers(&self.brokers);
        if let Err(message) = TopicTemplate::parse(&self.topic) {
            issues.push(ConfigIssue::new("topic", message));
        }
        if let Err(message) = self.partition_key() {
            issues.push(ConfigIssue::new("key", message));
        }
        if self.client_id.trim().is_empty() {
            issues.push(ConfigIssue::new("client_id", "must not be empty"));
        }
        if self.message_max_bytes.0 < 1000 || self.message_max_bytes.0 > 1_000_000_000 {
            issues.push(ConfigIssue::new(
                "message_max_bytes",
                "must be between 1000 bytes and 1GB",
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
                    "is set by siemrelay (the delivery guarantee depends on it); use the exporter's own keys",
                ));
            }
        }
        if issues.is_empty()
            && let Err(e) = self
                .client_config(Duration::from_secs(30))
                .create_native_config()
        {
            issues.push(ConfigIssue::new(
                "options",
                format!("librdkafka refused the settings: {e}"),
            ));
        }
        issues
    }

    /// The parsed partition key.
    pub fn partition_key(&self) -> Result<PartitionKey, String> {
        PartitionKey::parse(self.key.as_deref().unwrap_or("event_id"))
    }

    /// The librdkafka producer settings: idempotent, `acks=all`, messages given up by
    /// librdkafka at 80% of the delivery layer's `sending.timeout` (so the outcome comes from
    /// the producer, not from a dropped future).
    pub fn client_config(&self, send_timeout: Duration) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.options {
            config.set(key, value);
        }
        let message_timeout = message_timeout(send_timeout);
        config
            .set("bootstrap.servers", self.brokers.join(","))
            .set("client.id", &self.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", self.compression.as_str())
            .set("message.max.bytes", self.message_max_bytes.0.to_string())
            .set(
                "linger.ms",
                self.linger
                    .map_or(DEFAULT_LINGER, Duration::from)
                    .as_millis()
                    .to_string(),
            )
            .set(
                "message.timeout.ms",
                message_timeout.as_millis().to_string(),
            );
        apply_security(&mut config, self.tls.as_ref(), self.sasl.as_ref());
        config
    }
}

/// How long librdkafka tries to deliver a message: 80% of `sending.timeout`, at least 1s.
pub fn message_timeout(send_timeout: Duration) -> Duration {
    (send_timeout * 4 / 5).max(Duration::from_secs(1))
}

/// How long `send` waits for the broker's acknowledgements: 90% of `sending.timeout`, so
/// unacknowledged events get their own retry outcome before the delivery layer's timeout.
pub fn ack_deadline(send_timeout: Duration) -> Duration {
    (send_timeout * 9 / 10).max(message_timeout(send_timeout))
}

/// Sets `security.protocol` and the TLS / SASL properties.
pub fn apply_security(config: &mut ClientConfig, tls: Option<&KafkaTls>, sasl: Option<&KafkaSasl>) {
    for (key, value) in security_properties(tls, sasl) {
        config.set(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> KafkaConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn documented_example_parses_and_validates() {
        let config = parse(
            r#"
brokers: ["kafka-1:9092", "kafka-2:9092"]
topic: "security-{event_type}"
key: event_id
compression: zstd
sasl: { mechanism: SCRAM-SHA-512, username: relay, password: "s3cret" }
"#,
        );
        assert_eq!(config.validate(), vec![]);
        let client = config.client_config(Duration::from_secs(30));
        assert_eq!(client.get("enable.idempotence"), Some("true"));
        assert_eq!(client.get("acks"), Some("all"));
        assert_eq!(client.get("compression.type"), Some("zstd"));
        assert_eq!(client.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(client.get("message.timeout.ms"), Some("24000"));
        assert_eq!(
            client.get("bootstrap.servers"),
            Some("kafka-1:9092,kafka-2:9092")
        );
    }

    #[test]
    fn bad_settings_are_named_by_key_without_secrets() {
        let config = parse(
            r#"
brokers: ["kafka-1", ":9092", "k:99999"]
topic: "security-{nope}"
key: "attributes."
tls: { ca_file: /nonexistent/ca.pem, cert_file: /nonexistent/c.pem }
sasl: { mechanism: PLAIN, username: "", password: "hunter2" }
options: { acks: "1", "socket.keepalive.enable": "true" }
"#,
        );
        let issues = config.validate();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        for key in [
            "brokers[0]",
            "brokers[1]",
            "brokers[2]",
            "topic",
            "key",
            "tls.ca_file",
            "tls.cert_file",
            "tls",
            "sasl.username",
            "options.acks",
        ] {
            assert!(keys.contains(&key), "{key} missing from {issues:?}");
        }
        assert!(!format!("{issues:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_keys_and_mechanisms_are_refused() {
        assert!(
            serde_yaml::from_str::<KafkaConfig>("brokers: [a:1]\ntopic: t\nretries: 3\n").is_err()
        );
        assert!(
            serde_yaml::from_str::<KafkaConfig>(
                "brokers: [a:1]\ntopic: t\nsasl: { mechanism: GSSAPI, username: u, password: p }\n"
            )
            .is_err()
        );
        assert!(
            serde_yaml::from_str::<KafkaConfig>("brokers: [a:1]\ntopic: t\ncompression: snappy\n")
                .is_err()
        );
    }

    #[test]
    fn unknown_librdkafka_option_is_reported() {
        let config = parse("brokers: [a:1]\ntopic: t\noptions: { no.such.property: x }\n");
        let issues = config.validate();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].key, "options");
    }
}
