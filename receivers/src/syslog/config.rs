//! The `syslog` receiver's configuration, in the OTLP receiver's shape:
//! `protocols: { udp: { endpoint }, tcp: { endpoint, tls, max_message_size } }`.

use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::cidr::CidrAllowList;
use siemrelay_core::config_types::{ConfigDuration, ConfigSize, HostPort};
use siemrelay_core::ingest::{FieldMapping, IngestOptions};
use siemrelay_core::listener_tls::ListenerTlsConfig;
use std::time::Duration;

/// Default largest message over TCP/TLS (64 KiB; rsyslog's default is 8 KiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 64 * 1024;
/// Largest message a TCP listener may be configured for (16 MiB).
pub const MAX_MAX_MESSAGE_SIZE: u64 = 16 * 1024 * 1024;
/// Default most open TCP connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default time a TCP connection may stay silent before it is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default UDP socket receive buffer asked of the kernel (capped by `net.core.rmem_max`).
pub const DEFAULT_RECEIVE_BUFFER_SIZE: u64 = 4 * 1024 * 1024;

/// Configuration of one `syslog` receiver (`receivers: syslog/<name>: …`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// The transports to serve; at least one of `udp` and `tcp` is required.
    pub protocols: Protocols,
    /// Which field feeds each well-known event field, as for `webhook` (paths into the event as
    /// the syslog receiver builds it, e.g. `attributes.externalId`). Default: none.
    #[serde(default)]
    pub mapping: FieldMapping,
    /// Refuse a message whose mapped field does not fit or that repeats a key, instead of
    /// keeping the value under `attributes` with a note. Default `false`.
    #[serde(default)]
    pub strict: bool,
}

/// The transports the receiver listens on.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// Syslog over UDP (one message per datagram; no acknowledgement). Left out = not served.
    #[serde(default)]
    pub udp: Option<UdpConfig>,
    /// Syslog over TCP or TLS (octet counting or LF framing). Left out = not served.
    #[serde(default)]
    pub tcp: Option<TcpConfig>,
}

/// `protocols.udp`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpConfig {
    /// The `host:port` to listen on (required; usually port 514).
    pub endpoint: HostPort,
    /// Client addresses served; datagrams from any other address are dropped and counted.
    /// Default: every address.
    #[serde(default)]
    pub allowed_cidrs: CidrAllowList,
    /// Socket receive buffer asked of the kernel (`SO_RCVBUF`, capped by `net.core.rmem_max`).
    /// Default `4MiB`.
    #[serde(default = "default_receive_buffer_size")]
    pub receive_buffer_size: ConfigSize,
}

/// `protocols.tcp`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// The `host:port` to listen on (required; usually 514, or 6514 with TLS).
    pub endpoint: HostPort,
    /// Client addresses served; any other connection is closed before a byte is read.
    /// Default: every address.
    #[serde(default)]
    pub allowed_cidrs: CidrAllowList,
    /// Serve TLS (RFC 5425): `cert_file`, `key_file`, optional `client_ca_file` to require client
    /// certificates signed by it; files re-read on SIGHUP. Default: plain TCP.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// Largest message (one frame) accepted; a larger one is skipped and counted. Default `64KiB`.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: ConfigSize,
    /// Most open connections; past it the listener stops accepting. Default `1024`.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed. Default `10m`.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: ConfigDuration,
}

fn default_receive_buffer_size() -> ConfigSize {
    ConfigSize(DEFAULT_RECEIVE_BUFFER_SIZE)
}
fn default_max_message_size() -> ConfigSize {
    ConfigSize(DEFAULT_MAX_MESSAGE_SIZE)
}
fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_idle_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_IDLE_TIMEOUT)
}

impl SyslogConfig {
    /// Checks the config without opening sockets; each issue names its key inside the block.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let (udp, tcp) = (&self.protocols.udp, &self.protocols.tcp);
        if udp.is_none() && tcp.is_none() {
            issues.push(ConfigIssue::new(
                "protocols",
                "at least one of protocols.udp and protocols.tcp is required",
            ));
        }
        if let Some(udp) = udp
            && udp.receive_buffer_size.0 == 0
        {
            issues.push(ConfigIssue::new(
                "protocols.udp.receive_buffer_size",
                "must be greater than 0",
            ));
        }
        if let Some(tcp) = tcp {
            let size = tcp.max_message_size.0;
            if size == 0 || size > MAX_MAX_MESSAGE_SIZE {
                issues.push(ConfigIssue::new(
                    "protocols.tcp.max_message_size",
                    format!("must be between 1 and 16MiB, got {size} bytes"),
                ));
            }
            if tcp.max_connections == 0 {
                issues.push(ConfigIssue::new(
                    "protocols.tcp.max_connections",
                    "must be greater than 0",
                ));
            }
            if tcp.idle_timeout.0.is_zero() {
                issues.push(ConfigIssue::new(
                    "protocols.tcp.idle_timeout",
                    "must be greater than 0",
                ));
            }
            issues.extend(crate::listener::tls_issues(
                "protocols.tcp.tls",
                tcp.tls.as_ref(),
            ));
        }
        issues
    }

    /// How the receiver `id` turns messages into events (the shared ingest's rules).
    pub fn ingest_options(&self, id: &str) -> IngestOptions {
        IngestOptions::for_receiver(id, self.mapping.clone(), self.strict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<SyslogConfig, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn otlp_shaped_config_parses_with_defaults() {
        let config = parse(serde_json::json!({"protocols": {
            "udp": {"endpoint": "127.0.0.1:5514"},
            "tcp": {"endpoint": "127.0.0.1:5514", "max_message_size": "8KiB"}}}))
        .unwrap();
        assert!(config.validate().is_empty());
        let udp = config.protocols.udp.unwrap();
        assert_eq!(udp.receive_buffer_size.0, 4 * 1024 * 1024);
        let tcp = config.protocols.tcp.unwrap();
        assert_eq!(tcp.max_message_size.0, 8 * 1024);
        assert_eq!(tcp.max_connections, 1024);
        assert!(tcp.tls.is_none() && tcp.allowed_cidrs.is_empty());
    }

    #[test]
    fn endpoint_is_required_and_unknown_keys_are_refused() {
        let err = parse(serde_json::json!({"protocols": {"tcp": {}}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("endpoint"), "{err}");
        let err = parse(
            serde_json::json!({"protocols": {"udp": {"endpoint": "127.0.0.1:1", "port": 2}}}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("port"), "{err}");
    }

    #[test]
    fn semantic_issues_name_their_keys() {
        let config = parse(serde_json::json!({"protocols": {}})).unwrap();
        assert_eq!(config.validate()[0].key, "protocols");
        let config = parse(serde_json::json!({"protocols": {
            "udp": {"endpoint": "127.0.0.1:1", "receive_buffer_size": 0},
            "tcp": {"endpoint": "127.0.0.1:1", "max_message_size": "1GiB", "max_connections": 0,
                    "idle_timeout": "0s",
                    "tls": {"cert_file": "/nonexistent/c.pem", "key_file": "/nonexistent/k.pem"}}}}))
        .unwrap();
        let keys: Vec<String> = config.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "protocols.udp.receive_buffer_size",
                "protocols.tcp.max_message_size",
                "protocols.tcp.max_connections",
                "protocols.tcp.idle_timeout",
                "protocols.tcp.tls.cert_file",
                "protocols.tcp.tls.key_file"
            ]
        );
    }
}
