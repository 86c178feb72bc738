//! The shared delivery layer with a scripted sink: retries resend only failed events,
//! permanent failures and exhausted retries are dead-lettered, status moves
//! active → degraded → failed → active, disabled exporters keep queueing, and shutdown drains.

use async_trait::async_trait;
use siemrelay_core::Event;
use siemrelay_exporters::delivery::config::WhenFull;
use siemrelay_exporters::delivery::dead_letter::{DeadLetter, read_entries};
use siemrelay_exporters::delivery::memory_queue::MemoryQueue;
use siemrelay_exporters::delivery::queue::SizedBatch;
use siemrelay_exporters::delivery::{
    BatchPolicy, DeliveryConfig, DeliveryQueue, ExporterHandle, ExporterState, Outcome, Outcomes,
    RequestLimits, RequestOutcome, RequestRecord, SendReport, Sink,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the scripted SIEM does with each event, by its `summary`.
#[derive(Default)]
struct Script {
    down: bool,
    /// Fail these summaries permanently.
    reject: Vec<String>,
    /// Fail these summaries with a retry this many times.
    flaky: HashMap<String, u32>,
    /// Report one outcome too few (a buggy sink).
    short: bool,
}

#[derive(Default)]
struct ScriptedSink {
    script: Mutex<Script>,
    delivered: Mutex<Vec<Event>>,
    calls: Mutex<u32>,
}

#[async_trait]
impl Sink for ScriptedSink {
    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_events: 50,
            max_bytes: 1 << 20,
        }
    }

    async fn send(&self, events: &[Event]) -> SendReport {
        *self.calls.lock().unwrap() += 1;
        let mut script = self.script.lock().unwrap();
        let record = vec![RequestRecord {
            events: events.len(),
            http_status: Some(200),
            ..Default::default()
        }];
        if script.down {
            return SendReport::uniform(
                Outcome::retry("SIEM down"),
                vec![RequestRecord {
                    events: events.len(),
                    http_status: Some(503),
                    ..Default::default()
                }],
            );
        }
        let mut outcomes = Vec::new();
        let mut delivered = self.delivered.lock().unwrap();
        for event in events {
            let summary = event.summary.clone().unwrap_or_default();
            let outcome = if script.reject.contains(&summary) {
                Outcome::permanent(format!("rejected {summary}"))
            } else if let Some(left) = script.flaky.get_mut(&summary).filter(|left| **left > 0) {
                *left -= 1;
                Outcome::retry("busy")
            } else {
                delivered.push(event.clone());
                Outcome::Delivered
            };
            outcomes.push(outcome);
        }
        if script.short {
            outcomes.pop();
        }
        SendReport {
            outcomes: Outcomes::PerEvent(outcomes),
            requests: record,
        }
    }
}

fn config(max_elapsed_ms: u64) -> DeliveryConfig {
    let yaml = format!(
        "retry: {{ initial_interval: 20ms, max_interval: 100ms, max_elapsed_time: {max_elapsed_ms}ms }}\nsending: {{ concurrency: 2, timeout: 2s }}"
    );
    serde_yaml::from_str(&yaml).unwrap()
}

fn events(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut e = Event::new("test");
            e.summary = Some(format!("{prefix}{i}"));
            e
        })
        .collect()
}

async fn push(queue: &Arc<dyn DeliveryQueue>, batch: Vec<Event>) {
    let sized = SizedBatch::new(batch);
    let reservation = queue.try_reserve(sized.len(), sized.total_bytes).unwrap();
    queue.push(reservation, sized).await.unwrap();
}

struct Rig {
    sink: Arc<ScriptedSink>,
    handle: ExporterHandle,
    dir: tempfile::TempDir,
}

fn rig(max_elapsed_ms: u64) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(ScriptedSink::default());
    let queue: Arc<dyn DeliveryQueue> = Arc::new(MemoryQueue::new(
        "scripted",
        10_000,
        64 << 20,
        WhenFull::Backpressure,
    ));
    let policy = BatchPolicy {
        min_events: 1,
        max_events: 0,
        linger: Duration::from_millis(1),
    };
    let handle = ExporterHandle::start(
        "scripted/x",
        sink.clone(),
        &config(max_elapsed_ms),
        policy,
        queue,
        DeadLetter::new(dir.path(), "scripted/x"),
    );
    Rig { sink, handle, dir }
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn retries_resend_only_failed_events_and_permanent_ones_are_dead_lettered() {
    let rig = rig(60_000);
    {
        let mut script = rig.sink.script.lock().unwrap();
        script.flaky.insert("e3".into(), 2);
        script.reject.push("e7".into());
    }
    push(rig.handle.queue(), events("e", 20)).await;
    wait_for("19 delivered", || {
        rig.sink.delivered.lock().unwrap().len() == 19
    })
    .await;
    let delivered = rig.sink.delivered.lock().unwrap().clone();
    let mut summaries: Vec<String> = delivered
        .iter()
        .map(|e| e.summary.clone().unwrap())
        .collect();
    summaries.sort();
    summaries.dedup();
    assert_eq!(summaries.len(), 19, "each delivered exactly once");
    assert!(!summaries.contains(&"e7".to_string()));
    let (entries, _) = read_entries(rig.handle.dead_letter().path()).unwrap();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].error.contains("rejected e7"));
    assert_eq!(entries[0].event["summary"], "e7");
    wait_for("queue empty", || rig.handle.queue().depth().events == 0).await;
    let snapshot = rig.handle.status().snapshot();
    assert_eq!(snapshot.events_sent, 19);
    assert_eq!(snapshot.events_dead_lettered, 1);
    assert_eq!(snapshot.state, ExporterState::Active);
    drop(rig.dir);
}

/// A sink that reports fewer outcomes than events does not get the rest counted as delivered:
/// they are sent again and, while the sink keeps failing to report them, dead-lettered with
/// the reason once retries run out.
#[tokio::test]
async fn a_missing_outcome_is_an_error_never_delivered() {
    let rig = rig(300);
    rig.sink.script.lock().unwrap().short = true;
    push(rig.handle.queue(), events("m", 10)).await;
    wait_for("dead-lettered", || rig.handle.dead_letter().written() == 1).await;
    wait_for("queue empty", || rig.handle.queue().depth().events == 0).await;
    let (entries, _) = read_entries(rig.handle.dead_letter().path()).unwrap();
    assert_eq!(entries[0].event["summary"], "m9");
    assert!(
        entries[0]
            .error
            .contains("reported 0 outcomes for 1 events"),
        "{}",
        entries[0].error
    );
    let snapshot = rig.handle.status().snapshot();
    assert_eq!(snapshot.events_sent, 9);
    assert!(snapshot.events_retried >= 1);
    assert!(
        *rig.sink.calls.lock().unwrap() >= 2,
        "the event was sent again"
    );
    drop(rig.dir);
}

#[tokio::test]
async fn an_outage_longer_than_max_elapsed_time_fails_the_exporter_and_dead_letters() {
    let rig = rig(300);
    rig.sink.script.lock().unwrap().down = true;
    push(rig.handle.queue(), events("a", 10)).await;
    wait_for("degraded", || {
        rig.handle.status().state() != ExporterState::Active
    })
    .await;
    wait_for("failed", || {
        rig.handle.status().state() == ExporterState::Failed
    })
    .await;
    wait_for("dead-lettered", || rig.handle.dead_letter().written() == 10).await;
    let (entries, _) = read_entries(rig.handle.dead_letter().path()).unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e.error.contains("retries exhausted") && e.error.contains("SIEM down")),
        "{:?}",
        entries[0].error
    );
    assert!(entries.iter().all(|e| e.attempts >= 2));
    let history = rig.handle.status().history();
    assert!(
        history
            .iter()
            .any(|r| r.http_status == Some(503) && r.outcome == RequestOutcome::Retry)
    );
    // Back up: new events are probed through and the exporter is active again.
    rig.sink.script.lock().unwrap().down = false;
    push(rig.handle.queue(), events("b", 5)).await;
    wait_for("active again", || {
        rig.handle.status().state() == ExporterState::Active
    })
    .await;
    wait_for("b delivered", || {
        rig.sink.delivered.lock().unwrap().len() == 5
    })
    .await;
}

#[tokio::test]
async fn a_disabled_exporter_keeps_queueing_and_resumes_on_enable() {
    let rig = rig(60_000);
    rig.handle.set_enabled(false);
    assert_eq!(rig.handle.status().state(), ExporterState::Disabled);
    push(rig.handle.queue(), events("d", 30)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        rig.sink.delivered.lock().unwrap().len(),
        0,
        "nothing sent while disabled"
    );
    assert_eq!(
        rig.handle.queue().depth().events,
        30,
        "events wait in the queue"
    );
    rig.handle.set_enabled(true);
    wait_for("delivered after enable", || {
        rig.sink.delivered.lock().unwrap().len() == 30
    })
    .await;
    assert_eq!(rig.handle.status().state(), ExporterState::Active);
}

#[tokio::test]
async fn shutdown_drains_and_past_the_deadline_dead_letters_memory_events() {
    let draining = rig(60_000);
    push(draining.handle.queue(), events("s", 40)).await;
    let report = draining
        .handle
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    assert!(report.drained);
    assert_eq!(draining.sink.delivered.lock().unwrap().len(), 40);

    let stuck = rig(60_000);
    stuck.sink.script.lock().unwrap().down = true;
    push(stuck.handle.queue(), events("t", 40)).await;
    let report = stuck
        .handle
        .shutdown(Instant::now() + Duration::from_millis(300))
        .await;
    assert!(!report.drained);
    let (entries, _) = read_entries(stuck.handle.dead_letter().path()).unwrap();
    assert_eq!(
        entries.len(),
        40,
        "every undelivered event is in the dead-letter file, none lost"
    );
}
