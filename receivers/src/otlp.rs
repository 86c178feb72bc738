//! The `otlp` receiver: OpenTelemetry log records over OTLP/gRPC and OTLP/HTTP.
//!
//! Each export request becomes one batch; the reply is sent only after the pipeline accepted
//! the batch (end-to-end acknowledgement). See `README-otlp.md` for the field mapping.

mod config;
mod grpc;
mod http;
mod ingest;
pub mod json;
pub mod mapping;
mod serve;
mod tls;

pub use config::{
    AuthConfig, DEFAULT_MAX_REQUEST_SIZE, OtlpConfig, ProtocolConfig, Protocols, TlsConfig,
};

use anyhow::Context;
use async_trait::async_trait;
use ingest::Ingest;
use siemrelay_core::ReceiverContext;
use siemrelay_core::component::Receiver;
use siemrelay_core::config_types::Secret;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The message for traces, metrics and profiles, on both protocols.
pub const NOT_SUPPORTED: &str = "not supported: siemrelay accepts logs only \
    (gRPC LogsService/Export, HTTP POST /v1/logs)";

/// What a listener needs at run time, from its protocol config.
#[derive(Clone, Debug)]
struct Protocol {
    bearer_token: Option<Secret>,
    max_request_bytes: usize,
}

/// Which OTLP protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Grpc,
    Http,
}

/// A bound listener.
struct Listener {
    kind: Kind,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    protocol: Protocol,
}

/// The `otlp` receiver with its listeners bound.
pub struct OtlpReceiver {
    id: String,
    listeners: Vec<Listener>,
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
            .and_then(|l| l.listener.local_addr().ok())
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
        let key = format!("protocols.{name}");
        let tls = protocol
            .tls
            .as_ref()
            .map(|tls| tls::acceptor(tls, &format!("{key}.tls")))
            .transpose()
            .with_context(|| format!("otlp receiver {id}"))?;
        let listener = TcpListener::bind(protocol.endpoint.addr)
            .await
            .with_context(|| {
                format!(
                    "otlp receiver {id}: cannot listen on {} ({key}.endpoint)",
                    protocol.endpoint.text
                )
            })?;
        listeners.push(Listener {
            kind,
            listener,
            tls,
            protocol: Protocol {
                max_request_bytes: protocol.max_request_bytes(),
                bearer_token: protocol.auth.map(|a| a.bearer_token),
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
        let ingest = Ingest::new(&ctx.id, ctx.sink.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for listener in self.listeners {
            let (router, name) = match listener.kind {
                Kind::Grpc => (grpc::router(&listener.protocol, ingest.clone()), "grpc"),
                Kind::Http => (http::router(&listener.protocol, ingest.clone()), "http"),
            };
            if let Ok(addr) = listener.listener.local_addr() {
                tracing::info!(receiver = %self.id, protocol = %name, %addr, tls = %listener.tls.is_some(), "OTLP listener serving");
            }
            tasks.spawn(serve::serve(
                listener.listener,
                listener.tls,
                router,
                ctx.shutdown.clone(),
                format!("{}/{name}", self.id),
            ));
        }
        while let Some(result) = tasks.join_next().await {
            result.with_context(|| format!("otlp receiver {}: a listener task failed", self.id))?;
        }
        Ok(())
    }
}
