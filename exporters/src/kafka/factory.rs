//! The `kafka` exporter's factory: its entry in [`crate::exporter_factories`].

use super::KafkaConfig;
use crate::delivery::Sink;
use crate::delivery::factory::{ExporterBuildContext, ExporterFactory};
use siemrelay_core::config_read::{ConfigError, Value, read_block};
use siemrelay_core::factory::{BoxedConfig, ComponentConfig, config_as};
use std::sync::Arc;

/// Builds `kafka` exporters (Apache Kafka topics).
pub struct KafkaFactory;

impl ExporterFactory for KafkaFactory {
    fn type_name(&self) -> &'static str {
        "kafka"
    }

    fn takes_schema(&self) -> bool {
        true
    }

    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>> {
        Ok(Box::new(read_block(block, path, KafkaConfig::validate)?))
    }

    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ExporterBuildContext<'_>,
    ) -> anyhow::Result<Arc<dyn Sink>> {
        let config =
            config_as::<KafkaConfig>(config, self.type_name()).map_err(anyhow::Error::msg)?;
        let sink = super::KafkaSink::new(ctx.id, config, ctx.timeout())?;
        Ok(Arc::new(sink.with_schema(ctx.schema())))
    }
}
