//! Replacing a small state file so that a crash leaves either the old or the new content, never
//! a torn mix: write a temporary file next to it, fsync it, rename it over the file, fsync the
//! directory. Every such file (exporter state, the admin overlay, a disk queue's loss record,
//! the file receiver's checkpoints) is written by [`write_atomically`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Who may read the file written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The process's default (0666 less the umask).
    Default,
    /// The owner only (0600 on Unix): files that may hold settings or secrets' neighbours.
    OwnerOnly,
}

/// The temporary file `path` is written through: its name with `.tmp` appended
/// (`state.json` → `state.json.tmp`).
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `bytes` durably and atomically: creates its directory if needed, writes
/// [`temp_path`], fsyncs it, renames it over `path`, and fsyncs the directory so the rename
/// itself survives a crash.
pub fn write_atomically(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let temp = temp_path(path);
    {
        let mut options = OpenOptions::new();
        options.create(true).write(true).truncate(true);
        #[cfg(unix)]
        if access == Access::OwnerOnly {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    sync_dir(dir)
}

/// Makes a directory's entries (creates, renames, unlinks) durable.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Without Unix directory handles there is nothing to fsync.
#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("state.json");
        write_atomically(&path, b"one", Access::Default).unwrap();
        write_atomically(&path, b"two", Access::Default).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(temp_path(&path), dir.path().join("nested/state.json.tmp"));
        assert!(!temp_path(&path).exists());
    }

    #[cfg(unix)]
    #[test]
    fn owner_only_files_are_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("overlay.yaml");
        write_atomically(&path, b"x", Access::OwnerOnly).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
