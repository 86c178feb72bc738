//! The allocator's own figures on `/metrics`: how much memory mimalloc (the `siemrelay` binary's
//! global allocator) has committed from the OS now and at most, read with `mi_process_info` at
//! each scrape. Beside `process_resident_memory_bytes` they tell memory the allocator holds for
//! reuse (committed but free) from memory the program itself holds.

/// `siemrelay_allocator_committed_bytes`: memory mimalloc has committed now.
pub const COMMITTED: &str = "siemrelay_allocator_committed_bytes";
/// `siemrelay_allocator_peak_committed_bytes`: the most it has had committed since the start.
pub const PEAK_COMMITTED: &str = "siemrelay_allocator_peak_committed_bytes";

/// What mimalloc reports about the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatorFigures {
    /// Bytes committed now.
    pub committed: usize,
    /// The peak of `committed`.
    pub peak_committed: usize,
}

impl AllocatorFigures {
    /// The figures now, or `None` when mimalloc has committed nothing: it is not the global
    /// allocator of this process (a library test), and zeros would be a false reading.
    pub fn read() -> Option<AllocatorFigures> {
        let mut out = [0usize; 8];
        let [
            elapsed,
            user,
            system,
            rss,
            peak_rss,
            committed,
            peak_committed,
            faults,
        ] = &mut out;
        // SAFETY: mi_process_info writes one usize through each pointer, all valid and distinct.
        unsafe {
            libmimalloc_sys::mi_process_info(
                elapsed,
                user,
                system,
                rss,
                peak_rss,
                committed,
                peak_committed,
                faults,
            );
        }
        let figures = AllocatorFigures {
            committed: out[5],
            peak_committed: out[6],
        };
        (figures.peak_committed > 0).then_some(figures)
    }

    /// Sets the gauges to these figures.
    pub fn record(&self) {
        metrics::gauge!(COMMITTED).set(self.committed as f64);
        metrics::gauge!(PEAK_COMMITTED).set(self.peak_committed as f64);
    }
}

/// Describes the gauges (once, when the recorder is installed).
pub fn describe() {
    metrics::describe_gauge!(
        COMMITTED,
        metrics::Unit::Bytes,
        "Memory the allocator (mimalloc) has committed from the OS now, free pages it keeps included"
    );
    metrics::describe_gauge!(
        PEAK_COMMITTED,
        metrics::Unit::Bytes,
        "The most memory the allocator (mimalloc) has had committed since the start"
    );
}
