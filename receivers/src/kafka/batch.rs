//! A batch of consumed messages kept as raw bytes until the pipeline accepted it: the events are
//! decoded from it for every attempt (a refused batch is handed over again, decoded anew), and
//! its offsets are committed only after the pipeline accepted it.

use super::decode::{Origin, decode};
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::message::{BorrowedMessage, Message};
use siemrelay_core::ingest::IngestOptions;
use siemrelay_core::{Event, Timestamp};
use std::ops::Range;

#[derive(Clone, Debug)]
struct RawMessage {
    topic: usize,
    partition: i32,
    offset: i64,
    payload: Option<Range<usize>>,
}

/// Messages of one batch, their payloads in one buffer.
#[derive(Debug, Default)]
pub struct RawBatch {
    topics: Vec<String>,
    bytes: Vec<u8>,
    messages: Vec<RawMessage>,
}

/// What decoding a batch found.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    /// One event per message, in consumption order.
    pub events: Vec<Event>,
    /// Messages that were not JSON objects.
    pub malformed: usize,
    /// Fields that did not fit their well-known slot.
    pub mapping_errors: usize,
}

impl RawBatch {
    /// Messages held.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True when no message is held.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Payload bytes held.
    pub fn payload_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Copies a consumed message in.
    pub fn push(&mut self, message: &BorrowedMessage<'_>) {
        self.push_raw(
            message.topic(),
            message.partition(),
            message.offset(),
            message.payload(),
        );
    }

    /// Adds a message given by its parts.
    pub fn push_raw(&mut self, topic: &str, partition: i32, offset: i64, payload: Option<&[u8]>) {
        let topic = match self.topics.iter().position(|t| t == topic) {
            Some(index) => index,
            None => {
                self.topics.push(topic.to_string());
                self.topics.len() - 1
            }
        };
        let payload = payload.map(|bytes| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(bytes);
            start..self.bytes.len()
        });
        self.messages.push(RawMessage {
            topic,
            partition,
            offset,
            payload,
        });
    }

    /// Drops the messages of partitions for which `keep` says false (revoked in a rebalance:
    /// their new owner reads them again from the committed offset). Returns how many went.
    pub fn retain_partitions(&mut self, mut keep: impl FnMut(&str, i32) -> bool) -> usize {
        let before = self.messages.len();
        let topics = &self.topics;
        self.messages
            .retain(|m| keep(&topics[m.topic], m.partition));
        let dropped = before - self.messages.len();
        if self.messages.is_empty() {
            self.bytes.clear();
        }
        dropped
    }

    /// Decodes every message into an event.
    pub fn decode(&self, options: &IngestOptions) -> DecodedBatch {
        let observed = Timestamp::now();
        let mut out = DecodedBatch {
            events: Vec::with_capacity(self.messages.len()),
            ..Default::default()
        };
        for message in &self.messages {
            let origin = Origin {
                topic: &self.topics[message.topic],
                partition: message.partition,
                offset: message.offset,
            };
            let payload = message.payload.clone().map(|range| &self.bytes[range]);
            let decoded = decode(payload, origin, options, observed);
            out.malformed += usize::from(decoded.malformed);
            out.mapping_errors += decoded.mapping_errors;
            out.events.push(decoded.event);
        }
        out
    }

    /// The partitions this batch holds messages of, once each.
    pub fn partitions(&self) -> Vec<(&str, i32)> {
        let mut list: Vec<(&str, i32)> = Vec::new();
        for message in &self.messages {
            let entry = (self.topics[message.topic].as_str(), message.partition);
            if !list.contains(&entry) {
                list.push(entry);
            }
        }
        list
    }

    /// The offsets to commit once the batch is accepted: per partition, one past its last
    /// message.
    pub fn next_offsets(&self) -> Vec<(&str, i32, i64)> {
        let mut list: Vec<(&str, i32, i64)> = Vec::new();
        for message in &self.messages {
            let topic = self.topics[message.topic].as_str();
            let next = message.offset + 1;
            match list
                .iter_mut()
                .find(|(t, p, _)| *t == topic && *p == message.partition)
            {
                Some(entry) => entry.2 = entry.2.max(next),
                None => list.push((topic, message.partition, next)),
            }
        }
        list
    }

    /// Per partition: one past its last message, and its message count (what
    /// `commit: after_delivery` tracks).
    pub fn spans(&self) -> Vec<(&str, i32, i64, usize)> {
        let mut list: Vec<(&str, i32, i64, usize)> = Vec::new();
        for message in &self.messages {
            let topic = self.topics[message.topic].as_str();
            let next = message.offset + 1;
            match list
                .iter_mut()
                .find(|(t, p, _, _)| *t == topic && *p == message.partition)
            {
                Some(entry) => {
                    entry.2 = entry.2.max(next);
                    entry.3 += 1;
                }
                None => list.push((topic, message.partition, next, 1)),
            }
        }
        list
    }

    /// [`RawBatch::next_offsets`] as a list librdkafka takes.
    pub fn offsets_to_commit(&self) -> TopicPartitionList {
        offset_list(self.next_offsets())
    }

    /// Empties the batch, keeping its buffers for the next one.
    pub fn clear(&mut self) {
        self.topics.clear();
        self.bytes.clear();
        self.messages.clear();
    }
}

/// Offsets to commit (topic, partition, next offset) as a list librdkafka takes.
pub fn offset_list<T: AsRef<str>>(
    offsets: impl IntoIterator<Item = (T, i32, i64)>,
) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (topic, partition, next) in offsets {
        // Adding a partition to a fresh list only fails for an invalid offset, and `next` is
        // always a concrete offset.
        let _ = list.add_partition_offset(topic.as_ref(), partition, Offset::Offset(next));
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_partitions_and_revocation() {
        let mut batch = RawBatch::default();
        batch.push_raw("a", 0, 10, Some(b"{\"event_type\":\"x\"}"));
        batch.push_raw("a", 1, 5, Some(b"nope"));
        batch.push_raw("a", 0, 11, None);
        batch.push_raw("b", 0, 7, Some(b"{}"));
        assert_eq!(batch.len(), 4);
        assert_eq!(batch.partitions(), vec![("a", 0), ("a", 1), ("b", 0)]);
        assert_eq!(
            batch.next_offsets(),
            vec![("a", 0, 12), ("a", 1, 6), ("b", 0, 8)]
        );
        assert_eq!(
            batch.spans(),
            vec![("a", 0, 12, 2), ("a", 1, 6, 1), ("b", 0, 8, 1)]
        );
        let decoded = batch.decode(&IngestOptions::default());
        assert_eq!(decoded.events.len(), 4);
        assert_eq!(decoded.malformed, 2);
        assert_eq!(decoded.events[0].event_type, "x");
        assert_eq!(
            batch.retain_partitions(|topic, partition| !(topic == "a" && partition == 0)),
            2
        );
        assert_eq!(batch.next_offsets(), vec![("a", 1, 6), ("b", 0, 8)]);
        let list = batch.offsets_to_commit();
        assert_eq!(list.count(), 2);
        batch.retain_partitions(|_, _| false);
        assert!(batch.is_empty());
        assert_eq!(batch.payload_bytes(), 0);
    }
}
