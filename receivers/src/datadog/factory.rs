//! The `datadog` receiver's factory: its entry in [`crate::receiver_factories`].

use super::{DatadogConfig, bind};
use async_trait::async_trait;
use siemrelay_core::component::Receiver;
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{
    BoxedConfig, ComponentConfig, ReceiverBuildContext, ReceiverFactory, config_as,
};

/// Builds `datadog` receivers (Datadog's log intake).
pub struct DatadogFactory;

#[async_trait]
impl ReceiverFactory for DatadogFactory {
    fn type_name(&self) -> &'static str {
        "datadog"
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, DatadogConfig::validate)?))
    }

    async fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: ReceiverBuildContext<'_>,
    ) -> anyhow::Result<Box<dyn Receiver>> {
        let config =
            config_as::<DatadogConfig>(config, self.type_name()).map_err(anyhow::Error::msg)?;
        Ok(Box::new(bind(ctx.id, config.clone()).await?))
    }
}
