//! The `splunk_hec` exporter's factory: its entry in [`crate::exporter_factories`].

use super::SplunkHecConfig;
use crate::delivery::Sink;
use crate::delivery::factory::{ExporterBuildContext, ExporterFactory, SharedKeys};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, config_as};
use std::sync::Arc;

/// Builds `splunk_hec` exporters (Splunk HTTP Event Collector).
pub struct SplunkHecFactory;

impl ExporterFactory for SplunkHecFactory {
    fn type_name(&self) -> &'static str {
        "splunk_hec"
    }

    /// What its encoder declares ([`super::HecEncoder`]'s `HONOURS`).
    fn shared_keys(&self) -> SharedKeys {
        SharedKeys::of::<super::HecEncoder>()
    }

    fn takes_schema(&self) -> bool {
        true
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(
            block,
            path,
            SplunkHecConfig::validate,
        )?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ExporterBuildContext<'_>,
    ) -> anyhow::Result<Arc<dyn Sink>> {
        let config =
            config_as::<SplunkHecConfig>(config, self.type_name()).map_err(anyhow::Error::msg)?;
        super::build(ctx.id, config.clone(), ctx.http, ctx.timeout())
    }
}
