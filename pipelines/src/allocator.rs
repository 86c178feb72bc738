//! The allocator's settings for a sidecar's footprint.
//!
//! siemrelay uses mimalloc (see `main.rs`). Two of its defaults suit a large server, not a
//! sidecar that shares its pod's memory limit:
//! - transparent huge pages: a 2 MiB page that holds a few live objects counts whole in the
//!   resident set; the build disables them (the `no_thp` feature of the `mimalloc` crate);
//! - freed memory is returned to the OS only after `purge_delay` (1 s in mimalloc 3): at 250,000
//!   events/s the request buffers freed in one second are several times what is live.
//!   [`tune`] sets it to [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` is set;
//! - a purge that is due happens only when the allocator is next called on a path that
//!   collects: with the webhook's attributes kept as bytes (few small allocations per event),
//!   10-minute soaks saw about 20 MiB of freed memory stop being returned at a random moment
//!   (after 92 s in one run, 330 s in another) and stay. [`start_collector`] runs a thread that
//!   asks for due purges every [`COLLECT_INTERVAL`]; with it a 400-second soak stayed flat.

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e` of mimalloc 3's
/// `mimalloc.h`; `libmimalloc-sys` names it only for mimalloc 2). A test checks the default it
/// reads, so a renumbering fails the build's tests instead of setting another option.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds after which freed allocator memory is returned to the OS.
pub const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// How often [`start_collector`]'s thread asks mimalloc for the purges that are due.
pub const COLLECT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Name of [`start_collector`]'s thread.
pub const COLLECTOR_THREAD: &str = "alloc-collect";

/// Starts a thread that calls `mi_collect(false)` every [`COLLECT_INTERVAL`] for the life of
/// the process, so freed memory whose purge delay has passed is returned to the OS even when
/// no allocation path gets to it. For long-running commands (`run`).
pub fn start_collector() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(COLLECTOR_THREAD.into())
        .spawn(|| {
            loop {
                std::thread::sleep(COLLECT_INTERVAL);
                // SAFETY: mi_collect has no preconditions; `false` does not force-free caches.
                unsafe { libmimalloc_sys::mi_collect(false) };
            }
        })
        .map(drop)
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
