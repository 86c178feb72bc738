//! The JSON shapes of the admin API (kept in step with `docs/openapi.json`).

use crate::config::expand::scrub;
use crate::runtime::{ExporterView, PipelineView};
use serde::{Deserialize, Serialize};
use siemrelay_exporters::delivery::disk_queue::LossEntry;
use siemrelay_exporters::delivery::{ExporterState, QueueDepth};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

/// `Exporter`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Exporter {
    /// Component id.
    pub id: String,
    /// Exporter type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `active`, `degraded`, `failed` or `disabled`.
    pub status: String,
    /// Why the status is not `active` (secrets scrubbed).
    #[serde(default)]
    pub status_reason: Option<String>,
    /// Failed requests since start (requests, not events).
    pub failure_count: u64,
    /// Last error (secrets scrubbed).
    pub last_error: Option<String>,
    /// When the last error happened (RFC 3339).
    #[serde(default)]
    pub last_error_at: Option<String>,
    /// False once a success followed the last error (it is past).
    #[serde(default)]
    pub last_error_current: bool,
    /// Last successful delivery (RFC 3339).
    pub last_success: Option<String>,
    /// Events delivered since start.
    pub events_sent: u64,
    /// Events whose delivery was retried since start (events, not requests).
    pub events_retried: u64,
    /// Events dead-lettered since start.
    pub events_dead_lettered: u64,
    /// Entries in the dead-letter file now (follows `dlq replay` and `dlq purge`).
    pub dead_letter_count: u64,
    /// Share of the events with a final outcome in the last 20 deliveries that were
    /// dead-lettered.
    #[serde(default)]
    pub recent_dead_letter_ratio: f64,
    /// Losses the disk queue found when it opened, until an operator acknowledges them.
    #[serde(default)]
    pub queue_losses: Vec<LossEntry>,
    /// Something to know that does not change the status (a disk queue's volume smaller than
    /// its `max_size`).
    #[serde(default)]
    pub notice: Option<String>,
    /// Queue fill level and capacity.
    pub queue: Queue,
    /// Pipelines delivering to it.
    pub pipelines: Vec<String>,
}

/// `Exporter.queue`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Queue {
    /// Events queued or in flight.
    pub events: u64,
    /// Estimated bytes queued or in flight.
    pub bytes: u64,
    /// Event capacity.
    pub max_events: u64,
    /// Byte capacity.
    pub max_bytes: u64,
}

impl From<QueueDepth> for Queue {
    fn from(depth: QueueDepth) -> Queue {
        Queue {
            events: depth.events as u64,
            bytes: depth.bytes as u64,
            max_events: depth.max_events as u64,
            max_bytes: depth.max_bytes as u64,
        }
    }
}

/// The API word for a state.
pub fn state_name(state: ExporterState) -> &'static str {
    state.name()
}

impl Exporter {
    /// The API form of a running exporter; `secrets` are scrubbed from error texts.
    pub fn of(view: &ExporterView, secrets: &[String]) -> Exporter {
        let handle = &view.handle;
        let status = handle.status().snapshot();
        Exporter {
            id: view.id.clone(),
            kind: view.kind.clone(),
            status: state_name(status.state).to_string(),
            status_reason: status.reason.map(|e| scrub(&e, secrets)),
            failure_count: status.failure_count,
            last_error: status.last_error.map(|e| scrub(&e, secrets)),
            last_error_at: status.last_error_at,
            last_error_current: status.last_error_current,
            last_success: status.last_success,
            events_sent: status.events_sent,
            events_retried: status.events_retried,
            events_dead_lettered: status.events_dead_lettered,
            dead_letter_count: handle.dead_letter().count(),
            recent_dead_letter_ratio: status.recent_dead_letter_ratio,
            queue_losses: status.queue_losses,
            notice: status.notice,
            queue: handle.queue().depth().into(),
            pipelines: view.pipelines.clone(),
        }
    }
}

/// `GET /api/v1/exporters`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExporterList {
    /// Every running exporter.
    pub exporters: Vec<Exporter>,
}

/// `GET /api/v1/pipelines` item.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pipeline {
    /// Pipeline name.
    pub name: String,
    /// Receivers feeding it.
    pub receivers: Vec<PipelineReceiver>,
    /// Processors in order.
    pub processors: Vec<PipelineProcessor>,
    /// Exporters it delivers to.
    pub exporters: Vec<PipelineExporter>,
    /// Events that entered it.
    pub events_in: u64,
    /// Events that left its processors.
    pub events_out: u64,
}

/// A receiver of a pipeline.
#[derive(Debug, Serialize, Deserialize)]
pub struct PipelineReceiver {
    /// Component id.
    pub id: String,
    /// Receiver type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Events accepted from it (all its pipelines).
    pub events_received: u64,
    /// Events it refused since start, by reason (`auth`, `too_large`, `backpressure`, …).
    pub events_refused: BTreeMap<String, u64>,
}

/// A processor of a pipeline.
#[derive(Debug, Serialize, Deserialize)]
pub struct PipelineProcessor {
    /// Component id.
    pub id: String,
    /// Processor type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Events it dropped in this pipeline since start (a filter's drops).
    pub events_dropped: u64,
}

/// What the metrics recorder counted that the pipeline view shows.
#[derive(Debug, Default)]
pub struct PipelineCounts {
    /// Refusals by receiver, then reason.
    pub refusals: HashMap<String, BTreeMap<String, u64>>,
    /// Drops by (pipeline, processor).
    pub drops: HashMap<(String, String), u64>,
}

/// An exporter of a pipeline.
#[derive(Debug, Serialize, Deserialize)]
pub struct PipelineExporter {
    /// Component id.
    pub id: String,
    /// Events it delivered (all its pipelines).
    pub events_sent: u64,
    /// Its state.
    pub status: String,
}

impl Pipeline {
    /// The API form of a pipeline, with the refusal and drop counts in `counts`.
    pub fn of(
        view: &PipelineView,
        topology: &crate::runtime::Topology,
        counts: &PipelineCounts,
    ) -> Pipeline {
        Pipeline {
            name: view.name.clone(),
            receivers: view
                .receivers
                .iter()
                .map(|r| PipelineReceiver {
                    id: r.id.clone(),
                    kind: r.kind.clone(),
                    events_received: r.received.load(Ordering::Relaxed),
                    events_refused: counts.refusals.get(&r.id).cloned().unwrap_or_default(),
                })
                .collect(),
            processors: view
                .processors
                .iter()
                .map(|(id, kind)| PipelineProcessor {
                    id: id.clone(),
                    kind: kind.clone(),
                    events_dropped: counts
                        .drops
                        .get(&(view.name.clone(), id.clone()))
                        .copied()
                        .unwrap_or(0),
                })
                .collect(),
            exporters: view
                .exporters
                .iter()
                .filter_map(|id| topology.exporter(id))
                .map(|e| {
                    let status = e.handle.status().snapshot();
                    PipelineExporter {
                        id: e.id.clone(),
                        events_sent: status.events_sent,
                        status: state_name(status.state).to_string(),
                    }
                })
                .collect(),
            events_in: view.counters.events_in.load(Ordering::Relaxed),
            events_out: view.counters.events_out.load(Ordering::Relaxed),
        }
    }
}

/// `GET /api/v1/pipelines`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PipelineList {
    /// Every pipeline.
    pub pipelines: Vec<Pipeline>,
}

/// `PUT /api/v1/exporters/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterChange {
    /// The exporter's config block, as in the YAML file.
    pub config: serde_json::Value,
    /// Pipelines that deliver to it (default: the ones that already do; required for a new one).
    #[serde(default)]
    pub pipelines: Option<Vec<String>>,
}

/// An error answer: a message and the offending key (config key path or request field).
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    /// What is wrong.
    pub error: String,
    /// Where: `exporters.x.endpoint`, `pipelines[0]`, `id`, or "" for the request as a whole.
    pub key: String,
    /// Every config problem, when the request was a config change.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<KeyedError>,
}

/// One config problem.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyedError {
    /// Key path.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// `GET /api/v1/info`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Info {
    /// siemrelay's version.
    pub version: String,
    /// The git commit it was built from (12 hex digits), or `unknown`.
    pub commit: String,
    /// When this siemrelay started (RFC 3339, UTC).
    pub started_at: String,
    /// Seconds since then.
    pub uptime_seconds: u64,
    /// The config file it runs, or `<embedded default config>`.
    pub config_path: String,
    /// `service.admin.allow_config_changes`: whether changes (and dead-letter replays) are
    /// allowed through the API.
    pub allow_config_changes: bool,
}

/// One dead-lettered event, as listed.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetterItem {
    /// When it was dead-lettered (RFC 3339).
    pub time: String,
    /// Delivery attempts made.
    pub attempts: u32,
    /// The last error (secrets scrubbed).
    pub error: String,
    /// The event's id.
    pub event_id: Option<String>,
    /// Its type.
    pub event_type: Option<String>,
    /// Its severity text.
    pub severity: Option<String>,
    /// Its summary.
    pub summary: Option<String>,
}

/// A replay of dead-lettered events through the API.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplayStatus {
    /// `running`, `done` or `failed`.
    pub state: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Events resent.
    pub events: u64,
    /// Of those, delivered.
    pub sent: u64,
    /// Of those, dead-lettered again.
    pub dead_lettered: u64,
    /// Why it failed (secrets scrubbed).
    pub error: Option<String>,
    /// Things worth knowing (a file kept for the next replay).
    pub warnings: Vec<String>,
}

/// `GET /api/v1/exporters/{id}/dead_letters`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetterList {
    /// The exporter.
    pub exporter: String,
    /// Its live dead-letter file.
    pub file: String,
    /// Entries in its dead-letter files.
    pub total: u64,
    /// The newest entries, newest first (at most `limit`).
    pub entries: Vec<DeadLetterItem>,
    /// Unreadable lines (`file:line: why`; at most 20).
    pub problems: Vec<String>,
    /// The latest replay through the API, if any.
    pub replay: Option<ReplayStatus>,
}
