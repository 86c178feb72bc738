//! Segment files: naming, listing and scanning for records (with resynchronization past damage).

use super::record::{self, AckReason, Bad, DataSummary, HEADER_LEN, Kind, MAGIC};
use serde::Serialize;
use std::io;
use std::path::{Path, PathBuf};

/// File name of segment `id` (the sequence number of its first record).
pub fn file_name(id: u64) -> String {
    format!("{id:020}.log")
}

/// Path of segment `id` in `dir`.
pub fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(file_name(id))
}

/// Segment ids in `dir`, oldest first. Other files are ignored.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        match stem.parse::<u64>() {
            Ok(id) if entry.file_type()?.is_file() => ids.push(id),
            _ => {}
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// A record found by a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedRecord {
    /// Sequence number.
    pub seq: u64,
    /// Offset in the segment.
    pub offset: u64,
    /// Header + payload bytes.
    pub len: u64,
    /// What it holds.
    pub body: Body,
}

/// The decoded part of a scanned record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A pushed batch.
    Data(DataSummary),
    /// Data records that are fully handled.
    Ack(AckReason, Vec<u64>),
}

/// Bytes of a segment that hold no valid record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CorruptRegion {
    /// Segment id.
    pub segment: u64,
    /// Offset of the first bad byte.
    pub offset: u64,
    /// Bad bytes.
    pub len: u64,
    /// True when nothing valid follows (a torn or garbled tail, cut on open).
    pub at_tail: bool,
    /// Data records whose header (with the event count) is still readable in the damage.
    pub damaged_data_records: u64,
    /// Events those headers announce.
    pub damaged_events: u64,
}

impl CorruptRegion {
    fn new(segment: u64, buf: &[u8], from: usize, to: usize, at_tail: bool) -> CorruptRegion {
        let mut region = CorruptRegion {
            segment,
            offset: from as u64,
            len: (to - from) as u64,
            at_tail,
            damaged_data_records: 0,
            damaged_events: 0,
        };
        let bytes = &buf[from..to];
        let mut at = 0;
        while let Some(found) = bytes[at..].windows(MAGIC.len()).position(|w| w == MAGIC) {
            at += found;
            if let Some(events) = record::events_in_damaged(&buf[from + at..]) {
                region.damaged_data_records += 1;
                region.damaged_events += u64::from(events);
            }
            at += 1;
        }
        region
    }
}

/// The result of scanning one segment.
#[derive(Clone, Debug)]
pub struct ScannedSegment {
    /// Segment id.
    pub id: u64,
    /// File size when scanned.
    pub file_len: u64,
    /// End of the last valid record (where appends continue after a tail is cut).
    pub valid_end: u64,
    /// Valid records, in file order.
    pub records: Vec<ScannedRecord>,
    /// Damaged regions.
    pub corrupt: Vec<CorruptRegion>,
    /// Records with a plausible header that failed their checksum or structure check.
    pub records_skipped: u64,
}

fn parse_at(buf: &[u8], at: usize) -> Result<ScannedRecord, Bad> {
    let header = record::check(&buf[at..])?;
    let payload = &buf[at + HEADER_LEN..at + header.total_len()];
    let body = match header.kind {
        Kind::Data => {
            Body::Data(record::summarize_data(payload, header.counted).ok_or(Bad::Invalid)?)
        }
        Kind::Ack => {
            let (reason, seqs) = record::decode_ack(payload).ok_or(Bad::Invalid)?;
            Body::Ack(reason, seqs)
        }
    };
    Ok(ScannedRecord {
        seq: header.seq,
        offset: at as u64,
        len: header.total_len() as u64,
        body,
    })
}

/// The next valid record at or after `from` whose sequence number follows `last_seq`.
fn resync(buf: &[u8], from: usize, last_seq: Option<u64>) -> Option<ScannedRecord> {
    let mut at = from;
    while at + MAGIC.len() <= buf.len() {
        let found = buf[at..].windows(MAGIC.len()).position(|w| w == MAGIC)?;
        at += found;
        if let Ok(rec) = parse_at(buf, at)
            && last_seq.is_none_or(|last| rec.seq > last)
        {
            return Some(rec);
        }
        at += 1;
    }
    None
}

/// Scans a segment's bytes. Damage is skipped (resynchronizing on the next valid record) and
/// reported; nothing valid after the last good record makes a tail region.
pub fn scan(id: u64, buf: &[u8]) -> ScannedSegment {
    let mut out = ScannedSegment {
        id,
        file_len: buf.len() as u64,
        valid_end: 0,
        records: Vec::new(),
        corrupt: Vec::new(),
        records_skipped: 0,
    };
    let mut at = 0usize;
    let mut last_seq: Option<u64> = None;
    while at < buf.len() {
        let parsed = parse_at(buf, at);
        let rec = match parsed {
            Ok(rec) if last_seq.is_none_or(|last| rec.seq > last) => rec,
            other => {
                if buf[at..].starts_with(&MAGIC) && !matches!(other, Err(Bad::Short)) {
                    out.records_skipped += 1;
                }
                match resync(buf, at + 1, last_seq) {
                    Some(next) => {
                        out.corrupt.push(CorruptRegion::new(
                            id,
                            buf,
                            at,
                            next.offset as usize,
                            false,
                        ));
                        next
                    }
                    None => {
                        out.corrupt
                            .push(CorruptRegion::new(id, buf, at, buf.len(), true));
                        break;
                    }
                }
            }
        };
        at = (rec.offset + rec.len) as usize;
        last_seq = Some(rec.seq);
        out.valid_end = at as u64;
        out.records.push(rec);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemrelay_core::{Event, Timestamp};

    fn log_of(seqs: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in seqs {
            let mut rec = record::encode_data(Timestamp(1), &[Event::new("x")], &[100]);
            rec.seal(*seq, *seq * 10);
            out.extend_from_slice(&rec.bytes);
        }
        out
    }

    #[test]
    fn resyncs_past_a_garbled_middle_record() {
        let buf = log_of(&[1, 2, 3]);
        let second = scan(0, &buf).records[1].clone();
        let mut bad = buf.clone();
        bad[second.offset as usize + 40] ^= 0xff;
        let scanned = scan(0, &bad);
        let seqs: Vec<u64> = scanned.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![1, 3]);
        assert_eq!(scanned.records_skipped, 1);
        assert_eq!(
            scanned.corrupt,
            vec![CorruptRegion {
                segment: 0,
                offset: second.offset,
                len: second.len,
                at_tail: false,
                damaged_data_records: 1,
                damaged_events: 1,
            }]
        );
        assert_eq!(scanned.valid_end, buf.len() as u64);
    }

    #[test]
    fn a_torn_tail_is_a_tail_region() {
        let buf = log_of(&[1, 2]);
        let first_end = scan(0, &buf).records[0].len;
        for cut in first_end as usize + 1..buf.len() {
            let scanned = scan(0, &buf[..cut]);
            assert_eq!(scanned.records.len(), 1, "cut {cut}");
            assert_eq!(scanned.valid_end, first_end);
            assert!(scanned.corrupt[0].at_tail);
        }
    }
}
