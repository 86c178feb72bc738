//! The `batch` processor: how events are grouped into requests for the SIEM. Kept for
//! compatibility: batching is an exporter setting (`sending.batch_size`, `batch_max_size`,
//! `batch_timeout`), and the pipelines crate lifts these settings onto the exporters of each
//! pipeline that lists `batch` (different settings for one exporter are a config error).
//!
//! Batching happens where each exporter's queue is drained, not in front of it, so a sender is
//! acknowledged as soon as its events are queued and never waits for a batch to fill. A queue is
//! drained into a request when `send_batch_size` events are waiting, or when the oldest waiting
//! event has waited `timeout`, whichever comes first; no request carries more than
//! `send_batch_max_size` events (nor more than the SIEM's own limits). At shutdown everything
//! queued is flushed without waiting for the timeout.
//!
//! ```yaml
//! processors:
//!   batch: { send_batch_size: 8192, send_batch_max_size: 10000, timeout: 200ms }
//! ```

pub mod factory;

use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::config_types::ConfigDuration;
use std::time::Duration;

/// `batch:` settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Send once this many events are waiting (default 8192; capped at half the exporter's
    /// `queue.max_events`, so a small queue never waits for a batch it cannot hold).
    pub send_batch_size: usize,
    /// Never more than this many events per request (default 0 = only the SIEM's limit).
    pub send_batch_max_size: usize,
    /// Longest time an event waits for its batch to fill (default 200ms).
    pub timeout: ConfigDuration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: 8192,
            send_batch_max_size: 0,
            timeout: ConfigDuration(Duration::from_millis(200)),
        }
    }
}

impl BatchConfig {
    /// Checks the sizes.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.send_batch_size == 0 {
            issues.push(ConfigIssue::new("send_batch_size", "must be at least 1"));
        }
        if self.send_batch_max_size != 0 && self.send_batch_max_size < self.send_batch_size {
            issues.push(ConfigIssue::new(
                "send_batch_max_size",
                "must be 0 (no limit) or at least send_batch_size",
            ));
        }
        issues
    }
}
