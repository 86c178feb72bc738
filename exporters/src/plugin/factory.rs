//! The `plugin` exporter's factory: its entry in [`crate::exporter_factories`].

use super::PluginConfig;
use crate::delivery::Sink;
use crate::delivery::factory::{ExporterBuildContext, ExporterFactory};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, config_as};
use std::sync::Arc;

/// Builds `plugin` exporters (third-party exporters loaded from a library).
pub struct PluginFactory;

impl ExporterFactory for PluginFactory {
    fn type_name(&self) -> &'static str {
        "plugin"
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, PluginConfig::validate)?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ExporterBuildContext<'_>,
    ) -> anyhow::Result<Arc<dyn Sink>> {
        let config =
            config_as::<PluginConfig>(config, self.type_name()).map_err(anyhow::Error::msg)?;
        super::build(ctx.id, config, ctx.delivery.sending.concurrency)
    }
}
