//! The `file` exporter's factory: its entry in [`crate::exporter_factories`].

use super::FileConfig;
use crate::delivery::Sink;
use crate::delivery::factory::{ExporterBuildContext, ExporterFactory};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, config_as};
use std::sync::Arc;

/// Builds `file` exporters (NDJSON files, rotated daily).
pub struct FileFactory;

impl ExporterFactory for FileFactory {
    fn type_name(&self) -> &'static str {
        "file"
    }

    fn takes_schema(&self) -> bool {
        true
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, FileConfig::validate)?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ExporterBuildContext<'_>,
    ) -> anyhow::Result<Arc<dyn Sink>> {
        let config =
            config_as::<FileConfig>(config, self.type_name()).map_err(anyhow::Error::msg)?;
        Ok(Arc::new(
            super::FileSink::new(config).with_schema(ctx.schema()),
        ))
    }
}
