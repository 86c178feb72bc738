//! The `elasticsearch` receiver: Elasticsearch's Bulk API, so a product that can only export to
//! Elasticsearch (or OpenSearch) sends to siemrelay by pointing its cluster URL here.
//!
//! - `POST|PUT /_bulk` and `/<index>/_bulk`: `index` and `create` actions become events; an
//!   `update` or `delete` gets an item 400 and the rest of the bulk goes on; `?pipeline=` and
//!   `?routing=` are accepted (kept on the events). Gzip and deflate bodies.
//! - The reply is Elasticsearch's bulk response (`took`, `errors`, one item per action with
//!   `_index`, `_id`, `_version`, `result`, `_shards`, `_seq_no`, `_primary_term`, `status`),
//!   sent after the pipeline queued the batch; a full pipeline answers `errors: true` and item
//!   429 `es_rejected_execution_exception` for its documents, which clients retry.
//! - `GET /` answers a cluster-info document, `HEAD /` 200; every answer carries
//!   `X-Elastic-Product: Elasticsearch`, which Elastic's official clients check.
//! - Basic and `ApiKey` auth (constant-time compare), 401 `security_exception` otherwise.
//!
//! Bulk parsing and the document → event mapping live in [`bulk`] (no I/O), the HTTP glue in
//! `server`.

pub mod bulk;
mod config;
pub mod factory;
mod server;

pub use config::{AuthConfig, BasicUser, ElasticsearchConfig};

use crate::credentials::KeySet;
use crate::listener::{self, Listener, Refusals};
use crate::webhook::telemetry::Telemetry;
use async_trait::async_trait;
use siemrelay_core::component::{Receiver, ReceiverContext};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// An Elasticsearch receiver whose listener is bound and whose config is checked.
pub struct ElasticsearchReceiver {
    listener: Listener,
    config: ElasticsearchConfig,
    id: String,
}

impl ElasticsearchReceiver {
    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.tcp.local_addr()
    }
}

/// Checks the config, loads the TLS files and binds the listener.
pub async fn bind(id: &str, config: ElasticsearchConfig) -> anyhow::Result<ElasticsearchReceiver> {
    let issues = config.validate();
    if !issues.is_empty() {
        let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
        anyhow::bail!("receiver {id}: invalid config: {}", list.join("; "));
    }
    let listener = Listener::bind_http(
        id,
        &config.endpoint,
        config.tls.as_ref(),
        config.allowed_cidrs.clone(),
        config.limits,
    )
    .await?;
    Ok(ElasticsearchReceiver {
        listener,
        config,
        id: id.to_string(),
    })
}

#[async_trait]
impl Receiver for ElasticsearchReceiver {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let ElasticsearchReceiver {
            listener,
            config,
            id,
        } = *self;
        let address = listener
            .tcp
            .local_addr()
            .map_or_else(|e| format!("unknown ({e})"), |a| a.to_string());
        let credentials = match &config.auth {
            None => server::Credentials::default(),
            Some(auth) => server::Credentials {
                basic: KeySet::new(
                    auth.basic
                        .iter()
                        .map(|user| format!("{}:{}", user.username, user.password.expose()))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str),
                ),
                api_keys: KeySet::of(&auth.api_keys),
                required: true,
            },
        };
        let endpoint = Arc::new(server::Endpoint {
            parser: bulk::BulkParser::new(&id, &config),
            credentials,
            max_body: config.max_body_size.as_usize(),
            info: server::cluster_info(&id, &config.version),
            budget: ctx.sink.admission(),
            sink: ctx.sink,
            telemetry: Telemetry::new(&ctx.id),
            seq_no: AtomicU64::new(0),
        });
        tracing::info!(receiver = %ctx.id, address = %address, tls = %listener.tls.is_some(), "elasticsearch receiver listening");
        let refusals = Refusals {
            forbidden: server::forbidden(),
            busy: server::busy,
        };
        listener::serve(listener, server::router(endpoint), refusals, ctx.shutdown).await;
        Ok(())
    }
}
