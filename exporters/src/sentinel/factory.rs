//! The `sentinel` exporter's factory: its entry in [`crate::exporter_factories`].

use super::SentinelConfig;
use crate::delivery::Sink;
use crate::delivery::factory::{ExporterBuildContext, ExporterFactory, SharedKeys};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, config_as};
use std::sync::Arc;

/// Builds `sentinel` exporters (Microsoft Sentinel Logs Ingestion API).
pub struct SentinelFactory;

impl ExporterFactory for SentinelFactory {
    fn type_name(&self) -> &'static str {
        "sentinel"
    }

    /// What its encoder declares ([`super::SentinelEncoder`]'s `HONOURS`).
    fn shared_keys(&self) -> SharedKeys {
        SharedKeys::of::<super::SentinelEncoder>()
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, SentinelConfig::validate)?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ExporterBuildContext<'_>,
    ) -> anyhow::Result<Arc<dyn Sink>> {
        let config =
            config_as::<SentinelConfig>(config, self.type_name()).map_err(anyhow::Error::msg)?;
        super::build(ctx.id, config.clone(), ctx.http, ctx.timeout())
    }
}
