//! Shared pieces of the webhook receiver's HTTP tests: sinks that collect, refuse or block,
//! and a receiver started on a free local port.
#![allow(dead_code)] // Each test file uses a different part.

use async_trait::async_trait;
use siemrelay_core::admission::MemoryBudget;
use siemrelay_core::component::{Receiver, ReceiverContext};
use siemrelay_core::{Accepted, Batch, EventSink, Refusal};
use siemrelay_receivers::webhook::{self, WebhookConfig};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Keeps every batch it is given and accepts it whole.
#[derive(Default)]
pub struct CollectingSink {
    batches: Mutex<Vec<Batch>>,
}

impl CollectingSink {
    /// All batches received so far.
    pub fn batches(&self) -> Vec<Batch> {
        self.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Number of events received so far.
    pub fn event_count(&self) -> usize {
        self.batches().iter().map(Vec::len).sum()
    }
}

#[async_trait]
impl EventSink for CollectingSink {
    async fn accept(&self, batch: Batch) -> Result<Accepted, Refusal> {
        let received = batch.len();
        if let Ok(mut batches) = self.batches.lock() {
            batches.push(batch);
        }
        Ok(Accepted {
            received,
            queued: received,
        })
    }
}

/// Refuses every batch with the same refusal.
pub struct RefusingSink(pub Refusal);

#[async_trait]
impl EventSink for RefusingSink {
    async fn accept(&self, _batch: Batch) -> Result<Accepted, Refusal> {
        Err(self.0.clone())
    }
}

/// Holds each batch until released; says when a batch has arrived.
pub struct BlockingSink {
    /// Notified when a batch is inside `accept`.
    pub entered: Notify,
    /// One permit lets one batch through.
    pub release: Semaphore,
}

impl Default for BlockingSink {
    fn default() -> Self {
        BlockingSink {
            entered: Notify::new(),
            release: Semaphore::new(0),
        }
    }
}

#[async_trait]
impl EventSink for BlockingSink {
    async fn accept(&self, batch: Batch) -> Result<Accepted, Refusal> {
        self.entered.notify_one();
        let permit = self
            .release
            .acquire()
            .await
            .map_err(|_| Refusal::ShuttingDown)?;
        permit.forget();
        Ok(Accepted {
            received: batch.len(),
            queued: batch.len(),
        })
    }
}

/// Hands batches to `inner` and gives receivers `budget` as the admission budget, as the
/// runtime does with `service.memory_limit`.
pub struct BudgetedSink {
    /// Where batches go.
    pub inner: Arc<dyn EventSink>,
    /// The admission budget.
    pub budget: Arc<MemoryBudget>,
}

#[async_trait]
impl EventSink for BudgetedSink {
    async fn accept(&self, batch: Batch) -> Result<Accepted, Refusal> {
        self.inner.accept(batch).await
    }

    fn admission(&self) -> Arc<MemoryBudget> {
        self.budget.clone()
    }
}

/// A webhook receiver serving on a free port.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Cancels it.
    pub shutdown: CancellationToken,
    /// Its `run` task.
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the receiver and returns what `run` returned.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await?
    }
}

/// Parses a config block (JSON form of the YAML), forcing a free local port.
pub fn config(mut block: serde_json::Value) -> WebhookConfig {
    block["endpoint"] = serde_json::json!("127.0.0.1:0");
    serde_json::from_value(block).expect("test config parses")
}

/// Starts a receiver with `block` as config, sending to `sink`.
pub async fn start(block: serde_json::Value, sink: Arc<dyn EventSink>) -> Running {
    let receiver = webhook::bind("webhook/test", config(block))
        .await
        .expect("receiver binds");
    let addr = receiver.local_addr().expect("bound address");
    let shutdown = CancellationToken::new();
    let ctx = ReceiverContext {
        id: "webhook/test".into(),
        sink,
        shutdown: shutdown.clone(),
        storage_dir: std::env::temp_dir(),
    };
    let task = tokio::spawn(Box::new(receiver).run(ctx));
    Running {
        addr,
        shutdown,
        task,
    }
}

/// Status, selected headers and JSON body of a response.
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// Sends a request and reads its JSON answer.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("request completes");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.expect("response body is JSON");
    Reply {
        status,
        headers,
        body,
    }
}

/// HMAC-SHA256 of the concatenated parts, as lowercase hex.
pub fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    hex::encode(hmac_bytes(key, parts))
}

/// HMAC-SHA256 of the concatenated parts.
pub fn hmac_bytes(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}
