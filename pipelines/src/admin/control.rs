//! What the admin API and the signal loop share: the runtime, the config file, and the one lock
//! that serializes reloads and config changes (never taken by the data path).

use super::AdminConfig;
use super::model::{ApiError, ExporterChange, Info, KeyedError, ReplayStatus};
use super::overlay::{self, ConfigSource, Overlay, OverlayExporter, overlay_path};
use super::telemetry::{CONFIG_RELOADS, Metrics};
use crate::commands::dlq::DeadLetters;
use crate::config::{self, ComponentId, ConfigErrors, LoadedConfig};
use crate::runtime::{ReloadSummary, Runtime};
use siemrelay_core::Timestamp;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Last id segments the API reads as actions (`/api/v1/exporters/{id}/test`): exporters whose
/// id ends in one of these cannot be created through the API.
pub const RESERVED_SUFFIXES: &[&str] = &["deliveries", "test", "enable", "disable", "dead_letters"];

/// An API failure: the HTTP status and the JSON body.
#[derive(Debug)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: ApiError,
}

impl ApiFailure {
    /// A failure with a message and the offending key.
    pub fn new(status: u16, error: impl Into<String>, key: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status,
            body: ApiError {
                error: error.into(),
                key: key.into(),
                errors: Vec::new(),
            },
        }
    }

    /// 400 for a config that does not validate: the first problem, and all of them.
    pub fn invalid(errors: &ConfigErrors) -> ApiFailure {
        let first = errors.errors.first();
        let error = match first {
            Some(e) if e.path.is_empty() => format!("{}: {}", errors.file, e.message),
            Some(e) => format!("{}: {}", e.path, e.message),
            None => format!("{}: the configuration is not valid", errors.file),
        };
        let mut failure = ApiFailure::new(
            400,
            error,
            first.map(|e| e.path.clone()).unwrap_or_default(),
        );
        failure.body.errors = errors
            .errors
            .iter()
            .map(|e| KeyedError {
                path: e.path.clone(),
                message: e.message.clone(),
            })
            .collect();
        failure
    }

    pub(super) fn forbidden() -> ApiFailure {
        ApiFailure::new(
            403,
            "config changes through the API are off: set service.admin.allow_config_changes: true",
            "service.admin.allow_config_changes",
        )
    }
}

/// Shared state of the admin listener.
pub struct Control {
    runtime: Arc<Runtime>,
    config_path: Option<PathBuf>,
    admin: Option<AdminConfig>,
    metrics: Option<Metrics>,
    changes: tokio::sync::Mutex<()>,
    started: Instant,
    started_at: String,
    /// The latest dead-letter replay per exporter.
    replays: Arc<std::sync::Mutex<HashMap<String, ReplayStatus>>>,
}

impl Control {
    /// State for a runtime started from `config_path` (`None`: the embedded default).
    pub fn new(
        runtime: Arc<Runtime>,
        config_path: Option<PathBuf>,
        admin: Option<AdminConfig>,
        metrics: Option<Metrics>,
    ) -> Control {
        Control {
            runtime,
            config_path,
            admin,
            metrics,
            changes: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            started_at: Timestamp::now().to_rfc3339(),
            replays: Arc::default(),
        }
    }

    /// `GET /api/v1/info`.
    pub fn info(&self) -> Info {
        Info {
            version: env!("CARGO_PKG_VERSION").to_string(),
            commit: super::telemetry::COMMIT.to_string(),
            started_at: self.started_at.clone(),
            uptime_seconds: self.started.elapsed().as_secs(),
            config_path: self.config_path.as_ref().map_or_else(
                || "<embedded default config>".to_string(),
                |p| p.display().to_string(),
            ),
            allow_config_changes: self.allows_changes(),
        }
    }

    /// The latest dead-letter replay of `exporter` through the API.
    pub fn replay_status(&self, exporter: &str) -> Option<ReplayStatus> {
        self.replays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(exporter)
            .cloned()
    }

    /// `POST /api/v1/exporters/{id}/dead_letters/replay`: moves the exporter's dead letters
    /// aside and resends them in the background, as `siemrelay dlq replay` does (the same code),
    /// through the exporter as the config file defines it. Returns the replay's status.
    pub async fn replay_dead_letters(
        &self,
        exporter: &str,
        dead_letters: DeadLetters,
    ) -> Result<ReplayStatus, ApiFailure> {
        if !self.allows_changes() {
            return Err(ApiFailure::forbidden());
        }
        let loaded =
            overlay::load(self.config_path.as_deref()).map_err(|e| ApiFailure::invalid(&e))?;
        if loaded.exporter(exporter).is_none() {
            return Err(ApiFailure::new(
                409,
                format!(
                    "{exporter:?} is not in {} (was it removed?): nothing to send through",
                    loaded.file
                ),
                "id",
            ));
        }
        let mut replays = self.replays.lock().unwrap_or_else(|p| p.into_inner());
        if replays.get(exporter).is_some_and(|r| r.state == "running") {
            return Err(ApiFailure::new(
                409,
                format!("a replay of {exporter} is running already"),
                "id",
            ));
        }
        let replay = dead_letters.take_for_replay().map_err(|message| {
            ApiFailure::new(409, config::expand::scrub(&message, &loaded.secrets), "id")
        })?;
        let mut status = ReplayStatus {
            state: "running".into(),
            started_at: Timestamp::now().to_rfc3339(),
            finished_at: None,
            events: replay.events.len() as u64,
            sent: 0,
            dead_lettered: 0,
            error: None,
            warnings: Vec::new(),
        };
        if replay.events.is_empty() {
            status.warnings = replay.finish();
            status.state = "done".into();
            status.finished_at = Some(Timestamp::now().to_rfc3339());
            replays.insert(exporter.to_string(), status.clone());
            return Ok(status);
        }
        replays.insert(exporter.to_string(), status.clone());
        drop(replays);
        tracing::info!(exporter = %exporter, events = status.events, "replaying dead-lettered events (admin API)");
        let (replays, exporter) = (self.replays.clone(), exporter.to_string());
        tokio::spawn(async move {
            let delivered = match loaded.exporter(&exporter) {
                Some((id, spec)) => replay.deliver(&loaded, id, spec).await,
                None => Err(anyhow::anyhow!("the exporter left the config")),
            };
            let warnings = replay.finish();
            let mut replays = replays.lock().unwrap_or_else(|p| p.into_inner());
            let Some(status) = replays.get_mut(&exporter) else {
                return;
            };
            status.finished_at = Some(Timestamp::now().to_rfc3339());
            status.warnings = warnings;
            match delivered {
                Ok(summary) => {
                    status.state = "done".into();
                    status.sent = summary.sent;
                    status.dead_lettered = summary.dead_lettered;
                    tracing::info!(exporter = %exporter, sent = summary.sent, dead_lettered = summary.dead_lettered, "dead-letter replay done");
                }
                Err(e) => {
                    let error = config::expand::scrub(&format!("{e:#}"), &loaded.secrets);
                    tracing::error!(exporter = %exporter, error = %error, "dead-letter replay failed");
                    status.state = "failed".into();
                    status.error = Some(error);
                }
            }
        });
        Ok(status)
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// `service.admin` as the listener was started with.
    pub fn admin(&self) -> Option<&AdminConfig> {
        self.admin.as_ref()
    }

    /// The bearer token requests must carry, if any.
    pub fn token(&self) -> Option<&str> {
        self.admin.as_ref().and_then(AdminConfig::token)
    }

    /// `service.admin.allow_config_changes`.
    pub fn allows_changes(&self) -> bool {
        self.admin.as_ref().is_some_and(|a| a.allow_config_changes)
    }

    /// The Prometheus recorder, when installed.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_ref()
    }

    /// Reloads the config file (with the overlay). An invalid config changes nothing and is
    /// reported (log, metric, result).
    pub async fn reload(&self, trigger: &'static str) -> Result<ReloadSummary, ApiFailure> {
        let _changes = self.changes.lock().await;
        let loaded = overlay::load(self.config_path.as_deref()).inspect_err(|errors| {
            metrics::counter!(CONFIG_RELOADS, "result" => "failure").increment(1);
            tracing::error!(
                trigger = %trigger,
                "reload refused, the running configuration stays: {}",
                errors.to_string().trim_end()
            );
        });
        self.apply(loaded.map_err(|e| ApiFailure::invalid(&e))?, trigger)
            .await
    }

    async fn apply(
        &self,
        loaded: LoadedConfig,
        trigger: &'static str,
    ) -> Result<ReloadSummary, ApiFailure> {
        for warning in &loaded.warnings {
            tracing::warn!("{}: {warning}", loaded.file);
        }
        if loaded.service.admin != self.admin {
            tracing::warn!(
                "service.admin changed: the admin listener's settings take effect at the next start"
            );
        }
        let secrets = loaded.secrets.clone();
        match self.runtime.reload(loaded).await {
            Ok(summary) if summary.errors.is_empty() => {
                metrics::counter!(CONFIG_RELOADS, "result" => "success").increment(1);
                tracing::info!(trigger = %trigger, started = %summary.started.join(","), restarted = %summary.restarted.join(","), stopped = %summary.stopped.join(","), "configuration reloaded");
                Ok(summary)
            }
            Ok(summary) => {
                metrics::counter!(CONFIG_RELOADS, "result" => "failure").increment(1);
                let errors: Vec<KeyedError> = summary
                    .errors
                    .iter()
                    .map(|e| {
                        let (path, message) = e.split_once(": ").unwrap_or(("", e));
                        KeyedError {
                            path: path.to_string(),
                            message: config::expand::scrub(message, &secrets),
                        }
                    })
                    .collect();
                let mut failure = ApiFailure::new(
                    400,
                    format!(
                        "the configuration was applied with errors: {}",
                        errors[0].message
                    ),
                    errors[0].path.clone(),
                );
                failure.body.errors = errors;
                Err(failure)
            }
            Err(e) => {
                metrics::counter!(CONFIG_RELOADS, "result" => "failure").increment(1);
                let text = config::expand::scrub(&format!("{e:#}"), &secrets);
                tracing::error!(trigger = %trigger, error = %text, "reload failed; the running configuration stays");
                let key = text
                    .split_once(": ")
                    .map(|(k, _)| k.to_string())
                    .filter(|k| !k.contains(' '))
                    .unwrap_or_default();
                Err(ApiFailure::new(400, text, key))
            }
        }
    }

    /// `PUT /api/v1/exporters/{id}`: creates or replaces an exporter. Returns true if created.
    pub async fn put_exporter(&self, id: &str, change: ExporterChange) -> Result<bool, ApiFailure> {
        if !self.allows_changes() {
            return Err(ApiFailure::forbidden());
        }
        ComponentId::parse(id).map_err(|error| ApiFailure::new(400, error.to_string(), "id"))?;
        if let Some((_, last)) = id.rsplit_once('/')
            && (RESERVED_SUFFIXES.contains(&last) || id.ends_with("/dead_letters/replay"))
        {
            return Err(ApiFailure::new(
                405,
                format!("{id:?}: ids ending in /{last} name an action, not an exporter"),
                "id",
            ));
        }
        if !change.config.is_object() {
            return Err(ApiFailure::new(
                400,
                "must be an object with the exporter's settings, as in the YAML file",
                "config",
            ));
        }
        let block = serde_yaml::to_value(&change.config)
            .map_err(|e| ApiFailure::new(400, e.to_string(), "config"))?;
        let _changes = self.changes.lock().await;
        let (source, overlay_file, previous) = self.current_overlay()?;
        let existing = self
            .runtime
            .topology()
            .exporter(id)
            .map(|e| e.pipelines.clone());
        let pipelines = match (change.pipelines, &existing) {
            (Some(pipelines), _) => pipelines,
            (None, Some(current)) => current.clone(),
            (None, None) => {
                return Err(ApiFailure::new(
                    400,
                    "a new exporter needs the pipelines that deliver to it",
                    "pipelines",
                ));
            }
        };
        if pipelines.is_empty() {
            return Err(ApiFailure::new(
                400,
                "name at least one pipeline",
                "pipelines",
            ));
        }
        let mut overlay = previous.clone().unwrap_or_default();
        overlay.removed_exporters.retain(|r| r != id);
        overlay.exporters.insert(
            id.to_string(),
            OverlayExporter {
                config: block,
                pipelines,
            },
        );
        self.commit(&source, overlay, &overlay_file, previous)
            .await?;
        Ok(existing.is_none())
    }

    /// `DELETE /api/v1/exporters/{id}`: stops sending new events to it, drains it in the
    /// background (memory-queue leftovers are dead-lettered; a disk queue is kept), removes it.
    pub async fn delete_exporter(&self, id: &str) -> Result<(), ApiFailure> {
        if !self.allows_changes() {
            return Err(ApiFailure::forbidden());
        }
        let _changes = self.changes.lock().await;
        let (source, overlay_file, previous) = self.current_overlay()?;
        let mut overlay = previous.clone().unwrap_or_default();
        let in_overlay = overlay.exporters.shift_remove(id).is_some();
        let in_file =
            source.defines_exporter(id) && !overlay.removed_exporters.iter().any(|r| r == id);
        if !in_overlay && !in_file && self.runtime.topology().exporter(id).is_none() {
            return Err(ApiFailure::new(404, format!("no exporter {id:?}"), "id"));
        }
        if source.defines_exporter(id) && !overlay.removed_exporters.iter().any(|r| r == id) {
            overlay.removed_exporters.push(id.to_string());
        }
        self.commit(&source, overlay, &overlay_file, previous)
            .await?;
        Ok(())
    }

    /// The config file and its current overlay.
    fn current_overlay(&self) -> Result<(ConfigSource, PathBuf, Option<Overlay>), ApiFailure> {
        let source =
            ConfigSource::read(self.config_path.as_deref()).map_err(|e| ApiFailure::invalid(&e))?;
        let base =
            config::load_str(&source.text, &source.file).map_err(|e| ApiFailure::invalid(&e))?;
        let overlay_file = overlay_path(&base.service.storage.directory);
        let previous = Overlay::read(&overlay_file)
            .map_err(|e| ApiFailure::new(400, format!("{}: {e}", overlay_file.display()), ""))?;
        Ok((source, overlay_file, previous))
    }

    /// Validates the merged config, saves the overlay and applies it (restoring the previous
    /// overlay if the runtime could not apply it).
    async fn commit(
        &self,
        source: &ConfigSource,
        overlay: Overlay,
        file: &std::path::Path,
        previous: Option<Overlay>,
    ) -> Result<(), ApiFailure> {
        let loaded =
            overlay::load_merged(source, &overlay, file).map_err(|e| ApiFailure::invalid(&e))?;
        let save_error = |e: std::io::Error| {
            ApiFailure::new(500, format!("cannot save {}: {e}", file.display()), "")
        };
        overlay.write(file).map_err(save_error)?;
        match self.apply(loaded, "api").await {
            Ok(_) => Ok(()),
            Err(failure) => {
                let restored = match &previous {
                    Some(previous) => previous.write(file),
                    None => std::fs::remove_file(file),
                };
                if let Err(e) = restored {
                    tracing::error!(file = %file.display(), error = %e, "cannot restore the previous overlay");
                }
                Err(failure)
            }
        }
    }
}
