//! The running pipeline graph: receivers feed pipelines (processors in order, then every
//! exporter's queue), exporters drain their queues. Shutdown stops the receivers, then drains
//! the exporters within `service.shutdown_timeout`.

use crate::config::{ComponentId, LoadedConfig};
use crate::registry::{self, ProcessorSpec};
use async_trait::async_trait;
use siemrelay_core::component::{Accepted, Batch, EventSink, Processor, ProcessorContext, ReceiverContext, Refusal};
use siemrelay_exporters::delivery::config::QueueType;
use siemrelay_exporters::delivery::dead_letter::DeadLetter;
use siemrelay_exporters::delivery::disk_queue::DiskQueue;
use siemrelay_exporters::delivery::memory_queue::MemoryQueue;
use siemrelay_exporters::delivery::queue::SizedBatch;
use siemrelay_exporters::delivery::{BatchPolicy, DeliveryQueue, ExporterHandle, QueueError, Reservation};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a refused sender is asked to wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One pipeline: its processors (in order) and the exporters it delivers to.
struct Pipeline {
    name: String,
    processors: Vec<Box<dyn Processor>>,
    exporters: Vec<Arc<ExporterHandle>>,
    /// Held from processing to queueing when a processor needs batches queued in the order it
    /// processed them (a signature chain).
    order: Option<tokio::sync::Mutex<()>>,
}

/// What a receiver hands its batches to: the pipelines that list it.
struct ReceiverEntry {
    receiver: String,
    pipelines: Vec<Arc<Pipeline>>,
    closing: Arc<AtomicBool>,
}

#[async_trait]
impl EventSink for ReceiverEntry {
    async fn accept(&self, batch: Batch) -> Result<Accepted, Refusal> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Refusal::ShuttingDown);
        }
        let received = batch.len();
        if received == 0 {
            return Ok(Accepted::default());
        }
        // 1. Room for the whole batch in every target queue, or refuse without side effects.
        //    Bytes are accounted at push time (bounded overshoot of one batch per sender).
        let mut reservations: Vec<(usize, usize, Reservation)> = Vec::new();
        for (p, pipeline) in self.pipelines.iter().enumerate() {
            for (e, exporter) in pipeline.exporters.iter().enumerate() {
                match exporter.queue().try_reserve(received, 0) {
                    Ok(reservation) => reservations.push((p, e, reservation)),
                    Err(error) => {
                        for (p, e, reservation) in reservations {
                            self.pipelines[p].exporters[e].queue().cancel(reservation);
                        }
                        metrics::counter!("siemrelay_pipeline_refused_events_total", "receiver" => self.receiver.clone(), "exporter" => exporter.id().to_string())
                            .increment(received as u64);
                        return Err(match error {
                            QueueError::Full => Refusal::Full { retry_after: RETRY_AFTER },
                            QueueError::Closed => Refusal::ShuttingDown,
                            QueueError::Storage(e) => Refusal::Failed(e),
                        });
                    }
                }
            }
        }
        // Pipelines whose processors need ordering are serialized from here until queued.
        let mut order_guards = Vec::new();
        for pipeline in &self.pipelines {
            if let Some(order) = &pipeline.order {
                order_guards.push(order.lock().await);
            }
        }
        // 2. Run each pipeline's processors on its own copy.
        let mut processed: Vec<SizedBatch> = Vec::with_capacity(self.pipelines.len());
        let last = self.pipelines.len() - 1;
        let mut batch = Some(batch);
        for (p, pipeline) in self.pipelines.iter().enumerate() {
            let mut events = if p == last { batch.take().unwrap_or_default() } else { batch.clone().unwrap_or_default() };
            for processor in &pipeline.processors {
                processor.process(&mut events);
            }
            metrics::counter!("siemrelay_pipeline_events_in_total", "pipeline" => pipeline.name.clone()).increment(received as u64);
            metrics::counter!("siemrelay_pipeline_events_out_total", "pipeline" => pipeline.name.clone()).increment(events.len() as u64);
            processed.push(SizedBatch::new(events));
        }
        // 3. Push into every queue (concurrently: disk queues wait for fsync).
        let queued = processed.iter().map(SizedBatch::len).max().unwrap_or(0);
        let mut pushes = Vec::with_capacity(reservations.len());
        let mut remaining_per_pipeline: Vec<usize> = self.pipelines.iter().map(|p| p.exporters.len()).collect();
        let mut taken: Vec<Option<SizedBatch>> = processed.into_iter().map(Some).collect();
        for (p, e, reservation) in reservations {
            let queue = self.pipelines[p].exporters[e].queue().clone();
            remaining_per_pipeline[p] -= 1;
            let batch = if remaining_per_pipeline[p] == 0 {
                taken[p].take().unwrap_or_default()
            } else {
                taken[p].clone().unwrap_or_default()
            };
            if batch.is_empty() {
                queue.cancel(reservation);
                continue;
            }
            pushes.push(async move { queue.push(reservation, batch).await });
        }
        let results = futures::future::join_all(pushes).await;
        drop(order_guards);
        if let Some(error) = results.into_iter().find_map(Result::err) {
            tracing::error!(receiver = %self.receiver, error = %error, "could not queue a batch; the sender is told to retry");
            return Err(match error {
                QueueError::Full => Refusal::Full { retry_after: RETRY_AFTER },
                QueueError::Closed => Refusal::ShuttingDown,
                QueueError::Storage(e) => Refusal::Failed(e),
            });
        }
        Ok(Accepted { received, queued })
    }
}

/// A running siemrelay.
pub struct Runtime {
    exporters: Vec<Arc<ExporterHandle>>,
    receivers: Vec<(String, JoinHandle<anyhow::Result<()>>)>,
    receivers_stop: CancellationToken,
    closing: Arc<AtomicBool>,
    shutdown_timeout: Duration,
}

/// What a shutdown did.
#[derive(Debug, Default)]
pub struct ShutdownReport {
    /// Exporters that did not deliver everything before the deadline, with what happened.
    pub undrained: Vec<(String, siemrelay_exporters::delivery::ExporterShutdown)>,
}

/// The sub-directories of `service.storage.directory`.
pub struct StorageLayout {
    /// `service.storage.directory`.
    pub root: PathBuf,
}

impl StorageLayout {
    /// The layout under `root`.
    pub fn new(root: &Path) -> StorageLayout {
        StorageLayout { root: root.to_path_buf() }
    }

    /// `<root>/dead_letter/` — one `<exporter>.ndjson` per exporter.
    pub fn dead_letter_dir(&self) -> PathBuf {
        self.root.join("dead_letter")
    }

    /// `<root>/queues/<exporter>/` — disk queues.
    pub fn queue_dir(&self, exporter: &ComponentId) -> PathBuf {
        self.root.join("queues").join(exporter.file_name())
    }

    /// `<root>/receivers/<receiver>/` — checkpoints.
    pub fn receiver_dir(&self, receiver: &ComponentId) -> PathBuf {
        self.root.join("receivers").join(receiver.file_name())
    }

    /// `<root>/processors/<pipeline>/<processor>/` — processor state.
    pub fn processor_dir(&self, pipeline: &str, processor: &ComponentId) -> PathBuf {
        self.root.join("processors").join(pipeline.replace('/', "__")).join(processor.file_name())
    }
}

/// Builds an exporter's queue.
fn open_queue(id: &ComponentId, spec: &registry::ExporterSpec, layout: &StorageLayout) -> anyhow::Result<Arc<dyn DeliveryQueue>> {
    let queue = &spec.delivery.queue;
    match queue.kind {
        QueueType::Memory => Ok(Arc::new(MemoryQueue::new(&id.id, queue.max_events, queue.max_bytes(), queue.when_full))),
        QueueType::Disk => {
            let dir = queue.directory.clone().unwrap_or_else(|| layout.queue_dir(id));
            open_disk_queue(&dir, id, queue)
        }
    }
}

fn open_disk_queue(
    dir: &Path,
    id: &ComponentId,
    queue: &siemrelay_exporters::delivery::QueueConfig,
) -> anyhow::Result<Arc<dyn DeliveryQueue>> {
    let (disk, report) = DiskQueue::open(dir, &id.id, queue.max_events, queue.max_bytes(), queue.when_full)
        .map_err(|e| anyhow::anyhow!("exporters.{}.queue: cannot open the disk queue in {}: {e}", id.id, dir.display()))?;
    if !report.is_clean() {
        tracing::warn!(exporter = %id.id, directory = %dir.display(), report = ?report, "disk queue recovered from damage: the intact events will be delivered");
    }
    Ok(Arc::new(disk))
}

/// Warns about queue directories that no configured exporter uses: their events are not
/// delivered until the exporter is configured again (they are never deleted automatically).
fn report_orphan_queues(layout: &StorageLayout, config: &LoadedConfig) {
    let Ok(entries) = std::fs::read_dir(layout.root.join("queues")) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let known = config.exporters.iter().any(|(id, spec)| {
            id.file_name() == name && spec.delivery.queue.kind == QueueType::Disk
        });
        if known {
            continue;
        }
        let pending = DiskQueue::inspect(&entry.path()).map(|r| r.pending_events).unwrap_or(0);
        tracing::warn!(
            directory = %entry.path().display(),
            pending_events = pending,
            "a disk queue directory has no matching exporter with `queue: {{type: disk}}` in the config: its events are kept but not delivered; configure the exporter again, or inspect it with `siemrelay queue inspect`"
        );
    }
}

impl Runtime {
    /// Builds and starts everything: exporters first (so queues exist), then pipelines, then
    /// receivers (binding their listeners; an error here stops the start).
    pub async fn start(config: LoadedConfig) -> anyhow::Result<Runtime> {
        let layout = StorageLayout::new(&config.service.storage.directory);
        report_orphan_queues(&layout, &config);
        let closing = Arc::new(AtomicBool::new(false));

        // Batch policy per exporter: from the first pipeline listing it that has a `batch`.
        let mut batch_policy: HashMap<&str, BatchPolicy> = HashMap::new();
        for pipeline in config.service.pipelines.values() {
            let batch = pipeline.processors.iter().find_map(|pid| {
                config.processors.iter().find(|(id, _)| &id.id == pid).and_then(|(_, spec)| match spec {
                    ProcessorSpec::Batch(b) => Some(BatchPolicy {
                        min_events: b.send_batch_size,
                        max_events: b.send_batch_max_size,
                        linger: b.timeout.0,
                    }),
                    _ => None,
                })
            });
            if let Some(batch) = batch {
                for exporter in &pipeline.exporters {
                    batch_policy.entry(exporter.as_str()).or_insert(batch);
                }
            }
        }

        let mut exporters: HashMap<String, Arc<ExporterHandle>> = HashMap::new();
        let mut exporter_order = Vec::new();
        for (id, spec) in &config.exporters {
            let used = config.service.pipelines.values().any(|p| p.exporters.contains(&id.id));
            if !used {
                continue;
            }
            let sink = registry::build_sink(id, spec).map_err(|e| anyhow::anyhow!("exporters.{}: {e:#}", id.id))?;
            let queue = open_queue(id, spec, &layout)?;
            let dead_letter = DeadLetter::new(&layout.dead_letter_dir(), &id.id);
            let policy = batch_policy.get(id.id.as_str()).copied().unwrap_or_default();
            let handle = Arc::new(ExporterHandle::start(&id.id, sink, &spec.delivery, policy, queue, dead_letter));
            exporters.insert(id.id.clone(), handle.clone());
            exporter_order.push(handle);
        }

        let mut pipelines: Vec<(String, Arc<Pipeline>)> = Vec::new();
        for (name, pipeline) in &config.service.pipelines {
            let mut processors = Vec::new();
            for pid in &pipeline.processors {
                let Some((id, spec)) = config.processors.iter().find(|(id, _)| &id.id == pid) else { continue };
                let storage_dir = layout.processor_dir(name, id);
                let ctx = ProcessorContext { id: id.id.clone(), pipeline: name.clone(), storage_dir };
                let built = registry::build_processor(spec, &ctx).map_err(|issues| {
                    let text: Vec<String> = issues.iter().map(|i| format!("processors.{}.{}: {}", id.id, i.key, i.message)).collect();
                    anyhow::anyhow!(text.join("; "))
                })?;
                processors.extend(built);
            }
            let targets = pipeline.exporters.iter().filter_map(|e| exporters.get(e).cloned()).collect();
            let order = processors.iter().any(|p| p.requires_ordering()).then(|| tokio::sync::Mutex::new(()));
            pipelines.push((name.clone(), Arc::new(Pipeline { name: name.clone(), processors, exporters: targets, order })));
        }

        let receivers_stop = CancellationToken::new();
        let mut receivers = Vec::new();
        for (id, spec) in &config.receivers {
            let feeds: Vec<Arc<Pipeline>> = config
                .service
                .pipelines
                .iter()
                .filter(|(_, p)| p.receivers.contains(&id.id))
                .filter_map(|(name, _)| pipelines.iter().find(|(n, _)| n == name).map(|(_, p)| p.clone()))
                .collect();
            if feeds.is_empty() {
                continue;
            }
            let receiver = registry::build_receiver(id, spec).await.map_err(|e| anyhow::anyhow!("receivers.{}: {e:#}", id.id))?;
            let storage_dir = layout.receiver_dir(id);
            let sink = Arc::new(ReceiverEntry { receiver: id.id.clone(), pipelines: feeds, closing: closing.clone() });
            let ctx = ReceiverContext { id: id.id.clone(), sink, shutdown: receivers_stop.child_token(), storage_dir };
            let name = id.id.clone();
            receivers.push((name, tokio::spawn(receiver.run(ctx))));
        }
        Ok(Runtime {
            exporters: exporter_order,
            receivers,
            receivers_stop,
            closing,
            shutdown_timeout: config.service.shutdown_timeout.0,
        })
    }

    /// Waits until a receiver stops on its own (an error); returns its id and result.
    pub async fn wait_for_receiver_failure(&mut self) -> (String, anyhow::Result<()>) {
        if self.receivers.is_empty() {
            std::future::pending::<()>().await;
        }
        let futures = self.receivers.iter_mut().map(|(_, handle)| handle);
        let (result, index, _) = futures::future::select_all(futures).await;
        let (name, _) = self.receivers.remove(index);
        let result = result.unwrap_or_else(|e| Err(anyhow::anyhow!("receiver task failed: {e}")));
        (name, result)
    }

    /// The running exporters.
    pub fn exporters(&self) -> &[Arc<ExporterHandle>] {
        &self.exporters
    }

    /// Stops accepting, delivers what was accepted (within the shutdown timeout), and stops.
    pub async fn shutdown(self) -> ShutdownReport {
        let deadline = Instant::now() + self.shutdown_timeout;
        tracing::info!(timeout = ?self.shutdown_timeout, "shutting down: no new events accepted; delivering what was accepted");
        // Receivers stop taking connections but finish requests in flight (their events reach
        // the queues, and their senders get their answers).
        self.receivers_stop.cancel();
        for (name, handle) in self.receivers {
            match tokio::time::timeout_at(deadline.into(), handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::error!(receiver = %name, error = %format!("{e:#}"), "receiver stopped with an error"),
                Ok(Err(e)) => tracing::error!(receiver = %name, error = %e, "receiver task failed"),
                Err(_) => tracing::warn!(receiver = %name, "receiver did not stop before the shutdown deadline"),
            }
        }
        self.closing.store(true, Ordering::Release);
        let drains = self.exporters.iter().map(|exporter| {
            let exporter = exporter.clone();
            async move { (exporter.id().to_string(), exporter.shutdown(deadline).await) }
        });
        let mut report = ShutdownReport::default();
        for (id, outcome) in futures::future::join_all(drains).await {
            if outcome.drained {
                continue;
            }
            if outcome.dead_lettered > 0 {
                tracing::error!(exporter = %id, events = outcome.dead_lettered, "shutdown timeout: undelivered events written to the dead-letter file");
            }
            if outcome.left_queued > 0 {
                tracing::warn!(exporter = %id, events = outcome.left_queued, "shutdown timeout: events stay in the disk queue for the next start");
            }
            report.undrained.push((id, outcome));
        }
        report
    }
}
