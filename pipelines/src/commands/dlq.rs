//! `siemrelay dlq list|replay|purge EXPORTER_ID --config FILE`, and the dead-letter logic the
//! admin API shares (`GET /api/v1/exporters/{id}/dead_letters`, `POST …/dead_letters/replay`).

use super::deliver::{Deliverer, DeliverySummary};
use super::exporter_command::{ExporterCommand, Needs, async_runtime};
use crate::config::{ComponentId, LoadedConfig};
use crate::registry::ExporterSpec;
use crate::runtime::StorageLayout;
use siemrelay_core::Event;
use siemrelay_exporters::delivery::dead_letter::{
    DeadLetterEntry, file_name_for, lock_for_change, read_entries,
};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

/// An exporter's dead-letter files: the live one and any left by an interrupted replay
/// (`<file>.replaying-*`).
pub struct DeadLetters {
    dir: PathBuf,
    exporter: String,
}

/// What the dead-letter files hold.
pub struct Listing {
    /// Every readable entry, oldest first.
    pub entries: Vec<DeadLetterEntry>,
    /// Unreadable lines (`file:line: why`) and unreadable files.
    pub problems: Vec<String>,
}

/// Dead-lettered events moved aside for a replay: delivered, then their files are removed.
pub struct Replay {
    /// The files moved aside (or left by an earlier replay), with the size read from each.
    files: Vec<(PathBuf, u64)>,
    /// The events, ids kept.
    pub events: Vec<Event>,
}

/// Makes the names of files moved aside unique within one process too (API replays).
static REPLAYS: AtomicU64 = AtomicU64::new(0);

impl DeadLetters {
    /// The dead-letter files of `exporter` in `dir` (`<storage>/dead_letter`).
    pub fn new(dir: &Path, exporter: &str) -> DeadLetters {
        DeadLetters {
            dir: dir.to_path_buf(),
            exporter: exporter.to_string(),
        }
    }

    /// The live file's path.
    pub fn live(&self) -> PathBuf {
        self.dir.join(file_name_for(&self.exporter))
    }

    /// The files, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let name = file_name_for(&self.exporter);
        let aside = format!("{name}.replaying-");
        let mut files = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().to_string();
                if file == name || file.starts_with(&aside) {
                    files.push(entry.path());
                }
            }
        }
        files.sort();
        files
    }

    /// Reads every file.
    pub fn read(&self) -> Listing {
        read_files(&self.files())
    }

    /// The newest `limit` entries (newest first) and the count of all, reading the files line
    /// by line so a large dead-letter file is never held in memory. At most 20 problems are kept.
    pub fn newest(&self, limit: usize) -> (u64, Vec<DeadLetterEntry>, Vec<String>) {
        const MAX_PROBLEMS: usize = 20;
        let mut total = 0;
        let mut newest = std::collections::VecDeque::with_capacity(limit.min(1_000));
        let mut problems = Vec::new();
        for file in self.files() {
            let reader = match std::fs::File::open(&file) {
                Ok(f) => std::io::BufReader::new(f),
                Err(e) => {
                    problems.push(format!("{}: {e}", file.display()));
                    continue;
                }
            };
            for (index, line) in reader.lines().enumerate() {
                let line = match line {
                    Ok(line) => line,
                    Err(e) => {
                        problems.push(format!("{}:{}: {e}", file.display(), index + 1));
                        break;
                    }
                };
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<DeadLetterEntry>(&line) {
                    Ok(entry) => {
                        total += 1;
                        if limit > 0 {
                            if newest.len() == limit {
                                newest.pop_front();
                            }
                            newest.push_back(entry);
                        }
                    }
                    Err(e) if problems.len() < MAX_PROBLEMS => {
                        problems.push(format!("{}:{}: {e}", file.display(), index + 1));
                    }
                    Err(_) => {}
                }
            }
        }
        let mut entries: Vec<DeadLetterEntry> = newest.into_iter().collect();
        entries.sort_by(|a, b| b.time.cmp(&a.time));
        (total, entries, problems)
    }

    /// Moves the live file aside (new dead letters then start a fresh file) and reads every
    /// file to replay. Fails, replaying nothing, when a line is unreadable or holds no event.
    pub fn take_for_replay(&self) -> Result<Replay, String> {
        let live = self.live();
        if live.exists() {
            let aside = self.dir.join(format!(
                "{}.replaying-{}-{}",
                file_name_for(&self.exporter),
                std::process::id(),
                REPLAYS.fetch_add(1, Ordering::Relaxed)
            ));
            // Under the file's lock: a running siemrelay never appends to the file moved aside.
            lock_for_change(&live)
                .and_then(|_lock| std::fs::rename(&live, &aside))
                .map_err(|e| format!("cannot move {} aside: {e}", live.display()))?;
        }
        let files: Vec<PathBuf> = self.files().into_iter().filter(|f| *f != live).collect();
        let sizes: Vec<u64> = files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .collect();
        let listing = read_files(&files);
        if !listing.problems.is_empty() {
            return Err(format!(
                "unreadable lines: {}; fix or remove them first, nothing was replayed",
                listing.problems.join("; ")
            ));
        }
        let events: Vec<Event> = listing
            .entries
            .iter()
            .filter_map(DeadLetterEntry::to_event)
            .collect();
        if events.len() != listing.entries.len() {
            return Err(format!(
                "{} entries do not hold a valid event; nothing was replayed",
                listing.entries.len() - events.len()
            ));
        }
        Ok(Replay {
            files: files.into_iter().zip(sizes).collect(),
            events,
        })
    }
}

fn read_files(files: &[PathBuf]) -> Listing {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match read_entries(file) {
            Ok((mut e, mut p)) => {
                entries.append(&mut e);
                problems.append(&mut p);
            }
            Err(e) => problems.push(format!("{}: {e}", file.display())),
        }
    }
    Listing { entries, problems }
}

impl Replay {
    /// Resends the events through the exporter's real delivery layer (its retry policy; events
    /// that fail again go back to the live dead-letter file) and waits for every outcome.
    pub async fn deliver(
        &self,
        loaded: &LoadedConfig,
        id: &ComponentId,
        spec: &ExporterSpec,
    ) -> anyhow::Result<DeliverySummary> {
        let mut deliverer = Deliverer::start(loaded, id, spec, None)?;
        for chunk in self.events.chunks(1_000) {
            deliverer.submit(chunk.to_vec()).await?;
        }
        Ok(deliverer.finish().await)
    }

    /// Removes the replayed files. A file that grew while the replay ran (a running siemrelay
    /// still appending to it) is kept for the next replay, with a warning.
    pub fn finish(self) -> Vec<String> {
        let mut warnings = Vec::new();
        for (file, size) in self.files {
            let now = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            if now > size {
                warnings.push(format!(
                    "{} grew while the replay ran (a running siemrelay dead-lettered more events into it): kept for the next replay, which resends its older events too (same event ids)",
                    file.display()
                ));
                continue;
            }
            // Under the file's lock: a running siemrelay never appends to a file being deleted.
            if let Err(e) = lock_for_change(&file).and_then(|_lock| std::fs::remove_file(&file)) {
                warnings.push(format!("could not remove {}: {e}", file.display()));
            }
        }
        warnings
    }
}

/// The config and the exporter's dead-letter files. A removed exporter's dead letters stay
/// reachable: its absence from the config is only a warning.
fn load(exporter: &str, config_path: &Path) -> Result<(ExporterCommand, DeadLetters), ExitCode> {
    let command = ExporterCommand::load(config_path, exporter, Needs::FilesOnly)?;
    let dir = StorageLayout::new(&command.loaded.service.storage.directory).dead_letter_dir();
    Ok((command, DeadLetters::new(&dir, exporter)))
}

/// Lists dead-lettered events: one line each (time, attempts, event id, type, error).
pub fn list(exporter: &str, config_path: &Path) -> ExitCode {
    let (_, dead_letters) = match load(exporter, config_path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let listing = dead_letters.read();
    for entry in &listing.entries {
        println!(
            "{}  attempts={}  {}  {}  {}",
            entry.time,
            entry.attempts,
            entry.event["event_id"].as_str().unwrap_or("?"),
            entry.event["event_type"].as_str().unwrap_or("?"),
            entry.error
        );
    }
    for problem in &listing.problems {
        eprintln!("warning: unreadable line {problem}");
    }
    println!(
        "{} dead-lettered event(s) for {exporter} in {}",
        listing.entries.len(),
        dead_letters.dir.display()
    );
    ExitCode::SUCCESS
}

/// Resends dead-lettered events through the exporter (event ids kept, so SIEMs that
/// de-duplicate drop repeats). Events that fail again go back to the dead-letter file.
pub fn replay(exporter: &str, config_path: &Path) -> ExitCode {
    let (command, dead_letters) = match load(exporter, config_path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some((id, spec)) = command.spec() else {
        eprintln!("error: replay needs the exporter {exporter:?} in the config to send through");
        return ExitCode::from(1);
    };
    // Move the live file aside first: new failures land in a fresh file, and an interrupted
    // replay leaves `.replaying-*` files that the next replay (and `list`) pick up.
    let replay = match dead_letters.take_for_replay() {
        Ok(replay) => replay,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(1);
        }
    };
    let runtime = match async_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let total = replay.events.len();
    match runtime.block_on(replay.deliver(&command.loaded, id, spec)) {
        Ok(summary) => {
            for warning in replay.finish() {
                eprintln!("warning: {warning}");
            }
            println!(
                "replayed {total} event(s) through {exporter}: {} delivered, {} dead-lettered again",
                summary.sent, summary.dead_lettered
            );
            if summary.dead_lettered > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => command.fail("", &e),
    }
}

/// Deletes an exporter's dead-letter files after confirmation (`--yes` skips the question).
pub fn purge(exporter: &str, config_path: &Path, yes: bool) -> ExitCode {
    let (_, dead_letters) = match load(exporter, config_path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let files = dead_letters.files();
    let listing = dead_letters.read();
    if files.is_empty() {
        println!("no dead-letter file for {exporter}");
        return ExitCode::SUCCESS;
    }
    if !yes {
        print!(
            "Delete {} dead-lettered event(s) of {exporter} for good? Type 'yes': ",
            listing.entries.len()
        );
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() || answer.trim() != "yes" {
            println!("not purged");
            return ExitCode::from(1);
        }
    }
    for file in &files {
        // Under the file's lock: a running siemrelay never appends to a file being deleted.
        if let Err(e) = lock_for_change(file).and_then(|_lock| std::fs::remove_file(file)) {
            eprintln!("error: cannot remove {}: {e}", file.display());
            return ExitCode::from(1);
        }
    }
    println!(
        "purged {} dead-lettered event(s) of {exporter}",
        listing.entries.len()
    );
    ExitCode::SUCCESS
}
