//! The `kafka` exporter's factory: its entry in [`crate::exporter_factories`].

use super::KafkaConfig;

crate::exporter_factory! {
    /// Builds `kafka` exporters (Apache Kafka topics).
    pub struct KafkaFactory {
        type_name: "kafka",
        config: KafkaConfig,
        build: |config, ctx| super::build(ctx.id, config, ctx.timeout()),
    }
}
