//! `siemrelay send --config FILE --exporter ID FILE.ndjson… | -`: backfill archived events.

use super::deliver::{Deliverer, DeliverySummary};
use super::exporter_command::{ExporterCommand, Needs, async_runtime};
use siemrelay_core::Timestamp;
use siemrelay_core::ingest::{IngestOptions, event_from_object};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Reads NDJSON events (our file exporter's output or any NDJSON of events; event ids kept) and
/// delivers them through the exporter's real delivery layer. Exit 1 when anything was
/// dead-lettered or could not be read.
pub fn send(exporter: &str, config_path: &Path, inputs: &[PathBuf]) -> ExitCode {
    let command = match ExporterCommand::load(config_path, exporter, Needs::Exporter) {
        Ok(command) => command,
        Err(code) => return code,
    };
    let Some((id, spec)) = command.spec() else {
        return ExitCode::from(1);
    };
    let runtime = match async_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let loaded = &command.loaded;
    let terminal = std::io::stderr().is_terminal();
    let result = runtime.block_on(async {
        let mut deliverer = Deliverer::start(loaded, id, spec, None)?;
        let mut unreadable = 0u64;
        let mut last_report = Instant::now();
        for input in inputs {
            let reader: Box<dyn BufRead> = if input.as_os_str() == "-" {
                Box::new(std::io::BufReader::new(std::io::stdin()))
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(input)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?,
                ))
            };
            let mut batch = Vec::with_capacity(1_000);
            for (index, line) in reader.lines().enumerate() {
                let line = line.map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(serde_json::Value::Object(object)) => {
                        match event_from_object(object, &IngestOptions::default(), Timestamp::now())
                        {
                            Ok(ingested) => batch.push(ingested.event),
                            Err(e) => {
                                unreadable += 1;
                                eprintln!("{}:{}: {e}", input.display(), index + 1);
                            }
                        }
                    }
                    _ => {
                        unreadable += 1;
                        eprintln!("{}:{}: not a JSON object", input.display(), index + 1);
                    }
                }
                if batch.len() == 1_000 {
                    deliverer.submit(std::mem::take(&mut batch)).await?;
                    if last_report.elapsed()
                        >= Duration::from_millis(if terminal { 200 } else { 2_000 })
                    {
                        report(&deliverer.progress(), terminal, false);
                        last_report = Instant::now();
                    }
                }
            }
            deliverer.submit(batch).await?;
        }
        let summary = deliverer.finish().await;
        anyhow::Ok((summary, unreadable))
    });
    match result {
        Ok((summary, unreadable)) => {
            report(&summary, terminal, true);
            let rate = summary.sent as f64 / summary.elapsed.as_secs_f64().max(0.001);
            println!(
                "sent {} event(s) to {exporter}, {} dead-lettered, {unreadable} unreadable line(s), in {:.1}s ({rate:.0} events/s)",
                summary.sent,
                summary.dead_lettered,
                summary.elapsed.as_secs_f64()
            );
            if summary.dead_lettered > 0 || unreadable > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => command.fail("", &e),
    }
}

fn report(progress: &DeliverySummary, terminal: bool, last: bool) {
    let line = format!(
        "queued {}  sent {}  dead-lettered {}  {:.0}s",
        progress.submitted,
        progress.sent,
        progress.dead_lettered,
        progress.elapsed.as_secs_f64()
    );
    let mut err = std::io::stderr().lock();
    if terminal {
        let _ = write!(err, "\r{line}{}", if last { "\n" } else { "" });
    } else {
        let _ = writeln!(err, "{line}");
    }
    let _ = err.flush();
}
