//! The admin listener (`service.admin`): Prometheus metrics at `/metrics`, Kubernetes probes at
//! `/healthz` and `/readyz`, the status page at `/`, and the management API under `/api/v1`
//! (described by `docs/openapi.json`, served at `/api/v1/openapi.json`).
//!
//! The API reads the runtime's published [`Topology`](crate::runtime::Topology) and the
//! exporters' own status; it never takes a lock the data path needs.

pub mod allocator;
mod api;
mod auth;
pub mod control;
pub mod guard;
pub mod model;
pub mod overlay;
mod serve;
mod tap;
pub mod telemetry;

use crate::config::ConfigError;
use serde::Deserialize;
use siemrelay_core::cidr::CidrAllowList;
use siemrelay_core::config_types::{HostPort, Secret, parse_host_port};
use siemrelay_core::listener_tls::{ListenerTlsConfig, ReloadableTls};
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
    /// Allow state-changing requests (`PUT`/`DELETE /api/v1/exporters/{id}`, enable, disable,
    /// test, reload: every method but GET/HEAD/OPTIONS). Default false: they answer 403. Needs
    /// `auth.bearer_token`, and every such request must carry it.
    #[serde(default)]
    pub allow_config_changes: bool,
    /// Host names (besides the listener's own address and loopback names) requests may name in
    /// `Host`, e.g. a Service DNS name Prometheus scrapes through. Default: none. Other names
    /// are refused (DNS rebinding).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Environment variables that config sent through the API may reference as `${env:NAME}`.
    /// Default: none (API config is never expanded otherwise; `${file:}` never).
    #[serde(default)]
    pub allowed_env: Vec<String>,
    /// Serve HTTPS: `{ cert_file, key_file, client_ca_file }` (files re-read on SIGHUP).
    /// Default: plain HTTP.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// Client addresses allowed to connect (CIDR blocks or addresses); others get 403 before
    /// their body is read. Default: any.
    #[serde(default)]
    pub allowed_cidrs: CidrAllowList,
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
        if self.allow_config_changes && self.token().is_none() {
            errors.push(ConfigError {
                path: "service.admin.allow_config_changes".into(),
                message: "true needs service.admin.auth.bearer_token: without a token any local process (or a web \
                          page, through DNS rebinding) could change exporters; set auth: { bearer_token: \
                          ${env:SIEMRELAY_ADMIN_TOKEN} }"
                    .into(),
            });
        }
        for (index, name) in self.allowed_env.iter().enumerate() {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                errors.push(ConfigError {
                    path: format!("service.admin.allowed_env[{index}]"),
                    message: format!("{name:?} is not an environment variable name"),
                });
            }
        }
        for (index, host) in self.allowed_hosts.iter().enumerate() {
            if host.trim().is_empty() || host.contains(['/', ' ', '@']) {
                errors.push(ConfigError {
                    path: format!("service.admin.allowed_hosts[{index}]"),
                    message: format!(
                        "{host:?} is not a host name (write e.g. siemrelay.monitoring.svc)"
                    ),
                });
            }
        }
        if let Some(tls) = &self.tls {
            errors.extend(tls.validate().into_iter().map(|issue| ConfigError {
                path: format!("service.admin.tls.{}", issue.key),
                message: issue.message,
            }));
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
    parse_host_port(text).map_err(|e| e.to_string())
}

/// A running admin listener.
pub struct AdminServer {
    /// The bound address.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Binds `config.endpoint` and serves until [`AdminServer::stop`] (HTTPS when
    /// `config.tls` is set; its files are re-read by [`siemrelay_core::listener_tls::reload_all`]).
    pub async fn start(config: &AdminConfig, control: Arc<Control>) -> anyhow::Result<AdminServer> {
        let tls = match &config.tls {
            Some(tls) => Some(ReloadableTls::load(
                tls,
                "service.admin.tls",
                &[b"h2", b"http/1.1"],
            )?),
            None => None,
        };
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
        let https = tls.is_some();
        let client_certificates = tls
            .as_ref()
            .is_some_and(|t| t.requires_client_certificate());
        let task = tokio::spawn(serve::serve(listener, tls, router, stop.clone()));
        tracing::info!(%addr, https, client_certificates, "admin listener: /metrics, /healthz, /readyz, /api/v1");
        Ok(AdminServer { addr, stop, task })
    }

    /// Stops serving (after the pipelines have shut down).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.task).await;
    }
}
