//! The `kafka` receiver's factory: its entry in [`crate::receiver_factories`].

use super::KafkaReceiverConfig;
use super::build;

siemrelay_core::receiver_factory! {
    /// Builds `kafka` receivers (the Kafka receiver).
    pub struct KafkaFactory {
        type_name: "kafka",
        config: KafkaReceiverConfig,
        build: |config, ctx| build(ctx.id, config.clone()).await,
    }
}
