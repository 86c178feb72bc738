//! The `otlp` receiver: OpenTelemetry log records over OTLP/gRPC and OTLP/HTTP.
//!
//! Each export request becomes one batch; the reply is sent only after the pipeline accepted
//! the batch (end-to-end acknowledgement). See `README-otlp.md` for the field mapping.

mod census;
mod config;
mod decode;
pub mod factory;
mod grpc;
mod http;
mod ingest;
pub mod json;
pub mod mapping;
mod wire;

pub use census::{Census, CensusError, census};
pub use config::{
    AuthConfig, DEFAULT_MAX_EVENTS_PER_REQUEST, DEFAULT_MAX_REQUEST_SIZE, OtlpConfig,
    ProtocolConfig, Protocols,
};

use crate::listener::{self, Listener, Refusals};
use anyhow::Context;
use async_trait::async_trait;
use ingest::Ingest;
use siemrelay_core::ReceiverContext;
use siemrelay_core::component::Receiver;
use siemrelay_core::config_types::Secret;
use siemrelay_core::listener_tls::ReloadableTls;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The message for traces, metrics and profiles, on both protocols.
pub const NOT_SUPPORTED: &str = "not supported: siemrelay accepts logs only \
    (gRPC LogsService/Export, HTTP POST /v1/logs)";

/// What a listener needs at run time, from its protocol config.
#[derive(Clone, Debug)]
struct Protocol {
    bearer_token: Option<Secret>,
    max_request_bytes: usize,
    max_events: usize,
}

/// Which OTLP protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Grpc,
    Http,
}

/// A bound listener.
struct Bound {
    kind: Kind,
    listener: Listener,
    protocol: Protocol,
}

/// The `otlp` receiver with its listeners bound.
pub struct OtlpReceiver {
    id: String,
    listeners: Vec<Bound>,
}

impl OtlpReceiver {
    /// The address the gRPC listener is bound to (useful with port 0).
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.addr(Kind::Grpc)
    }

    /// The address the HTTP listener is bound to (useful with port 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.addr(Kind::Http)
    }

    fn addr(&self, kind: Kind) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.kind == kind)
            .and_then(|l| l.listener.tcp.local_addr().ok())
    }
}

/// Validates `config`, loads TLS files and binds the listeners of the receiver `id`.
pub async fn bind(id: &str, config: OtlpConfig) -> anyhow::Result<OtlpReceiver> {
    if let Some(issue) = config.validate().into_iter().next() {
        anyhow::bail!("otlp receiver {id}: {issue}");
    }
    let mut listeners = Vec::new();
    for (kind, name, protocol) in [
        (Kind::Grpc, "grpc", config.protocols.grpc),
        (Kind::Http, "http", config.protocols.http),
    ] {
        let Some(protocol) = protocol else { continue };
        let key = format!("receivers.{id}.protocols.{name}");
        let tls = protocol
            .tls
            .as_ref()
            .map(|tls| {
                ReloadableTls::load(
                    tls,
                    &format!("{key}.tls"),
                    &[b"h2".as_slice(), b"http/1.1".as_slice()],
                )
            })
            .transpose()
            .with_context(|| format!("otlp receiver {id}"))?;
        let tcp = TcpListener::bind(protocol.endpoint.addr)
            .await
            .with_context(|| {
                format!(
                    "otlp receiver {id}: cannot listen on {} ({key}.endpoint)",
                    protocol.endpoint.text
                )
            })?;
        listeners.push(Bound {
            kind,
            protocol: Protocol {
                max_request_bytes: protocol.max_request_bytes(),
                max_events: protocol.max_events_per_request,
                bearer_token: protocol.auth.map(|a| a.bearer_token),
            },
            listener: Listener {
                tcp,
                tls,
                allowed: protocol.allowed_cidrs,
                limits: protocol.limits,
                name: format!("{id}/{name}"),
            },
        });
    }
    Ok(OtlpReceiver {
        id: id.to_string(),
        listeners,
    })
}

/// Builds the `otlp` receiver `id`: binds its listeners (errors name the address).
pub async fn build(id: &str, config: OtlpConfig) -> anyhow::Result<Box<dyn Receiver>> {
    Ok(Box::new(bind(id, config).await?))
}

#[async_trait]
impl Receiver for OtlpReceiver {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let budget = ctx.sink.admission();
        let ingest = Ingest::new(&ctx.id, ctx.sink.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for bound in self.listeners {
            let (router, refusals, name) = match bound.kind {
                Kind::Grpc => (
                    grpc::router(&bound.protocol, ingest.clone(), budget.clone()),
                    Refusals {
                        forbidden: grpc::forbidden(),
                        busy: grpc::busy,
                    },
                    "grpc",
                ),
                Kind::Http => (
                    http::router(&bound.protocol, ingest.clone(), budget.clone()),
                    Refusals {
                        forbidden: http::forbidden(),
                        busy: http::busy,
                    },
                    "http",
                ),
            };
            if let Ok(addr) = bound.listener.tcp.local_addr() {
                tracing::info!(receiver = %self.id, protocol = %name, %addr, tls = %bound.listener.tls.is_some(), "OTLP listener serving");
            }
            tasks.spawn(listener::serve(
                bound.listener,
                router,
                refusals,
                ctx.shutdown.clone(),
            ));
        }
        while let Some(result) = tasks.join_next().await {
            result.with_context(|| format!("otlp receiver {}: a listener task failed", self.id))?;
        }
        Ok(())
    }
}
