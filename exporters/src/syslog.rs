//! The `syslog` exporter: RFC 5424 messages carrying LEEF, CEF or JSON, over TCP, TLS or UDP.
//!
//! `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG`: PRI from `facility` (default `local4`) and
//! the event severity; TIMESTAMP the event time in UTC with milliseconds; HOST `hostname` or the
//! local host name; APP `app_name` (default `siemrelay`); PROCID siemrelay's process id; MSGID the
//! event type; no structured data. Framing `lf` (default) or `octet_counting` (RFC 6587).
//!
//! When a batch counts as delivered (syslog has no acknowledgement):
//! - `confirm: tcp_ack`: every byte was written and flushed and the server's TCP stack
//!   acknowledged all of it (Linux `SIOCOUTQ` = 0), without a reset. Bytes the server's kernel
//!   acknowledged but the server process never read (it crashed or was stopped at that moment)
//!   are lost without notice; that window is at most the server's socket receive buffer.
//! - `confirm: peer_close` (default): after the batch the connection is half-closed (TLS: close_notify) and
//!   the batch counts only once the server has closed its side, which it does after reading every
//!   byte. No silent gap; one connection (and TLS handshake) per batch.
//! - `transport: udp`: when the datagrams were sent. UDP loses events silently.
//!
//! Any failure (connect, write, reset, no acknowledgement within `sending.timeout`) makes the
//! whole batch retry on a new connection: the server may see part of it twice (duplicates are
//! bounded by the batch), never a gap.

pub mod cef;
pub mod factory;
pub mod fields;
pub mod keys;
pub mod leef;
pub mod message;
pub mod rfc5424;
pub mod tls;
pub mod transport;

use crate::delivery::{Outcome, Outcomes, RequestLimits, RequestRecord, SendReport, Sink};
use async_trait::async_trait;
use cef::{CefEncoder, CefOptions};
use fields::FieldMapping;
use leef::{LeefEncoder, LeefOptions};
use message::{Body, MessageEncoder, MessageFormat};
use rfc5424::{Facility, Framing, Header, check_header_field};
use serde::Deserialize;
use siemrelay_core::config_types::ConfigSize;
use siemrelay_core::{ConfigIssue, Event};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls::SyslogTlsConfig;
use transport::{Connector, Endpoint, StreamPool, UdpSender, parse_endpoint};

/// Default `max_events` per batch.
pub const DEFAULT_MAX_EVENTS: usize = 1000;
/// Default `max_message_size`: 64 KiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 64 << 10;
/// The largest syslog message one UDP datagram carries (IPv4 limit).
pub const UDP_MAX_MESSAGE: usize = 65_507;

/// How messages travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Plain TCP (default; port 514 when the endpoint has none).
    #[default]
    Tcp,
    /// TLS over TCP (RFC 5425; port 6514 when the endpoint has none).
    Tls,
    /// UDP datagrams (port 514): events can be lost silently.
    Udp,
    /// `qradar` only: POST newline-separated lines to QRadar's HTTP Receiver (`endpoint` is a URL).
    Http,
}

impl Transport {
    /// The port used when the endpoint has none.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 6514,
            _ => 514,
        }
    }
}

/// When a batch sent over TCP or TLS counts as delivered (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirm {
    /// Written, flushed and acknowledged by the server's TCP stack. Faster (pooled connections),
    /// but bytes the server's kernel acknowledged and its process never read (a crash at that
    /// moment) are lost without notice: at most its socket receive buffer.
    TcpAck,
    /// Read by the server (default): the connection is half-closed after each batch and the
    /// server closes its side (one connection per batch). No silent gap.
    #[default]
    PeerClose,
}

/// `syslog/<name>:` settings (also the body of `qradar:`, with other defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the syslog server (required; the port defaults by transport: 514, TLS 6514).
    /// For `qradar` with `transport: http`, the HTTP Receiver URL.
    pub endpoint: String,
    /// `tcp` (default), `tls`, `udp` (or `http` for `qradar`).
    #[serde(default)]
    pub transport: Transport,
    /// `lf` (default) or `octet_counting`; TCP and TLS only.
    #[serde(default)]
    pub framing: Framing,
    /// `leef`, `cef` or `json` (default `json` for `syslog`, `leef` for `qradar`).
    pub format: Option<MessageFormat>,
    /// `peer_close` (default) or `tcp_ack`: when a TCP/TLS batch counts as delivered.
    #[serde(default)]
    pub confirm: Confirm,
    /// Syslog facility by name or number (default `local4`, 20).
    #[serde(default)]
    pub facility: Facility,
    /// HOSTNAME of the header (default the local host name). QRadar matches log sources by it.
    pub hostname: Option<String>,
    /// APP-NAME of the header (default `siemrelay`).
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// Which attributes feed user, source/destination address and category.
    #[serde(default)]
    pub fields: FieldMapping,
    /// LEEF header values and delimiter.
    #[serde(default)]
    pub leef: LeefOptions,
    /// CEF header values, custom strings, flattening.
    #[serde(default)]
    pub cef: CefOptions,
    /// TLS settings (CA, client certificate, server name).
    #[serde(default)]
    pub tls: SyslogTlsConfig,
    /// Most events per batch (default 1000).
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Largest message; larger events are dead-lettered (default 64KiB; UDP at most 65507 bytes).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: ConfigSize,
}

fn default_app_name() -> String {
    "siemrelay".into()
}

fn default_max_events() -> usize {
    DEFAULT_MAX_EVENTS
}

fn default_max_message_size() -> ConfigSize {
    ConfigSize(DEFAULT_MAX_MESSAGE_SIZE)
}

/// Which exporter type a [`SyslogConfig`] belongs to: it decides the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `syslog`: JSON by default.
    Syslog,
    /// `qradar`: LEEF by default, `transport: http` allowed.
    Qradar,
}

impl SyslogConfig {
    /// The message format, with the flavor's default.
    pub fn format_for(&self, flavor: Flavor) -> MessageFormat {
        self.format.unwrap_or(match flavor {
            Flavor::Syslog => MessageFormat::Json,
            Flavor::Qradar => MessageFormat::Leef,
        })
    }

    /// The endpoint as host and port (not for `transport: http`).
    pub fn stream_endpoint(&self) -> Result<Endpoint, String> {
        parse_endpoint(&self.endpoint, self.transport.default_port())
    }

    /// Semantic checks of a `syslog` block (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        self.validate_for(Flavor::Syslog)
    }

    /// Semantic checks for a flavor.
    pub fn validate_for(&self, flavor: Flavor) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.transport == Transport::Http {
            if flavor == Flavor::Syslog {
                issues.push(ConfigIssue::new(
                    "transport",
                    "`http` is only for the qradar exporter (its HTTP Receiver); use tcp, tls or udp",
                ));
            } else if let Err(error) = crate::delivery::endpoint::HttpEndpoint::exact(
                &self.endpoint,
                crate::qradar::HTTP_ENDPOINT_EXAMPLE,
            ) {
                issues.push(ConfigIssue::new("endpoint", error.to_string()));
            }
            if self.tls.server_name.is_some() {
                issues.push(ConfigIssue::new(
                    "tls.server_name",
                    "applies to transport tls only (HTTPS verifies the URL's host)",
                ));
            }
        } else if let Err(message) = self.stream_endpoint() {
            issues.push(ConfigIssue::new("endpoint", message));
        }
        if self.transport == Transport::Udp && self.framing != Framing::Lf {
            issues.push(ConfigIssue::new(
                "framing",
                "applies to tcp and tls only (UDP sends one message per datagram)",
            ));
        }
        if self.transport == Transport::Udp && self.confirm != Confirm::TcpAck {
            issues.push(ConfigIssue::new(
                "confirm",
                "applies to tcp and tls only (UDP has no confirmation at all)",
            ));
        }
        if self.tls.is_set() && matches!(self.transport, Transport::Tcp | Transport::Udp) {
            issues.push(ConfigIssue::new(
                "tls",
                "is set but transport is not tls (or http with an https:// endpoint)",
            ));
        }
        issues.extend(self.tls.validate());
        if let Some(hostname) = &self.hostname
            && let Err(message) = check_header_field(hostname, 255)
        {
            issues.push(ConfigIssue::new("hostname", message));
        }
        if let Err(message) = check_header_field(&self.app_name, 48) {
            issues.push(ConfigIssue::new("app_name", message));
        }
        match self.format_for(flavor) {
            MessageFormat::Leef => issues.extend(self.leef.validate()),
            MessageFormat::Cef => issues.extend(self.cef.validate()),
            MessageFormat::Json => {}
        }
        if self.max_events == 0 || self.max_events > 100_000 {
            issues.push(ConfigIssue::new(
                "max_events",
                "must be between 1 and 100000",
            ));
        }
        if self.max_message_size.0 < 480 {
            issues.push(ConfigIssue::new(
                "max_message_size",
                "must be at least 480 bytes (RFC 5424's minimum)",
            ));
        }
        issues
    }

    /// The message encoder (header and body) for a flavor.
    pub fn encoder(&self, flavor: Flavor) -> anyhow::Result<MessageEncoder> {
        let hostname = match &self.hostname {
            Some(name) => name.clone(),
            None => gethostname::gethostname().to_string_lossy().into_owned(),
        };
        let header = Header::new(
            self.facility,
            &hostname,
            &self.app_name,
            &std::process::id().to_string(),
        );
        let body = match self.format_for(flavor) {
            MessageFormat::Leef => Body::Leef(
                LeefEncoder::new(&self.leef, self.fields.clone())
                    .map_err(|e| anyhow::anyhow!("leef.delimiter: {e}"))?,
            ),
            MessageFormat::Cef => Body::Cef(CefEncoder::new(&self.cef, self.fields.clone())),
            MessageFormat::Json => Body::Json,
        };
        Ok(MessageEncoder::new(header, body))
    }
}

/// Builds a `syslog` exporter's sink. `timeout` is `sending.timeout` (also the connect timeout,
/// at most 10s).
pub fn build(id: &str, config: SyslogConfig, timeout: Duration) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(Arc::new(SyslogSink::new(
        id,
        &config,
        Flavor::Syslog,
        timeout,
    )?))
}

enum Wire {
    Stream(StreamPool),
    Udp(UdpSender),
}

/// Sends events as syslog messages over TCP, TLS or UDP.
pub struct SyslogSink {
    encoder: MessageEncoder,
    framing: Framing,
    confirm: Confirm,
    wire: Wire,
    limits: RequestLimits,
    max_message: usize,
}

impl SyslogSink {
    /// A sink for a validated config (`transport` must not be `http`).
    pub fn new(
        id: &str,
        config: &SyslogConfig,
        flavor: Flavor,
        timeout: Duration,
    ) -> anyhow::Result<SyslogSink> {
        let endpoint = config
            .stream_endpoint()
            .map_err(|e| anyhow::anyhow!("endpoint: {e}"))?;
        let connect_timeout = timeout.min(Duration::from_secs(10));
        let mut max_message = config.max_message_size.as_usize();
        let wire = match config.transport {
            Transport::Tcp => Wire::Stream(StreamPool::new(Connector::new(
                id,
                endpoint,
                None,
                connect_timeout,
            ))),
            Transport::Tls => {
                let client = config.tls.client_config(id)?;
                let name_text = config
                    .tls
                    .server_name
                    .clone()
                    .unwrap_or_else(|| endpoint.host.clone());
                let name =
                    rustls::pki_types::ServerName::try_from(name_text.clone()).map_err(|_| {
                        anyhow::anyhow!(
                            "tls.server_name: {name_text:?} is not a DNS name or IP address"
                        )
                    })?;
                Wire::Stream(StreamPool::new(Connector::new(
                    id,
                    endpoint,
                    Some((client, name)),
                    connect_timeout,
                )))
            }
            Transport::Udp => {
                tracing::warn!(
                    exporter = %id,
                    endpoint = %endpoint,
                    "transport udp: syslog over UDP has no delivery confirmation; events are lost silently when the server is down, overloaded or the network drops datagrams. Use tcp or tls for security events"
                );
                max_message = max_message.min(UDP_MAX_MESSAGE);
                Wire::Udp(UdpSender::new(endpoint))
            }
            Transport::Http => anyhow::bail!(
                "transport: http is only for the qradar exporter (use tcp, tls or udp)"
            ),
        };
        Ok(SyslogSink {
            encoder: config.encoder(flavor)?,
            framing: config.framing,
            confirm: config.confirm,
            wire,
            limits: RequestLimits {
                max_events: config.max_events.max(1),
                max_bytes: 16 << 20,
            },
            max_message,
        })
    }

    /// Encodes and frames `events`; returns the wire bytes, the end offset of each sent message
    /// (for UDP), the indices sent and the rejected events with why.
    fn encode(&self, events: &[Event]) -> Encoded {
        let mut out = Encoded {
            wire: Vec::with_capacity(events.len() * 512),
            ..Encoded::default()
        };
        let mut message = Vec::with_capacity(2048);
        for (index, event) in events.iter().enumerate() {
            message.clear();
            self.encoder.encode_message(event, &mut message);
            if message.len() > self.max_message {
                out.rejected.push((
                    index,
                    format!(
                        "the syslog message is {} bytes, more than max_message_size ({} bytes)",
                        message.len(),
                        self.max_message
                    ),
                ));
                continue;
            }
            match self.wire {
                Wire::Stream(_) => self.framing.frame(&message, &mut out.wire),
                Wire::Udp(_) => out.wire.extend_from_slice(&message),
            }
            out.ends.push(out.wire.len());
            out.sent.push(index);
        }
        out
    }

    /// Writes a batch on a pooled connection and confirms it; the error says what failed.
    async fn send_stream(&self, pool: &StreamPool, bytes: &[u8]) -> Result<(), String> {
        let endpoint = pool.connector().endpoint();
        let mut connection = pool.take().await?;
        connection
            .write(bytes)
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        match self.confirm {
            Confirm::TcpAck => {
                connection
                    .confirm_acked()
                    .await
                    .map_err(|e| format!("{endpoint}: {e}"))?;
                pool.give_back(connection);
            }
            Confirm::PeerClose => connection
                .close_and_confirm()
                .await
                .map_err(|e| format!("{endpoint}: {e}"))?,
        }
        Ok(())
    }
}

#[derive(Default)]
struct Encoded {
    wire: Vec<u8>,
    ends: Vec<usize>,
    sent: Vec<usize>,
    rejected: Vec<(usize, String)>,
}

#[async_trait]
impl Sink for SyslogSink {
    fn limits(&self) -> RequestLimits {
        self.limits
    }

    fn default_concurrency(&self) -> usize {
        match self.wire {
            Wire::Stream(_) => 4,
            Wire::Udp(_) => 1,
        }
    }

    async fn send(&self, events: &[Event]) -> SendReport {
        let encoded = self.encode(events);
        let started = Instant::now();
        let mut record = RequestRecord {
            events: encoded.sent.len(),
            bytes: encoded.wire.len(),
            ..Default::default()
        };
        // Per sent event: None = delivered, Some(reason) = retry.
        let failure: Vec<(usize, String)> = if encoded.sent.is_empty() {
            Vec::new()
        } else {
            match &self.wire {
                Wire::Stream(pool) => match self.send_stream(pool, &encoded.wire).await {
                    Ok(()) => Vec::new(),
                    Err(reason) => encoded
                        .sent
                        .iter()
                        .map(|index| (*index, reason.clone()))
                        .collect(),
                },
                Wire::Udp(udp) => {
                    let starts = std::iter::once(0).chain(encoded.ends.iter().copied());
                    let messages = starts
                        .zip(encoded.ends.iter().copied())
                        .map(|(start, end)| &encoded.wire[start..end]);
                    match udp.send_all(messages).await {
                        (_, None) => Vec::new(),
                        (sent, Some(reason)) => encoded.sent[sent..]
                            .iter()
                            .map(|index| (*index, reason.clone()))
                            .collect(),
                    }
                }
            }
        };
        record.latency = started.elapsed();
        if let Some((_, reason)) = failure.first() {
            record.reply = Some(reason.clone());
        }
        let outcomes = if encoded.rejected.is_empty() && failure.is_empty() {
            Outcomes::Uniform(Outcome::Delivered)
        } else if encoded.rejected.is_empty() && failure.len() == events.len() {
            Outcomes::Uniform(Outcome::retry(failure[0].1.clone()))
        } else {
            let mut list = vec![Outcome::Delivered; events.len()];
            for (index, reason) in encoded.rejected {
                list[index] = Outcome::permanent(reason);
            }
            for (index, reason) in failure {
                list[index] = Outcome::retry(reason);
            }
            Outcomes::PerEvent(list)
        };
        SendReport {
            outcomes,
            requests: vec![record],
        }
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        let reply = record.reply.as_deref().unwrap_or_default();
        Some(if reply.contains("TLS") || reply.contains("certificate") {
            "the TLS handshake failed: check transport (tls vs tcp), tls.ca_file, tls.server_name and, for mutual TLS, tls.cert_file/key_file".into()
        } else if reply.contains("refused") || reply.contains("connecting") {
            "the syslog server is unreachable: check endpoint host and port, transport (tcp/tls/udp) and the firewall".into()
        } else {
            "the syslog server did not take the events: check that it listens with the same transport and framing".into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: serde_json::Value) -> SyslogConfig {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn validate_names_the_bad_keys() {
        assert!(
            config(
                json!({"endpoint": "siem.example.com:6514", "transport": "tls", "format": "cef"})
            )
            .validate()
            .is_empty()
        );
        let bad = config(json!({
            "endpoint": "https://siem", "transport": "http", "framing": "octet_counting",
            "hostname": "has space", "app_name": "", "format": "leef",
            "leef": {"delimiter": "="}, "max_events": 0, "max_message_size": 100,
            "tls": {"cert_file": "/nonexistent.pem"}
        }));
        let keys: Vec<String> = bad.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "transport",
                "tls",
                "tls.cert_file",
                "hostname",
                "app_name",
                "leef.delimiter",
                "max_events",
                "max_message_size"
            ]
        );
        let udp = config(
            json!({"endpoint": "h", "transport": "udp", "framing": "octet_counting", "confirm": "peer_close"}),
        );
        let keys: Vec<String> = udp.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["framing", "confirm"]);
        assert!(
            serde_json::from_value::<SyslogConfig>(json!({"endpoint": "h", "bogus": 1})).is_err()
        );
    }

    #[test]
    fn oversize_events_are_rejected_alone() {
        let sink = SyslogSink::new(
            "syslog/t",
            &config(json!({"endpoint": "127.0.0.1:9", "max_message_size": 600, "hostname": "h"})),
            Flavor::Syslog,
            Duration::from_secs(1),
        )
        .unwrap();
        let mut big = Event::new("big");
        big.summary = Some("x".repeat(1000));
        let events = vec![Event::new("a"), big, Event::new("c")];
        let encoded = sink.encode(&events);
        assert_eq!(encoded.sent, [0, 2]);
        assert_eq!(encoded.rejected[0].0, 1);
        let text = String::from_utf8(encoded.wire).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with("<165>1 "), "{text}");
    }
}
