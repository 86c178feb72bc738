//! The `splunk_hec` receiver: answers exactly like a Splunk HTTP Event Collector, so a product
//! that can only export to Splunk (its "HEC URL" pointed here) feeds siemrelay unchanged.
//!
//! - `POST /services/collector`, `/services/collector/event` (and `/1.0`): JSON envelopes back
//!   to back; `POST /services/collector/raw` (and `/1.0`): one event per line;
//!   `POST /services/collector/ack`: indexer acknowledgement; `GET /services/collector/health`.
//! - Auth as Splunk does it ([`auth`]); replies byte-compatible with Splunk's ([`reply`]);
//!   envelopes mapped onto the event model in [`envelope`], nothing lost.
//! - Like every network receiver: the shared listener (TLS, `allowed_cidrs`, limits), body
//!   reading under `max_body_size` and the memory budget, and the answer only after the
//!   pipeline queued the events (a full queue answers 503 code 9, "Server is busy").

pub mod acks;
pub mod auth;
mod config;
pub mod envelope;
pub mod factory;
pub mod reply;
mod server;
pub mod telemetry;

pub use config::{SplunkHecConfig, TokenConfig};

use crate::listener::{self, Listener, Refusals};
use anyhow::Context;
use async_trait::async_trait;
use siemrelay_core::component::{Receiver, ReceiverContext};
use siemrelay_core::listener_tls::ReloadableTls;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A `splunk_hec` receiver whose listener is bound and whose config is checked.
pub struct SplunkHecReceiver {
    listener: Listener,
    config: SplunkHecConfig,
}

impl SplunkHecReceiver {
    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.tcp.local_addr()
    }
}

/// Checks the config, loads the TLS files and binds the listener, so a bad config or a busy
/// address fails at start-up with the receiver id and the address in the error.
pub async fn bind(id: &str, config: SplunkHecConfig) -> anyhow::Result<SplunkHecReceiver> {
    let issues = config.validate();
    if !issues.is_empty() {
        let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
        anyhow::bail!("receiver {id}: invalid config: {}", list.join("; "));
    }
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
    Ok(SplunkHecReceiver {
        listener: Listener {
            tcp,
            tls,
            allowed: config.allowed_cidrs.clone(),
            limits: config.limits,
            name: id.to_string(),
        },
        config,
    })
}

/// Builds the receiver for the runtime: [`bind`], boxed.
pub async fn build(id: &str, config: SplunkHecConfig) -> anyhow::Result<Box<dyn Receiver>> {
    Ok(Box::new(bind(id, config).await?))
}

#[async_trait]
impl Receiver for SplunkHecReceiver {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let SplunkHecReceiver { listener, config } = *self;
        let address = listener
            .tcp
            .local_addr()
            .map_or_else(|e| format!("unknown ({e})"), |a| a.to_string());
        let acks = config.acknowledgements.then(|| {
            acks::Acks::new(acks::AckLimits {
                max_channels: config.max_ack_channels,
                max_pending: config.max_pending_acks_per_channel,
                idle_timeout: config.ack_idle_timeout.0,
            })
        });
        let endpoint = Arc::new(server::Endpoint {
            tokens: auth::Tokens::new(&config.tokens, config.allow_query_token),
            acks,
            options: config.ingest_options(&ctx.id),
            max_body: config.max_body_size.as_usize(),
            max_events: config.max_events_per_request,
            budget: ctx.sink.admission(),
            sink: ctx.sink,
            telemetry: telemetry::Telemetry::new(&ctx.id),
            full_until: Default::default(),
            started: std::time::Instant::now(),
        });
        tracing::info!(receiver = %ctx.id, address = %address, tls = %listener.tls.is_some(),
            acknowledgements = config.acknowledgements, "splunk_hec receiver listening");
        let refusals = Refusals {
            forbidden: server::forbidden(),
            busy: server::busy,
        };
        listener::serve(listener, server::router(endpoint), refusals, ctx.shutdown).await;
        Ok(())
    }
}
