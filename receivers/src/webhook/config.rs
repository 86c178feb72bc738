//! The `webhook` receiver's configuration and its semantic checks.

use super::verify::{Scheme, Verifier};
use crate::listener::ListenerLimits;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::cidr::CidrAllowList;
use siemrelay_core::config_types::{ConfigDuration, ConfigSize, HostPort, Secret, parse_host_port};
use siemrelay_core::ingest::{FieldMapping, IngestOptions};
use siemrelay_core::listener_tls::ListenerTlsConfig;
use std::time::Duration;

/// Default listen address.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:8088";
/// Default URL path events are posted to.
pub const DEFAULT_PATH: &str = "/v1/events";
/// Default largest accepted body, before and after gzip decoding (10 MiB).
pub const DEFAULT_MAX_BODY_SIZE: u64 = 10 * 1024 * 1024;
/// Default most events one request may hold.
pub const DEFAULT_MAX_EVENTS_PER_REQUEST: usize = 10_000;
/// Default accepted clock skew for timestamped signature schemes (5 minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Configuration of one `webhook` receiver (`receivers: webhook/<name>: …`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Address to listen on. Default `127.0.0.1:8088`.
    #[serde(default = "default_endpoint")]
    pub endpoint: HostPort,
    /// Client addresses served (CIDR blocks or single addresses); any other client gets 403
    /// before its body is read. Default: every address.
    #[serde(default)]
    pub allowed_cidrs: CidrAllowList,
    /// Serve HTTPS (`cert_file`, `key_file`, optional `client_ca_file` to require client
    /// certificates signed by it); files re-read on SIGHUP. Default: plain HTTP.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// Connection and request caps and timeouts. Defaults in [`ListenerLimits`].
    #[serde(default)]
    pub limits: ListenerLimits,
    /// URL path that accepts events; any other path answers 404. Default `/v1/events`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Bearer-token authentication. Default: none (any sender may post).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Largest body accepted, both as received and after gzip decoding. Default `10MiB`.
    #[serde(default = "default_max_body_size")]
    pub max_body_size: ConfigSize,
    /// Most events one request may hold; the parser stops at the first one over it and the
    /// request is refused with 413. Default `10000`.
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
    /// Which sender field feeds each well-known event field. Default: none.
    #[serde(default)]
    pub mapping: FieldMapping,
    /// Reject a whole request when a well-known or mapped field does not fit. Default `false`
    /// (the value is kept under `attributes` with a `mapping_error` note).
    #[serde(default)]
    pub strict: bool,
    /// Signature verification of the raw body. Default: none.
    #[serde(default)]
    pub verify: Option<VerifyConfig>,
}

/// `auth:` block: how senders authenticate.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Token expected in `Authorization: Bearer <token>`. Required inside `auth`.
    pub bearer_token: Secret,
}

/// `verify:` block: an HMAC signature over the exact body bytes as received.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Signature scheme: `hmac_sha256`, `github`, `stripe`, `slack`, `standard_webhooks` or
    /// `timestamped`.
    pub scheme: Scheme,
    /// Header carrying the signature; only for `hmac_sha256` (required there), `github`
    /// (default `X-Hub-Signature-256`) and `timestamped` (default `X-Siemrelay-Signature`). The
    /// other schemes use their fixed headers.
    #[serde(default)]
    pub header: Option<String>,
    /// Header carrying the signed Unix timestamp; only for `timestamped` (default
    /// `X-Siemrelay-Timestamp`).
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Shared secrets, tried in order (several while rotating: new first, then old).
    pub secrets: Vec<Secret>,
    /// Accepted clock skew for `stripe`, `slack`, `standard_webhooks` and `timestamped`; requests signed
    /// earlier or later than this are replays. Default `5m`.
    #[serde(default)]
    pub tolerance: Option<ConfigDuration>,
}

fn default_endpoint() -> HostPort {
    // The default is a literal socket address, which always parses; the fallback keeps this
    // free of panics all the same.
    parse_host_port(DEFAULT_ENDPOINT).unwrap_or_else(|_| HostPort {
        text: DEFAULT_ENDPOINT.to_string(),
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8088)),
    })
}

fn default_path() -> String {
    DEFAULT_PATH.to_string()
}

fn default_max_body_size() -> ConfigSize {
    ConfigSize(DEFAULT_MAX_BODY_SIZE)
}

fn default_max_events_per_request() -> usize {
    DEFAULT_MAX_EVENTS_PER_REQUEST
}

impl WebhookConfig {
    /// Semantic checks that need no socket; each issue names its key inside the block.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        self.checked_verifier().err().unwrap_or_default()
    }

    /// Runs every check and, when none fails, returns the prepared verifier (if configured).
    pub fn checked_verifier(&self) -> Result<Option<Verifier>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        if !self.path.starts_with('/') {
            issues.push(ConfigIssue::new(
                "path",
                format!("path {:?} must start with /", self.path),
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
        let verifier = match self.verify.as_ref().map(Verifier::from_config) {
            Some(Ok(verifier)) => Some(verifier),
            Some(Err(more)) => {
                issues.extend(more);
                None
            }
            None => None,
        };
        if issues.is_empty() {
            Ok(verifier)
        } else {
            Err(issues)
        }
    }

    /// How the receiver `id` turns JSON objects into events.
    pub fn ingest_options(&self, id: &str) -> IngestOptions {
        IngestOptions::for_receiver(id, self.mapping.clone(), self.strict)
    }
}

impl VerifyConfig {
    /// The configured tolerance, or the 5-minute default.
    pub fn tolerance_or_default(&self) -> Duration {
        self.tolerance.map_or(DEFAULT_TOLERANCE, Duration::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: serde_json::Value) -> WebhookConfig {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn defaults_apply() {
        let config = parse(serde_json::json!({}));
        assert_eq!(config.endpoint.addr.port(), 8088);
        assert_eq!(config.path, "/v1/events");
        assert_eq!(config.max_body_size.0, 10 * 1024 * 1024);
        assert_eq!(config.max_events_per_request, 10_000);
        assert!(config.tls.is_none() && config.allowed_cidrs.is_empty());
        assert_eq!(config.limits, ListenerLimits::default());
        assert!(config.auth.is_none() && config.verify.is_none() && !config.strict);
        assert!(config.validate().is_empty());
    }

    #[test]
    fn unknown_keys_and_schemes_are_rejected() {
        let err = serde_json::from_value::<WebhookConfig>(serde_json::json!({"paht": "/x"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("paht"), "{err}");
        let err = serde_json::from_value::<WebhookConfig>(
            serde_json::json!({"verify": {"scheme": "md5", "secrets": ["s"]}}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("md5") && err.contains("standard_webhooks"),
            "{err}"
        );
    }

    #[test]
    fn semantic_issues_name_their_keys_without_secrets() {
        let config = parse(serde_json::json!({
            "path": "hooks", "max_body_size": 0, "max_events_per_request": 0,
            "verify": {"scheme": "slack", "header": "X-Sig", "secrets": [], "tolerance": "0s"}
        }));
        let keys: Vec<String> = config.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "path",
                "max_body_size",
                "max_events_per_request",
                "verify.header",
                "verify.secrets",
                "verify.tolerance"
            ]
        );

        let config = parse(serde_json::json!({
            "verify": {"scheme": "standard_webhooks", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!"]}
        }));
        let issues = config.validate();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].key, "verify.secrets[1]");
        assert!(!issues[0].message.contains("not base64!"));

        let config =
            parse(serde_json::json!({"verify": {"scheme": "hmac_sha256", "secrets": ["s"]}}));
        assert_eq!(config.validate()[0].key, "verify.header");
        let config = parse(serde_json::json!({
            "verify": {"scheme": "github", "secrets": ["s"], "tolerance": "1m"}}));
        assert_eq!(config.validate()[0].key, "verify.tolerance");
        let config = parse(serde_json::json!({
            "verify": {"scheme": "hmac_sha256", "header": "bad header", "secrets": ["s"]}}));
        assert_eq!(config.validate()[0].key, "verify.header");
    }
}
