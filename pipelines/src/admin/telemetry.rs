//! Prometheus exposition of the `metrics` facade: the recorder `siemrelay run` installs when the
//! admin listener is configured, the standard `process_*` metrics and `siemrelay_build_info`,
//! and the gauges read from the exporters at each scrape (queue depth and capacity, status), so
//! they are exact without any work on the data path. Families are written in name order, so two
//! scrapes list them alike. A few counters the status page shows are also kept where the admin
//! API can read them (see [`Observed`]). Every name and label is listed in
//! `docs/operations.md`.

use crate::runtime::Topology;
use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Buckets of `siemrelay_exporter_request_duration_seconds`.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// `siemrelay_config_reload_total{result="success|failure"}`.
pub const CONFIG_RELOADS: &str = "siemrelay_config_reload_total";

/// `siemrelay_build_info{version,commit}`, always 1.
pub const BUILD_INFO: &str = "siemrelay_build_info";

/// `siemrelay_receiver_events_refused_total{receiver,reason}`.
pub const RECEIVER_REFUSALS: &str = "siemrelay_receiver_events_refused_total";

/// `siemrelay_processor_events_dropped_total{processor,pipeline}`.
pub const PROCESSOR_DROPS: &str = "siemrelay_processor_events_dropped_total";

/// The commit siemrelay was built from (12 hex digits), or `unknown` outside a git checkout.
pub const COMMIT: &str = env!("SIEMRELAY_GIT_COMMIT");

/// The installed Prometheus recorder.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    observed: Arc<Observed>,
    process: Arc<metrics_process::Collector>,
}

impl Metrics {
    /// Installs the global recorder (once per process) and starts its upkeep task.
    pub fn install() -> anyhow::Result<Metrics> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("siemrelay_exporter_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )?
            .build_recorder();
        let handle = recorder.handle();
        let observed = Arc::new(Observed::default());
        metrics::set_global_recorder(Recording {
            prometheus: recorder,
            observed: observed.clone(),
        })
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
        describe();
        let process = Arc::new(metrics_process::Collector::default());
        process.describe();
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => COMMIT)
            .set(1.0);
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        Ok(Metrics {
            handle,
            observed,
            process,
        })
    }

    /// The Prometheus text exposition, with the per-exporter gauges and the process metrics
    /// read now, families in name order.
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
        self.process.collect();
        if let Some(figures) = super::allocator::AllocatorFigures::read() {
            figures.record();
        }
        stable_order(&self.handle.render())
    }

    /// Events refused per receiver, by reason (`siemrelay_receiver_events_refused_total`).
    pub fn refusals(&self) -> HashMap<String, BTreeMap<String, u64>> {
        let mut out: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
        for (labels, value) in self.observed.values(RECEIVER_REFUSALS) {
            let (Some(receiver), Some(reason)) = (labels.get("receiver"), labels.get("reason"))
            else {
                continue;
            };
            *out.entry(receiver.clone())
                .or_default()
                .entry(reason.clone())
                .or_default() += value;
        }
        out
    }

    /// Events dropped per (pipeline, processor) (`siemrelay_processor_events_dropped_total`).
    pub fn drops(&self) -> HashMap<(String, String), u64> {
        let mut out = HashMap::new();
        for (labels, value) in self.observed.values(PROCESSOR_DROPS) {
            if let (Some(pipeline), Some(processor)) =
                (labels.get("pipeline"), labels.get("processor"))
            {
                *out.entry((pipeline.clone(), processor.clone()))
                    .or_default() += value;
            }
        }
        out
    }
}

/// Rewrites an exposition with its families sorted by name and, inside a family, its series
/// sorted by label set (a histogram's bucket lines stay together and in order). The exporter
/// writes families in hash-map order, which changes between scrapes.
pub fn stable_order(text: &str) -> String {
    let mut families: Vec<(String, String)> = Vec::new();
    for block in text.split("\n\n") {
        let block = block.trim_matches('\n');
        if block.is_empty() {
            continue;
        }
        let (header, samples): (Vec<&str>, Vec<&str>) =
            block.lines().partition(|line| line.starts_with('#'));
        let name = header
            .iter()
            .find_map(|line| {
                line.strip_prefix("# TYPE ")
                    .or_else(|| line.strip_prefix("# HELP "))
            })
            .or(samples.first().copied())
            .and_then(|rest| rest.split(['{', ' ']).next())
            .unwrap_or_default()
            .to_string();
        // A histogram's (or summary's) series is several lines that end with its `_count`.
        let grouped = header.iter().any(|line| {
            line.starts_with("# TYPE ")
                && (line.ends_with(" histogram") || line.ends_with(" summary"))
        });
        let mut groups: Vec<Vec<&str>> = Vec::new();
        let mut open = false;
        for line in samples {
            if open && let Some(group) = groups.last_mut() {
                group.push(line);
            } else {
                groups.push(vec![line]);
            }
            let sample = line.split(['{', ' ']).next().unwrap_or_default();
            open = grouped && !sample.ends_with("_count");
        }
        groups.sort_by_key(|group| series_labels(group.last().copied().unwrap_or_default()));
        let lines: Vec<&str> = header
            .into_iter()
            .chain(groups.into_iter().flatten())
            .collect();
        families.push((name, lines.join("\n")));
    }
    families.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = String::new();
    for (_, block) in families {
        text.push_str(&block);
        text.push_str("\n\n");
    }
    text
}

/// An exposition with every secret masked where one can appear: in label values (component
/// ids, reasons). Metric names, help texts and sample values are siemrelay's own words and
/// numbers; scrubbing them too would mask any word or number that happens to be the value of an
/// environment variable the config reads (`${env:QUEUE}` = `memory` turned
/// `process_resident_memory_bytes` into `process_resident_***_bytes`).
pub fn scrub_label_values(text: &str) -> String {
    scrub_label_values_with(&siemrelay_core::scrub::current(), text)
}

/// [`scrub_label_values`] with a given scrubber.
fn scrub_label_values_with(scrubber: &siemrelay_core::scrub::Scrubber, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match (line.starts_with('#'), line.find('{'), line.rfind('}')) {
            (false, Some(open), Some(close)) if open < close => {
                out.push_str(&line[..open]);
                out.push_str(&scrubber.scrub(&line[open..=close]));
                out.push_str(&line[close + 1..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// The label set of a sample line (`{…}` without any `le`), for sorting.
fn series_labels(line: &str) -> String {
    match (line.find('{'), line.rfind('}')) {
        (Some(open), Some(close)) if open < close => line[open + 1..close].to_string(),
        _ => String::new(),
    }
}

/// The recorder installed: the Prometheus recorder, with the counters the admin API shows also
/// counted in [`Observed`].
struct Recording {
    prometheus: PrometheusRecorder,
    observed: Arc<Observed>,
}

impl metrics::Recorder for Recording {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description)
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description)
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_histogram(key, unit, description)
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let counter = self.prometheus.register_counter(key, metadata);
        match key.name() {
            RECEIVER_REFUSALS | PROCESSOR_DROPS => self.observed.tee(key, counter),
            _ => counter,
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.prometheus.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.prometheus.register_histogram(key, metadata)
    }
}

/// Counters the admin API reads back: each increment goes to the Prometheus counter and to a
/// total kept here (one map look-up per registration, under a read lock).
#[derive(Default)]
struct Observed {
    counters: RwLock<HashMap<Key, Arc<Tee>>>,
}

/// A counter that counts into the Prometheus counter and into its own total.
struct Tee {
    prometheus: Counter,
    total: AtomicU64,
}

impl CounterFn for Tee {
    fn increment(&self, value: u64) {
        self.prometheus.increment(value);
        self.total.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.prometheus.absolute(value);
        self.total.fetch_max(value, Ordering::Relaxed);
    }
}

impl Observed {
    fn tee(&self, key: &Key, prometheus: Counter) -> Counter {
        let read = self.counters.read().unwrap_or_else(|p| p.into_inner());
        if let Some(tee) = read.get(key) {
            return Counter::from_arc(tee.clone());
        }
        drop(read);
        let mut write = self.counters.write().unwrap_or_else(|p| p.into_inner());
        let tee = write
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Tee {
                    prometheus,
                    total: AtomicU64::new(0),
                })
            })
            .clone();
        Counter::from_arc(tee)
    }

    /// Every series of `name`: its labels and total.
    fn values(&self, name: &str) -> Vec<(HashMap<String, String>, u64)> {
        let read = self.counters.read().unwrap_or_else(|p| p.into_inner());
        read.iter()
            .filter(|(key, _)| key.name() == name)
            .map(|(key, tee)| {
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_string(), l.value().to_string()))
                    .collect();
                (labels, tee.total.load(Ordering::Relaxed))
            })
            .collect()
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
        "siemrelay_receiver_events_dropped_total",
        "Events a receiver lost for good, by reason (syslog over UDP, which has no acknowledgement)"
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
    describe_gauge!(
        siemrelay_core::admission::LIMIT_GAUGE,
        metrics::Unit::Bytes,
        "service.memory_limit: memory receivers may hold for requests not yet queued"
    );
    describe_gauge!(
        siemrelay_core::admission::RESERVED_GAUGE,
        metrics::Unit::Bytes,
        "Memory receivers hold now for requests not yet queued (under service.memory_limit)"
    );
    super::allocator::describe();
    describe_counter!(CONFIG_RELOADS, "Configuration reloads, by result");
    describe_counter!(
        crate::runtime::state::STATE_WRITE_ERRORS,
        "Failed writes of the exporter state file (<storage>/state/exporters.json)"
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels say which siemrelay version and commit is running"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE_A: &str = "# HELP b_total B\n# TYPE b_total counter\nb_total{x=\"2\"} 1\nb_total{x=\"1\"} 2\n\n\
        # TYPE h histogram\nh_bucket{e=\"z\",le=\"0.5\"} 1\nh_bucket{e=\"z\",le=\"10\"} 2\nh_bucket{e=\"z\",le=\"+Inf\"} 2\nh_sum{e=\"z\"} 3\nh_count{e=\"z\"} 2\n\
        h_bucket{e=\"a\",le=\"0.5\"} 0\nh_bucket{e=\"a\",le=\"10\"} 1\nh_bucket{e=\"a\",le=\"+Inf\"} 1\nh_sum{e=\"a\"} 4\nh_count{e=\"a\"} 1\n\n\
        # TYPE a gauge\na 1\n\n";

    #[test]
    fn only_label_values_are_scrubbed_so_a_word_or_number_from_the_environment_stays() {
        let scrubber = siemrelay_core::scrub::Scrubber::new(["memory", "18088", "tok-3f9a2c"]);
        let text = "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
            # TYPE process_resident_memory_bytes gauge\n\
            process_resident_memory_bytes 18088\n\
            siemrelay_exporter_events_sent_total{exporter=\"webhook/tok-3f9a2c\"} 180880\n\
            siemrelay_build_info{version=\"0.1.0\",commit=\"memory\"} 1\n";
        let scrubbed = scrub_label_values_with(&scrubber, text);
        assert_eq!(
            scrubbed,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
            # TYPE process_resident_memory_bytes gauge\n\
            process_resident_memory_bytes 18088\n\
            siemrelay_exporter_events_sent_total{exporter=\"webhook/***\"} 180880\n\
            siemrelay_build_info{version=\"0.1.0\",commit=\"***\"} 1\n"
        );
    }

    #[test]
    fn families_and_series_come_out_in_one_order() {
        let sorted = stable_order(SCRAPE_A);
        let expected = "# TYPE a gauge\na 1\n\n# HELP b_total B\n# TYPE b_total counter\nb_total{x=\"1\"} 2\nb_total{x=\"2\"} 1\n\n\
            # TYPE h histogram\nh_bucket{e=\"a\",le=\"0.5\"} 0\nh_bucket{e=\"a\",le=\"10\"} 1\nh_bucket{e=\"a\",le=\"+Inf\"} 1\nh_sum{e=\"a\"} 4\nh_count{e=\"a\"} 1\n\
            h_bucket{e=\"z\",le=\"0.5\"} 1\nh_bucket{e=\"z\",le=\"10\"} 2\nh_bucket{e=\"z\",le=\"+Inf\"} 2\nh_sum{e=\"z\"} 3\nh_count{e=\"z\"} 2\n\n";
        assert_eq!(sorted, expected);
        // The same families in another order give the same text.
        let blocks: Vec<&str> = SCRAPE_A.split("\n\n").filter(|b| !b.is_empty()).collect();
        let reversed: String = blocks.iter().rev().map(|b| format!("{b}\n\n")).collect();
        assert_eq!(stable_order(&reversed), expected);
    }
}
