//! siemrelay exporters and the delivery layer they all share.
//!
//! An exporter only encodes events into requests and classifies the replies (it implements
//! [`delivery::Sink`]); queueing, batching, retries with backoff, dead-letter files, status and
//! delivery history live once, in [`delivery`].

pub mod cloudwatch_logs;
pub mod datadog;
pub mod delivery;
pub mod elasticsearch;
pub mod file;
pub mod kafka;
pub mod plugin;
pub mod qradar;
pub mod sentinel;
pub mod splunk_hec;
pub mod stdout;
pub mod syslog;
pub mod webhook;

use delivery::factory::ExporterFactory;

/// Every exporter type, one line each: the pipelines crate looks config types up here.
pub fn exporter_factories() -> &'static [&'static dyn ExporterFactory] {
    &[
        &file::factory::FileFactory,
        &stdout::factory::StdoutFactory,
        &splunk_hec::factory::SplunkHecFactory,
        &datadog::factory::DatadogFactory,
        &elasticsearch::factory::ElasticsearchFactory,
        &webhook::factory::WebhookFactory,
        &plugin::factory::PluginFactory,
        &syslog::factory::SyslogFactory,
        &qradar::factory::QradarFactory,
        &cloudwatch_logs::factory::CloudWatchLogsFactory,
        &sentinel::factory::SentinelFactory,
        &kafka::factory::KafkaFactory,
    ]
}
