//! Shared helpers for the file receiver tests: a collecting sink, a running receiver, and
//! line writers.

#![allow(dead_code)]

use async_trait::async_trait;
use siemrelay_core::component::{Batch, EventSink, ReceiverContext};
use siemrelay_core::{Accepted, Event, Refusal};
use siemrelay_receivers::file::{FileConfig, build};
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for events before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A sink that keeps every accepted event, optionally refusing some attempts first.
pub struct CollectingSink {
    events: Mutex<Vec<Event>>,
    count: watch::Sender<usize>,
    /// Answers given to the next attempts before accepting.
    refusals: Mutex<VecDeque<Refusal>>,
    /// Attempts that were refused.
    pub refused: Mutex<usize>,
    /// Cancel this token once this many batches were accepted.
    cancel_after: Mutex<Option<(usize, CancellationToken)>>,
    batches: Mutex<usize>,
}

impl CollectingSink {
    /// A sink that accepts everything.
    pub fn new() -> Arc<CollectingSink> {
        Arc::new(CollectingSink {
            events: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
            refusals: Mutex::new(VecDeque::new()),
            refused: Mutex::new(0),
            cancel_after: Mutex::new(None),
            batches: Mutex::new(0),
        })
    }

    /// Answers the next attempts with these refusals, in order.
    pub fn refuse_next(&self, refusals: impl IntoIterator<Item = Refusal>) {
        self.refusals.lock().unwrap().extend(refusals);
    }

    /// Cancels `token` (from inside `accept`) once `batches` batches were accepted.
    pub fn cancel_after(&self, batches: usize, token: CancellationToken) {
        *self.cancel_after.lock().unwrap() = Some((batches, token));
    }

    /// Waits until at least `n` events were accepted; panics after [`PATIENCE`].
    pub async fn wait_for(&self, n: usize) {
        let mut rx = self.count.subscribe();
        let reached = tokio::time::timeout(PATIENCE, rx.wait_for(|count| *count >= n)).await;
        assert!(
            reached.is_ok(),
            "timed out waiting for {n} events; got {:?}",
            self.summaries()
        );
    }

    /// The accepted events.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// The summaries of the accepted events, in order.
    pub fn summaries(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.summary.clone().unwrap_or_default())
            .collect()
    }

    /// Number of accepted events.
    pub fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }
}

#[async_trait]
impl EventSink for CollectingSink {
    async fn accept(&self, batch: Batch) -> Result<Accepted, Refusal> {
        if let Some(refusal) = self.refusals.lock().unwrap().pop_front() {
            *self.refused.lock().unwrap() += 1;
            return Err(refusal);
        }
        let received = batch.len();
        let total = {
            let mut events = self.events.lock().unwrap();
            events.extend(batch);
            events.len()
        };
        let accepted = {
            let mut batches = self.batches.lock().unwrap();
            *batches += 1;
            *batches
        };
        if let Some((after, token)) = &*self.cancel_after.lock().unwrap()
            && accepted >= *after
        {
            token.cancel();
        }
        self.count.send_replace(total);
        Ok(Accepted {
            received,
            queued: received,
        })
    }
}

/// A receiver running in the background.
pub struct Running {
    /// Cancels the receiver.
    pub shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Cancels the receiver and waits for `run` to return Ok.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.join().await;
    }

    /// Waits for `run` to return Ok (after the token was cancelled elsewhere).
    pub async fn join(self) {
        let result = tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("receiver did not stop in time")
            .expect("receiver task panicked");
        result.expect("receiver failed");
    }
}

/// Parses a config from JSON text (the YAML loader produces the same serde input).
pub fn config(json: serde_json::Value) -> FileConfig {
    serde_json::from_value(json).expect("test config is valid")
}

/// Builds and starts a receiver with `storage` as its storage directory.
pub async fn start(config: FileConfig, storage: &Path, sink: Arc<CollectingSink>) -> Running {
    start_with(config, storage, sink, CancellationToken::new()).await
}

/// Like [`start`] with a given shutdown token.
pub async fn start_with(
    config: FileConfig,
    storage: &Path,
    sink: Arc<CollectingSink>,
    shutdown: CancellationToken,
) -> Running {
    let receiver = build("file/test", config).await.expect("receiver builds");
    let ctx = ReceiverContext {
        id: "file/test".into(),
        sink,
        shutdown: shutdown.clone(),
        storage_dir: storage.to_path_buf(),
    };
    let handle = tokio::spawn(receiver.run(ctx));
    Running { shutdown, handle }
}

/// Appends text to a file (creating it).
pub fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(text.as_bytes()).expect("append");
}

/// `prefix-<n>\n` for each n in the range.
pub fn numbered(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|n| format!("{prefix}-{n}\n")).collect()
}

/// The expected summaries for [`numbered`] lines.
pub fn expected(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("{prefix}-{n}")).collect()
}

/// A tempdir with `logs/` and `storage/` inside.
pub struct Dirs {
    _root: tempfile::TempDir,
    /// Where the tailed files live.
    pub logs: PathBuf,
    /// The receiver's storage directory.
    pub storage: PathBuf,
}

impl Dirs {
    /// Creates the directories.
    pub fn new() -> Dirs {
        let root = tempfile::tempdir().expect("tempdir");
        let logs = root.path().join("logs");
        let storage = root.path().join("storage");
        std::fs::create_dir_all(&logs).expect("mkdir logs");
        Dirs {
            _root: root,
            logs,
            storage,
        }
    }

    /// A path in the logs directory.
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    /// A glob in the logs directory.
    pub fn glob(&self, pattern: &str) -> String {
        self.logs.join(pattern).to_string_lossy().into_owned()
    }

    /// The checkpoint file's contents, if any.
    pub fn checkpoint(&self) -> Option<serde_json::Value> {
        let bytes = std::fs::read(self.storage.join("checkpoints.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A text-mode config tailing `include`, polling every 20 ms.
pub fn text_config(include: &str, start_at: &str) -> FileConfig {
    config(serde_json::json!({
        "include": [include],
        "format": "text",
        "start_at": start_at,
        "poll_interval": "20ms",
    }))
}

/// Lets the receiver poll a few times (only to give it a chance to misbehave; never used to
/// wait for something that can be awaited).
pub async fn let_it_poll() {
    tokio::time::sleep(Duration::from_millis(120)).await;
}
