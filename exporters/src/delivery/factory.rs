//! The exporter factory: what each exporter module registers in
//! [`crate::exporter_factories`] (its type name, which shared keys it honours, its config type,
//! how its [`Sink`] is built). The receiver and processor factories live in
//! `siemrelay_core::factory`; this one lives here because a sink and the shared HTTP keys are
//! delivery-layer types.
//!
//! Every exporter takes the delivery keys `sending`, `retry` and `queue`; an HTTP exporter also
//! takes `tls`, `compression` and `signing` where it honours them. A shared HTTP key that an
//! HTTP exporter does not honour is refused when the config is validated (never ignored).

use super::Sink;
use super::config::DeliveryConfig;
use super::http::HttpOptions;
use siemrelay_core::config_read::{ConfigError, Value};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig};
use std::sync::Arc;
use std::time::Duration;

/// The delivery keys every exporter takes.
pub const DELIVERY_KEYS: &[&str] = &["sending", "retry", "queue"];

/// The shared keys of HTTP exporters ([`HttpOptions`]).
pub const HTTP_KEYS: &[&str] = &["tls", "compression", "signing"];

/// Which of the shared HTTP keys ([`HTTP_KEYS`]) an exporter honours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedKeys {
    /// `tls`: client TLS settings for its HTTPS requests.
    pub tls: bool,
    /// `compression`: the request body's compression.
    pub compression: bool,
    /// `signing`: an HMAC signature header on each request.
    pub signing: bool,
}

impl SharedKeys {
    /// Not an HTTP exporter: `tls`, `compression` and `signing`, when allowed at all, are its
    /// own keys (syslog and Kafka have their own `tls`).
    pub const NONE: SharedKeys = SharedKeys {
        tls: false,
        compression: false,
        signing: false,
    };

    /// An HTTP exporter that honours every shared HTTP key.
    pub const HTTP: SharedKeys = SharedKeys {
        tls: true,
        compression: true,
        signing: true,
    };

    /// Whether the shared key `key` (one of [`HTTP_KEYS`]) is honoured.
    pub fn takes(&self, key: &str) -> bool {
        match key {
            "tls" => self.tls,
            "compression" => self.compression,
            "signing" => self.signing,
            _ => false,
        }
    }

    /// An HTTP exporter: it takes at least one shared HTTP key, and the shared keys it does
    /// not take are refused.
    pub fn is_http(&self) -> bool {
        self.tls || self.compression || self.signing
    }
}

/// What an exporter's sink is built from, besides its own config.
#[derive(Clone, Copy, Debug)]
pub struct ExporterBuildContext<'a> {
    /// The exporter's component id (`splunk_hec/prod`).
    pub id: &'a str,
    /// Its `sending`, `retry` and `queue` settings.
    pub delivery: &'a DeliveryConfig,
    /// Its `tls`, `compression` and `signing` settings (defaults where not taken).
    pub http: &'a HttpOptions,
}

impl ExporterBuildContext<'_> {
    /// `sending.timeout`: the timeout of one request.
    pub fn timeout(&self) -> Duration {
        self.delivery.sending.timeout.0
    }
}

/// An exporter type (`splunk_hec`, `file`, …).
pub trait ExporterFactory: Send + Sync {
    /// The type part of component ids (`splunk_hec` in `splunk_hec/prod`).
    fn type_name(&self) -> &'static str;

    /// The shared HTTP keys it honours (default: none, not an HTTP exporter).
    fn shared_keys(&self) -> SharedKeys {
        SharedKeys::NONE
    }

    /// Reads and checks the exporter's own keys (the shared keys are already taken out).
    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>>;

    /// Builds the sink from a config this factory read.
    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ExporterBuildContext<'_>,
    ) -> anyhow::Result<Arc<dyn Sink>>;
}
