//! The steps of loading config text: YAML, `${…}` expansion, the four top-level sections, each
//! component through its factory, then the checks across sections. Every step adds its
//! problems to one list, so a file's errors are reported together.

use super::{
    ComponentId, ConfigError, ConfigErrors, LoadedConfig, PipelineConfig, RawComponents,
    ServiceConfig, batching, check_pipelines, components, confine, default_storage,
    deserialize_collecting, expand, expand_root,
};
use crate::registry::{self, ExporterSpec, ProcessorSpec, ReceiverSpec};
use serde_yaml::Value;

/// The top-level sections of a file, as written.
#[derive(Default)]
struct Sections {
    receivers: Option<Value>,
    processors: Option<Value>,
    exporters: Option<Value>,
    service: Option<Value>,
}

/// The sections read into typed components.
struct Components {
    service: Option<ServiceConfig>,
    /// `service.pipelines` when `service` as a whole could not be read (for the reference
    /// checks).
    unread_pipelines: Option<Value>,
    receivers: Vec<(ComponentId, ReceiverSpec)>,
    processors: Vec<(ComponentId, ProcessorSpec)>,
    exporters: Vec<(ComponentId, ExporterSpec)>,
    /// Every component id defined, by section.
    defined: Vec<(&'static str, String)>,
    raw: RawComponents,
}

/// Loads config text in which the exporters `from_api` were sent through the admin API: their
/// `${…}` references expand only as `service.admin.allowed_env` allows, and their paths must
/// stay under the storage directory.
pub fn load_with_api_exporters(
    text: &str,
    file: &str,
    from_api: &[String],
) -> Result<LoadedConfig, ConfigErrors> {
    let fail = |errors: Vec<ConfigError>| ConfigErrors {
        file: file.to_string(),
        errors,
    };
    let mut root = parse_yaml(text).map_err(|e| fail(vec![e]))?;
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut secrets = Vec::new();
    let mut expand_errors = Vec::new();
    expand_root(&mut root, from_api, &mut secrets, &mut expand_errors);
    errors.extend(
        expand_errors
            .into_iter()
            .map(|e| ConfigError::new(e.path, e.message)),
    );
    let sections = split_sections(root, &mut errors).map_err(|e| fail(vec![e]))?;
    // Secret-typed keys are collected while parsing, so they are scrubbed like `${…}` values.
    let (mut read, typed_secrets) =
        siemrelay_core::scrub::collect_secrets(|| read_components(sections, &mut errors));
    secrets.extend(typed_secrets);
    let mut warnings = Vec::new();
    check_across_sections(&mut read, from_api, &mut errors, &mut warnings);
    for error in &mut errors {
        error.message = expand::scrub(&error.message, &secrets);
    }
    match read.service {
        Some(service) if errors.is_empty() => {
            siemrelay_core::scrub::remember(&secrets);
            Ok(LoadedConfig {
                file: file.to_string(),
                receivers: read.receivers,
                processors: read.processors,
                exporters: read.exporters,
                service,
                warnings,
                secrets,
                raw: read.raw,
            })
        }
        _ => Err(fail(errors)),
    }
}

/// The YAML document; an error for invalid YAML (with its position) or an empty file.
fn parse_yaml(text: &str) -> Result<Value, ConfigError> {
    let root: Value = serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        ConfigError::new("", format!("not valid YAML{at}: {e}"))
    })?;
    if root.is_null() {
        return Err(ConfigError::new("", "the file is empty"));
    }
    Ok(root)
}

/// The four top-level sections; an unknown top-level key is an error (the rest is still read).
fn split_sections(root: Value, errors: &mut Vec<ConfigError>) -> Result<Sections, ConfigError> {
    let Value::Mapping(top) = root else {
        return Err(ConfigError::new(
            "",
            "the top level must be a map with receivers, processors, exporters and service",
        ));
    };
    let mut sections = Sections::default();
    for (key, value) in top {
        let key = expand::key_text(&key);
        let slot = match key.as_str() {
            "receivers" => &mut sections.receivers,
            "processors" => &mut sections.processors,
            "exporters" => &mut sections.exporters,
            "service" => &mut sections.service,
            _ => {
                errors.push(ConfigError::new(
                    key.clone(),
                    format!("unknown top-level key `{key}`; expected receivers, processors, exporters, service"),
                ));
                continue;
            }
        };
        *slot = Some(value);
    }
    Ok(sections)
}

/// `service`, then every component through its factory.
fn read_components(sections: Sections, errors: &mut Vec<ConfigError>) -> Components {
    let (service, unread_pipelines) = read_service(sections.service, errors);
    // Plugins load from this directory only; set before the plugin exporters validate.
    let plugins = service
        .as_ref()
        .map(ServiceConfig::plugins_directory)
        .unwrap_or_else(|| default_storage().join("plugins"));
    siemrelay_exporters::plugin::trust::set_directory(&plugins);
    let mut defined = Vec::new();
    let mut raw = RawComponents::default();
    let receivers = components(
        sections.receivers,
        "receivers",
        errors,
        &mut defined,
        &mut raw.receivers,
        registry::receiver_from_yaml,
    );
    let processors = components(
        sections.processors,
        "processors",
        errors,
        &mut defined,
        &mut raw.processors,
        registry::processor_from_yaml,
    );
    let exporters = components(
        sections.exporters,
        "exporters",
        errors,
        &mut defined,
        &mut raw.exporters,
        registry::exporter_from_yaml,
    );
    Components {
        service,
        unread_pipelines,
        receivers,
        processors,
        exporters,
        defined,
        raw,
    }
}

/// `service:`; when it cannot be read, its `pipelines` as written (for the reference checks).
fn read_service(
    value: Option<Value>,
    errors: &mut Vec<ConfigError>,
) -> (Option<ServiceConfig>, Option<Value>) {
    let Some(value) = value else {
        errors.push(ConfigError::new(
            "service",
            "missing: define service.pipelines",
        ));
        return (None, None);
    };
    let pipelines = value.get("pipelines").cloned();
    let collected = deserialize_collecting::<ServiceConfig>(value, "service");
    errors.extend(collected.errors);
    match collected.value {
        Some(service) => (Some(service), None),
        None => (None, pipelines),
    }
}

/// The checks that need more than one section: pipeline references, batch settings per
/// exporter, service limits, the paths of exporters sent through the admin API.
fn check_across_sections(
    read: &mut Components,
    from_api: &[String],
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) {
    let Some(service) = &read.service else {
        // The references are still checked (their own errors are already listed).
        if let Some(pipelines) = read.unread_pipelines.take() {
            let pipelines = deserialize_collecting::<indexmap::IndexMap<String, PipelineConfig>>(
                pipelines,
                "service.pipelines",
            );
            if let Some(pipelines) = pipelines.value {
                check_pipelines(&pipelines, &read.defined, errors, warnings);
            }
        }
        return;
    };
    check_pipelines(&service.pipelines, &read.defined, errors, warnings);
    batching::lift_batch_processors(
        &service.pipelines,
        &read.processors,
        &mut read.exporters,
        errors,
    );
    if let Some(admin) = &service.admin {
        errors.extend(admin.validate());
    }
    if service.memory_limit.0 == 0 {
        errors.push(ConfigError::new(
            "service.memory_limit",
            "must be greater than 0; write a size such as 64MiB",
        ));
    }
    for (id, spec) in &read.exporters {
        if from_api.contains(&id.id) {
            errors.extend(confine::exporter_paths(
                id,
                spec,
                &service.storage.directory,
            ));
        }
    }
}
