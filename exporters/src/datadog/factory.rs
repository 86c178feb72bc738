//! The `datadog` exporter's factory: its entry in [`crate::exporter_factories`].

use super::DatadogConfig;
use super::DatadogEncoder;

crate::exporter_factory! {
    /// Builds `datadog` exporters (Datadog Logs intake).
    pub struct DatadogFactory {
        type_name: "datadog",
        config: DatadogConfig,
        http: DatadogEncoder,
        takes_schema: true,
        build: |config, ctx| super::build(ctx.id, config.clone(), ctx.http, ctx.timeout()),
    }
}
