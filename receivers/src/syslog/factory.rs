//! The `syslog` receiver's factory: its entry in [`crate::receiver_factories`].

use super::{SyslogConfig, build};
use async_trait::async_trait;
use siemrelay_core::component::Receiver;
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{
    BoxedConfig, ComponentConfig, ReceiverBuildContext, ReceiverFactory, config_as,
};

/// Builds `syslog` receivers (syslog over UDP, TCP and TLS).
pub struct SyslogFactory;

#[async_trait]
impl ReceiverFactory for SyslogFactory {
    fn type_name(&self) -> &'static str {
        "syslog"
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, SyslogConfig::validate)?))
    }

    async fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: ReceiverBuildContext<'_>,
    ) -> anyhow::Result<Box<dyn Receiver>> {
        let config =
            config_as::<SyslogConfig>(config, self.type_name()).map_err(anyhow::Error::msg)?;
        build(ctx.id, config.clone()).await
    }
}
