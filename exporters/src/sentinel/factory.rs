//! The `sentinel` exporter's factory: its entry in [`crate::exporter_factories`].

use super::SentinelConfig;
use super::SentinelEncoder;

crate::exporter_factory! {
    /// Builds `sentinel` exporters (Microsoft Sentinel Logs Ingestion API).
    pub struct SentinelFactory {
        type_name: "sentinel",
        config: SentinelConfig,
        http: SentinelEncoder,
        takes_schema: true,
        schema_issues: SentinelConfig::schema_issues,
        build: |config, ctx| super::build(ctx.id, config.clone(), ctx.http, ctx.timeout()),
    }
}
