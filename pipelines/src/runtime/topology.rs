//! A read-only picture of the running graph for the admin API, swapped whole on every reload.

use super::PipelineCounters;
use siemrelay_exporters::delivery::ExporterHandle;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// What is running.
#[derive(Clone, Default)]
pub struct Topology {
    /// The running exporters, in config order.
    pub exporters: Vec<ExporterView>,
    /// The pipelines, in config order.
    pub pipelines: Vec<PipelineView>,
    /// Values from the environment or files, to scrub from anything shown.
    pub secrets: Arc<Vec<String>>,
}

impl Topology {
    /// The running exporter with this id.
    pub fn exporter(&self, id: &str) -> Option<&ExporterView> {
        self.exporters.iter().find(|e| e.id == id)
    }
}

/// One running exporter.
#[derive(Clone)]
pub struct ExporterView {
    /// Component id (`splunk_hec/prod`).
    pub id: String,
    /// Its type (`splunk_hec`).
    pub kind: String,
    /// The running exporter.
    pub handle: Arc<ExporterHandle>,
    /// Events queued for it since start (all its pipelines).
    pub events_queued: Arc<AtomicU64>,
    /// Pipelines that deliver to it.
    pub pipelines: Vec<String>,
    /// `sending.timeout`, for test deliveries.
    pub timeout: Duration,
    /// A `file` exporter's settings, for test deliveries (which never write into a file whose
    /// events are signed).
    pub file: Option<siemrelay_exporters::file::FileConfig>,
}

/// One pipeline.
#[derive(Clone)]
pub struct PipelineView {
    /// Its name.
    pub name: String,
    /// Receivers feeding it.
    pub receivers: Vec<ReceiverView>,
    /// Processors in order: (id, type).
    pub processors: Vec<(String, String)>,
    /// Exporter ids it delivers to.
    pub exporters: Vec<String>,
    /// Events in and out.
    pub counters: Arc<PipelineCounters>,
}

/// One running receiver.
#[derive(Clone)]
pub struct ReceiverView {
    /// Component id.
    pub id: String,
    /// Its type.
    pub kind: String,
    /// Events it handed to the pipelines that were accepted.
    pub received: Arc<AtomicU64>,
}

/// The type part of a component id.
pub(super) fn kind_of(id: &str) -> String {
    id.split_once('/').map_or(id, |(kind, _)| kind).to_string()
}
