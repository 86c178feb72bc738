//! The set of tailed files: finding them by glob, following rotation and deletion, reading
//! batches of lines across files, and committing offsets to the checkpoint file.
//!
//! All of this is blocking file I/O; the receiver runs it on tokio's blocking pool.

use super::StartAt;
use super::batch::{Advance, PendingBatch};
use super::checkpoint::{
    CheckpointStore, FileCheckpoint, FileId, Fingerprint, HeadCheck, read_at, read_head,
};
use super::reader::{Fill, TrackedFile};
use glob::{MatchOptions, Pattern};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;

/// How far back `start_at: end` looks for the start of the line being written.
const LINE_START_WINDOW: u64 = 64 * 1024;
/// Scans a file must be missing from every matching path before it is finished and dropped;
/// until then it is read through its open handle (a writer may still append after a rename).
const MISSING_SCANS_BEFORE_FINISH: u32 = 2;

const MATCH_OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// What the tailer needs from the config.
#[derive(Clone, Debug)]
pub struct TailSettings {
    /// Glob patterns of files to tail.
    pub include: Vec<String>,
    /// Glob patterns of paths to leave out.
    pub exclude: Vec<Pattern>,
    /// Where files found at start-up without a checkpoint are read from.
    pub start_at: StartAt,
    /// Lines per batch.
    pub max_batch: usize,
    /// Longer lines are cut.
    pub max_line_size: usize,
}

/// The tailed files and their checkpoints.
pub struct Tailer {
    settings: TailSettings,
    store: CheckpointStore,
    /// Tailed files, oldest first: a file rotated away is drained before the new one is read.
    files: Vec<TrackedFile>,
    /// Checkpoints loaded at start-up, consumed by the first scan.
    restored: HashMap<FileId, FileCheckpoint>,
    /// A checkpoint file was loaded: files found at start-up without an entry appeared while
    /// siemrelay was stopped and are read from the beginning (`start_at` is for a first start).
    resuming: bool,
    first_scan: bool,
    /// The set of files or their checkpoints changed since the last write.
    dirty: bool,
    /// Paths (or patterns) already warned about, so a persistent problem logs once.
    warned: HashSet<String>,
}

impl Tailer {
    /// Loads the checkpoint file; an unreadable one is set aside with a warning and every file
    /// is treated as new.
    pub fn start(settings: TailSettings, store: CheckpointStore) -> Tailer {
        let restored = match store.load() {
            Ok(entries) => entries,
            Err(e) => {
                let aside = store.set_aside();
                let moved_to = match &aside {
                    Ok(path) => path.display().to_string(),
                    Err(e) => format!("not moved ({e})"),
                };
                let start_at = match settings.start_at {
                    crate::file::StartAt::Beginning => "beginning",
                    crate::file::StartAt::End => "end",
                };
                tracing::warn!(
                    error = %e,
                    moved_to = %moved_to,
                    start_at = %start_at,
                    "file receiver checkpoint is unusable; treating every file as new (start_at applies)"
                );
                None
            }
        };
        let resuming = restored.is_some();
        let restored = restored
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.id(), e))
            .collect();
        Tailer {
            settings,
            store,
            files: Vec::new(),
            restored,
            resuming,
            first_scan: true,
            dirty: false,
            warned: HashSet::new(),
        }
    }

    /// Finds the files matching the globs: starts tailing new ones, follows renamed ones, and
    /// finishes ones that have been gone for a while. Writes the checkpoint when it changed.
    pub fn scan(&mut self) {
        let index: HashMap<FileId, usize> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id, i))
            .collect();
        let mut seen = vec![false; self.files.len()];
        for path in self.discover() {
            let path_text = path.to_string_lossy().into_owned();
            let meta = match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(path = %path_text, error = %e, "cannot stat file; skipping it");
                    continue;
                }
            };
            let id = FileId::of(&meta);
            if let Some(&i) = index.get(&id) {
                seen[i] = true;
                let file = &mut self.files[i];
                if file.path != path_text {
                    tracing::info!(from = %file.path, to = %path_text, "tailed file was renamed");
                    file.path = path_text;
                    self.dirty = true;
                }
                continue;
            }
            if self.files.iter().any(|f| f.id == id) {
                continue; // Another matching path (a link) to a file found earlier in this scan.
            }
            match self.open(path, path_text.clone()) {
                Ok(Some(file)) => {
                    self.warned.remove(&path_text);
                    self.files.push(file);
                    seen.push(true);
                    self.dirty = true;
                }
                Ok(None) => {}
                Err(e) => {
                    if self.warned.insert(path_text.clone()) {
                        tracing::warn!(path = %path_text, error = %e, "cannot open file to tail it; will retry");
                    }
                }
            }
        }
        for (file, seen) in self.files.iter_mut().zip(&seen) {
            if *seen {
                file.missing_scans = 0;
                file.finishing = false;
                continue;
            }
            file.missing_scans += 1;
            if file.missing_scans == MISSING_SCANS_BEFORE_FINISH {
                tracing::info!(path = %file.path, "tailed file is gone (deleted or rotated away); finishing it");
                file.finishing = true;
            }
        }
        // A finishing file is dropped only after one more full read through its handle.
        let before = self.files.len();
        self.files.retain(|f| {
            !(f.finishing && f.missing_scans > MISSING_SCANS_BEFORE_FINISH && f.drained())
        });
        self.dirty |= self.files.len() != before;
        if self.first_scan {
            // Written even when nothing matched, so a restart knows it is not a first start.
            self.first_scan = false;
            self.dirty = true;
            for (_, stale) in self.restored.drain() {
                tracing::info!(path = %stale.path, "checkpointed file no longer matches any include pattern; forgetting it");
                self.dirty = true;
            }
        }
        if self.dirty {
            self.persist();
        }
    }

    /// Paths matching an include pattern and no exclude pattern, sorted.
    fn discover(&mut self) -> BTreeSet<PathBuf> {
        let mut paths = BTreeSet::new();
        for pattern in &self.settings.include {
            let entries = match glob::glob_with(pattern, MATCH_OPTIONS) {
                Ok(entries) => entries,
                Err(e) => {
                    if self.warned.insert(pattern.clone()) {
                        tracing::warn!(pattern = %pattern, error = %e, "invalid include pattern");
                    }
                    continue;
                }
            };
            for entry in entries {
                match entry {
                    Ok(path) => {
                        let excluded = self
                            .settings
                            .exclude
                            .iter()
                            .any(|p| p.matches_path_with(&path, MATCH_OPTIONS));
                        if !excluded {
                            paths.insert(path);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot read a directory while matching {pattern}")
                    }
                }
            }
        }
        paths
    }

    /// Opens a newly found file and decides where to start reading it: at its checkpoint when
    /// one matches, at `start_at` for files present at a first start (no checkpoint file),
    /// else at the beginning.
    fn open(&mut self, path: PathBuf, path_text: String) -> io::Result<Option<TrackedFile>> {
        let handle = File::open(&path)?;
        // Identity from the open handle: the path may have been replaced since it was listed.
        let meta = handle.metadata()?;
        let id = FileId::of(&meta);
        if self.files.iter().any(|f| f.id == id) {
            return Ok(None);
        }
        let len = meta.len();
        let head = read_head(&handle, len)?;
        let fingerprint = Fingerprint::of(&head);
        let restored = self.restored.remove(&id).or_else(|| {
            // Device numbers can change across reboots; fall back to inode + fingerprint.
            let key = self.restored.iter().find_map(|(key, cp)| {
                (cp.inode == id.inode && cp.fingerprint.check(&head) == HeadCheck::Same)
                    .then_some(*key)
            })?;
            self.restored.remove(&key)
        });
        let (offset, how) = match restored {
            Some(cp) if cp.fingerprint.check(&head) == HeadCheck::Same && cp.offset <= len => {
                (cp.offset, "checkpoint")
            }
            Some(_) => (0, "beginning (file changed since its checkpoint)"),
            None if self.first_scan && !self.resuming => match self.settings.start_at {
                StartAt::Beginning => (0, "beginning (start_at)"),
                StartAt::End => (line_start_before(&handle, len)?, "end (start_at)"),
            },
            None if self.first_scan => (0, "beginning (appeared while stopped)"),
            None => (0, "beginning (new file)"),
        };
        tracing::info!(path = %path_text, offset, from = %how, "tailing file");
        TrackedFile::new(id, path_text, handle, fingerprint, offset).map(Some)
    }

    /// Reads up to `max_batch` complete lines, oldest file first. `None` when no file had
    /// anything new. Read errors are logged and the file is retried at the next poll.
    pub fn next_batch(&mut self) -> Option<PendingBatch> {
        let max_batch = self.settings.max_batch;
        let max_line = self.settings.max_line_size;
        let warned = &mut self.warned;
        let mut batch = PendingBatch::default();
        for file in &mut self.files {
            if batch.len() >= max_batch {
                break;
            }
            let (generation, consumed) = (file.generation, file.consumed());
            batch.begin_file();
            while batch.len() < max_batch {
                if file.take_line(max_line, &mut batch) {
                    continue;
                }
                match file.fill() {
                    Ok(Fill::Read | Fill::Restarted) => {}
                    Ok(Fill::Eof) => {
                        if file.finishing {
                            file.take_partial(&mut batch);
                        }
                        warned.remove(&file.path);
                        break;
                    }
                    Err(e) => {
                        if warned.insert(file.path.clone()) {
                            tracing::warn!(path = %file.path, error = %e, "cannot read file; will retry");
                        }
                        break;
                    }
                }
            }
            if file.generation != generation || file.consumed() != consumed {
                batch.record_advance(file);
            }
            self.dirty |= file.dirty;
        }
        (!batch.is_void()).then_some(batch)
    }

    /// Marks the batch's lines as accepted and writes the checkpoint.
    pub fn commit(&mut self, advances: &[Advance]) {
        for advance in advances {
            if let Some(file) = self
                .files
                .iter_mut()
                .find(|f| f.id == advance.id && f.generation == advance.generation)
            {
                file.committed = advance.offset;
            }
        }
        self.dirty = true;
        self.persist();
    }

    /// Writes the checkpoint if anything changed since the last write.
    pub fn flush(&mut self) {
        if self.dirty || self.files.iter().any(|f| f.dirty) {
            self.persist();
        }
    }

    fn persist(&mut self) {
        let entries: Vec<FileCheckpoint> = self.files.iter().map(TrackedFile::checkpoint).collect();
        match self.store.save(&entries) {
            Ok(()) => {
                self.dirty = false;
                for file in &mut self.files {
                    file.dirty = false;
                }
            }
            Err(e) => tracing::error!(
                path = %self.store.path().display(),
                error = %e,
                "cannot write the file receiver checkpoint; lines may be read again after a restart"
            ),
        }
    }
}

/// The offset just after the last newline near the end of the file, so `start_at: end` does
/// not emit the tail of a line being written as if it were a whole line.
fn line_start_before(file: &File, len: u64) -> io::Result<u64> {
    let from = len.saturating_sub(LINE_START_WINDOW);
    let mut tail = vec![0; usize::try_from(len - from).unwrap_or(0)];
    let mut filled = 0;
    while filled < tail.len() {
        let n = read_at(file, &mut tail[filled..], from + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    tail.truncate(filled);
    Ok(match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => len,
    })
}
