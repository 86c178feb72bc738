//! Delivery settings common to every exporter: `sending`, `retry` and `queue`.

use serde::Deserialize;
use siemrelay_core::config_types::{ConfigDuration, ConfigSize};
use std::path::PathBuf;
use std::time::Duration;

/// The delivery keys of an exporter's config block.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Request concurrency and timeout.
    #[serde(default)]
    pub sending: SendingConfig,
    /// Retry policy.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The exporter's queue.
    #[serde(default)]
    pub queue: QueueConfig,
    /// The shape of each event's JSON form on the wire (`native`, `flat`, `ecs`, `ocsf`);
    /// taken only by exporters that send JSON ([`super::factory::ExporterFactory::takes_schema`]).
    #[serde(default)]
    pub schema: super::schema::Schema,
}

/// `sending:` — how requests go out.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendingConfig {
    /// Requests in flight at once (default 4; 1 for `file` and `stdout`, which keep order).
    pub concurrency: Option<usize>,
    /// Timeout of one request (default 30s).
    pub timeout: ConfigDuration,
    /// Send once this many events are queued (default 8192; capped at half of
    /// `queue.max_events`, so a small queue never waits for a batch it cannot hold).
    pub batch_size: Option<usize>,
    /// Never more than this many events per request (default 0 = only the SIEM's limit).
    pub batch_max_size: Option<usize>,
    /// Longest time the oldest queued event waits for its batch to fill (default 200ms).
    pub batch_timeout: Option<ConfigDuration>,
}

impl Default for SendingConfig {
    fn default() -> Self {
        SendingConfig {
            concurrency: None,
            timeout: ConfigDuration(Duration::from_secs(30)),
            batch_size: None,
            batch_max_size: None,
            batch_timeout: None,
        }
    }
}

impl SendingConfig {
    /// Whether any of `batch_size`, `batch_max_size`, `batch_timeout` is set.
    pub fn sets_batching(&self) -> bool {
        self.batch_size.is_some() || self.batch_max_size.is_some() || self.batch_timeout.is_some()
    }

    /// How the exporter's queue is drained into requests (defaults where not set).
    pub fn batch_policy(&self) -> BatchPolicy {
        let default = BatchPolicy::default();
        BatchPolicy {
            min_events: self.batch_size.unwrap_or(default.min_events),
            max_events: self.batch_max_size.unwrap_or(default.max_events),
            linger: self.batch_timeout.map_or(default.linger, |t| t.0),
        }
    }

    /// Sets all three batch keys from `policy`.
    pub fn set_batch_policy(&mut self, policy: BatchPolicy) {
        self.batch_size = Some(policy.min_events);
        self.batch_max_size = Some(policy.max_events);
        self.batch_timeout = Some(ConfigDuration(policy.linger));
    }
}

/// `retry:` — exponential backoff with full jitter.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First backoff ceiling (default 1s).
    pub initial_interval: ConfigDuration,
    /// Largest backoff ceiling (default 30s); also the probe interval of a `failed` exporter.
    pub max_interval: ConfigDuration,
    /// Give up and dead-letter after this long since the event was queued
    /// (default 5m; 24h with a disk queue).
    pub max_elapsed_time: Option<ConfigDuration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_interval: ConfigDuration(Duration::from_secs(1)),
            max_interval: ConfigDuration(Duration::from_secs(30)),
            max_elapsed_time: None,
        }
    }
}

/// Which kind of queue holds an exporter's pending events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueType {
    /// In memory: fast; a crash loses what it holds (a clean shutdown drains or dead-letters it).
    #[default]
    Memory,
    /// On disk: survives crashes and restarts.
    Disk,
}

/// What happens when the queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Refuse new batches: receivers answer 503 / UNAVAILABLE (default).
    #[default]
    Backpressure,
    /// Drop the oldest queued events to make room (counted and logged).
    DropOldest,
}

/// `queue:` — the exporter's bounded queue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// `memory` (default) or `disk`.
    #[serde(rename = "type")]
    pub kind: QueueType,
    /// Maximum events held, in flight included (default 10,000).
    pub max_events: usize,
    /// Maximum bytes held (default 32 MiB for memory, 1 GiB for disk).
    pub max_size: Option<ConfigSize>,
    /// `backpressure` (default) or `drop_oldest`.
    pub when_full: WhenFull,
    /// Disk queue directory (default `<storage>/queues/<exporter id>`).
    pub directory: Option<PathBuf>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            kind: QueueType::Memory,
            max_events: 10_000,
            max_size: None,
            when_full: WhenFull::Backpressure,
            directory: None,
        }
    }
}

impl QueueConfig {
    /// The byte capacity, with the per-type default.
    pub fn max_bytes(&self) -> usize {
        match (self.max_size, self.kind) {
            (Some(size), _) => size.as_usize(),
            (None, QueueType::Memory) => 32 << 20,
            (None, QueueType::Disk) => 1 << 30,
        }
    }
}

impl DeliveryConfig {
    /// `retry.max_elapsed_time` with its per-queue-type default.
    pub fn max_elapsed_time(&self) -> Duration {
        match (self.retry.max_elapsed_time, self.queue.kind) {
            (Some(d), _) => d.0,
            (None, QueueType::Memory) => Duration::from_secs(300),
            (None, QueueType::Disk) => Duration::from_secs(24 * 3600),
        }
    }

    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<siemrelay_core::ConfigIssue> {
        use siemrelay_core::ConfigIssue;
        let mut issues = Vec::new();
        if self.sending.concurrency.is_some_and(|c| c == 0 || c > 256) {
            issues.push(ConfigIssue::new(
                "sending.concurrency",
                "must be between 1 and 256",
            ));
        }
        if self.sending.timeout.0.is_zero() {
            issues.push(ConfigIssue::new("sending.timeout", "must be more than 0s"));
        }
        let batch = self.sending.batch_policy();
        if batch.min_events == 0 {
            issues.push(ConfigIssue::new("sending.batch_size", "must be at least 1"));
        }
        if batch.max_events != 0 && batch.max_events < batch.min_events {
            issues.push(ConfigIssue::new(
                "sending.batch_max_size",
                "must be 0 (no limit) or at least sending.batch_size",
            ));
        }
        if self.retry.initial_interval.0.is_zero() {
            issues.push(ConfigIssue::new(
                "retry.initial_interval",
                "must be more than 0s",
            ));
        }
        if self.retry.max_interval < self.retry.initial_interval {
            issues.push(ConfigIssue::new(
                "retry.max_interval",
                "must be at least retry.initial_interval",
            ));
        }
        if self.queue.max_events == 0 {
            issues.push(ConfigIssue::new("queue.max_events", "must be at least 1"));
        }
        if self.queue.max_bytes() < 4096 {
            issues.push(ConfigIssue::new("queue.max_size", "must be at least 4KiB"));
        } else if self.queue.kind == QueueType::Disk
            && (self.queue.max_bytes() as u64) < super::disk_queue::MIN_SEGMENT_BYTES
        {
            issues.push(ConfigIssue::new(
                "queue.max_size",
                format!(
                    "a disk queue needs at least {}KiB, one segment (segments are max_size / 8, between {}KiB and {}MiB)",
                    super::disk_queue::MIN_SEGMENT_BYTES >> 10,
                    super::disk_queue::MIN_SEGMENT_BYTES >> 10,
                    super::disk_queue::MAX_SEGMENT_BYTES >> 20
                ),
            ));
        }
        if self.queue.directory.is_some() && self.queue.kind != QueueType::Disk {
            issues.push(ConfigIssue::new(
                "queue.directory",
                "only applies to `type: disk`",
            ));
        }
        issues
    }
}

/// How a queue is drained into requests: `sending.batch_size`, `sending.batch_max_size` and
/// `sending.batch_timeout` (or a `batch` processor's settings, lifted onto the exporter),
/// applied where the exporter's queue is drained so senders never wait for a batch to fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Send when this many events are queued (`batch_size`, default 8192).
    pub min_events: usize,
    /// Never more than this many per request (`batch_max_size`; 0 = the SIEM's limit).
    pub max_events: usize,
    /// Hold the oldest queued event at most this long (`batch_timeout`, default 200ms).
    pub linger: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy {
            min_events: 8192,
            max_events: 0,
            linger: Duration::from_millis(200),
        }
    }
}
