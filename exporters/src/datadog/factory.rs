//! The `datadog` exporter's factory: its entry in [`crate::exporter_factories`].

use super::DatadogConfig;
use crate::delivery::Sink;
use crate::delivery::factory::{ExporterBuildContext, ExporterFactory, SharedKeys};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, config_as};
use std::sync::Arc;

/// Builds `datadog` exporters (Datadog Logs intake).
pub struct DatadogFactory;

impl ExporterFactory for DatadogFactory {
    fn type_name(&self) -> &'static str {
        "datadog"
    }

    /// What its encoder declares ([`super::DatadogEncoder`]'s `HONOURS`).
    fn shared_keys(&self) -> SharedKeys {
        SharedKeys::of::<super::DatadogEncoder>()
    }

    fn takes_schema(&self) -> bool {
        true
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, DatadogConfig::validate)?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ExporterBuildContext<'_>,
    ) -> anyhow::Result<Arc<dyn Sink>> {
        let config =
            config_as::<DatadogConfig>(config, self.type_name()).map_err(anyhow::Error::msg)?;
        super::build(ctx.id, config.clone(), ctx.http, ctx.timeout())
    }
}
