//! Assembling a running exporter from its parts: the sink an exporter factory built, the shared
//! delivery settings, and where its state lives. This is the one place that picks the queue
//! (memory or disk, with the completion wrapper where it is needed), names the dead-letter file
//! and starts the workers; the runtime, reloads and the CLI's delivery runs all call it.

use super::completion::KeepCompletions;
use super::config::{DeliveryConfig, QueueConfig, QueueType, WhenFull};
use super::dead_letter::DeadLetter;
use super::disk_queue::DiskQueue;
use super::memory_queue::MemoryQueue;
use super::{BatchPolicy, DeliveryQueue, ExporterHandle, RestoredStatus, Sink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where one exporter keeps its state (under `service.storage.directory`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExporterStorage {
    /// The directory of its dead-letter file (`<storage>/dead_letter`).
    pub dead_letter_dir: PathBuf,
    /// Its disk queue's directory when `queue.directory` is not set
    /// (`<storage>/queues/<exporter>`).
    pub queue_dir: PathBuf,
}

/// Starts an exporter as configured: its batching (`sending.batch_*`), its queue (memory, or
/// disk opened and recovered), its dead-letter file, its workers, and its status as `restored`
/// (what a previous run or the exporter it replaces left; `RestoredStatus::default()` for a
/// fresh one). An error (a disk queue that cannot be opened) names the exporter's `queue` key.
pub fn assemble(
    id: &str,
    sink: Arc<dyn Sink>,
    delivery: &DeliveryConfig,
    storage: &ExporterStorage,
    restored: RestoredStatus,
) -> anyhow::Result<ExporterHandle> {
    let queue = open_queue(id, &delivery.queue, &storage.queue_dir)?;
    let dead_letter = DeadLetter::new(&storage.dead_letter_dir, id);
    Ok(ExporterHandle::start_restored(
        id,
        sink,
        delivery,
        delivery.sending.batch_policy(),
        queue,
        dead_letter,
        restored,
    ))
}

/// How a finite delivery run (`siemrelay send`, `siemrelay dlq replay`) drains its queue:
/// requests of up to 1,000 events, the oldest waiting at most 50ms.
pub const RUN_BATCH: BatchPolicy = BatchPolicy {
    min_events: 1_000,
    max_events: 0,
    linger: Duration::from_millis(50),
};

/// Starts an exporter for a finite delivery run: a memory queue of the configured size that
/// makes the caller wait when full (never drops), [`RUN_BATCH`], and the dead-letter file in
/// `dead_letter_dir`. Nothing is read from or left in a disk queue.
pub fn assemble_for_run(
    id: &str,
    sink: Arc<dyn Sink>,
    delivery: &DeliveryConfig,
    dead_letter_dir: &Path,
) -> ExporterHandle {
    let queue: Arc<dyn DeliveryQueue> = Arc::new(MemoryQueue::new(
        id,
        delivery.queue.max_events,
        delivery.queue.max_bytes(),
        WhenFull::Backpressure,
    ));
    ExporterHandle::start(
        id,
        sink,
        delivery,
        RUN_BATCH,
        queue,
        DeadLetter::new(dead_letter_dir, id),
    )
}

/// The queue `queue:` asks for; a disk queue in `queue.directory` or else `default_dir`.
fn open_queue(
    id: &str,
    queue: &QueueConfig,
    default_dir: &Path,
) -> anyhow::Result<Arc<dyn DeliveryQueue>> {
    match queue.kind {
        QueueType::Memory => Ok(Arc::new(MemoryQueue::new(
            id,
            queue.max_events,
            queue.max_bytes(),
            queue.when_full,
        ))),
        QueueType::Disk => {
            let dir = queue.directory.as_deref().unwrap_or(default_dir);
            open_disk_queue(dir, id, queue)
        }
    }
}

fn open_disk_queue(
    dir: &Path,
    id: &str,
    queue: &QueueConfig,
) -> anyhow::Result<Arc<dyn DeliveryQueue>> {
    let (disk, report) = DiskQueue::open(
        dir,
        id,
        queue.max_events,
        queue.max_bytes(),
        queue.when_full,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "exporters.{id}.queue: cannot open the disk queue in {}: {e}",
            dir.display()
        )
    })?;
    if !report.is_clean() {
        tracing::warn!(exporter = %id, directory = %dir.display(), "disk queue recovered from damage: the intact events will be delivered (`siemrelay queue inspect` shows the damage)");
    }
    // Completion tokens (kafka `commit: after_delivery`) outlive the write to disk. With
    // `drop_oldest` an evicted event would hold its token forever: there, the durable write
    // finishes the event.
    if queue.when_full == WhenFull::Backpressure {
        return Ok(Arc::new(KeepCompletions::new(Arc::new(disk))));
    }
    Ok(Arc::new(disk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stdout::StdoutSink;
    use std::time::Instant;

    fn delivery(yaml: &str) -> DeliveryConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[tokio::test]
    async fn the_configured_queue_type_and_directory_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let storage = ExporterStorage {
            dead_letter_dir: dir.path().join("dead_letter"),
            queue_dir: dir.path().join("queues/stdout"),
        };
        let memory = assemble(
            "stdout",
            Arc::new(StdoutSink),
            &delivery("{}"),
            &storage,
            RestoredStatus::default(),
        )
        .unwrap();
        assert!(!memory.queue().is_durable());
        assert!(!storage.queue_dir.exists());
        memory.shutdown(Instant::now()).await;

        let disk = delivery("{ queue: { type: disk }, sending: { batch_size: 7 } }");
        let handle = assemble(
            "stdout",
            Arc::new(StdoutSink),
            &disk,
            &storage,
            RestoredStatus::default(),
        )
        .unwrap();
        assert!(handle.queue().is_durable());
        assert!(storage.queue_dir.is_dir(), "the default directory");
        handle.shutdown(Instant::now()).await;

        let elsewhere = dir.path().join("elsewhere");
        let moved = delivery(&format!(
            "{{ queue: {{ type: disk, directory: \"{}\" }} }}",
            elsewhere.display()
        ));
        let handle = assemble(
            "stdout",
            Arc::new(StdoutSink),
            &moved,
            &storage,
            RestoredStatus::default(),
        )
        .unwrap();
        assert!(elsewhere.is_dir(), "queue.directory wins");
        handle.shutdown(Instant::now()).await;
    }

    #[tokio::test]
    async fn a_disk_queue_that_cannot_open_names_the_exporter_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "not a directory").unwrap();
        let storage = ExporterStorage {
            dead_letter_dir: dir.path().join("dead_letter"),
            queue_dir: file.clone(),
        };
        let disk = delivery("{ queue: { type: disk } }");
        let error = assemble(
            "stdout/x",
            Arc::new(StdoutSink),
            &disk,
            &storage,
            RestoredStatus::default(),
        )
        .err()
        .expect("a file is no queue directory");
        assert!(
            error
                .to_string()
                .starts_with("exporters.stdout/x.queue: cannot open the disk queue"),
            "{error}"
        );
    }
}
