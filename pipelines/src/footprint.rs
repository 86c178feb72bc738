//! Handing back the program's startup code once it has run.
//!
//! siemrelay's binary holds every receiver, exporter, the config loader, the CLI and the TLS and
//! cloud SDKs: ~21 MB of code and read-only data. Starting up (reading the YAML config, checking
//! it, building every component, binding the listeners) touches most of it, and the kernel maps
//! the pages around each page touched too ("fault-around", 64 KiB), so a freshly started
//! sidecar has ~14 MiB of the binary resident before it has handled one event: most of its
//! idle resident set. The event path uses a small part of that code.
//!
//! The same holds for shared libraries only startup uses (librdkafka's OpenSSL initialisation
//! reads 1.2 MiB of libcrypto's tables).
//!
//! [`release_startup_code`] asks the kernel to reclaim the read-only file-backed pages (code
//! and read-only data of the binary and its libraries) once startup is done
//! (`madvise(MADV_PAGEOUT)`, Linux 5.4+). What the event path needs is read back (from the page
//! cache, or from disk under memory pressure) the next time it runs; what only startup used
//! stays out. Writable pages are not touched, and the kernel skips pages other processes map
//! too (libc's, usually), so nothing changes but this process's resident set (figures in the
//! README's performance section).

/// Asks the kernel to reclaim the resident pages of this process's read-only, file-backed
/// mappings (code and read-only data of the executable and its shared libraries). Returns how
/// many bytes of mappings were advised. Errors (no `/proc`, a kernel without `MADV_PAGEOUT`) are returned
/// for the caller to log: they only mean the memory is not handed back.
pub fn release_startup_code() -> std::io::Result<usize> {
    // Pages not yet written back (a binary installed or built moments ago) cannot be
    // reclaimed: have them written first. Read-only file systems have none (the error, if
    // any, is ignored).
    if let Ok(file) = std::fs::File::open("/proc/self/exe") {
        let _ = file.sync_data();
    }
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut advised = 0;
    for (start, end) in read_only_file_mappings(&maps) {
        let length = end - start;
        // SAFETY: the range is a whole mapping of this process as /proc/self/maps lists it
        // (page-aligned). MADV_PAGEOUT only drops resident pages of a read-only file mapping,
        // which are read back on their next use: no memory the program holds changes.
        let result =
            unsafe { libc::madvise(start as *mut libc::c_void, length, libc::MADV_PAGEOUT) };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
        advised += length;
    }
    Ok(advised)
}

/// The address ranges of the file-backed mappings in a `/proc/<pid>/maps` text that are
/// neither writable nor shared: code and read-only data of the program and its libraries.
fn read_only_file_mappings(maps: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            // "start-end perms offset dev inode path"; the path may hold spaces.
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let perms = fields.next()?.as_bytes();
            let path = fields.nth(3)?.trim_start().as_bytes();
            let read_only_private =
                perms.len() == 4 && perms[0] == b'r' && perms[1] == b'-' && perms[3] == b'p';
            if !read_only_private || !path.starts_with(b"/") {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (end > start).then_some((start, end))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0000000-55d0c0200000 r--p 00000000 fd:01 123 /opt/siemrelay/bin/siemrelay
55d0c0200000-55d0c1400000 r-xp 00200000 fd:01 123 /opt/siemrelay/bin/siemrelay
55d0c1400000-55d0c1480000 r--p 01400000 fd:01 123 /opt/siemrelay/bin/siemrelay
55d0c1480000-55d0c1490000 rw-p 01480000 fd:01 123 /opt/siemrelay/bin/siemrelay
55d0c1490000-55d0c14a0000 rw-p 00000000 00:00 0 
7f00000000-7f00100000 r-xp 00000000 fd:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
7f00200000-7f00300000 r--s 00000000 fd:01 123 /opt/siemrelay/bin/siemrelay
7f00400000-7f00500000 r-xp 00000000 fd:01 124 /opt/siemrelay/bin/siemrelay (deleted)
7f00600000-7f00601000 r-xp 00000000 00:00 0                          [vdso]
";

    #[test]
    fn only_read_only_private_file_mappings_are_chosen() {
        let chosen = read_only_file_mappings(MAPS);
        assert_eq!(
            chosen,
            vec![
                (0x55d0c0000000, 0x55d0c0200000),
                (0x55d0c0200000, 0x55d0c1400000),
                (0x55d0c1400000, 0x55d0c1480000),
                (0x7f00000000, 0x7f00100000),
                (0x7f00400000, 0x7f00500000),
            ]
        );
    }

    /// Resident bytes of the mapping that starts at `start`, from /proc/self/smaps.
    fn resident_bytes_of_mapping(start: usize) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
        let header = format!("{start:x}-");
        let mut lines = smaps.lines().skip_while(|line| !line.starts_with(&header));
        lines.next().expect("the mapping is listed");
        let rss = lines
            .find_map(|line| line.strip_prefix("Rss:"))
            .expect("an Rss line");
        1024 * rss
            .trim()
            .trim_end_matches(" kB")
            .parse::<usize>()
            .expect("Rss in kB")
    }

    /// A read-only private file mapping only this process has (the program itself may be
    /// mapped by other test processes running at the same time, whose pages the kernel keeps):
    /// read whole, it is resident; after the pageout it is not.
    #[test]
    fn read_only_file_pages_are_handed_back() {
        const LENGTH: usize = 4 << 20;
        let path = std::env::temp_dir().join(format!("footprint-test-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; LENGTH]).expect("write the file");
        let file = std::fs::File::open(&path).expect("open the file");
        // Clean pages only: dirty ones would be written back first.
        file.sync_all().expect("sync the file");
        use std::os::fd::AsRawFd;
        // SAFETY: maps a file this test owns, read-only and private; unmapped below.
        let mapped = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LENGTH,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(mapped, libc::MAP_FAILED, "mmap failed");
        let start = mapped as usize;
        // SAFETY: `mapped` is LENGTH readable bytes until the munmap below.
        let bytes = unsafe { std::slice::from_raw_parts(mapped as *const u8, LENGTH) };
        let sum: usize = bytes.iter().step_by(4096).map(|&b| usize::from(b)).sum();
        assert_eq!(sum, 7 * LENGTH / 4096);
        let before = resident_bytes_of_mapping(start);
        let advised = release_startup_code().expect("madvise(MADV_PAGEOUT) is allowed");
        let after = resident_bytes_of_mapping(start);
        // SAFETY: unmaps what was mapped above; `bytes` is not used after this.
        unsafe { libc::munmap(mapped, LENGTH) };
        let _ = std::fs::remove_file(&path);
        assert!(
            advised >= LENGTH,
            "the mapping was not advised ({advised} bytes)"
        );
        assert_eq!(before, LENGTH, "the whole file was read");
        assert!(
            after < LENGTH / 4,
            "resident pages of the mapping went from {before} to {after} bytes"
        );
    }
}
