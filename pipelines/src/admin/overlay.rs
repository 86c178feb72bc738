//! Exporter changes made through the API, kept in `<storage>/admin/overlay.yaml` and applied on
//! top of the config file at every start and reload.
//!
//! Precedence: an overlay exporter replaces the file's exporter with the same id (or adds it), and
//! the overlay's pipeline list for it is authoritative: it is appended to those pipelines'
//! `exporters` and removed from every other pipeline. A removed exporter is dropped from
//! `exporters:` and from every pipeline. Everything else comes from the file.

use crate::config::{self, ConfigError, ConfigErrors, LoadedConfig};
use crate::runtime::StorageLayout;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use siemrelay_core::atomic_file::{Access, write_atomically};
use std::path::{Path, PathBuf};

/// The overlay file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// Exporters created or replaced through the API, by id.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub exporters: IndexMap<String, OverlayExporter>,
    /// Ids of exporters of the config file deleted through the API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_exporters: Vec<String>,
}

/// One exporter set through the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlayExporter {
    /// Its config block, as in the YAML file (`${env:…}` references are expanded at load).
    pub config: Value,
    /// The pipelines that deliver to it.
    pub pipelines: Vec<String>,
}

/// Where the overlay of a storage directory lives.
pub fn overlay_path(storage: &Path) -> PathBuf {
    StorageLayout::new(storage).admin_dir().join("overlay.yaml")
}

impl Overlay {
    /// Reads the overlay; `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<Overlay>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read the file: {e}")),
        };
        if text.trim().is_empty() {
            return Ok(Some(Overlay::default()));
        }
        serde_yaml::from_str(&text)
            .map(Some)
            .map_err(|e| format!("not a valid overlay: {e}"))
    }

    /// Writes the overlay atomically (temporary file, fsync, rename, fsync of the directory),
    /// readable by the owner only.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_yaml::to_string(self).map_err(std::io::Error::other)?;
        let mut bytes = b"# Exporter changes made through the siemrelay admin API; applied on top of the config file.\n".to_vec();
        bytes.extend_from_slice(text.as_bytes());
        write_atomically(path, &bytes, Access::OwnerOnly)
    }

    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.exporters.is_empty() && self.removed_exporters.is_empty()
    }

    /// Applies the overlay to the config file's YAML tree (before `${…}` expansion).
    pub fn apply(&self, root: &mut Value) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let Value::Mapping(top) = root else {
            return errors;
        };
        let exporters = section(top, "exporters");
        for id in &self.removed_exporters {
            exporters.remove(id.as_str());
        }
        for (id, exporter) in &self.exporters {
            exporters.insert(Value::String(id.clone()), exporter.config.clone());
        }
        let Some(Value::Mapping(service)) = top.get_mut("service") else {
            return errors;
        };
        let Some(Value::Mapping(pipelines)) = service.get_mut("pipelines") else {
            return errors;
        };
        for (id, exporter) in &self.exporters {
            for (index, name) in exporter.pipelines.iter().enumerate() {
                if !pipelines.contains_key(name.as_str()) {
                    errors.push(ConfigError {
                        path: format!("pipelines[{index}]"),
                        message: format!(
                            "no pipeline named {name:?} in service.pipelines (exporter {id})"
                        ),
                    });
                }
            }
        }
        for (name, pipeline) in pipelines.iter_mut() {
            let name = config::expand::key_text(name);
            let Value::Mapping(pipeline) = pipeline else {
                continue;
            };
            let list = match pipeline.get_mut("exporters") {
                Some(Value::Sequence(list)) => list,
                _ => {
                    pipeline.insert(
                        Value::String("exporters".into()),
                        Value::Sequence(Vec::new()),
                    );
                    match pipeline.get_mut("exporters") {
                        Some(Value::Sequence(list)) => list,
                        _ => continue,
                    }
                }
            };
            list.retain(|e| {
                let id = e.as_str().unwrap_or_default();
                !self.removed_exporters.iter().any(|r| r == id) && !self.exporters.contains_key(id)
            });
            for (id, exporter) in &self.exporters {
                if exporter.pipelines.contains(&name) {
                    list.push(Value::String(id.clone()));
                }
            }
        }
        errors
    }
}

fn section<'a>(top: &'a mut Mapping, name: &str) -> &'a mut Mapping {
    if !matches!(top.get(name), Some(Value::Mapping(_))) {
        top.insert(Value::String(name.into()), Value::Mapping(Mapping::new()));
    }
    match top.get_mut(name) {
        Some(Value::Mapping(map)) => map,
        _ => unreachable!("inserted above"),
    }
}

/// The config file's text and how it is named in messages.
pub struct ConfigSource {
    /// The text.
    pub text: String,
    /// The file name, or `<embedded default config>`.
    pub file: String,
}

impl ConfigSource {
    /// Reads the file (or takes the embedded default).
    pub fn read(path: Option<&Path>) -> Result<ConfigSource, ConfigErrors> {
        match path {
            None => Ok(ConfigSource {
                text: config::DEFAULT_CONFIG.to_string(),
                file: "<embedded default config>".into(),
            }),
            Some(path) => {
                let file = path.display().to_string();
                std::fs::read_to_string(path)
                    .map(|text| ConfigSource {
                        text,
                        file: file.clone(),
                    })
                    .map_err(|e| ConfigErrors {
                        file,
                        errors: vec![ConfigError {
                            path: String::new(),
                            message: format!("cannot read the file: {e}"),
                        }],
                    })
            }
        }
    }

    /// True when the file itself defines exporter `id`.
    pub fn defines_exporter(&self, id: &str) -> bool {
        serde_yaml::from_str::<Value>(&self.text)
            .ok()
            .and_then(|root| root.get("exporters").and_then(|e| e.get(id)).map(|_| ()))
            .is_some()
    }
}

/// Loads the config file with the overlay of its storage directory applied: what `run`,
/// reloads and `validate` use.
pub fn load(path: Option<&Path>) -> Result<LoadedConfig, ConfigErrors> {
    let source = ConfigSource::read(path)?;
    let base = config::load_str(&source.text, &source.file)?;
    let path = overlay_path(&base.service.storage.directory);
    let overlay = Overlay::read(&path).map_err(|message| ConfigErrors {
        file: path.display().to_string(),
        errors: vec![ConfigError {
            path: String::new(),
            message,
        }],
    })?;
    match overlay {
        Some(overlay) if !overlay.is_empty() => load_merged(&source, &overlay, &path),
        _ => Ok(base),
    }
}

/// Loads `source` with `overlay` applied (validating the result like a config file).
pub fn load_merged(
    source: &ConfigSource,
    overlay: &Overlay,
    overlay_file: &Path,
) -> Result<LoadedConfig, ConfigErrors> {
    let label = format!("{} + {}", source.file, overlay_file.display());
    let fail = |errors| ConfigErrors {
        file: label.clone(),
        errors,
    };
    let mut root: Value = serde_yaml::from_str(&source.text).map_err(|e| {
        fail(vec![ConfigError {
            path: String::new(),
            message: format!("not valid YAML: {e}"),
        }])
    })?;
    let errors = overlay.apply(&mut root);
    if !errors.is_empty() {
        return Err(fail(errors));
    }
    let merged = serde_yaml::to_string(&root).map_err(|e| {
        fail(vec![ConfigError {
            path: String::new(),
            message: format!("cannot merge the overlay: {e}"),
        }])
    })?;
    let from_api: Vec<String> = overlay.exporters.keys().cloned().collect();
    config::load_with_api_exporters(&merged, &label, &from_api)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
receivers:
  webhook: { endpoint: "127.0.0.1:0" }
exporters:
  file: { path: "./out-${env:HOME}.ndjson" }
  stdout: {}
service:
  pipelines:
    a: { receivers: [webhook], exporters: [file, stdout] }
    b: { receivers: [webhook], exporters: [file] }
"#;

    fn merged(overlay: &Overlay) -> Result<LoadedConfig, ConfigErrors> {
        let source = ConfigSource {
            text: FILE.into(),
            file: "test.yaml".into(),
        };
        load_merged(&source, overlay, Path::new("overlay.yaml"))
    }

    #[test]
    fn overlay_exporters_replace_and_extend_the_file() {
        let mut overlay = Overlay::default();
        overlay.exporters.insert(
            "file/new".into(),
            OverlayExporter {
                config: serde_yaml::from_str("{ path: ./siemrelay-data/new.ndjson }").unwrap(),
                pipelines: vec!["b".into()],
            },
        );
        overlay.exporters.insert(
            "stdout".into(),
            OverlayExporter {
                config: Value::Mapping(Mapping::new()),
                pipelines: vec!["a".into(), "b".into()],
            },
        );
        overlay.removed_exporters.push("file".into());
        let loaded = merged(&overlay).unwrap();
        assert_eq!(
            loaded.service.pipelines["a"].exporters,
            vec!["stdout".to_string()]
        );
        assert_eq!(
            loaded.service.pipelines["b"].exporters,
            vec!["file/new".to_string(), "stdout".to_string()]
        );
        assert!(loaded.exporter("file").is_none());

        // A path sent through the API stays under the storage directory.
        overlay.exporters.insert(
            "file/escape".into(),
            OverlayExporter {
                config: serde_yaml::from_str("{ path: /tmp/../etc/cron.d/x }").unwrap(),
                pipelines: vec!["b".into()],
            },
        );
        let errors = merged(&overlay).unwrap_err();
        assert_eq!(
            errors.errors[0].path, "exporters.file/escape.path",
            "{errors}"
        );
    }

    #[test]
    fn an_invalid_overlay_is_reported_with_its_key() {
        let mut overlay = Overlay::default();
        overlay.exporters.insert(
            "splunk_hec/x".into(),
            OverlayExporter {
                config: serde_yaml::from_str("{ endpoint: 'not a url', token: t }").unwrap(),
                pipelines: vec!["a".into()],
            },
        );
        let errors = merged(&overlay).unwrap_err();
        assert!(
            errors
                .errors
                .iter()
                .any(|e| e.path.starts_with("exporters.splunk_hec/x")),
            "{errors}"
        );

        let mut overlay = Overlay::default();
        overlay.exporters.insert(
            "stdout/y".into(),
            OverlayExporter {
                config: Value::Null,
                pipelines: vec!["nope".into()],
            },
        );
        let errors = merged(&overlay).unwrap_err();
        assert_eq!(errors.errors[0].path, "pipelines[0]");
    }

    #[test]
    fn removing_the_last_exporter_of_a_pipeline_is_refused() {
        let overlay = Overlay {
            removed_exporters: vec!["file".into()],
            ..Default::default()
        };
        let errors = merged(&overlay).unwrap_err();
        assert!(
            errors
                .errors
                .iter()
                .any(|e| e.path == "service.pipelines.b.exporters"),
            "{errors}"
        );
    }

    #[test]
    fn the_overlay_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = overlay_path(dir.path());
        assert_eq!(Overlay::read(&path).unwrap(), None);
        let mut overlay = Overlay::default();
        overlay.exporters.insert(
            "stdout/z".into(),
            OverlayExporter {
                config: Value::Null,
                pipelines: vec!["a".into()],
            },
        );
        overlay.write(&path).unwrap();
        assert_eq!(Overlay::read(&path).unwrap(), Some(overlay));
    }
}
