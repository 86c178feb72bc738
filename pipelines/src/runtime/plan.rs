//! Planning a reload, without running anything: from what runs ([`Running`]) and the new
//! config, which exporters, pipelines and receivers are kept, started, replaced or stopped, and
//! whether intake must pause while a disk queue or a signature chain is handed over. `apply`
//! carries the plan out phase by phase.

use crate::config::LoadedConfig;
use serde_yaml::Value;
use siemrelay_exporters::delivery::BatchPolicy;
use siemrelay_exporters::delivery::config::QueueType;
use std::collections::HashMap;

/// What the planner needs to know of a running exporter.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ExporterFacts {
    /// Its config block as it was started.
    pub(super) raw: Value,
    /// Its batch policy.
    pub(super) policy: BatchPolicy,
    /// Whether its queue is on disk (the directory is locked until it closes).
    pub(super) durable: bool,
}

/// What the planner needs to know of a running pipeline.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct PipelineFacts {
    /// Its processors: (id, config block).
    pub(super) processors: Vec<(String, Value)>,
    /// The exporters it delivers to.
    pub(super) exporters: Vec<String>,
    /// It keeps a signature chain (its head is saved when its processors are dropped).
    pub(super) chained: bool,
}

/// What runs, as far as planning is concerned.
#[derive(Clone, Debug, Default)]
pub(super) struct Running {
    /// Exporters by id.
    pub(super) exporters: HashMap<String, ExporterFacts>,
    /// Pipelines by name.
    pub(super) pipelines: HashMap<String, PipelineFacts>,
    /// Receivers by id, with their config block.
    pub(super) receivers: HashMap<String, Value>,
}

/// What happens to one exporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ExporterPlan {
    /// Unchanged: keeps running with its queue.
    Keep,
    /// New.
    Start,
    /// Changed: a new instance replaces the running one; `after_close` when the old disk queue
    /// must close before the new one can open its directory (intake pauses meanwhile).
    Replace {
        /// The old instance closes first.
        after_close: bool,
    },
}

/// What happens to one pipeline.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct PipelinePlan {
    /// Its name.
    pub(super) name: String,
    /// Its processors in the new config: (id, config block).
    pub(super) processors: Vec<(String, Value)>,
    /// Unchanged, and so are all its exporters: the running instance is kept.
    pub(super) reuse: bool,
    /// Changed while the old instance keeps a signature chain: its processors are built only
    /// after the old ones were dropped (intake pauses meanwhile).
    pub(super) chained: bool,
}

/// What happens to one receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReceiverPlan {
    /// Unchanged: keeps its sockets; only its pipelines are swapped.
    Keep,
    /// New.
    Start,
    /// Changed: stopped (requests in flight finish) and started again.
    Restart,
}

/// A reload, planned.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct ReloadPlan {
    /// Exporters some pipeline uses, in config order.
    pub(super) exporters: Vec<(String, ExporterPlan)>,
    /// Pipelines, in config order.
    pub(super) pipelines: Vec<PipelinePlan>,
    /// Receivers some pipeline lists, in config order.
    pub(super) receivers: Vec<(String, ReceiverPlan)>,
    /// Running exporters the new config does not use.
    pub(super) stopped_exporters: Vec<String>,
    /// Running pipelines the new config does not have.
    pub(super) stopped_pipelines: Vec<String>,
    /// Running receivers the new config does not use.
    pub(super) stopped_receivers: Vec<String>,
}

impl ReloadPlan {
    /// Exporters whose disk queue must close before their replacement opens it.
    pub(super) fn closes_first(&self) -> impl Iterator<Item = &str> {
        self.exporters
            .iter()
            .filter(|(_, p)| *p == ExporterPlan::Replace { after_close: true })
            .map(|(id, _)| id.as_str())
    }

    /// Pipelines whose signature chain is handed over.
    pub(super) fn chained(&self) -> impl Iterator<Item = &PipelinePlan> {
        self.pipelines.iter().filter(|p| p.chained)
    }

    /// Whether intake pauses while locked state is handed over.
    pub(super) fn pauses(&self) -> bool {
        self.closes_first().next().is_some() || self.chained().next().is_some()
    }

    /// The plan for exporter `id`, when some pipeline uses it.
    #[cfg(test)]
    pub(super) fn exporter(&self, id: &str) -> Option<ExporterPlan> {
        self.exporters
            .iter()
            .find(|(e, _)| e == id)
            .map(|(_, p)| *p)
    }

    /// One line for the log: what changes.
    pub(super) fn describe(&self) -> String {
        let exporters = |want: fn(&ExporterPlan) -> bool| -> Vec<&str> {
            self.exporters
                .iter()
                .filter(|(_, p)| want(p))
                .map(|(id, _)| id.as_str())
                .collect()
        };
        let receivers = |want: ReceiverPlan| -> Vec<&str> {
            self.receivers
                .iter()
                .filter(|(_, p)| *p == want)
                .map(|(id, _)| id.as_str())
                .collect()
        };
        let pipelines: Vec<&str> = self
            .pipelines
            .iter()
            .filter(|p| !p.reuse)
            .map(|p| p.name.as_str())
            .collect();
        format!(
            "exporters started {:?} replaced {:?} stopped {:?}; pipelines (re)built {:?} stopped {:?}; receivers started {:?} restarted {:?} stopped {:?}",
            exporters(|p| *p == ExporterPlan::Start),
            exporters(|p| matches!(p, ExporterPlan::Replace { .. })),
            self.stopped_exporters,
            pipelines,
            self.stopped_pipelines,
            receivers(ReceiverPlan::Start),
            receivers(ReceiverPlan::Restart),
            self.stopped_receivers,
        )
    }
}

/// The config block of `id` in `map` (`Null` when absent).
pub(super) fn raw_of(map: &HashMap<String, Value>, id: &str) -> Value {
    map.get(id).cloned().unwrap_or(Value::Null)
}

/// Plans bringing what runs (`old`) to `new`.
pub(super) fn plan(old: &Running, new: &LoadedConfig) -> ReloadPlan {
    let exporters = plan_exporters(old, new);
    let keep = |id: &str| {
        exporters
            .iter()
            .any(|(e, p)| e == id && *p == ExporterPlan::Keep)
    };
    let pipelines: Vec<PipelinePlan> = new
        .service
        .pipelines
        .iter()
        .map(|(name, config)| {
            let processors: Vec<(String, Value)> = config
                .processors
                .iter()
                .map(|pid| (pid.clone(), raw_of(&new.raw.processors, pid)))
                .collect();
            let running = old.pipelines.get(name);
            let reuse = running.is_some_and(|o| {
                o.processors == processors
                    && o.exporters == config.exporters
                    && config.exporters.iter().all(|e| keep(e))
            });
            let chained = !reuse && running.is_some_and(|o| o.chained);
            PipelinePlan {
                name: name.clone(),
                processors,
                reuse,
                chained,
            }
        })
        .collect();
    let receivers = plan_receivers(old, new);
    ReloadPlan {
        stopped_exporters: gone(old.exporters.keys(), |id| {
            !exporters.iter().any(|(e, _)| e == id)
        }),
        stopped_pipelines: gone(old.pipelines.keys(), |name| {
            !new.service.pipelines.contains_key(name)
        }),
        stopped_receivers: gone(old.receivers.keys(), |id| {
            !receivers.iter().any(|(r, _)| r == id)
        }),
        exporters,
        pipelines,
        receivers,
    }
}

fn plan_exporters(old: &Running, new: &LoadedConfig) -> Vec<(String, ExporterPlan)> {
    let used = |id: &str| {
        new.service
            .pipelines
            .values()
            .any(|p| p.exporters.iter().any(|e| e == id))
    };
    new.exporters
        .iter()
        .filter(|(id, _)| used(&id.id))
        .map(|(id, spec)| {
            let raw = raw_of(&new.raw.exporters, &id.id);
            let policy = spec.delivery.sending.batch_policy();
            let plan = match old.exporters.get(&id.id) {
                Some(o) if o.raw == raw && o.policy == policy => ExporterPlan::Keep,
                Some(o) => ExporterPlan::Replace {
                    after_close: o.durable && spec.delivery.queue.kind == QueueType::Disk,
                },
                None => ExporterPlan::Start,
            };
            (id.id.clone(), plan)
        })
        .collect()
}

fn plan_receivers(old: &Running, new: &LoadedConfig) -> Vec<(String, ReceiverPlan)> {
    let listed = |id: &str| {
        new.service
            .pipelines
            .values()
            .any(|p| p.receivers.iter().any(|r| r == id))
    };
    new.receivers
        .iter()
        .filter(|(id, _)| listed(&id.id))
        .map(|(id, _)| {
            let plan = match old.receivers.get(&id.id) {
                Some(raw) if *raw == raw_of(&new.raw.receivers, &id.id) => ReceiverPlan::Keep,
                Some(_) => ReceiverPlan::Restart,
                None => ReceiverPlan::Start,
            };
            (id.id.clone(), plan)
        })
        .collect()
}

/// The sorted names among `running` that `is_gone`.
fn gone<'a>(
    running: impl Iterator<Item = &'a String>,
    is_gone: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut names: Vec<String> = running.filter(|n| is_gone(n)).cloned().collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests;
