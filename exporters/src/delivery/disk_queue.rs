//! The crash-safe disk queue: a checksummed, append-only segment log per exporter.
//!
//! # Why a hand-written segment log
//! - **Throughput**: a push is one sequential `pwrite` of an already encoded batch (NDJSON in the
//!   core JSON form) and a share of one `fdatasync`; concurrent pushes are group-committed (the
//!   first pusher to reach the sync lock syncs everything written so far, the others find their
//!   record already durable). Nothing is rewritten in place, so there is no write amplification
//!   and no compaction. Recently pushed batches stay in memory (up to `cache_bytes`) so a fast
//!   exporter never re-reads its own writes.
//! - **fsync behaviour is explicit**: a push returns only after its record is durable; acks are
//!   synced lazily (every `ack_flush_interval`, at a full ack buffer, after `close`, on drop).
//!   Losing an ack can only cause a duplicate delivery after a crash, never a loss. An embedded
//!   database would hide these choices behind its own WAL and sync policy.
//! - **Recovery is derived from the data alone**: the pending set is "data records without an
//!   ack record", rebuilt by scanning every segment on open. There is no reader position or
//!   ledger that could disagree with the data (Vector #16463) or point at a deleted file
//!   (Vector PR #25570). Each record carries a length and a crc32c, so a torn or garbled tail is
//!   detected, counted, logged and cut; damage in the middle of a segment is skipped by
//!   searching for the next valid record. Opening never fails because of the data's content.
//!
//! # Layout
//! `<dir>/<first sequence number, 20 digits>.log` segments of up to `segment_bytes`, and a
//! `LOCK` file that keeps a second process out. See [`record`] for the record format.
//!
//! # Deleting segments
//! Only the oldest segment, only when every data record in it is acknowledged, only after the
//! acks are durable, and never the segment being written; the directory is fsynced after each
//! create and unlink. Every intermediate state opens: a segment that survives its unlink is
//! simply fully acknowledged, a missing one holds nothing anyone points at.
//!
//! # Semantics of the [`DeliveryQueue`] methods
//! - `push` stores the batch durably or returns `QueueError::Storage` (disk full, I/O error):
//!   the runtime answers with backpressure, the partial record is cut, the queue stays usable.
//! - `pop` has the memory queue's batch policy; a chunk may take part of a record, and its
//!   receipt lists the (record, events) parts.
//! - `complete` counts events per record; a record whose events are all complete gets an ack.
//!   Completion may happen in any order. A chunk popped but never completed is delivered again
//!   after a restart (`is_durable` is true).
//! - Capacity (`max_events`, `max_bytes`) counts queued + in flight; bytes are the records'
//!   bytes on disk (ack records and not-yet-deleted segments are not counted).
//! - `close` refuses new reservations; every `complete` after `close` makes the acks durable
//!   before returning, and [`DiskQueue::flush`] does so on demand.
//! - `take_remaining` returns nothing: the events stay on disk for the next start.

mod fs;
mod log;
pub mod record;
pub mod recovery;
pub mod segment;
mod state;
#[cfg(test)]
mod tests;

pub use recovery::{InspectReport, RecoveryReport, SegmentReport};
pub use segment::CorruptRegion;

use super::config::WhenFull;
use super::queue::{
    Chunk, DeliveryQueue, PopLimits, QueueDepth, QueueError, Receipt, Reservation, SizedBatch,
};
use async_trait::async_trait;
use fs::{Fs, RealFs};
use log::LogWriter;
use record::AckReason;
use siemrelay_core::{Event, Timestamp};
use state::{Handled, Loaded, Pending, Ready, State};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::Notify;

/// Why a disk queue could not be opened or inspected.
#[derive(Debug, thiserror::Error)]
pub enum DiskQueueError {
    /// A file operation failed.
    #[error("disk queue: cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`create`, `open`, `list`, `sync`, `lock`).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Another process has the directory open.
    #[error("disk queue: {} is in use by another process", path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },
}

impl DiskQueueError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> DiskQueueError {
        DiskQueueError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Settings of a disk queue.
#[derive(Clone, Copy, Debug)]
pub struct DiskQueueOptions {
    /// Maximum events queued or in flight.
    pub max_events: usize,
    /// Maximum bytes on disk of pending records.
    pub max_bytes: usize,
    /// What happens when full.
    pub when_full: WhenFull,
    /// Size at which a segment is closed and the next one started (default 64 MiB).
    pub segment_bytes: u64,
    /// Estimated bytes of pushed events kept in memory for pop (default 4 MiB).
    pub cache_bytes: usize,
    /// How often lazily written acks are made durable (default 100 ms).
    pub ack_flush_interval: Duration,
}

impl DiskQueueOptions {
    /// Defaults for everything but the capacity.
    pub fn new(max_events: usize, max_bytes: usize, when_full: WhenFull) -> DiskQueueOptions {
        DiskQueueOptions {
            max_events,
            max_bytes,
            when_full,
            segment_bytes: 64 << 20,
            cache_bytes: 4 << 20,
            ack_flush_interval: Duration::from_millis(100),
        }
    }
}

/// Acks per ack record (8 bytes each).
const ACKS_PER_RECORD: usize = 8192;
/// A full ack buffer wakes the flusher early.
const ACK_BUFFER_WAKE: usize = 1024;

struct Inner {
    id: String,
    options: DiskQueueOptions,
    log: LogWriter,
    state: Mutex<State>,
    pushed: Notify,
    stop: AtomicBool,
    dropped: AtomicU64,
    _lock: File,
}

/// A bounded, crash-safe FIFO of events on disk for one exporter.
pub struct DiskQueue {
    inner: Arc<Inner>,
    wake: SyncSender<()>,
    flusher: Option<JoinHandle<()>>,
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir` for exporter `exporter_id`, recovering what a crash
    /// left. Damaged data never fails the open: it is cut or skipped and reported.
    pub fn open(
        dir: &Path,
        exporter_id: &str,
        max_events: usize,
        max_bytes: usize,
        when_full: WhenFull,
    ) -> Result<(DiskQueue, RecoveryReport), DiskQueueError> {
        DiskQueue::open_with(
            dir,
            exporter_id,
            DiskQueueOptions::new(max_events, max_bytes, when_full),
        )
    }

    /// [`DiskQueue::open`] with every setting.
    pub fn open_with(
        dir: &Path,
        exporter_id: &str,
        options: DiskQueueOptions,
    ) -> Result<(DiskQueue, RecoveryReport), DiskQueueError> {
        DiskQueue::open_on(dir, exporter_id, options, Arc::new(RealFs))
    }

    fn open_on(
        dir: &Path,
        exporter_id: &str,
        options: DiskQueueOptions,
        fs: Arc<dyn Fs>,
    ) -> Result<(DiskQueue, RecoveryReport), DiskQueueError> {
        std::fs::create_dir_all(dir).map_err(|e| DiskQueueError::io("create", dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| DiskQueueError::io("create", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DiskQueueError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(DiskQueueError::io("lock", &lock_path, e));
            }
        }
        let recovered = recovery::recover(dir, fs.as_ref())?;
        let log = LogWriter::new(dir, fs, &recovered, options.segment_bytes)?;
        let mut state = State::default();
        for record in &recovered.pending {
            state.pending.insert(
                record.seq,
                Pending {
                    segment: record.segment,
                    disk_bytes: record.len as usize,
                    remaining: record.summary.events,
                },
            );
            state.used_events += record.summary.events as usize;
            state.used_bytes += record.len as usize;
            state.insert_ready(Ready::recovered(record));
        }
        let report = recovered.report;
        log_recovery(exporter_id, dir, &report);
        let inner = Arc::new(Inner {
            id: exporter_id.to_string(),
            options,
            log,
            state: Mutex::new(state),
            pushed: Notify::new(),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            _lock: lock,
        });
        let (wake, woken) = sync_channel(1);
        let flusher = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name(format!("queue-{exporter_id}"))
                .spawn(move || inner.run_flusher(woken))
                .map_err(|e| DiskQueueError::io("start the ack flusher for", dir, e))?
        };
        Ok((
            DiskQueue {
                inner,
                wake,
                flusher: Some(flusher),
            },
            report,
        ))
    }

    /// Reads a queue directory without changing anything (`siemrelay queue inspect`). Safe to
    /// run next to a running queue (its newest record may then show as a torn tail).
    pub fn inspect(dir: &Path) -> Result<InspectReport, DiskQueueError> {
        recovery::inspect(dir)
    }

    /// Writes pending acks, makes them durable and deletes fully acknowledged segments.
    pub fn flush(&self) -> Result<(), QueueError> {
        self.inner.flush().map_err(|e| self.inner.storage_error(&e))
    }

    /// Events dropped by `when_full: drop_oldest` since open.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Segment files currently kept.
    pub fn segment_count(&self) -> usize {
        self.inner.log.segment_count()
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        self.inner.log.dir()
    }
}

fn log_recovery(id: &str, dir: &Path, report: &RecoveryReport) {
    if report.is_clean() {
        tracing::info!(exporter = %id, dir = %dir.display(), records = report.records_recovered, events = report.events_recovered, segments = report.segments, "disk queue opened");
        return;
    }
    metrics::counter!("siemrelay_exporter_queue_corrupt_records_total", "exporter" => id.to_string())
        .increment(report.records_skipped);
    tracing::warn!(
        exporter = %id,
        dir = %dir.display(),
        records = report.records_recovered,
        events = report.events_recovered,
        corrupt_regions = report.corrupt_regions.len(),
        records_skipped = report.records_skipped,
        bytes_skipped = report.bytes_skipped,
        bytes_truncated = report.bytes_truncated,
        unreadable = ?report.unreadable_segments,
        "disk queue opened with damaged data: the damage was cut or skipped (run `siemrelay queue inspect` for details)"
    );
    for region in report.corrupt_regions.iter().take(20) {
        tracing::warn!(exporter = %id, segment = %segment::file_name(region.segment), offset = region.offset, bytes = region.len, tail = region.at_tail, "disk queue: damaged region");
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update under this lock is a few counter and collection steps; a panic cannot
        // leave it in a state worse than a crash, which recovery handles.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn storage_error(&self, e: &io::Error) -> QueueError {
        QueueError::Storage(format!("disk queue in {}: {e}", self.log.dir().display()))
    }

    fn fits(&self, state: &State, events: usize, bytes: usize) -> bool {
        // An empty queue takes any batch, so an oversized batch is never refused forever.
        state.used_events == 0
            || (state.used_events + events <= self.options.max_events
                && state.used_bytes + bytes <= self.options.max_bytes)
    }

    /// Encodes, appends and syncs a batch, then makes it poppable. Runs on a blocking thread;
    /// completes even if the pushing future is dropped.
    fn store(&self, reservation: Reservation, batch: SizedBatch) -> Result<(), QueueError> {
        let enqueued_at = Timestamp::now();
        let mut rec = record::encode_data(enqueued_at, &batch.events, &batch.sizes);
        let stored = self.log.append(&mut rec, &[]).and_then(|at| {
            self.log.commit(at.seq).map(|()| at).inspect_err(|_| {
                self.log.forget(at.segment);
            })
        });
        let mut state = self.state();
        let at = match stored {
            Ok(stored) => stored,
            Err(e) => {
                state.used_events = state.used_events.saturating_sub(reservation.events);
                state.used_bytes = state.used_bytes.saturating_sub(reservation.bytes);
                drop(state);
                metrics::counter!("siemrelay_exporter_queue_storage_errors_total", "exporter" => self.id.clone())
                    .increment(1);
                tracing::warn!(exporter = %self.id, events = batch.len(), error = %e, "disk queue: cannot store a batch (refused with backpressure)");
                return Err(self.storage_error(&e));
            }
        };
        let events = batch.len();
        let disk_bytes = rec.bytes.len();
        state.used_events = (state.used_events + events).saturating_sub(reservation.events);
        state.used_bytes = (state.used_bytes + disk_bytes).saturating_sub(reservation.bytes);
        state.pending.insert(
            at.seq,
            Pending {
                segment: at.segment,
                disk_bytes,
                remaining: events as u32,
            },
        );
        let cache = state.cached_bytes + batch.total_bytes <= self.options.cache_bytes;
        state.insert_ready(Ready {
            seq: at.seq,
            segment: at.segment,
            offset: at.offset,
            len: disk_bytes as u64,
            enqueued_at,
            total: events as u32,
            taken: 0,
            estimated_left: batch.total_bytes,
            loaded: cache.then(|| Loaded::new(batch.events, batch.sizes)),
        });
        drop(state);
        self.pushed.notify_waiters();
        Ok(())
    }

    /// Writes the buffered acks (durable only after the next sync).
    fn write_acks(&self) -> io::Result<()> {
        let (acks, drops) = {
            let mut state = self.state();
            (
                std::mem::take(&mut state.acks),
                std::mem::take(&mut state.drops),
            )
        };
        for (reason, list) in [(AckReason::Completed, acks), (AckReason::Dropped, drops)] {
            for (index, part) in list.chunks(ACKS_PER_RECORD).enumerate() {
                let seqs: Vec<u64> = part.iter().map(|(seq, _)| *seq).collect();
                let mut rec = record::encode_ack(reason, &seqs);
                if let Err(e) = self.log.append(&mut rec, part) {
                    // Keep the unwritten acks for the next attempt.
                    let rest = &list[index * ACKS_PER_RECORD..];
                    let mut state = self.state();
                    match reason {
                        AckReason::Completed => state.acks.extend_from_slice(rest),
                        AckReason::Dropped => state.drops.extend_from_slice(rest),
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.write_acks()?;
        self.log.sync_written()?;
        self.log.delete_acked_segments()?;
        Ok(())
    }

    fn run_flusher(&self, woken: Receiver<()>) {
        let mut failing = false;
        loop {
            match woken.recv_timeout(self.options.ack_flush_interval) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            match self.flush() {
                Ok(()) => failing = false,
                Err(e) => {
                    if !failing {
                        tracing::error!(exporter = %self.id, error = %e, "disk queue: cannot write acks or delete delivered segments; retrying (a crash now only causes duplicate deliveries)");
                    }
                    failing = true;
                }
            }
        }
    }

    /// Reads a record's events back from its segment.
    fn load(&self, ready_seq: u64, segment: u64, offset: u64, len: u64) -> Result<Loaded, String> {
        let path = segment::path(self.log.dir(), segment);
        let bytes = fs::read_at(&path, offset, len as usize)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let header = record::check(&bytes).map_err(|bad| {
            format!(
                "record at {}:{offset} fails its check ({bad:?})",
                path.display()
            )
        })?;
        if header.seq != ready_seq || header.kind != record::Kind::Data {
            return Err(format!("{}:{offset} holds another record", path.display()));
        }
        let (events, sizes) = record::decode_data(&bytes[record::HEADER_LEN..])
            .map_err(|e| format!("{}:{offset}: {e}", path.display()))?;
        Ok(Loaded::new(events, sizes))
    }

    /// Attaches loaded events to a waiting record, or drops a record that cannot be read.
    fn attach(&self, seq: u64, loaded: Result<(Loaded, usize), String>) {
        let mut state = self.state();
        let Some(index) = state.ready_index(seq) else {
            return;
        };
        if state.ready[index].loaded.is_some() {
            return;
        }
        match loaded {
            Ok((loaded, count)) if count == state.ready[index].total as usize => {
                state.cached_bytes += state.ready[index].estimated_left;
                state.ready[index].loaded = Some(loaded);
            }
            other => {
                let reason = match other {
                    Err(reason) => reason,
                    Ok(_) => "the event count does not match the record header".into(),
                };
                let segment = state.ready[index].segment;
                // Not acknowledged: after a restart a readable copy is delivered; otherwise the
                // record goes with its segment.
                let lost = state.drop_ready(index, Handled::Lost);
                drop(state);
                self.log.forget(segment);
                metrics::counter!("siemrelay_exporter_queue_corrupt_records_total", "exporter" => self.id.clone())
                    .increment(1);
                tracing::error!(exporter = %self.id, seq, events = lost, error = %reason, "disk queue: a stored batch cannot be read; skipping it");
            }
        }
    }
}

enum Next {
    Take(Chunk),
    Wait(Option<Duration>),
    Load {
        seq: u64,
        segment: u64,
        offset: u64,
        len: u64,
    },
}

#[async_trait]
impl DeliveryQueue for DiskQueue {
    fn try_reserve(&self, events: usize, bytes: usize) -> Result<Reservation, QueueError> {
        let inner = &self.inner;
        let mut state = inner.state();
        if state.closed {
            return Err(QueueError::Closed);
        }
        if !inner.fits(&state, events, bytes) && inner.options.when_full == WhenFull::DropOldest {
            let mut dropped = 0usize;
            // Only records with unpopped events: in-flight events are never evicted.
            while !inner.fits(&state, events, bytes) && !state.ready.is_empty() {
                dropped += state.drop_ready(0, Handled::Dropped);
            }
            if dropped > 0 {
                inner.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
                metrics::counter!("siemrelay_exporter_events_dropped_total", "exporter" => inner.id.clone())
                    .increment(dropped as u64);
                tracing::warn!(exporter = %inner.id, dropped, "disk queue full: dropped the oldest events (when_full: drop_oldest)");
            }
        }
        if !inner.fits(&state, events, bytes) {
            return Err(QueueError::Full);
        }
        state.used_events += events;
        state.used_bytes += bytes;
        Ok(Reservation { events, bytes })
    }

    fn cancel(&self, reservation: Reservation) {
        let mut state = self.inner.state();
        state.used_events = state.used_events.saturating_sub(reservation.events);
        state.used_bytes = state.used_bytes.saturating_sub(reservation.bytes);
    }

    async fn push(&self, reservation: Reservation, batch: SizedBatch) -> Result<(), QueueError> {
        if batch.is_empty() {
            self.cancel(reservation);
            return Ok(());
        }
        let inner = self.inner.clone();
        let (events, bytes) = (reservation.events, reservation.bytes);
        match tokio::task::spawn_blocking(move || inner.store(reservation, batch)).await {
            Ok(result) => result,
            Err(e) => {
                self.cancel(Reservation { events, bytes });
                Err(QueueError::Storage(format!(
                    "disk queue writer task failed: {e}"
                )))
            }
        }
    }

    async fn pop(&self, limits: PopLimits) -> Option<Chunk> {
        let inner = &self.inner;
        loop {
            let notified = inner.pushed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let mut state = inner.state();
                match state.ready.front() {
                    None if state.closed => return None,
                    None => Next::Wait(None),
                    Some(front) => {
                        let deadline = front
                            .enqueued_at
                            .0
                            .saturating_add(limits.linger.as_nanos() as i64);
                        let enough = state.ready_events >= limits.min_events.max(1)
                            || state.ready_bytes >= limits.max_bytes
                            || state.closed;
                        let now = Timestamp::now().0;
                        if enough || now >= deadline {
                            match state.unloaded_for(limits) {
                                Some(ready) => Next::Load {
                                    seq: ready.seq,
                                    segment: ready.segment,
                                    offset: ready.offset,
                                    len: ready.len,
                                },
                                None => Next::Take(state.take_chunk(limits)),
                            }
                        } else {
                            Next::Wait(Some(Duration::from_nanos((deadline - now) as u64)))
                        }
                    }
                }
            };
            match next {
                Next::Take(chunk) => return Some(chunk),
                Next::Wait(None) => notified.await,
                Next::Wait(Some(until_deadline)) => {
                    let _ = tokio::time::timeout(until_deadline, notified).await;
                }
                Next::Load {
                    seq,
                    segment,
                    offset,
                    len,
                } => {
                    let reader = inner.clone();
                    let loaded = tokio::task::spawn_blocking(move || {
                        reader.load(seq, segment, offset, len).map(|loaded| {
                            let count = loaded.len();
                            (loaded, count)
                        })
                    })
                    .await
                    .unwrap_or_else(|e| Err(format!("reader task failed: {e}")));
                    inner.attach(seq, loaded);
                }
            }
        }
    }

    fn complete(&self, receipt: Receipt) {
        let (closed, buffered) = {
            let mut state = self.inner.state();
            for part in &receipt.records {
                state.finish_events(part.seq, part.events, Handled::Completed);
            }
            (state.closed, state.acks.len())
        };
        if closed {
            if let Err(e) = self.inner.flush() {
                tracing::error!(exporter = %self.inner.id, error = %e, "disk queue: cannot make acks durable at shutdown (the events may be delivered again after the restart)");
            }
        } else if buffered >= ACK_BUFFER_WAKE {
            let _ = self.wake.try_send(());
        }
    }

    fn depth(&self) -> QueueDepth {
        let state = self.inner.state();
        QueueDepth {
            events: state.used_events,
            bytes: state.used_bytes,
            max_events: self.inner.options.max_events,
            max_bytes: self.inner.options.max_bytes,
        }
    }

    fn close(&self) {
        self.inner.state().closed = true;
        self.inner.pushed.notify_waiters();
        let _ = self.wake.try_send(());
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn take_remaining(&self) -> Vec<Event> {
        // The events stay on disk and are delivered after the next start.
        Vec::new()
    }
}

impl Drop for DiskQueue {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        if let Err(e) = self.inner.flush() {
            tracing::warn!(exporter = %self.inner.id, error = %e, "disk queue: cannot make the last acks durable (the events may be delivered again after the restart)");
        }
    }
}
