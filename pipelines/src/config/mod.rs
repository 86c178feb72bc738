//! Loading a pipeline file: YAML → `${…}` expansion → typed, validated components and pipelines.
//! Every problem is collected (not just the first) with the file, the key path and the reason.

mod batching;
pub mod confine;
pub mod expand;
mod load;

pub use siemrelay_core::config_read::{
    Collected, ConfigError, deserialize_all, deserialize_at, deserialize_collecting, join_path,
    lenient,
};

use crate::registry::{ExporterSpec, ProcessorSpec, ReceiverSpec};
use serde::Deserialize;
use serde_yaml::Value;
use siemrelay_core::config_types::{ConfigDuration, ConfigSize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration `siemrelay run` uses when given no `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("default.yaml");

/// Every problem found in a config file.
#[derive(Clone, Debug)]
pub struct ConfigErrors {
    /// The file (or `<embedded default>`).
    pub file: String,
    /// The problems, in file order where possible.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{}: {n} error{} in the configuration:",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            if error.path.is_empty() {
                writeln!(f, "  - {}: {}", self.file, error.message)?;
            } else {
                writeln!(f, "  - {}: {}: {}", self.file, error.path, error.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// `service.pipelines.<name>`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Receiver ids feeding the pipeline.
    #[serde(default)]
    pub receivers: Vec<String>,
    /// Processor ids, run in this order.
    #[serde(default)]
    pub processors: Vec<String>,
    /// Exporter ids the pipeline delivers to.
    #[serde(default)]
    pub exporters: Vec<String>,
}

/// `service.storage`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Holds disk queues (`queues/`), dead-letter files (`dead_letter/`), receiver checkpoints
    /// (`receivers/`), processor state (`processors/`) (default `./siemrelay-data`).
    #[serde(default = "default_storage")]
    pub directory: PathBuf,
}

fn default_storage() -> PathBuf {
    PathBuf::from("./siemrelay-data")
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            directory: default_storage(),
        }
    }
}

/// `service:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The pipelines by name.
    #[serde(default)]
    pub pipelines: indexmap::IndexMap<String, PipelineConfig>,
    /// How long a clean shutdown may take to deliver what was accepted (default 30s).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: ConfigDuration,
    /// Where state lives.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The admin listener (metrics, health, management API); none when absent (default).
    #[serde(default)]
    pub admin: Option<crate::admin::AdminConfig>,
    /// Reload when the config file's modification time changes (default false; SIGHUP and
    /// `POST /api/v1/reload` always work).
    #[serde(default)]
    pub watch_config: bool,
    /// Memory for everything received but not yet queued, shared by all receivers (a size,
    /// default `64MiB`): a request that does not fit waits briefly, then gets 503 (gRPC
    /// UNAVAILABLE). See `siemrelay_core::admission`.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: ConfigSize,
    /// Where plugin libraries may be loaded from.
    #[serde(default)]
    pub plugins: PluginsConfig,
}

fn default_memory_limit() -> ConfigSize {
    ConfigSize(siemrelay_core::admission::DEFAULT_MEMORY_LIMIT)
}

/// `service.plugins`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// The only directory plugin libraries load from (default `<storage>/plugins`); a relative
    /// `library:` is resolved inside it.
    #[serde(default)]
    pub directory: Option<PathBuf>,
}

impl ServiceConfig {
    /// `service.plugins.directory`, or its default `<storage>/plugins`.
    pub fn plugins_directory(&self) -> PathBuf {
        self.plugins
            .directory
            .clone()
            .unwrap_or_else(|| self.storage.directory.join("plugins"))
    }
}

fn default_shutdown_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30))
}

/// A component id split into type and optional name (`splunk_hec/prod`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ComponentId {
    /// The full id.
    pub id: String,
    /// The type part.
    pub kind: String,
}

/// A component id that is not `type` or `type/name` of the allowed characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ComponentIdError {
    /// The type part is empty or has other characters than letters, digits and `_`.
    #[error("invalid component id {0:?}: the type must be letters, digits and _")]
    Type(String),
    /// The name part is empty or has other characters than letters, digits and `_-./`.
    #[error("invalid component id {0:?}: the name after / must be letters, digits, _ - . /")]
    Name(String),
}

impl ComponentId {
    /// Parses `type` or `type/name`.
    pub fn parse(id: &str) -> Result<ComponentId, ComponentIdError> {
        let (kind, name) = match id.split_once('/') {
            Some((kind, name)) => (kind, Some(name)),
            None => (id, None),
        };
        if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ComponentIdError::Type(id.to_string()));
        }
        if let Some(name) = name
            && (name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c)))
        {
            return Err(ComponentIdError::Name(id.to_string()));
        }
        Ok(ComponentId {
            id: id.to_string(),
            kind: kind.to_string(),
        })
    }

    /// A file-system-safe form of the id (`splunk_hec__prod`).
    pub fn file_name(&self) -> String {
        self.id.replace('/', "__")
    }
}

/// A validated configuration, ready to run.
#[derive(Debug)]
pub struct LoadedConfig {
    /// Where it came from.
    pub file: String,
    /// Receivers by id, in file order.
    pub receivers: Vec<(ComponentId, ReceiverSpec)>,
    /// Processors by id.
    pub processors: Vec<(ComponentId, ProcessorSpec)>,
    /// Exporters by id.
    pub exporters: Vec<(ComponentId, ExporterSpec)>,
    /// `service:`.
    pub service: ServiceConfig,
    /// Non-fatal findings (unused components, insecure settings).
    pub warnings: Vec<String>,
    /// Values that came from the environment or files, scrubbed from any message.
    pub secrets: Vec<String>,
    /// Each component's config block after `${…}` expansion, to tell changed components from
    /// unchanged ones on a reload.
    pub raw: RawComponents,
}

/// Each component's expanded config block, by section and id.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RawComponents {
    /// `receivers.<id>`.
    pub receivers: std::collections::HashMap<String, Value>,
    /// `processors.<id>`.
    pub processors: std::collections::HashMap<String, Value>,
    /// `exporters.<id>`.
    pub exporters: std::collections::HashMap<String, Value>,
}

impl LoadedConfig {
    /// The exporter spec with this id.
    pub fn exporter(&self, id: &str) -> Option<&(ComponentId, ExporterSpec)> {
        self.exporters.iter().find(|(cid, _)| cid.id == id)
    }
}

/// Loads and validates a config file.
pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        errors: vec![ConfigError {
            path: String::new(),
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    load_str(&text, &file)
}

/// Loads and validates config text; `file` names it in messages.
pub fn load_str(text: &str, file: &str) -> Result<LoadedConfig, ConfigErrors> {
    load_with_api_exporters(text, file, &[])
}

pub use load::load_with_api_exporters;

/// Expands `${…}` references: exporters sent through the admin API under
/// [`expand::Policy::Api`] with `service.admin.allowed_env` (read before expansion), the rest
/// as the operator's file.
fn expand_root(
    root: &mut Value,
    from_api: &[String],
    secrets: &mut Vec<String>,
    errors: &mut Vec<expand::ExpandError>,
) {
    let allowed_env: Vec<String> = root
        .get("service")
        .and_then(|s| s.get("admin"))
        .and_then(|a| a.get("allowed_env"))
        .and_then(Value::as_sequence)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let Value::Mapping(top) = root else {
        expand::expand_tree(root, "", secrets, errors);
        return;
    };
    for (key, value) in top.iter_mut() {
        let key = expand::key_text(key);
        match value {
            Value::Mapping(exporters) if key == "exporters" && !from_api.is_empty() => {
                for (id, block) in exporters.iter_mut() {
                    let id = expand::key_text(id);
                    let policy = if from_api.contains(&id) {
                        expand::Policy::Api {
                            allowed_env: &allowed_env,
                        }
                    } else {
                        expand::Policy::File
                    };
                    let path = format!("exporters.{id}");
                    expand::expand_tree_with(block, &path, secrets, errors, policy);
                }
            }
            value => expand::expand_tree(value, &key, secrets, errors),
        }
    }
}

/// Parses one section (`receivers:` …) into typed components, collecting errors.
fn components<S>(
    section: Option<Value>,
    name: &'static str,
    errors: &mut Vec<ConfigError>,
    defined: &mut Vec<(&'static str, String)>,
    raw: &mut std::collections::HashMap<String, Value>,
    parse: fn(&ComponentId, Value, &str) -> Result<S, Vec<ConfigError>>,
) -> Vec<(ComponentId, S)> {
    let mut out = Vec::new();
    let map = match section {
        None | Some(Value::Null) => return out,
        Some(Value::Mapping(map)) => map,
        Some(_) => {
            errors.push(ConfigError {
                path: name.into(),
                message: "must be a map of component id to settings".into(),
            });
            return out;
        }
    };
    for (key, value) in map {
        let key = expand::key_text(&key);
        let path = format!("{name}.{key}");
        defined.push((name, key.clone()));
        let id = match ComponentId::parse(&key) {
            Ok(id) => id,
            Err(error) => {
                errors.push(ConfigError {
                    path,
                    message: error.to_string(),
                });
                continue;
            }
        };
        // `webhook:` with nothing after it means "all defaults".
        let value = if value.is_null() {
            Value::Mapping(Default::default())
        } else {
            value
        };
        raw.insert(key.clone(), value.clone());
        match parse(&id, value, &path) {
            Ok(spec) => out.push((id, spec)),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    out
}

fn check_pipelines(
    pipelines: &indexmap::IndexMap<String, PipelineConfig>,
    defined: &[(&'static str, String)],
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) {
    if pipelines.is_empty() {
        errors.push(ConfigError {
            path: "service.pipelines".into(),
            message: "no pipeline is defined".into(),
        });
    }
    let mut used: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    for (name, pipeline) in pipelines {
        let base = format!("service.pipelines.{name}");
        if pipeline.receivers.is_empty() {
            errors.push(ConfigError {
                path: format!("{base}.receivers"),
                message: "a pipeline needs at least one receiver".into(),
            });
        }
        if pipeline.exporters.is_empty() {
            errors.push(ConfigError {
                path: format!("{base}.exporters"),
                message: "a pipeline needs at least one exporter".into(),
            });
        }
        let lists: [(&'static str, &Vec<String>); 3] = [
            ("receivers", &pipeline.receivers),
            ("processors", &pipeline.processors),
            ("exporters", &pipeline.exporters),
        ];
        for (section, listed) in lists {
            let mut seen = std::collections::HashSet::new();
            for (index, id) in listed.iter().enumerate() {
                if !seen.insert(id.as_str()) {
                    errors.push(ConfigError {
                        path: format!("{base}.{section}[{index}]"),
                        message: format!("{id} is listed twice"),
                    });
                }
                if defined.iter().any(|(s, d)| *s == section && d == id) {
                    used.insert((section, id.as_str()));
                } else {
                    errors.push(ConfigError {
                        path: format!("{base}.{section}[{index}]"),
                        message: format!("{id} is not defined under `{section}:`"),
                    });
                }
            }
        }
    }
    for (section, id) in defined {
        if !used.contains(&(*section, id.as_str())) {
            warnings.push(format!(
                "{section}.{id} is defined but not used by any pipeline"
            ));
        }
    }
}

#[cfg(test)]
mod tests;
