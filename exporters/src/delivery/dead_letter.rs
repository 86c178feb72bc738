//! The dead-letter file of an exporter: events that could not be delivered, one JSON line each,
//! with the exporter id, the last error, the attempt count and when it was written.
//!
//! Line format: `{"time":"…","exporter":"splunk_hec/prod","error":"…","attempts":3,"event":{…}}`.
//! Lines are appended and fsynced before the events leave the queue, so a dead-lettered event is
//! never lost.
//!
//! Other processes change the file: `siemrelay dlq replay` renames it aside and `dlq purge`
//! deletes it while siemrelay runs. Both hold the file's lock ([`lock_for_change`]) while they
//! do; a write holds it too and checks, under the lock, that its open file is still the one at
//! the path (reopening it otherwise), so no line is ever appended to a file being replayed or
//! purged. [`DeadLetter::count`] follows the files, whoever changed them.

use serde::{Deserialize, Serialize};
use siemrelay_core::ingest::{IngestOptions, event_from_object};
use siemrelay_core::{Event, Timestamp};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Appends undeliverable events to an exporter's dead-letter file.
pub struct DeadLetter {
    exporter: String,
    path: PathBuf,
    file: Mutex<Option<File>>,
    written: AtomicU64,
    /// Lines counted per file: (device, inode, length counted, lines).
    counted: Mutex<HashMap<PathBuf, (u64, u64, u64, u64)>>,
}

/// Opens `path` (if it exists) and takes its lock, for a process that renames or deletes a
/// dead-letter file while siemrelay may be writing to it: keep the returned file until the
/// rename or delete is done. `None` when there is no such file.
pub fn lock_for_change(path: &Path) -> std::io::Result<Option<File>> {
    match OpenOptions::new().append(true).open(path) {
        Ok(file) => {
            file.lock()?;
            Ok(Some(file))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// True when `file` is what `path` names now (not renamed or deleted meanwhile).
fn still_at(file: &File, path: &Path) -> std::io::Result<bool> {
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Newlines in `file` from `from` on.
fn count_lines(file: &mut File, from: u64) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 64 << 10];
    let mut lines = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
}

/// One line of a dead-letter file, as read back.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetterEntry {
    /// When it was dead-lettered (RFC 3339).
    pub time: String,
    /// The exporter that gave up.
    pub exporter: String,
    /// The last error.
    pub error: String,
    /// Delivery attempts made.
    pub attempts: u32,
    /// The event in its JSON form.
    pub event: serde_json::Value,
}

impl DeadLetterEntry {
    /// The event, with its original id kept.
    pub fn to_event(&self) -> Option<Event> {
        let object = self.event.as_object()?.clone();
        event_from_object(object, &IngestOptions::default(), Timestamp::now())
            .ok()
            .map(|i| i.event)
    }
}

/// File name of an exporter's dead-letter file: `/` in the id becomes `__`.
pub fn file_name_for(exporter: &str) -> String {
    format!("{}.ndjson", exporter.replace('/', "__"))
}

impl DeadLetter {
    /// A dead-letter file for `exporter` in `dir` (created on first write).
    pub fn new(dir: &Path, exporter: &str) -> DeadLetter {
        DeadLetter {
            exporter: exporter.to_string(),
            path: dir.join(file_name_for(exporter)),
            file: Mutex::new(None),
            written: AtomicU64::new(0),
            counted: Mutex::new(HashMap::new()),
        }
    }

    /// Entries in the dead-letter file now, and in the files a running `dlq replay` moved
    /// aside: follows the files after a replay or purge by another process. Counts only what
    /// was appended since the last call (a replaced file is counted again).
    pub fn count(&self) -> u64 {
        let Some(dir) = self.path.parent() else {
            return 0;
        };
        let Some(name) = self.path.file_name().and_then(|n| n.to_str()) else {
            return 0;
        };
        let aside = format!("{name}.replaying-");
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n == name || n.starts_with(&aside))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        counted.retain(|path, _| files.contains(path));
        let mut total = 0;
        for path in files {
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            let (dev, ino, len) = (meta.dev(), meta.ino(), meta.len());
            let (from, before) = match counted.get(&path) {
                Some(&(d, i, l, lines)) if d == dev && i == ino && l <= len => (l, lines),
                _ => (0, 0),
            };
            let lines = before + count_lines(&mut file, from).unwrap_or(0);
            counted.insert(path, (dev, ino, len, lines));
            total += lines;
        }
        total
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Events written since start.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Appends events with their last error and attempt count, and fsyncs.
    pub fn write(&self, events: &[Event], error: &str, attempts: u32) -> std::io::Result<()> {
        let entries: Vec<(&Event, &str)> = events.iter().map(|e| (e, error)).collect();
        self.write_each(&entries, attempts)
    }

    /// Appends events, each with its own error, in one write and one fsync.
    pub fn write_each(&self, entries: &[(&Event, &str)], attempts: u32) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let time = Timestamp::now().to_rfc3339();
        let mut buf = Vec::with_capacity(entries.len() * 600);
        // Reasons are scrubbed of secrets (a SIEM may echo credentials); a batch usually shares
        // one reason, scrubbed once.
        let mut scrubbed: Option<(&str, String)> = None;
        for (event, error) in entries {
            let error = match &scrubbed {
                Some((raw, clean)) if raw == error => clean.as_str(),
                _ => {
                    let clean = siemrelay_core::scrub::scrub(error).into_owned();
                    &scrubbed.insert((error, clean)).1
                }
            };
            let head = serde_json::json!({
                "time": time, "exporter": self.exporter, "error": error, "attempts": attempts,
            });
            let head = serde_json::to_vec(&head).map_err(std::io::Error::other)?;
            // `{…head…,"event":<event json>}`
            buf.extend_from_slice(&head[..head.len() - 1]);
            buf.extend_from_slice(b",\"event\":");
            event.write_json(&mut buf);
            buf.extend_from_slice(b"}\n");
        }
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let file = match guard.take() {
                Some(file) => file,
                None => {
                    if let Some(dir) = self.path.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.path)?
                }
            };
            // Under the lock, a replay or purge cannot move the file away mid-write; if it did
            // before, the open file is no longer the dead-letter file: open the new one.
            file.lock()?;
            if !still_at(&file, &self.path)? {
                continue;
            }
            let written = (&file).write_all(&buf).and_then(|()| file.sync_data());
            file.unlock()?;
            *guard = Some(file);
            written?;
            break;
        }
        self.written
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        metrics::counter!("siemrelay_exporter_events_dead_lettered_total", "exporter" => self.exporter.clone())
            .increment(entries.len() as u64);
        Ok(())
    }
}

/// Reads a dead-letter file. Lines that do not parse are reported with their line number.
pub fn read_entries(path: &Path) -> std::io::Result<(Vec<DeadLetterEntry>, Vec<String>)> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<DeadLetterEntry>(&line) {
            Ok(entry) => entries.push(entry),
            Err(e) => problems.push(format!("{}:{}: {e}", path.display(), index + 1)),
        }
    }
    Ok((entries, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_entries_read_back_with_their_events() {
        let dir = tempfile::tempdir().unwrap();
        let dlq = DeadLetter::new(dir.path(), "splunk_hec/prod");
        let mut event = Event::new("lockout");
        event.attributes.insert("user".into(), "alice".into());
        dlq.write(
            std::slice::from_ref(&event),
            "HTTP 400: invalid data format",
            3,
        )
        .unwrap();
        assert!(dlq.path().ends_with("splunk_hec__prod.ndjson"));
        let (entries, problems) = read_entries(dlq.path()).unwrap();
        assert!(problems.is_empty());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].attempts, 3);
        assert_eq!(entries[0].exporter, "splunk_hec/prod");
        let back = entries[0].to_event().unwrap();
        assert_eq!(back.event_id, event.event_id);
        assert_eq!(back.attributes["user"], "alice");
    }

    #[test]
    fn the_count_follows_the_file_when_another_process_moves_or_deletes_it() {
        let dir = tempfile::tempdir().unwrap();
        let dlq = DeadLetter::new(dir.path(), "x");
        let events: Vec<Event> = (0..3).map(|i| Event::new(format!("t{i}"))).collect();
        dlq.write(&events, "refused", 1).unwrap();
        assert_eq!(dlq.count(), 3);
        // `dlq replay` moves the file aside (under its lock) while siemrelay keeps writing.
        let aside = dir.path().join("x.ndjson.replaying-42");
        {
            let _lock = lock_for_change(dlq.path()).unwrap().unwrap();
            std::fs::rename(dlq.path(), &aside).unwrap();
        }
        dlq.write(&events[..1], "refused", 1).unwrap();
        let (moved, _) = read_entries(&aside).unwrap();
        assert_eq!(moved.len(), 3, "no line went to the file being replayed");
        assert_eq!(dlq.count(), 4, "the live file and the one being replayed");
        // The replay ends (its file is removed); `dlq purge` deletes the live file.
        std::fs::remove_file(&aside).unwrap();
        assert_eq!(dlq.count(), 1);
        {
            let _lock = lock_for_change(dlq.path()).unwrap().unwrap();
            std::fs::remove_file(dlq.path()).unwrap();
        }
        assert_eq!(dlq.count(), 0);
        dlq.write(&events[..2], "refused", 1).unwrap();
        assert_eq!(dlq.count(), 2);
        assert_eq!(read_entries(dlq.path()).unwrap().0.len(), 2);
    }
}
