//! The one list of component types: how each type's config is parsed and validated, and how a
//! running component is built from it. Adding a component type is adding a line here.

use crate::config::{ComponentId, ConfigError, deserialize_collecting, join_path};
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use siemrelay_core::ConfigIssue;
use siemrelay_core::component::{Processor, ProcessorContext, Receiver};
use siemrelay_exporters as exporters;
use siemrelay_exporters::delivery::http::HttpOptions;
use siemrelay_exporters::delivery::{DeliveryConfig, Sink};
use siemrelay_processors as processors;
use siemrelay_receivers as receivers;
use std::sync::Arc;
use std::time::Duration;

/// A parsed, validated receiver config.
#[derive(Debug)]
pub enum ReceiverSpec {
    /// `webhook`
    Webhook(receivers::webhook::WebhookConfig),
    /// `otlp`
    Otlp(receivers::otlp::OtlpConfig),
    /// `file`
    File(receivers::file::FileConfig),
    /// `kafka`
    Kafka(receivers::kafka::KafkaReceiverConfig),
}

/// Receiver types, for messages.
pub const RECEIVER_TYPES: &str = "webhook, otlp, file, kafka";

/// A parsed, validated processor config.
#[derive(Debug)]
pub enum ProcessorSpec {
    /// `filter`
    Filter(processors::filter::FilterConfig),
    /// `enrich`
    Enrich(processors::enrich::EnrichConfig),
    /// `batch`
    Batch(processors::batch::BatchConfig),
    /// `sign`
    Sign(processors::sign::SignConfig),
}

/// Processor types, for messages.
pub const PROCESSOR_TYPES: &str = "filter, enrich, batch, sign";

/// A parsed, validated exporter config: its own keys, the shared delivery keys, and for HTTP
/// exporters the shared HTTP keys.
#[derive(Debug)]
pub struct ExporterSpec {
    /// The exporter-specific part.
    pub kind: ExporterKind,
    /// `sending`, `retry`, `queue`.
    pub delivery: DeliveryConfig,
    /// `tls`, `compression`, `signing` (HTTP exporters only).
    pub http: HttpOptions,
}

/// The exporter-specific config.
#[derive(Debug)]
pub enum ExporterKind {
    /// `cloudwatch_logs`
    CloudwatchLogs(exporters::cloudwatch_logs::CloudWatchLogsConfig),
    /// `sentinel`
    Sentinel(exporters::sentinel::SentinelConfig),
    /// `syslog`
    Syslog(exporters::syslog::SyslogConfig),
    /// `qradar`
    Qradar(exporters::qradar::QradarConfig),
    /// `plugin`
    Plugin(exporters::plugin::PluginConfig),
    /// `file`
    File(exporters::file::FileConfig),
    /// `kafka`
    Kafka(exporters::kafka::KafkaConfig),
    /// `stdout`
    Stdout(exporters::stdout::StdoutConfig),
    /// `splunk_hec`
    SplunkHec(exporters::splunk_hec::SplunkHecConfig),
    /// `datadog`
    Datadog(exporters::datadog::DatadogConfig),
    /// `elasticsearch`
    Elasticsearch(exporters::elasticsearch::ElasticsearchConfig),
    /// `webhook`
    Webhook(exporters::webhook::WebhookConfig),
}

/// Exporter types, for messages.
pub const EXPORTER_TYPES: &str = "file, stdout, splunk_hec, datadog, elasticsearch, webhook, plugin, syslog, qradar, cloudwatch_logs, sentinel, kafka";

const DELIVERY_KEYS: &[&str] = &["sending", "retry", "queue"];
const HTTP_KEYS: &[&str] = &["tls", "compression", "signing"];

/// Deserializes and validates one component config, collecting every error of the block.
fn typed<T: DeserializeOwned>(
    value: Value,
    path: &str,
    validate: impl Fn(&T) -> Vec<ConfigIssue>,
) -> Result<T, Vec<ConfigError>> {
    let collected = deserialize_collecting::<T>(value, path);
    let mut errors = Vec::new();
    if let Some(config) = &collected.value {
        // Issues about a removed (bad) entry would be about the default standing in for it.
        errors.extend(
            validate(config)
                .into_iter()
                .map(|i| issue_at(path, i))
                .filter(|e| !collected.covers(&e.path)),
        );
    }
    let mut all = collected.errors;
    all.append(&mut errors);
    match collected.value {
        Some(config) if all.is_empty() => Ok(config),
        _ => Err(all),
    }
}

fn issue_at(path: &str, issue: ConfigIssue) -> ConfigError {
    ConfigError {
        path: join_path(path, &issue.key),
        message: issue.message,
    }
}

fn unknown(section: &str, kind: &str, path: &str, known: &str) -> Vec<ConfigError> {
    vec![ConfigError {
        path: path.to_string(),
        message: format!("unknown {section} type `{kind}`; known types: {known}"),
    }]
}

/// Parses a `receivers:` entry.
pub fn receiver_from_yaml(
    id: &ComponentId,
    value: Value,
    path: &str,
) -> Result<ReceiverSpec, Vec<ConfigError>> {
    match id.kind.as_str() {
        "webhook" => typed(value, path, receivers::webhook::WebhookConfig::validate)
            .map(ReceiverSpec::Webhook),
        "otlp" => typed(value, path, receivers::otlp::OtlpConfig::validate).map(ReceiverSpec::Otlp),
        "file" => typed(value, path, receivers::file::FileConfig::validate).map(ReceiverSpec::File),
        "kafka" => typed(value, path, receivers::kafka::KafkaReceiverConfig::validate)
            .map(ReceiverSpec::Kafka),
        other => Err(unknown("receiver", other, path, RECEIVER_TYPES)),
    }
}

/// Parses a `processors:` entry.
pub fn processor_from_yaml(
    id: &ComponentId,
    value: Value,
    path: &str,
) -> Result<ProcessorSpec, Vec<ConfigError>> {
    match id.kind.as_str() {
        "filter" => typed(value, path, processors::filter::FilterConfig::validate)
            .map(ProcessorSpec::Filter),
        "enrich" => typed(value, path, processors::enrich::EnrichConfig::validate)
            .map(ProcessorSpec::Enrich),
        "batch" => {
            typed(value, path, processors::batch::BatchConfig::validate).map(ProcessorSpec::Batch)
        }
        "sign" => {
            typed(value, path, processors::sign::SignConfig::validate).map(ProcessorSpec::Sign)
        }
        other => Err(unknown("processor", other, path, PROCESSOR_TYPES)),
    }
}

/// Parses an `exporters:` entry: splits off the shared keys, then the exporter's own.
pub fn exporter_from_yaml(
    id: &ComponentId,
    value: Value,
    path: &str,
) -> Result<ExporterSpec, Vec<ConfigError>> {
    let Value::Mapping(mut own) = value else {
        return Err(vec![ConfigError {
            path: path.to_string(),
            message: "must be a map of settings".into(),
        }]);
    };
    let is_http = matches!(
        id.kind.as_str(),
        "splunk_hec" | "datadog" | "elasticsearch" | "webhook" | "cloudwatch_logs" | "sentinel"
    );
    let delivery_part = take_keys(&mut own, DELIVERY_KEYS);
    let http_part = if is_http {
        take_keys(&mut own, HTTP_KEYS)
    } else {
        Mapping::new()
    };
    let mut errors = Vec::new();
    let delivery = typed(
        Value::Mapping(delivery_part),
        path,
        DeliveryConfig::validate,
    )
    .map_err(|e| errors.extend(e))
    .ok();
    let http = typed(Value::Mapping(http_part), path, HttpOptions::validate)
        .map_err(|e| errors.extend(e))
        .ok();
    let own = Value::Mapping(own);
    let kind =
        match id.kind.as_str() {
            "file" => {
                typed(own, path, exporters::file::FileConfig::validate).map(ExporterKind::File)
            }
            "kafka" => {
                typed(own, path, exporters::kafka::KafkaConfig::validate).map(ExporterKind::Kafka)
            }
            "stdout" => typed(own, path, |_: &exporters::stdout::StdoutConfig| Vec::new())
                .map(ExporterKind::Stdout),
            "splunk_hec" => typed(own, path, exporters::splunk_hec::SplunkHecConfig::validate)
                .map(ExporterKind::SplunkHec),
            "datadog" => typed(own, path, exporters::datadog::DatadogConfig::validate)
                .map(ExporterKind::Datadog),
            "webhook" => typed(own, path, exporters::webhook::WebhookConfig::validate)
                .map(ExporterKind::Webhook),
            "elasticsearch" => typed(
                own,
                path,
                exporters::elasticsearch::ElasticsearchConfig::validate,
            )
            .map(ExporterKind::Elasticsearch),
            "plugin" => typed(own, path, exporters::plugin::PluginConfig::validate)
                .map(ExporterKind::Plugin),
            "syslog" => typed(own, path, exporters::syslog::SyslogConfig::validate)
                .map(ExporterKind::Syslog),
            "cloudwatch_logs" => typed(
                own,
                path,
                exporters::cloudwatch_logs::CloudWatchLogsConfig::validate,
            )
            .map(ExporterKind::CloudwatchLogs),
            "sentinel" => typed(own, path, exporters::sentinel::SentinelConfig::validate)
                .map(ExporterKind::Sentinel),
            "qradar" => typed(own, path, exporters::qradar::QradarConfig::validate)
                .map(ExporterKind::Qradar),
            other => Err(unknown("exporter", other, path, EXPORTER_TYPES)),
        }
        .map_err(|e| errors.extend(e))
        .ok();
    match (kind, delivery, http) {
        (Some(kind), Some(delivery), Some(http)) if errors.is_empty() => Ok(ExporterSpec {
            kind,
            delivery,
            http,
        }),
        _ => Err(errors),
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
    match spec {
        ReceiverSpec::Webhook(config) => receivers::webhook::build(&id.id, config.clone()).await,
        ReceiverSpec::Otlp(config) => receivers::otlp::build(&id.id, config.clone()).await,
        ReceiverSpec::File(config) => receivers::file::build(&id.id, config.clone()).await,
        ReceiverSpec::Kafka(config) => receivers::kafka::build(&id.id, config.clone()).await,
    }
}

/// Builds a processor for one pipeline. `batch` has no running part (it sets how exporter queues
/// are drained) and yields `None`.
pub fn build_processor(
    spec: &ProcessorSpec,
    ctx: &ProcessorContext,
) -> Result<Option<Box<dyn Processor>>, Vec<ConfigIssue>> {
    Ok(match spec {
        ProcessorSpec::Filter(config) => {
            Some(Box::new(processors::filter::build(config.clone(), ctx)?))
        }
        ProcessorSpec::Enrich(config) => {
            Some(Box::new(processors::enrich::build(config.clone(), ctx)?))
        }
        ProcessorSpec::Sign(config) => {
            Some(Box::new(processors::sign::build(config.clone(), ctx)?))
        }
        ProcessorSpec::Batch(_) => None,
    })
}

/// Builds an exporter's sink.
pub fn build_sink(id: &ComponentId, spec: &ExporterSpec) -> anyhow::Result<Arc<dyn Sink>> {
    let timeout: Duration = spec.delivery.sending.timeout.0;
    Ok(match &spec.kind {
        ExporterKind::File(config) => Arc::new(exporters::file::FileSink::new(config)),
        ExporterKind::Kafka(config) => exporters::kafka::build(&id.id, config, timeout)?,
        ExporterKind::Plugin(config) => {
            exporters::plugin::build(&id.id, config, spec.delivery.sending.concurrency)?
        }
        ExporterKind::Stdout(_) => Arc::new(exporters::stdout::StdoutSink),
        ExporterKind::Syslog(config) => exporters::syslog::build(&id.id, config.clone(), timeout)?,
        ExporterKind::CloudwatchLogs(config) => {
            exporters::cloudwatch_logs::build(&id.id, config.clone(), &spec.http, timeout)?
        }
        ExporterKind::Sentinel(config) => {
            exporters::sentinel::build(&id.id, config.clone(), &spec.http, timeout)?
        }
        ExporterKind::Qradar(config) => exporters::qradar::build(&id.id, config.clone(), timeout)?,
        ExporterKind::SplunkHec(config) => {
            exporters::splunk_hec::build(&id.id, config.clone(), &spec.http, timeout)?
        }
        ExporterKind::Datadog(config) => {
            exporters::datadog::build(&id.id, config.clone(), &spec.http, timeout)?
        }
        ExporterKind::Webhook(config) => {
            exporters::webhook::build(&id.id, config.clone(), &spec.http, timeout)?
        }
        ExporterKind::Elasticsearch(config) => {
            exporters::elasticsearch::build(&id.id, config.clone(), &spec.http, timeout)?
        }
    })
}
