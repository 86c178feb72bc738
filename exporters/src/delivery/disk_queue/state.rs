//! The in-memory side of a disk queue: records waiting to be popped (some with their events
//! cached), per-record completion counters, capacity accounting and acks waiting to be written.

use super::recovery::PendingRecord;
use crate::delivery::queue::{Chunk, PopLimits, Receipt, RecordPart};
use siemrelay_core::{Event, Timestamp};
use std::collections::{HashMap, VecDeque};

/// Events of a record held in memory, consumed from the front.
pub struct Loaded {
    events: std::vec::IntoIter<Event>,
    sizes: Vec<u32>,
}

/// What became of a record's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Delivered or dead-lettered: ack as completed.
    Completed,
    /// Evicted by `drop_oldest`: ack as dropped.
    Dropped,
    /// Unreadable: leave the queue without an ack (a readable copy is retried after a restart).
    Lost,
}

impl Loaded {
    /// Events not yet taken.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Events and their estimated sizes, in record order.
    pub fn new(events: Vec<Event>, sizes: Vec<u32>) -> Loaded {
        Loaded {
            events: events.into_iter(),
            sizes,
        }
    }
}

/// A data record with events not yet popped.
pub struct Ready {
    /// Sequence number.
    pub seq: u64,
    /// Segment holding it.
    pub segment: u64,
    /// Offset in the segment.
    pub offset: u64,
    /// Header + payload bytes.
    pub len: u64,
    /// When it was queued.
    pub enqueued_at: Timestamp,
    /// Events in the record.
    pub total: u32,
    /// Events already popped.
    pub taken: u32,
    /// Estimated bytes not yet popped.
    pub estimated_left: usize,
    /// The events, when in memory.
    pub loaded: Option<Loaded>,
}

impl Ready {
    /// A record found on open (events on disk only).
    pub fn recovered(record: &PendingRecord) -> Ready {
        Ready {
            seq: record.seq,
            segment: record.segment,
            offset: record.offset,
            len: record.len,
            enqueued_at: record.summary.enqueued_at,
            total: record.summary.events,
            taken: 0,
            estimated_left: record.summary.estimated_bytes as usize,
            loaded: None,
        }
    }

    fn untaken(&self) -> usize {
        (self.total - self.taken) as usize
    }
}

/// A data record not yet acknowledged (queued or in flight).
pub struct Pending {
    /// Segment holding it.
    pub segment: u64,
    /// Its bytes on disk (what capacity counts).
    pub disk_bytes: usize,
    /// Events not yet completed.
    pub remaining: u32,
}

/// Everything a disk queue keeps in memory.
#[derive(Default)]
pub struct State {
    /// Records with events to pop, by sequence number.
    pub ready: VecDeque<Ready>,
    /// Events in `ready`.
    pub ready_events: usize,
    /// Estimated bytes in `ready`.
    pub ready_bytes: usize,
    /// Records not yet acknowledged.
    pub pending: HashMap<u64, Pending>,
    /// Queued + in flight + reserved events.
    pub used_events: usize,
    /// Disk bytes of pending records + reserved bytes.
    pub used_bytes: usize,
    /// Estimated bytes of the events held in memory.
    pub cached_bytes: usize,
    /// Completed records whose ack is not yet written: (sequence, segment).
    pub acks: Vec<(u64, u64)>,
    /// Dropped records whose ack is not yet written.
    pub drops: Vec<(u64, u64)>,
    /// No more reservations.
    pub closed: bool,
}

impl State {
    /// Adds a record to the pop order (kept sorted by sequence number).
    pub fn insert_ready(&mut self, ready: Ready) {
        self.ready_events += ready.untaken();
        self.ready_bytes += ready.estimated_left;
        if ready.loaded.is_some() {
            self.cached_bytes += ready.estimated_left;
        }
        if self.ready.back().is_none_or(|last| last.seq < ready.seq) {
            self.ready.push_back(ready);
        } else {
            let at = self.ready.partition_point(|r| r.seq < ready.seq);
            self.ready.insert(at, ready);
        }
    }

    /// Where record `seq` is in `ready`.
    pub fn ready_index(&self, seq: u64) -> Option<usize> {
        let at = self.ready.partition_point(|r| r.seq < seq);
        (self.ready.get(at)?.seq == seq).then_some(at)
    }

    /// Removes a ready record's unpopped events; returns how many (a record whose popped part
    /// is still in flight is acknowledged when that part completes).
    pub fn drop_ready(&mut self, index: usize, handled: Handled) -> usize {
        let Some(ready) = self.ready.remove(index) else {
            return 0;
        };
        let untaken = ready.untaken();
        self.ready_events -= untaken;
        self.ready_bytes -= ready.estimated_left;
        if ready.loaded.is_some() {
            self.cached_bytes -= ready.estimated_left;
        }
        self.finish_events(ready.seq, untaken as u32, handled);
        untaken
    }

    /// Counts `events` of record `seq` as finally handled (or dropped); a record with none left
    /// leaves the pending set and is queued for an ack. Unknown records are ignored.
    pub fn finish_events(&mut self, seq: u64, events: u32, handled: Handled) {
        let Some(pending) = self.pending.get_mut(&seq) else {
            return;
        };
        let n = events.min(pending.remaining);
        pending.remaining -= n;
        self.used_events = self.used_events.saturating_sub(n as usize);
        if pending.remaining == 0 {
            let segment = pending.segment;
            let disk = pending.disk_bytes;
            self.pending.remove(&seq);
            self.used_bytes = self.used_bytes.saturating_sub(disk);
            match handled {
                Handled::Completed => self.acks.push((seq, segment)),
                Handled::Dropped => self.drops.push((seq, segment)),
                Handled::Lost => {}
            }
        }
    }

    /// The first record a chunk within `limits` would need that is not in memory.
    pub fn unloaded_for(&self, limits: PopLimits) -> Option<&Ready> {
        let (mut events, mut bytes) = (0usize, 0usize);
        for ready in &self.ready {
            if ready.loaded.is_none() {
                return Some(ready);
            }
            events += ready.untaken();
            bytes += ready.estimated_left;
            if events >= limits.max_events || bytes >= limits.max_bytes {
                break;
            }
        }
        None
    }

    /// Takes a chunk from the front of `ready` (stopping at a record not in memory).
    pub fn take_chunk(&mut self, limits: PopLimits) -> Chunk {
        let enqueued_at = self.ready.front().map_or(Timestamp(0), |r| r.enqueued_at);
        let mut events: Vec<Event> = Vec::with_capacity(limits.max_events.min(self.ready_events));
        let mut bytes = 0usize;
        let mut records = Vec::new();
        let mut full = false;
        while !full {
            let Some(front) = self.ready.front_mut() else {
                break;
            };
            let Some(loaded) = front.loaded.as_mut() else {
                break;
            };
            let mut part = 0u32;
            let mut part_bytes = 0usize;
            while front.taken < front.total {
                let size = loaded.sizes.get(front.taken as usize).copied().unwrap_or(0) as usize;
                if !events.is_empty()
                    && (events.len() >= limits.max_events || bytes + size > limits.max_bytes)
                {
                    full = true;
                    break;
                }
                let Some(event) = loaded.events.next() else {
                    break;
                };
                events.push(event);
                bytes += size;
                part_bytes += size;
                part += 1;
                front.taken += 1;
            }
            front.estimated_left = front.estimated_left.saturating_sub(part_bytes);
            self.cached_bytes = self.cached_bytes.saturating_sub(part_bytes);
            if part > 0 {
                records.push(RecordPart {
                    seq: front.seq,
                    events: part,
                });
            }
            if front.taken >= front.total {
                let done = front.estimated_left;
                self.cached_bytes = self.cached_bytes.saturating_sub(done);
                self.ready_bytes = self.ready_bytes.saturating_sub(done);
                self.ready.pop_front();
            } else if part == 0 {
                break;
            }
        }
        self.ready_events -= events.len();
        self.ready_bytes = self.ready_bytes.saturating_sub(bytes);
        Chunk {
            receipt: Receipt {
                events: events.len(),
                bytes,
                records,
            },
            events,
            enqueued_at,
        }
    }
}
