//! Checkpoints: which file (device + inode + fingerprint) was read up to which byte offset,
//! persisted atomically to `<storage_dir>/checkpoints.json`.
//!
//! Format (version 1):
//! ```json
//! {"version": 1, "files": [{"path": "/var/log/gateway/audit-1.log", "device": 2049,
//!   "inode": 131075, "fingerprint": {"len": 1024, "sha256": "9f86…"}, "offset": 52341}]}
//! ```
//! `offset` is the byte offset just after the last line the pipeline accepted. The fingerprint
//! is the SHA-256 of the first `len` bytes of the file (`len` = min(file size, 1 KiB) when it was
//! last taken), so a file that grows keeps matching and a file rewritten in place does not.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use siemrelay_core::atomic_file::{Access, write_atomically};
use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};

/// Name of the checkpoint file inside the receiver's storage directory.
pub const CHECKPOINT_FILE: &str = "checkpoints.json";
/// Where an unreadable checkpoint file is moved before starting afresh.
pub const CORRUPT_CHECKPOINT_FILE: &str = "checkpoints.json.corrupt";
/// How many leading bytes of a file its fingerprint covers at most.
pub const FINGERPRINT_MAX: usize = 1024;
const VERSION: u32 = 1;

/// A file's identity on its filesystem: device and inode number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// Device number of the filesystem holding the file.
    pub device: u64,
    /// Inode number on that device.
    pub inode: u64,
}

impl FileId {
    /// The identity of the file the metadata describes.
    #[cfg(unix)]
    pub fn of(meta: &Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            device: meta.dev(),
            inode: meta.ino(),
        }
    }

    /// Without inodes, files can only be told apart by their fingerprint.
    #[cfg(not(unix))]
    pub fn of(_meta: &Metadata) -> FileId {
        FileId {
            device: 0,
            inode: 0,
        }
    }
}

/// SHA-256 of a file's first `len` bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// How many leading bytes are covered (at most [`FINGERPRINT_MAX`]).
    pub len: usize,
    /// Lowercase hex SHA-256 of those bytes.
    pub sha256: String,
}

/// How a file's current head compares with a stored fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadCheck {
    /// The head starts with the fingerprinted bytes (the file may have grown).
    Same,
    /// The file is shorter than the fingerprint or starts differently: new content.
    Changed,
}

impl Fingerprint {
    /// The fingerprint of `head` (the first up to [`FINGERPRINT_MAX`] bytes of a file).
    pub fn of(head: &[u8]) -> Fingerprint {
        let head = &head[..head.len().min(FINGERPRINT_MAX)];
        Fingerprint {
            len: head.len(),
            sha256: hex::encode(Sha256::digest(head)),
        }
    }

    /// Whether `head` (a file's current first bytes) still starts with the fingerprinted bytes.
    pub fn check(&self, head: &[u8]) -> HeadCheck {
        match head.get(..self.len) {
            Some(prefix) if hex::encode(Sha256::digest(prefix)) == self.sha256 => HeadCheck::Same,
            _ => HeadCheck::Changed,
        }
    }
}

/// Reads the first up to [`FINGERPRINT_MAX`] bytes of an open file without moving its cursor.
pub fn read_head(file: &File, file_len: u64) -> io::Result<Vec<u8>> {
    let want = usize::try_from(file_len)
        .unwrap_or(usize::MAX)
        .min(FINGERPRINT_MAX);
    let mut head = vec![0; want];
    let mut filled = 0;
    while filled < want {
        let n = read_at(file, &mut head[filled..], filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    Ok(head)
}

/// Positional read that leaves the file cursor where it is.
#[cfg(unix)]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// The file receiver needs positional reads and inodes: Unix only.
#[cfg(not(unix))]
pub fn read_at(_file: &File, _buf: &mut [u8], _offset: u64) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the file receiver runs on Unix-like systems only",
    ))
}

/// One tailed file's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheckpoint {
    /// The path the file was last seen at (informational; identity is device + inode).
    pub path: String,
    /// Device number.
    pub device: u64,
    /// Inode number.
    pub inode: u64,
    /// Fingerprint of the file's first bytes.
    pub fingerprint: Fingerprint,
    /// Byte offset just after the last line the pipeline accepted.
    pub offset: u64,
}

impl FileCheckpoint {
    /// The file identity this checkpoint belongs to.
    pub fn id(&self) -> FileId {
        FileId {
            device: self.device,
            inode: self.inode,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointDocument {
    version: u32,
    files: Vec<FileCheckpoint>,
}

/// Why the checkpoint file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The checkpoint file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not a valid checkpoint document (corrupt or truncated).
    #[error("{path} is not a valid checkpoint file: {reason}")]
    Invalid {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads and atomically writes one receiver's checkpoint file.
#[derive(Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
    path: PathBuf,
    scratch: Vec<u8>,
}

impl CheckpointStore {
    /// A store for `<dir>/checkpoints.json`; the directory is created if missing.
    pub fn open(dir: &Path) -> io::Result<CheckpointStore> {
        fs::create_dir_all(dir)?;
        Ok(CheckpointStore {
            dir: dir.to_path_buf(),
            path: dir.join(CHECKPOINT_FILE),
            scratch: Vec::new(),
        })
    }

    /// The checkpoint file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored checkpoints; `None` when no checkpoint file exists yet.
    pub fn load(&self) -> Result<Option<Vec<FileCheckpoint>>, LoadError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LoadError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let invalid = |reason: String| LoadError::Invalid {
            path: self.path.clone(),
            reason,
        };
        let document: CheckpointDocument =
            serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if document.version != VERSION {
            return Err(invalid(format!(
                "version {} is not supported (expected {VERSION})",
                document.version
            )));
        }
        for entry in &document.files {
            let fingerprint = &entry.fingerprint;
            let hex_ok = fingerprint.sha256.len() == 64
                && fingerprint.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if fingerprint.len > FINGERPRINT_MAX || !hex_ok {
                return Err(invalid(format!(
                    "the fingerprint of {:?} is malformed",
                    entry.path
                )));
            }
        }
        Ok(Some(document.files))
    }

    /// Moves an unusable checkpoint file aside (to `checkpoints.json.corrupt`) for inspection.
    pub fn set_aside(&self) -> io::Result<PathBuf> {
        let target = self.dir.join(CORRUPT_CHECKPOINT_FILE);
        fs::rename(&self.path, &target)?;
        Ok(target)
    }

    /// Replaces the checkpoint file atomically: write a temp file, fsync it, rename it over the
    /// old one, fsync the directory.
    pub fn save(&mut self, files: &[FileCheckpoint]) -> io::Result<()> {
        self.scratch.clear();
        let document = CheckpointDocument {
            version: VERSION,
            files: files.to_vec(),
        };
        serde_json::to_writer_pretty(&mut self.scratch, &document).map_err(io::Error::other)?;
        self.scratch.push(b'\n');
        write_atomically(&self.path, &self.scratch, Access::Default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64) -> FileCheckpoint {
        FileCheckpoint {
            path: "/var/log/a.log".into(),
            device: 1,
            inode: 2,
            fingerprint: Fingerprint::of(b"hello\n"),
            offset,
        }
    }

    #[test]
    fn fingerprint_keeps_matching_while_the_file_grows() {
        let short = Fingerprint::of(b"abc");
        assert_eq!(short.len, 3);
        assert_eq!(short.check(b"abcdef"), HeadCheck::Same);
        assert_eq!(short.check(b"ab"), HeadCheck::Changed);
        assert_eq!(short.check(b"xbcdef"), HeadCheck::Changed);
        let long = Fingerprint::of(&[7u8; 5000]);
        assert_eq!(long.len, FINGERPRINT_MAX);
        assert_eq!(long.check(&[7u8; FINGERPRINT_MAX]), HeadCheck::Same);
        assert_eq!(Fingerprint::of(b"").check(b"anything"), HeadCheck::Same);
    }

    #[test]
    fn save_then_load_round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), None);
        store.save(&[entry(6)]).unwrap();
        store.save(&[entry(12)]).unwrap();
        assert_eq!(store.load().unwrap(), Some(vec![entry(12)]));
        assert!(!siemrelay_core::atomic_file::temp_path(store.path()).exists());
    }

    #[test]
    fn corrupt_truncated_or_foreign_files_are_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = CheckpointStore::open(dir.path()).unwrap();
        store.save(&[entry(6)]).unwrap();
        let full = fs::read(store.path()).unwrap();
        fs::write(store.path(), &full[..full.len() / 2]).unwrap();
        assert!(matches!(store.load(), Err(LoadError::Invalid { .. })));
        fs::write(store.path(), b"{\"version\": 2, \"files\": []}").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("version 2"), "{err}");
        fs::write(store.path(), b"\x00\x01garbage").unwrap();
        assert!(store.load().is_err());
        let aside = store.set_aside().unwrap();
        assert!(aside.exists());
        assert_eq!(store.load().unwrap(), None);
    }
}
