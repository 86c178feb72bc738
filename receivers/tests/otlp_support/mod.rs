//! Shared helpers for the OTLP receiver tests: a collecting sink and a running receiver.

#![allow(dead_code)]

use async_trait::async_trait;
use siemrelay_core::component::Receiver as _;
use siemrelay_core::{Accepted, Batch, Event, EventSink, ReceiverContext, Refusal};
use siemrelay_receivers::otlp::{self, OtlpConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How the test sink answers.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Accept everything.
    Accept,
    /// Refuse the first `n` batches with `Full`, then accept.
    RefuseFirst(usize),
    /// Refuse every batch with `Full`.
    AlwaysFull,
    /// Hold every batch until [`CollectingSink::release`] is called, then accept it.
    Gate,
}

/// A sink that collects accepted batches (or refuses, per [`Mode`]).
pub struct CollectingSink {
    mode: Mode,
    calls: AtomicUsize,
    events: Mutex<Vec<Event>>,
    count: watch::Sender<usize>,
    calls_seen: watch::Sender<usize>,
    gate: tokio::sync::Semaphore,
}

impl CollectingSink {
    pub fn new(mode: Mode) -> Arc<CollectingSink> {
        Arc::new(CollectingSink {
            mode,
            calls: AtomicUsize::new(0),
            events: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
            calls_seen: watch::channel(0).0,
            gate: tokio::sync::Semaphore::new(0),
        })
    }

    /// How many times `accept` was called (refused calls included).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Lets one held batch through (with [`Mode::Gate`]).
    pub fn release(&self) {
        self.gate.add_permits(1);
    }

    /// Waits until `accept` was called `n` times (panics after 20 s).
    pub async fn wait_for_calls(&self, n: usize) {
        let mut rx = self.calls_seen.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|c| *c >= n)).await;
        assert!(waited.is_ok(), "timed out waiting for {n} calls");
    }

    /// The events accepted so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until at least `n` events were accepted (panics after 20 s) and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Event> {
        let mut rx = self.count.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|c| *c >= n)).await;
        let have = self.events.lock().unwrap().len();
        assert!(
            waited.is_ok(),
            "timed out waiting for {n} events; have {have}"
        );
        self.events()
    }
}

#[async_trait]
impl EventSink for CollectingSink {
    async fn accept(&self, batch: Batch) -> Result<Accepted, Refusal> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        self.calls_seen.send_replace(call + 1);
        let refuse = match self.mode {
            Mode::Accept => false,
            Mode::RefuseFirst(n) => call < n,
            Mode::AlwaysFull => true,
            Mode::Gate => {
                self.gate.acquire().await.expect("gate").forget();
                false
            }
        };
        if refuse {
            return Err(Refusal::Full {
                retry_after: Duration::from_secs(1),
            });
        }
        let received = batch.len();
        let total = {
            let mut events = self.events.lock().unwrap();
            events.extend(batch);
            events.len()
        };
        self.count.send_replace(total);
        Ok(Accepted {
            received,
            queued: received,
        })
    }
}

/// A receiver running in the background on ephemeral ports.
pub struct Running {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub sink: Arc<CollectingSink>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc.expect("grpc listener"))
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http.expect("http listener"))
    }

    /// Stops the receiver and waits until it returned.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("receiver stops within 10 s")
            .expect("receiver task")
            .expect("receiver run");
    }
}

/// Both protocols on 127.0.0.1 with ephemeral ports, plain text, no auth.
pub fn plain_config() -> serde_json::Value {
    serde_json::json!({"protocols": {
        "grpc": {"endpoint": "127.0.0.1:0"},
        "http": {"endpoint": "127.0.0.1:0"},
    }})
}

/// Starts a receiver with the given JSON config and sink mode.
pub async fn start(config: serde_json::Value, mode: Mode) -> Running {
    let config: OtlpConfig = serde_json::from_value(config).expect("test config");
    let receiver = otlp::bind("otlp", config).await.expect("bind");
    let (grpc, http) = (receiver.grpc_addr(), receiver.http_addr());
    let sink = CollectingSink::new(mode);
    let shutdown = CancellationToken::new();
    let ctx = ReceiverContext {
        id: "otlp".into(),
        sink: sink.clone(),
        shutdown: shutdown.clone(),
        storage_dir: std::env::temp_dir(),
    };
    let task = tokio::spawn(Box::new(receiver).run(ctx));
    Running {
        grpc,
        http,
        sink,
        shutdown,
        task,
    }
}

/// Sorts events by the integer attribute `seq` and checks it runs 0..n without gaps or repeats.
pub fn by_seq(mut events: Vec<Event>, n: usize) -> Vec<Event> {
    events.sort_by_key(|e| e.attributes["seq"].as_i64().expect("seq attribute"));
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e.attributes["seq"].as_i64().unwrap())
        .collect();
    let want: Vec<i64> = (0..n as i64).collect();
    assert_eq!(seqs, want, "every record arrives exactly once");
    events
}
