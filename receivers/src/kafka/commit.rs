//! `commit: after_delivery`: which offsets may be committed, given which batches every exporter
//! finished.
//!
//! Every batch handed to the pipelines gets a [`Completion`] token on each of its events
//! ([`siemrelay_core::completion`]); the token fires once every copy of every event was
//! delivered, dead-lettered or filtered out. Per partition the tracker keeps the batches in
//! offset order; the offset to commit is the end of the longest finished prefix, so an offset
//! is committed only when every message before it is finished — a batch finishing early waits
//! for the older ones of its partition.
//!
//! The token's callback only marks the batch finished and wakes the consume loop; the loop
//! computes and commits the offsets, and it alone begins, cancels (a refused batch) and revokes.
//! So a refused batch, whose token fires when its events are dropped, is cancelled before any
//! commit could count it.

use siemrelay_core::Completion;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// One batch's messages of one partition.
#[derive(Debug)]
struct Span {
    batch: u64,
    /// One past the batch's last offset on this partition.
    next_offset: i64,
    messages: usize,
    finished: bool,
}

#[derive(Debug, Default)]
struct State {
    partitions: HashMap<(String, i32), VecDeque<Span>>,
    next_batch: u64,
    /// Messages handed over whose offsets are not committed yet.
    uncommitted: usize,
}

/// The finished prefix of every partition, per consumer.
#[derive(Debug, Default)]
pub struct DeliveryTracker {
    state: Mutex<State>,
    /// Woken when a batch finished.
    finished: Notify,
}

/// The messages of one batch on one partition: topic, partition, one past the last offset,
/// message count.
pub type PartitionSpan<'a> = (&'a str, i32, i64, usize);

impl DeliveryTracker {
    /// An empty tracker.
    pub fn new() -> Arc<DeliveryTracker> {
        Arc::new(DeliveryTracker::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the books whole before it can panic (no callbacks under the lock).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a batch about to be handed over; returns its id and the token to attach to
    /// each of its events (drop the returned one once attached).
    pub fn begin(self: &Arc<Self>, spans: &[PartitionSpan<'_>]) -> (u64, Completion) {
        let id = {
            let mut state = self.state();
            let id = state.next_batch;
            state.next_batch += 1;
            for &(topic, partition, next_offset, messages) in spans {
                state.uncommitted += messages;
                state
                    .partitions
                    .entry((topic.to_string(), partition))
                    .or_default()
                    .push_back(Span {
                        batch: id,
                        next_offset,
                        messages,
                        finished: false,
                    });
            }
            id
        };
        let tracker = self.clone();
        (id, Completion::new(move || tracker.finish(id)))
    }

    /// Marks a batch finished (its token fired) and wakes the loop.
    fn finish(&self, batch: u64) {
        {
            let mut state = self.state();
            for spans in state.partitions.values_mut() {
                if let Some(span) = spans.iter_mut().rev().find(|s| s.batch == batch) {
                    span.finished = true;
                }
            }
        }
        self.finished.notify_one();
    }

    /// Forgets a batch the pipeline refused (it is offered again under a new id).
    pub fn cancel(&self, batch: u64) {
        let mut state = self.state();
        let mut released = 0;
        for spans in state.partitions.values_mut() {
            spans.retain(|s| {
                let keep = s.batch != batch;
                if !keep {
                    released += s.messages;
                }
                keep
            });
        }
        state.uncommitted -= released;
    }

    /// Forgets revoked partitions: their new owner reads from the last committed offset.
    pub fn revoke(&self, partitions: &[(String, i32)]) {
        let mut state = self.state();
        let mut released = 0;
        for key in partitions {
            if let Some(spans) = state.partitions.remove(key) {
                released += spans.iter().map(|s| s.messages).sum::<usize>();
            }
        }
        state.uncommitted -= released;
    }

    /// Takes the offsets that became committable: per partition, the end of the finished
    /// prefix, when it grew.
    pub fn take_commits(&self) -> Vec<(String, i32, i64)> {
        let mut state = self.state();
        let mut commits = Vec::new();
        let mut released = 0;
        for ((topic, partition), spans) in state.partitions.iter_mut() {
            let mut end = None;
            while spans.front().is_some_and(|s| s.finished) {
                if let Some(span) = spans.pop_front() {
                    released += span.messages;
                    end = Some(span.next_offset);
                }
            }
            if let Some(end) = end {
                commits.push((topic.clone(), *partition, end));
            }
        }
        state.partitions.retain(|_, spans| !spans.is_empty());
        state.uncommitted -= released;
        commits
    }

    /// Messages handed over whose offsets are not committed yet.
    pub fn uncommitted(&self) -> usize {
        self.state().uncommitted
    }

    /// Waits until a batch finished since the last call (or one finished before it was called).
    pub async fn finished(&self) {
        self.finished.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_the_finished_prefix_of_each_partition_only() {
        let tracker = DeliveryTracker::new();
        let (_, first) = tracker.begin(&[("t", 0, 10, 10), ("t", 1, 5, 5)]);
        let (_, second) = tracker.begin(&[("t", 0, 20, 10)]);
        let (_, third) = tracker.begin(&[("t", 1, 8, 3)]);
        assert_eq!(tracker.uncommitted(), 28);
        // A copy still held elsewhere (another exporter) keeps the batch open.
        let copy = second.clone();
        drop(second);
        drop(third);
        assert_eq!(
            tracker.take_commits(),
            vec![],
            "later batches wait for the first"
        );
        drop(first);
        let mut commits = tracker.take_commits();
        commits.sort();
        assert_eq!(commits, vec![("t".into(), 0, 10), ("t".into(), 1, 8)]);
        assert_eq!(tracker.uncommitted(), 10);
        drop(copy);
        assert_eq!(tracker.take_commits(), vec![("t".into(), 0, 20)]);
        assert_eq!(tracker.uncommitted(), 0);
        assert_eq!(tracker.take_commits(), vec![]);
    }

    #[test]
    fn a_refused_batch_is_never_committed_and_revoked_partitions_are_forgotten() {
        let tracker = DeliveryTracker::new();
        let (refused, token) = tracker.begin(&[("t", 0, 10, 10)]);
        drop(token); // the refused events were dropped: the token fired
        tracker.cancel(refused);
        assert_eq!(tracker.take_commits(), vec![]);
        assert_eq!(tracker.uncommitted(), 0);
        let (_, kept) = tracker.begin(&[("t", 0, 10, 10), ("t", 1, 4, 4)]);
        tracker.revoke(&[("t".into(), 1)]);
        assert_eq!(tracker.uncommitted(), 10);
        drop(kept);
        assert_eq!(tracker.take_commits(), vec![("t".into(), 0, 10)]);
    }
}
