//! The `delivery::Sink` of a plugin exporter: batches go to the plugin on the instance's own
//! threads, never on the async runtime's workers.
//!
//! At most `concurrency` batches are with the plugin at once (a semaphore permit travels with
//! each job and is returned only when the plugin call does). When the delivery layer's
//! `sending.timeout` drops a `send`, its job is skipped if it has not started, and a late
//! result is discarded; a stuck call keeps only its own thread and permit, so a stuck plugin
//! can never hold more than `concurrency` threads or stall other exporters and pipelines.

use super::library::{PluginInstance, PluginLibrary};
use crate::delivery::{Outcome, RequestLimits, RequestRecord, SendReport, Sink, default_hint};
use async_trait::async_trait;
use siemrelay_core::Event;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// One batch for a plugin thread.
struct Job {
    batch: Vec<u8>,
    count: usize,
    reply: oneshot::Sender<SendReport>,
    _permit: OwnedSemaphorePermit,
}

/// A plugin exporter's sink.
pub struct PluginSink {
    exporter: String,
    library: Arc<PluginLibrary>,
    jobs: Mutex<Sender<Job>>,
    permits: Arc<Semaphore>,
    concurrency: usize,
}

impl PluginSink {
    /// Starts `concurrency` threads (capped by the plugin's `max_concurrency`) delivering to
    /// `instance`.
    pub fn start(
        exporter: &str,
        instance: PluginInstance,
        concurrency: usize,
    ) -> std::io::Result<PluginSink> {
        let library = instance.library().clone();
        let cap = library.max_concurrency() as usize;
        let concurrency = match cap {
            0 => concurrency.max(1),
            cap => concurrency.clamp(1, cap),
        };
        let (jobs, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let instance = Arc::new(instance);
        for n in 0..concurrency {
            let (receiver, instance) = (receiver.clone(), instance.clone());
            std::thread::Builder::new()
                .name(format!("plugin-{n}-{exporter}"))
                .spawn(move || work(&receiver, &instance))?;
        }
        Ok(PluginSink {
            exporter: exporter.to_string(),
            library,
            jobs: Mutex::new(jobs),
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
        })
    }
}

/// A plugin thread: takes jobs until the sink is dropped.
fn work(receiver: &Mutex<Receiver<Job>>, instance: &PluginInstance) {
    loop {
        let job = {
            let receiver = receiver.lock().unwrap_or_else(|p| p.into_inner());
            receiver.recv()
        };
        let Ok(job) = job else { return };
        if job.reply.is_closed() {
            // The send timed out (or was aborted) before this job started.
            continue;
        }
        let report = instance.deliver(&job.batch, job.count);
        // A send that timed out meanwhile has dropped its receiver: the late result is ignored.
        let _ = job.reply.send(report);
    }
}

fn failed(reason: String, events: usize) -> SendReport {
    SendReport::uniform(
        Outcome::retry(reason.clone()),
        vec![RequestRecord {
            events,
            reply: Some(reason),
            ..Default::default()
        }],
    )
}

#[async_trait]
impl Sink for PluginSink {
    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_events: 1_000,
            max_bytes: 8 << 20,
        }
    }

    fn default_concurrency(&self) -> usize {
        self.concurrency
    }

    async fn send(&self, events: &[Event]) -> SendReport {
        let mut batch = Vec::with_capacity(events.iter().map(|e| e.estimated_size() + 1).sum());
        for event in events {
            event.write_json(&mut batch);
            batch.push(b'\n');
        }
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return failed(
                format!("plugin exporter {} is shut down", self.exporter),
                events.len(),
            );
        };
        let (reply, result) = oneshot::channel();
        let job = Job {
            batch,
            count: events.len(),
            reply,
            _permit: permit,
        };
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job);
        if sent.is_err() {
            return failed(
                format!("the threads of plugin exporter {} are gone", self.exporter),
                events.len(),
            );
        }
        result.await.unwrap_or_else(|_| {
            failed(
                format!("plugin {} dropped the batch", self.library.name()),
                events.len(),
            )
        })
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        if record.http_status.is_some() {
            return default_hint(record);
        }
        Some(format!(
            "the plugin {} {} ({}) reported the failure: check its `config:` block and its documentation",
            self.library.name(),
            self.library.version(),
            self.library.path().display()
        ))
    }
}
