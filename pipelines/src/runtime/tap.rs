//! Taps: live copies of the events passing a component, for `siemrelay tap` and
//! `GET /api/v1/tap/{id}`.
//!
//! The data path pays one relaxed atomic load per batch while no one taps ([`Taps::is_active`]).
//! While someone does, the events of a batch that pass a tapped component are sampled (one in
//! `sample`), copied, and handed to the tapper's bounded channel with `try_send` once the batch is
//! accepted: a slow tapper never blocks or slows the pipeline, its copies are dropped instead and
//! counted, and the stream says how many.

use arc_swap::ArcSwap;
use siemrelay_core::Event;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Taps open at once; more are refused.
pub const MAX_TAPS: usize = 8;
/// Copies of one batch for one tapper are cut to this many events (the rest count as dropped).
pub const MAX_EVENTS_PER_MESSAGE: usize = 256;
/// Messages a tapper's channel holds before copies are dropped.
pub const CHANNEL_MESSAGES: usize = 16;

/// Every open tap of a runtime.
#[derive(Default)]
pub struct Taps {
    /// Open taps; the hot path reads only this while it is 0.
    active: AtomicUsize,
    subscribers: ArcSwap<Vec<Arc<Subscriber>>>,
    /// Serializes opening and closing taps (never taken by the data path).
    change: std::sync::Mutex<()>,
    next_id: AtomicU64,
    /// Cancelled at shutdown: every tap stream ends.
    closed: CancellationToken,
}

/// One open tap.
pub struct Subscriber {
    id: u64,
    component: String,
    sample: u64,
    /// Events of the component seen since the tap opened (for sampling).
    seen: AtomicU64,
    /// Sampled events dropped because the tapper read too slowly (reset when reported).
    dropped: AtomicU64,
    tx: mpsc::Sender<Vec<Event>>,
}

impl Subscriber {
    /// Copies dropped since the last call (and resets the count).
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

/// Why a tap could not be opened.
#[derive(Debug, PartialEq, Eq)]
pub enum TapRefused {
    /// [`MAX_TAPS`] are open.
    TooMany,
}

/// An open tap: its events, and its registration (dropping it closes the tap).
pub struct Tap {
    /// Sampled copies, a batch at a time.
    pub events: mpsc::Receiver<Vec<Event>>,
    /// The subscription (for its drop count).
    pub subscriber: Arc<Subscriber>,
    /// Ends when the runtime shuts down.
    pub closed: CancellationToken,
    taps: Arc<Taps>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.taps.remove(self.subscriber.id);
    }
}

/// Copies taken from one batch, sent to their tappers once the batch is accepted.
#[derive(Default)]
pub struct TapCopies(Vec<(Arc<Subscriber>, Vec<Event>)>);

impl TapCopies {
    /// Hands the copies over without waiting: a full channel drops them (counted).
    pub fn send(self) {
        for (subscriber, events) in self.0 {
            if events.is_empty() {
                continue;
            }
            match subscriber.tx.try_send(events) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(events)) => {
                    subscriber
                        .dropped
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

impl Taps {
    /// Whether any tap is open: the one check the data path makes per batch.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// Opens a tap on `component`, keeping one event in `sample` (at least 1).
    pub fn open(self: &Arc<Self>, component: &str, sample: u64) -> Result<Tap, TapRefused> {
        let _change = self.change.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.subscribers.load_full();
        if current.len() >= MAX_TAPS {
            return Err(TapRefused::TooMany);
        }
        let (tx, events) = mpsc::channel(CHANNEL_MESSAGES);
        let subscriber = Arc::new(Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            component: component.to_string(),
            sample: sample.max(1),
            seen: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            tx,
        });
        let mut next = (*current).clone();
        next.push(subscriber.clone());
        self.subscribers.store(Arc::new(next));
        self.active.fetch_add(1, Ordering::Relaxed);
        Ok(Tap {
            events,
            subscriber,
            closed: self.closed.clone(),
            taps: self.clone(),
        })
    }

    fn remove(&self, id: u64) {
        let _change = self.change.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.subscribers.load_full();
        let next: Vec<Arc<Subscriber>> = current.iter().filter(|s| s.id != id).cloned().collect();
        if next.len() != current.len() {
            self.subscribers.store(Arc::new(next));
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Ends every tap stream (at shutdown).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Samples and copies the `events` passing `component` into `copies`, for each tap on it.
    /// Call only when [`Taps::is_active`].
    pub fn copy(&self, component: &str, events: &[Event], copies: &mut TapCopies) {
        if events.is_empty() {
            return;
        }
        for subscriber in self.subscribers.load().iter() {
            if subscriber.component != component {
                continue;
            }
            let sample = subscriber.sample;
            let count = events.len() as u64;
            let start = subscriber.seen.fetch_add(count, Ordering::Relaxed);
            let first = (sample - start % sample) % sample;
            if first >= count {
                continue;
            }
            let selected = (count - first).div_ceil(sample);
            if subscriber.tx.capacity() == 0 {
                // The tapper is behind: do not even copy.
                subscriber.dropped.fetch_add(selected, Ordering::Relaxed);
                continue;
            }
            let copied: Vec<Event> = events
                .iter()
                .skip(first as usize)
                .step_by(sample as usize)
                .take(MAX_EVENTS_PER_MESSAGE)
                .cloned()
                .collect();
            let cut = selected - copied.len() as u64;
            if cut > 0 {
                subscriber.dropped.fetch_add(cut, Ordering::Relaxed);
            }
            copies.0.push((subscriber.clone(), copied));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<Event> {
        (0..n).map(|i| Event::new(format!("t{i}"))).collect()
    }

    fn types(batch: &[Event]) -> Vec<String> {
        batch.iter().map(|e| e.event_type.to_string()).collect()
    }

    #[tokio::test]
    async fn a_tap_samples_across_batches_and_closing_it_makes_the_data_path_free_again() {
        let taps = Arc::new(Taps::default());
        assert!(!taps.is_active());
        let mut tap = taps.open("filter/x", 3).unwrap();
        assert!(taps.is_active());
        for batch in [events(4), events(4)] {
            let mut copies = TapCopies::default();
            taps.copy("filter/x", &batch, &mut copies);
            taps.copy("other", &batch, &mut copies);
            copies.send();
        }
        // Events 0..8 seen: one in three is 0, 3 (first batch) and 6 → index 2 of the second.
        assert_eq!(types(&tap.events.recv().await.unwrap()), ["t0", "t3"]);
        assert_eq!(types(&tap.events.recv().await.unwrap()), ["t2"]);
        assert!(tap.events.try_recv().is_err());
        drop(tap);
        assert!(!taps.is_active(), "a closed tap costs nothing any more");
    }

    #[tokio::test]
    async fn a_slow_tapper_loses_copies_counted_and_never_blocks() {
        let taps = Arc::new(Taps::default());
        let mut tap = taps.open("webhook", 1).unwrap();
        let batches = CHANNEL_MESSAGES + 5;
        for _ in 0..batches {
            let mut copies = TapCopies::default();
            taps.copy("webhook", &events(MAX_EVENTS_PER_MESSAGE + 10), &mut copies);
            copies.send();
        }
        let mut received = 0;
        while let Ok(batch) = tap.events.try_recv() {
            received += batch.len() as u64;
        }
        let total = (batches * (MAX_EVENTS_PER_MESSAGE + 10)) as u64;
        let dropped = tap.subscriber.take_dropped();
        assert_eq!(received, (CHANNEL_MESSAGES * MAX_EVENTS_PER_MESSAGE) as u64);
        assert_eq!(
            received + dropped,
            total,
            "every copy is delivered or counted"
        );
        assert_eq!(tap.subscriber.take_dropped(), 0);
    }

    #[test]
    fn taps_are_bounded() {
        let taps = Arc::new(Taps::default());
        let open: Vec<Tap> = (0..MAX_TAPS).map(|_| taps.open("x", 1).unwrap()).collect();
        assert!(matches!(taps.open("x", 1), Err(TapRefused::TooMany)));
        drop(open);
        assert!(!taps.is_active());
    }
}
