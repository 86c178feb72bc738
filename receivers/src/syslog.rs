//! The `syslog` receiver: RFC 5424 and RFC 3164 messages over UDP, TCP and TLS, with CEF and
//! LEEF bodies read into fields. What arrives from firewalls, gateways and appliances that speak
//! only syslog.
//!
//! - TCP/TLS: octet counting or LF framing, detected per connection ([`framing`]); a batch is
//!   queued before more is read, so a full pipeline slows the sender (TCP flow control) and
//!   nothing is dropped ([`tcp`]). TCP syslog has no application acknowledgement: what was read
//!   from a connection when siemrelay stops and could not be queued is counted
//!   (`reason="shutting_down"`) and logged.
//! - UDP: no acknowledgement and no way to slow a sender; what cannot be queued is dropped and
//!   counted in `siemrelay_receiver_events_dropped_total` ([`udp`]).
//! - Each message becomes one event through the shared ingest ([`message`], the mapping table
//!   in `docs/receivers/syslog.md`).

pub mod cef;
mod config;
pub mod factory;
pub mod framing;
pub mod intake;
pub mod leef;
pub mod message;
pub mod tcp;
pub mod telemetry;
pub mod udp;

pub use config::{DEFAULT_MAX_MESSAGE_SIZE, Protocols, SyslogConfig, TcpConfig, UdpConfig};

use anyhow::Context;
use async_trait::async_trait;
use intake::Intake;
use siemrelay_core::component::{Receiver, ReceiverContext};
use siemrelay_core::listener_tls::ReloadableTls;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The `syslog` receiver with its sockets bound.
pub struct SyslogReceiver {
    config: SyslogConfig,
    udp: Option<udp::UdpListen>,
    tcp: Option<tcp::TcpListen>,
}

impl SyslogReceiver {
    /// The address the UDP socket is bound to (useful with port 0).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|u| u.socket.local_addr().ok())
    }

    /// The address the TCP listener is bound to (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|t| t.tcp.local_addr().ok())
    }
}

/// Checks the config, loads the TLS files and binds the sockets of the receiver `id`; errors
/// name the receiver, the key and the address.
pub async fn bind(id: &str, config: SyslogConfig) -> anyhow::Result<SyslogReceiver> {
    if let Some(issue) = config.validate().into_iter().next() {
        anyhow::bail!("syslog receiver {id}: {issue}");
    }
    let udp = match &config.protocols.udp {
        None => None,
        Some(udp) => {
            let socket = udp::bind(udp.endpoint.addr, udp.receive_buffer_size.as_usize())
                .with_context(|| {
                    format!(
                        "syslog receiver {id}: cannot listen on udp {} (receivers.{id}.protocols.udp.endpoint)",
                        udp.endpoint.text
                    )
                })?;
            Some(udp::UdpListen {
                socket,
                allowed: udp.allowed_cidrs.clone(),
                name: format!("{id}/udp"),
            })
        }
    };
    let tcp = match &config.protocols.tcp {
        None => None,
        Some(tcp) => {
            let key = format!("receivers.{id}.protocols.tcp");
            let tls = tcp
                .tls
                .as_ref()
                .map(|tls| ReloadableTls::load(tls, &format!("{key}.tls"), &[]))
                .transpose()
                .with_context(|| format!("syslog receiver {id}"))?;
            let listener = TcpListener::bind(tcp.endpoint.addr)
                .await
                .with_context(|| {
                    format!(
                        "syslog receiver {id}: cannot listen on tcp {} ({key}.endpoint)",
                        tcp.endpoint.text
                    )
                })?;
            Some(tcp::TcpListen {
                tcp: listener,
                tls,
                allowed: tcp.allowed_cidrs.clone(),
                max_message_size: tcp.max_message_size.as_usize(),
                max_connections: tcp.max_connections,
                idle_timeout: tcp.idle_timeout.0,
                name: format!("{id}/tcp"),
            })
        }
    };
    Ok(SyslogReceiver { config, udp, tcp })
}

/// Builds the receiver for the runtime: [`bind`], boxed.
pub async fn build(id: &str, config: SyslogConfig) -> anyhow::Result<Box<dyn Receiver>> {
    Ok(Box::new(bind(id, config).await?))
}

#[async_trait]
impl Receiver for SyslogReceiver {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let SyslogReceiver { config, udp, tcp } = *self;
        let intake = Arc::new(Intake {
            budget: ctx.sink.admission(),
            sink: ctx.sink.clone(),
            options: config.ingest_options(&ctx.id),
            telemetry: telemetry::Telemetry::new(&ctx.id),
            paused: Default::default(),
        });
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(udp) = udp {
            if let Ok(addr) = udp.socket.local_addr() {
                tracing::info!(receiver = %ctx.id, %addr, "syslog UDP listener serving (UDP has no acknowledgement: losses are counted in siemrelay_receiver_events_dropped_total)");
            }
            tasks.spawn(udp::serve(udp, intake.clone(), ctx.shutdown.clone()));
        }
        if let Some(tcp) = tcp {
            if let Ok(addr) = tcp.tcp.local_addr() {
                tracing::info!(receiver = %ctx.id, %addr, tls = %tcp.tls.is_some(), "syslog TCP listener serving");
            }
            tasks.spawn(tcp::serve(tcp, intake.clone(), ctx.shutdown.clone()));
        }
        while let Some(result) = tasks.join_next().await {
            result
                .with_context(|| format!("syslog receiver {}: a listener task failed", ctx.id))?;
        }
        Ok(())
    }
}
