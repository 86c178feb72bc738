//! The `splunk_hec` receiver's configuration and its semantic checks.

use crate::listener::ListenerLimits;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::cidr::CidrAllowList;
use siemrelay_core::config_types::{ConfigDuration, ConfigSize, HostPort, Secret};
use siemrelay_core::ingest::{FieldMapping, IngestOptions};
use siemrelay_core::listener_tls::ListenerTlsConfig;
use std::time::Duration;

/// Default largest accepted body, before and after gzip decoding (10 MiB).
pub const DEFAULT_MAX_BODY_SIZE: u64 = 10 * 1024 * 1024;
/// Default most events (envelopes or raw lines) one request may hold.
pub const DEFAULT_MAX_EVENTS_PER_REQUEST: usize = 10_000;
/// Default most channels with acknowledgement state at once.
pub const DEFAULT_MAX_ACK_CHANNELS: usize = 1000;
/// Default most ack ids one channel may hold that its sender has not read `true` yet.
pub const DEFAULT_MAX_PENDING_ACKS_PER_CHANNEL: usize = 10_000;
/// Default time after which an unused channel (no request, no ack poll) may be forgotten.
pub const DEFAULT_ACK_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Configuration of one `splunk_hec` receiver (`receivers: splunk_hec/<name>: …`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Address to listen on. Required (Splunk's 8088 is the webhook receiver's default).
    pub endpoint: HostPort,
    /// Client addresses served; any other client gets 403 before its body is read.
    #[serde(default)]
    pub allowed_cidrs: CidrAllowList,
    /// Serve HTTPS (`cert_file`, `key_file`, optional `client_ca_file`). Default: plain HTTP.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// Connection and request caps and timeouts. Defaults in [`ListenerLimits`].
    #[serde(default)]
    pub limits: ListenerLimits,
    /// The HEC tokens senders may use, each with optional defaults and an index allow list.
    /// At least one.
    pub tokens: Vec<TokenConfig>,
    /// Accept the token in the `?token=` query string (Splunk's "query string
    /// authentication"). Default `false`: such a request gets code 16.
    #[serde(default)]
    pub allow_query_token: bool,
    /// Indexer acknowledgement: every request needs a channel and a success carries an
    /// `ackId`, read back through `POST /services/collector/ack`. Default `false`.
    #[serde(default)]
    pub acknowledgements: bool,
    /// Most channels holding acknowledgement state at once. Default 1000.
    #[serde(default = "default_max_ack_channels")]
    pub max_ack_channels: usize,
    /// Most ack ids per channel not yet read `true` by its sender. Default 10000.
    #[serde(default = "default_max_pending_acks_per_channel")]
    pub max_pending_acks_per_channel: usize,
    /// A channel unused this long may be forgotten to make room for a new one. Default `10m`.
    #[serde(default = "default_ack_idle_timeout")]
    pub ack_idle_timeout: ConfigDuration,
    /// Largest body, as received and after gzip decoding. Default `10MiB`.
    #[serde(default = "default_max_body_size")]
    pub max_body_size: ConfigSize,
    /// Most events (envelopes, raw lines) one request may hold; over it: 413. Default 10000.
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
    /// Which member of an `event` object feeds each well-known event field. Default: none.
    #[serde(default)]
    pub mapping: FieldMapping,
    /// Refuse an envelope whose well-known or mapped field does not fit (code 6 naming it)
    /// instead of keeping the value under `attributes` with a note. Default `false`.
    #[serde(default)]
    pub strict: bool,
}

/// One accepted HEC token (`tokens: [{ token, index, source, sourcetype, allowed_indexes }]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The token (a secret: from `${env:…}` or `${file:…}`, never printed).
    pub token: Secret,
    /// Index of events that name none. Default: none (the event carries no index).
    #[serde(default)]
    pub index: Option<String>,
    /// Source of events that name none.
    #[serde(default)]
    pub source: Option<String>,
    /// Sourcetype of events that name none.
    #[serde(default)]
    pub sourcetype: Option<String>,
    /// Indexes this token may write to; another one is refused with code 7 ("Incorrect
    /// index"). Default: any.
    #[serde(default)]
    pub allowed_indexes: Vec<String>,
}

fn default_max_body_size() -> ConfigSize {
    ConfigSize(DEFAULT_MAX_BODY_SIZE)
}
fn default_max_events_per_request() -> usize {
    DEFAULT_MAX_EVENTS_PER_REQUEST
}
fn default_max_ack_channels() -> usize {
    DEFAULT_MAX_ACK_CHANNELS
}
fn default_max_pending_acks_per_channel() -> usize {
    DEFAULT_MAX_PENDING_ACKS_PER_CHANNEL
}
fn default_ack_idle_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_ACK_IDLE_TIMEOUT)
}

impl SplunkHecConfig {
    /// Semantic checks that need no socket; each issue names its key inside the block and
    /// never a token.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.tokens.is_empty() {
            issues.push(ConfigIssue::new(
                "tokens",
                "at least one token is required (HEC senders always present one)",
            ));
        }
        for (i, token) in self.tokens.iter().enumerate() {
            if let Some(index) = &token.index
                && !token.allowed_indexes.is_empty()
                && !token.allowed_indexes.contains(index)
            {
                issues.push(ConfigIssue::new(
                    format!("tokens[{i}].index"),
                    format!("default index {index:?} is not in this token's allowed_indexes"),
                ));
            }
            let text = token.token.expose();
            if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                issues.push(ConfigIssue::new(
                    format!("tokens[{i}].token"),
                    "a token cannot contain spaces or control characters",
                ));
            }
            let earlier = &self.tokens[..i];
            if earlier.iter().any(|t| t.token.expose() == text) {
                issues.push(ConfigIssue::new(
                    format!("tokens[{i}].token"),
                    "the same token is listed twice",
                ));
            }
        }
        for (key, zero) in [
            ("max_body_size", self.max_body_size.0 == 0),
            ("max_events_per_request", self.max_events_per_request == 0),
            ("max_ack_channels", self.max_ack_channels == 0),
            (
                "max_pending_acks_per_channel",
                self.max_pending_acks_per_channel == 0,
            ),
            ("ack_idle_timeout", self.ack_idle_timeout.0.is_zero()),
        ] {
            if zero {
                issues.push(ConfigIssue::new(key, "must be greater than 0"));
            }
        }
        issues.extend(crate::listener::listener_issues(
            "",
            self.tls.as_ref(),
            &self.limits,
        ));
        issues
    }

    /// How the receiver `id` turns `event` objects into events.
    pub fn ingest_options(&self, id: &str) -> IngestOptions {
        IngestOptions::for_receiver(id, self.mapping.clone(), self.strict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: serde_json::Value) -> Result<SplunkHecConfig, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn endpoint_and_tokens_are_required_and_defaults_apply() {
        let err = parse(serde_json::json!({"tokens": [{"token": "t-1234"}]})).unwrap_err();
        assert!(err.contains("endpoint"), "{err}");
        let config = parse(serde_json::json!({"endpoint": "127.0.0.1:0", "tokens": []})).unwrap();
        assert_eq!(config.validate()[0].key, "tokens");
        let config =
            parse(serde_json::json!({"endpoint": "127.0.0.1:0", "tokens": [{"token": "t-1234"}]}))
                .unwrap();
        assert!(config.validate().is_empty());
        assert_eq!(config.max_body_size.0, 10 * 1024 * 1024);
        assert_eq!(config.max_events_per_request, 10_000);
        assert!(!config.acknowledgements && !config.allow_query_token && !config.strict);
        assert_eq!(config.max_ack_channels, 1000);
        assert_eq!(config.max_pending_acks_per_channel, 10_000);
        let err = parse(serde_json::json!({"endpoint": "127.0.0.1:0", "tokens": [{"token": "t-1234", "indexes": []}]}))
            .unwrap_err();
        assert!(err.contains("indexes"), "{err}");
    }

    #[test]
    fn issues_name_their_keys_and_never_the_token() {
        let config = parse(serde_json::json!({
            "endpoint": "127.0.0.1:0", "max_ack_channels": 0,
            "tokens": [
                {"token": "secret-one", "index": "main", "allowed_indexes": ["security"]},
                {"token": "secret-one"},
                {"token": "has space"}
            ]
        }))
        .unwrap();
        let issues = config.validate();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "tokens[0].index",
                "tokens[1].token",
                "tokens[2].token",
                "max_ack_channels"
            ]
        );
        for issue in &issues {
            assert!(
                !issue.message.contains("secret-one") && !issue.message.contains("has space"),
                "{issue}"
            );
        }
    }
}
