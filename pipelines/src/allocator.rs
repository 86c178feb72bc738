//! The allocator's settings for a sidecar's footprint.
//!
//! siemrelay uses mimalloc (see `main.rs`). Two of its defaults suit a large server, not a
//! sidecar that shares its pod's memory limit:
//! - transparent huge pages: a 2 MiB page that holds a few live objects counts whole in the
//!   resident set; the build disables them (the `no_thp` feature of the `mimalloc` crate);
//! - freed memory is returned to the OS only after `purge_delay` (1 s in mimalloc 3), and what
//!   waits out the delay is resident: at 400,000 events/s the peak RSS with a 10 ms delay is
//!   about 9 MiB above the peak with none. [`tune`] sets it to [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` is set
//!   (figures for 0, 1, 2, 5 and 10 ms in the README's performance section);
//! - a purge that is due happens only when the allocator is next called on a path that
//!   collects, and mimalloc 3.3 can lose the schedule altogether: a pass over the arenas that
//!   finds nothing due clears the process-wide "purge due" time, and an arena whose memory was
//!   freed during that pass keeps its own due time, so every later scheduled purge of that arena
//!   is skipped (the same lost wake-up as microsoft/mimalloc#1246, which 3.3 fixed only for
//!   arenas not yet due). From then on freed memory is never returned: 10-minute soaks saw RSS
//!   step up by 20–50 MiB at a random moment and stay. [`start_collector`] runs a thread that
//!   every [`COLLECT_INTERVAL`] makes mimalloc purge whatever freed memory its arenas hold
//!   (`mi_collect(true)`, which does not consult the lost schedule). Before, the thread asked
//!   only for due purges (`mi_collect(false)`), and without setting up its allocator state,
//!   which makes the call a no-op on a thread that has never allocated (as it may not have).

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e` of mimalloc 3's
/// `mimalloc.h`; `libmimalloc-sys` names it only for mimalloc 2). A test checks the default it
/// reads, so a renumbering fails the build's tests instead of setting another option.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds after which freed allocator memory is returned to the OS: long enough that a
/// page freed and taken again at once is not handed back and faulted in again (0 costs about a
/// third more CPU per event), short enough that little waits (peak RSS 33–37 MiB at full load
/// instead of 37–40 with 10 ms).
pub const PURGE_DELAY_MS: std::ffi::c_long = 2;

/// How often [`start_collector`]'s thread has mimalloc purge what its arenas hold freed: the
/// longest that freed memory stays resident when mimalloc's own schedule has been lost (with
/// 500 ms, a 1 ms purge delay, which loses it more often, saw peaks of 41 and 47 MiB).
pub const COLLECT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Name of [`start_collector`]'s thread.
pub const COLLECTOR_THREAD: &str = "alloc-collect";

/// Starts a thread that calls [`return_freed_memory`] every [`COLLECT_INTERVAL`] for the life
/// of the process, so memory freed anywhere in the process is returned to the OS within about
/// that interval, whatever mimalloc's own purge schedule says. For long-running commands
/// (`run`).
pub fn start_collector() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(COLLECTOR_THREAD.into())
        .spawn(|| {
            loop {
                std::thread::sleep(COLLECT_INTERVAL);
                return_freed_memory();
            }
        })
        .map(drop)
}

/// Returns to the OS the freed memory that mimalloc's arenas hold now (pages freed by any
/// thread), purge delay or not, and whether or not a purge was scheduled. The collector's one
/// step; costs a walk over the arenas' bitmaps and one `madvise` per freed range.
pub fn return_freed_memory() {
    // SAFETY: neither call has preconditions. mi_collect works through the calling thread's
    // allocator state and does nothing at all on a thread that has never allocated (as the
    // collector's thread may not have): mi_thread_init sets that state up (once; later calls
    // return at once). `true` forces the purge of every freed arena range (not only those whose
    // delay has passed, and without consulting the process-wide due time that can be lost); on
    // a thread that allocates nothing it has nothing else to free.
    unsafe {
        libmimalloc_sys::mi_thread_init();
        libmimalloc_sys::mi_collect(true);
    }
}

/// Applies the settings above; call first thing in `main`.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is allowed at any time; the value is a plain integer.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

/// mimalloc's current purge delay in milliseconds.
pub fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: reading an option has no preconditions.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collector_thread_runs() {
        start_collector().expect("the thread starts");
        let names = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .expect("/proc/self/task")
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_string())
                .collect()
        };
        // The new thread names itself once it runs.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !names().iter().any(|n| n == COLLECTOR_THREAD) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {COLLECTOR_THREAD} thread: {:?}",
                names()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Bytes of anonymous memory resident in this process.
    fn resident_anonymous_bytes() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let kib: usize = status
            .lines()
            .find_map(|line| line.strip_prefix("RssAnon:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("an RssAnon line");
        kib * 1024
    }

    #[test]
    fn one_collector_step_returns_what_another_thread_freed() {
        // mimalloc is the global allocator only in the binary: here only these blocks use it.
        const BLOCK: usize = 200 * 1024;
        const BLOCKS: usize = 320; // 62.5 MiB
        let (freed_tx, freed_rx) = std::sync::mpsc::channel::<()>();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        // A thread that allocates and frees as a runtime worker does, then stays alive (a
        // thread that ends hands its pages back by itself).
        let worker = std::thread::spawn(move || {
            let blocks: Vec<usize> = (0..BLOCKS)
                .map(|_| {
                    // SAFETY: a plain allocation; every byte is written before the block is freed.
                    let block = unsafe { libmimalloc_sys::mi_malloc(BLOCK) }.cast::<u8>();
                    assert!(!block.is_null());
                    unsafe { block.write_bytes(1, BLOCK) };
                    block as usize
                })
                .collect();
            for block in blocks {
                // SAFETY: each block came from mi_malloc above and is freed once.
                unsafe { libmimalloc_sys::mi_free(block as *mut std::ffi::c_void) };
            }
            // Its own allocation paths would hand empty pages to the arenas over the next
            // calls; these do the same at once.
            for _ in 0..64 {
                unsafe { libmimalloc_sys::mi_collect(false) };
            }
            freed_tx.send(()).expect("the test waits");
            let _ = end_rx.recv();
        });
        freed_rx.recv().expect("the worker frees its blocks");
        let before = resident_anonymous_bytes();
        return_freed_memory();
        let after = resident_anonymous_bytes();
        let _ = end_tx.send(());
        worker.join().expect("the worker ends");
        // Freed moments ago: mimalloc's own schedule would return it only after its purge
        // delay, and not at all once the schedule is lost; the step returns it now.
        assert!(
            before.saturating_sub(after) >= BLOCK * BLOCKS * 3 / 4,
            "one step returned {} of {} freed bytes (resident {before} -> {after})",
            before.saturating_sub(after),
            BLOCK * BLOCKS
        );
    }

    #[test]
    fn the_option_set_is_mimallocs_purge_delay() {
        // mimalloc 3's documented default purge delay is 1000 ms; any other option at this
        // place has another default (0, 1, 32, 100, ...).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay_ms(), 1000, "option 15 is not purge_delay");
            tune();
            assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
        }
    }
}
