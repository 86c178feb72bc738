//! Prometheus exposition of the `metrics` facade: the recorder `siemrelay run` installs when the
//! admin listener is configured, and the gauges read from the exporters at each scrape (queue
//! depth and capacity, status), so they are exact without any work on the data path.
//! Every name and label is listed in `docs/operations.md`.

use crate::runtime::Topology;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::time::Duration;

/// Buckets of `siemrelay_exporter_request_duration_seconds`.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// `siemrelay_config_reload_total{result="success|failure"}`.
pub const CONFIG_RELOADS: &str = "siemrelay_config_reload_total";

/// The installed Prometheus recorder.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the global recorder (once per process) and starts its upkeep task.
    pub fn install() -> anyhow::Result<Metrics> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("siemrelay_exporter_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )?
            .install_recorder()
            .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
        describe();
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        Ok(Metrics { handle })
    }

    /// The Prometheus text exposition, with the per-exporter gauges read now.
    pub fn render(&self, topology: &Topology) -> String {
        for exporter in &topology.exporters {
            let depth = exporter.handle.queue().depth();
            let label = || [("exporter", exporter.id.clone())];
            metrics::gauge!("siemrelay_exporter_queue_events", &label()).set(depth.events as f64);
            metrics::gauge!("siemrelay_exporter_queue_bytes", &label()).set(depth.bytes as f64);
            metrics::gauge!("siemrelay_exporter_queue_capacity_events", &label())
                .set(depth.max_events as f64);
            metrics::gauge!("siemrelay_exporter_queue_capacity_bytes", &label())
                .set(depth.max_bytes as f64);
            metrics::gauge!("siemrelay_exporter_status", &label())
                .set(exporter.handle.status().state().gauge());
        }
        self.handle.render()
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "siemrelay_receiver_events_received_total",
        "Events parsed by a receiver"
    );
    describe_counter!(
        "siemrelay_receiver_events_refused_total",
        "Events a receiver refused, by reason"
    );
    describe_counter!(
        "siemrelay_pipeline_events_in_total",
        "Events that entered a pipeline"
    );
    describe_counter!(
        "siemrelay_pipeline_events_out_total",
        "Events that left a pipeline's processors"
    );
    describe_counter!(
        "siemrelay_pipeline_events_refused_total",
        "Events refused because an exporter queue was full or closed"
    );
    describe_counter!(
        "siemrelay_processor_events_in_total",
        "Events a processor received"
    );
    describe_counter!(
        "siemrelay_processor_events_out_total",
        "Events a processor passed on"
    );
    describe_counter!(
        "siemrelay_processor_events_dropped_total",
        "Events a processor dropped"
    );
    describe_counter!(
        "siemrelay_exporter_events_sent_total",
        "Events delivered to the SIEM"
    );
    describe_counter!(
        "siemrelay_exporter_events_failed_total",
        "Events the SIEM refused permanently"
    );
    describe_counter!(
        "siemrelay_exporter_events_retried_total",
        "Event deliveries that will be retried"
    );
    describe_counter!(
        "siemrelay_exporter_events_dead_lettered_total",
        "Events written to the dead-letter file"
    );
    describe_counter!(
        "siemrelay_exporter_events_dropped_total",
        "Events dropped from a full queue (when_full: drop_oldest)"
    );
    describe_counter!(
        "siemrelay_exporter_requests_total",
        "Requests to the SIEM, by outcome"
    );
    describe_histogram!(
        "siemrelay_exporter_request_duration_seconds",
        metrics::Unit::Seconds,
        "Request latency"
    );
    describe_gauge!(
        "siemrelay_exporter_queue_events",
        "Events queued or in flight"
    );
    describe_gauge!(
        "siemrelay_exporter_queue_bytes",
        "Estimated bytes queued or in flight"
    );
    describe_gauge!(
        "siemrelay_exporter_queue_capacity_events",
        "Queue capacity in events"
    );
    describe_gauge!(
        "siemrelay_exporter_queue_capacity_bytes",
        "Queue capacity in bytes"
    );
    describe_gauge!(
        "siemrelay_exporter_status",
        "0 active, 1 degraded, 2 failed, 3 disabled"
    );
    describe_counter!(CONFIG_RELOADS, "Configuration reloads, by result");
}
