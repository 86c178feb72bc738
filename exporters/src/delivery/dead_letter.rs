//! The dead-letter file of an exporter: events that could not be delivered, one JSON line each,
//! with the exporter id, the last error, the attempt count and when it was written.
//!
//! Line format: `{"time":"…","exporter":"splunk_hec/prod","error":"…","attempts":3,"event":{…}}`.
//! Lines are appended and fsynced before the events leave the queue, so a dead-lettered event is
//! never lost.

use serde::{Deserialize, Serialize};
use siemrelay_core::ingest::{IngestOptions, event_from_object};
use siemrelay_core::{Event, Timestamp};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Appends undeliverable events to an exporter's dead-letter file.
pub struct DeadLetter {
    exporter: String,
    path: PathBuf,
    file: Mutex<Option<File>>,
    written: AtomicU64,
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
        }
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
        if guard.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            *guard = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let file = guard
            .as_mut()
            .ok_or_else(|| std::io::Error::other("dead-letter file not open"))?;
        file.write_all(&buf)?;
        file.sync_data()?;
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
}
