//! The admin listener (`service.admin`): Prometheus metrics at `/metrics`, Kubernetes probes at
//! `/healthz` and `/readyz`, the status page at `/`, and the management API under `/api/v1`
//! (described by `docs/openapi.json`, served at `/api/v1/openapi.json`).
//!
//! The API reads the runtime's published [`Topology`](crate::runtime::Topology) and the
//! exporters' own status; it never takes a lock the data path needs.

mod api;
mod auth;
pub mod control;
pub mod model;
pub mod overlay;
mod tap;
pub mod telemetry;

use crate::config::ConfigError;
use serde::Deserialize;
use siemrelay_core::config_types::{HostPort, Secret, parse_host_port};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use control::Control;

/// `service.admin`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on (default `127.0.0.1:8686`).
    #[serde(default = "default_endpoint")]
    pub endpoint: HostPort,
    /// Authentication; `auth.bearer_token` is required unless `endpoint` is a loopback address.
    /// Default: none.
    #[serde(default)]
    pub auth: Option<AdminAuth>,
    /// Allow `PUT` / `DELETE /api/v1/exporters/{id}` (default false: they answer 403).
    #[serde(default)]
    pub allow_config_changes: bool,
}

/// `service.admin.auth`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminAuth {
    /// Every request to `/api/v1/*` (except the OpenAPI document) and `/metrics` must send
    /// `Authorization: Bearer <token>`. Required.
    pub bearer_token: Secret,
}

/// The default admin address.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:8686";

fn default_endpoint() -> HostPort {
    HostPort {
        text: DEFAULT_ENDPOINT.to_string(),
        addr: SocketAddr::from(([127, 0, 0, 1], 8686)),
    }
}

impl AdminConfig {
    /// Semantic checks (full key paths).
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.token().is_none() && !self.endpoint.addr.ip().is_loopback() {
            errors.push(ConfigError {
                path: "service.admin.auth.bearer_token".into(),
                message: format!(
                    "required because service.admin.endpoint {} is not a loopback address: anyone who can reach it could \
                     read the status and change exporters; set auth: {{ bearer_token: ${{env:SIEMRELAY_ADMIN_TOKEN}} }} \
                     or listen on 127.0.0.1",
                    self.endpoint.text
                ),
            });
        }
        errors
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.bearer_token.expose())
    }
}

/// Parses an admin address (for `siemrelay status --admin`).
pub fn parse_endpoint(text: &str) -> Result<HostPort, String> {
    parse_host_port(text)
}

/// A running admin listener.
pub struct AdminServer {
    /// The bound address.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Binds `config.endpoint` and serves until [`AdminServer::stop`].
    pub async fn start(config: &AdminConfig, control: Arc<Control>) -> anyhow::Result<AdminServer> {
        let listener = tokio::net::TcpListener::bind(config.endpoint.addr)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "service.admin.endpoint: cannot listen on {}: {e}",
                    config.endpoint.text
                )
            })?;
        let addr = listener.local_addr()?;
        let router = api::router(control);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stopped.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
        tracing::info!(%addr, "admin listener: /metrics, /healthz, /readyz, /api/v1");
        Ok(AdminServer { addr, stop, task })
    }

    /// Stops serving (after the pipelines have shut down).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.task).await;
    }
}
