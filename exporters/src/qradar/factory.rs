//! The `qradar` exporter's factory: its entry in [`crate::exporter_factories`].

use super::QradarConfig;
use crate::delivery::Sink;
use crate::delivery::factory::{ExporterBuildContext, ExporterFactory};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, config_as};
use std::sync::Arc;

/// Builds `qradar` exporters (IBM QRadar, LEEF over syslog or HTTP).
pub struct QradarFactory;

impl ExporterFactory for QradarFactory {
    fn type_name(&self) -> &'static str {
        "qradar"
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, QradarConfig::validate)?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ExporterBuildContext<'_>,
    ) -> anyhow::Result<Arc<dyn Sink>> {
        let config =
            config_as::<QradarConfig>(config, self.type_name()).map_err(anyhow::Error::msg)?;
        super::build(ctx.id, config.clone(), ctx.timeout())
    }
}
