//! Delivering a finite set of events through one exporter's real delivery layer (queue, retries,
//! dead-letter file, status): shared by `siemrelay send` (backfill) and `siemrelay dlq replay`.

use crate::config::{ComponentId, LoadedConfig};
use crate::registry::{self, ExporterSpec};
use crate::runtime::StorageLayout;
use siemrelay_core::Event;
use siemrelay_exporters::delivery::assemble::assemble_for_run;
use siemrelay_exporters::delivery::queue::SizedBatch;
use siemrelay_exporters::delivery::{ExporterHandle, QueueError};
use std::path::Path;
use std::time::{Duration, Instant};

/// What a delivery run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeliverySummary {
    /// Events handed to the exporter.
    pub submitted: u64,
    /// Events the SIEM accepted.
    pub sent: u64,
    /// Events written to the dead-letter file.
    pub dead_lettered: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Puts the two halves of a batch back to be queued, the first half next.
fn split(parts: &mut Vec<Vec<Event>>, batch: SizedBatch) {
    let mut first = batch.events;
    let second = first.split_off(first.len() / 2);
    parts.push(second);
    parts.push(first);
}

/// A running exporter used for one delivery run.
pub struct Deliverer {
    handle: ExporterHandle,
    started: Instant,
    submitted: u64,
}

impl Deliverer {
    /// Starts the exporter `id` of `config` with a memory queue and its normal dead-letter file
    /// (`dead_letter` overrides the file's directory).
    pub fn start(
        config: &LoadedConfig,
        id: &ComponentId,
        spec: &ExporterSpec,
        dead_letter_dir: Option<&Path>,
    ) -> anyhow::Result<Deliverer> {
        let sink = registry::build_sink(id, spec)?;
        let dir = dead_letter_dir.map(Path::to_path_buf).unwrap_or_else(|| {
            StorageLayout::new(&config.service.storage.directory).dead_letter_dir()
        });
        let handle = assemble_for_run(&id.id, sink, &spec.delivery, &dir);
        Ok(Deliverer {
            handle,
            started: Instant::now(),
            submitted: 0,
        })
    }

    /// Queues events, waiting while the queue is full; a batch larger than the whole queue is
    /// queued in parts.
    pub async fn submit(&mut self, events: Vec<Event>) -> anyhow::Result<()> {
        let count = events.len() as u64;
        let queue = self.handle.queue().clone();
        let mut parts = vec![events];
        while let Some(events) = parts.pop() {
            if events.is_empty() {
                continue;
            }
            let batch = SizedBatch::new(events);
            match queue.try_reserve(batch.len(), batch.total_bytes) {
                Ok(reservation) => match queue.push(reservation, batch.clone()).await {
                    Ok(()) => {}
                    Err(QueueError::Full) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        parts.push(batch.events);
                    }
                    Err(QueueError::TooLarge(_)) if batch.len() > 1 => split(&mut parts, batch),
                    Err(e) => anyhow::bail!("queue: {e}"),
                },
                Err(QueueError::Full) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    parts.push(batch.events);
                }
                Err(QueueError::TooLarge(_)) if batch.len() > 1 => split(&mut parts, batch),
                Err(e) => anyhow::bail!("queue: {e}"),
            }
        }
        self.submitted += count;
        Ok(())
    }

    /// Counts so far.
    pub fn progress(&self) -> DeliverySummary {
        let snapshot = self.handle.status().snapshot();
        DeliverySummary {
            submitted: self.submitted,
            sent: snapshot.events_sent,
            dead_lettered: snapshot.events_dead_lettered,
            elapsed: self.started.elapsed(),
        }
    }

    /// Waits until everything submitted has a final outcome (the exporter's own retry policy
    /// bounds this), and stops the exporter.
    pub async fn finish(self) -> DeliverySummary {
        // No deadline of our own: retries end by max_elapsed_time, after which events are
        // dead-lettered; an operator can interrupt with Ctrl-C.
        let report = self
            .handle
            .shutdown(Instant::now() + Duration::from_secs(365 * 24 * 3600))
            .await;
        let _ = report;
        self.progress()
    }
}
