//! The `splunk_hec` exporter's factory: its entry in [`crate::exporter_factories`].

use super::HecEncoder;
use super::SplunkHecConfig;

crate::exporter_factory! {
    /// Builds `splunk_hec` exporters (Splunk HTTP Event Collector).
    pub struct SplunkHecFactory {
        type_name: "splunk_hec",
        config: SplunkHecConfig,
        http: HecEncoder,
        takes_schema: true,
        build: |config, ctx| super::build(ctx.id, config.clone(), ctx.http, ctx.timeout()),
    }
}
