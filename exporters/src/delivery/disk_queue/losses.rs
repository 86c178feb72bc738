//! The record of losses a disk queue found when it opened (`<dir>/LOSSES.json`), so that a loss
//! stays visible — in the status, the API and `siemrelay status` — until an operator
//! acknowledges it, across restarts, and is counted and logged once, not at every open.
//!
//! A loss is known by its missing sequence numbers (or, without them, by where it is). A loss
//! found again at the next open (the damaged segment is still there) is not new. Acknowledged
//! losses are dropped from the file once they are no longer found.

use super::recovery::Loss;
use serde::{Deserialize, Serialize};
use siemrelay_core::Timestamp;
use siemrelay_core::atomic_file::{Access, sync_dir, write_atomically};
use std::io;
use std::path::{Path, PathBuf};

/// File name of the loss record in a queue directory.
pub const FILE_NAME: &str = "LOSSES.json";

/// A loss with when it was found and whether an operator acknowledged it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossEntry {
    /// What was lost.
    #[serde(flatten)]
    pub loss: Loss,
    /// When the queue first found it (RFC 3339).
    pub found_at: String,
    /// When an operator acknowledged it (RFC 3339).
    pub acknowledged_at: Option<String>,
}

impl LossEntry {
    fn same(&self, loss: &Loss) -> bool {
        match (self.loss.first_seq, self.loss.last_seq) {
            (Some(_), Some(_)) => {
                self.loss.first_seq == loss.first_seq && self.loss.last_seq == loss.last_seq
            }
            _ => self.loss.location == loss.location && self.loss.cause == loss.cause,
        }
    }
}

/// The loss record of one queue directory.
pub struct LossLog {
    path: PathBuf,
    entries: Vec<LossEntry>,
}

impl LossLog {
    /// Reads the record (an unreadable one is reported and started afresh: it only holds
    /// reports, never queued data).
    pub fn open(dir: &Path) -> LossLog {
        let path = dir.join(FILE_NAME);
        let entries = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "disk queue: the loss record cannot be read; starting a new one");
                Vec::new()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "disk queue: the loss record cannot be read; starting a new one");
                Vec::new()
            }
        };
        LossLog { path, entries }
    }

    /// Adds the losses found at this open (torn tails are not losses); returns the new ones.
    /// Acknowledged losses that are no longer found are forgotten.
    pub fn merge(&mut self, found: &[Loss]) -> Vec<Loss> {
        let found: Vec<&Loss> = found.iter().filter(|l| l.is_loss()).collect();
        self.entries
            .retain(|e| e.acknowledged_at.is_none() || found.iter().any(|l| e.same(l)));
        let mut new = Vec::new();
        for loss in found {
            if !self.entries.iter().any(|e| e.same(loss)) {
                self.entries.push(LossEntry {
                    loss: loss.clone(),
                    found_at: Timestamp::now().to_rfc3339(),
                    acknowledged_at: None,
                });
                new.push(loss.clone());
            }
        }
        new
    }

    /// Losses no operator acknowledged yet.
    pub fn unacknowledged(&self) -> Vec<LossEntry> {
        self.entries
            .iter()
            .filter(|e| e.acknowledged_at.is_none())
            .cloned()
            .collect()
    }

    /// Marks every loss acknowledged; returns how many were not yet.
    pub fn acknowledge_all(&mut self) -> usize {
        let now = Timestamp::now().to_rfc3339();
        let mut count = 0;
        for entry in &mut self.entries {
            if entry.acknowledged_at.is_none() {
                entry.acknowledged_at = Some(now.clone());
                count += 1;
            }
        }
        count
    }

    /// True when there is nothing to keep (the file can go).
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the record durably (write a temporary file, fsync, rename, fsync the directory);
    /// removes it when empty.
    pub fn save(&self) -> io::Result<()> {
        if !self.is_empty() {
            let bytes = serde_json::to_vec_pretty(&self.entries).map_err(io::Error::other)?;
            return write_atomically(&self.path, &bytes, Access::Default);
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        sync_dir(self.path.parent().unwrap_or(Path::new(".")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::disk_queue::recovery::LossCause;

    fn gap(first: u64, last: u64, events: Option<u64>) -> Loss {
        Loss {
            cause: LossCause::MissingSegment,
            location: "between a and b".into(),
            first_seq: Some(first),
            last_seq: Some(last),
            records: Some(last - first + 1),
            events,
            events_at_most: None,
            bytes: None,
        }
    }

    #[test]
    fn a_loss_is_new_once_and_stays_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LossLog::open(dir.path());
        assert_eq!(log.merge(&[gap(10, 19, Some(500))]).len(), 1);
        log.save().unwrap();
        // Found again at the next open: not new; still unacknowledged.
        let mut log = LossLog::open(dir.path());
        assert!(log.merge(&[gap(10, 19, Some(500))]).is_empty());
        // No longer on disk (its segments were delivered and deleted): still shown.
        assert!(log.merge(&[]).is_empty());
        let open = log.unacknowledged();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].loss.events, Some(500));
        assert_eq!(log.acknowledge_all(), 1);
        log.save().unwrap();
        let mut log = LossLog::open(dir.path());
        assert!(log.unacknowledged().is_empty());
        // Acknowledged and gone: forgotten, and the file with it.
        log.merge(&[]);
        log.save().unwrap();
        assert!(!dir.path().join(FILE_NAME).exists());
    }

    #[test]
    fn unknown_counts_read_back_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LossLog::open(dir.path());
        log.merge(&[gap(3, 3, None)]);
        log.save().unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.contains("\"events\": \"unknown\""), "{text}");
        let log = LossLog::open(dir.path());
        assert_eq!(log.unacknowledged()[0].loss.events, None);
    }
}
