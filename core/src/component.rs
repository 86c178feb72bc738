//! The contracts between components: what a receiver hands events to, what a processor does,
//! and what a receiver is given to run.

use crate::admission::MemoryBudget;
use crate::event::Event;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events move between components in batches, never one at a time.
pub type Batch = Vec<Event>;

/// What a pipeline reports after accepting a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Events received in the batch.
    pub received: usize,
    /// Events handed to at least one exporter queue (the rest were filtered out).
    pub queued: usize,
}

/// Why a pipeline did not accept a batch. Nothing of a refused batch was kept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An exporter queue is full; the sender should retry after the given delay.
    #[error("pipeline is full (an exporter queue has no room); retry after {}s", retry_after.as_secs().max(1))]
    Full {
        /// Suggested delay before retrying.
        retry_after: Duration,
    },
    /// siemrelay is shutting down and accepts nothing new.
    #[error("siemrelay is shutting down")]
    ShuttingDown,
    /// A queue could not store the batch (e.g. a disk error).
    #[error("could not queue the batch: {0}")]
    Failed(String),
}

/// The entry point of one or more pipelines, as seen by a receiver.
///
/// `accept` returns once the batch is in every target exporter's queue (durably, for disk
/// queues): only then may the receiver acknowledge its sender.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Runs the batch through the pipelines and queues it for their exporters.
    async fn accept(&self, batch: Batch) -> Result<Accepted, Refusal>;

    /// The admission budget (`service.memory_limit`) a receiver reserves what it holds from,
    /// from reading a request until `accept` returns. A sink outside a runtime (tools,
    /// tests) has no limit.
    fn admission(&self) -> Arc<MemoryBudget> {
        MemoryBudget::unlimited()
    }
}

/// A synchronous transformation of batches (filter, enrich, sign).
pub trait Processor: Send + Sync + 'static {
    /// Transforms the batch in place; may remove events.
    fn process(&self, batch: &mut Batch);

    /// True when batches must reach the exporter queues in the order this processor saw them
    /// (a signature chain). The runtime then serializes processing and queueing per pipeline.
    fn requires_ordering(&self) -> bool {
        false
    }
}

/// What a running receiver is given.
#[derive(Clone)]
pub struct ReceiverContext {
    /// The receiver's component id (`webhook`, `file/audit`).
    pub id: String,
    /// Where accepted events go.
    pub sink: Arc<dyn EventSink>,
    /// Cancelled when the receiver must stop accepting.
    pub shutdown: CancellationToken,
    /// The receiver's own directory under `service.storage.directory` (checkpoints).
    pub storage_dir: PathBuf,
}

/// A running receiver. Sockets are bound when it is built, so start-up errors surface before
/// `run`; `run` serves until `ctx.shutdown` is cancelled and then returns.
#[async_trait]
pub trait Receiver: Send + 'static {
    /// Serves until shutdown.
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()>;
}

/// What a processor is given when it is built. Processors are built once per pipeline that lists
/// them, so state (such as a signature chain) is per pipeline.
#[derive(Clone, Debug)]
pub struct ProcessorContext {
    /// The processor's component id (`filter/security-only`).
    pub id: String,
    /// The pipeline this instance belongs to (`security`).
    pub pipeline: String,
    /// A directory this instance may keep state in (created by the runtime).
    pub storage_dir: PathBuf,
}
