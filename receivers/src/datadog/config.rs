//! The `datadog` receiver's configuration and its semantic checks.

use crate::listener::ListenerLimits;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::cidr::CidrAllowList;
use siemrelay_core::config_types::{ConfigSize, HostPort, Secret};
use siemrelay_core::ingest::{FieldMapping, IngestOptions};
use siemrelay_core::listener_tls::ListenerTlsConfig;

/// Default largest accepted body, as received and decoded: Datadog's 5 MB per payload
/// (uncompressed), so whatever Datadog's intake takes, this receiver takes.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 5 * 1024 * 1024;
/// Default most logs one request may hold: Datadog's 1,000 entries per array.
pub const DEFAULT_MAX_EVENTS_PER_REQUEST: usize = 1000;

/// Configuration of one `datadog` receiver (`receivers: datadog/<name>: …`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatadogConfig {
    /// Address to listen on. Required: no default port.
    pub endpoint: HostPort,
    /// API keys senders may present (`DD-API-KEY` header, or the path of `/v1/input/<key>`).
    /// Secrets: write them as `${env:…}` or `${file:…}`. At least one.
    pub api_keys: Vec<Secret>,
    /// Client addresses served (CIDR blocks or single addresses); any other client gets 403
    /// before its body is read. Default: every address.
    #[serde(default)]
    pub allowed_cidrs: CidrAllowList,
    /// Serve HTTPS (`cert_file`, `key_file`, optional `client_ca_file`). Default: plain HTTP.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// Connection and request caps and timeouts. Defaults in [`ListenerLimits`].
    #[serde(default)]
    pub limits: ListenerLimits,
    /// Largest body accepted, as received and after decoding. Default `5MiB`.
    #[serde(default = "default_max_body_size")]
    pub max_body_size: ConfigSize,
    /// Most logs one request may hold. Default `1000`.
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
    /// Which log attribute feeds each well-known event field, on top of the reserved attributes'
    /// own mapping. Default: none.
    #[serde(default)]
    pub mapping: FieldMapping,
    /// Reject a whole request when a field does not fit its event field. Default `false`.
    #[serde(default)]
    pub strict: bool,
}

fn default_max_body_size() -> ConfigSize {
    ConfigSize(DEFAULT_MAX_BODY_SIZE)
}

fn default_max_events_per_request() -> usize {
    DEFAULT_MAX_EVENTS_PER_REQUEST
}

impl DatadogConfig {
    /// Semantic checks that need no socket; each issue names its key inside the block and
    /// never a secret's value.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.api_keys.is_empty() {
            issues.push(ConfigIssue::new(
                "api_keys",
                "give at least one API key (senders present it as DD-API-KEY)",
            ));
        }
        issues.extend(crate::listener::request_limit_issues(
            self.max_body_size,
            self.max_events_per_request,
        ));
        issues.extend(crate::listener::listener_issues(
            "",
            self.tls.as_ref(),
            &self.limits,
        ));
        issues
    }

    /// How the receiver `id` turns log objects into events.
    pub fn ingest_options(&self, id: &str) -> IngestOptions {
        IngestOptions::for_receiver(id, self.mapping.clone(), self.strict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_and_keys_are_required_and_defaults_follow_datadog() {
        let error =
            serde_json::from_value::<DatadogConfig>(serde_json::json!({"api_keys": ["k1234"]}))
                .unwrap_err()
                .to_string();
        assert!(error.contains("endpoint"), "{error}");
        let config: DatadogConfig = serde_json::from_value(
            serde_json::json!({"endpoint": "127.0.0.1:8282", "api_keys": []}),
        )
        .unwrap();
        assert_eq!(config.validate()[0].key, "api_keys");
        assert_eq!(config.max_body_size.0, 5 * 1024 * 1024);
        assert_eq!(config.max_events_per_request, 1000);
        let error = serde_json::from_value::<DatadogConfig>(
            serde_json::json!({"endpoint": "127.0.0.1:8282", "api_keys": ["k1234"], "api_key": "x"}),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("api_key"), "{error}");
    }
}
