//! Exporter state that survives a restart, kept in `<storage>/state/exporters.json`: whether an
//! operator disabled an exporter through the admin API (and when), its last success, its last
//! error with its time, and its delivery history. Counters are not kept: they restart at zero,
//! as Prometheus expects of counters.
//!
//! - Restored at start. A saved "disabled" wins over the config (which has no such setting)
//!   until the exporter is enabled again through the API; the start logs it.
//! - Written at once when an exporter is disabled or enabled, and otherwise at most every
//!   [`SAVE_INTERVAL`] when something changed, and at shutdown: the data path never touches it.
//! - Written atomically (temporary file, fsync, rename, fsync of the directory), mode 0600.
//! - Bounded: [`MAX_SAVED_EXPORTERS`] exporters, the status's own history length per exporter,
//!   error texts cut at [`MAX_ERROR_BYTES`], the whole file within [`MAX_FILE_BYTES`] (a larger
//!   file is not read).
//! - A missing file starts fresh; an unreadable, corrupt, oversized or other-format file is moved
//!   aside to `exporters.json.corrupt` with a warning naming it, and the start goes on fresh.
//! - A reload that removes an exporter drops its state; saved state of an exporter that is not
//!   in the config at start is kept, and used if a reload (or a later start) adds it back.

use super::Topology;
use crate::config::expand::scrub;
use serde::{Deserialize, Serialize};
use siemrelay_core::Timestamp;
use siemrelay_core::atomic_file::{Access, write_atomically};
use siemrelay_exporters::delivery::status::HISTORY_LEN;
use siemrelay_exporters::delivery::{DeliveryRecord, RequestOutcome, RestoredStatus};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The version of the file's layout this siemrelay reads and writes.
pub const STATE_FORMAT: u32 = 1;
/// At most this many exporters are saved (running ones first).
pub const MAX_SAVED_EXPORTERS: usize = 256;
/// A longer error text (last error, or one of the history) is cut to this many bytes (at a
/// character boundary).
pub const MAX_ERROR_BYTES: usize = 1024;
/// The file is never larger (the oldest history goes first when it would be); a larger file is
/// not read.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// How often the history and the last times are written (when they changed).
pub const SAVE_INTERVAL: Duration = Duration::from_secs(5);
/// The counter of failed writes of the state file.
pub const STATE_WRITE_ERRORS: &str = "siemrelay_state_write_errors_total";

/// The file as written.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    /// [`STATE_FORMAT`].
    format: u32,
    /// When it was written (RFC 3339).
    saved_at: String,
    /// By exporter id.
    exporters: BTreeMap<String, SavedExporter>,
}

/// What is kept of one exporter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedExporter {
    /// Disabled by an operator.
    #[serde(default)]
    pub disabled: bool,
    /// When it was disabled through the admin API (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    /// Last successful delivery (RFC 3339).
    #[serde(default)]
    pub last_success: Option<String>,
    /// Last error text (secrets scrubbed).
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the last error happened (RFC 3339).
    #[serde(default)]
    pub last_error_at: Option<String>,
    /// No success came after the last error.
    #[serde(default)]
    pub last_error_current: bool,
    /// The delivery history, oldest first.
    #[serde(default)]
    pub history: Vec<SavedDelivery>,
}

/// One request of the delivery history (as the admin API shows it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedDelivery {
    /// When the reply came (RFC 3339).
    pub time: String,
    /// Events in the request.
    pub events: usize,
    /// Bytes on the wire.
    pub bytes: usize,
    /// `delivered`, `partial`, `retry` or `permanent`.
    pub outcome: String,
    /// HTTP status, if any.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// Error text, if any.
    #[serde(default)]
    pub error: Option<String>,
    /// Milliseconds from send to reply.
    #[serde(default)]
    pub latency_ms: u64,
    /// Attempt number.
    #[serde(default)]
    pub attempt: u32,
}

/// The outcome a saved record names, if it names one.
fn outcome_named(name: &str) -> Option<RequestOutcome> {
    RequestOutcome::ALL.into_iter().find(|o| o.name() == name)
}

/// `text` cut to [`MAX_ERROR_BYTES`] bytes at a character boundary (marked with `…`).
fn cut(text: String) -> String {
    if text.len() <= MAX_ERROR_BYTES {
        return text;
    }
    let mut end = MAX_ERROR_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A time as the file keeps it: valid RFC 3339, or nothing.
fn time_text(text: Option<String>) -> Option<String> {
    text.filter(|t| Timestamp::parse_rfc3339(t).is_some())
}

impl SavedExporter {
    /// What to save of a running exporter's status; error texts scrubbed of `secrets`.
    pub fn of(status: RestoredStatus, disabled_at: Option<String>, secrets: &[String]) -> Self {
        let clean = |text: String| cut(scrub(&text, secrets));
        SavedExporter {
            disabled: status.disabled,
            disabled_at: disabled_at.filter(|_| status.disabled),
            last_success: status.last_success.map(Timestamp::to_rfc3339),
            last_error: status.last_error.map(clean),
            last_error_at: status.last_error_at.map(Timestamp::to_rfc3339),
            last_error_current: status.last_error_current,
            history: status
                .history
                .into_iter()
                .map(|r| SavedDelivery {
                    time: r.time,
                    events: r.events,
                    bytes: r.bytes,
                    outcome: r.outcome.name().to_string(),
                    http_status: r.http_status,
                    error: r.error.map(clean),
                    latency_ms: r.latency_ms,
                    attempt: r.attempt,
                })
                .collect(),
        }
        .bounded()
    }

    /// Within the bounds: the newest [`HISTORY_LEN`] records with a known outcome and a valid
    /// time, error texts cut, times that do not parse dropped.
    fn bounded(mut self) -> Self {
        self.history.retain(|r| {
            outcome_named(&r.outcome).is_some() && Timestamp::parse_rfc3339(&r.time).is_some()
        });
        let skip = self.history.len().saturating_sub(HISTORY_LEN);
        self.history.drain(..skip);
        for record in &mut self.history {
            record.error = record.error.take().map(cut);
        }
        self.last_error = self.last_error.take().map(cut);
        self.last_success = time_text(self.last_success.take());
        self.last_error_at = time_text(self.last_error_at.take());
        self.disabled_at = time_text(self.disabled_at.take()).filter(|_| self.disabled);
        self
    }

    /// The status to start the exporter with.
    pub fn restored(&self) -> RestoredStatus {
        let time = |text: &Option<String>| text.as_deref().and_then(Timestamp::parse_rfc3339);
        RestoredStatus {
            disabled: self.disabled,
            last_success: time(&self.last_success),
            last_error: self.last_error.clone(),
            last_error_at: time(&self.last_error_at),
            last_error_current: self.last_error_current,
            history: self
                .history
                .iter()
                .filter_map(|r| {
                    let outcome = outcome_named(&r.outcome)?;
                    Some(DeliveryRecord {
                        time: r.time.clone(),
                        events: r.events,
                        bytes: r.bytes,
                        outcome,
                        http_status: r.http_status,
                        error: r.error.clone(),
                        latency_ms: r.latency_ms,
                        attempt: r.attempt,
                    })
                })
                .collect(),
        }
    }
}

/// The file's bytes for `exporters` (bounded: at most [`MAX_SAVED_EXPORTERS`], in the order
/// given, each within its bounds, and at most [`MAX_FILE_BYTES`] in all: the older half of
/// every history is dropped until it fits).
pub fn encode(exporters: Vec<(String, SavedExporter)>, saved_at: Timestamp) -> Vec<u8> {
    let mut file = StateFile {
        format: STATE_FORMAT,
        saved_at: saved_at.to_rfc3339(),
        exporters: exporters
            .into_iter()
            .take(MAX_SAVED_EXPORTERS)
            .map(|(id, saved)| (id, saved.bounded()))
            .collect(),
    };
    loop {
        let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        bytes.push(b'\n');
        let histories = file.exporters.values().any(|e| !e.history.is_empty());
        if bytes.len() as u64 <= MAX_FILE_BYTES || !histories {
            return bytes;
        }
        for saved in file.exporters.values_mut() {
            let half = saved.history.len().div_ceil(2);
            saved.history.drain(..half);
        }
    }
}

/// The exporters in a file's bytes, brought within the bounds; why not when they cannot be read.
pub fn decode(bytes: &[u8]) -> Result<BTreeMap<String, SavedExporter>, String> {
    #[derive(Deserialize)]
    struct Version {
        format: Option<serde_json::Value>,
    }
    let version: Version =
        serde_json::from_slice(bytes).map_err(|e| format!("not a siemrelay state file: {e}"))?;
    match version.format {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(STATE_FORMAT)) => {}
        Some(other) => {
            return Err(format!(
                "written in format {other}, this siemrelay reads format {STATE_FORMAT}"
            ));
        }
        None => return Err("not a siemrelay state file: no `format` key".into()),
    }
    let file: StateFile =
        serde_json::from_slice(bytes).map_err(|e| format!("not a siemrelay state file: {e}"))?;
    Ok(file
        .exporters
        .into_iter()
        .take(MAX_SAVED_EXPORTERS)
        .map(|(id, saved)| (id, saved.bounded()))
        .collect())
}

/// The state file and what is not running of it.
pub struct StateStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// What the file held at start, less what reloads removed: the state an exporter starts
    /// from, and what is written for exporters that are not running (a running exporter's own
    /// status is written instead).
    saved: BTreeMap<String, SavedExporter>,
    /// When each running exporter was disabled through the API.
    disabled_at: HashMap<String, String>,
    /// What was last written (nothing is written when it would not change) without its time.
    written: Option<Vec<(String, SavedExporter)>>,
    /// The last write error logged (each distinct one is logged once).
    last_error: Option<String>,
}

impl StateStore {
    /// Reads `path` (see the module's rules for a missing or bad file); never fails.
    pub fn open(path: &Path) -> StateStore {
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        // At 0 from the start, so an `increase(…) > 0` alert sees the first failure.
        metrics::counter!(STATE_WRITE_ERRORS).increment(0);
        let saved = match read(path) {
            Ok(Some(exporters)) => {
                tracing::info!(file = %path.display(), exporters = exporters.len(), "exporter state restored (disabled exporters, delivery history, last success and error)");
                exporters
            }
            Ok(None) => BTreeMap::new(),
            Err(reason) => {
                let aside = path.with_extension("json.corrupt");
                let moved = std::fs::rename(path, &aside).is_ok();
                tracing::warn!(
                    file = %path.display(),
                    "the exporter state file {} cannot be used ({reason}); starting with fresh exporter state{}",
                    path.display(),
                    if moved { format!(" (the file is kept as {})", aside.display()) } else { String::new() }
                );
                BTreeMap::new()
            }
        };
        StateStore {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                saved,
                ..Inner::default()
            }),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The saved state of an exporter that is starting; logs when it comes back disabled.
    pub fn restored(&self, id: &str) -> RestoredStatus {
        let mut inner = self.lock();
        let Some(saved) = inner.saved.get(id).cloned() else {
            return RestoredStatus::default();
        };
        if saved.disabled {
            let when = saved.disabled_at.as_deref().unwrap_or("an unknown time");
            tracing::warn!(exporter = %id, "exporter {id} restored as disabled (disabled through the API at {when}); its events keep queueing until it is enabled with POST /api/v1/exporters/{id}/enable");
            if let Some(at) = &saved.disabled_at {
                inner.disabled_at.insert(id.to_string(), at.clone());
            }
        }
        saved.restored()
    }

    /// The exporters with saved state, by id.
    pub fn saved(&self) -> Vec<String> {
        self.lock().saved.keys().cloned().collect()
    }

    /// Records that an exporter was disabled (now) or enabled through the API.
    pub fn set_disabled(&self, id: &str, disabled: bool) {
        let mut inner = self.lock();
        if disabled {
            inner
                .disabled_at
                .insert(id.to_string(), Timestamp::now().to_rfc3339());
        } else {
            inner.disabled_at.remove(id);
        }
    }

    /// Drops the state of exporters a reload removed.
    pub fn forget(&self, ids: &[String]) {
        let mut inner = self.lock();
        for id in ids {
            inner.disabled_at.remove(id);
            inner.saved.remove(id);
        }
    }

    /// Writes the state of the running exporters in `topology` and the saved state of the
    /// others, unless it did not change since the last write. Blocking (small file): call from a blocking task.
    pub fn save(&self, topology: &Topology) -> Result<(), StateWriteError> {
        let mut inner = self.lock();
        let mut exporters: Vec<(String, SavedExporter)> = topology
            .exporters
            .iter()
            .map(|view| {
                let status = view.handle.status().to_restore();
                let at = inner.disabled_at.get(&view.id).cloned();
                (
                    view.id.clone(),
                    SavedExporter::of(status, at, &topology.secrets),
                )
            })
            .collect();
        for (id, saved) in &inner.saved {
            if !exporters.iter().any(|(running, _)| running == id) {
                exporters.push((id.clone(), saved.clone()));
            }
        }
        exporters.truncate(MAX_SAVED_EXPORTERS);
        if inner.written.as_ref() == Some(&exporters) {
            return Ok(());
        }
        let bytes = encode(exporters.clone(), Timestamp::now());
        match write_atomically(&self.path, &bytes, Access::OwnerOnly) {
            Ok(()) => {
                inner.written = Some(exporters);
                if inner.last_error.take().is_some() {
                    tracing::info!(file = %self.path.display(), "the exporter state file is written again");
                }
                Ok(())
            }
            Err(source) => {
                let error = StateWriteError::Write {
                    path: self.path.clone(),
                    source: Arc::new(source),
                };
                let message = error.to_string();
                metrics::counter!(STATE_WRITE_ERRORS).increment(1);
                if inner.last_error.as_deref() != Some(message.as_str()) {
                    tracing::error!(file = %self.path.display(), "{message}; disabled exporters and delivery history will not survive a restart until it can be written");
                    inner.last_error = Some(message);
                }
                Err(error)
            }
        }
    }

    /// [`StateStore::save`] on a blocking thread.
    pub async fn save_async(
        self: &Arc<Self>,
        topology: Arc<Topology>,
    ) -> Result<(), StateWriteError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.save(&topology))
            .await
            .unwrap_or_else(|e| Err(StateWriteError::Task(e.to_string())))
    }
}

/// Why the exporter state file was not written (the running state is unchanged; only a
/// restart would lose it).
#[derive(Clone, Debug, thiserror::Error)]
pub enum StateWriteError {
    /// Writing, syncing or renaming the file failed.
    #[error("cannot write the exporter state file {}: {source}", path.display())]
    Write {
        /// The state file.
        path: PathBuf,
        /// The file system's error.
        source: Arc<std::io::Error>,
    },
    /// The blocking task that writes it panicked or was cancelled.
    #[error("the state writer failed: {0}")]
    Task(String),
}

/// The exporters of the file at `path`: `None` when there is no file, why when it is bad.
fn read(path: &Path) -> Result<Option<BTreeMap<String, SavedExporter>>, String> {
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("unreadable: {e}")),
    };
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "too large: {size} bytes, more than the {MAX_FILE_BYTES} a state file can be"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    decode(&bytes).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize, outcome: &str, error: Option<String>) -> SavedDelivery {
        SavedDelivery {
            time: Timestamp(1_780_000_000_000_000_000 + i as i64 * 1_000_000_000).to_rfc3339(),
            events: 10 + i,
            bytes: 1000,
            outcome: outcome.into(),
            http_status: Some(200),
            error,
            latency_ms: 12,
            attempt: 1,
        }
    }

    fn exporter(history: usize) -> SavedExporter {
        SavedExporter {
            disabled: true,
            disabled_at: Some("2026-12-04T20:37:41Z".into()),
            last_success: Some("2026-12-04T20:30:00.5Z".into()),
            last_error: Some("HTTP 503: unavailable".into()),
            last_error_at: Some("2026-12-04T20:31:00Z".into()),
            last_error_current: false,
            history: (0..history)
                .map(|i| record(i, if i % 3 == 0 { "retry" } else { "delivered" }, None))
                .collect(),
        }
    }

    #[test]
    fn what_is_encoded_decodes_to_the_same() {
        let saved = vec![
            ("webhook/soar".to_string(), exporter(7)),
            ("file".to_string(), SavedExporter::default()),
        ];
        let bytes = encode(saved.clone(), Timestamp::now());
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded["webhook/soar"], saved[0].1);
        assert_eq!(decoded["file"], saved[1].1);
        let restored = decoded["webhook/soar"].restored();
        assert!(restored.disabled);
        assert_eq!(restored.history.len(), 7);
        assert_eq!(restored.history[0].outcome, RequestOutcome::Retry);
        assert_eq!(
            restored.last_success,
            Timestamp::parse_rfc3339("2026-12-04T20:30:00.5Z")
        );
        assert_eq!(
            restored.last_error.as_deref(),
            Some("HTTP 503: unavailable")
        );
    }

    #[test]
    fn the_file_stays_within_its_bounds() {
        let mut big = exporter(HISTORY_LEN + 40);
        for record in &mut big.history {
            // Control characters take six bytes each in JSON: the worst case for the size.
            record.error = Some("\u{1}".repeat(MAX_ERROR_BYTES * 2));
        }
        big.history
            .push(record(9_999, "delivered", Some("x".repeat(50_000))));
        big.last_error = Some("é".repeat(MAX_ERROR_BYTES * 3));
        // Enough heavy exporters to pass the size bound.
        let heavy: Vec<(String, SavedExporter)> = (0..40)
            .map(|i| (format!("webhook/{i:04}"), big.clone()))
            .collect();
        let bytes = encode(heavy, Timestamp::now());
        assert!(
            (bytes.len() as u64) <= MAX_FILE_BYTES,
            "{} bytes is more than a file may hold",
            bytes.len()
        );
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(decoded.len(), 40);
        let one = &decoded["webhook/0000"];
        assert!(
            !one.history.is_empty() && one.history.len() < HISTORY_LEN,
            "the oldest records make room: {} kept",
            one.history.len()
        );
        assert_eq!(
            one.history.last().map(|r| r.events),
            Some(10 + 9_999),
            "the newest stays"
        );
        let error = one
            .history
            .last()
            .and_then(|r| r.error.clone())
            .unwrap_or_default();
        assert!(
            error.len() <= MAX_ERROR_BYTES && error.ends_with('…'),
            "cut, with its mark"
        );
        let last = one.last_error.clone().unwrap_or_default();
        assert!(last.len() <= MAX_ERROR_BYTES && last.starts_with("éé") && last.ends_with('…'));

        // No more than MAX_SAVED_EXPORTERS exporters.
        let many: Vec<(String, SavedExporter)> = (0..MAX_SAVED_EXPORTERS + 10)
            .map(|i| (format!("webhook/{i:04}"), exporter(2)))
            .collect();
        let decoded = decode(&encode(many, Timestamp::now())).expect("decodes");
        assert_eq!(decoded.len(), MAX_SAVED_EXPORTERS);

        // One exporter with a full history fits whole.
        let bytes = encode(
            vec![("one".into(), exporter(HISTORY_LEN + 40))],
            Timestamp::now(),
        );
        assert_eq!(
            decode(&bytes).unwrap()["one"].history.len(),
            HISTORY_LEN,
            "the newest records only"
        );

        // A file written by hand beyond the bounds is brought within them when read.
        let mut hand =
            serde_json::json!({"format": 1, "saved_at": "2026-12-04T20:00:00Z", "exporters": {}});
        let mut entry = serde_json::to_value(exporter(0)).unwrap();
        entry["history"] = serde_json::to_value(
            (0..HISTORY_LEN * 3)
                .map(|i| record(i, "delivered", None))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        hand["exporters"]["file"] = entry;
        let decoded = decode(hand.to_string().as_bytes()).expect("decodes");
        assert_eq!(decoded["file"].history.len(), HISTORY_LEN);
        assert_eq!(decoded["file"].history[0].events, 10 + HISTORY_LEN * 2);
    }

    #[test]
    fn records_and_times_that_cannot_be_right_are_dropped() {
        let mut saved = exporter(3);
        saved.history[1].outcome = "exploded".into();
        saved.history[2].time = "yesterday".into();
        saved.last_success = Some("not a time".into());
        let decoded = decode(&encode(vec![("x".into(), saved)], Timestamp::now())).unwrap();
        assert_eq!(decoded["x"].history.len(), 1);
        assert_eq!(decoded["x"].last_success, None);
        // `disabled_at` means nothing without `disabled`.
        let mut enabled = exporter(0);
        enabled.disabled = false;
        let decoded = decode(&encode(vec![("y".into(), enabled)], Timestamp::now())).unwrap();
        assert_eq!(decoded["y"].disabled_at, None);
    }

    #[test]
    fn a_corrupt_or_foreign_file_is_refused_with_the_reason() {
        for (bytes, says) in [
            (
                &b"{\"format\": 1, \"exporters\": {\"x\": "[..],
                "not a siemrelay state file",
            ),
            (&b"\x00\x01garbage"[..], "not a siemrelay state file"),
            (&b"{\"exporters\": {}}"[..], "no `format` key"),
            (
                &b"{\"format\": 0, \"saved_at\": \"\", \"exporters\": {}}"[..],
                "format 0",
            ),
            (
                &b"{\"format\": 2, \"saved_at\": \"\", \"exporters\": {}}"[..],
                "format 2",
            ),
            (
                &b"{\"format\": 1, \"saved_at\": \"\", \"exporters\": {\"x\": {\"history\": 5}}}"[..],
                "invalid type",
            ),
        ] {
            let error = decode(bytes).expect_err("refused");
            assert!(error.contains(says), "{error:?} does not say {says:?}");
        }
    }

    #[test]
    fn a_bad_file_is_moved_aside_and_a_missing_one_is_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/exporters.json");
        let store = StateStore::open(&path);
        assert!(store.saved().is_empty());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{\"format\": 1, \"expor").unwrap();
        let store = StateStore::open(&path);
        assert!(store.saved().is_empty());
        assert!(!path.exists());
        assert!(path.with_extension("json.corrupt").exists());

        let good = encode(vec![("webhook/soar".into(), exporter(2))], Timestamp::now());
        write_atomically(&path, &good, Access::OwnerOnly).unwrap();
        let store = StateStore::open(&path);
        assert_eq!(store.saved(), vec!["webhook/soar".to_string()]);
        let restored = store.restored("webhook/soar");
        assert!(restored.disabled);
        assert_eq!(restored.history.len(), 2);
        // Removed by a reload: an exporter added later under the id starts fresh.
        store.forget(&["webhook/soar".to_string()]);
        assert!(store.saved().is_empty());
        assert!(!store.restored("webhook/soar").disabled);
    }
}
