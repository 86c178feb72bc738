//! The `kafka` receiver: consumes topics as a member of a consumer group, so several siemrelay
//! instances with the same `group_id` share the partitions and take over those of one that
//! stops or dies.
//!
//! Delivery is at-least-once. With `commit: after_delivery` (the default) an offset is committed
//! only once every event up to it was delivered or dead-lettered by every exporter (see
//! [`commit`]); with `commit: after_queue`, once the pipeline accepted the batch
//! (`EventSink::accept` returned, so the events are in every exporter queue). A batch the
//! pipeline refuses is held, its partitions paused, and offered again after `retry_after`; nothing
//! is skipped and nothing is buffered beyond the one batch. A message that is not a JSON object
//! becomes a `malformed_message` event with the raw payload in `summary` and a `parse_error`
//! attribute, so a bad message never blocks its partition. See docs/exporters/kafka.md.

pub mod batch;
pub mod commit;
mod config;
pub mod consumer;
pub mod decode;
pub mod factory;

pub use config::{
    CommitPoint, InitialOffset, KafkaReceiverConfig, KafkaSasl, KafkaTls, SaslMechanism,
};

use async_trait::async_trait;
use consumer::{Consume, GroupConsumer, GroupContext};
use rdkafka::consumer::Consumer;
use siemrelay_core::component::{Receiver, ReceiverContext};
use siemrelay_core::ingest::IngestOptions;
use std::sync::Arc;

/// A kafka receiver whose consumer is created (not yet subscribed); [`Receiver::run`] consumes.
pub struct KafkaReceiver {
    config: KafkaReceiverConfig,
    consumer: Arc<GroupConsumer>,
}

/// Checks the config and creates the consumer (no broker is contacted yet), so a bad config
/// fails at start-up with the receiver id in the error.
pub async fn bind(id: &str, config: KafkaReceiverConfig) -> anyhow::Result<KafkaReceiver> {
    let issues = config.validate();
    if !issues.is_empty() {
        let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
        anyhow::bail!("receiver {id}: invalid config: {}", list.join("; "));
    }
    let consumer: GroupConsumer = config
        .client_config()
        .create_with_context(GroupContext::new(id))
        .map_err(|e| anyhow::anyhow!("receiver {id}: cannot create the kafka consumer: {e}"))?;
    Ok(KafkaReceiver {
        config,
        consumer: Arc::new(consumer),
    })
}

/// Builds the receiver for the runtime: [`bind`], boxed.
pub async fn build(id: &str, config: KafkaReceiverConfig) -> anyhow::Result<Box<dyn Receiver>> {
    Ok(Box::new(bind(id, config).await?))
}

#[async_trait]
impl Receiver for KafkaReceiver {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let KafkaReceiver { config, consumer } = *self;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| {
            anyhow::anyhow!("receiver {}: cannot subscribe to {topics:?}: {e}", ctx.id)
        })?;
        tracing::info!(receiver = %ctx.id, topics = %topics.join(","), group = %config.group_id,
            brokers = %config.brokers.join(","), "kafka receiver consuming");
        Consume {
            id: ctx.id.clone(),
            consumer,
            sink: ctx.sink,
            options: IngestOptions {
                mapping: config.mapping.clone(),
                ..IngestOptions::default()
            },
            max_events: config.max_batch_events,
            max_wait: config.batch_wait(),
            tracker: (config.commit == CommitPoint::AfterDelivery)
                .then(commit::DeliveryTracker::new),
            max_uncommitted: config.max_uncommitted_events,
            shutdown: ctx.shutdown,
        }
        .run()
        .await;
        Ok(())
    }
}
