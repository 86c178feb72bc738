//! The allocator's settings for a sidecar's footprint.
//!
//! siemrelay uses mimalloc (see `main.rs`). Two of its defaults suit a large server, not a
//! sidecar that shares its pod's memory limit:
//! - transparent huge pages: a 2 MiB page that holds a few live objects counts whole in the
//!   resident set; the build disables them (the `no_thp` feature of the `mimalloc` crate);
//! - freed memory is returned to the OS only after `purge_delay` (1 s in mimalloc 3): at 250,000
//!   events/s the request buffers freed in one second are several times what is live.
//!   [`tune`] sets it to [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` is set.

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e` of mimalloc 3's
/// `mimalloc.h`; `libmimalloc-sys` names it only for mimalloc 2). A test checks the default it
/// reads, so a renumbering fails the build's tests instead of setting another option.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds after which freed allocator memory is returned to the OS.
pub const PURGE_DELAY_MS: std::ffi::c_long = 10;

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
