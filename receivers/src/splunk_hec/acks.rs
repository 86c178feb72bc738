//! Indexer acknowledgement state, per channel, bounded.
//!
//! The receiver answers a request only after the pipeline queued its events (durably, with disk
//! queues) in every target exporter, so an ack id is handed out only for events that are
//! already safe: it reads `true` from then on, until its sender reads it once (Splunk then
//! forgets it; an unknown id reads `false`). Ids count from 0 per channel.
//!
//! Bounds (a sender that never polls cannot grow memory without limit):
//! - at most `max_ack_channels` channels: a request on a new channel first forgets channels
//!   unused for `ack_idle_timeout`; if none is, it is refused with 503 code 9 (nothing queued,
//!   the sender retries; existing channels go on);
//! - at most `max_pending_acks_per_channel` ids per channel not yet read `true`: past it, the
//!   channel's requests are refused with 503 code 9 until its sender polls.
//!
//! One lock per request (not per event); requests in flight on a channel hold a reserved slot,
//! so the caps hold under concurrency.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Why a request cannot get an ack id now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckFull {
    /// `max_ack_channels` channels are in use and none is idle.
    #[error("max_ack_channels ({0}) channels hold acknowledgement state and none is idle")]
    Channels(usize),
    /// The channel holds `max_pending_acks_per_channel` ids its sender has not read.
    #[error("the channel holds max_pending_acks_per_channel ({0}) ack ids its sender has not read")]
    Pending(usize),
}

/// The caps of one receiver's ack state.
#[derive(Clone, Copy, Debug)]
pub struct AckLimits {
    /// Most channels.
    pub max_channels: usize,
    /// Most unread ids per channel.
    pub max_pending: usize,
    /// Unused this long, a channel may be forgotten.
    pub idle_timeout: Duration,
}

#[derive(Debug)]
struct Channel {
    next_id: u64,
    /// Ids handed out whose sender has not read them `true` yet.
    pending: BTreeSet<u64>,
    /// Requests in flight that will take an id.
    reserved: usize,
    last_used: Instant,
}

/// The ack state of one receiver.
#[derive(Debug)]
pub struct Acks {
    limits: AckLimits,
    channels: Mutex<HashMap<Uuid, Channel>>,
}

/// A slot for one request's ack id; given back unless [`Slot::issue`] turns it into an id.
pub struct Slot {
    acks: Arc<Acks>,
    channel: Uuid,
    issued: bool,
}

impl Acks {
    /// Empty state with these caps.
    pub fn new(limits: AckLimits) -> Arc<Acks> {
        Arc::new(Acks {
            limits,
            channels: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Channel>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves an ack id slot on `channel` for a request about to be queued.
    pub fn reserve(self: &Arc<Self>, channel: Uuid) -> Result<Slot, AckFull> {
        let now = Instant::now();
        let mut channels = self.lock();
        if !channels.contains_key(&channel) && channels.len() >= self.limits.max_channels {
            let idle = self.limits.idle_timeout;
            channels.retain(|_, c| c.reserved > 0 || now.duration_since(c.last_used) < idle);
            if channels.len() >= self.limits.max_channels {
                return Err(AckFull::Channels(self.limits.max_channels));
            }
        }
        let state = channels.entry(channel).or_insert_with(|| Channel {
            next_id: 0,
            pending: BTreeSet::new(),
            reserved: 0,
            last_used: now,
        });
        if state.pending.len() + state.reserved >= self.limits.max_pending {
            return Err(AckFull::Pending(self.limits.max_pending));
        }
        state.reserved += 1;
        state.last_used = now;
        Ok(Slot {
            acks: self.clone(),
            channel,
            issued: false,
        })
    }

    /// Answers an ack poll: each id reads `true` once (then it is forgotten), else `false`.
    /// Repeated ids are answered once.
    pub fn query(&self, channel: Uuid, ids: &[u64]) -> Vec<(u64, bool)> {
        let mut channels = self.lock();
        let mut state = channels.get_mut(&channel);
        if let Some(state) = state.as_deref_mut() {
            state.last_used = Instant::now();
        }
        let mut answers: Vec<(u64, bool)> = Vec::with_capacity(ids.len());
        for &id in ids {
            if answers.iter().any(|(seen, _)| *seen == id) {
                continue;
            }
            let done = state
                .as_deref_mut()
                .is_some_and(|state| state.pending.remove(&id));
            answers.push((id, done));
        }
        answers
    }

    /// Channels holding state now.
    pub fn channels(&self) -> usize {
        self.lock().len()
    }
}

impl Slot {
    /// The request's events are queued: hands out the channel's next ack id.
    pub fn issue(mut self) -> u64 {
        self.issued = true;
        let mut channels = self.acks.lock();
        let state = channels.entry(self.channel).or_insert_with(|| Channel {
            next_id: 0,
            pending: BTreeSet::new(),
            reserved: 1,
            last_used: Instant::now(),
        });
        state.reserved = state.reserved.saturating_sub(1);
        let id = state.next_id;
        state.next_id += 1;
        state.pending.insert(id);
        state.last_used = Instant::now();
        id
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.issued {
            return;
        }
        let mut channels = self.acks.lock();
        if let Some(state) = channels.get_mut(&self.channel) {
            state.reserved = state.reserved.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(max_channels: usize, max_pending: usize, idle: Duration) -> Arc<Acks> {
        Acks::new(AckLimits {
            max_channels,
            max_pending,
            idle_timeout: idle,
        })
    }

    #[test]
    fn ids_count_per_channel_and_read_true_once() {
        let acks = acks(10, 10, Duration::from_secs(60));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(acks.reserve(a).unwrap().issue(), 0);
        assert_eq!(acks.reserve(a).unwrap().issue(), 1);
        assert_eq!(acks.reserve(b).unwrap().issue(), 0);
        // A refused request gives its slot back and takes no id.
        drop(acks.reserve(a).unwrap());
        assert_eq!(
            acks.query(a, &[0, 1, 1, 2, 7]),
            [(0, true), (1, true), (2, false), (7, false)]
        );
        assert_eq!(acks.query(a, &[0]), [(0, false)], "forgotten once read");
        assert_eq!(acks.query(Uuid::new_v4(), &[0]), [(0, false)]);
        assert_eq!(acks.reserve(a).unwrap().issue(), 2);
    }

    #[test]
    fn caps_refuse_until_polled_or_idle() {
        let acks = acks(2, 2, Duration::from_millis(0));
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        acks.reserve(a).unwrap().issue();
        let held = acks.reserve(a).unwrap();
        assert_eq!(acks.reserve(a).err(), Some(AckFull::Pending(2)));
        held.issue();
        assert_eq!(acks.reserve(a).err(), Some(AckFull::Pending(2)));
        acks.query(a, &[0]);
        assert!(acks.reserve(a).is_ok(), "a poll makes room");
        // Channel cap: idle channels (timeout 0) make room; busy ones do not.
        let busy_a = acks.reserve(a).unwrap();
        let busy_b = acks.reserve(b).unwrap();
        assert_eq!(acks.reserve(c).err(), Some(AckFull::Channels(2)));
        drop((busy_a, busy_b));
        assert!(acks.reserve(c).is_ok());
        assert!(acks.channels() <= 2);
    }
}
