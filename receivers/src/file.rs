//! The `file` receiver: tails log files matching glob patterns and turns each line into an event.
//!
//! ```yaml
//! receivers:
//!   file/audit:
//!     include: ["/var/log/gateway/audit-*.log"]
//!     exclude: ["/var/log/gateway/audit-debug*.log"]
//!     format: json
//!     start_at: end
//!     poll_interval: 250ms
//! ```
//!
//! Files are polled (no inotify): every `poll_interval` the globs are matched again and every
//! tailed file is read up to its end. A file keeps its identity (device + inode, checked with a
//! fingerprint of its first bytes) across renames, so rename-rotation is followed: the rest of
//! the old file is read through its open handle before it is dropped. A file that shrinks or
//! whose first bytes change (copy-truncate) is read again from offset 0.
//!
//! Checkpoints (`<storage_dir>/checkpoints.json`, see [`checkpoint`]) hold, per file, the offset
//! just after the last line the pipeline accepted; they are written atomically after every
//! accepted batch, so a restart resumes exactly where the pipeline left off.

mod batch;
pub mod checkpoint;
mod decode;
pub mod factory;
mod reader;
mod tailer;

pub use decode::{OFFSET_ATTRIBUTE, PARSE_ERROR_ATTRIBUTE, PATH_ATTRIBUTE};

use async_trait::async_trait;
use batch::PendingBatch;
use checkpoint::CheckpointStore;
use decode::{LineDecoder, LineFormat};
use serde::Deserialize;
use siemrelay_core::component::{Receiver, ReceiverContext};
use siemrelay_core::config_types::{ConfigDuration, ConfigSize};
use siemrelay_core::ingest::{FieldMapping, IngestOptions};
use siemrelay_core::{ConfigIssue, Refusal};
use std::time::Duration;
use tailer::{TailSettings, Tailer};
use tokio_util::sync::CancellationToken;

/// Largest accepted `max_batch`.
const MAX_BATCH_LIMIT: usize = 100_000;
/// Shortest wait before retrying a batch the pipeline refused.
const MIN_RETRY_DELAY: Duration = Duration::from_millis(10);
/// Wait before retrying a batch a queue failed to store.
const FAILED_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Config of the `file` receiver.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Glob patterns of files to tail (`*`, `?`, `[…]`, `**`). Required, non-empty.
    pub include: Vec<String>,
    /// Glob patterns of paths to leave out. Default: none.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `json` (one JSON object per line) or `text`. Default: `json`.
    #[serde(default)]
    pub format: FileFormat,
    /// Where to start in files found at start-up that have no checkpoint. Default: `end`.
    /// Files that appear later are always read from the beginning.
    #[serde(default)]
    pub start_at: StartAt,
    /// How often files are checked for new lines and the globs matched again. Default: `250ms`.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: ConfigDuration,
    /// Most lines per batch handed to the pipeline. Default: 1000.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Longer lines are cut to this size and get a `parse_error`. Default: `1MiB`.
    #[serde(default = "default_max_line_size")]
    pub max_line_size: ConfigSize,
    /// Field mapping for JSON lines (never strict). Default: none.
    #[serde(default)]
    pub mapping: Option<FieldMapping>,
    /// `event_type` of text lines and of lines that could not be parsed. Default: `log`.
    #[serde(default = "default_event_type")]
    pub event_type: String,
    /// `source` given to events that have none. Default: none.
    #[serde(default)]
    pub source: Option<String>,
}

/// How lines are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// One JSON object per line, ingested like the webhook's JSON form.
    #[default]
    Json,
    /// Any text; the line becomes the event's `summary`.
    Text,
}

/// Where to start reading a file found at start-up that has no checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// From its first byte.
    Beginning,
    /// From its end: only lines written from now on.
    #[default]
    End,
}

fn default_poll_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(250))
}

fn default_max_batch() -> usize {
    1000
}

fn default_max_line_size() -> ConfigSize {
    ConfigSize(1024 * 1024)
}

fn default_event_type() -> String {
    "log".into()
}

impl FileConfig {
    /// Semantic checks that need no file system access.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.include.is_empty() {
            issues.push(ConfigIssue::new(
                "include",
                "must list at least one glob pattern",
            ));
        }
        for (key, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (i, pattern) in patterns.iter().enumerate() {
                if pattern.trim().is_empty() {
                    issues.push(ConfigIssue::new(format!("{key}[{i}]"), "pattern is empty"));
                } else if let Err(e) = glob::Pattern::new(pattern) {
                    issues.push(ConfigIssue::new(
                        format!("{key}[{i}]"),
                        format!("invalid glob pattern {pattern:?}: {e}"),
                    ));
                }
            }
        }
        if self.poll_interval.0.is_zero() {
            issues.push(ConfigIssue::new("poll_interval", "must be more than 0s"));
        }
        if !(1..=MAX_BATCH_LIMIT).contains(&self.max_batch) {
            issues.push(ConfigIssue::new(
                "max_batch",
                format!("must be between 1 and {MAX_BATCH_LIMIT}"),
            ));
        }
        if self.max_line_size.0 < 16 {
            issues.push(ConfigIssue::new(
                "max_line_size",
                "must be at least 16 bytes",
            ));
        }
        if self.event_type.trim().is_empty() {
            issues.push(ConfigIssue::new("event_type", "must not be empty"));
        }
        if self.source.as_ref().is_some_and(|s| s.trim().is_empty()) {
            issues.push(ConfigIssue::new("source", "must not be empty when given"));
        }
        issues
    }
}

/// Builds the receiver; fails with the first config issue.
pub async fn build(id: &str, config: FileConfig) -> anyhow::Result<Box<dyn Receiver>> {
    if let Some(issue) = config.validate().into_iter().next() {
        anyhow::bail!("receivers.{id}.{issue}");
    }
    let exclude = config
        .exclude
        .iter()
        .map(|p| glob::Pattern::new(p))
        .collect::<Result<Vec<_>, _>>()?;
    let settings = TailSettings {
        include: config.include,
        exclude,
        start_at: config.start_at,
        max_batch: config.max_batch,
        max_line_size: config.max_line_size.as_usize(),
    };
    let decoder = LineDecoder {
        format: match config.format {
            FileFormat::Json => LineFormat::Json,
            FileFormat::Text => LineFormat::Text,
        },
        ingest: IngestOptions::for_receiver(id, config.mapping.unwrap_or_default(), false),
        event_type: config.event_type,
        source: config.source,
    };
    Ok(Box::new(FileReceiver {
        settings,
        decoder,
        poll_interval: config.poll_interval.0,
    }))
}

/// A built `file` receiver.
struct FileReceiver {
    settings: TailSettings,
    decoder: LineDecoder,
    poll_interval: Duration,
}

#[async_trait]
impl Receiver for FileReceiver {
    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let FileReceiver {
            settings,
            decoder,
            poll_interval,
        } = *self;
        let store = CheckpointStore::open(&ctx.storage_dir).map_err(|e| {
            anyhow::anyhow!(
                "receiver {}: cannot use storage directory {}: {e}",
                ctx.id,
                ctx.storage_dir.display()
            )
        })?;
        let counters = Counters::new(&ctx.id);
        let mut tailer = Tailer::start(settings, store);
        'poll: loop {
            tailer = blocking(tailer, Tailer::scan).await?.0;
            loop {
                if ctx.shutdown.is_cancelled() {
                    break 'poll;
                }
                let (t, batch) = blocking(tailer, Tailer::next_batch).await?;
                tailer = t;
                let Some(batch) = batch else { break };
                if !batch.is_empty() && !deliver(&ctx, &decoder, &batch, &counters).await {
                    break 'poll;
                }
                tailer = blocking(tailer, move |t| t.commit(batch.advances()))
                    .await?
                    .0;
            }
            tokio::select! {
                () = tokio::time::sleep(poll_interval) => {}
                () = ctx.shutdown.cancelled() => break,
            }
        }
        blocking(tailer, Tailer::flush).await?;
        Ok(())
    }
}

/// Runs blocking tailer work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    mut tailer: Tailer,
    work: impl FnOnce(&mut Tailer) -> T + Send + 'static,
) -> anyhow::Result<(Tailer, T)> {
    tokio::task::spawn_blocking(move || {
        let out = work(&mut tailer);
        (tailer, out)
    })
    .await
    .map_err(|e| anyhow::anyhow!("file receiver worker failed: {e}"))
}

/// Hands the batch to the pipeline until it is accepted; retries the same lines when the
/// pipeline is full or a queue failed. False when siemrelay is shutting down (nothing is
/// committed then).
async fn deliver(
    ctx: &ReceiverContext,
    decoder: &LineDecoder,
    batch: &PendingBatch,
    counters: &Counters,
) -> bool {
    loop {
        let decoded = decoder.decode(batch);
        let count = decoded.events.len() as u64;
        let delay = match ctx.sink.accept(decoded.events).await {
            Ok(_) => {
                counters.received.increment(count);
                if decoded.parse_errors > 0 {
                    counters.parse_errors.increment(decoded.parse_errors as u64);
                }
                return true;
            }
            Err(Refusal::ShuttingDown) => return false,
            Err(Refusal::Full { retry_after }) => {
                tracing::debug!(receiver = %ctx.id, ?retry_after, "pipeline is full; retrying the batch");
                retry_after.max(MIN_RETRY_DELAY)
            }
            Err(Refusal::Failed(reason)) => {
                tracing::warn!(receiver = %ctx.id, %reason, "pipeline could not queue the batch; retrying");
                FAILED_RETRY_DELAY
            }
        };
        if !wait(delay, &ctx.shutdown).await {
            return false;
        }
    }
}

/// Sleeps for `delay`; false when shutdown came first.
async fn wait(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shutdown.cancelled() => false,
    }
}

/// The receiver's metric handles.
struct Counters {
    received: metrics::Counter,
    parse_errors: metrics::Counter,
}

impl Counters {
    fn new(id: &str) -> Counters {
        let label = [("receiver", id.to_string())];
        Counters {
            received: metrics::counter!("siemrelay_receiver_events_received_total", &label),
            parse_errors: metrics::counter!("siemrelay_receiver_parse_errors_total", &label),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use siemrelay_core::Accepted;
    use siemrelay_core::component::{Batch, EventSink};
    use std::sync::{Arc, Mutex};

    /// Refuses the first attempt as full, then keeps what it accepts.
    #[derive(Default)]
    struct FullOnce {
        attempts: Mutex<usize>,
        accepted: Mutex<Batch>,
    }

    #[async_trait]
    impl EventSink for FullOnce {
        async fn accept(&self, batch: Batch) -> Result<Accepted, Refusal> {
            let mut attempts = self.attempts.lock().unwrap();
            *attempts += 1;
            if *attempts == 1 {
                return Err(Refusal::Full {
                    retry_after: Duration::ZERO,
                });
            }
            let received = batch.len();
            self.accepted.lock().unwrap().extend(batch);
            Ok(Accepted {
                received,
                queued: received,
            })
        }
    }

    #[tokio::test]
    async fn accepted_batches_are_counted_once_with_their_parse_errors() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let counters = metrics::with_local_recorder(&recorder, || Counters::new("file/m"));
        let sink = Arc::new(FullOnce::default());
        let ctx = ReceiverContext {
            id: "file/m".into(),
            sink: sink.clone(),
            shutdown: CancellationToken::new(),
            storage_dir: std::env::temp_dir(),
        };
        let decoder = LineDecoder {
            format: LineFormat::Json,
            ingest: IngestOptions::default(),
            event_type: "log".into(),
            source: None,
        };
        let mut batch = PendingBatch::default();
        batch.push_line("/l/a.log", br#"{"event_type":"x"}"#, 0);
        batch.push_line("/l/a.log", b"oops", 19);
        assert!(deliver(&ctx, &decoder, &batch, &counters).await);
        assert_eq!(*sink.attempts.lock().unwrap(), 2);
        assert_eq!(sink.accepted.lock().unwrap().len(), 2);
        let counts: Vec<(String, DebugValue)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| (key.key().name().to_string(), value))
            .collect();
        assert!(counts.contains(&(
            "siemrelay_receiver_events_received_total".into(),
            DebugValue::Counter(2)
        )));
        assert!(counts.contains(&(
            "siemrelay_receiver_parse_errors_total".into(),
            DebugValue::Counter(1)
        )));
    }

    fn parse(yaml: &str) -> Result<FileConfig, serde_json::Error> {
        serde_json::from_str(yaml)
    }

    #[test]
    fn defaults_and_validation() {
        let config = parse(r#"{"include": ["/var/log/*.log"]}"#).unwrap();
        assert!(config.validate().is_empty());
        assert_eq!(config.format, FileFormat::Json);
        assert_eq!(config.start_at, StartAt::End);
        assert_eq!(config.poll_interval.0, Duration::from_millis(250));
        assert_eq!(config.max_batch, 1000);
        assert_eq!(config.max_line_size.0, 1 << 20);
        assert_eq!(config.event_type, "log");

        let bad = parse(
            r#"{"include": [], "exclude": ["a[", ""], "max_batch": 0, "poll_interval": "0s",
                "max_line_size": 4, "format": "text", "start_at": "beginning"}"#,
        )
        .unwrap();
        let keys: Vec<String> = bad.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "include",
                "exclude[0]",
                "exclude[1]",
                "poll_interval",
                "max_batch",
                "max_line_size"
            ]
        );
        let unknown = parse(r#"{"include": ["x"], "follow": true}"#).unwrap_err();
        assert!(unknown.to_string().contains("follow"), "{unknown}");
        assert!(parse(r#"{"include": ["x"], "start_at": "middle"}"#).is_err());
    }
}
