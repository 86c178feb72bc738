//! The `webhook` receiver: security events POSTed as JSON (one object or an array) or NDJSON,
//! optionally gzip-encoded, bearer-authenticated and HMAC-signed.
//!
//! Each request is accepted whole or rejected whole; the HTTP answer is sent only after the
//! pipeline has queued the batch (`200 {"accepted": n, "queued": m}`), so a sender that sees
//! 200 can forget the events. Request checks live in [`intake`] (no I/O, property-tested),
//! signature schemes in [`verify`], and the HTTP glue in `server`.

mod config;
pub mod intake;
mod server;
pub mod telemetry;
pub mod verify;

pub use config::{AuthConfig, VerifyConfig, WebhookConfig};
pub use intake::{Admitted, Framing, Intake, Rejection, VERIFIED_BY_KEY};
pub use verify::{Scheme, Verified, VerifyFailure};

use anyhow::Context;
use async_trait::async_trait;
use siemrelay_core::component::{Receiver, ReceiverContext};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A webhook receiver whose listener is bound and whose config is checked; [`Receiver::run`]
/// serves it.
pub struct WebhookReceiver {
    listener: TcpListener,
    path: String,
    intake: Intake,
}

impl WebhookReceiver {
    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Checks the config and binds the listener, so a bad config or a busy address fails at
/// start-up with the receiver id and the address in the error.
pub async fn bind(id: &str, config: WebhookConfig) -> anyhow::Result<WebhookReceiver> {
    let intake = Intake::new(&config).map_err(|issues| {
        let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("receiver {id}: invalid config: {}", list.join("; "))
    })?;
    let listener = TcpListener::bind(config.endpoint.addr)
        .await
        .with_context(|| {
            format!(
                "receiver {id}: cannot listen on {} ({})",
                config.endpoint.text, config.endpoint.addr
            )
        })?;
    Ok(WebhookReceiver {
        listener,
        path: config.path,
        intake,
    })
}

/// Builds the receiver for the runtime: [`bind`], boxed.
pub async fn build(id: &str, config: WebhookConfig) -> anyhow::Result<Box<dyn Receiver>> {
    Ok(Box::new(bind(id, config).await?))
}

#[async_trait]
impl Receiver for WebhookReceiver {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let WebhookReceiver {
            listener,
            path,
            intake,
        } = *self;
        let address = listener
            .local_addr()
            .map_or_else(|e| format!("unknown ({e})"), |a| a.to_string());
        let endpoint = Arc::new(server::Endpoint {
            path,
            intake,
            sink: ctx.sink,
            telemetry: telemetry::Telemetry::new(&ctx.id),
        });
        tracing::info!(receiver = %ctx.id, address = %address, path = %endpoint.path, "webhook receiver listening");
        let shutdown = ctx.shutdown;
        axum::serve(
            listener,
            server::router(endpoint).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .with_context(|| format!("receiver {}: HTTP server failed", ctx.id))
    }
}
