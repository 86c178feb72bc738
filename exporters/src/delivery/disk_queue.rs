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
pub mod losses;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod space;
mod state;
#[cfg(test)]
mod tests;

pub use losses::LossEntry;
pub use recovery::{InspectReport, Loss, LossCause, RecoveryReport, SegmentReport};
pub use segment::CorruptRegion;

use super::config::WhenFull;
use super::queue::{
    Chunk, DeliveryQueue, PopLimits, QueueDepth, QueueError, Receipt, Reservation, SizedBatch,
    bytes_hint, too_large,
};
use super::status::ExporterStatus;
use async_trait::async_trait;
use fs::{Fs, RealFs};
use log::LogWriter;
use losses::LossLog;
use record::AckReason;
use siemrelay_core::{Event, Timestamp};
use state::{Handled, Loaded, Pending, Ready, State};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
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
    /// The volume cannot hold even one segment.
    #[error(
        "disk queue: the volume of {} holds {}, less than one segment ({}): give the queue a larger volume or a smaller queue.max_size",
        path.display(), space::human(*volume), space::human(*segment)
    )]
    VolumeTooSmall {
        /// The directory.
        path: PathBuf,
        /// Total bytes of its volume.
        volume: u64,
        /// Bytes of one segment.
        segment: u64,
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

/// The smallest segment: a disk queue's `max_size` must be at least this.
pub const MIN_SEGMENT_BYTES: u64 = 256 << 10;
/// The largest segment.
pub const MAX_SEGMENT_BYTES: u64 = 64 << 20;

/// The segment size for a queue of `capacity` bytes: an eighth of it, within
/// [`MIN_SEGMENT_BYTES`]..=[`MAX_SEGMENT_BYTES`], so a queue spans several segments and a
/// partly drained queue frees space segment by segment.
pub fn segment_size_for(capacity: u64) -> u64 {
    (capacity / 8).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES)
}

/// Set once at start by `siemrelay run --acknowledge-queue-losses`: losses found by every disk
/// queue opened from now on are marked acknowledged.
static ACKNOWLEDGE_LOSSES_AT_OPEN: AtomicBool = AtomicBool::new(false);

/// Marks the losses every disk queue finds when it opens as acknowledged by the operator (the
/// `--acknowledge-queue-losses` flag of `siemrelay run`). They are still logged and counted.
pub fn acknowledge_losses_at_open(yes: bool) {
    ACKNOWLEDGE_LOSSES_AT_OPEN.store(yes, Ordering::Relaxed);
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
    /// Size at which a segment is closed and the next one started ([`segment_size_for`] of
    /// `max_bytes`, and of the volume's size when that is smaller).
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
            segment_bytes: segment_size_for(max_bytes as u64),
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
    /// Record bytes per event of the last batch offered (reservation size hint).
    per_event: AtomicUsize,
    /// Why pushes fail (no space, an I/O error), while they do: logged once per change.
    storage_failure: Mutex<Option<StorageFailure>>,
    /// Losses found at open, until an operator acknowledges them.
    losses: Mutex<LossLog>,
    /// Said once at open when the volume cannot hold `max_size`.
    space_warning: Option<String>,
    /// The exporter's status, told about refused intake and losses.
    status: OnceLock<Arc<ExporterStatus>>,
    _lock: File,
}

/// Why pushes are failing.
#[derive(Clone, Debug, PartialEq, Eq)]
struct StorageFailure {
    no_space: bool,
    reason: String,
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
        mut options: DiskQueueOptions,
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
        let volume = space::volume(dir).ok();
        if let Some(volume) = volume {
            // A queue larger than its volume gets segments sized from the volume.
            options.segment_bytes = options
                .segment_bytes
                .min(segment_size_for(volume.total.min(options.max_bytes as u64)));
            if volume.total < options.segment_bytes {
                return Err(DiskQueueError::VolumeTooSmall {
                    path: dir.to_path_buf(),
                    volume: volume.total,
                    segment: options.segment_bytes,
                });
            }
        }
        let recovered = recovery::recover(dir, fs.as_ref())?;
        let log = LogWriter::new(dir, fs, &recovered, options.segment_bytes)?;
        let space_warning = volume.and_then(|volume| {
            let usable = volume.available + space::dir_bytes(dir);
            (usable < options.max_bytes as u64).then(|| {
                format!(
                    "the queue's volume can hold {} more for this queue (free {} of {}), less than queue.max_size {}: expect backpressure when it fills",
                    space::human(usable),
                    space::human(volume.available),
                    space::human(volume.total),
                    space::human(options.max_bytes as u64)
                )
            })
        });
        if let Some(warning) = &space_warning {
            tracing::warn!(exporter = %exporter_id, dir = %dir.display(), "disk queue: {warning}");
        }
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
        register_metrics(exporter_id);
        log_recovery(exporter_id, dir, &report);
        let mut losses = LossLog::open(dir);
        let new = losses.merge(&report.losses);
        report_new_losses(exporter_id, dir, &new);
        if ACKNOWLEDGE_LOSSES_AT_OPEN.load(Ordering::Relaxed) {
            let acknowledged = losses.acknowledge_all();
            if acknowledged > 0 {
                tracing::warn!(exporter = %exporter_id, losses = acknowledged, "disk queue: losses acknowledged by --acknowledge-queue-losses");
            }
        }
        for entry in losses.unacknowledged() {
            tracing::error!(exporter = %exporter_id, found_at = %entry.found_at, "disk queue: unacknowledged loss: {}", entry.loss.describe());
        }
        if let Err(e) = losses.save() {
            tracing::warn!(exporter = %exporter_id, error = %e, "disk queue: cannot write the loss record");
        }
        let inner = Arc::new(Inner {
            id: exporter_id.to_string(),
            options,
            log,
            state: Mutex::new(state),
            pushed: Notify::new(),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            per_event: AtomicUsize::new(0),
            storage_failure: Mutex::new(None),
            losses: Mutex::new(losses),
            space_warning,
            status: OnceLock::new(),
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

    /// The size at which segments roll.
    pub fn segment_bytes(&self) -> u64 {
        self.inner.options.segment_bytes
    }

    /// Losses found at open that no operator acknowledged yet.
    pub fn unacknowledged_losses(&self) -> Vec<LossEntry> {
        relock(&self.inner.losses).unacknowledged()
    }
}

fn relock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a few field writes; a panic cannot leave them torn.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every counter of a disk queue exists at 0 from the start, so alerts on `increase(…)` see the
/// first incident.
fn register_metrics(id: &str) {
    for name in [
        "siemrelay_exporter_queue_corrupt_records_total",
        "siemrelay_exporter_queue_storage_errors_total",
        "siemrelay_exporter_queue_losses_total",
        "siemrelay_exporter_queue_records_lost_total",
        "siemrelay_exporter_queue_events_lost_total",
    ] {
        metrics::counter!(name, "exporter" => id.to_string()).increment(0);
    }
    metrics::gauge!("siemrelay_exporter_queue_intake_refused", "exporter" => id.to_string())
        .set(0.0);
}

/// Logs and counts the losses found at this open that were not reported before.
fn report_new_losses(id: &str, dir: &Path, new: &[Loss]) {
    if new.is_empty() {
        return;
    }
    let label = || ("exporter", id.to_string());
    metrics::counter!("siemrelay_exporter_queue_losses_total", &[label()])
        .increment(new.len() as u64);
    metrics::counter!("siemrelay_exporter_queue_records_lost_total", &[label()])
        .increment(new.iter().filter_map(|l| l.records).sum());
    metrics::counter!("siemrelay_exporter_queue_events_lost_total", &[label()])
        .increment(new.iter().filter_map(|l| l.events).sum());
    for loss in new {
        let events = loss
            .events
            .map_or_else(|| "unknown".to_string(), |n| n.to_string());
        let records = loss
            .records
            .map_or_else(|| "unknown".to_string(), |n| n.to_string());
        tracing::error!(
            exporter = %id,
            dir = %dir.display(),
            cause = ?loss.cause,
            first_seq = ?loss.first_seq,
            last_seq = ?loss.last_seq,
            records = %records,
            events = %events,
            "disk queue: EVENTS LOST: {} (shown in the status until acknowledged)",
            loss.describe()
        );
    }
}

fn log_recovery(id: &str, dir: &Path, report: &RecoveryReport) {
    if report.is_clean() {
        tracing::info!(exporter = %id, dir = %dir.display(), records = report.records_recovered, events = report.events_recovered, segments = report.segments, "disk queue opened");
        return;
    }
    let damaged: u64 = report
        .losses
        .iter()
        .filter(|l| l.cause != LossCause::MissingSegment)
        .filter_map(|l| l.records)
        .sum();
    metrics::counter!("siemrelay_exporter_queue_corrupt_records_total", "exporter" => id.to_string())
        .increment(damaged.max(report.records_skipped));
    for torn in report.losses.iter().filter(|l| !l.is_loss()) {
        tracing::warn!(exporter = %id, "disk queue: {} (never acknowledged to a sender: a push returns only after its record is synced)", torn.describe());
    }
    tracing::warn!(
        exporter = %id,
        dir = %dir.display(),
        records = report.records_recovered,
        events = report.events_recovered,
        corrupt_regions = report.corrupt_regions.len(),
        records_skipped = report.records_skipped,
        records_lost = report.records_lost,
        events_lost = %report.events_lost.map_or_else(|| "unknown".to_string(), |n| n.to_string()),
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
        state.used_events + events <= self.options.max_events
            && state.used_bytes + bytes <= self.options.max_bytes
    }

    /// With `drop_oldest`, drops the oldest records not in flight until `events` and `bytes`
    /// more fit; counted and logged.
    fn drop_oldest(&self, state: &mut State, events: usize, bytes: usize) {
        if self.options.when_full != WhenFull::DropOldest {
            return;
        }
        let mut dropped = 0usize;
        // Only records with unpopped events: in-flight events are never evicted.
        while !self.fits(state, events, bytes) && !state.ready.is_empty() {
            dropped += state.drop_ready(0, Handled::Dropped);
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            metrics::counter!("siemrelay_exporter_events_dropped_total", "exporter" => self.id.clone())
                .increment(dropped as u64);
            tracing::warn!(exporter = %self.id, dropped, "disk queue full: dropped the oldest events (when_full: drop_oldest)");
        }
    }

    /// Settles a reservation to the record's real size before it is written: what the
    /// reservation lacks must be free. On `Err` the reservation is given back.
    fn settle(
        &self,
        reservation: &Reservation,
        events: usize,
        bytes: usize,
    ) -> Result<(), QueueError> {
        self.per_event
            .store(bytes / events.max(1), Ordering::Relaxed);
        let mut state = self.state();
        state.used_events = state.used_events.saturating_sub(reservation.events);
        state.used_bytes = state.used_bytes.saturating_sub(reservation.bytes);
        if !self.fits(&state, events, bytes) {
            if let Some(error) = too_large(
                events,
                bytes,
                self.options.max_events,
                self.options.max_bytes,
            ) {
                return Err(error);
            }
            self.drop_oldest(&mut state, events, bytes);
            if !self.fits(&state, events, bytes) {
                return Err(QueueError::Full);
            }
        }
        state.used_events += events;
        state.used_bytes += bytes;
        Ok(())
    }

    /// Encodes, appends and syncs a batch, then makes it poppable. Runs on a blocking thread;
    /// completes even if the pushing future is dropped. Out of space, it first frees what
    /// delivered events hold (acks written, a drained segment rolled and deleted) and tries
    /// once more; a push that still fails is refused like a full queue (backpressure).
    fn store(&self, reservation: Reservation, batch: SizedBatch) -> Result<(), QueueError> {
        let enqueued_at = Timestamp::now();
        let mut rec = record::encode_data(enqueued_at, &batch.events, &batch.sizes);
        self.settle(&reservation, batch.len(), rec.bytes.len())?;
        let reservation = Reservation {
            events: batch.len(),
            bytes: rec.bytes.len(),
        };
        let mut appended = self.log.append(&mut rec, &[]);
        if let Err(e) = &appended
            && space::is_no_space(e)
            && self.make_room()
        {
            appended = self.log.append(&mut rec, &[]);
        }
        let stored = appended.and_then(|at| {
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
                let no_space = space::is_no_space(&e);
                self.storage_failed(no_space, &e);
                return Err(if no_space {
                    QueueError::Full
                } else {
                    self.storage_error(&e)
                });
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
        self.storage_recovered("a batch was stored");
        self.pushed.notify_waiters();
        Ok(())
    }

    /// Frees the space delivered events hold: writes and syncs the acks, closes the segment
    /// being written when it is drained, deletes acknowledged segments. True when a segment
    /// was closed or deleted.
    fn make_room(&self) -> bool {
        if let Err(e) = self.write_acks()
            && space::is_no_space(&e)
        {
            self.release_drained_acks();
        }
        if self.log.sync_written().is_err() {
            return false;
        }
        let rolled = self.log.roll_if_drained().unwrap_or(false);
        let removed = self.log.delete_acked_segments().unwrap_or(0);
        rolled || removed > 0
    }

    /// When not even ack records fit: the completed records of segments that hold nothing
    /// pending need no ack, since those segments can simply go (oldest first). A crash before
    /// they are deleted only delivers their records again.
    fn release_drained_acks(&self) {
        let released: Vec<(u64, u64)> = {
            let mut state = self.state();
            let busy: std::collections::HashSet<u64> =
                state.pending.values().map(|p| p.segment).collect();
            let (released, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.acks)
                .into_iter()
                .partition(|(_, segment)| !busy.contains(segment));
            state.acks = kept;
            let (dropped, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.drops)
                .into_iter()
                .partition(|(_, segment)| !busy.contains(segment));
            state.drops = kept;
            released.into_iter().chain(dropped).collect()
        };
        for (_, segment) in released {
            self.log.forget(segment);
        }
    }

    /// The volume's sizes, as text for logs and status.
    fn volume_text(&self) -> String {
        match space::volume(self.log.dir()) {
            Ok(volume) => format!(
                "free {} of {}; the queue holds {} on disk, queue.max_size {}",
                space::human(volume.available),
                space::human(volume.total),
                space::human(space::dir_bytes(self.log.dir())),
                space::human(self.options.max_bytes as u64)
            ),
            Err(e) => format!("the volume's size cannot be read: {e}"),
        }
    }

    /// Pushes fail: logs (once per change of cause), sets the gauge and the exporter's status.
    fn storage_failed(&self, no_space: bool, error: &io::Error) {
        let reason = if no_space {
            format!(
                "intake refused: no space left on the disk queue's volume ({}); senders get backpressure until delivered events free space",
                self.volume_text()
            )
        } else {
            format!(
                "intake refused: the disk queue in {} cannot store batches: {error}",
                self.log.dir().display()
            )
        };
        let failure = StorageFailure { no_space, reason };
        let mut current = relock(&self.storage_failure);
        let changed = current
            .as_ref()
            .is_none_or(|c| c.no_space != no_space || (!no_space && c.reason != failure.reason));
        if !changed {
            return;
        }
        tracing::error!(exporter = %self.id, "disk queue: {}", failure.reason);
        metrics::gauge!("siemrelay_exporter_queue_intake_refused", "exporter" => self.id.clone())
            .set(1.0);
        if let Some(status) = self.status.get() {
            status.set_intake_refused(Some(failure.reason.clone()));
        }
        *current = Some(failure);
    }

    /// Pushes work again (or space was freed): logs once, clears the gauge and the status.
    fn storage_recovered(&self, why: &str) {
        let mut current = relock(&self.storage_failure);
        if current.take().is_none() {
            return;
        }
        tracing::info!(exporter = %self.id, "disk queue: intake resumes ({why}; {})", self.volume_text());
        metrics::gauge!("siemrelay_exporter_queue_intake_refused", "exporter" => self.id.clone())
            .set(0.0);
        if let Some(status) = self.status.get() {
            status.set_intake_refused(None);
        }
    }

    /// While space is short: rolls a drained segment and deletes it, and ends the refusal
    /// once a segment's worth of space is free again.
    fn heal_space(&self) {
        let short = relock(&self.storage_failure)
            .as_ref()
            .is_some_and(|f| f.no_space);
        let idle_full_segment = self.log.current_bytes() > 0 && self.state().used_events == 0;
        if !short && !idle_full_segment {
            return;
        }
        let volume = space::volume(self.log.dir()).ok();
        let space_short = volume.is_none_or(|v| v.available < self.options.segment_bytes);
        if !short && !space_short {
            return;
        }
        self.make_room();
        if short
            && space::volume(self.log.dir())
                .is_ok_and(|v| v.available >= self.options.segment_bytes)
        {
            self.storage_recovered("delivered events freed space");
        }
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
            let flushed = self.flush();
            self.heal_space();
            match flushed {
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
        let (events, sizes) = record::decode_data(&bytes[record::HEADER_LEN..], header.counted)
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
        let bytes = bytes_hint(events, bytes, inner.per_event.load(Ordering::Relaxed));
        if let Some(error) = too_large(
            events,
            bytes,
            inner.options.max_events,
            inner.options.max_bytes,
        ) {
            return Err(error);
        }
        if !inner.fits(&state, events, bytes) {
            inner.drop_oldest(&mut state, events, bytes);
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

    fn attach(&self, status: Arc<ExporterStatus>) {
        status.set_queue_losses(self.unacknowledged_losses());
        status.set_queue_notice(self.inner.space_warning.clone());
        if let Some(failure) = relock(&self.inner.storage_failure).as_ref() {
            status.set_intake_refused(Some(failure.reason.clone()));
        }
        let _ = self.inner.status.set(status);
    }

    fn acknowledge_losses(&self) -> Result<usize, QueueError> {
        let mut losses = relock(&self.inner.losses);
        let count = losses.acknowledge_all();
        losses.save().map_err(|e| {
            QueueError::Storage(format!(
                "cannot write the loss record in {}: {e}",
                self.dir().display()
            ))
        })?;
        if count > 0 {
            tracing::warn!(exporter = %self.inner.id, losses = count, "disk queue: losses acknowledged by an operator");
        }
        if let Some(status) = self.inner.status.get() {
            status.set_queue_losses(losses.unacknowledged());
        }
        Ok(count)
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
