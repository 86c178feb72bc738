//! Component types, looked up in the lists each component crate keeps
//! (`siemrelay_receivers::receiver_factories()`, `siemrelay_processors::processor_factories()`,
//! `siemrelay_exporters::exporter_factories()`). This module knows no component by name: it
//! finds a block's factory by the type part of its id, splits off an exporter's shared keys,
//! and hands the rest to the factory. Adding a component type is a module and one list line in
//! its crate (see `docs/architecture.md`).

use crate::config::{ComponentId, ConfigError};
use serde_yaml::{Mapping, Value};
use siemrelay_core::ConfigIssue;
use siemrelay_core::component::{Processor, ProcessorContext, Receiver};
use siemrelay_core::config_read::read_block;
use siemrelay_core::factory::{
    BoxedConfig, ProcessorFactory, ReceiverBuildContext, ReceiverFactory, type_names,
};
use siemrelay_exporters::delivery::factory::{
    DELIVERY_KEYS, ExporterBuildContext, ExporterFactory, HTTP_KEYS, SharedKeys, refused_schema,
};
use siemrelay_exporters::delivery::http::HttpOptions;
use siemrelay_exporters::delivery::{DeliveryConfig, Sink};
use std::fmt;
use std::sync::Arc;

/// The receiver factories (one per type).
pub fn receiver_factories() -> &'static [&'static dyn ReceiverFactory] {
    siemrelay_receivers::receiver_factories()
}

/// The processor factories (one per type).
pub fn processor_factories() -> &'static [&'static dyn ProcessorFactory] {
    siemrelay_processors::processor_factories()
}

/// The exporter factories (one per type).
pub fn exporter_factories() -> &'static [&'static dyn ExporterFactory] {
    siemrelay_exporters::exporter_factories()
}

/// Receiver types, for messages (`webhook, otlp, file, kafka`).
pub fn receiver_types() -> String {
    type_names(receiver_factories(), |f| f.type_name())
}

/// Processor types, for messages.
pub fn processor_types() -> String {
    type_names(processor_factories(), |f| f.type_name())
}

/// Exporter types, for messages.
pub fn exporter_types() -> String {
    type_names(exporter_factories(), |f| f.type_name())
}

/// A parsed, validated receiver config and the factory that builds it.
pub struct ReceiverSpec {
    /// The receiver's type.
    pub factory: &'static dyn ReceiverFactory,
    /// Its settings, as the factory read them.
    pub config: BoxedConfig,
}

/// A parsed, validated processor config and the factory that builds it.
pub struct ProcessorSpec {
    /// The processor's type.
    pub factory: &'static dyn ProcessorFactory,
    /// Its settings, as the factory read them.
    pub config: BoxedConfig,
}

/// A parsed, validated exporter config: its own keys, the shared delivery keys, and the shared
/// HTTP keys it honours.
pub struct ExporterSpec {
    /// The exporter's type.
    pub factory: &'static dyn ExporterFactory,
    /// Its own settings, as the factory read them.
    pub config: BoxedConfig,
    /// `sending`, `retry`, `queue`.
    pub delivery: DeliveryConfig,
    /// `tls`, `compression`, `signing` (those the exporter honours; defaults otherwise).
    pub http: HttpOptions,
}

impl ExporterSpec {
    /// The exporter's own settings as `T`, when it is of that type.
    pub fn config_as<T: 'static>(&self) -> Option<&T> {
        self.config.as_any().downcast_ref::<T>()
    }
}

impl ProcessorSpec {
    /// The processor's own settings as `T`, when it is of that type.
    pub fn config_as<T: 'static>(&self) -> Option<&T> {
        self.config.as_any().downcast_ref::<T>()
    }
}

impl ReceiverSpec {
    /// The receiver's own settings as `T`, when it is of that type.
    pub fn config_as<T: 'static>(&self) -> Option<&T> {
        self.config.as_any().downcast_ref::<T>()
    }
}

impl fmt::Debug for ReceiverSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverSpec")
            .field("type", &self.factory.type_name())
            .field("config", &self.config)
            .finish()
    }
}

impl fmt::Debug for ProcessorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorSpec")
            .field("type", &self.factory.type_name())
            .field("config", &self.config)
            .finish()
    }
}

impl fmt::Debug for ExporterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterSpec")
            .field("type", &self.factory.type_name())
            .field("config", &self.config)
            .field("delivery", &self.delivery)
            .field("http", &self.http)
            .finish()
    }
}

/// The factory in `factories` for `id`'s type; an error at `path` naming the known types of
/// the `section` when there is none.
fn find_factory<F: ?Sized>(
    factories: &[&'static F],
    type_name: impl Fn(&F) -> &'static str,
    section: &str,
    id: &ComponentId,
    path: &str,
) -> Result<&'static F, Vec<ConfigError>> {
    match factories.iter().find(|f| type_name(f) == id.kind) {
        Some(factory) => Ok(*factory),
        None => {
            let known = type_names(factories, &type_name);
            Err(vec![ConfigError {
                path: path.to_string(),
                message: format!("unknown {section} type `{}`; known types: {known}", id.kind),
            }])
        }
    }
}

/// Parses a `receivers:` entry.
pub fn receiver_from_yaml(
    id: &ComponentId,
    value: Value,
    path: &str,
) -> Result<ReceiverSpec, Vec<ConfigError>> {
    let factory = find_factory(
        receiver_factories(),
        |f| f.type_name(),
        "receiver",
        id,
        path,
    )?;
    let config = factory.read_config(value, path)?;
    Ok(ReceiverSpec { factory, config })
}

/// Parses a `processors:` entry.
pub fn processor_from_yaml(
    id: &ComponentId,
    value: Value,
    path: &str,
) -> Result<ProcessorSpec, Vec<ConfigError>> {
    let factory = find_factory(
        processor_factories(),
        |f| f.type_name(),
        "processor",
        id,
        path,
    )?;
    let config = factory.read_config(value, path)?;
    Ok(ProcessorSpec { factory, config })
}

/// Parses an `exporters:` entry: splits off the shared keys, then the exporter's own.
pub fn exporter_from_yaml(
    id: &ComponentId,
    value: Value,
    path: &str,
) -> Result<ExporterSpec, Vec<ConfigError>> {
    exporter_from_yaml_in(exporter_factories(), id, value, path)
}

/// [`exporter_from_yaml`] with the type looked up in `factories` (a test's own exporter next to
/// the built-in ones).
pub fn exporter_from_yaml_in(
    factories: &[&'static dyn ExporterFactory],
    id: &ComponentId,
    value: Value,
    path: &str,
) -> Result<ExporterSpec, Vec<ConfigError>> {
    let factory = find_factory(factories, |f| f.type_name(), "exporter", id, path)?;
    let Value::Mapping(mut own) = value else {
        return Err(vec![ConfigError {
            path: path.to_string(),
            message: "must be a map of settings".into(),
        }]);
    };
    let mut errors = Vec::new();
    let delivery_part = take_keys(&mut own, DELIVERY_KEYS);
    let http_part = take_http_keys(factory, &mut own);
    let delivery = read_block(
        Value::Mapping(delivery_part),
        path,
        |delivery: &DeliveryConfig| {
            let mut issues = delivery.validate();
            issues.extend(refused_schema(factory, delivery));
            issues
        },
    )
    .map_err(|e| errors.extend(e))
    .ok();
    let shared = factory.shared_keys();
    let http = read_block(Value::Mapping(http_part), path, |options: &HttpOptions| {
        let mut issues = options.validate();
        issues.extend(shared.refused(options));
        issues
    })
    .map_err(|e| errors.extend(e))
    .ok();
    let config = factory
        .read_config(Value::Mapping(own), path)
        .map_err(|e| errors.extend(e))
        .ok();
    if let (Some(config), Some(delivery)) = (&config, &delivery) {
        errors.extend(
            factory
                .schema_issues(config.as_ref(), delivery.schema)
                .into_iter()
                .map(|issue| siemrelay_core::config_read::issue_at(path, issue)),
        );
    }
    match (config, delivery, http) {
        (Some(config), Some(delivery), Some(mut http)) if errors.is_empty() => {
            http.schema = delivery.schema;
            Ok(ExporterSpec {
                factory,
                config,
                delivery,
                http,
            })
        }
        _ => Err(errors),
    }
}

/// Takes the shared HTTP keys out of an HTTP exporter's block; a non-HTTP exporter keeps them
/// as its own keys.
fn take_http_keys(factory: &dyn ExporterFactory, own: &mut Mapping) -> Mapping {
    match factory.shared_keys() {
        SharedKeys::None => Mapping::new(),
        SharedKeys::Http { .. } => take_keys(own, HTTP_KEYS),
    }
}

fn take_keys(map: &mut Mapping, keys: &[&str]) -> Mapping {
    let mut taken = Mapping::new();
    for key in keys {
        if let Some(value) = map.remove(*key) {
            taken.insert(Value::String((*key).to_string()), value);
        }
    }
    taken
}

/// Builds a receiver, binding its listeners.
pub async fn build_receiver(
    id: &ComponentId,
    spec: &ReceiverSpec,
) -> anyhow::Result<Box<dyn Receiver>> {
    let ctx = ReceiverBuildContext { id: &id.id };
    spec.factory.build(spec.config.as_ref(), ctx).await
}

/// Builds a processor for one pipeline; `None` for one without a running part (`batch`).
pub fn build_processor(
    spec: &ProcessorSpec,
    ctx: &ProcessorContext,
) -> Result<Option<Box<dyn Processor>>, Vec<ConfigIssue>> {
    spec.factory.build(spec.config.as_ref(), ctx)
}

/// Builds an exporter's sink.
pub fn build_sink(id: &ComponentId, spec: &ExporterSpec) -> anyhow::Result<Arc<dyn Sink>> {
    let ctx = ExporterBuildContext {
        id: &id.id,
        delivery: &spec.delivery,
        http: &spec.http,
    };
    spec.factory.build(spec.config.as_ref(), &ctx)
}
