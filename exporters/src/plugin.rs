//! The `plugin` exporter: a third-party exporter loaded from a shared library at run time.
//!
//! ```yaml
//! exporters:
//!   plugin/graylog:
//!     library: ./plugins/libsiemrelay_gelf.so
//!     config: { endpoint: "http://graylog.example.com:12201/gelf" }
//! ```
//!
//! The library speaks the versioned C ABI of `plugin-sdk/include/siemrelay_plugin.h` (see
//! `plugin-sdk/README.md`). Validation loads it, checks its ABI version and runs the plugin's own
//! config validation, so `siemrelay validate` reports plugin config errors by key
//! (`config.endpoint`). Delivery goes through the shared delivery layer (queue, retries,
//! dead-letter file, status) like any exporter; plugin calls run on the exporter's own threads.

pub mod factory;
mod library;
mod sink;
pub mod trust;

pub use library::{LoadError, PluginInstance, PluginIssue, PluginLibrary, load};
pub use sink::PluginSink;

use crate::delivery::Sink;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use std::path::PathBuf;
use std::sync::Arc;

/// `plugin:` exporter settings. `Debug` shows only the keys of `config:` (its values may be
/// secrets the plugin alone knows about).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Path of the plugin's shared library (`.so`), inside `service.plugins.directory`
    /// (relative paths are resolved there). Required.
    pub library: PathBuf,
    /// The plugin's own settings, passed to it as a JSON object (default `{}`).
    #[serde(default)]
    pub config: serde_json::Value,
}

impl std::fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = match &self.config {
            serde_json::Value::Object(map) => map.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        f.debug_struct("PluginConfig")
            .field("library", &self.library)
            .field("config_keys", &keys)
            .finish()
    }
}

impl PluginConfig {
    /// The `config:` block as JSON bytes (`{}` when absent).
    pub fn config_json(&self) -> Vec<u8> {
        match &self.config {
            serde_json::Value::Null => b"{}".to_vec(),
            value => serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
        }
    }

    /// Loads the library, checks its ABI version and runs the plugin's config validation.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        if self.library.as_os_str().is_empty() {
            return vec![ConfigIssue::new(
                "library",
                "must name the plugin's shared library (.so)",
            )];
        }
        if !matches!(
            self.config,
            serde_json::Value::Null | serde_json::Value::Object(_)
        ) {
            return vec![ConfigIssue::new(
                "config",
                "must be a map of the plugin's settings",
            )];
        }
        let library = match load(&self.library) {
            Ok(library) => library,
            Err(e) => {
                return vec![ConfigIssue::new(
                    "library",
                    format!("{}: {e}", self.library.display()),
                )];
            }
        };
        library
            .validate(&self.config_json())
            .into_iter()
            .map(|issue| self.issue(&library, issue))
            .collect()
    }

    fn issue(&self, library: &PluginLibrary, issue: PluginIssue) -> ConfigIssue {
        let key = if issue.key.is_empty() {
            "config".to_string()
        } else {
            format!("config.{}", issue.key)
        };
        ConfigIssue::new(
            key,
            format!(
                "{} (plugin {} {} from {})",
                issue.message,
                library.name(),
                library.version(),
                self.library.display()
            ),
        )
    }
}

/// Builds the sink of exporter `id`: loads the library, creates an instance and starts its
/// delivery threads (`concurrency`: `sending.concurrency`, default 4, capped by the plugin).
pub fn build(
    id: &str,
    config: &PluginConfig,
    concurrency: Option<usize>,
) -> anyhow::Result<Arc<dyn Sink>> {
    let library = load(&config.library)
        .map_err(|e| anyhow::anyhow!("exporter {id}: library {}: {e}", config.library.display()))?;
    let instance = library
        .create(id, &config.config_json())
        .map_err(|issues| {
            let text: Vec<String> = issues
                .into_iter()
                .map(|i| config.issue(&library, i).to_string())
                .collect();
            anyhow::anyhow!(
                "exporter {id}: the plugin refused its config: {}",
                text.join("; ")
            )
        })?;
    let sink = PluginSink::start(id, instance, concurrency.unwrap_or(4))
        .map_err(|e| anyhow::anyhow!("exporter {id}: cannot start plugin threads: {e}"))?;
    tracing::info!(exporter = %id, plugin = %library.name(), version = %library.version(), library = %config.library.display(), "plugin loaded");
    Ok(Arc::new(sink))
}
