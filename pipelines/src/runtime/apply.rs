//! Starting the graph and reloading it: what changed is started or stopped, what did not keeps
//! running (receivers keep their sockets, exporters their queues).
//!
//! Order of a reload (the config is already validated):
//! 1. exporters that are new, or changed without a disk queue directory to take over, start next
//!    to the old ones; processors of changed pipelines are built. An error here changes nothing.
//! 2. only when a changed exporter's disk queue must be closed before it can be opened again (the
//!    directory is locked), or a changed pipeline keeps a signature chain (its head is saved when
//!    the old processor is dropped): every receiver's batches wait (no refusal) while the old
//!    parts are closed and the new ones opened.
//! 3. each receiver's pipeline list is swapped atomically; changed receivers are restarted
//!    (their in-flight requests finish first), removed ones stopped.
//! 4. exporters that are gone or replaced stop taking events and drain in the background: a memory
//!    queue within `service.shutdown_timeout` (leftovers dead-lettered), a disk queue closed with
//!    its events kept on disk.

use super::plan::{
    self, ExporterFacts, ExporterPlan, PipelineFacts, PipelinePlan, ReceiverPlan, ReloadPlan,
    Running, raw_of,
};
use super::state::StateStore;
use super::topology::{ExporterView, PipelineView, ReceiverView, Topology, kind_of};
use super::{PipelineCounters, ReceiverEntry, Route, RouteState, Runtime, StorageLayout};
use crate::config::{ComponentId, LoadedConfig};
use crate::registry::{self, ExporterSpec, ReceiverSpec};
use arc_swap::ArcSwap;
use indexmap::IndexMap;
use serde_yaml::Value;
use siemrelay_core::component::{Processor, ProcessorContext, ReceiverContext};
use siemrelay_exporters::delivery::assemble::assemble;
use siemrelay_exporters::delivery::{BatchPolicy, ExporterHandle, RestoredStatus};
use siemrelay_processors::batch::BatchConfig;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long in-flight work may keep an old component referenced before a swap goes on anyway.
const UNSHARE_WAIT: Duration = Duration::from_secs(5);
/// How long a replaced disk-queue exporter may finish its requests in flight.
const DISK_SWAP_GRACE: Duration = Duration::from_secs(2);

/// First start or reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// Any error stops the start.
    Start,
    /// Errors after the swap began are reported; the rest is applied.
    Reload,
}

/// What a reload did, by component (`exporters.x`, `receivers.y`, `pipelines.z`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReloadSummary {
    /// Components that were not running before.
    pub started: Vec<String>,
    /// Components whose config changed, restarted.
    pub restarted: Vec<String>,
    /// Components that are gone.
    pub stopped: Vec<String>,
    /// Problems met while applying (the rest was applied).
    pub errors: Vec<String>,
}

/// The running graph, owned by the runtime behind its reload lock.
#[derive(Default)]
pub(super) struct Graph {
    pub(super) config: Option<LoadedConfig>,
    pub(super) exporters: IndexMap<String, RunningExporter>,
    pipelines: IndexMap<String, RunningPipeline>,
    pub(super) receivers: IndexMap<String, RunningReceiver>,
    /// Removed or replaced exporters draining in the background.
    pub(super) retiring: Vec<JoinHandle<()>>,
    pub(super) shutdown_timeout: Duration,
    pipeline_counters: HashMap<String, Arc<PipelineCounters>>,
    receiver_counters: HashMap<String, Arc<AtomicU64>>,
    /// Events queued per exporter (kept across reloads).
    exporter_counters: HashMap<String, Arc<AtomicU64>>,
}

pub(super) struct RunningExporter {
    pub(super) handle: Arc<ExporterHandle>,
    raw: Value,
    policy: BatchPolicy,
    durable: bool,
    timeout: Duration,
}

struct RunningPipeline {
    pipeline: Arc<super::Pipeline>,
    processors: Vec<(String, Value)>,
    exporters: Vec<String>,
}

pub(super) struct RunningReceiver {
    entry: Arc<ReceiverEntry>,
    raw: Value,
    stop: CancellationToken,
    pub(super) task: JoinHandle<()>,
}

/// One reload in progress: the plan and what its phases hand each other.
struct Reload<'a> {
    new: &'a LoadedConfig,
    plan: ReloadPlan,
    layout: StorageLayout,
    mode: Mode,
    summary: ReloadSummary,
    /// Exporters started for the new graph, by id.
    started: HashMap<String, RunningExporter>,
    /// Processors built for changed pipelines, by pipeline name.
    built: HashMap<String, Vec<Box<dyn Processor>>>,
}

impl Graph {
    /// What runs, for the planner.
    fn running(&self) -> Running {
        Running {
            exporters: self
                .exporters
                .iter()
                .map(|(id, e)| {
                    let facts = ExporterFacts {
                        raw: e.raw.clone(),
                        policy: e.policy,
                        durable: e.durable,
                    };
                    (id.clone(), facts)
                })
                .collect(),
            pipelines: self
                .pipelines
                .iter()
                .map(|(name, p)| {
                    let facts = PipelineFacts {
                        processors: p.processors.clone(),
                        exporters: p.exporters.clone(),
                        chained: p.pipeline.order.is_some(),
                    };
                    (name.clone(), facts)
                })
                .collect(),
            receivers: self
                .receivers
                .iter()
                .map(|(id, r)| (id.clone(), r.raw.clone()))
                .collect(),
        }
    }
}

impl Runtime {
    /// Brings the graph to `new`: plans the change, then carries it out phase by phase (see
    /// the module doc).
    pub(super) async fn apply(
        &self,
        graph: &mut Graph,
        new: LoadedConfig,
        mode: Mode,
    ) -> anyhow::Result<ReloadSummary> {
        graph.retiring.retain(|task| !task.is_finished());
        let plan = plan::plan(&graph.running(), &new);
        if mode == Mode::Reload {
            tracing::info!(plan = %plan.describe(), "reload: applying the new configuration");
        }
        let previous_pipelines: HashSet<String> = graph.pipelines.keys().cloned().collect();
        let mut reload = Reload {
            new: &new,
            plan,
            layout: StorageLayout::new(&new.service.storage.directory),
            mode,
            summary: ReloadSummary::default(),
            started: HashMap::new(),
            built: HashMap::new(),
        };
        // 1. Start what needs nothing closed first.
        reload.start_independent(graph, &self.state).await?;
        // 2. Pause (batches wait) while locked state is handed over.
        if reload.plan.pauses() {
            self.hand_over(graph, &mut reload).await;
        }
        // 3. Assemble exporters and pipelines, then swap the receivers over.
        let (exporters, retired) = reload.assemble_exporters(graph);
        let pipelines = reload.assemble_pipelines(graph, &exporters, &previous_pipelines);
        let old_pipelines = std::mem::take(&mut graph.pipelines);
        let old_config = graph.config.take();
        let receivers = match self
            .swap_receivers(graph, &mut reload, &pipelines, old_config.as_ref())
            .await
        {
            Ok(receivers) => receivers,
            Err(e) => {
                abandon(exporters.into_values()).await;
                return Err(e);
            }
        };
        graph.receivers = receivers;
        drop(old_pipelines);
        let summary = reload.summary;
        // 4. Retire what is gone or replaced: drain in the background.
        self.install(graph, new, exporters, pipelines, retired)
            .await;
        Ok(summary)
    }

    /// Phase 2: pauses intake, drops the pipelines that are rebuilt, closes the disk queues
    /// that are taken over and starts their replacements, and builds the chained pipelines'
    /// processors once their old chain heads are saved.
    async fn hand_over(&self, graph: &mut Graph, reload: &mut Reload<'_>) {
        let closing: Vec<String> = reload.plan.closes_first().map(str::to_string).collect();
        let chained: Vec<String> = reload.plan.chained().map(|p| p.name.clone()).collect();
        tracing::info!(exporters = %closing.join(","), pipelines = %chained.join(","),
            "reload: pausing intake while disk queues or signature chains are handed over");
        pause_intake(graph).await;
        let reused: HashSet<&str> = reload
            .plan
            .pipelines
            .iter()
            .filter(|p| p.reuse)
            .map(|p| p.name.as_str())
            .collect();
        graph
            .pipelines
            .retain(|name, _| reused.contains(name.as_str()));
        let mut view = (*self.view.load_full()).clone();
        view.exporters.retain(|e| !closing.contains(&e.id));
        self.view.store(Arc::new(view));
        for id in &closing {
            reload.take_over_disk_queue(graph, id).await;
        }
        for name in &chained {
            reload.build_chained(name);
        }
    }

    /// Phase 3, receivers: each gets its new pipelines atomically; changed ones restart (their
    /// previous config again when the new one cannot start), removed ones stop. On a first
    /// start, a receiver that cannot start stops the start.
    async fn swap_receivers(
        &self,
        graph: &mut Graph,
        reload: &mut Reload<'_>,
        pipelines: &IndexMap<String, RunningPipeline>,
        old_config: Option<&LoadedConfig>,
    ) -> anyhow::Result<IndexMap<String, RunningReceiver>> {
        let new = reload.new;
        let mut receivers: IndexMap<String, RunningReceiver> = IndexMap::new();
        for (rid, plan) in reload.plan.receivers.clone() {
            let Some((id, spec)) = new.receivers.iter().find(|(id, _)| id.id == rid) else {
                continue;
            };
            let Some(route) = route_for(new, &rid, pipelines) else {
                continue;
            };
            let raw = raw_of(&new.raw.receivers, &rid);
            let running = match (plan, graph.receivers.shift_remove(&rid)) {
                (ReceiverPlan::Keep, Some(old)) => {
                    old.entry.set_route(route);
                    Some(old)
                }
                (_, Some(old)) => {
                    let parts = (id, spec, raw, route);
                    self.restart_receiver(graph, reload, parts, old, old_config)
                        .await
                }
                (_, None) => match self
                    .start_receiver(graph, id, spec, raw, route, &reload.layout)
                    .await
                {
                    Ok(running) => {
                        if reload.mode == Mode::Reload {
                            reload.summary.started.push(format!("receivers.{rid}"));
                        }
                        Some(running)
                    }
                    Err(e) if reload.mode == Mode::Start => {
                        for (name, running) in receivers.drain(..) {
                            stop_receiver(&name, running, Duration::from_secs(1)).await;
                        }
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::error!(receiver = %rid, error = %format!("{e:#}"), "reload: cannot start the new receiver");
                        reload
                            .summary
                            .errors
                            .push(format!("receivers.{rid}: {e:#}"));
                        None
                    }
                },
            };
            if let Some(running) = running {
                receivers.insert(rid, running);
            }
        }
        for (name, old) in graph.receivers.drain(..) {
            old.entry.set_route(Route::with_state(RouteState::Closed));
            stop_receiver(&name, old, new.service.shutdown_timeout.0).await;
            reload.summary.stopped.push(format!("receivers.{name}"));
        }
        Ok(receivers)
    }

    /// Restarts a changed receiver; when its new config cannot start, its previous one.
    async fn restart_receiver(
        &self,
        graph: &mut Graph,
        reload: &mut Reload<'_>,
        (id, spec, raw, route): (&ComponentId, &ReceiverSpec, Value, Arc<Route>),
        old: RunningReceiver,
        old_config: Option<&LoadedConfig>,
    ) -> Option<RunningReceiver> {
        // Requests in flight on the old listener finish into the new pipelines.
        old.entry.set_route(route.clone());
        stop_receiver(&id.id, old, graph.shutdown_timeout).await;
        reload
            .summary
            .restarted
            .push(format!("receivers.{}", id.id));
        let layout = &reload.layout;
        let e = match self
            .start_receiver(graph, id, spec, raw, route.clone(), layout)
            .await
        {
            Ok(running) => return Some(running),
            Err(e) => e,
        };
        tracing::error!(receiver = %id.id, error = %format!("{e:#}"), "reload: cannot start the changed receiver; restarting its previous config");
        reload
            .summary
            .errors
            .push(format!("receivers.{}: {e:#}", id.id));
        let old_config = old_config?;
        let (old_id, old_spec) = old_config.receivers.iter().find(|(i, _)| i.id == id.id)?;
        let old_raw = raw_of(&old_config.raw.receivers, &id.id);
        match self
            .start_receiver(graph, old_id, old_spec, old_raw, route, layout)
            .await
        {
            Ok(running) => Some(running),
            Err(e) => {
                tracing::error!(receiver = %id.id, error = %format!("{e:#}"), "reload: the previous config cannot start either; the receiver is down");
                None
            }
        }
    }

    /// Phase 4: retires the exporters that are gone or replaced (they drain in the background),
    /// forgets the saved state of the removed ones and installs the new graph.
    async fn install(
        &self,
        graph: &mut Graph,
        new: LoadedConfig,
        exporters: IndexMap<String, RunningExporter>,
        pipelines: IndexMap<String, RunningPipeline>,
        retired: Vec<(String, RunningExporter)>,
    ) {
        let removed: Vec<String> = retired
            .iter()
            .filter(|(id, _)| !exporters.contains_key(id))
            .map(|(id, _)| id.clone())
            .collect();
        // A removed exporter's saved state goes with it (an exporter added later under its id
        // starts fresh).
        self.state.forget(&removed);
        for (id, old) in retired {
            let timeout = new.service.shutdown_timeout.0;
            graph
                .retiring
                .push(tokio::spawn(retire(id, old.handle, timeout)));
        }
        graph.exporters = exporters;
        graph.pipelines = pipelines;
        graph.shutdown_timeout = new.service.shutdown_timeout.0;
        self.admission
            .set_limit(new.service.memory_limit.as_usize());
        graph.config = Some(new);
        let view = Arc::new(topology(graph));
        if !removed.is_empty() {
            // Written before the API shows the removal. Errors are logged and counted by the
            // store.
            let _ = self.state.save_async(view.clone()).await;
        }
        self.view.store(view);
    }

    async fn start_receiver(
        &self,
        graph: &mut Graph,
        id: &ComponentId,
        spec: &ReceiverSpec,
        raw: Value,
        route: Arc<Route>,
        layout: &StorageLayout,
    ) -> anyhow::Result<RunningReceiver> {
        let receiver = registry::build_receiver(id, spec)
            .await
            .map_err(|e| anyhow::anyhow!("receivers.{}: {e:#}", id.id))?;
        let received = graph
            .receiver_counters
            .entry(id.id.clone())
            .or_default()
            .clone();
        let entry = Arc::new(ReceiverEntry {
            receiver: id.id.clone(),
            route: ArcSwap::new(route),
            resumed: Notify::new(),
            closing: self.closing.clone(),
            received,
            admission: self.admission.clone(),
            taps: self.taps.clone(),
        });
        let stop = self.receivers_stop.child_token();
        let ctx = ReceiverContext {
            id: id.id.clone(),
            sink: entry.clone(),
            shutdown: stop.clone(),
            storage_dir: layout.receiver_dir(id),
        };
        let failures = self.failures_tx.clone();
        let (name, stopped) = (id.id.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let result = receiver.run(ctx).await;
            if !stopped.is_cancelled() {
                let _ = failures.send((name, result));
            } else if let Err(e) = result {
                tracing::error!(receiver = %name, error = %format!("{e:#}"), "receiver stopped with an error");
            }
        });
        Ok(RunningReceiver {
            entry,
            raw,
            stop,
            task,
        })
    }
}

/// Starts exporter `id` with the status `restored` (its saved state, or its predecessor's).
fn start_exporter(
    id: &ComponentId,
    spec: &ExporterSpec,
    layout: &StorageLayout,
    config: &LoadedConfig,
    restored: RestoredStatus,
) -> anyhow::Result<RunningExporter> {
    let sink = registry::build_sink(id, spec)
        .map_err(|e| anyhow::anyhow!("exporters.{}: {e:#}", id.id))?;
    let policy = spec.delivery.sending.batch_policy();
    let storage = layout.exporter_storage(id);
    let handle = Arc::new(assemble(&id.id, sink, &spec.delivery, &storage, restored)?);
    let durable = handle.queue().is_durable();
    Ok(RunningExporter {
        handle,
        raw: raw_of(&config.raw.exporters, &id.id),
        policy,
        durable,
        timeout: spec.delivery.sending.timeout.0,
    })
}

impl Reload<'_> {
    /// Phase 1: starts the exporters that need nothing closed first and builds the processors
    /// of the changed pipelines that keep no chain. An error stops what was started: nothing
    /// changed. A new exporter starts from its saved state, a replaced one from its own.
    async fn start_independent(&mut self, graph: &Graph, state: &StateStore) -> anyhow::Result<()> {
        let result = self.try_start_independent(graph, state);
        if result.is_err() {
            abandon(self.started.drain().map(|(_, running)| running)).await;
        }
        result
    }

    fn try_start_independent(&mut self, graph: &Graph, state: &StateStore) -> anyhow::Result<()> {
        for (id, plan) in &self.plan.exporters {
            if matches!(
                plan,
                ExporterPlan::Start | ExporterPlan::Replace { after_close: false }
            ) {
                let restored = match graph.exporters.get(id) {
                    Some(old) => old.handle.status().to_restore(),
                    None => state.restored(id),
                };
                let running = start_configured(self.new, id, &self.layout, restored)?;
                self.started.insert(id.clone(), running);
            }
        }
        for plan in self
            .plan
            .pipelines
            .iter()
            .filter(|p| !p.reuse && !p.chained)
        {
            let processors = build_processors(self.new, &plan.name, &self.layout)?;
            self.built.insert(plan.name.clone(), processors);
        }
        Ok(())
    }

    /// Closes the running exporter `id` (its disk queue keeps what it holds) and starts its
    /// new config on the same directory; its previous config again when that fails.
    async fn take_over_disk_queue(&mut self, graph: &mut Graph, id: &str) {
        let Some(old) = graph.exporters.shift_remove(id) else {
            return;
        };
        let outcome = old.handle.shutdown(Instant::now() + DISK_SWAP_GRACE).await;
        tracing::info!(exporter = %id, left_queued = outcome.left_queued, "reload: old exporter closed; its disk queue is taken over");
        let restored = old.handle.status().to_restore();
        let handle = old.handle;
        wait_unshared(&handle).await;
        drop(handle);
        match start_configured(self.new, id, &self.layout, restored.clone()) {
            Ok(running) => {
                self.started.insert(id.to_string(), running);
            }
            Err(e) => {
                tracing::error!(exporter = %id, error = %format!("{e:#}"), "reload: cannot start the changed exporter; restarting its previous config");
                self.summary.errors.push(format!("exporters.{id}: {e:#}"));
                if let Some(running) = graph
                    .config
                    .as_ref()
                    .and_then(|old| restart_previous(old, id, restored))
                {
                    self.started.insert(id.to_string(), running);
                }
            }
        }
    }

    /// Builds a chained pipeline's processors (its old chain head is saved by now).
    fn build_chained(&mut self, name: &str) {
        match build_processors(self.new, name, &self.layout) {
            Ok(processors) => {
                self.built.insert(name.to_string(), processors);
            }
            Err(e) => {
                tracing::error!(pipeline = %name, error = %format!("{e:#}"), "reload: cannot build the pipeline's processors; it receives nothing until fixed");
                self.summary.errors.push(format!("pipelines.{name}: {e:#}"));
            }
        }
    }

    /// Phase 3, exporters: the kept ones and the started ones, in config order (a replaced
    /// exporter started from its predecessor's status, disabled included); the rest retire.
    fn assemble_exporters(
        &mut self,
        graph: &mut Graph,
    ) -> (
        IndexMap<String, RunningExporter>,
        Vec<(String, RunningExporter)>,
    ) {
        let mut exporters: IndexMap<String, RunningExporter> = IndexMap::new();
        for (id, plan) in &self.plan.exporters {
            let running = match plan {
                ExporterPlan::Keep => graph.exporters.shift_remove(id),
                ExporterPlan::Start => {
                    self.summary.started.push(format!("exporters.{id}"));
                    self.started.remove(id)
                }
                ExporterPlan::Replace { .. } => {
                    self.summary.restarted.push(format!("exporters.{id}"));
                    self.started.remove(id)
                }
            };
            if let Some(running) = running {
                exporters.insert(id.clone(), running);
            }
        }
        let retired: Vec<(String, RunningExporter)> = graph.exporters.drain(..).collect();
        for (id, _) in &retired {
            if !exporters.contains_key(id) {
                self.summary.stopped.push(format!("exporters.{id}"));
            }
        }
        (exporters, retired)
    }

    /// Phase 3, pipelines: the reused ones, and the changed ones with their new processors
    /// and exporters.
    fn assemble_pipelines(
        &mut self,
        graph: &mut Graph,
        exporters: &IndexMap<String, RunningExporter>,
        previous: &HashSet<String>,
    ) -> IndexMap<String, RunningPipeline> {
        let mut pipelines: IndexMap<String, RunningPipeline> = IndexMap::new();
        for plan in &self.plan.pipelines {
            if plan.reuse
                && let Some(old) = graph.pipelines.shift_remove(&plan.name)
            {
                pipelines.insert(plan.name.clone(), old);
                continue;
            }
            let Some(processors) = self.built.remove(&plan.name) else {
                continue;
            };
            if self.mode == Mode::Reload {
                let label = format!("pipelines.{}", plan.name);
                if previous.contains(&plan.name) {
                    self.summary.restarted.push(label)
                } else {
                    self.summary.started.push(label)
                }
            }
            let counters = graph
                .pipeline_counters
                .entry(plan.name.clone())
                .or_default()
                .clone();
            let running = new_pipeline(
                self.new,
                plan,
                processors,
                exporters,
                counters,
                &mut graph.exporter_counters,
            );
            pipelines.insert(plan.name.clone(), running);
        }
        for name in previous
            .iter()
            .filter(|name| !pipelines.contains_key(*name))
        {
            self.summary.stopped.push(format!("pipelines.{name}"));
        }
        pipelines
    }
}

/// A changed pipeline, ready to run.
fn new_pipeline(
    new: &LoadedConfig,
    plan: &PipelinePlan,
    processors: Vec<Box<dyn Processor>>,
    exporters: &IndexMap<String, RunningExporter>,
    counters: Arc<PipelineCounters>,
    exporter_counters: &mut HashMap<String, Arc<AtomicU64>>,
) -> RunningPipeline {
    let listed = new
        .service
        .pipelines
        .get(&plan.name)
        .map(|p| p.exporters.clone())
        .unwrap_or_default();
    let (targets, queued): (Vec<_>, Vec<_>) = listed
        .iter()
        .filter_map(|e| {
            let handle = exporters.get(e)?.handle.clone();
            let queued = exporter_counters.entry(e.clone()).or_default();
            Some((handle, queued.clone()))
        })
        .unzip();
    let order = processors
        .iter()
        .any(|p| p.requires_ordering())
        .then(|| tokio::sync::Mutex::new(()));
    let pipeline = super::Pipeline {
        name: plan.name.clone(),
        processors,
        exporters: targets,
        queued,
        order,
        counters,
        tap_points: tap_points(new, &plan.name),
    };
    RunningPipeline {
        pipeline: Arc::new(pipeline),
        processors: plan.processors.clone(),
        exporters: listed,
    }
}

/// The open route of receiver `id` into the pipelines that list it; `None` when none runs.
fn route_for(
    new: &LoadedConfig,
    id: &str,
    pipelines: &IndexMap<String, RunningPipeline>,
) -> Option<Arc<Route>> {
    let feeds: Vec<Arc<super::Pipeline>> = new
        .service
        .pipelines
        .iter()
        .filter(|(_, p)| p.receivers.iter().any(|r| r == id))
        .filter_map(|(name, _)| pipelines.get(name).map(|r| r.pipeline.clone()))
        .collect();
    (!feeds.is_empty()).then(|| {
        Arc::new(Route {
            pipelines: feeds,
            state: RouteState::Open,
        })
    })
}

/// Pauses every receiver's route and waits until the batches in flight on the old routes are
/// queued.
async fn pause_intake(graph: &Graph) {
    let old_routes: Vec<Arc<Route>> = graph
        .receivers
        .values()
        .map(|r| r.entry.set_route(Route::with_state(RouteState::Paused)))
        .collect();
    for route in &old_routes {
        wait_unshared(route).await;
    }
}

/// Starts exporter `id` as `config` configures it.
fn start_configured(
    config: &LoadedConfig,
    id: &str,
    layout: &StorageLayout,
    restored: RestoredStatus,
) -> anyhow::Result<RunningExporter> {
    let (cid, spec) = config
        .exporter(id)
        .ok_or_else(|| anyhow::anyhow!("exporters.{id}: not in the configuration"))?;
    start_exporter(cid, spec, layout, config, restored)
}

/// Starts an exporter as `previous` configured it (when its new config cannot start).
fn restart_previous(
    previous: &LoadedConfig,
    id: &str,
    restored: RestoredStatus,
) -> Option<RunningExporter> {
    let layout = StorageLayout::new(&previous.service.storage.directory);
    match start_configured(previous, id, &layout, restored) {
        Ok(running) => Some(running),
        Err(e) => {
            tracing::error!(exporter = %id, error = %format!("{e:#}"), "reload: the previous config cannot start either; the exporter is down");
            None
        }
    }
}

/// The running processors of `pipeline`, in order (also used by `siemrelay send --pipeline`).
pub(crate) fn build_processors(
    config: &LoadedConfig,
    pipeline: &str,
    layout: &StorageLayout,
) -> anyhow::Result<Vec<Box<dyn Processor>>> {
    let mut processors = Vec::new();
    let Some(listed) = config.service.pipelines.get(pipeline) else {
        return Ok(processors);
    };
    for pid in &listed.processors {
        let Some((id, spec)) = config.processors.iter().find(|(id, _)| &id.id == pid) else {
            continue;
        };
        let storage_dir = layout.processor_dir(pipeline, id);
        std::fs::create_dir_all(&storage_dir).map_err(|e| {
            anyhow::anyhow!(
                "processors.{}: cannot create {}: {e}",
                id.id,
                storage_dir.display()
            )
        })?;
        let ctx = ProcessorContext {
            id: id.id.clone(),
            pipeline: pipeline.to_string(),
            storage_dir,
        };
        let built = registry::build_processor(spec, &ctx).map_err(|issues| {
            let text: Vec<String> = issues
                .iter()
                .map(|i| format!("processors.{}.{}: {}", id.id, i.key, i.message))
                .collect();
            anyhow::anyhow!(text.join("; "))
        })?;
        processors.extend(built);
    }
    Ok(processors)
}

/// Where a tap sees each processor of a pipeline: after its running instance, or, for `batch`
/// (no running part), at its place between the others. See `Pipeline::tap_points`.
fn tap_points(config: &LoadedConfig, pipeline: &str) -> Vec<Vec<String>> {
    let mut points = vec![Vec::new()];
    let Some(listed) = config.service.pipelines.get(pipeline) else {
        return points;
    };
    for pid in &listed.processors {
        let runs = config
            .processors
            .iter()
            .any(|(id, spec)| &id.id == pid && spec.config_as::<BatchConfig>().is_none());
        if runs {
            points.push(vec![pid.clone()]);
        } else if let Some(last) = points.last_mut() {
            last.push(pid.clone());
        }
    }
    points
}

/// Stops exporters that never received anything (a failed start).
async fn abandon(exporters: impl Iterator<Item = RunningExporter>) {
    for running in exporters {
        running.handle.shutdown(Instant::now()).await;
    }
}

async fn stop_receiver(name: &str, receiver: RunningReceiver, timeout: Duration) {
    receiver.stop.cancel();
    match tokio::time::timeout(timeout, receiver.task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(receiver = %name, error = %e, "receiver task failed"),
        Err(_) => tracing::warn!(receiver = %name, "receiver did not stop in time"),
    }
}

/// Waits (bounded) until `value` is referenced only by the caller: batches in flight that still
/// use it have finished queueing.
async fn wait_unshared<T>(value: &Arc<T>) {
    let deadline = Instant::now() + UNSHARE_WAIT;
    while Arc::strong_count(value) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Drains a removed or replaced exporter: no pipeline pushes to it any more.
async fn retire(id: String, handle: Arc<ExporterHandle>, timeout: Duration) {
    wait_unshared(&handle).await;
    let queued = handle.queue().depth().events;
    tracing::info!(exporter = %id, queued, "exporter removed: delivering what it holds");
    let outcome = handle.shutdown(Instant::now() + timeout).await;
    if outcome.dead_lettered > 0 {
        tracing::error!(exporter = %id, events = outcome.dead_lettered, "removed exporter: undelivered events written to the dead-letter file");
    }
    if outcome.left_queued > 0 {
        tracing::warn!(exporter = %id, events = outcome.left_queued, "removed exporter: events stay in its disk queue (kept, not delivered until it is configured again)");
    }
    if outcome.drained {
        tracing::info!(exporter = %id, "removed exporter drained");
    }
}

/// The admin view of a graph.
fn topology(graph: &Graph) -> Topology {
    let Some(config) = graph.config.as_ref() else {
        return Topology::default();
    };
    let exporters = graph
        .exporters
        .iter()
        .map(|(id, running)| ExporterView {
            id: id.clone(),
            kind: kind_of(id),
            handle: running.handle.clone(),
            events_queued: graph.exporter_counters.get(id).cloned().unwrap_or_default(),
            pipelines: config
                .service
                .pipelines
                .iter()
                .filter(|(_, p)| p.exporters.contains(id))
                .map(|(n, _)| n.clone())
                .collect(),
            timeout: running.timeout,
            file: config
                .exporter(id)
                .and_then(|(_, spec)| spec.config_as::<siemrelay_exporters::file::FileConfig>())
                .cloned(),
        })
        .collect();
    let pipelines = graph
        .pipelines
        .iter()
        .filter_map(|(name, running)| {
            let listed = config.service.pipelines.get(name)?;
            let receivers = listed
                .receivers
                .iter()
                .filter(|r| graph.receivers.contains_key(*r))
                .map(|r| ReceiverView {
                    id: r.clone(),
                    kind: kind_of(r),
                    received: graph.receiver_counters.get(r).cloned().unwrap_or_default(),
                })
                .collect();
            Some(PipelineView {
                name: name.clone(),
                receivers,
                processors: listed
                    .processors
                    .iter()
                    .map(|p| (p.clone(), kind_of(p)))
                    .collect(),
                exporters: running.exporters.clone(),
                counters: running.pipeline.counters.clone(),
            })
        })
        .collect();
    Topology {
        exporters,
        pipelines,
        secrets: Arc::new(config.secrets.clone()),
    }
}
