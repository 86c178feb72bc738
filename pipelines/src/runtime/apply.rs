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

use super::topology::{ExporterView, PipelineView, ReceiverView, Topology, kind_of};
use super::{
    PipelineCounters, ReceiverEntry, Route, RouteState, Runtime, StorageLayout, open_queue,
};
use crate::config::{ComponentId, LoadedConfig};
use crate::registry::{self, ExporterKind, ExporterSpec, ProcessorSpec, ReceiverSpec};
use arc_swap::ArcSwap;
use indexmap::IndexMap;
use serde_yaml::Value;
use siemrelay_core::component::{Processor, ProcessorContext, ReceiverContext};
use siemrelay_exporters::delivery::config::QueueType;
use siemrelay_exporters::delivery::dead_letter::DeadLetter;
use siemrelay_exporters::delivery::{BatchPolicy, ExporterHandle, RestoredStatus};
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExporterPlan {
    Keep,
    Start,
    /// Replace a running exporter; `after_close` when the old disk queue must close first.
    Replace {
        after_close: bool,
    },
}

struct PipelinePlan {
    name: String,
    processors: Vec<(String, Value)>,
    reuse: bool,
    /// The old instance keeps a signature chain: drop it before building the new one.
    chained: bool,
}

impl Runtime {
    /// Brings the graph to `new`.
    pub(super) async fn apply(
        &self,
        graph: &mut Graph,
        new: LoadedConfig,
        mode: Mode,
    ) -> anyhow::Result<ReloadSummary> {
        graph.retiring.retain(|task| !task.is_finished());
        let mut summary = ReloadSummary::default();
        let layout = StorageLayout::new(&new.service.storage.directory);
        let policies = batch_policies(&new);
        let used = |id: &str| {
            new.service
                .pipelines
                .values()
                .any(|p| p.exporters.iter().any(|e| e == id))
        };
        let previous_pipelines: HashSet<String> = graph.pipelines.keys().cloned().collect();
        // Plan the exporters.
        let mut plans: Vec<(&ComponentId, &ExporterSpec, ExporterPlan)> = Vec::new();
        for (id, spec) in &new.exporters {
            if !used(&id.id) {
                continue;
            }
            let raw = raw_of(&new.raw.exporters, &id.id);
            let policy = policies.get(&id.id).copied().unwrap_or_default();
            let plan = match graph.exporters.get(&id.id) {
                Some(old) if old.raw == raw && old.policy == policy => ExporterPlan::Keep,
                Some(old) => ExporterPlan::Replace {
                    after_close: old.durable && spec.delivery.queue.kind == QueueType::Disk,
                },
                None => ExporterPlan::Start,
            };
            plans.push((id, spec, plan));
        }

        // 1. Start what needs nothing closed first.
        let mut started: HashMap<String, RunningExporter> = HashMap::new();
        for (id, spec, plan) in &plans {
            if matches!(
                plan,
                ExporterPlan::Start | ExporterPlan::Replace { after_close: false }
            ) {
                // A new exporter starts from its saved state, a replaced one from its own.
                let restored = match graph.exporters.get(&id.id) {
                    Some(old) => old.handle.status().to_restore(),
                    None => self.state.restored(&id.id),
                };
                match start_exporter(id, spec, &layout, &new, &policies, restored) {
                    Ok(running) => {
                        started.insert(id.id.clone(), running);
                    }
                    Err(e) => {
                        abandon(started.into_values()).await;
                        return Err(e);
                    }
                }
            }
        }
        let keep = |id: &str| {
            plans
                .iter()
                .any(|(i, _, p)| i.id == id && *p == ExporterPlan::Keep)
        };
        let mut pipeline_plans = Vec::new();
        for (name, config) in &new.service.pipelines {
            let processors: Vec<(String, Value)> = config
                .processors
                .iter()
                .map(|pid| (pid.clone(), raw_of(&new.raw.processors, pid)))
                .collect();
            let old = graph.pipelines.get(name);
            let reuse = old.is_some_and(|o| {
                o.processors == processors
                    && o.exporters == config.exporters
                    && config.exporters.iter().all(|e| keep(e))
            });
            let chained = !reuse && old.is_some_and(|o| o.pipeline.order.is_some());
            pipeline_plans.push(PipelinePlan {
                name: name.clone(),
                processors,
                reuse,
                chained,
            });
        }
        let mut built: HashMap<String, Vec<Box<dyn Processor>>> = HashMap::new();
        for plan in pipeline_plans.iter().filter(|p| !p.reuse && !p.chained) {
            match build_processors(&new, &plan.name, &layout) {
                Ok(processors) => {
                    built.insert(plan.name.clone(), processors);
                }
                Err(e) => {
                    abandon(started.into_values()).await;
                    return Err(e);
                }
            }
        }

        // 2. Pause (batches wait) while locked state is handed over.
        let closes_first: Vec<&ComponentId> = plans
            .iter()
            .filter(|(_, _, p)| *p == ExporterPlan::Replace { after_close: true })
            .map(|(id, _, _)| *id)
            .collect();
        let chained: Vec<&PipelinePlan> = pipeline_plans.iter().filter(|p| p.chained).collect();
        if !closes_first.is_empty() || !chained.is_empty() {
            tracing::info!(exporters = %closes_first.iter().map(|i| i.id.as_str()).collect::<Vec<_>>().join(","), pipelines = %chained.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(","),
                "reload: pausing intake while disk queues or signature chains are handed over");
            let old_routes: Vec<Arc<Route>> = graph
                .receivers
                .values()
                .map(|r| r.entry.set_route(Route::with_state(RouteState::Paused)))
                .collect();
            for route in &old_routes {
                wait_unshared(route).await;
            }
            drop(old_routes);
            let reused: HashSet<&str> = pipeline_plans
                .iter()
                .filter(|p| p.reuse)
                .map(|p| p.name.as_str())
                .collect();
            graph
                .pipelines
                .retain(|name, _| reused.contains(name.as_str()));
            let closing: HashSet<&str> = closes_first.iter().map(|id| id.id.as_str()).collect();
            let mut view = (*self.view.load_full()).clone();
            view.exporters.retain(|e| !closing.contains(e.id.as_str()));
            self.view.store(Arc::new(view));
            for id in &closes_first {
                let Some(old) = graph.exporters.shift_remove(&id.id) else {
                    continue;
                };
                let outcome = old.handle.shutdown(Instant::now() + DISK_SWAP_GRACE).await;
                tracing::info!(exporter = %id.id, left_queued = outcome.left_queued, "reload: old exporter closed; its disk queue is taken over");
                let restored = old.handle.status().to_restore();
                let handle = old.handle;
                wait_unshared(&handle).await;
                drop(handle);
                let Some((_, spec)) = new.exporter(&id.id) else {
                    continue;
                };
                match start_exporter(id, spec, &layout, &new, &policies, restored.clone()) {
                    Ok(running) => {
                        started.insert(id.id.clone(), running);
                    }
                    Err(e) => {
                        tracing::error!(exporter = %id.id, error = %format!("{e:#}"), "reload: cannot start the changed exporter; restarting its previous config");
                        summary.errors.push(format!("exporters.{}: {e:#}", id.id));
                        if let Some(running) = graph
                            .config
                            .as_ref()
                            .and_then(|old| restart_previous(old, id, restored))
                        {
                            started.insert(id.id.clone(), running);
                        }
                    }
                }
            }
            for plan in &chained {
                match build_processors(&new, &plan.name, &layout) {
                    Ok(processors) => {
                        built.insert(plan.name.clone(), processors);
                    }
                    Err(e) => {
                        tracing::error!(pipeline = %plan.name, error = %format!("{e:#}"), "reload: cannot build the pipeline's processors; it receives nothing until fixed");
                        summary
                            .errors
                            .push(format!("pipelines.{}: {e:#}", plan.name));
                    }
                }
            }
        }

        // 3. Assemble exporters and pipelines, then swap the receivers over.
        let mut exporters: IndexMap<String, RunningExporter> = IndexMap::new();
        for (id, _, plan) in &plans {
            let running = match plan {
                ExporterPlan::Keep => graph.exporters.shift_remove(&id.id),
                ExporterPlan::Start => {
                    summary.started.push(format!("exporters.{}", id.id));
                    started.remove(&id.id)
                }
                ExporterPlan::Replace { .. } => {
                    summary.restarted.push(format!("exporters.{}", id.id));
                    started.remove(&id.id)
                }
            };
            if let Some(running) = running {
                exporters.insert(id.id.clone(), running);
            }
        }
        let retired: Vec<(String, RunningExporter)> = graph.exporters.drain(..).collect();
        let removed: Vec<String> = retired
            .iter()
            .filter(|(id, _)| !exporters.contains_key(id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &removed {
            summary.stopped.push(format!("exporters.{id}"));
        }
        // A removed exporter's saved state goes with it (an exporter added later under its id
        // starts fresh).
        self.state.forget(&removed);
        let mut pipelines: IndexMap<String, RunningPipeline> = IndexMap::new();
        for plan in pipeline_plans {
            let Some(config) = new.service.pipelines.get(&plan.name) else {
                continue;
            };
            if plan.reuse
                && let Some(old) = graph.pipelines.shift_remove(&plan.name)
            {
                pipelines.insert(plan.name, old);
                continue;
            }
            let Some(processors) = built.remove(&plan.name) else {
                continue;
            };
            if mode == Mode::Reload {
                let label = format!("pipelines.{}", plan.name);
                if previous_pipelines.contains(&plan.name) {
                    summary.restarted.push(label)
                } else {
                    summary.started.push(label)
                }
            }
            let (targets, queued): (Vec<_>, Vec<_>) = config
                .exporters
                .iter()
                .filter_map(|e| {
                    let handle = exporters.get(e)?.handle.clone();
                    let queued = graph.exporter_counters.entry(e.clone()).or_default();
                    Some((handle, queued.clone()))
                })
                .unzip();
            let order = processors
                .iter()
                .any(|p| p.requires_ordering())
                .then(|| tokio::sync::Mutex::new(()));
            let counters = graph
                .pipeline_counters
                .entry(plan.name.clone())
                .or_default()
                .clone();
            let pipeline = super::Pipeline {
                name: plan.name.clone(),
                processors,
                exporters: targets,
                queued,
                order,
                counters,
                tap_points: tap_points(&new, &plan.name),
            };
            pipelines.insert(
                plan.name,
                RunningPipeline {
                    pipeline: Arc::new(pipeline),
                    processors: plan.processors,
                    exporters: config.exporters.clone(),
                },
            );
        }
        let old_pipelines = std::mem::take(&mut graph.pipelines);
        for name in previous_pipelines
            .iter()
            .filter(|name| !pipelines.contains_key(*name))
        {
            summary.stopped.push(format!("pipelines.{name}"));
        }

        let old_config = graph.config.take();
        let mut receivers: IndexMap<String, RunningReceiver> = IndexMap::new();
        for (id, spec) in &new.receivers {
            let feeds: Vec<Arc<super::Pipeline>> = new
                .service
                .pipelines
                .iter()
                .filter(|(_, p)| p.receivers.contains(&id.id))
                .filter_map(|(name, _)| pipelines.get(name).map(|r| r.pipeline.clone()))
                .collect();
            if feeds.is_empty() {
                continue;
            }
            let raw = raw_of(&new.raw.receivers, &id.id);
            let route = Arc::new(Route {
                pipelines: feeds,
                state: RouteState::Open,
            });
            match graph.receivers.shift_remove(&id.id) {
                Some(old) if old.raw == raw => {
                    old.entry.set_route(route);
                    receivers.insert(id.id.clone(), old);
                }
                Some(old) => {
                    // Requests in flight on the old listener finish into the new pipelines.
                    old.entry.set_route(route.clone());
                    stop_receiver(&id.id, old, graph.shutdown_timeout).await;
                    summary.restarted.push(format!("receivers.{}", id.id));
                    match self
                        .start_receiver(graph, id, spec, raw, route.clone(), &layout)
                        .await
                    {
                        Ok(running) => {
                            receivers.insert(id.id.clone(), running);
                        }
                        Err(e) => {
                            tracing::error!(receiver = %id.id, error = %format!("{e:#}"), "reload: cannot start the changed receiver; restarting its previous config");
                            summary.errors.push(format!("receivers.{}: {e:#}", id.id));
                            let previous = old_config
                                .as_ref()
                                .and_then(|c| c.receivers.iter().find(|(i, _)| i.id == id.id));
                            if let Some((old_id, old_spec)) = previous {
                                let old_raw = old_config
                                    .as_ref()
                                    .map(|c| raw_of(&c.raw.receivers, &id.id))
                                    .unwrap_or(Value::Null);
                                match self
                                    .start_receiver(
                                        graph, old_id, old_spec, old_raw, route, &layout,
                                    )
                                    .await
                                {
                                    Ok(running) => {
                                        receivers.insert(id.id.clone(), running);
                                    }
                                    Err(e) => {
                                        tracing::error!(receiver = %id.id, error = %format!("{e:#}"), "reload: the previous config cannot start either; the receiver is down")
                                    }
                                }
                            }
                        }
                    }
                }
                None => match self
                    .start_receiver(graph, id, spec, raw, route, &layout)
                    .await
                {
                    Ok(running) => {
                        if mode == Mode::Reload {
                            summary.started.push(format!("receivers.{}", id.id));
                        }
                        receivers.insert(id.id.clone(), running);
                    }
                    Err(e) if mode == Mode::Start => {
                        for (name, running) in receivers.drain(..) {
                            stop_receiver(&name, running, Duration::from_secs(1)).await;
                        }
                        abandon(exporters.into_values()).await;
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::error!(receiver = %id.id, error = %format!("{e:#}"), "reload: cannot start the new receiver");
                        summary.errors.push(format!("receivers.{}: {e:#}", id.id));
                    }
                },
            }
        }
        for (name, old) in graph.receivers.drain(..) {
            old.entry.set_route(Route::with_state(RouteState::Closed));
            stop_receiver(&name, old, new.service.shutdown_timeout.0).await;
            summary.stopped.push(format!("receivers.{name}"));
        }
        graph.receivers = receivers;
        drop(old_pipelines);

        // 4. Retire what is gone or replaced: drain in the background.
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
        Ok(summary)
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

fn raw_of(map: &HashMap<String, Value>, id: &str) -> Value {
    map.get(id).cloned().unwrap_or(Value::Null)
}

/// Batch policy per exporter: from the first pipeline listing it that has a `batch` processor.
fn batch_policies(config: &LoadedConfig) -> HashMap<String, BatchPolicy> {
    let mut policies = HashMap::new();
    for pipeline in config.service.pipelines.values() {
        let batch = pipeline.processors.iter().find_map(|pid| {
            config
                .processors
                .iter()
                .find(|(id, _)| &id.id == pid)
                .and_then(|(_, spec)| match spec {
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
                policies.entry(exporter.clone()).or_insert(batch);
            }
        }
    }
    policies
}

fn start_exporter(
    id: &ComponentId,
    spec: &ExporterSpec,
    layout: &StorageLayout,
    config: &LoadedConfig,
    policies: &HashMap<String, BatchPolicy>,
    restored: RestoredStatus,
) -> anyhow::Result<RunningExporter> {
    let sink = registry::build_sink(id, spec)
        .map_err(|e| anyhow::anyhow!("exporters.{}: {e:#}", id.id))?;
    let queue = open_queue(id, spec, layout)?;
    let durable = queue.is_durable();
    let dead_letter = DeadLetter::new(&layout.dead_letter_dir(), &id.id);
    let policy = policies.get(&id.id).copied().unwrap_or_default();
    let handle = Arc::new(ExporterHandle::start_restored(
        &id.id,
        sink,
        &spec.delivery,
        policy,
        queue,
        dead_letter,
        restored,
    ));
    Ok(RunningExporter {
        handle,
        raw: raw_of(&config.raw.exporters, &id.id),
        policy,
        durable,
        timeout: spec.delivery.sending.timeout.0,
    })
}

/// Starts an exporter as `previous` configured it (when its new config cannot start).
fn restart_previous(
    previous: &LoadedConfig,
    id: &ComponentId,
    restored: RestoredStatus,
) -> Option<RunningExporter> {
    let (_, spec) = previous.exporter(&id.id)?;
    let layout = StorageLayout::new(&previous.service.storage.directory);
    match start_exporter(
        id,
        spec,
        &layout,
        previous,
        &batch_policies(previous),
        restored,
    ) {
        Ok(running) => Some(running),
        Err(e) => {
            tracing::error!(exporter = %id.id, error = %format!("{e:#}"), "reload: the previous config cannot start either; the exporter is down");
            None
        }
    }
}

fn build_processors(
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
            .any(|(id, spec)| &id.id == pid && !matches!(spec, ProcessorSpec::Batch(_)));
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
            file: match config.exporter(id) {
                Some((
                    _,
                    ExporterSpec {
                        kind: ExporterKind::File(file),
                        ..
                    },
                )) => Some(file.clone()),
                _ => None,
            },
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
