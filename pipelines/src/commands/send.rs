//! `siemrelay send --config FILE --exporter ID FILE… | -`: backfill archived events (NDJSON or a
//! JSON array, plain or gzip), optionally only those inside `--since` / `--until`.

use super::deliver::{Deliverer, DeliverySummary};
use super::exporter_command::{ExporterCommand, Needs, async_runtime};
use siemrelay_core::ingest::{IngestOptions, event_from_object};
use siemrelay_core::{Event, Timestamp};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What `send` reads and which events it keeps.
#[derive(Clone, Debug, Default)]
pub struct SendOptions {
    /// Keep events at or after this time (`--since`, RFC 3339).
    pub since: Option<Timestamp>,
    /// Keep events before this time (`--until`, RFC 3339; exclusive).
    pub until: Option<Timestamp>,
    /// Read objects the way this receiver does: its `mapping` and `strict` (`--receiver`).
    pub receiver: Option<String>,
    /// Run this pipeline's processors on the events before sending (`--pipeline`).
    pub pipeline: Option<String>,
}

/// The ingest options of receiver `id` in the loaded config: its `mapping` and `strict` keys
/// (any receiver type that has them), or an error naming what is wrong.
fn receiver_ingest(
    loaded: &crate::config::LoadedConfig,
    id: &str,
) -> anyhow::Result<IngestOptions> {
    let raw =
        loaded.raw.receivers.get(id).ok_or_else(|| {
            anyhow::anyhow!("--receiver {id}: no such receiver in {}", loaded.file)
        })?;
    let mapping = match raw.get("mapping") {
        Some(value) => serde_yaml::from_value(value.clone())
            .map_err(|e| anyhow::anyhow!("receivers.{id}.mapping: {e}"))?,
        None => siemrelay_core::ingest::FieldMapping::default(),
    };
    let strict = raw
        .get("strict")
        .and_then(serde_yaml::Value::as_bool)
        .unwrap_or(false);
    Ok(IngestOptions::for_receiver(id, mapping, strict))
}

/// Reads events — NDJSON or a JSON array of objects, either possibly gzip-compressed (our file
/// exporter's output or any such file; event ids kept) — keeps those inside the time window and
/// delivers them through the exporter's real delivery layer. Exit 1 when anything was
/// dead-lettered or could not be read.
pub fn send(
    exporter: &str,
    config_path: &Path,
    inputs: &[PathBuf],
    options: &SendOptions,
) -> ExitCode {
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
    // The bar only when a person watches both streams; otherwise plain progress lines.
    let bar = (terminal && std::io::stdout().is_terminal()).then(|| progress_bar(inputs));
    let bytes_read = Arc::new(AtomicU64::new(0));
    let result = runtime.block_on(async {
        let ingest = match &options.receiver {
            Some(receiver) => receiver_ingest(loaded, receiver)?,
            None => IngestOptions::default(),
        };
        let processors = match &options.pipeline {
            Some(pipeline) => {
                if !loaded.service.pipelines.contains_key(pipeline) {
                    anyhow::bail!("--pipeline {pipeline}: no such pipeline in {}", loaded.file);
                }
                let layout = crate::runtime::StorageLayout::new(&loaded.service.storage.directory);
                crate::runtime::build_processors(loaded, pipeline, &layout)?
            }
            None => Vec::new(),
        };
        let mut deliverer = Deliverer::start(loaded, id, spec, None)?;
        let mut counts = ReadCounts::default();
        let mut last_report = Instant::now();
        // The bar is drawn at the first batch already, then at most five times a second.
        let mut drawn = false;
        for input in inputs {
            // Parsing runs on its own thread and hands over batches through a bounded channel,
            // so memory stays bounded whatever the file's shape.
            let (batches, mut received) = tokio::sync::mpsc::channel::<Vec<Event>>(4);
            let input_path = input.clone();
            let window = options.clone();
            let ingest = ingest.clone();
            let counter = bytes_read.clone();
            let reader = std::thread::spawn(move || {
                read_input(&input_path, &window, &ingest, &batches, counter)
            });
            while let Some(mut batch) = received.recv().await {
                let before = batch.len();
                for processor in &processors {
                    processor.process(&mut batch);
                }
                counts.dropped_by_processors += before.saturating_sub(batch.len()) as u64;
                deliverer.submit(batch).await?;
                if (bar.is_some() && !drawn)
                    || last_report.elapsed()
                        >= Duration::from_millis(if terminal { 200 } else { 2_000 })
                {
                    match &bar {
                        Some(bar) => {
                            show(bar, &deliverer.progress(), &bytes_read);
                            drawn = true;
                        }
                        None => report(&deliverer.progress(), terminal, false),
                    }
                    last_report = Instant::now();
                }
            }
            let read = reader
                .join()
                .map_err(|_| anyhow::anyhow!("{}: the reader failed", input.display()))??;
            counts.unreadable += read.unreadable;
            counts.outside_window += read.outside_window;
        }
        let summary = deliverer.finish().await;
        anyhow::Ok((summary, counts))
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match result {
        Ok((summary, counts)) => {
            if bar.is_none() {
                report(&summary, terminal, true);
            }
            let rate = summary.sent as f64 / summary.elapsed.as_secs_f64().max(0.001);
            println!(
                "sent {} event(s) to {exporter}, {} dead-lettered, {} unreadable, {} outside --since/--until, {} dropped by --pipeline processors, in {:.1}s ({rate:.0} events/s)",
                summary.sent,
                summary.dead_lettered,
                counts.unreadable,
                counts.outside_window,
                counts.dropped_by_processors,
                summary.elapsed.as_secs_f64()
            );
            if summary.dead_lettered > 0 || counts.unreadable > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => command.fail("", &e),
    }
}

/// What reading one input found besides the events sent.
#[derive(Debug, Default)]
struct ReadCounts {
    unreadable: u64,
    outside_window: u64,
    dropped_by_processors: u64,
}

/// The progress bar: over the inputs' bytes (rate, ETA) when every input is a file, else a
/// spinner with the rate.
fn progress_bar(inputs: &[PathBuf]) -> indicatif::ProgressBar {
    let sizes: Option<u64> = inputs
        .iter()
        .map(|input| {
            (input.as_os_str() != "-")
                .then(|| std::fs::metadata(input).ok().map(|m| m.len()))
                .flatten()
        })
        .sum();
    let (bar, template) = match sizes {
        Some(total) => (
            indicatif::ProgressBar::new(total),
            "{bar:30.cyan/blue} {percent:>3}% {bytes}/{total_bytes} {msg} ETA {eta}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{spinner} {bytes} read {msg} {elapsed}",
        ),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(5));
    bar
}

/// Updates the bar from the bytes read and the delivery progress.
fn show(bar: &indicatif::ProgressBar, progress: &DeliverySummary, bytes_read: &AtomicU64) {
    bar.set_position(bytes_read.load(Ordering::Relaxed));
    let rate = progress.sent as f64 / progress.elapsed.as_secs_f64().max(0.001);
    bar.set_message(format!(
        "sent {} ({rate:.0} events/s) dead-lettered {}",
        progress.sent, progress.dead_lettered
    ));
}

/// Counts the bytes read from an input (before gzip decoding) for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `input` (`-` is standard input), undoing gzip when the data starts with its magic
/// bytes; bytes read are added to `counter`.
fn open_input(input: &Path, counter: Arc<AtomicU64>) -> anyhow::Result<Box<dyn BufRead + Send>> {
    let file: Box<dyn Read + Send> = if input.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?,
        )
    };
    let raw = Counting {
        inner: file,
        read: counter,
    };
    let mut buffered = std::io::BufReader::with_capacity(1 << 16, raw);
    let head = buffered
        .fill_buf()
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let decoder = flate2::bufread::MultiGzDecoder::new(buffered);
        Ok(Box::new(std::io::BufReader::with_capacity(
            1 << 16,
            decoder,
        )))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Reads every event of `input` into batches of 1,000 on `out`.
fn read_input(
    input: &Path,
    window: &SendOptions,
    ingest: &IngestOptions,
    out: &tokio::sync::mpsc::Sender<Vec<Event>>,
    counter: Arc<AtomicU64>,
) -> anyhow::Result<ReadCounts> {
    let mut reader = open_input(input, counter)?;
    let mut collector = Collector {
        input,
        window,
        ingest,
        out,
        batch: Vec::with_capacity(BATCH),
        counts: ReadCounts::default(),
    };
    let first = loop {
        let buf = reader
            .fill_buf()
            .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(at) => {
                let byte = buf[at];
                reader.consume(at);
                break Some(byte);
            }
            None if buf.is_empty() => break None,
            None => {
                let len = buf.len();
                reader.consume(len);
            }
        }
    };
    match first {
        None => {}
        Some(b'[') => {
            use serde::de::Deserializer as _;
            let mut deserializer = serde_json::Deserializer::from_reader(reader);
            deserializer
                .deserialize_seq(ArrayVisitor(&mut collector))
                .map_err(|e| {
                    anyhow::anyhow!("{}: not a JSON array of events: {e}", input.display())
                })?;
        }
        Some(_) => {
            for (index, line) in reader.lines().enumerate() {
                let line = line.map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let value = serde_json::from_str::<serde_json::Value>(&line)
                    .unwrap_or(serde_json::Value::Null);
                collector.take(index + 1, value)?;
            }
        }
    }
    collector.flush()?;
    Ok(collector.counts)
}

const BATCH: usize = 1_000;

/// Turns JSON values into events, applies the time window and hands over full batches.
struct Collector<'a> {
    input: &'a Path,
    window: &'a SendOptions,
    ingest: &'a IngestOptions,
    out: &'a tokio::sync::mpsc::Sender<Vec<Event>>,
    batch: Vec<Event>,
    counts: ReadCounts,
}

impl Collector<'_> {
    /// One value, found at `position` (line, or array element, counted from 1).
    fn take(&mut self, position: usize, value: serde_json::Value) -> anyhow::Result<()> {
        let serde_json::Value::Object(object) = value else {
            self.counts.unreadable += 1;
            eprintln!("{}:{position}: not a JSON object", self.input.display());
            return Ok(());
        };
        match event_from_object(object, self.ingest, Timestamp::now()) {
            Ok(ingested) => {
                let time = ingested.event.timestamp;
                let inside = self.window.since.is_none_or(|since| time >= since)
                    && self.window.until.is_none_or(|until| time < until);
                if inside {
                    self.batch.push(ingested.event);
                } else {
                    self.counts.outside_window += 1;
                }
            }
            Err(e) => {
                self.counts.unreadable += 1;
                eprintln!("{}:{position}: {e}", self.input.display());
            }
        }
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.out
            .blocking_send(std::mem::take(&mut self.batch))
            .map_err(|_| anyhow::anyhow!("delivery stopped"))
    }
}

/// Feeds each element of a top-level JSON array to the collector without holding the array.
struct ArrayVisitor<'a, 'b>(&'a mut Collector<'b>);

impl<'de> serde::de::Visitor<'de> for ArrayVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of event objects")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut position = 0;
        while let Some(value) = seq.next_element::<serde_json::Value>()? {
            position += 1;
            self.0
                .take(position, value)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(())
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
