//! The `batch` processor's factory: its entry in [`crate::processor_factories`]. It builds no
//! running processor: its settings are exporter batch settings (see the module doc of
//! [`super`]), lifted by the pipelines crate.

use super::BatchConfig;
use siemrelay_core::ConfigIssue;
use siemrelay_core::component::{Processor, ProcessorContext};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, ProcessorFactory};

/// Reads `batch` processors (kept for compatibility; they have no running part).
pub struct BatchFactory;

impl ProcessorFactory for BatchFactory {
    fn type_name(&self) -> &'static str {
        "batch"
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, BatchConfig::validate)?))
    }

    fn build(
        &self,
        _config: &dyn ComponentConfig,
        _ctx: &ProcessorContext,
    ) -> Result<Option<Box<dyn Processor>>, Vec<ConfigIssue>> {
        Ok(None)
    }
}
