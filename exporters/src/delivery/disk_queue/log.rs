//! The append side of the segment log: sequence numbers, segment rollover, group commit
//! (concurrent appends share one fsync), per-segment live counts and deletion of acknowledged
//! segments.

use super::DiskQueueError;
use super::fs::{Fs, SegmentFile};
use super::record::{Kind, RecordBuf};
use super::recovery::Recovered;
use super::segment;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Data records of a segment that are not yet acknowledged in the log.
#[derive(Clone, Copy, Debug, Default)]
struct Live {
    records: u64,
    /// Acks that brought `records` to zero end before this sequence number: they must be durable
    /// before the segment may go.
    emptied_before: u64,
}

struct Log {
    current: Arc<SegmentFile>,
    current_id: u64,
    offset: u64,
    next_seq: u64,
    /// Events in every data record written so far (the next data record's running count).
    events_written: u64,
    segments: BTreeMap<u64, Live>,
    /// A failed write could not be cut off: cut it before the next write.
    torn: bool,
    /// An fsync failed: start a fresh segment at the next write.
    roll_next: bool,
    /// Sequence ranges `[from, to)` whose fsync failed: their appends are reported as failed.
    sync_failures: VecDeque<(u64, u64)>,
}

/// Where an appended record went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub seq: u64,
    /// Its segment.
    pub segment: u64,
    /// Its offset in the segment.
    pub offset: u64,
}

/// The writer of one queue directory.
pub struct LogWriter {
    dir: PathBuf,
    fs: Arc<dyn Fs>,
    segment_bytes: u64,
    log: Mutex<Log>,
    /// Serializes fsyncs; whoever holds it syncs for everyone waiting.
    sync_lock: Mutex<()>,
    /// Every record with a smaller sequence number is durable.
    synced_end: AtomicU64,
}

fn relock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a few field writes; a panic cannot leave them torn.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LogWriter {
    /// Continues the log found by recovery (or starts its first segment).
    pub fn new(
        dir: &Path,
        fs: Arc<dyn Fs>,
        recovered: &Recovered,
        segment_bytes: u64,
    ) -> Result<LogWriter, DiskQueueError> {
        let mut segments: BTreeMap<u64, Live> = recovered
            .segments
            .iter()
            .map(|(id, pending)| {
                (
                    *id,
                    Live {
                        records: *pending,
                        emptied_before: 0,
                    },
                )
            })
            .collect();
        let (current, current_id, offset) = match recovered.append_to {
            Some((id, end)) => {
                let path = segment::path(dir, id);
                let file = fs
                    .open(&path)
                    .map_err(|e| DiskQueueError::io("open", &path, e))?;
                (file, id, end)
            }
            None => {
                let id = recovered.next_seq;
                let path = segment::path(dir, id);
                let file = fs
                    .create(&path)
                    .map_err(|e| DiskQueueError::io("create", &path, e))?;
                fs.sync_dir(dir)
                    .map_err(|e| DiskQueueError::io("sync", dir, e))?;
                segments.insert(id, Live::default());
                (file, id, 0)
            }
        };
        Ok(LogWriter {
            dir: dir.to_path_buf(),
            fs,
            segment_bytes: segment_bytes.max(1),
            log: Mutex::new(Log {
                current: Arc::new(current),
                current_id,
                offset,
                next_seq: recovered.next_seq,
                events_written: recovered.events_written,
                segments,
                torn: false,
                roll_next: false,
                sync_failures: VecDeque::new(),
            }),
            sync_lock: Mutex::new(()),
            synced_end: AtomicU64::new(recovered.next_seq),
        })
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Segment files the log currently keeps.
    pub fn segment_count(&self) -> usize {
        relock(&self.log).segments.len()
    }

    /// Appends a record (not yet durable: see `commit`). An ack record's `acked` (sequence,
    /// segment) pairs leave their segments' live counts.
    pub fn append(&self, rec: &mut RecordBuf, acked: &[(u64, u64)]) -> io::Result<Appended> {
        let mut log = relock(&self.log);
        if log.torn {
            self.fs.truncate(&log.current, log.offset)?;
            log.torn = false;
        }
        let len = rec.bytes.len() as u64;
        if log.offset > 0 && (log.roll_next || log.offset + len > self.segment_bytes) {
            self.roll(&mut log)?;
        }
        let seq = log.next_seq;
        rec.seal(seq, log.events_written);
        if let Err(e) = self.fs.write_at(&log.current, &rec.bytes, log.offset) {
            // Cut the partial record so the segment stays valid for the next append.
            if self.fs.truncate(&log.current, log.offset).is_err() {
                log.torn = true;
            }
            return Err(e);
        }
        let offset = log.offset;
        log.offset += len;
        log.next_seq += 1;
        log.events_written += u64::from(rec.events());
        let current_id = log.current_id;
        match rec.kind() {
            Kind::Data => log.segments.entry(current_id).or_default().records += 1,
            Kind::Ack => {
                for (_, segment) in acked {
                    if let Some(live) = log.segments.get_mut(segment) {
                        live.records = live.records.saturating_sub(1);
                        if live.records == 0 {
                            live.emptied_before = seq + 1;
                        }
                    }
                }
            }
        }
        Ok(Appended {
            seq,
            segment: current_id,
            offset,
        })
    }

    /// Closes the current segment (durably) and starts the next one.
    fn roll(&self, log: &mut Log) -> io::Result<()> {
        if let Err(e) = self.fs.sync(&log.current) {
            let from = self.synced_end.load(Ordering::Acquire);
            log.sync_failures.push_back((from, log.next_seq));
            tracing::error!(segment = %log.current.path.display(), error = %e, "disk queue: fsync failed; the batches written since the last fsync are reported as not stored");
        } else {
            self.synced_end.fetch_max(log.next_seq, Ordering::AcqRel);
        }
        let id = log.next_seq;
        let path = segment::path(&self.dir, id);
        let file = self.fs.create(&path)?;
        self.fs.sync_dir(&self.dir)?;
        log.segments.insert(id, Live::default());
        log.current = Arc::new(file);
        log.current_id = id;
        log.offset = 0;
        log.roll_next = false;
        Ok(())
    }

    /// Closes the segment being written when it holds no unacknowledged data record (and its
    /// acks are durable), so that it can be deleted like any other: a drained queue then keeps
    /// no full segment. Returns true when it rolled.
    pub fn roll_if_drained(&self) -> io::Result<bool> {
        let synced = self.synced_end.load(Ordering::Acquire);
        let mut log = relock(&self.log);
        let current = log
            .segments
            .get(&log.current_id)
            .copied()
            .unwrap_or_default();
        if log.offset == 0 || current.records > 0 || current.emptied_before > synced {
            return Ok(false);
        }
        self.roll(&mut log)?;
        Ok(true)
    }

    /// Bytes written to the segment being written.
    pub fn current_bytes(&self) -> u64 {
        relock(&self.log).offset
    }

    /// Returns once record `seq` is durable (one fsync covers every append made before it).
    pub fn commit(&self, seq: u64) -> io::Result<()> {
        {
            let _turn = relock(&self.sync_lock);
            if self.synced_end.load(Ordering::Acquire) <= seq {
                let (file, end) = {
                    let log = relock(&self.log);
                    (log.current.clone(), log.next_seq)
                };
                match self.fs.sync(&file) {
                    Ok(()) => {
                        self.synced_end.fetch_max(end, Ordering::AcqRel);
                    }
                    Err(e) => {
                        let from = self.synced_end.load(Ordering::Acquire);
                        let mut log = relock(&self.log);
                        log.sync_failures.push_back((from, end));
                        while log.sync_failures.len() > 64 {
                            log.sync_failures.pop_front();
                        }
                        log.roll_next = true;
                        tracing::error!(segment = %file.path.display(), error = %e, "disk queue: fsync failed");
                    }
                }
            }
        }
        let log = relock(&self.log);
        let failed = log
            .sync_failures
            .iter()
            .any(|(from, to)| (*from..*to).contains(&seq));
        if failed || self.synced_end.load(Ordering::Acquire) <= seq {
            return Err(io::Error::other("fsync of the queue segment failed"));
        }
        Ok(())
    }

    /// Makes every appended record durable.
    pub fn sync_written(&self) -> io::Result<()> {
        let end = relock(&self.log).next_seq;
        if end > self.synced_end.load(Ordering::Acquire) {
            self.commit(end - 1)?;
        }
        Ok(())
    }

    /// A data record of `segment` will never be acknowledged (its push failed, or it cannot be
    /// read): it no longer holds the segment.
    pub fn forget(&self, segment: u64) {
        let mut log = relock(&self.log);
        let end = log.next_seq;
        if let Some(live) = log.segments.get_mut(&segment) {
            live.records = live.records.saturating_sub(1);
            if live.records == 0 {
                live.emptied_before = end;
            }
        }
    }

    /// Deletes the oldest segments whose data records are all acknowledged by durable acks
    /// (never the segment being written). Returns how many went.
    pub fn delete_acked_segments(&self) -> io::Result<usize> {
        let synced = self.synced_end.load(Ordering::Acquire);
        let mut removed = 0;
        let mut result = Ok(());
        loop {
            let mut log = relock(&self.log);
            let Some((&id, live)) = log.segments.first_key_value() else {
                break;
            };
            if id == log.current_id || live.records > 0 || live.emptied_before > synced {
                break;
            }
            let path = segment::path(&self.dir, id);
            match self.fs.remove(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            log.segments.remove(&id);
            removed += 1;
        }
        if removed > 0 {
            self.fs.sync_dir(&self.dir)?;
        }
        result.map(|()| removed)
    }
}
