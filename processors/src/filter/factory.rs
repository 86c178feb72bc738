//! The `filter` processor's factory: its entry in [`crate::processor_factories`].

use super::{FilterConfig, build};
use siemrelay_core::ConfigIssue;
use siemrelay_core::component::{Processor, ProcessorContext};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, ProcessorFactory, config_as};

/// Builds `filter` processors (keeps or drops events by type and severity).
pub struct FilterFactory;

impl ProcessorFactory for FilterFactory {
    fn type_name(&self) -> &'static str {
        "filter"
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, FilterConfig::validate)?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ProcessorContext,
    ) -> Result<Option<Box<dyn Processor>>, Vec<ConfigIssue>> {
        let config = config_as::<FilterConfig>(config, self.type_name())
            .map_err(|e| vec![ConfigIssue::new("", e)])?;
        Ok(Some(Box::new(build(config.clone(), ctx)?)))
    }
}
