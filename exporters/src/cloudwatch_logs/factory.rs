//! The `cloudwatch_logs` exporter's factory: its entry in [`crate::exporter_factories`].

use super::CloudWatchLogsConfig;
use crate::delivery::Sink;
use crate::delivery::factory::{ExporterBuildContext, ExporterFactory, SharedKeys};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, config_as};
use std::sync::Arc;

/// Builds `cloudwatch_logs` exporters (AWS CloudWatch Logs `PutLogEvents`).
pub struct CloudWatchLogsFactory;

impl ExporterFactory for CloudWatchLogsFactory {
    fn type_name(&self) -> &'static str {
        "cloudwatch_logs"
    }

    /// What its encoder declares ([`super::CloudWatchLogsEncoder`]'s `HONOURS`).
    fn shared_keys(&self) -> SharedKeys {
        SharedKeys::of::<super::CloudWatchLogsEncoder>()
    }

    fn takes_schema(&self) -> bool {
        true
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(
            block,
            path,
            CloudWatchLogsConfig::validate,
        )?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ExporterBuildContext<'_>,
    ) -> anyhow::Result<Arc<dyn Sink>> {
        let config = config_as::<CloudWatchLogsConfig>(config, self.type_name())
            .map_err(anyhow::Error::msg)?;
        super::build(ctx.id, config.clone(), ctx.http, ctx.timeout())
    }
}
