//! The `kafka` exporter's factory: its entry in [`crate::exporter_factories`].

use super::KafkaConfig;

crate::exporter_factory! {
    /// Builds `kafka` exporters (Apache Kafka topics).
    pub struct KafkaFactory {
        type_name: "kafka",
        config: KafkaConfig,
        takes_schema: true,
        build: |config, ctx| Ok(::std::sync::Arc::new(
            super::KafkaSink::new(ctx.id, config, ctx.timeout())?.with_schema(ctx.schema()),
        )),
    }
}
