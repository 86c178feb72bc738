//! The `stdout` exporter: one JSON line per event on standard output, for debugging.

pub mod factory;

use crate::delivery::{RequestLimits, Schema, SendReport, Sink};
use crate::file::{LOCAL_LIMITS, write_lines};
use async_trait::async_trait;
use serde::Deserialize;
use siemrelay_core::Event;
use std::io::Write;

/// `stdout: {}` — no settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

impl StdoutConfig {
    /// It has no keys, so nothing to check.
    pub fn validate(&self) -> Vec<siemrelay_core::ConfigIssue> {
        Vec::new()
    }
}

/// Writes events to standard output.
pub struct StdoutSink;

#[async_trait]
impl Sink for StdoutSink {
    fn limits(&self) -> RequestLimits {
        LOCAL_LIMITS
    }

    fn default_concurrency(&self) -> usize {
        1
    }

    async fn send(&self, events: &[Event]) -> SendReport {
        write_lines(events, Schema::Native, "stdout", |buf| {
            let mut out = std::io::stdout().lock();
            out.write_all(buf).and_then(|_| out.flush())
        })
        .await
    }
}
