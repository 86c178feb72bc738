//! A short history of each exporter's throughput for the status page's charts
//! (`GET /api/v1/metrics/history`): one reading of the counters every [`SAMPLE_INTERVAL`], the
//! last [`MAX_SAMPLES`] intervals kept (15 minutes), so a page opened now shows the past.
//!
//! One timer task takes the readings from the counters the data path updates anyway (relaxed
//! atomics and the exporters' status); the data path never sees this ring.

use super::Topology;
use serde::{Deserialize, Serialize};
use siemrelay_core::Timestamp;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often the counters are read.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);
/// Intervals kept: 15 minutes of 10 s.
pub const MAX_SAMPLES: usize = 90;
/// A reading taken for a request is shown as the interval in progress only when at least this
/// long has passed since the last sample (a shorter one gives a meaningless rate).
const MIN_PARTIAL: Duration = Duration::from_secs(1);

/// The counters of one exporter at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExporterCounters {
    /// Events queued for it since start.
    pub events_in: u64,
    /// Events it delivered since start.
    pub events_out: u64,
    /// Requests that failed since start.
    pub errors: u64,
    /// Events in its queue now.
    pub queue_events: u64,
}

/// Every exporter's counters at one moment.
#[derive(Clone, Debug)]
pub struct Reading {
    /// Wall-clock time.
    pub at: Timestamp,
    /// Monotonic time (interval lengths).
    pub instant: Instant,
    /// By exporter id.
    pub exporters: HashMap<String, ExporterCounters>,
}

impl Reading {
    /// Reads the running exporters' counters now.
    pub fn of(topology: &Topology) -> Reading {
        let exporters = topology
            .exporters
            .iter()
            .map(|view| {
                let status = view.handle.status().snapshot();
                let counters = ExporterCounters {
                    events_in: view.events_queued.load(Ordering::Relaxed),
                    events_out: status.events_sent,
                    errors: status.failure_count,
                    queue_events: view.handle.queue().depth().events as u64,
                };
                (view.id.clone(), counters)
            })
            .collect();
        Reading {
            at: Timestamp::now(),
            instant: Instant::now(),
            exporters,
        }
    }
}

/// `GET /api/v1/metrics/history`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricsHistory {
    /// Seconds between samples.
    pub interval_seconds: u64,
    /// Samples kept at most (besides the one in progress).
    pub max_samples: usize,
    /// Oldest first.
    pub samples: Vec<Sample>,
}

/// What happened in one interval.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    /// The end of the interval (RFC 3339).
    pub time: String,
    /// Its length in seconds.
    pub seconds: f64,
    /// True for the last sample when it is the interval in progress (up to the request).
    pub partial: bool,
    /// By exporter id: the exporters running at the end of the interval.
    pub exporters: BTreeMap<String, ExporterSample>,
}

/// One exporter in one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExporterSample {
    /// Events queued for it in the interval.
    pub events_in: u64,
    /// Events it delivered in the interval.
    pub events_out: u64,
    /// Requests that failed in the interval.
    pub errors: u64,
    /// Events in its queue at the end of the interval.
    pub queue_events: u64,
}

/// Growth of a counter; a counter that went down restarted (its exporter was replaced by a
/// reload) and its whole value is new.
fn growth(before: u64, after: u64) -> u64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

/// The interval from `before` to `after`.
fn sample(before: &Reading, after: &Reading, partial: bool) -> Sample {
    let exporters = after
        .exporters
        .iter()
        .map(|(id, now)| {
            let then = before.exporters.get(id).copied().unwrap_or_default();
            let sample = ExporterSample {
                events_in: growth(then.events_in, now.events_in),
                events_out: growth(then.events_out, now.events_out),
                errors: growth(then.errors, now.errors),
                queue_events: now.queue_events,
            };
            (id.clone(), sample)
        })
        .collect();
    Sample {
        time: after.at.to_rfc3339(),
        seconds: after
            .instant
            .saturating_duration_since(before.instant)
            .as_secs_f64(),
        partial,
        exporters,
    }
}

/// The last [`MAX_SAMPLES`] + 1 readings.
#[derive(Default)]
pub struct SampleRing {
    readings: Mutex<VecDeque<Reading>>,
}

impl SampleRing {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Reading>> {
        self.readings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a reading (the oldest goes when the ring is full).
    pub fn push(&self, reading: Reading) {
        let mut readings = self.lock();
        while readings.len() > MAX_SAMPLES {
            readings.pop_front();
        }
        readings.push_back(reading);
    }

    /// The samples between the readings kept, and the interval in progress up to `now` (when
    /// given and at least a second long).
    pub fn history(&self, now: Option<Reading>) -> MetricsHistory {
        let readings = self.lock();
        let mut samples: Vec<Sample> = readings
            .iter()
            .zip(readings.iter().skip(1))
            .map(|(before, after)| sample(before, after, false))
            .collect();
        if let (Some(last), Some(now)) = (readings.back(), now)
            && now.instant.saturating_duration_since(last.instant) >= MIN_PARTIAL
        {
            samples.push(sample(last, &now, true));
        }
        MetricsHistory {
            interval_seconds: SAMPLE_INTERVAL.as_secs(),
            max_samples: MAX_SAMPLES,
            samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(start: Instant, seconds: u64, exporters: &[(&str, u64, u64, u64, u64)]) -> Reading {
        Reading {
            at: Timestamp(1_780_000_000_000_000_000 + seconds as i64 * 1_000_000_000),
            instant: start + Duration::from_secs(seconds),
            exporters: exporters
                .iter()
                .map(|(id, events_in, events_out, errors, queue_events)| {
                    let counters = ExporterCounters {
                        events_in: *events_in,
                        events_out: *events_out,
                        errors: *errors,
                        queue_events: *queue_events,
                    };
                    (id.to_string(), counters)
                })
                .collect(),
        }
    }

    #[test]
    fn samples_are_the_growth_between_readings() {
        let ring = SampleRing::default();
        let t = Instant::now();
        ring.push(reading(t, 0, &[("a", 0, 0, 0, 0)]));
        ring.push(reading(t, 10, &[("a", 100, 60, 2, 40)]));
        // `a` was replaced by a reload (its status counters restarted), `b` is new.
        ring.push(reading(t, 20, &[("a", 150, 30, 0, 0), ("b", 7, 7, 1, 0)]));
        let history = ring.history(Some(reading(t, 23, &[("a", 160, 45, 0, 5)])));
        assert_eq!(history.interval_seconds, 10);
        assert_eq!(history.max_samples, MAX_SAMPLES);
        let a: Vec<ExporterSample> = history.samples.iter().map(|s| s.exporters["a"]).collect();
        assert_eq!(
            a,
            vec![
                ExporterSample {
                    events_in: 100,
                    events_out: 60,
                    errors: 2,
                    queue_events: 40
                },
                ExporterSample {
                    events_in: 50,
                    events_out: 30,
                    errors: 0,
                    queue_events: 0
                },
                ExporterSample {
                    events_in: 10,
                    events_out: 15,
                    errors: 0,
                    queue_events: 5
                },
            ]
        );
        assert_eq!(
            history.samples[1].exporters["b"].events_in, 7,
            "new: all of it"
        );
        assert!(!history.samples[2].exporters.contains_key("b"), "b is gone");
        assert_eq!(history.samples[0].seconds, 10.0);
        assert!(!history.samples[1].partial);
        assert!(history.samples[2].partial);
        assert_eq!(history.samples[2].seconds, 3.0);
    }

    #[test]
    fn the_ring_keeps_fifteen_minutes() {
        let ring = SampleRing::default();
        let t = Instant::now();
        for i in 0..200u64 {
            ring.push(reading(t, i * 10, &[("a", i * 5, i * 5, 0, 0)]));
        }
        let history = ring.history(None);
        assert_eq!(history.samples.len(), MAX_SAMPLES);
        assert!(
            history
                .samples
                .iter()
                .all(|s| s.exporters["a"].events_in == 5)
        );
        assert_eq!(
            history.samples.last().map(|s| s.time.clone()),
            Some(Timestamp(1_780_000_000_000_000_000 + 1990 * 1_000_000_000).to_rfc3339())
        );
        // A request right after a sample adds no partial interval.
        let now = reading(t, 1990, &[("a", 995, 995, 0, 0)]);
        assert_eq!(ring.history(Some(now)).samples.len(), MAX_SAMPLES);
    }
}
