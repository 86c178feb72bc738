//! The `webhook` receiver: security events POSTed as JSON (one object or an array) or NDJSON,
//! optionally gzip-encoded, bearer-authenticated and HMAC-signed.
//!
//! Each request is accepted whole or rejected whole; the HTTP answer is sent only after the
//! pipeline has queued the batch (`200 {"accepted": n, "queued": m}`), so a sender that sees
//! 200 can forget the events. Request checks live in [`intake`] (no I/O, property-tested),
//! signature schemes in [`verify`], and the HTTP glue in `server`.

mod config;
pub mod factory;
pub mod intake;
mod server;
pub mod telemetry;
pub mod verify;

pub use config::{AuthConfig, VerifyConfig, WebhookConfig};
pub use intake::{Admitted, Framing, Intake, Rejection, VERIFIED_BY_KEY};
pub use verify::{Scheme, Verified, VerifyFailure};

use crate::listener::{self, Listener, Refusals};
use anyhow::Context;
use async_trait::async_trait;
use siemrelay_core::component::{Receiver, ReceiverContext};
use siemrelay_core::listener_tls::ReloadableTls;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A webhook receiver whose listener is bound and whose config is checked; [`Receiver::run`]
/// serves it.
pub struct WebhookReceiver {
    listener: Listener,
    path: String,
    intake: Intake,
}

impl WebhookReceiver {
    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.tcp.local_addr()
    }
}

/// Checks the config, loads the TLS files and binds the listener, so a bad config or a busy
/// address fails at start-up with the receiver id and the address in the error.
pub async fn bind(id: &str, config: WebhookConfig) -> anyhow::Result<WebhookReceiver> {
    let intake = Intake::new(id, &config).map_err(|issues| {
        let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("receiver {id}: invalid config: {}", list.join("; "))
    })?;
    let tls = config
        .tls
        .as_ref()
        .map(|tls| {
            ReloadableTls::load(
                tls,
                &format!("receivers.{id}.tls"),
                &[b"h2".as_slice(), b"http/1.1".as_slice()],
            )
        })
        .transpose()?;
    let tcp = TcpListener::bind(config.endpoint.addr)
        .await
        .with_context(|| {
            format!(
                "receiver {id}: cannot listen on {} ({})",
                config.endpoint.text, config.endpoint.addr
            )
        })?;
    Ok(WebhookReceiver {
        listener: Listener {
            tcp,
            tls,
            allowed: config.allowed_cidrs,
            limits: config.limits,
            name: id.to_string(),
        },
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
            .tcp
            .local_addr()
            .map_or_else(|e| format!("unknown ({e})"), |a| a.to_string());
        let tls = listener.tls.is_some();
        let endpoint = Arc::new(server::Endpoint {
            path,
            intake,
            budget: ctx.sink.admission(),
            sink: ctx.sink,
            telemetry: telemetry::Telemetry::new(&ctx.id),
        });
        tracing::info!(receiver = %ctx.id, address = %address, path = %endpoint.path, tls = %tls, "webhook receiver listening");
        let refusals = Refusals {
            forbidden: server::forbidden(),
            busy: server::busy,
        };
        listener::serve(listener, server::router(endpoint), refusals, ctx.shutdown).await;
        Ok(())
    }
}
