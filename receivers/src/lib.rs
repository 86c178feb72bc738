//! siemrelay receivers: where events enter. One module per component type.
//!
//! Each module exposes a `Config` (serde, unknown keys rejected), a `validate` step that needs no
//! sockets, and a `build` that binds its listeners and returns a [`siemrelay_core::component::Receiver`].

pub mod body;
pub mod credentials;
pub mod datadog;
pub mod elasticsearch;
pub mod file;
pub mod kafka;
pub mod listener;
pub mod otlp;
pub mod splunk_hec;
pub mod syslog;
pub mod webhook;

use siemrelay_core::factory::ReceiverFactory;

/// Every receiver type, one line each: the pipelines crate looks config types up here.
pub fn receiver_factories() -> &'static [&'static dyn ReceiverFactory] {
    &[
        &webhook::factory::WebhookFactory,
        &otlp::factory::OtlpFactory,
        &file::factory::FileFactory,
        &kafka::factory::KafkaFactory,
        &datadog::factory::DatadogFactory,
        &elasticsearch::factory::ElasticsearchFactory,
        &splunk_hec::factory::SplunkHecFactory,
        &syslog::factory::SyslogFactory,
    ]
}
