//! The file operations the queue performs, behind a trait so tests can inject failures
//! (a full disk, or a crash at the Nth write, fsync, truncate or unlink).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// An open segment file and its path.
#[derive(Debug)]
pub struct SegmentFile {
    /// The file, opened for reading and writing.
    pub file: File,
    /// Where it is.
    pub path: PathBuf,
}

/// Every mutating file operation of the queue.
pub trait Fs: Send + Sync + 'static {
    /// Creates a new, empty segment file (a leftover of a failed earlier attempt is emptied:
    /// nothing refers to a segment named past every written sequence number).
    fn create(&self, path: &Path) -> io::Result<SegmentFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(SegmentFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing segment file for appending at a known offset.
    fn open(&self, path: &Path) -> io::Result<SegmentFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(SegmentFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Writes all of `buf` at `offset`.
    fn write_at(&self, file: &SegmentFile, buf: &[u8], offset: u64) -> io::Result<()> {
        file.file.write_all_at(buf, offset)
    }

    /// Makes the file's data durable.
    fn sync(&self, file: &SegmentFile) -> io::Result<()> {
        file.file.sync_data()
    }

    /// Cuts the file to `len` bytes.
    fn truncate(&self, file: &SegmentFile, len: u64) -> io::Result<()> {
        file.file.set_len(len)
    }

    /// Deletes a file.
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    /// Makes the directory's entries (creates, unlinks) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// The real file system.
#[derive(Debug, Default)]
pub struct RealFs;

impl Fs for RealFs {}

/// Reads `len` bytes at `offset` of a segment (no fault injection: reads change nothing).
pub fn read_at(path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}
