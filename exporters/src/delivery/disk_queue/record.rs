//! Record framing and payloads.
//!
//! ```text
//! header (24 bytes, little endian)
//!   0..4   magic  b"SRQ1"
//!   4..8   crc32c of payload ++ header[8..24] (kind, reserved, length, sequence)
//!   8      kind   1 = data (no running count; written before 0.2), 2 = ack, 3 = data
//!   9..12  reserved, zero
//!   12..16 payload length
//!   16..24 sequence number (one more than the record before it, across segments)
//! data payload
//!   0..8   enqueued_at (ns since the epoch, i64)
//!   8..12  event count n
//!   12..   n × u32 estimated event size, then n lines of the core JSON form, each ending in '\n'
//!   last 8 (kind 3 only) events in all data records written to the queue before this one (u64):
//!          the running count that lets recovery count the events of records that are gone
//! ack payload
//!   0      reason: 0 = completed (delivered or dead-lettered), 1 = dropped (when_full: drop_oldest)
//!   1..5   count m
//!   5..    m × u64 sequence numbers of data records that are fully handled
//! ```

use siemrelay_core::ingest::{JsonFormError, event_from_json_form};
use siemrelay_core::{Event, Timestamp};

/// First bytes of every record.
pub const MAGIC: [u8; 4] = *b"SRQ1";
/// Bytes in a record header.
pub const HEADER_LEN: usize = 24;
/// Largest payload accepted when reading (a larger length field is corruption).
pub const MAX_PAYLOAD: usize = 1 << 30;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One pushed batch.
    Data,
    /// Data records that are fully handled.
    Ack,
}

/// Kind byte of a data record without the running count (queues written before it existed).
const KIND_DATA_UNCOUNTED: u8 = 1;
/// Kind byte of an ack record.
const KIND_ACK: u8 = 2;
/// Kind byte of a data record ending in the running event count.
const KIND_DATA: u8 = 3;
/// Bytes of the running count at the end of a data payload.
const COUNT_LEN: usize = 8;

/// Why data records were acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckReason {
    /// Every event reached a final outcome.
    Completed = 0,
    /// Evicted by `when_full: drop_oldest`.
    Dropped = 1,
}

/// A record being built: header space followed by the payload, sealed under the log lock.
pub struct RecordBuf {
    /// Header space + payload.
    pub bytes: Vec<u8>,
    /// crc32c of the payload without the parts stamped when sealing (the running count of a
    /// data record, then the header part).
    payload_crc: u32,
    kind: Kind,
    events: u32,
}

impl RecordBuf {
    fn finish(mut bytes: Vec<u8>, kind: Kind, events: u32) -> RecordBuf {
        let stamped = if kind == Kind::Data { COUNT_LEN } else { 0 };
        let payload_crc = crc32c::crc32c(&bytes[HEADER_LEN..bytes.len() - stamped]);
        let len = (bytes.len() - HEADER_LEN) as u32;
        bytes[0..4].copy_from_slice(&MAGIC);
        bytes[8] = match kind {
            Kind::Data => KIND_DATA,
            Kind::Ack => KIND_ACK,
        };
        bytes[12..16].copy_from_slice(&len.to_le_bytes());
        RecordBuf {
            bytes,
            payload_crc,
            kind,
            events,
        }
    }

    /// The record kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Events in a data record (0 for an ack).
    pub fn events(&self) -> u32 {
        self.events
    }

    /// Stamps the sequence number, a data record's running count (events written before it)
    /// and the checksum.
    pub fn seal(&mut self, seq: u64, events_before: u64) {
        let mut crc = self.payload_crc;
        if self.kind == Kind::Data {
            let at = self.bytes.len() - COUNT_LEN;
            self.bytes[at..].copy_from_slice(&events_before.to_le_bytes());
            crc = crc32c::crc32c_append(crc, &self.bytes[at..]);
        }
        self.bytes[16..24].copy_from_slice(&seq.to_le_bytes());
        let crc = crc32c::crc32c_append(crc, &self.bytes[8..HEADER_LEN]);
        self.bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Encodes a data record for `events` queued at `enqueued_at`.
pub fn encode_data(enqueued_at: Timestamp, events: &[Event], sizes: &[u32]) -> RecordBuf {
    let estimate: usize = sizes.iter().map(|s| *s as usize + 1).sum();
    let mut bytes = Vec::with_capacity(HEADER_LEN + 12 + 4 * events.len() + estimate);
    bytes.resize(HEADER_LEN, 0);
    bytes.extend_from_slice(&enqueued_at.0.to_le_bytes());
    bytes.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for index in 0..events.len() {
        let size = sizes.get(index).copied().unwrap_or(0);
        bytes.extend_from_slice(&size.to_le_bytes());
    }
    for event in events {
        event.write_json(&mut bytes);
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(&[0; COUNT_LEN]);
    RecordBuf::finish(bytes, Kind::Data, events.len() as u32)
}

/// Encodes an ack record for data records `seqs`.
pub fn encode_ack(reason: AckReason, seqs: &[u64]) -> RecordBuf {
    let mut bytes = Vec::with_capacity(HEADER_LEN + 5 + 8 * seqs.len());
    bytes.resize(HEADER_LEN, 0);
    bytes.push(reason as u8);
    bytes.extend_from_slice(&(seqs.len() as u32).to_le_bytes());
    for seq in seqs {
        bytes.extend_from_slice(&seq.to_le_bytes());
    }
    RecordBuf::finish(bytes, Kind::Ack, 0)
}

/// A checked record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Record kind.
    pub kind: Kind,
    /// Payload length.
    pub len: usize,
    /// Sequence number.
    pub seq: u64,
    /// A data record that ends in the running event count.
    pub counted: bool,
}

impl Header {
    /// Header + payload bytes.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.len
    }
}

/// Why bytes at an offset are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// The header or payload runs past the end of the data (a torn write, or a bad length).
    Short,
    /// Wrong magic, unknown kind, bad checksum or a malformed payload.
    Invalid,
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    buf.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    buf.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

/// Checks the record starting at `buf[0]` (magic, kind, length, checksum); returns its header.
pub fn check(buf: &[u8]) -> Result<Header, Bad> {
    if buf.len() < HEADER_LEN {
        return Err(if MAGIC.starts_with(&buf[..buf.len().min(4)]) {
            Bad::Short
        } else {
            Bad::Invalid
        });
    }
    if buf[0..4] != MAGIC || buf[9..12] != [0, 0, 0] {
        return Err(Bad::Invalid);
    }
    let (kind, counted) = match buf[8] {
        KIND_DATA_UNCOUNTED => (Kind::Data, false),
        KIND_ACK => (Kind::Ack, false),
        KIND_DATA => (Kind::Data, true),
        _ => return Err(Bad::Invalid),
    };
    let len = u32_at(buf, 12).ok_or(Bad::Invalid)? as usize;
    if len > MAX_PAYLOAD {
        return Err(Bad::Invalid);
    }
    let seq = u64_at(buf, 16).ok_or(Bad::Invalid)?;
    let payload = buf.get(HEADER_LEN..HEADER_LEN + len).ok_or(Bad::Short)?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(payload), &buf[8..HEADER_LEN]);
    if u32_at(buf, 4) != Some(crc) {
        return Err(Bad::Invalid);
    }
    Ok(Header {
        kind,
        len,
        seq,
        counted,
    })
}

/// The event count of a data record from its first payload bytes, when a damaged record still
/// shows them: `buf` starts at a record's magic.
pub fn events_in_damaged(buf: &[u8]) -> Option<u32> {
    if buf.get(0..4)? != MAGIC || !matches!(buf.get(8)?, &KIND_DATA | &KIND_DATA_UNCOUNTED) {
        return None;
    }
    u32_at(buf, HEADER_LEN + 8)
}

/// What the recovery scan needs from a data payload (the events stay undecoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSummary {
    /// When the batch was queued.
    pub enqueued_at: Timestamp,
    /// Events in the record.
    pub events: u32,
    /// Sum of the events' estimated sizes.
    pub estimated_bytes: u64,
    /// Events in all data records written before this one (records written before the count
    /// existed have none).
    pub events_before: Option<u64>,
}

/// Checks a data payload's structure and summarizes it; `counted` payloads end in the
/// running count.
pub fn summarize_data(payload: &[u8], counted: bool) -> Option<DataSummary> {
    let (payload, events_before) = if counted {
        let at = payload.len().checked_sub(COUNT_LEN)?;
        (&payload[..at], Some(u64_at(payload, at)?))
    } else {
        (payload, None)
    };
    let enqueued_at = Timestamp(u64_at(payload, 0)? as i64);
    let events = u32_at(payload, 8)?;
    let sizes_end = 12usize.checked_add((events as usize).checked_mul(4)?)?;
    let sizes = payload.get(12..sizes_end)?;
    let estimated_bytes = sizes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64)
        .sum();
    let lines = &payload[sizes_end..];
    let newlines = lines.iter().filter(|b| **b == b'\n').count();
    if newlines != events as usize || lines.last().is_some_and(|b| *b != b'\n') {
        return None;
    }
    Some(DataSummary {
        enqueued_at,
        events,
        estimated_bytes,
        events_before,
    })
}

/// Why a data record's payload cannot be decoded (its checksum passed: a bug or a record
/// written by another version, never a torn write).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The counts, sizes and lines do not add up.
    #[error("malformed data record")]
    Malformed,
    /// A line is not a JSON object.
    #[error("event {line} of the record is not a JSON object: {reason}")]
    NotAnObject {
        /// The line's index in the record.
        line: usize,
        /// The JSON parser's message.
        reason: String,
    },
    /// A line is an object that is not a valid event.
    #[error("event {line} of the record: {source}")]
    Event {
        /// The line's index in the record.
        line: usize,
        /// What ingest refused.
        source: siemrelay_core::ingest::IngestError,
    },
}

/// Decodes a data payload into its events and their estimated sizes.
pub fn decode_data(payload: &[u8], counted: bool) -> Result<(Vec<Event>, Vec<u32>), DecodeError> {
    let summary = summarize_data(payload, counted).ok_or(DecodeError::Malformed)?;
    let count = summary.events as usize;
    let sizes: Vec<u32> = payload[12..12 + 4 * count]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut events = Vec::with_capacity(count);
    for (line_no, line) in payload[12 + 4 * count..]
        .split(|b| *b == b'\n')
        .take(count)
        .enumerate()
    {
        let fields = event_from_json_form(line).map_err(|e| match e {
            JsonFormError::NotAnObject(reason) => DecodeError::NotAnObject {
                line: line_no,
                reason,
            },
            JsonFormError::Event(source) => DecodeError::Event {
                line: line_no,
                source,
            },
        })?;
        let mut event = Event::from(fields);
        // The queued bytes are the event's JSON form: exporters send them as they are.
        event.keep_written_json(line.to_vec());
        events.push(event);
    }
    Ok((events, sizes))
}

/// Decodes an ack payload.
pub fn decode_ack(payload: &[u8]) -> Option<(AckReason, Vec<u64>)> {
    let reason = match payload.first()? {
        0 => AckReason::Completed,
        1 => AckReason::Dropped,
        _ => return None,
    };
    let count = u32_at(payload, 1)? as usize;
    let list = payload.get(5..5 + count.checked_mul(8)?)?;
    if list.len() + 5 != payload.len() {
        return None;
    }
    let seqs = list
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    Some((reason, seqs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemrelay_core::Severity;

    #[test]
    fn data_record_round_trips_with_event_ids() {
        let mut event = Event::new("login");
        event.summary = Some("line\nbreak \"quoted\"".into());
        event
            .attributes
            .insert("user".into(), serde_json::json!({"name": "ann", "n": 3}));
        let mut high = Event::new("other");
        high.severity = Severity::from_name("high").unwrap();
        high.source = Some("edr".into());
        high.resource.insert("host".into(), "h1".into());
        let events = vec![event, high];
        let sizes = vec![10, 20];
        let mut rec = encode_data(Timestamp(42), &events, &sizes);
        rec.seal(7, 1234);
        let header = check(&rec.bytes).unwrap();
        assert_eq!(
            (header.kind, header.seq, header.counted),
            (Kind::Data, 7, true)
        );
        let payload = &rec.bytes[HEADER_LEN..];
        let summary = summarize_data(payload, true).unwrap();
        assert_eq!(summary.enqueued_at, Timestamp(42));
        assert_eq!((summary.events, summary.estimated_bytes), (2, 30));
        assert_eq!(summary.events_before, Some(1234));
        assert_eq!(events_in_damaged(&rec.bytes[..HEADER_LEN + 12]), Some(2));
        let (decoded, decoded_sizes) = decode_data(payload, true).unwrap();
        assert_eq!(decoded, events);
        assert_eq!(decoded_sizes, sizes);
        for (decoded, event) in decoded.iter().zip(&events) {
            // The queued bytes are sent as they are, with no second serialization.
            assert!(decoded.written_json().is_some());
            assert_eq!(decoded.to_json_bytes(), event.to_json_bytes());
        }
    }

    #[test]
    fn any_changed_byte_fails_the_check() {
        let mut rec = encode_ack(AckReason::Completed, &[1, 2, 3]);
        rec.seal(9, 0);
        assert!(check(&rec.bytes).is_ok());
        for at in 0..rec.bytes.len() {
            let mut bad = rec.bytes.clone();
            bad[at] ^= 0x40;
            assert!(check(&bad).is_err(), "flip at {at} went unnoticed");
        }
        for cut in 0..rec.bytes.len() {
            assert!(check(&rec.bytes[..cut]).is_err(), "cut at {cut}");
        }
        let (reason, seqs) = decode_ack(&rec.bytes[HEADER_LEN..]).unwrap();
        assert_eq!((reason, seqs), (AckReason::Completed, vec![1, 2, 3]));
    }
}
