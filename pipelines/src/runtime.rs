//! The running pipeline graph: receivers feed pipelines (processors in order, then every
//! exporter's queue), exporters drain their queues. A reload swaps each receiver's pipelines
//! atomically (see `apply`). Shutdown stops the receivers, then drains the exporters within
//! `service.shutdown_timeout`.

use crate::config::{ComponentId, LoadedConfig};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use siemrelay_core::admission::MemoryBudget;
use siemrelay_core::component::{Accepted, Batch, EventSink, Processor, Refusal};
use siemrelay_exporters::delivery::assemble::ExporterStorage;
use siemrelay_exporters::delivery::config::QueueType;
use siemrelay_exporters::delivery::disk_queue::DiskQueue;
use siemrelay_exporters::delivery::queue::SizedBatch;
use siemrelay_exporters::delivery::{ExporterHandle, QueueError, Reservation};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

mod apply;
pub(crate) use apply::build_processors;
mod plan;
pub mod samples;
pub mod state;
mod tap;
mod topology;

use apply::Graph;
pub use apply::ReloadSummary;
use samples::{MetricsHistory, Reading, SAMPLE_INTERVAL, SampleRing};
use state::{SAVE_INTERVAL, StateStore};
pub use tap::{MAX_TAPS, Tap, TapRefused, Taps};
pub use topology::{ExporterView, PipelineView, ReceiverView, Topology};

/// How long a refused sender is asked to wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One pipeline: its processors (in order) and the exporters it delivers to.
struct Pipeline {
    name: String,
    processors: Vec<Box<dyn Processor>>,
    exporters: Vec<Arc<ExporterHandle>>,
    /// Events queued for each of `exporters` (same order; kept across reloads).
    queued: Vec<Arc<AtomicU64>>,
    /// Held from processing to queueing when a processor needs batches queued in the order it
    /// processed them (a signature chain).
    order: Option<tokio::sync::Mutex<()>>,
    /// Events in and out, for the admin API (kept across reloads).
    counters: Arc<PipelineCounters>,
    /// Processor ids a tap sees after each step: `[0]` before the first running processor,
    /// `[k]` after the k-th (a `batch` processor, which has no running part, sits between).
    tap_points: Vec<Vec<String>>,
}

/// Per-pipeline event counters (per batch, relaxed atomics).
#[derive(Debug, Default)]
pub struct PipelineCounters {
    /// Events that entered the pipeline.
    pub events_in: AtomicU64,
    /// Events that left its last processor.
    pub events_out: AtomicU64,
}

/// Whether a receiver's batches flow, wait (during a reload swap) or are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RouteState {
    Open,
    /// A reload is closing something the new graph needs (a disk queue directory, a signature
    /// chain head): batches wait until the new route is in place.
    Paused,
    /// The receiver is being removed.
    Closed,
}

/// The pipelines a receiver feeds, swapped atomically on reload.
struct Route {
    pipelines: Vec<Arc<Pipeline>>,
    state: RouteState,
}

impl Route {
    fn with_state(state: RouteState) -> Arc<Route> {
        Arc::new(Route {
            pipelines: Vec::new(),
            state,
        })
    }
}

/// What a receiver hands its batches to: the pipelines that list it.
struct ReceiverEntry {
    receiver: String,
    route: ArcSwap<Route>,
    /// Woken when a paused route is replaced.
    resumed: Notify,
    closing: Arc<AtomicBool>,
    /// Events accepted from this receiver (kept across reloads).
    received: Arc<AtomicU64>,
    /// `service.memory_limit`, shared by every receiver.
    admission: Arc<MemoryBudget>,
    /// Open taps (`siemrelay tap`).
    taps: Arc<Taps>,
}

impl ReceiverEntry {
    /// The current route; waits while a reload has it paused.
    async fn current_route(&self) -> Result<Arc<Route>, Refusal> {
        loop {
            let route = self.route.load_full();
            match route.state {
                RouteState::Open if !route.pipelines.is_empty() => return Ok(route),
                RouteState::Open | RouteState::Closed => return Err(Refusal::ShuttingDown),
                RouteState::Paused => {
                    // Registered for `notify_waiters` from here on; re-check to not miss a
                    // swap that happened before.
                    let resumed = self.resumed.notified();
                    if self.route.load().state == RouteState::Paused {
                        resumed.await;
                    }
                }
            }
        }
    }

    /// Installs a new route and wakes batches waiting on a paused one.
    fn set_route(&self, route: Arc<Route>) -> Arc<Route> {
        let old = self.route.swap(route);
        self.resumed.notify_waiters();
        old
    }
}

/// Why a batch was not queued.
enum NotQueued {
    /// A queue refused room before processing: the batch comes back untouched.
    Unprocessed(Batch, QueueError, String),
    /// Refused after processing.
    Refused(Refusal),
}

fn refusal_of(error: QueueError) -> Refusal {
    match error {
        QueueError::Full => Refusal::Full {
            retry_after: RETRY_AFTER,
        },
        QueueError::Closed => Refusal::ShuttingDown,
        QueueError::Storage(e) | QueueError::TooLarge(e) => Refusal::Failed(e),
    }
}

/// How often a later part of a split batch retries while its queues have no room.
const PART_RETRY: Duration = Duration::from_millis(20);

/// Where a part of a split batch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Nothing of the request is queued yet: a full queue refuses the part (and so the
    /// request) without side effects, and the sender retries it whole.
    First,
    /// An earlier part of the request is queued: refusing the request now would make the
    /// sender's retry deliver that part twice, so the part waits for room (see
    /// [`ReceiverEntry::queue_in_parts`]).
    Later,
}

impl ReceiverEntry {
    /// Queues a batch; one larger than a target queue can ever hold (`max_events`,
    /// `max_size`) is split in halves, queued one after the other. An event that alone is
    /// larger than a queue is refused with the reason.
    ///
    /// Once a part is queued the request is never refused for lack of room: a later part that
    /// finds a queue full waits for the exporters to make room (halving itself so that it
    /// takes room as it frees, not only once its whole size is free), for as long as the
    /// exporters need. The sender's request stays open meanwhile (backpressure). The wait
    /// ends only at a shutdown that reached its deadline or with the receiver's removal; the
    /// request is then refused, logged as possibly duplicating its queued parts (a retried
    /// event may arrive twice; none is lost).
    fn queue_in_parts(
        &self,
        mut batch: Batch,
        mut route: Arc<Route>,
        part: Part,
    ) -> futures::future::BoxFuture<'_, Result<Accepted, Refusal>> {
        Box::pin(async move {
            loop {
                let (back, error, exporter) = match self.queue_whole(batch, &route, part).await {
                    Ok(accepted) => return Ok(accepted),
                    Err(NotQueued::Refused(refusal)) => {
                        if part == Part::Later {
                            self.partly_queued(&refusal);
                        }
                        return Err(refusal);
                    }
                    Err(NotQueued::Unprocessed(back, error, exporter)) => (back, error, exporter),
                };
                let halves = back.len() > 1;
                match (error, part) {
                    (QueueError::TooLarge(_), _) if halves => {
                        return self.queue_halves(back, route, part).await;
                    }
                    // Take what room there is: the first half goes in as soon as it fits.
                    (QueueError::Full, Part::Later) if halves => {
                        return self.queue_halves(back, route, Part::Later).await;
                    }
                    (QueueError::Full | QueueError::Storage(_), Part::Later)
                        if !self.closing.load(Ordering::Acquire) =>
                    {
                        tokio::time::sleep(PART_RETRY).await;
                        batch = back;
                    }
                    // A reload replaced the exporter: the part follows the new route.
                    (QueueError::Closed, Part::Later) => match self.current_route().await {
                        Ok(current) if !Arc::ptr_eq(&current, &route) => {
                            route = current;
                            batch = back;
                        }
                        _ => return Err(self.refuse(back, QueueError::Closed, exporter, part)),
                    },
                    (error, part) => return Err(self.refuse(back, error, exporter, part)),
                }
            }
        })
    }

    /// Queues `batch` as two halves in order; the second is a later part.
    async fn queue_halves(
        &self,
        mut first: Batch,
        route: Arc<Route>,
        part: Part,
    ) -> Result<Accepted, Refusal> {
        let second = first.split_off(first.len() / 2);
        let a = self.queue_in_parts(first, route.clone(), part).await?;
        let b = self.queue_in_parts(second, route, Part::Later).await?;
        Ok(Accepted {
            received: a.received + b.received,
            queued: a.queued + b.queued,
        })
    }

    /// Counts and logs a part that is not queued, and says why to the sender.
    fn refuse(&self, back: Batch, error: QueueError, exporter: String, part: Part) -> Refusal {
        metrics::counter!("siemrelay_pipeline_events_refused_total", "receiver" => self.receiver.clone(), "exporter" => exporter)
            .increment(back.len() as u64);
        if let QueueError::TooLarge(reason) = &error {
            tracing::error!(receiver = %self.receiver, "an event does not fit an exporter queue: {reason}");
        }
        let refusal = refusal_of(error);
        if part == Part::Later {
            self.partly_queued(&refusal);
        }
        refusal
    }

    /// Logs a request refused after some of its parts were queued.
    fn partly_queued(&self, refusal: &Refusal) {
        tracing::error!(receiver = %self.receiver, reason = %refusal,
            "a request was refused after part of it was queued; the sender's retry delivers that part twice");
    }

    /// Queues a batch as one: room in every target queue first (or nothing happens), then the
    /// processors, then the pushes. A later part of a split request whose push is refused
    /// (its real size needs more room than was reserved) is pushed again until it is taken.
    async fn queue_whole(
        &self,
        batch: Batch,
        route: &Route,
        part: Part,
    ) -> Result<Accepted, NotQueued> {
        let received = batch.len();
        let pipelines = route.pipelines.as_slice();
        // The one tap check per batch; copies are sent only once the batch is accepted.
        let mut taps = self.taps.is_active().then(tap::TapCopies::default);
        if let Some(copies) = &mut taps {
            self.taps.copy(&self.receiver, &batch, copies);
        }
        // Pipelines whose processors need ordering are serialized from here until queued.
        // Taken before the room, so no batch holds room while it waits for the order (a later
        // part pushed again under the order would otherwise wait for that room forever).
        let mut order_guards = Vec::new();
        for pipeline in pipelines {
            if let Some(order) = &pipeline.order {
                order_guards.push(order.lock().await);
            }
        }
        // 1. Room for the whole batch in every target queue, or refuse without side effects.
        //    Bytes are accounted at push time (bounded overshoot of one batch per sender).
        let reservations = match reserve_all(pipelines, received) {
            Ok(reservations) => reservations,
            Err((error, exporter)) => return Err(NotQueued::Unprocessed(batch, error, exporter)),
        };
        // 2. Run each pipeline's processors on its own copy.
        let processed = self.process(pipelines, batch, &mut taps);
        let queued = processed.iter().map(SizedBatch::len).max().unwrap_or(0);
        // 3. Push into every queue (concurrently: disk queues wait for fsync).
        let results = self
            .push_all(pipelines, reservations, processed, &mut taps, part)
            .await;
        drop(order_guards);
        if let Some(error) = results.into_iter().find_map(Result::err) {
            // A full queue (or volume) is backpressure, logged by the queue once per change.
            if !matches!(error, QueueError::Full) {
                tracing::error!(receiver = %self.receiver, error = %error, "could not queue a batch; the sender is told to retry");
            }
            return Err(NotQueued::Refused(refusal_of(error)));
        }
        self.received.fetch_add(received as u64, Ordering::Relaxed);
        if let Some(copies) = taps {
            copies.send();
        }
        Ok(Accepted { received, queued })
    }

    /// Runs each pipeline's processors on its own copy of the batch (the last one takes it).
    fn process(
        &self,
        pipelines: &[Arc<Pipeline>],
        batch: Batch,
        taps: &mut Option<tap::TapCopies>,
    ) -> Vec<SizedBatch> {
        let received = batch.len();
        let mut processed: Vec<SizedBatch> = Vec::with_capacity(pipelines.len());
        let last = pipelines.len() - 1;
        let mut batch = Some(batch);
        for (p, pipeline) in pipelines.iter().enumerate() {
            let mut events = if p == last {
                batch.take().unwrap_or_default()
            } else {
                batch.clone().unwrap_or_default()
            };
            if let Some(copies) = taps {
                for id in &pipeline.tap_points[0] {
                    self.taps.copy(id, &events, copies);
                }
            }
            for (step, processor) in pipeline.processors.iter().enumerate() {
                processor.process(&mut events);
                if let Some(copies) = taps {
                    for id in &pipeline.tap_points[step + 1] {
                        self.taps.copy(id, &events, copies);
                    }
                }
            }
            metrics::counter!("siemrelay_pipeline_events_in_total", "pipeline" => pipeline.name.clone()).increment(received as u64);
            metrics::counter!("siemrelay_pipeline_events_out_total", "pipeline" => pipeline.name.clone()).increment(events.len() as u64);
            pipeline
                .counters
                .events_in
                .fetch_add(received as u64, Ordering::Relaxed);
            pipeline
                .counters
                .events_out
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            processed.push(SizedBatch::new(events));
        }
        processed
    }

    /// Pushes each pipeline's processed batch into its exporters' queues, on the room reserved
    /// (an empty batch gives its room back). For a later part, a push refused for room is
    /// retried on a copy (see [`ReceiverEntry::push_until_taken`]).
    async fn push_all(
        &self,
        pipelines: &[Arc<Pipeline>],
        reservations: Vec<Reserved>,
        processed: Vec<SizedBatch>,
        taps: &mut Option<tap::TapCopies>,
        part: Part,
    ) -> Vec<Result<(), QueueError>> {
        let mut pushes = Vec::with_capacity(reservations.len());
        let mut remaining_per_pipeline: Vec<usize> =
            pipelines.iter().map(|p| p.exporters.len()).collect();
        let mut taken: Vec<Option<SizedBatch>> = processed.into_iter().map(Some).collect();
        for (p, e, reservation) in reservations {
            let queue = pipelines[p].exporters[e].queue().clone();
            let queued = pipelines[p].queued.get(e).cloned();
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
            if let Some(copies) = taps {
                self.taps
                    .copy(pipelines[p].exporters[e].id(), &batch.events, copies);
            }
            pushes.push(async move {
                let events = batch.len() as u64;
                let pushed = match part {
                    Part::First => queue.push(reservation, batch).await,
                    Part::Later => self.push_until_taken(&*queue, reservation, batch).await,
                };
                if let (Ok(()), Some(queued)) = (&pushed, queued) {
                    queued.fetch_add(events, Ordering::Relaxed);
                }
                pushed
            });
        }
        futures::future::join_all(pushes).await
    }

    /// Pushes a later part's processed batch, and pushes it again (on new room, sized to the
    /// batch) while the queue refuses it for room or storage: it was processed (signed,
    /// counted) and earlier parts are queued, so it must not be dropped. Gives up, like the
    /// waits of [`ReceiverEntry::queue_in_parts`], only at a shutdown past its deadline.
    async fn push_until_taken(
        &self,
        queue: &dyn siemrelay_exporters::delivery::DeliveryQueue,
        reservation: Reservation,
        batch: SizedBatch,
    ) -> Result<(), QueueError> {
        let mut pushed = queue.push(reservation, batch.clone()).await;
        loop {
            match pushed {
                Err(QueueError::Full | QueueError::Storage(_))
                    if !self.closing.load(Ordering::Acquire) =>
                {
                    tokio::time::sleep(PART_RETRY).await;
                }
                // Its real size (measured after processing) is more than the whole queue
                // holds, although the estimate it was split by fit: push it in halves.
                Err(QueueError::TooLarge(_)) if batch.len() > 1 => {
                    return self.push_in_halves(queue, batch).await;
                }
                done => return done,
            }
            pushed = match queue.try_reserve(batch.len(), batch.total_bytes) {
                Ok(reservation) => queue.push(reservation, batch.clone()).await,
                Err(error) => Err(error),
            };
        }
    }

    /// Pushes `batch` as two halves, each reserved and pushed on its own (and halved again when
    /// still larger than the whole queue).
    async fn push_in_halves(
        &self,
        queue: &dyn siemrelay_exporters::delivery::DeliveryQueue,
        mut batch: SizedBatch,
    ) -> Result<(), QueueError> {
        let second = batch.split_off(batch.len() / 2);
        for half in [batch, second] {
            Box::pin(self.reserve_and_push(queue, half)).await?;
        }
        Ok(())
    }

    /// Reserves room for a processed later part (waiting while the queue is full) and pushes
    /// it with [`ReceiverEntry::push_until_taken`]; a part larger than the queue is halved.
    async fn reserve_and_push(
        &self,
        queue: &dyn siemrelay_exporters::delivery::DeliveryQueue,
        batch: SizedBatch,
    ) -> Result<(), QueueError> {
        loop {
            match queue.try_reserve(batch.len(), batch.total_bytes) {
                Ok(reservation) => return self.push_until_taken(queue, reservation, batch).await,
                Err(QueueError::Full | QueueError::Storage(_))
                    if !self.closing.load(Ordering::Acquire) =>
                {
                    tokio::time::sleep(PART_RETRY).await;
                }
                Err(QueueError::TooLarge(_)) if batch.len() > 1 => {
                    return self.push_in_halves(queue, batch).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// Room reserved in one queue: (pipeline index, exporter index within it, the reservation).
type Reserved = (usize, usize, Reservation);

/// Reserves room for `events` in every target queue: (pipeline, exporter, reservation) each.
/// When one has no room, the others' room is given back and the error comes with that
/// exporter's id.
fn reserve_all(
    pipelines: &[Arc<Pipeline>],
    events: usize,
) -> Result<Vec<Reserved>, (QueueError, String)> {
    let mut reservations: Vec<Reserved> = Vec::new();
    for (p, pipeline) in pipelines.iter().enumerate() {
        for (e, exporter) in pipeline.exporters.iter().enumerate() {
            match exporter.queue().try_reserve(events, 0) {
                Ok(reservation) => reservations.push((p, e, reservation)),
                Err(error) => {
                    for (p, e, reservation) in reservations {
                        pipelines[p].exporters[e].queue().cancel(reservation);
                    }
                    return Err((error, exporter.id().to_string()));
                }
            }
        }
    }
    Ok(reservations)
}

#[async_trait]
impl EventSink for ReceiverEntry {
    fn admission(&self) -> Arc<MemoryBudget> {
        self.admission.clone()
    }

    async fn accept(&self, batch: Batch) -> Result<Accepted, Refusal> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Refusal::ShuttingDown);
        }
        if batch.is_empty() {
            return Ok(Accepted::default());
        }
        let route = self.current_route().await?;
        self.queue_in_parts(batch, route, Part::First).await
    }
}

/// A running siemrelay. Shared (`Arc`) between the signal loop and the admin API.
pub struct Runtime {
    /// The running graph; locked by reloads and shutdown only, never by the data path.
    graph: tokio::sync::Mutex<Graph>,
    /// What the admin API reads.
    view: ArcSwap<Topology>,
    receivers_stop: CancellationToken,
    closing: Arc<AtomicBool>,
    /// Receivers that stopped on their own.
    failures: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, anyhow::Result<()>)>>,
    failures_tx: mpsc::UnboundedSender<(String, anyhow::Result<()>)>,
    /// Receivers that failed (not ready while any has).
    failed_receivers: AtomicU64,
    /// `service.memory_limit`: what receivers hold before their events are queued.
    admission: Arc<MemoryBudget>,
    /// Open taps on components.
    taps: Arc<Taps>,
    /// Exporter state kept across restarts (`<storage>/state/exporters.json`).
    state: Arc<StateStore>,
    /// The exporters' recent throughput, for the status page's charts.
    samples: SampleRing,
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
        StorageLayout {
            root: root.to_path_buf(),
        }
    }

    /// `<root>/dead_letter/` — one `<exporter>.ndjson` per exporter.
    pub fn dead_letter_dir(&self) -> PathBuf {
        self.root.join("dead_letter")
    }

    /// `<root>/queues/<exporter>/` — disk queues.
    pub fn queue_dir(&self, exporter: &ComponentId) -> PathBuf {
        self.root.join("queues").join(exporter.file_name())
    }

    /// Where exporter `id` keeps its dead-letter file and, by default, its disk queue.
    pub fn exporter_storage(&self, exporter: &ComponentId) -> ExporterStorage {
        ExporterStorage {
            dead_letter_dir: self.dead_letter_dir(),
            queue_dir: self.queue_dir(exporter),
        }
    }

    /// `<root>/receivers/<receiver>/` — checkpoints.
    pub fn receiver_dir(&self, receiver: &ComponentId) -> PathBuf {
        self.root.join("receivers").join(receiver.file_name())
    }

    /// `<root>/state/exporters.json` — exporter state kept across restarts (disabled through the
    /// API, delivery history, last success and error).
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state").join("exporters.json")
    }

    /// `<root>/admin/` — the management API's config overlay.
    pub fn admin_dir(&self) -> PathBuf {
        self.root.join("admin")
    }

    /// `<root>/processors/<pipeline>/<processor>/` — processor state.
    pub fn processor_dir(&self, pipeline: &str, processor: &ComponentId) -> PathBuf {
        self.root
            .join("processors")
            .join(pipeline.replace('/', "__"))
            .join(processor.file_name())
    }
}

/// Warns about queue directories that no configured exporter uses: their events are not
/// delivered until the exporter is configured again (they are never deleted automatically).
fn report_orphan_queues(layout: &StorageLayout, config: &LoadedConfig) {
    let Ok(entries) = std::fs::read_dir(layout.root.join("queues")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let known = config.exporters.iter().any(|(id, spec)| {
            id.file_name() == name && spec.delivery.queue.kind == QueueType::Disk
        });
        if known {
            continue;
        }
        let pending = DiskQueue::inspect(&entry.path())
            .map(|r| r.pending_events)
            .unwrap_or(0);
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
    pub async fn start(config: LoadedConfig) -> anyhow::Result<Arc<Runtime>> {
        let layout = StorageLayout::new(&config.service.storage.directory);
        report_orphan_queues(&layout, &config);
        let state = Arc::new(StateStore::open(&layout.state_file()));
        let (failures_tx, failures) = mpsc::unbounded_channel();
        let runtime = Arc::new(Runtime {
            graph: tokio::sync::Mutex::new(Graph::default()),
            view: ArcSwap::from_pointee(Topology::default()),
            receivers_stop: CancellationToken::new(),
            closing: Arc::new(AtomicBool::new(false)),
            failures: tokio::sync::Mutex::new(failures),
            failures_tx,
            failed_receivers: AtomicU64::new(0),
            admission: MemoryBudget::new(config.service.memory_limit.as_usize()),
            taps: Arc::new(Taps::default()),
            state,
            samples: SampleRing::default(),
        });
        {
            let mut graph = runtime.graph.lock().await;
            runtime
                .apply(&mut graph, config, apply::Mode::Start)
                .await?;
        }
        let topology = runtime.topology();
        let absent: Vec<String> = runtime
            .state
            .saved()
            .into_iter()
            .filter(|id| topology.exporter(id).is_none())
            .collect();
        if !absent.is_empty() {
            tracing::info!(file = %runtime.state.path().display(), exporters = %absent.join(","), "saved state kept for exporters that are not running (used if a reload adds them back)");
        }
        runtime.samples.push(Reading::of(&topology));
        // The exporter state is written when it changed (shutdown writes it last); errors are
        // logged and counted by the store.
        tokio::spawn(Self::every(
            Arc::downgrade(&runtime),
            SAVE_INTERVAL,
            |runtime| {
                Box::pin(async move {
                    let _ = runtime.state.save_async(runtime.topology()).await;
                })
            },
        ));
        // The charts' samples.
        tokio::spawn(Self::every(
            Arc::downgrade(&runtime),
            SAMPLE_INTERVAL,
            |runtime| {
                Box::pin(async move { runtime.samples.push(Reading::of(&runtime.topology())) })
            },
        ));
        Ok(runtime)
    }

    /// Runs `work` every `period` until the runtime is gone or shutting down (timer tasks: they
    /// never touch the data path).
    async fn every(
        runtime: std::sync::Weak<Runtime>,
        period: Duration,
        work: for<'a> fn(&'a Runtime) -> futures::future::BoxFuture<'a, ()>,
    ) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(runtime) = runtime.upgrade() else {
                return;
            };
            if runtime.receivers_stop.is_cancelled() {
                return;
            }
            work(&runtime).await;
        }
    }

    /// The exporters' throughput over the last 15 minutes, up to now
    /// (`GET /api/v1/metrics/history`).
    pub fn metrics_history(&self) -> MetricsHistory {
        self.samples.history(Some(Reading::of(&self.topology())))
    }

    /// Disables (events keep queueing) or enables a running exporter, and writes the exporter
    /// state file at once so the choice survives a restart. The change holds even when the file
    /// cannot be written; the error says so.
    pub async fn set_exporter_enabled(
        &self,
        exporter: &ExporterHandle,
        enabled: bool,
    ) -> Result<(), state::StateWriteError> {
        exporter.set_enabled(enabled);
        self.state.set_disabled(exporter.id(), !enabled);
        self.state.save_async(self.topology()).await
    }

    /// Applies a new, validated configuration without stopping what did not change: new
    /// components start, removed ones stop (their queues drained or kept on disk), unchanged
    /// receivers keep their sockets and unchanged exporters their queues.
    pub async fn reload(&self, config: LoadedConfig) -> anyhow::Result<ReloadSummary> {
        if self.closing.load(Ordering::Acquire) || self.receivers_stop.is_cancelled() {
            anyhow::bail!("siemrelay is shutting down");
        }
        let mut graph = self.graph.lock().await;
        self.apply(&mut graph, config, apply::Mode::Reload).await
    }

    /// Open taps, for the admin API's `GET /api/v1/tap/{id}`.
    pub fn taps(&self) -> &Arc<Taps> {
        &self.taps
    }

    /// What is running, for the admin API.
    pub fn topology(&self) -> Arc<Topology> {
        self.view.load_full()
    }

    /// True while every receiver is serving and no shutdown has begun.
    pub fn is_ready(&self) -> bool {
        !self.receivers_stop.is_cancelled() && self.failed_receivers.load(Ordering::Relaxed) == 0
    }

    /// Waits until a receiver stops on its own (an error); returns its id and result.
    pub async fn wait_for_receiver_failure(&self) -> (String, anyhow::Result<()>) {
        let mut failures = self.failures.lock().await;
        match failures.recv().await {
            Some(failure) => {
                self.failed_receivers.fetch_add(1, Ordering::Relaxed);
                failure
            }
            None => std::future::pending().await,
        }
    }

    /// The running exporters.
    pub fn exporters(&self) -> Vec<Arc<ExporterHandle>> {
        self.topology()
            .exporters
            .iter()
            .map(|e| e.handle.clone())
            .collect()
    }

    /// Stops accepting, delivers what was accepted (within the shutdown timeout), and stops.
    pub async fn shutdown(&self) -> ShutdownReport {
        // Readiness turns false at once, before waiting for a reload in progress.
        self.receivers_stop.cancel();
        self.taps.close();
        let mut graph = self.graph.lock().await;
        let timeout = graph.shutdown_timeout;
        let deadline = Instant::now() + timeout;
        tracing::info!(timeout = ?timeout, "shutting down: no new events accepted; delivering what was accepted");
        // Receivers stop taking connections but finish requests in flight (their events reach
        // the queues, and their senders get their answers).
        for (name, receiver) in std::mem::take(&mut graph.receivers) {
            match tokio::time::timeout_at(deadline.into(), receiver.task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(receiver = %name, error = %e, "receiver task failed"),
                Err(_) => {
                    tracing::warn!(receiver = %name, "receiver did not stop before the shutdown deadline")
                }
            }
        }
        self.closing.store(true, Ordering::Release);
        let exporters: Vec<Arc<ExporterHandle>> =
            graph.exporters.values().map(|e| e.handle.clone()).collect();
        let drains = exporters.iter().map(|exporter| {
            let exporter = exporter.clone();
            async move { (exporter.id().to_string(), exporter.shutdown(deadline).await) }
        });
        let retiring = std::mem::take(&mut graph.retiring);
        let (outcomes, _) = futures::future::join(
            futures::future::join_all(drains),
            futures::future::join_all(retiring),
        )
        .await;
        let mut report = ShutdownReport::default();
        for (id, outcome) in outcomes {
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
        // The history of the drain included; errors are logged and counted by the store.
        let _ = self.state.save_async(self.topology()).await;
        report
    }
}
