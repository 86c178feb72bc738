//! The `elasticsearch` receiver's configuration and its semantic checks.

use crate::listener::ListenerLimits;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::cidr::CidrAllowList;
use siemrelay_core::config_types::{ConfigSize, HostPort, Secret};
use siemrelay_core::ingest::{FieldMapping, IngestOptions};
use siemrelay_core::listener_tls::ListenerTlsConfig;

/// Default largest accepted bulk body, as received and decoded (10 MiB, the size Elastic
/// recommends per bulk request).
pub const DEFAULT_MAX_BODY_SIZE: u64 = 10 * 1024 * 1024;
/// Default most documents (`index`/`create` actions) per bulk request.
pub const DEFAULT_MAX_EVENTS_PER_REQUEST: usize = 10_000;
/// Default version announced by `GET /`.
pub const DEFAULT_VERSION: &str = "8.17.0";

/// Configuration of one `elasticsearch` receiver (`receivers: elasticsearch/<name>: …`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Address to listen on. Required: no default port.
    pub endpoint: HostPort,
    /// Credentials senders must present. Default: none (any sender may post, like a cluster
    /// with security off).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Client addresses served; any other client gets 403 before its body is read.
    #[serde(default)]
    pub allowed_cidrs: CidrAllowList,
    /// Serve HTTPS (`cert_file`, `key_file`, optional `client_ca_file`). Default: plain HTTP.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// Connection and request caps and timeouts. Defaults in [`ListenerLimits`].
    #[serde(default)]
    pub limits: ListenerLimits,
    /// Largest bulk body accepted, as received and after decoding. Default `10MiB`.
    #[serde(default = "default_max_body_size")]
    pub max_body_size: ConfigSize,
    /// Most `index`/`create` actions one bulk request may hold. Default `10000`.
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
    /// `version.number` in the `GET /` document (clients that pick an API by version read it).
    /// Default `8.17.0`.
    #[serde(default = "default_version")]
    pub version: String,
    /// Which document field feeds each well-known event field. Default: none.
    #[serde(default)]
    pub mapping: FieldMapping,
    /// A document whose field does not fit its event field fails (item 400) instead of being
    /// kept with a note. Default `false`.
    #[serde(default)]
    pub strict: bool,
}

/// `auth:` block: the credentials accepted (any one of them).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `Authorization: Basic` users.
    #[serde(default)]
    pub basic: Vec<BasicUser>,
    /// `Authorization: ApiKey <value>`: the `encoded` value of a key (base64 of `id:api_key`),
    /// as Elasticsearch returns it when the key is created.
    #[serde(default)]
    pub api_keys: Vec<Secret>,
}

/// One basic-auth user.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicUser {
    /// User name.
    pub username: String,
    /// Password (a secret).
    pub password: Secret,
}

fn default_max_body_size() -> ConfigSize {
    ConfigSize(DEFAULT_MAX_BODY_SIZE)
}

fn default_max_events_per_request() -> usize {
    DEFAULT_MAX_EVENTS_PER_REQUEST
}

fn default_version() -> String {
    DEFAULT_VERSION.to_string()
}

impl ElasticsearchConfig {
    /// Semantic checks that need no socket; each issue names its key inside the block.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if let Some(auth) = &self.auth {
            if auth.basic.is_empty() && auth.api_keys.is_empty() {
                issues.push(ConfigIssue::new(
                    "auth",
                    "give basic users and/or api_keys (leave auth out to accept any sender)",
                ));
            }
            for (at, user) in auth.basic.iter().enumerate() {
                if user.username.is_empty() || user.username.contains(':') {
                    issues.push(ConfigIssue::new(
                        format!("auth.basic[{at}].username"),
                        "a user name is not empty and holds no ':'",
                    ));
                }
            }
        }
        issues.extend(crate::listener::request_limit_issues(
            self.max_body_size,
            self.max_events_per_request,
        ));
        let parts: Vec<&str> = self.version.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.parse::<u32>().is_err()) {
            issues.push(ConfigIssue::new(
                "version",
                format!("version {:?} is not MAJOR.MINOR.PATCH", self.version),
            ));
        }
        issues.extend(crate::listener::listener_issues(
            "",
            self.tls.as_ref(),
            &self.limits,
        ));
        issues
    }

    /// How the receiver `id` turns documents into events.
    pub fn ingest_options(&self, id: &str) -> IngestOptions {
        IngestOptions::for_receiver(id, self.mapping.clone(), self.strict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_is_required_and_bad_values_name_their_keys() {
        let error = serde_json::from_value::<ElasticsearchConfig>(serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("endpoint"), "{error}");
        let config: ElasticsearchConfig = serde_json::from_value(serde_json::json!({
            "endpoint": "127.0.0.1:9200", "auth": {"basic": [{"username": "a:b", "password": "secret-pw"}]},
            "version": "8.x", "max_events_per_request": 0}))
        .unwrap();
        let keys: Vec<String> = config.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "auth.basic[0].username",
                "max_events_per_request",
                "version"
            ]
        );
        let config: ElasticsearchConfig =
            serde_json::from_value(serde_json::json!({"endpoint": "127.0.0.1:9200", "auth": {}}))
                .unwrap();
        assert_eq!(config.validate()[0].key, "auth");
        let config: ElasticsearchConfig =
            serde_json::from_value(serde_json::json!({"endpoint": "127.0.0.1:9200"})).unwrap();
        assert!(config.validate().is_empty());
        assert_eq!(config.version, "8.17.0");
    }
}
