//! The `file` receiver's factory: its entry in [`crate::receiver_factories`].

use super::{FileConfig, build};
use async_trait::async_trait;
use siemrelay_core::component::Receiver;
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{
    BoxedConfig, ComponentConfig, ReceiverBuildContext, ReceiverFactory, config_as,
};

/// Builds `file` receivers (the file-tail receiver).
pub struct FileFactory;

#[async_trait]
impl ReceiverFactory for FileFactory {
    fn type_name(&self) -> &'static str {
        "file"
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, FileConfig::validate)?))
    }

    async fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: ReceiverBuildContext<'_>,
    ) -> anyhow::Result<Box<dyn Receiver>> {
        let config =
            config_as::<FileConfig>(config, self.type_name()).map_err(anyhow::Error::msg)?;
        build(ctx.id, config.clone()).await
    }
}
