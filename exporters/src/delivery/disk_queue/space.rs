//! Disk space: the size of the volume a queue lives on, what is free, and whether an I/O error
//! means "no space".

use std::io;
use std::path::Path;

/// Sizes of a file system, from `statvfs(3)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Volume {
    /// Total bytes.
    pub total: u64,
    /// Bytes an unprivileged writer may still use.
    pub available: u64,
}

/// The volume holding `path`.
pub fn volume(path: &Path) -> io::Result<Volume> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: statvfs writes into the zeroed struct we pass and reads the NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let block = stat.f_frsize as u64;
    Ok(Volume {
        total: (stat.f_blocks as u64).saturating_mul(block),
        available: (stat.f_bavail as u64).saturating_mul(block),
    })
}

/// True for "no space left on device" and "disk quota exceeded".
pub fn is_no_space(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::StorageFull
        || error.kind() == io::ErrorKind::QuotaExceeded
        || matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Bytes of the segment files (and anything else) in a queue directory.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// "1.5 MiB"-style sizes for logs and status.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_volume_of_a_temporary_directory_has_a_size() {
        let dir = tempfile::tempdir().unwrap();
        let volume = volume(dir.path()).unwrap();
        assert!(volume.total > 0 && volume.available <= volume.total);
        assert!(is_no_space(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_no_space(&io::Error::from_raw_os_error(libc::EIO)));
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(20 << 20), "20.0 MiB");
    }
}
