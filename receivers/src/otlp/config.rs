//! The `otlp` receiver's configuration, in the OpenTelemetry Collector's shape.

use crate::listener::ListenerLimits;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::cidr::CidrAllowList;
use siemrelay_core::config_types::{ConfigSize, HostPort, Secret};
use siemrelay_core::listener_tls::ListenerTlsConfig;

/// Default largest request body accepted (after decompression): 20 MiB, as OTLP recommends.
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 20 * 1024 * 1024;
/// Default most log records one request may hold.
pub const DEFAULT_MAX_EVENTS_PER_REQUEST: usize = 10_000;

/// Configuration of the `otlp` receiver.
///
/// ```yaml
/// protocols:
///   grpc: { endpoint: "127.0.0.1:4317" }
///   http: { endpoint: "127.0.0.1:4318" }
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The protocols to serve; at least one of `grpc` and `http` is required.
    pub protocols: Protocols,
}

/// The protocols the receiver listens on.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// OTLP/gRPC (`LogsService/Export`); left out = not served. Usual port 4317.
    #[serde(default)]
    pub grpc: Option<ProtocolConfig>,
    /// OTLP/HTTP (`POST /v1/logs`); left out = not served. Usual port 4318.
    #[serde(default)]
    pub http: Option<ProtocolConfig>,
}

/// One protocol's listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolConfig {
    /// The `host:port` to listen on (required).
    pub endpoint: HostPort,
    /// Client addresses served (CIDR blocks or single addresses); any other client is refused
    /// before its request is read (HTTP 403, gRPC PERMISSION_DENIED). Default: every address.
    #[serde(default)]
    pub allowed_cidrs: CidrAllowList,
    /// Serve TLS (`cert_file`, `key_file`, optional `client_ca_file` to require client
    /// certificates signed by it); files re-read on SIGHUP. Default: plain text.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// Connection and request caps and timeouts. Defaults in [`ListenerLimits`].
    #[serde(default)]
    pub limits: ListenerLimits,
    /// Require a bearer token; default: no authentication.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Largest request accepted, after decompression; default 20MiB.
    #[serde(default)]
    pub max_request_size: Option<ConfigSize>,
    /// Most log records one request may hold; counted before the request is decoded, which
    /// stops at the first one over (HTTP 413, gRPC RESOURCE_EXHAUSTED). Default `10000`.
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
}

fn default_max_events_per_request() -> usize {
    DEFAULT_MAX_EVENTS_PER_REQUEST
}

impl ProtocolConfig {
    /// The request size limit in bytes (the configured one or 20 MiB).
    pub fn max_request_bytes(&self) -> usize {
        self.max_request_size
            .map_or(DEFAULT_MAX_REQUEST_SIZE as usize, ConfigSize::as_usize)
    }
}

/// Authentication required from senders.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Senders must send `Authorization: Bearer <token>` (gRPC: `authorization` metadata).
    pub bearer_token: Secret,
}

impl OtlpConfig {
    /// Checks the config without opening sockets or files.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let protocols = [
            ("grpc", self.protocols.grpc.as_ref()),
            ("http", self.protocols.http.as_ref()),
        ];
        if protocols.iter().all(|(_, p)| p.is_none()) {
            issues.push(ConfigIssue::new(
                "protocols",
                "at least one of protocols.grpc and protocols.http is required",
            ));
        }
        for (name, protocol) in protocols {
            let Some(protocol) = protocol else { continue };
            if protocol.max_request_size.is_some_and(|s| s.0 == 0) {
                issues.push(ConfigIssue::new(
                    format!("protocols.{name}.max_request_size"),
                    "must be greater than 0",
                ));
            }
            if protocol.max_events_per_request == 0 {
                issues.push(ConfigIssue::new(
                    format!("protocols.{name}.max_events_per_request"),
                    "must be greater than 0",
                ));
            }
            issues.extend(crate::listener::listener_issues(
                &format!("protocols.{name}."),
                protocol.tls.as_ref(),
                &protocol.limits,
            ));
        }
        if let (Some(grpc), Some(http)) = (&self.protocols.grpc, &self.protocols.http)
            && grpc.endpoint.addr == http.endpoint.addr
            && grpc.endpoint.addr.port() != 0
        {
            issues.push(ConfigIssue::new(
                "protocols.http.endpoint",
                format!(
                    "{} is also protocols.grpc.endpoint; give each protocol its own port",
                    http.endpoint.text
                ),
            ));
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<OtlpConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn collector_shaped_config_parses_with_defaults() {
        let config = parse(
            r#"{"protocols":{"grpc":{"endpoint":"127.0.0.1:4317"},
                "http":{"endpoint":"127.0.0.1:4318","max_request_size":"1MiB",
                        "auth":{"bearer_token":"s3cret"}}}}"#,
        )
        .unwrap();
        assert!(config.validate().is_empty());
        let grpc = config.protocols.grpc.unwrap();
        assert_eq!(grpc.max_request_bytes(), 20 * 1024 * 1024);
        assert_eq!(grpc.max_events_per_request, 10_000);
        assert!(grpc.allowed_cidrs.is_empty() && grpc.tls.is_none());
        let http = config.protocols.http.unwrap();
        assert_eq!(http.max_request_bytes(), 1024 * 1024);
        assert_eq!(http.auth.unwrap().bearer_token.expose(), "s3cret");
    }

    #[test]
    fn unknown_keys_and_missing_protocols_are_reported() {
        let err = parse(r#"{"protocols":{"grpc":{"endpoint":"127.0.0.1:4317","port":1}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("port"), "{err}");
        let config = parse(r#"{"protocols":{}}"#).unwrap();
        let issues = config.validate();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "protocols");
    }

    #[test]
    fn same_port_for_both_protocols_is_an_issue() {
        let config = parse(
            r#"{"protocols":{"grpc":{"endpoint":"127.0.0.1:4317"},
                "http":{"endpoint":"127.0.0.1:4317","max_request_size":0}}}"#,
        )
        .unwrap();
        let keys: Vec<_> = config.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            ["protocols.http.max_request_size", "protocols.http.endpoint"]
        );
    }
}
