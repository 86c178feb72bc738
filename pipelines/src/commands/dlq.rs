//! `siemrelay dlq list|replay|purge EXPORTER_ID --config FILE`.

use super::deliver::Deliverer;
use crate::config;
use crate::runtime::StorageLayout;
use siemrelay_exporters::delivery::dead_letter::{
    DeadLetterEntry, file_name_for, lock_for_change, read_entries,
};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The dead-letter files of an exporter: the live one and any left by an interrupted replay.
fn dead_letter_files(dir: &Path, exporter: &str) -> Vec<PathBuf> {
    let name = file_name_for(exporter);
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            if file == name || file.starts_with(&format!("{name}.replaying-")) {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

fn load(exporter: &str, config_path: &Path) -> Result<(config::LoadedConfig, PathBuf), ExitCode> {
    let loaded = crate::admin::overlay::load(Some(config_path)).map_err(|errors| {
        eprint!("{errors}");
        ExitCode::from(1)
    })?;
    if loaded.exporter(exporter).is_none() {
        // A removed exporter's dead letters must stay reachable: only warn.
        eprintln!(
            "warning: no exporter {exporter:?} in {}; using its dead-letter file anyway",
            loaded.file
        );
    }
    let dir = StorageLayout::new(&loaded.service.storage.directory).dead_letter_dir();
    Ok((loaded, dir))
}

fn read_all(files: &[PathBuf]) -> (Vec<DeadLetterEntry>, Vec<String>) {
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
    (entries, problems)
}

/// Lists dead-lettered events: one line each (time, attempts, event id, type, error).
pub fn list(exporter: &str, config_path: &Path) -> ExitCode {
    let (_, dir) = match load(exporter, config_path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let files = dead_letter_files(&dir, exporter);
    let (entries, problems) = read_all(&files);
    for entry in &entries {
        println!(
            "{}  attempts={}  {}  {}  {}",
            entry.time,
            entry.attempts,
            entry.event["event_id"].as_str().unwrap_or("?"),
            entry.event["event_type"].as_str().unwrap_or("?"),
            entry.error
        );
    }
    for problem in &problems {
        eprintln!("warning: unreadable line {problem}");
    }
    println!(
        "{} dead-lettered event(s) for {exporter} in {}",
        entries.len(),
        dir.display()
    );
    ExitCode::SUCCESS
}

/// Resends dead-lettered events through the exporter (event ids kept, so SIEMs that
/// de-duplicate drop repeats). Events that fail again go back to the dead-letter file.
pub fn replay(exporter: &str, config_path: &Path) -> ExitCode {
    let (loaded, dir) = match load(exporter, config_path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some((id, spec)) = loaded.exporter(exporter) else {
        eprintln!("error: replay needs the exporter {exporter:?} in the config to send through");
        return ExitCode::from(1);
    };
    // Move the live file aside first: new failures land in a fresh file, and an interrupted
    // replay leaves `.replaying-*` files that the next replay (and `list`) pick up.
    let live = dir.join(file_name_for(exporter));
    if live.exists() {
        let aside = dir.join(format!(
            "{}.replaying-{}",
            file_name_for(exporter),
            std::process::id()
        ));
        // Under the file's lock: a running siemrelay never appends to the file moved aside.
        let moved = lock_for_change(&live).and_then(|_lock| std::fs::rename(&live, &aside));
        if let Err(e) = moved {
            eprintln!("error: cannot move {} aside: {e}", live.display());
            return ExitCode::from(1);
        }
    }
    let files: Vec<PathBuf> = dead_letter_files(&dir, exporter)
        .into_iter()
        .filter(|f| *f != live)
        .collect();
    let (entries, problems) = read_all(&files);
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("error: unreadable line {problem}");
        }
        eprintln!("error: fix or remove the unreadable lines first; nothing was replayed");
        return ExitCode::from(1);
    }
    let events: Vec<_> = entries
        .iter()
        .filter_map(DeadLetterEntry::to_event)
        .collect();
    if events.len() != entries.len() {
        eprintln!(
            "error: {} entries do not hold a valid event; nothing was replayed",
            entries.len() - events.len()
        );
        return ExitCode::from(1);
    }
    let runtime = match super::tokio_runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let total = events.len();
    let summary = runtime.block_on(async {
        let mut deliverer = Deliverer::start(&loaded, id, spec, None)?;
        for chunk in events.chunks(1_000) {
            deliverer.submit(chunk.to_vec()).await?;
        }
        anyhow::Ok(deliverer.finish().await)
    });
    match summary {
        Ok(summary) => {
            for file in &files {
                if let Err(e) = std::fs::remove_file(file) {
                    eprintln!("warning: could not remove {}: {e}", file.display());
                }
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
        Err(e) => {
            eprintln!(
                "error: {}",
                config::expand::scrub(&format!("{e:#}"), &loaded.secrets)
            );
            ExitCode::from(1)
        }
    }
}

/// Deletes an exporter's dead-letter files after confirmation (`--yes` skips the question).
pub fn purge(exporter: &str, config_path: &Path, yes: bool) -> ExitCode {
    let (_, dir) = match load(exporter, config_path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let files = dead_letter_files(&dir, exporter);
    let (entries, _) = read_all(&files);
    if files.is_empty() {
        println!("no dead-letter file for {exporter}");
        return ExitCode::SUCCESS;
    }
    if !yes {
        print!(
            "Delete {} dead-lettered event(s) of {exporter} for good? Type 'yes': ",
            entries.len()
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
        entries.len()
    );
    ExitCode::SUCCESS
}
