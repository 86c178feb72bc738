//! The `datadog` receiver: Datadog's log intake, so a product that can only export to Datadog
//! sends to siemrelay by pointing its Datadog site/URL here.
//!
//! - `POST /api/v2/logs`: a JSON array of logs or one log object, `text/plain` /
//!   `application/logplex-1` lines; gzip or deflate bodies. Answers `202 {}`.
//! - `POST /v1/input` and `/v1/input/<api key>`: the same bodies, answered `200 {}` (Datadog's
//!   v1 shapes).
//! - The API key comes in `DD-API-KEY` (or the v1 path) and must be one of `api_keys`
//!   (constant-time compare). Errors have Datadog's documented codes and bodies: 400, 401 (no
//!   key, v2), 403, 408, 413, and 503 + `Retry-After` when the pipeline is full (Datadog's
//!   clients retry it).
//!
//! The answer is sent only after the pipeline queued the batch, like the webhook receiver's.
//! Request checks live in [`intake`] (no I/O), the log → event mapping in [`mapping`], the HTTP
//! glue in `server`.

mod config;
pub mod factory;
pub mod intake;
pub mod mapping;
mod server;

pub use config::DatadogConfig;
pub use intake::{Api, Intake, Rejection};

use crate::listener::{self, Listener, Refusals};
use crate::webhook::telemetry::Telemetry;
use async_trait::async_trait;
use siemrelay_core::component::{Receiver, ReceiverContext};
use std::net::SocketAddr;
use std::sync::Arc;

/// A Datadog receiver whose listener is bound and whose config is checked.
pub struct DatadogReceiver {
    listener: Listener,
    intake: Intake,
}

impl DatadogReceiver {
    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.tcp.local_addr()
    }
}

/// Checks the config, loads the TLS files and binds the listener, so a bad config or a busy
/// address fails at start-up with the receiver id and the address in the error.
pub async fn bind(id: &str, config: DatadogConfig) -> anyhow::Result<DatadogReceiver> {
    let intake = Intake::new(id, &config).map_err(|issues| {
        let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("receiver {id}: invalid config: {}", list.join("; "))
    })?;
    let listener = Listener::bind_http(
        id,
        &config.endpoint,
        config.tls.as_ref(),
        config.allowed_cidrs,
        config.limits,
    )
    .await?;
    Ok(DatadogReceiver { listener, intake })
}

#[async_trait]
impl Receiver for DatadogReceiver {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let DatadogReceiver { listener, intake } = *self;
        let address = listener
            .tcp
            .local_addr()
            .map_or_else(|e| format!("unknown ({e})"), |a| a.to_string());
        let tls = listener.tls.is_some();
        let endpoint = Arc::new(server::Endpoint {
            intake,
            budget: ctx.sink.admission(),
            sink: ctx.sink,
            telemetry: Telemetry::new(&ctx.id),
        });
        tracing::info!(receiver = %ctx.id, address = %address, tls = %tls, "datadog receiver listening");
        let refusals = Refusals {
            forbidden: server::forbidden(),
            busy: server::busy,
        };
        listener::serve(listener, server::router(endpoint), refusals, ctx.shutdown).await;
        Ok(())
    }
}
