//! The `sign` processor's factory: its entry in [`crate::processor_factories`].

use super::{SignConfig, build};
use siemrelay_core::ConfigIssue;
use siemrelay_core::component::{Processor, ProcessorContext};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, ProcessorFactory, config_as};

/// Builds `sign` processors (signs events, optionally as a hash chain).
pub struct SignFactory;

impl ProcessorFactory for SignFactory {
    fn type_name(&self) -> &'static str {
        "sign"
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, SignConfig::validate)?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ProcessorContext,
    ) -> Result<Option<Box<dyn Processor>>, Vec<ConfigIssue>> {
        let config = config_as::<SignConfig>(config, self.type_name())
            .map_err(|e| vec![ConfigIssue::new("", e)])?;
        Ok(Some(Box::new(build(config.clone(), ctx)?)))
    }
}
