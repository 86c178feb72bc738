//! The `file` exporter: NDJSON, one event per line, into a path template with the UTC date
//! (`events-%Y-%m-%d.ndjson` rotates daily), creating directories as needed.
//!
//! `fsync: batch` (default) syncs every written batch before it counts as delivered, so a power
//! loss cannot lose an event the queue already let go; `fsync: never` leaves it to the OS (a power
//! loss can lose the last seconds of writes; a process crash cannot).

pub mod factory;

use crate::delivery::{
    Outcome, ProbeError, RequestLimits, RequestRecord, Schema, SendReport, Sink,
};
use async_trait::async_trait;
use chrono::format::{Item, StrftimeItems};
use serde::Deserialize;
use siemrelay_core::{ConfigIssue, Event};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// When the file exporter calls fsync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every batch, before it counts as delivered (default).
    #[default]
    Batch,
    /// Never; the OS writes back on its own schedule.
    Never,
}

/// `file:` exporter settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Path template; strftime fields use the UTC date at write time
    /// (default `./siemrelay-data/events-%Y-%m-%d.ndjson`).
    #[serde(default = "default_path")]
    pub path: String,
    /// `batch` (default) or `never`.
    #[serde(default)]
    pub fsync: FsyncPolicy,
}

fn default_path() -> String {
    "./siemrelay-data/events-%Y-%m-%d.ndjson".into()
}

impl FileConfig {
    /// Checks the path template.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.path.trim().is_empty() {
            issues.push(ConfigIssue::new("path", "must not be empty"));
        } else if StrftimeItems::new(&self.path).any(|item| matches!(item, Item::Error)) {
            issues.push(ConfigIssue::new(
                "path",
                format!("{:?} has an invalid %-field (use e.g. %Y-%m-%d)", self.path),
            ));
        }
        issues
    }
}

struct OpenFile {
    path: PathBuf,
    file: File,
}

/// Appends NDJSON to the current file of the template.
pub struct FileSink {
    template: String,
    fsync: FsyncPolicy,
    current: Arc<Mutex<Option<OpenFile>>>,
    schema: Schema,
}

impl FileSink {
    /// A sink for a validated config.
    pub fn new(config: &FileConfig) -> FileSink {
        FileSink {
            template: config.path.clone(),
            fsync: config.fsync,
            current: Arc::new(Mutex::new(None)),
            schema: Schema::Native,
        }
    }

    /// Writes each event in `schema` (the shared `schema` key).
    pub fn with_schema(self, schema: Schema) -> FileSink {
        FileSink { schema, ..self }
    }
}

impl FileSink {
    /// The file a batch written now goes to.
    pub fn current_path(&self) -> PathBuf {
        PathBuf::from(chrono::Utc::now().format(&self.template).to_string())
    }

    /// Checks that the current file can be appended to (creating its directories and the file
    /// if needed) without writing anything; returns its path. For `siemrelay test` on a file
    /// that holds signed events, where an unsigned test event would break verification.
    pub async fn check_writable(&self) -> std::io::Result<PathBuf> {
        let path = self.current_path();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            OpenOptions::new().create(true).append(true).open(&path)?;
            Ok(path)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

fn write_batch(
    current: &Mutex<Option<OpenFile>>,
    path: PathBuf,
    buf: &[u8],
    fsync: FsyncPolicy,
) -> std::io::Result<()> {
    let mut guard = current.lock().unwrap_or_else(|p| p.into_inner());
    if guard.as_ref().is_none_or(|open| open.path != path) {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        *guard = Some(OpenFile { path, file });
    }
    let open = guard
        .as_mut()
        .ok_or_else(|| std::io::Error::other("file not open"))?;
    if let Err(e) = open.file.write_all(buf) {
        // Reopen next time; a partial line may have been written, which the next line follows.
        *guard = None;
        return Err(e);
    }
    if fsync == FsyncPolicy::Batch {
        open.file.sync_data()?;
    }
    Ok(())
}

#[async_trait]
impl Sink for FileSink {
    fn limits(&self) -> RequestLimits {
        LOCAL_LIMITS
    }

    fn default_concurrency(&self) -> usize {
        1
    }

    /// Opens (or creates) the current file the way a write does, writing nothing.
    async fn probe(&self) -> Option<Result<(), ProbeError>> {
        let path = PathBuf::from(chrono::Utc::now().format(&self.template).to_string());
        let shown = path.display().to_string();
        let (current, fsync) = (self.current.clone(), self.fsync);
        let opened =
            tokio::task::spawn_blocking(move || write_batch(&current, path, &[], fsync)).await;
        Some(match opened {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ProbeError::Failed(format!("cannot open {shown}: {e}"))),
            Err(e) => Err(ProbeError::Failed(format!("file writer task failed: {e}"))),
        })
    }

    async fn send(&self, events: &[Event]) -> SendReport {
        let path = self.current_path();
        let shown = path.display().to_string();
        let (current, fsync) = (self.current.clone(), self.fsync);
        write_lines(events, self.schema, &shown, move |buf| {
            write_batch(&current, path, buf, fsync)
        })
        .await
    }
}

/// Limits of the local sinks (file, stdout): one write per batch.
pub(crate) const LOCAL_LIMITS: RequestLimits = RequestLimits {
    max_events: 10_000,
    max_bytes: 16 << 20,
};

/// The body of the local sinks: events as NDJSON lines, written by `write` on a blocking
/// thread; a failed write is retried. The request's latency is the write (and fsync), as for
/// any SIEM's round trip.
pub(crate) async fn write_lines(
    events: &[Event],
    schema: Schema,
    target: &str,
    write: impl FnOnce(&[u8]) -> std::io::Result<()> + Send + 'static,
) -> SendReport {
    let mut buf = Vec::with_capacity(events.len() * 512);
    for event in events {
        schema.write_event(event, &mut buf);
        buf.push(b'\n');
    }
    let bytes = buf.len();
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || write(&buf)).await;
    let latency = started.elapsed();
    let (outcome, reply) = match result {
        Ok(Ok(())) => (Outcome::Delivered, None),
        Ok(Err(e)) => {
            let reason = format!("writing {target} failed: {e}");
            (Outcome::retry(reason.clone()), Some(reason))
        }
        Err(e) => {
            let reason = format!("the writer task for {target} failed: {e}");
            (Outcome::retry(reason.clone()), Some(reason))
        }
    };
    SendReport::uniform(
        outcome,
        vec![RequestRecord {
            events: events.len(),
            bytes,
            reply,
            latency,
            ..Default::default()
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_ndjson_into_dated_file_creating_directories() {
        let dir = tempfile::tempdir().unwrap();
        let template = format!("{}/nested/events-%Y-%m-%d.ndjson", dir.path().display());
        let config = FileConfig {
            path: template.clone(),
            fsync: FsyncPolicy::Batch,
        };
        assert!(config.validate().is_empty());
        let sink = FileSink::new(&config);
        let events: Vec<Event> = (0..3).map(|i| Event::new(format!("t{i}"))).collect();
        let report = sink.send(&events).await;
        assert_eq!(report.outcomes.get(0).unwrap(), &Outcome::Delivered);
        // The write and its fsync take time: the latency histogram must not read 0.
        assert!(report.requests[0].latency > std::time::Duration::ZERO);
        let path = chrono::Utc::now().format(&template).to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["event_type"], "t2");
        assert_eq!(lines[0]["event_id"], events[0].event_id.to_string());
    }

    #[tokio::test]
    async fn check_writable_creates_the_file_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = FileConfig {
            path: format!("{}/a/b/events-%Y.ndjson", dir.path().display()),
            fsync: FsyncPolicy::Batch,
        };
        let path = FileSink::new(&config).check_writable().await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        let blocked = FileConfig {
            path: format!("{}/events.ndjson", path.display()),
            fsync: FsyncPolicy::Batch,
        };
        assert!(FileSink::new(&blocked).check_writable().await.is_err());
    }

    #[test]
    fn bad_template_is_a_config_issue() {
        let config = FileConfig {
            path: "x-%Q%.ndjson".into(),
            fsync: FsyncPolicy::Never,
        };
        assert_eq!(config.validate()[0].key, "path");
    }
}
