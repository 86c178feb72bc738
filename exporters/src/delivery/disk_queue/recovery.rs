//! Opening a queue directory: scan every segment, cut torn tails, rebuild the pending set from
//! the records themselves (data records without an ack), drop fully acknowledged old segments.
//! The same scan, without repairs, backs `inspect`.

use super::DiskQueueError;
use super::fs::Fs;
use super::record::{AckReason, DataSummary};
use super::segment::{self, Body, CorruptRegion, ScannedSegment};
use serde::{Deserialize, Serialize};
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
    /// Whether the record ends in the running event count (kind 3).
    pub counted: bool,
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
    /// Every loss found: missing sequence numbers (missing, damaged or unreadable segments) and
    /// the torn tail a crash leaves (see [`LossCause::TornTail`]).
    pub losses: Vec<Loss>,
    /// Records (data and ack records: sequence numbers) lost, torn tails not included.
    pub records_lost: u64,
    /// Events lost, torn tails not included; `None` ("unknown") when a loss's events cannot be
    /// counted from the records around it.
    #[serde(serialize_with = "count_or_unknown")]
    pub events_lost: Option<u64>,
}

impl RecoveryReport {
    /// True when nothing was damaged, missing or unreadable.
    pub fn is_clean(&self) -> bool {
        self.corrupt_regions.is_empty()
            && self.records_skipped == 0
            && self.unreadable_segments.is_empty()
            && self.losses.is_empty()
    }

    /// True when acknowledged events may be gone (anything but a torn tail).
    pub fn has_losses(&self) -> bool {
        self.losses.iter().any(Loss::is_loss)
    }
}

/// Why records are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossCause {
    /// Sequence numbers between two segments belong to no file: a segment was deleted.
    MissingSegment,
    /// Damaged bytes (garbage, zeros, a cut) where records were.
    DamagedRegion,
    /// A segment file that cannot be read.
    UnreadableSegment,
    /// Damage at the very end of the newest segment: what a crash or power loss leaves of the
    /// records being written. A push returns only after its record is fsynced, so these records
    /// were never acknowledged to a sender (unless the disk lost synced data). Counted and
    /// reported, not treated as a loss.
    TornTail,
}

/// One run of lost records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Loss {
    /// Why.
    pub cause: LossCause,
    /// Where, for a reader: the file and offset, or the files the missing range lies between.
    pub location: String,
    /// First missing sequence number, when known.
    pub first_seq: Option<u64>,
    /// Last missing sequence number, when known.
    pub last_seq: Option<u64>,
    /// Records lost (data and ack records), when known.
    #[serde(
        serialize_with = "count_or_unknown",
        deserialize_with = "count_or_unknown_de"
    )]
    pub records: Option<u64>,
    /// Events lost, when the running counts of the data records around the loss allow counting
    /// them (or the damaged record headers still show them).
    #[serde(
        serialize_with = "count_or_unknown",
        deserialize_with = "count_or_unknown_de"
    )]
    pub events: Option<u64>,
    /// An upper bound when some of the missing records were acknowledged (their events were
    /// delivered, but how many is not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_at_most: Option<u64>,
    /// Damaged bytes, when the loss is a region of a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

impl Loss {
    /// True for a loss of possibly acknowledged events (anything but a torn tail).
    pub fn is_loss(&self) -> bool {
        self.cause != LossCause::TornTail
    }

    /// One line for logs and status: "28900 events (records 120..199): segment file(s) missing
    /// between A and B".
    pub fn describe(&self) -> String {
        let events = match (self.events, self.events_at_most) {
            (Some(n), _) => format!("{n} events"),
            (None, Some(n)) => format!("at most {n} events"),
            (None, None) => "an unknown number of events".to_string(),
        };
        let seqs = match (self.first_seq, self.last_seq) {
            (Some(a), Some(b)) if a == b => format!(" (record {a})"),
            (Some(a), Some(b)) => format!(" (records {a}..{b})"),
            (Some(a), None) => format!(" (records from {a})"),
            _ => String::new(),
        };
        let cause = match self.cause {
            LossCause::MissingSegment => "segment file(s) missing",
            LossCause::DamagedRegion => "damaged data",
            LossCause::UnreadableSegment => "unreadable segment",
            LossCause::TornTail => "torn tail (records being written at a crash)",
        };
        format!("{events}{seqs}: {cause} {}", self.location)
    }
}

/// Serializes a count, or `"unknown"` for `None`.
pub fn count_or_unknown<S: serde::Serializer>(
    value: &Option<u64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(n) => serializer.serialize_u64(*n),
        None => serializer.serialize_str("unknown"),
    }
}

fn count_or_unknown_de<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(value.as_u64())
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
    /// Every acknowledged data record.
    acked: HashSet<u64>,
    /// Data records with a running count: (sequence, events before, events), by sequence.
    counted: Vec<(u64, u64, u64)>,
}

fn analyze(scans: &[ScannedSegment]) -> Analysis {
    let mut acked: HashSet<u64> = HashSet::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut data = Vec::new();
    let mut counted = Vec::new();
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
                Body::Data(summary) => {
                    if let Some(before) = summary.events_before {
                        counted.push((rec.seq, before, u64::from(summary.events)));
                    }
                    data.push(PendingRecord {
                        seq: rec.seq,
                        segment: scan.id,
                        offset: rec.offset,
                        len: rec.len,
                        counted: summary.events_before.is_some(),
                        summary: *summary,
                    })
                }
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
    counted.sort_unstable();
    Analysis {
        pending,
        per_segment,
        duplicates,
        max_seq,
        acks,
        acked,
        counted,
    }
}

/// A missing range of sequence numbers before events are counted.
struct Gap {
    cause: LossCause,
    location: String,
    range: Option<(u64, u64)>,
    /// Damaged bytes, and the events their readable headers announce.
    region: Option<(u64, u64, u64)>,
}

/// Damaged bytes, and the data records and events their readable headers announce.
fn counts(region: &CorruptRegion) -> (u64, u64, u64) {
    (
        region.len,
        region.damaged_data_records,
        region.damaged_events,
    )
}

impl Gap {
    /// The damaged end of the newest segment.
    fn torn_tail(segment: u64, region: &CorruptRegion) -> Gap {
        Gap {
            cause: LossCause::TornTail,
            location: region_text(segment, region),
            range: None,
            region: Some(counts(region)),
        }
    }
}

fn region_text(segment: u64, region: &CorruptRegion) -> String {
    format!(
        "in {} at offset {} ({} bytes)",
        segment::file_name(segment),
        region.offset,
        region.len
    )
}

/// Finds every run of missing sequence numbers. Sequence numbers go up by one from record to
/// record across segments, and a segment is named by the sequence number of its first record,
/// so a missing number means a lost record: a missing segment between two others, damage
/// inside a segment, or an unreadable file. Segments are deleted only from the oldest, so
/// nothing before the first kept segment is expected.
fn find_gaps(scan: &DirScan) -> Vec<Gap> {
    // Empty files hold nothing and tell nothing (a segment created just before a crash, or
    // one someone made): the numbering is checked between the others.
    let mut files: Vec<(u64, Option<&ScannedSegment>)> = scan
        .scans
        .iter()
        .filter(|s| s.file_len > 0)
        .map(|s| (s.id, Some(s)))
        .chain(scan.unreadable.iter().map(|(id, _)| (*id, None)))
        .collect();
    files.sort_by_key(|(id, _)| *id);
    let mut gaps = Vec::new();
    // The last sequence number accounted for, and the damaged tail of the segment holding it.
    let mut prev: Option<(u64, u64, Option<&CorruptRegion>)> = None;
    for (index, (id, scanned)) in files.iter().enumerate() {
        let id = *id;
        let next_id = files.get(index + 1).map(|(next, _)| *next);
        if let Some((last, prev_segment, tail)) = prev
            && id > last.saturating_add(1)
        {
            let range = Some((last + 1, id - 1));
            gaps.push(match tail {
                Some(region) => Gap {
                    cause: LossCause::DamagedRegion,
                    location: region_text(prev_segment, region),
                    range,
                    region: Some((
                        region.len,
                        region.damaged_data_records,
                        region.damaged_events,
                    )),
                },
                None => Gap {
                    cause: LossCause::MissingSegment,
                    location: format!(
                        "between {} and {}",
                        segment::file_name(prev_segment),
                        segment::file_name(id)
                    ),
                    range,
                    region: None,
                },
            });
        }
        let Some(scanned) = scanned else {
            gaps.push(Gap {
                cause: LossCause::UnreadableSegment,
                location: segment::file_name(id),
                range: next_id.map(|next| (id, next - 1)),
                region: None,
            });
            prev = next_id.map(|next| (next - 1, id, None));
            continue;
        };
        let tail = scanned.corrupt.iter().find(|r| r.at_tail);
        let Some(first) = scanned.records.first() else {
            // No readable record at all (zero-filled, garbage, or emptied).
            match (next_id, tail) {
                (Some(next), _) => {
                    gaps.push(Gap {
                        cause: LossCause::DamagedRegion,
                        location: format!(
                            "{} (no readable record in its {} bytes)",
                            segment::file_name(id),
                            scanned.file_len
                        ),
                        range: Some((id, next - 1)),
                        region: tail.map(counts),
                    });
                    prev = Some((next - 1, id, None));
                }
                (None, Some(region)) => gaps.push(Gap::torn_tail(id, region)),
                (None, None) => {}
            }
            continue;
        };
        // The first record is numbered like its segment; one more at offset 0 is what a queue
        // written before 0.2 did after a restart on an empty segment.
        let legacy_start = first.offset == 0 && first.seq == id + 1;
        if first.seq > id && !legacy_start {
            let head = scanned.corrupt.iter().find(|r| r.offset == 0);
            gaps.push(Gap {
                cause: LossCause::DamagedRegion,
                location: match head {
                    Some(region) => region_text(id, region),
                    None => format!("at the start of {}", segment::file_name(id)),
                },
                range: Some((id, first.seq - 1)),
                region: head.map(counts),
            });
        }
        for pair in scanned.records.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if b.seq > a.seq + 1 {
                let end = a.offset + a.len;
                let region = scanned.corrupt.iter().find(|r| r.offset == end);
                gaps.push(Gap {
                    cause: LossCause::DamagedRegion,
                    location: match region {
                        Some(region) => region_text(id, region),
                        None => format!("in {} at offset {end}", segment::file_name(id)),
                    },
                    range: Some((a.seq + 1, b.seq - 1)),
                    region: region.map(counts),
                });
            }
        }
        let last = scanned.records.last().map_or(first.seq, |r| r.seq);
        if next_id.is_none()
            && let Some(region) = tail
        {
            gaps.push(Gap::torn_tail(id, region));
        }
        prev = Some((last, id, tail));
    }
    gaps
}

/// Counts the events of each gap from the running counts of the data records around it. A gap
/// that provably held no event (only ack records) is no loss and is left out.
fn count_losses(gaps: Vec<Gap>, analysis: &Analysis) -> Vec<Loss> {
    count_gaps(gaps, analysis)
        .into_iter()
        .filter(|loss| loss.events != Some(0) && loss.events_at_most != Some(0))
        .collect()
}

fn count_gaps(gaps: Vec<Gap>, analysis: &Analysis) -> Vec<Loss> {
    let ranges: Vec<(u64, u64)> = gaps.iter().filter_map(|g| g.range).collect();
    gaps.into_iter()
        .map(|gap| {
            let mut loss = Loss {
                cause: gap.cause,
                location: gap.location,
                first_seq: gap.range.map(|r| r.0),
                last_seq: gap.range.map(|r| r.1),
                records: gap.range.map(|(a, b)| b - a + 1),
                events: None,
                events_at_most: None,
                bytes: gap.region.map(|r| r.0),
            };
            let Some((first, last)) = gap.range else {
                // A torn tail: only the headers that survive tell.
                if let Some((_, records, events)) = gap.region
                    && records > 0
                {
                    loss.records = Some(records);
                    loss.events = Some(events);
                }
                return loss;
            };
            // The damaged headers tell when every missing record shows one.
            if let Some((_, records, events)) = gap.region
                && records == last - first + 1
            {
                loss.events = Some(events);
                return loss;
            }
            let counted = &analysis.counted;
            let after = counted.partition_point(|(seq, _, _)| *seq <= last);
            let before = counted.partition_point(|(seq, _, _)| *seq < first);
            let (Some(&(low, low_before, low_events)), Some(&(high, high_before, _))) = (
                before.checked_sub(1).and_then(|i| counted.get(i)),
                counted.get(after),
            ) else {
                return loss;
            };
            // The difference covers one gap only if no other gap lies between the two records.
            let shared = ranges.iter().filter(|(a, b)| *a > low && *b < high).count();
            if shared != 1 {
                return loss;
            }
            let Some(missing) = high_before.checked_sub(low_before + low_events) else {
                return loss;
            };
            if (first..=last).any(|seq| analysis.acked.contains(&seq)) {
                loss.events_at_most = Some(missing);
            } else {
                loss.events = Some(missing);
            }
            loss
        })
        .collect()
}

fn summarize_losses(report: &mut RecoveryReport) {
    let real = report.losses.iter().filter(|l| l.is_loss());
    report.records_lost = real.clone().filter_map(|l| l.records).sum();
    report.events_lost = real.map(|l| l.events).sum();
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
    /// Events written to the queue so far (the running count the next data record carries).
    pub events_written: u64,
    /// What was found and repaired.
    pub report: RecoveryReport,
}

/// Scans and repairs `dir`.
pub fn recover(dir: &Path, fs: &dyn Fs) -> Result<Recovered, DiskQueueError> {
    let scan = scan_dir(dir)?;
    let analysis = analyze(&scan.scans);
    let losses = count_losses(find_gaps(&scan), &analysis);
    let mut report = RecoveryReport {
        records_skipped: analysis.duplicates,
        unreadable_segments: scan.unreadable.iter().map(|(_, e)| e.clone()).collect(),
        losses,
        ..Default::default()
    };
    summarize_losses(&mut report);
    let max_id = scan
        .scans
        .iter()
        .map(|s| s.id)
        .chain(scan.unreadable.iter().map(|(id, _)| *id))
        .max();
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
    // Appends continue the numbering: after the last record, and never below the name of the
    // segment they go to (an empty newest segment's first record is numbered like the file), nor
    // at the name of a newest file that cannot be appended to.
    let floor = match (append_to, max_id) {
        (Some((id, _)), _) => id,
        (None, Some(id)) => id.saturating_add(1),
        (None, None) => 0,
    };
    let next_seq = analysis
        .max_seq
        .map_or(0, |s| s.saturating_add(1))
        .max(floor);
    let events_written = analysis
        .counted
        .iter()
        .map(|(_, before, events)| before + events)
        .max()
        .unwrap_or(0);

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
        events_written,
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
    /// Missing sequence numbers (missing, damaged or unreadable segments) and torn tails.
    pub losses: Vec<Loss>,
    /// Records lost (torn tails not included).
    pub records_lost: u64,
    /// Events lost (torn tails not included), or "unknown".
    #[serde(serialize_with = "count_or_unknown")]
    pub events_lost: Option<u64>,
}

impl InspectReport {
    /// True when no damage or loss was found.
    pub fn is_clean(&self) -> bool {
        self.corrupt_regions == 0
            && self.records_skipped == 0
            && self.unreadable_segments.is_empty()
            && self.losses.is_empty()
    }
}

/// Reads a queue directory without changing anything.
pub fn inspect(dir: &Path) -> Result<InspectReport, DiskQueueError> {
    let scan = scan_dir(dir)?;
    let analysis = analyze(&scan.scans);
    let losses = count_losses(find_gaps(&scan), &analysis);
    let mut totals = RecoveryReport {
        losses,
        ..Default::default()
    };
    summarize_losses(&mut totals);
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
        losses: totals.losses,
        records_lost: totals.records_lost,
        events_lost: totals.events_lost,
    })
}
