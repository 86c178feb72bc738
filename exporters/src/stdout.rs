//! The `stdout` exporter: one JSON line per event on standard output, for debugging.

pub mod factory;

use crate::delivery::{Outcome, RequestLimits, RequestRecord, SendReport, Sink};
use async_trait::async_trait;
use serde::Deserialize;
use siemrelay_core::Event;
use std::io::Write;

/// `stdout: {}` — no settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

/// Writes events to standard output.
pub struct StdoutSink;

#[async_trait]
impl Sink for StdoutSink {
    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_events: 10_000,
            max_bytes: 16 << 20,
        }
    }

    fn default_concurrency(&self) -> usize {
        1
    }

    async fn send(&self, events: &[Event]) -> SendReport {
        let mut buf = Vec::with_capacity(events.len() * 512);
        for event in events {
            event.write_json(&mut buf);
            buf.push(b'\n');
        }
        let bytes = buf.len();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            out.write_all(&buf).and_then(|_| out.flush())
        })
        .await;
        let latency = started.elapsed();
        let outcome = match result {
            Ok(Ok(())) => Outcome::Delivered,
            Ok(Err(e)) => Outcome::retry(format!("writing to stdout failed: {e}")),
            Err(e) => Outcome::retry(format!("writing to stdout failed: {e}")),
        };
        SendReport::uniform(
            outcome,
            vec![RequestRecord {
                events: events.len(),
                bytes,
                latency,
                ..Default::default()
            }],
        )
    }
}
