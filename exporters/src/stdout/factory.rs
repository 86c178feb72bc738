//! The `stdout` exporter's factory: its entry in [`crate::exporter_factories`].

use super::StdoutConfig;
use crate::delivery::Sink;
use crate::delivery::factory::{ExporterBuildContext, ExporterFactory};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, config_as};
use std::sync::Arc;

/// Builds `stdout` exporters (NDJSON on standard output).
pub struct StdoutFactory;

impl ExporterFactory for StdoutFactory {
    fn type_name(&self) -> &'static str {
        "stdout"
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, |_: &StdoutConfig| {
            Vec::new()
        })?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        _ctx: &ExporterBuildContext<'_>,
    ) -> anyhow::Result<Arc<dyn Sink>> {
        config_as::<StdoutConfig>(config, self.type_name()).map_err(anyhow::Error::msg)?;
        Ok(Arc::new(super::StdoutSink))
    }
}
