//! A siemrelay exporter plugin for tests of the plugin host, built with the Rust SDK.
//!
//! It appends every delivered event line to `output`, and misbehaves on demand:
//! - a batch whose events' summaries contain `panic_on` panics (every time it is sent),
//! - every `panic_every`-th call panics,
//! - a batch whose events' summaries contain `block_on` (or every batch, with `block_on: "*"`)
//!   sleeps `block_ms` first,
//! - events whose summary is `reject-me` are permanent failures, `retry-me` retryable.

use serde::Deserialize;
use siemrelay_plugin_sdk::{Batch, Delivery, Exporter, Issue, Outcome};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `config:` of the testkit plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestkitConfig {
    /// File the delivered event lines are appended to (required).
    pub output: String,
    /// Panic on batches with an event whose summary contains this text.
    #[serde(default)]
    pub panic_on: Option<String>,
    /// Panic on every n-th `deliver` call (0 = never, default).
    #[serde(default)]
    pub panic_every: u64,
    /// Sleep `block_ms` on batches with an event whose summary contains this (`*`: every batch).
    #[serde(default)]
    pub block_on: Option<String>,
    /// How long to block, in milliseconds (default 0).
    #[serde(default)]
    pub block_ms: u64,
}

/// The testkit exporter.
pub struct Testkit {
    config: TestkitConfig,
    output: Mutex<File>,
    calls: AtomicU64,
}

fn summary_contains(batch: &Batch<'_>, needle: &str) -> bool {
    needle == "*"
        || batch
            .events()
            .filter_map(Result::ok)
            .any(|e| e.summary.as_deref().is_some_and(|s| s.contains(needle)))
}

impl Exporter for Testkit {
    type Config = TestkitConfig;

    fn validate(config: &TestkitConfig) -> Vec<Issue> {
        if config.output.trim().is_empty() {
            vec![Issue::new("output", "must not be empty")]
        } else {
            Vec::new()
        }
    }

    fn configure(_exporter_id: &str, config: TestkitConfig) -> Result<Self, Vec<Issue>> {
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.output)
            .map_err(|e| {
                vec![Issue::new(
                    "output",
                    format!("cannot open {}: {e}", config.output),
                )]
            })?;
        Ok(Testkit {
            config,
            output: Mutex::new(output),
            calls: AtomicU64::new(0),
        })
    }

    fn deliver(&self, batch: &Batch<'_>) -> Delivery {
        let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(needle) = &self.config.block_on
            && summary_contains(batch, needle)
        {
            std::thread::sleep(Duration::from_millis(self.config.block_ms));
        }
        if self.config.panic_every > 0 && call.is_multiple_of(self.config.panic_every) {
            panic!("testkit panics on call {call}");
        }
        if let Some(needle) = &self.config.panic_on
            && summary_contains(batch, needle)
        {
            panic!("testkit panics on a batch with {needle:?}");
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut written = Vec::with_capacity(batch.bytes().len());
        for (line, event) in batch.lines().zip(batch.events()) {
            let outcome = match event.as_ref().ok().and_then(|e| e.summary.as_deref()) {
                Some("reject-me") => Outcome::permanent("testkit rejects reject-me"),
                Some("retry-me") => Outcome::retry("testkit retries retry-me"),
                _ => Outcome::Delivered,
            };
            if outcome == Outcome::Delivered {
                written.extend_from_slice(line);
                written.push(b'\n');
            }
            outcomes.push(outcome);
        }
        let mut file = self.output.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(&written) {
            return Delivery::all(Outcome::retry(format!("writing the output failed: {e}")));
        }
        Delivery::per_event(outcomes)
    }
}

siemrelay_plugin_sdk::export_plugin!(Testkit);
