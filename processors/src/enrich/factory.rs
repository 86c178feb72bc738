//! The `enrich` processor's factory: its entry in [`crate::processor_factories`].

use super::{EnrichConfig, build};
use siemrelay_core::ConfigIssue;
use siemrelay_core::component::{Processor, ProcessorContext};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, ProcessorFactory, config_as};

/// Builds `enrich` processors (adds or rewrites attributes).
pub struct EnrichFactory;

impl ProcessorFactory for EnrichFactory {
    fn type_name(&self) -> &'static str {
        "enrich"
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, EnrichConfig::validate)?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ProcessorContext,
    ) -> Result<Option<Box<dyn Processor>>, Vec<ConfigIssue>> {
        let config = config_as::<EnrichConfig>(config, self.type_name())
            .map_err(|e| vec![ConfigIssue::new("", e)])?;
        Ok(Some(Box::new(build(config.clone(), ctx)?)))
    }
}
