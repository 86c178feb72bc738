//! One memory budget for everything received but not yet queued (`service.memory_limit`).
//!
//! Like the OpenTelemetry Collector's `memory_limiter`, but enforced at admission: a receiver
//! reserves what a request costs in memory (its body as read, the decoded body, the parsed
//! events as they are built) before it holds it, and gives the reservation back once the events
//! are in the exporter queues (which have their own limits) or the request is refused. A
//! request that does not fit waits briefly for others to finish, or is refused (HTTP 503 with
//! `Retry-After`, gRPC `UNAVAILABLE`); one that could never fit is refused as too large.
//!
//! Reservations are taken per request and grown in steps while parsing, never per event: the
//! hot path pays one atomic operation per step, not a lock per event.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Default `service.memory_limit`: 64 MiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
/// How long a request whose size is known up front waits for room before it is refused.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(2);
/// The `Retry-After` a sender refused for lack of memory is given.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Gauge of the bytes reserved right now.
pub const RESERVED_GAUGE: &str = "siemrelay_admission_reserved_bytes";
/// Gauge of the limit (`service.memory_limit`) in bytes.
pub const LIMIT_GAUGE: &str = "siemrelay_admission_limit_bytes";
/// Counter of reservations refused, by reason (`busy`, `too_large`).
const REFUSED_TOTAL: &str = "siemrelay_admission_refused_total";

/// Why a reservation was not granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverBudget {
    /// Other requests hold the budget now; retrying later may work.
    #[error(
        "siemrelay is at its memory limit for received data (service.memory_limit, {limit} bytes); retry later"
    )]
    Busy {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The request alone needs more than the whole budget: retrying cannot help.
    #[error(
        "the request needs more than {needed} bytes of memory, over service.memory_limit ({limit} bytes)"
    )]
    NeverFits {
        /// What the request needed when it was refused, in bytes.
        needed: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
}

impl OverBudget {
    /// True when the sender may succeed by retrying later (answer 503, not 413).
    pub fn is_retryable(&self) -> bool {
        matches!(self, OverBudget::Busy { .. })
    }
}

/// The process-wide admission budget. Shared by every receiver; its limit can change on reload.
///
/// Its two gauges (`siemrelay_admission_limit_bytes`, `siemrelay_admission_reserved_bytes`) are
/// registered once, when the budget is made: a reservation moves the reserved gauge by what it
/// takes or gives back, one atomic add on the gauge, with no look-up in the metrics registry.
pub struct MemoryBudget {
    limit: AtomicUsize,
    used: AtomicUsize,
    released: Notify,
    limit_gauge: metrics::Gauge,
    reserved_gauge: metrics::Gauge,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .finish_non_exhaustive()
    }
}

impl MemoryBudget {
    /// A budget of `limit` bytes. Its gauges go to the metrics recorder installed now (none:
    /// they record nothing).
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        let limit_gauge = metrics::gauge!(LIMIT_GAUGE);
        limit_gauge.set(limit as f64);
        let reserved_gauge = metrics::gauge!(RESERVED_GAUGE);
        reserved_gauge.set(0.0);
        MemoryBudget::with_gauges(limit, limit_gauge, reserved_gauge)
    }

    /// A budget that never refuses (tools and tests that run a receiver without a runtime).
    /// It is not the process's budget, so it reports to no gauge.
    pub fn unlimited() -> Arc<MemoryBudget> {
        MemoryBudget::with_gauges(usize::MAX, metrics::Gauge::noop(), metrics::Gauge::noop())
    }

    fn with_gauges(
        limit: usize,
        limit_gauge: metrics::Gauge,
        reserved_gauge: metrics::Gauge,
    ) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit: AtomicUsize::new(limit),
            used: AtomicUsize::new(0),
            released: Notify::new(),
            limit_gauge,
            reserved_gauge,
        })
    }

    /// Changes the limit (a reload); reservations already granted stay.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
        self.limit_gauge.set(limit as f64);
        self.released.notify_waiters();
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes reserved right now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// An empty reservation, to grow as a request is read.
    pub fn empty_reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: AtomicUsize::new(0),
        }
    }

    /// Reserves `bytes` now, or says why not.
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Result<Reservation, OverBudget> {
        let reservation = self.empty_reservation();
        reservation.try_grow(bytes)?;
        Ok(reservation)
    }

    /// Reserves `bytes`, waiting up to `wait` for other requests to give memory back.
    pub async fn reserve(
        self: &Arc<Self>,
        bytes: usize,
        wait: Duration,
    ) -> Result<Reservation, OverBudget> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match self.try_reserve(bytes) {
                Ok(reservation) => return Ok(reservation),
                Err(OverBudget::Busy { .. })
                    if tokio::time::timeout_at(deadline, released).await.is_ok() => {}
                Err(refused) => {
                    count_refusal(&refused);
                    return Err(refused);
                }
            }
        }
    }

    /// Runs `attempt` (which grows a reservation while it parses a request) until it does not
    /// fail for lack of memory, waiting for other requests to give memory back between
    /// attempts, for up to `wait`. What a failed attempt allocated must be given back before
    /// it returns (its reservation shrunk), or the wait would wait for itself.
    pub async fn retry_while_busy<T, E>(
        &self,
        wait: Duration,
        mut attempt: impl FnMut() -> Result<T, E>,
        busy: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match attempt() {
                Err(error)
                    if busy(&error)
                        && tokio::time::timeout_at(deadline, released).await.is_ok() => {}
                outcome => return outcome,
            }
        }
    }

    /// Takes `bytes` from the budget if they fit; `already` is what the caller holds.
    fn take(&self, bytes: usize, already: usize) -> Result<(), OverBudget> {
        let limit = self.limit();
        let needed = already.saturating_add(bytes);
        if needed > limit {
            return Err(OverBudget::NeverFits { needed, limit });
        }
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(bytes);
            if next > limit {
                return Err(OverBudget::Busy { limit });
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    // An add, not a set: adds commute, so concurrent reservations leave the
                    // gauge at the exact total, not at whichever thread wrote last.
                    self.reserved_gauge.increment(bytes as f64);
                    return Ok(());
                }
                Err(actual) => used = actual,
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.reserved_gauge.decrement(bytes as f64);
        self.released.notify_waiters();
    }
}

fn count_refusal(refused: &OverBudget) {
    let reason = if refused.is_retryable() {
        "busy"
    } else {
        "too_large"
    };
    metrics::counter!(REFUSED_TOTAL, "reason" => reason).increment(1);
}

/// Memory held for one request; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: AtomicUsize,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Holds `more` bytes too, if the budget has them now (no waiting: a request being parsed
    /// must not hold memory while it waits for more).
    pub fn try_grow(&self, more: usize) -> Result<(), OverBudget> {
        if more == 0 {
            return Ok(());
        }
        match self.budget.take(more, self.bytes()) {
            Ok(()) => {
                self.bytes.fetch_add(more, Ordering::Relaxed);
                Ok(())
            }
            Err(refused) => {
                count_refusal(&refused);
                Err(refused)
            }
        }
    }

    /// Holds at least `total` bytes in all (grows if it holds less, never shrinks).
    pub fn try_grow_to(&self, total: usize) -> Result<(), OverBudget> {
        self.try_grow(total.saturating_sub(self.bytes()))
    }

    /// Gives back all but `keep` bytes (what the request still holds after freeing buffers).
    pub fn shrink_to(&self, keep: usize) {
        let held = self.bytes();
        if keep < held {
            self.bytes.store(keep, Ordering::Relaxed);
            self.budget.give_back(held - keep);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn reservations_are_bounded_and_given_back() {
        let budget = MemoryBudget::new(1000);
        let a = budget.try_reserve(600).unwrap();
        assert_eq!(
            budget.try_reserve(500).unwrap_err(),
            OverBudget::Busy { limit: 1000 }
        );
        let b = budget.try_reserve(400).unwrap();
        assert_eq!(budget.used(), 1000);
        assert!(b.try_grow(1).is_err());
        drop(a);
        b.try_grow(500).unwrap();
        assert_eq!(b.bytes(), 900);
        b.shrink_to(100);
        assert_eq!(budget.used(), 100);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    /// A recorder that keeps each gauge in an atomic, read back with [`Gauges::get`].
    #[derive(Default)]
    struct Gauges(std::sync::Mutex<std::collections::HashMap<String, Arc<AtomicU64>>>);

    impl Gauges {
        fn cell(&self, name: &str) -> Arc<AtomicU64> {
            let mut map = self.0.lock().unwrap();
            map.entry(name.to_string()).or_default().clone()
        }

        fn get(&self, name: &str) -> f64 {
            f64::from_bits(self.cell(name).load(Ordering::SeqCst))
        }
    }

    impl metrics::Recorder for Gauges {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            metrics::Counter::noop()
        }
        fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::from_arc(self.cell(key.name()))
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    #[test]
    fn the_gauges_show_the_limit_and_exactly_what_is_reserved() {
        let recorder = Gauges::default();
        let budget = metrics::with_local_recorder(&recorder, || MemoryBudget::new(1 << 30));
        assert_eq!(recorder.get(LIMIT_GAUGE), (1 << 30) as f64);
        assert_eq!(recorder.get(RESERVED_GAUGE), 0.0);
        // Four threads reserve and give back concurrently; whenever they pause, holding what
        // they hold, the gauge is the exact total (adds commute; a last-writer-wins set would
        // leave whichever total one thread saw).
        let round = std::sync::Barrier::new(5);
        std::thread::scope(|scope| {
            for t in 0..4usize {
                let (budget, round) = (budget.clone(), &round);
                scope.spawn(move || {
                    let held = budget.empty_reservation();
                    for i in 0..2000usize {
                        let r = budget.try_reserve(100 + t + i % 7).unwrap();
                        held.try_grow(1 + t).unwrap();
                        drop(r);
                        if i % 500 == 499 {
                            round.wait();
                            round.wait();
                        }
                    }
                    // A fifth pause still holding, then give it all back.
                    round.wait();
                    round.wait();
                    drop(held);
                });
            }
            for _ in 0..5 {
                round.wait();
                let used = budget.used();
                assert!(used > 0);
                assert_eq!(recorder.get(RESERVED_GAUGE), used as f64);
                round.wait();
            }
        });
        assert_eq!(budget.used(), 0);
        assert_eq!(recorder.get(RESERVED_GAUGE), 0.0);
        budget.set_limit(4096);
        assert_eq!(recorder.get(LIMIT_GAUGE), 4096.0);
        // A budget without a limit is not the process's: it leaves the gauges alone.
        let tool = metrics::with_local_recorder(&recorder, MemoryBudget::unlimited);
        let _held = tool.try_reserve(1000).unwrap();
        assert_eq!(recorder.get(LIMIT_GAUGE), 4096.0);
        assert_eq!(recorder.get(RESERVED_GAUGE), 0.0);
    }

    #[test]
    fn a_request_larger_than_the_budget_never_fits() {
        let budget = MemoryBudget::new(1000);
        let refused = budget.try_reserve(1001).unwrap_err();
        assert!(!refused.is_retryable(), "{refused}");
        let r = budget.try_reserve(800).unwrap();
        assert!(matches!(
            r.try_grow(300),
            Err(OverBudget::NeverFits { needed: 1100, .. })
        ));
        assert!(refused.to_string().contains("service.memory_limit"));
    }

    #[tokio::test]
    async fn a_parse_that_ran_out_of_memory_is_tried_again_once_memory_is_given_back() {
        let budget = MemoryBudget::new(1000);
        let held = budget.try_reserve(900).unwrap();
        let giver = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
        });
        let mine = budget.empty_reservation();
        let mut attempts = 0;
        let outcome = budget
            .retry_while_busy(
                Duration::from_secs(30),
                || {
                    attempts += 1;
                    mine.shrink_to(0);
                    mine.try_grow(500)
                },
                OverBudget::is_retryable,
            )
            .await;
        giver.await.unwrap();
        assert!(outcome.is_ok());
        assert!(attempts >= 2, "{attempts}");
        // Another request holds 400: 500 + 200 more does not fit now, but would alone.
        let other = budget.try_reserve(400).unwrap();
        let refused = budget
            .retry_while_busy(
                Duration::from_millis(20),
                || mine.try_grow(200),
                OverBudget::is_retryable,
            )
            .await;
        assert_eq!(refused.unwrap_err(), OverBudget::Busy { limit: 1000 });
        drop(other);
        // 500 + 600 could never fit, whoever gives memory back: refused at once, not retried.
        let never = budget
            .retry_while_busy(
                Duration::from_secs(30),
                || mine.try_grow(600),
                OverBudget::is_retryable,
            )
            .await;
        assert_eq!(
            never.unwrap_err(),
            OverBudget::NeverFits {
                needed: 1100,
                limit: 1000
            }
        );
    }

    #[tokio::test]
    async fn a_waiting_request_gets_memory_given_back_or_times_out() {
        let budget = MemoryBudget::new(1000);
        let held = budget.try_reserve(900).unwrap();
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(500, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        drop(held);
        let granted = waiter.await.unwrap().unwrap();
        assert_eq!(granted.bytes(), 500);
        let refused = budget.reserve(600, Duration::from_millis(20)).await;
        assert_eq!(refused.unwrap_err(), OverBudget::Busy { limit: 1000 });
    }
}
