//! Opening a queue directory: scan every segment, cut torn tails, rebuild the pending set from
//! the records themselves (data records without an ack), drop fully acknowledged old segments.
//! The same scan, without repairs, backs `inspect`.

use super::DiskQueueError;
use super::fs::Fs;
use super::record::{AckReason, DataSummary};
use super::segment::{self, Body, CorruptRegion, ScannedSegment};
use serde::Serialize;
use siemrelay_core::Timestamp;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// A data record without an ack, found on open.
#[derive(Clone, Debug)]
pub struct PendingRecord {
    /// Sequence number.
    pub seq: u64,
    /// Segment holding it.
    pub segment: u64,
    /// Offset in the segment.
    pub offset: u64,
    /// Header + payload bytes.
    pub len: u64,
    /// Enqueue time, events, estimated bytes.
    pub summary: DataSummary,
}

/// What opening a queue directory found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Segments kept.
    pub segments: usize,
    /// Data records pending (to be delivered, in flight ones included).
    pub records_recovered: usize,
    /// Events in them.
    pub events_recovered: usize,
    /// Their bytes on disk.
    pub bytes_recovered: u64,
    /// Damaged regions found (torn tails included).
    pub corrupt_regions: Vec<CorruptRegion>,
    /// Records with a plausible header that failed their checksum or structure check, or
    /// repeated a sequence number.
    pub records_skipped: u64,
    /// Damaged bytes skipped inside segments (left in place, skipped again on every open).
    pub bytes_skipped: u64,
    /// Bytes cut from segment tails.
    pub bytes_truncated: u64,
    /// Fully acknowledged or empty segments deleted.
    pub segments_removed: usize,
    /// Segment files that could not be read (left untouched, their records not delivered).
    pub unreadable_segments: Vec<String>,
}

impl RecoveryReport {
    /// True when nothing was damaged or unreadable.
    pub fn is_clean(&self) -> bool {
        self.corrupt_regions.is_empty()
            && self.records_skipped == 0
            && self.unreadable_segments.is_empty()
    }
}

/// Scanned segments of a directory plus the files that could not be read.
struct DirScan {
    scans: Vec<ScannedSegment>,
    unreadable: Vec<(u64, String)>,
}

fn scan_dir(dir: &Path) -> Result<DirScan, DiskQueueError> {
    let ids = segment::list(dir).map_err(|e| DiskQueueError::io("list", dir, e))?;
    let mut out = DirScan {
        scans: Vec::with_capacity(ids.len()),
        unreadable: Vec::new(),
    };
    for id in ids {
        let path = segment::path(dir, id);
        match std::fs::read(&path) {
            Ok(bytes) => out.scans.push(segment::scan(id, &bytes)),
            Err(e) => out
                .unreadable
                .push((id, format!("{}: {e}", path.display()))),
        }
    }
    Ok(out)
}

/// Pending records and per-segment counts derived from scans.
struct Analysis {
    pending: Vec<PendingRecord>,
    /// Data records per segment, and how many of them are pending.
    per_segment: BTreeMap<u64, (u64, u64)>,
    duplicates: u64,
    max_seq: Option<u64>,
    acks: (u64, u64),
}

fn analyze(scans: &[ScannedSegment]) -> Analysis {
    let mut acked: HashSet<u64> = HashSet::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut data = Vec::new();
    let mut duplicates = 0;
    let mut max_seq = None;
    let mut acks = (0u64, 0u64);
    for scan in scans {
        for rec in &scan.records {
            max_seq = max_seq.max(Some(rec.seq));
            if !seen.insert(rec.seq) {
                duplicates += 1;
                continue;
            }
            match &rec.body {
                Body::Data(summary) => data.push(PendingRecord {
                    seq: rec.seq,
                    segment: scan.id,
                    offset: rec.offset,
                    len: rec.len,
                    summary: *summary,
                }),
                Body::Ack(reason, seqs) => {
                    match reason {
                        AckReason::Completed => acks.0 += seqs.len() as u64,
                        AckReason::Dropped => acks.1 += seqs.len() as u64,
                    }
                    acked.extend(seqs.iter().copied());
                }
            }
        }
    }
    let mut per_segment: BTreeMap<u64, (u64, u64)> = scans.iter().map(|s| (s.id, (0, 0))).collect();
    let mut pending = Vec::new();
    for rec in data {
        let counts = per_segment.entry(rec.segment).or_default();
        counts.0 += 1;
        if !acked.contains(&rec.seq) {
            counts.1 += 1;
            pending.push(rec);
        }
    }
    pending.sort_by_key(|r| r.seq);
    Analysis {
        pending,
        per_segment,
        duplicates,
        max_seq,
        acks,
    }
}

/// The state a queue starts from.
pub struct Recovered {
    /// Pending data records, by sequence number.
    pub pending: Vec<PendingRecord>,
    /// Kept segments (id → pending data records), oldest first.
    pub segments: BTreeMap<u64, u64>,
    /// The newest kept segment and where appends continue, when it can be appended to.
    pub append_to: Option<(u64, u64)>,
    /// The next sequence number to use.
    pub next_seq: u64,
    /// What was found and repaired.
    pub report: RecoveryReport,
}

/// Scans and repairs `dir`.
pub fn recover(dir: &Path, fs: &dyn Fs) -> Result<Recovered, DiskQueueError> {
    let scan = scan_dir(dir)?;
    let analysis = analyze(&scan.scans);
    let mut report = RecoveryReport {
        records_skipped: analysis.duplicates,
        unreadable_segments: scan.unreadable.iter().map(|(_, e)| e.clone()).collect(),
        ..Default::default()
    };
    let max_id = scan
        .scans
        .iter()
        .map(|s| s.id)
        .chain(scan.unreadable.iter().map(|(id, _)| *id))
        .max();
    let next_seq = analysis
        .max_seq
        .map_or(0, |s| s.saturating_add(1))
        .max(max_id.map_or(0, |id| id.saturating_add(1)));
    let newest = scan.scans.last().map(|s| s.id);
    let newest_is_last_file = newest.is_some() && newest == max_id;
    let mut append_to = None;
    let mut dir_changed = false;

    for scanned in &scan.scans {
        report.records_skipped += scanned.records_skipped;
        for region in &scanned.corrupt {
            if region.at_tail {
                report.bytes_truncated += region.len;
            } else {
                report.bytes_skipped += region.len;
            }
            report.corrupt_regions.push(region.clone());
        }
        let path = segment::path(dir, scanned.id);
        let is_newest = newest_is_last_file && Some(scanned.id) == newest;
        if scanned.valid_end < scanned.file_len {
            let cut = fs
                .open(&path)
                .and_then(|file| {
                    fs.truncate(&file, scanned.valid_end)?;
                    fs.sync(&file)
                })
                .inspect_err(|e| {
                    tracing::error!(segment = %path.display(), error = %e, "disk queue: cannot cut the damaged tail of a segment; it will be skipped again on the next open");
                });
            dir_changed = true;
            if is_newest && cut.is_ok() {
                append_to = Some((scanned.id, scanned.valid_end));
            }
        } else if is_newest {
            append_to = Some((scanned.id, scanned.valid_end));
        }
    }

    // Drop fully acknowledged segments from the oldest on; always keep the newest (appends
    // continue there, and it keeps the sequence numbers going up).
    let mut segments: BTreeMap<u64, u64> = analysis
        .per_segment
        .iter()
        .map(|(id, (_, pending))| (*id, *pending))
        .collect();
    while let Some((&id, &pending)) = segments.first_key_value() {
        if pending > 0 || Some(id) == newest {
            break;
        }
        let path = segment::path(dir, id);
        if let Err(e) = fs.remove(&path) {
            tracing::warn!(segment = %path.display(), error = %e, "disk queue: cannot delete a fully acknowledged segment");
            break;
        }
        segments.remove(&id);
        report.segments_removed += 1;
        dir_changed = true;
    }
    if let Some((id, _)) = append_to {
        let path = segment::path(dir, id);
        fs.open(&path)
            .and_then(|file| fs.sync(&file))
            .map_err(|e| DiskQueueError::io("sync", &path, e))?;
    }
    if dir_changed {
        fs.sync_dir(dir)
            .map_err(|e| DiskQueueError::io("sync", dir, e))?;
    }
    report.segments = segments.len();
    report.records_recovered = analysis.pending.len();
    report.events_recovered = analysis
        .pending
        .iter()
        .map(|r| r.summary.events as usize)
        .sum();
    report.bytes_recovered = analysis.pending.iter().map(|r| r.len).sum();
    Ok(Recovered {
        pending: analysis.pending,
        segments,
        append_to,
        next_seq,
        report,
    })
}

/// One segment in an inspection.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentReport {
    /// File name.
    pub file: String,
    /// File size.
    pub bytes: u64,
    /// Data records.
    pub data_records: u64,
    /// Data records not yet acknowledged.
    pub pending_records: u64,
    /// Damaged regions.
    pub corrupt_regions: Vec<CorruptRegion>,
}

/// What `inspect` found in a queue directory (nothing is modified).
#[derive(Clone, Debug, Serialize)]
pub struct InspectReport {
    /// The directory.
    pub directory: PathBuf,
    /// Segments, oldest first.
    pub segments: Vec<SegmentReport>,
    /// Data records waiting for delivery (or in flight).
    pub pending_records: usize,
    /// Events in them.
    pub pending_events: usize,
    /// Their bytes on disk.
    pub pending_bytes: u64,
    /// Estimated encoded bytes of the pending events.
    pub pending_estimated_bytes: u64,
    /// Enqueue time of the oldest pending record (RFC 3339).
    pub oldest_enqueued_at: Option<String>,
    /// Data records acknowledged as completed / as dropped by `drop_oldest`, in the kept segments.
    pub acked_records: u64,
    /// Data records dropped by `when_full: drop_oldest`, in the kept segments.
    pub dropped_records: u64,
    /// Damaged regions in all segments.
    pub corrupt_regions: usize,
    /// Damaged bytes (a torn tail, cut on the next open, included).
    pub corrupt_bytes: u64,
    /// Records that failed their checksum or repeated a sequence number.
    pub records_skipped: u64,
    /// Segment files that could not be read.
    pub unreadable_segments: Vec<String>,
}

impl InspectReport {
    /// True when no damage was found.
    pub fn is_clean(&self) -> bool {
        self.corrupt_regions == 0
            && self.records_skipped == 0
            && self.unreadable_segments.is_empty()
    }
}

/// Reads a queue directory without changing anything.
pub fn inspect(dir: &Path) -> Result<InspectReport, DiskQueueError> {
    let scan = scan_dir(dir)?;
    let analysis = analyze(&scan.scans);
    let segments: Vec<SegmentReport> = scan
        .scans
        .iter()
        .map(|s| {
            let (data, pending) = analysis.per_segment.get(&s.id).copied().unwrap_or_default();
            SegmentReport {
                file: segment::file_name(s.id),
                bytes: s.file_len,
                data_records: data,
                pending_records: pending,
                corrupt_regions: s.corrupt.clone(),
            }
        })
        .collect();
    let oldest = analysis.pending.iter().map(|r| r.summary.enqueued_at).min();
    Ok(InspectReport {
        directory: dir.to_path_buf(),
        pending_records: analysis.pending.len(),
        pending_events: analysis
            .pending
            .iter()
            .map(|r| r.summary.events as usize)
            .sum(),
        pending_bytes: analysis.pending.iter().map(|r| r.len).sum(),
        pending_estimated_bytes: analysis
            .pending
            .iter()
            .map(|r| r.summary.estimated_bytes)
            .sum(),
        oldest_enqueued_at: oldest.map(Timestamp::to_rfc3339),
        acked_records: analysis.acks.0,
        dropped_records: analysis.acks.1,
        corrupt_regions: scan.scans.iter().map(|s| s.corrupt.len()).sum(),
        corrupt_bytes: scan
            .scans
            .iter()
            .flat_map(|s| s.corrupt.iter().map(|r| r.len))
            .sum(),
        records_skipped: analysis.duplicates
            + scan.scans.iter().map(|s| s.records_skipped).sum::<u64>(),
        unreadable_segments: scan.unreadable.into_iter().map(|(_, e)| e).collect(),
        segments,
    })
}
