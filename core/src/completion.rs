//! Completion tokens: how a receiver learns that a batch it handed over reached a final outcome
//! everywhere (after Vector's batch notifiers and finalizers).
//!
//! A receiver that needs to know (the `kafka` receiver commits offsets only after delivery)
//! makes one [`Completion`] per accepted batch and attaches a clone to each event
//! ([`crate::Event::completion`]). The token is an `Arc`: every copy of an event made on the
//! way (fan-out to several pipelines and exporters) holds a reference, and a copy lets go of it
//! when it is dropped: after delivery, after being written to the dead-letter file, or when a
//! filter removed it. When the last reference goes, the token's callback runs once.
//!
//! So the callback means "every copy of every event of the batch is finished", with one
//! exception that the holder must handle: a batch the pipeline refused (`Err(Refusal)`) is
//! dropped too, and its token fires without anything having been delivered. A queue that does
//! not keep events in memory (the disk queue) keeps their tokens aside until it hands the
//! events out again (see `siemrelay_exporters::delivery::completion`).
//!
//! Events without a token (`None`, every receiver but `kafka` in `commit: after_delivery`)
//! cost one pointer-sized field and nothing else: no lock, no counter.

use std::fmt;
use std::sync::Arc;

/// A shared token for one accepted batch whose callback runs when the last copy of the last
/// event holding it is dropped. Cloning is one atomic increment.
#[derive(Clone)]
pub struct Completion {
    /// Held only for its drop: the last one runs the callback.
    _shared: Arc<OnLastDrop>,
}

type Callback = Box<dyn FnOnce() + Send + Sync>;

struct OnLastDrop(Option<Callback>);

impl Drop for OnLastDrop {
    fn drop(&mut self) {
        if let Some(callback) = self.0.take() {
            callback();
        }
    }
}

impl Completion {
    /// A token that runs `on_finished` once every clone of it was dropped. The callback runs on
    /// the thread that drops the last clone (an exporter's worker): keep it short and
    /// non-blocking.
    pub fn new(on_finished: impl FnOnce() + Send + Sync + 'static) -> Completion {
        Completion {
            _shared: Arc::new(OnLastDrop(Some(Box::new(on_finished)))),
        }
    }
}

/// Not part of an event's identity: two events are equal whatever tokens they hold.
impl PartialEq for Completion {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Completion")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn fires_once_when_the_last_clone_is_dropped() {
        let fired = Arc::new(AtomicUsize::new(0));
        let counter = fired.clone();
        let token = Completion::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let copies: Vec<Completion> = (0..3).map(|_| token.clone()).collect();
        drop(token);
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        let mut copies = copies.into_iter();
        drop(copies.next());
        drop(copies.next());
        assert_eq!(fired.load(Ordering::SeqCst), 0, "one copy is still held");
        drop(copies);
        assert_eq!(fired.load(Ordering::SeqCst), 1);
    }
}
