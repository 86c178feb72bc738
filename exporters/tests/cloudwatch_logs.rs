//! The `cloudwatch_logs` exporter through a real `ExporterHandle`: against the `moto` AWS
//! emulator (10,000 events over more than 24 h, out of order, three streams created on first
//! use, read back with boto3) and against the fake CloudWatch Logs endpoint (SigV4 checked) for
//! the error paths: throttling retried, `rejectedLogEventsInfo` dead-lettered exactly, access
//! denied permanent, missing group/stream created, expired credentials refreshed, endpoint down,
//! and `siemrelay test` outcomes.

mod support;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use siemrelay_core::{Event, Severity, Timestamp};
use siemrelay_e2e::fake::cloudwatch::{
    ACCESS_KEY, AccessKey, FakeCloudWatch, Moto, REGION, SECRET_KEY, ScriptedError,
};
use siemrelay_exporters::cloudwatch_logs::{self, CloudWatchLogsConfig};
use siemrelay_exporters::delivery::dead_letter::read_entries;
use siemrelay_exporters::delivery::http::HttpOptions;
use siemrelay_exporters::delivery::{ExporterState, Sink, test_delivery};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{Rig, fast_retry};

const GROUP: &str = "/security/siemrelay";
const HOUR_NS: i64 = 3_600_000_000_000;

/// Hands out the given keys in turn, one per call (the last one repeats).
#[derive(Debug)]
struct Keys {
    keys: Vec<(String, String, Option<String>)>,
    calls: Arc<AtomicUsize>,
}

impl ProvideCredentials for Keys {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let (id, secret, token) = self.keys[n.min(self.keys.len() - 1)].clone();
        future::ProvideCredentials::ready(Ok(Credentials::new(id, secret, token, None, "test")))
    }
}

fn provider(keys: &[(&str, &str, Option<&str>)]) -> (SharedCredentialsProvider, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let keys = keys
        .iter()
        .map(|(id, secret, token)| {
            (
                id.to_string(),
                secret.to_string(),
                token.map(str::to_string),
            )
        })
        .collect();
    (
        SharedCredentialsProvider::new(Keys {
            keys,
            calls: calls.clone(),
        }),
        calls,
    )
}

fn config(endpoint: &str, create_missing: bool) -> CloudWatchLogsConfig {
    serde_json::from_value(serde_json::json!({
        "region": REGION, "log_group": GROUP, "log_stream": "{host}",
        "create_missing": create_missing, "endpoint": endpoint,
    }))
    .unwrap()
}

fn sink_with(
    endpoint: &str,
    create_missing: bool,
    credentials: SharedCredentialsProvider,
) -> Arc<dyn Sink> {
    cloudwatch_logs::build_with_credentials(
        "cloudwatch_logs/test",
        config(endpoint, create_missing),
        &HttpOptions::default(),
        Duration::from_secs(10),
        Some(credentials),
    )
    .unwrap()
}

fn sink(endpoint: &str) -> Arc<dyn Sink> {
    sink_with(
        endpoint,
        true,
        provider(&[(ACCESS_KEY, SECRET_KEY, None)]).0,
    )
}

/// Events spread over `spread_hours` ending an hour ago, out of order, over three hosts.
fn events(n: usize, spread_hours: i64) -> Vec<Event> {
    let end = Timestamp::now().0 - HOUR_NS;
    let step = spread_hours * HOUR_NS / n.max(1) as i64;
    (0..n)
        .map(|i| {
            let mut event = Event::new(["lockout", "policy_violation", "malware"][i % 3]);
            // A permutation of 0..n: out of order in the queue.
            let slot = (i * 7919) % n;
            event.timestamp = Timestamp(end - slot as i64 * step);
            event.severity = Severity::from_number([5, 9, 13, 17][i % 4]).unwrap();
            event.source = Some(format!("sensor-{}", i % 5));
            event.summary = Some(format!("event number {i}"));
            event.attributes.insert("n".into(), i.into());
            event
                .resource
                .insert("host.name".into(), format!("host-{}", i % 3).into());
            event
        })
        .collect()
}

fn start(sink: Arc<dyn Sink>, delivery: serde_json::Value) -> Rig {
    Rig::start(
        "cloudwatch_logs/test",
        sink,
        &support::delivery(delivery),
        10_000,
        Duration::from_millis(50),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_receives_ten_thousand_events_once_each_over_three_streams() {
    let moto = Moto::start();
    let credentials = provider(&[("testing", "testing", None)]).0;
    let running = start(sink_with(&moto.url(), true, credentials), fast_retry());
    // No too-old events here: moto reports `tooOldLogEventEndIndex` inclusive, AWS documents it
    // exclusive (the fake follows AWS: `rejected_log_events_are_dead_lettered_exactly_…`).
    let sent = events(10_000, 72);
    running.push(sent.clone()).await;
    assert!(running.settled(10_000, Duration::from_secs(60)).await);
    let status = running.handle.status().snapshot();
    assert_eq!(status.events_sent, 10_000);
    assert_eq!(status.events_dead_lettered, 0);

    let stored = moto.read_events(GROUP);
    let mut by_id: HashMap<String, (String, i64, serde_json::Value)> = HashMap::new();
    for (stream, timestamp, message) in stored {
        let parsed: serde_json::Value = serde_json::from_str(&message).unwrap();
        let id = parsed["event_id"].as_str().unwrap().to_string();
        assert!(
            by_id
                .insert(id.clone(), (stream, timestamp, parsed))
                .is_none(),
            "{id} stored twice"
        );
    }
    assert_eq!(by_id.len(), 10_000);
    for event in &sent[..10_000] {
        let (stream, timestamp, message) = &by_id[&event.event_id.to_string()];
        assert_eq!(stream, event.resource["host.name"].as_str().unwrap());
        assert_eq!(*timestamp, event.timestamp.as_epoch_millis());
        assert_eq!(message, &event.to_json_value());
    }
    let mut streams = moto.streams(GROUP);
    streams.sort();
    assert_eq!(streams, ["host-0", "host-1", "host-2"]);
    let (entries, _) = read_entries(running.handle.dead_letter().path()).unwrap();
    assert!(entries.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_obey_the_rules_and_throttling_is_retried_until_delivered_once() {
    let fake = FakeCloudWatch::start();
    fake.script([
        ScriptedError::throttling(),
        ScriptedError::unavailable(),
        ScriptedError::throttling(),
    ]);
    let running = start(sink(&fake.url()), fast_retry());
    let mut sent = events(6000, 60);
    for event in sent.iter_mut().step_by(500) {
        event.summary = Some("z".repeat(300_000));
    }
    running.push(sent.clone()).await;
    assert!(fake.events_reached(6000, Duration::from_secs(20)).await);
    assert!(running.settled(6000, Duration::from_secs(5)).await);
    fake.read(|state| {
        assert!(
            state.events.duplicates().is_empty(),
            "{:?}",
            state.events.duplicates()
        );
        assert_eq!(state.events.total(), 6000);
        assert_eq!(state.calls_with("PutLogEvents", "ThrottlingException"), 2);
        assert_eq!(
            state.calls_with("PutLogEvents", "ServiceUnavailableException"),
            1
        );
        assert_eq!(
            state.calls_with("PutLogEvents", "InvalidParameterException"),
            0
        );
        for call in state
            .calls
            .iter()
            .filter(|c| c.operation == "PutLogEvents" && c.status == 200)
        {
            assert!(call.events <= 10_000);
            assert!(call.batch_bytes <= 1_048_576, "{}", call.batch_bytes);
            assert!(call.span_ms < 24 * 3_600_000);
        }
        for event in &sent {
            let id = event.event_id.to_string();
            assert_eq!(
                state.stream_of[&id],
                event.resource["host.name"].as_str().unwrap()
            );
        }
    });
    let status = running.handle.status().snapshot();
    assert_eq!(status.events_sent, 6000);
    assert!(status.events_retried > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_log_events_are_dead_lettered_exactly_and_the_rest_delivered() {
    let fake = FakeCloudWatch::start();
    let running = start(sink(&fake.url()), fast_retry());
    let now = Timestamp::now().0;
    let day = 24 * HOUR_NS;
    let minute = HOUR_NS / 60;
    // Mixed batches: just past and just inside the 14-day limit; within and past +2 h.
    let offsets = [
        -14 * day - 30 * minute,
        -14 * day + 30 * minute,
        -14 * day - 20 * minute,
        -14 * day + 60 * minute,
        -HOUR_NS,
        HOUR_NS,
        3 * HOUR_NS,
        4 * HOUR_NS,
        0,
    ];
    let bad = [true, false, true, false, false, false, true, true, false];
    let mut sent = Vec::new();
    for round in 0..20 {
        for (offset, _) in offsets.iter().zip(bad) {
            let mut event = Event::new("lockout");
            event.timestamp = Timestamp(now + offset + round * 1_000_000);
            event.resource.insert("host.name".into(), "h".into());
            sent.push(event);
        }
    }
    running.push(sent.clone()).await;
    assert!(
        running
            .settled(sent.len() as u64, Duration::from_secs(10))
            .await
    );
    let expected_dead: HashSet<String> = sent
        .iter()
        .enumerate()
        .filter(|(i, _)| bad[i % offsets.len()])
        .map(|(_, e)| e.event_id.to_string())
        .collect();
    let (entries, problems) = read_entries(running.handle.dead_letter().path()).unwrap();
    assert!(problems.is_empty());
    let dead: HashSet<String> = entries
        .iter()
        .map(|e| e.event["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(dead, expected_dead);
    assert_eq!(entries.len(), expected_dead.len());
    assert!(entries.iter().all(|e| e.attempts == 1));
    assert!(entries.iter().any(|e| e.error.contains("too new")));
    fake.read(|state| {
        assert_eq!(state.events.total(), sent.len() - expected_dead.len());
        assert!(state.events.duplicates().is_empty());
        for id in &expected_dead {
            assert!(!state.stream_of.contains_key(id));
        }
    });
}

/// Issue 25: AWS documents `expiredLogEventEndIndex` and `tooOldLogEventEndIndex` as end
/// indices, the latter "exclusive"
/// (docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_RejectedLogEventsInfo.html).
/// Read inclusive, the first stored event after them was dead-lettered too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_retention_are_dead_lettered_and_the_next_one_is_not() {
    let fake = FakeCloudWatch::start();
    fake.create(GROUP, Some("h"));
    fake.set_retention(GROUP, 3);
    let running = start(sink(&fake.url()), fast_retry());
    let now = Timestamp::now().0;
    let day = 24 * HOUR_NS;
    // One batch (within 24 h): two events just past the 3-day retention, two just inside.
    let offsets = [
        -3 * day - 2 * HOUR_NS,
        -3 * day - HOUR_NS,
        -3 * day + HOUR_NS,
        -3 * day + 2 * HOUR_NS,
    ];
    let sent: Vec<Event> = offsets
        .iter()
        .map(|offset| {
            let mut event = Event::new("lockout");
            event.timestamp = Timestamp(now + offset);
            event.resource.insert("host.name".into(), "h".into());
            event
        })
        .collect();
    running.push(sent.clone()).await;
    assert!(running.settled(4, Duration::from_secs(10)).await);
    let (entries, _) = read_entries(running.handle.dead_letter().path()).unwrap();
    let dead: HashSet<String> = entries
        .iter()
        .map(|e| e.event["event_id"].as_str().unwrap().to_string())
        .collect();
    let expected: HashSet<String> = sent[..2].iter().map(|e| e.event_id.to_string()).collect();
    assert_eq!(dead, expected);
    assert!(entries.iter().all(|e| e.error.contains("retention")));
    assert_eq!(running.handle.status().snapshot().events_sent, 2);
    fake.read(|state| assert_eq!(state.events.total(), 2));
}

/// Issue 25: a role allowed only `logs:CreateLogStream` and `logs:PutLogEvents` (Truthlocks'
/// documented policy) delivers to an existing group: the stream is created without asking for
/// `CreateLogGroup`, which IAM would refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_is_created_without_create_log_group_when_the_group_exists() {
    let fake = FakeCloudWatch::start();
    fake.create(GROUP, None);
    fake.deny("CreateLogGroup");
    let running = start(sink(&fake.url()), fast_retry());
    running.push(events(90, 1)).await;
    assert!(running.settled(90, Duration::from_secs(10)).await);
    let status = running.handle.status().snapshot();
    assert_eq!(status.events_sent, 90, "{status:?}");
    assert_eq!(status.events_dead_lettered, 0);
    fake.read(|state| {
        assert_eq!(state.events.total(), 90);
        assert_eq!(state.streams.len(), 3);
        assert_eq!(
            state
                .calls
                .iter()
                .filter(|c| c.operation == "CreateLogGroup")
                .count(),
            0
        );
    });

    // A missing group still needs CreateLogGroup: refused, the events are dead-lettered with
    // IAM's reason.
    let fake = FakeCloudWatch::start();
    fake.deny("CreateLogGroup");
    let running = start(sink(&fake.url()), fast_retry());
    running.push(events(3, 1)).await;
    assert!(running.settled(3, Duration::from_secs(10)).await);
    let (entries, _) = read_entries(running.handle.dead_letter().path()).unwrap();
    assert_eq!(entries.len(), 3);
    assert!(
        entries[0].error.contains("CreateLogGroup failed")
            && entries[0]
                .error
                .contains("not authorized to perform: logs:CreateLogGroup"),
        "{}",
        entries[0].error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_group_and_stream_are_created_once_then_resent() {
    let fake = FakeCloudWatch::start();
    let running = start(sink(&fake.url()), fast_retry());
    running.push(events(300, 2)).await;
    assert!(running.settled(300, Duration::from_secs(10)).await);
    assert_eq!(running.handle.status().snapshot().events_sent, 300);
    fake.read(|state| {
        assert_eq!(state.events.total(), 300);
        assert!(state.calls_with("PutLogEvents", "ResourceNotFoundException") >= 1);
        assert_eq!(state.calls_with("CreateLogGroup", ""), 1);
        assert_eq!(state.calls_with("CreateLogStream", ""), 3);
        assert_eq!(state.streams.len(), 3);
    });

    // Without create_missing the events are dead-lettered with the reason.
    let fake = FakeCloudWatch::start();
    let credentials = provider(&[(ACCESS_KEY, SECRET_KEY, None)]).0;
    let running = start(sink_with(&fake.url(), false, credentials), fast_retry());
    running.push(events(10, 1)).await;
    assert!(running.settled(10, Duration::from_secs(10)).await);
    let (entries, _) = read_entries(running.handle.dead_letter().path()).unwrap();
    assert_eq!(entries.len(), 10);
    assert!(
        entries[0].error.contains("create_missing is off"),
        "{}",
        entries[0].error
    );
    assert_eq!(fake.read(|s| s.calls_with("CreateLogGroup", "")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_permanent_and_dead_letters_with_the_reason() {
    let fake = FakeCloudWatch::start();
    fake.create(GROUP, Some("host-0"));
    fake.script([ScriptedError::access_denied()]);
    let running = start(sink(&fake.url()), fast_retry());
    let sent: Vec<Event> = events(30, 1)
        .into_iter()
        .filter(|e| e.resource["host.name"] == "host-0")
        .collect();
    running.push(sent.clone()).await;
    assert!(running.settled(10, Duration::from_secs(10)).await);
    let (entries, _) = read_entries(running.handle.dead_letter().path()).unwrap();
    assert_eq!(entries.len(), 10);
    assert!(
        entries[0].error.contains("AccessDeniedException"),
        "{}",
        entries[0].error
    );
    assert_eq!(entries[0].attempts, 1);
    assert_eq!(
        fake.read(|s| s.calls.len()),
        1,
        "no retry after access denied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_credentials_are_refreshed_from_the_provider_and_resent() {
    let fake = FakeCloudWatch::start();
    fake.add_key(AccessKey {
        id: "ASIATEMPORARY2".into(),
        secret: "second-secret".into(),
        session_token: Some("session-token-2".into()),
    });
    let (credentials, calls) = provider(&[
        (ACCESS_KEY, SECRET_KEY, None),
        ("ASIATEMPORARY2", "second-secret", Some("session-token-2")),
    ]);
    let running = start(sink_with(&fake.url(), true, credentials), fast_retry());
    running.push(events(100, 1)).await;
    assert!(fake.events_reached(100, Duration::from_secs(10)).await);
    fake.expire_key(ACCESS_KEY);
    running.push(events(100, 1)).await;
    assert!(fake.events_reached(200, Duration::from_secs(10)).await);
    assert!(running.settled(200, Duration::from_secs(5)).await);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one load, one refresh");
    fake.read(|state| {
        assert_eq!(state.events.total(), 200);
        assert!(state.calls_with("PutLogEvents", "ExpiredTokenException") >= 1);
        let last = state.calls.last().unwrap();
        assert_eq!(last.access_key, "ASIATEMPORARY2");
        assert_eq!(last.status, 200);
    });
    assert_eq!(running.handle.status().snapshot().events_dead_lettered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_past_max_elapsed_time_degrades_fails_and_dead_letters() {
    let fake = FakeCloudWatch::start();
    fake.server().go_down();
    let running = start(
        sink(&fake.url()),
        serde_json::json!({"retry": {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "1s"}}),
    );
    running.push(events(200, 1)).await;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.handle.status().snapshot().events_dead_lettered < 200 && Instant::now() < deadline
    {
        let state = running.handle.status().state();
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen.push(running.handle.status().state());
    assert!(seen.contains(&ExporterState::Degraded), "{seen:?}");
    assert_eq!(seen.last(), Some(&ExporterState::Failed), "{seen:?}");
    let status = running.handle.status().snapshot();
    let queued = running.handle.queue().depth().events as u64;
    assert_eq!(
        status.events_sent + status.events_dead_lettered + queued,
        200
    );
    let (entries, _) = read_entries(running.handle.dead_letter().path()).unwrap();
    assert_eq!(entries.len(), 200);
    assert!(
        entries[0].error.contains("retries exhausted"),
        "{}",
        entries[0].error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_reports_good_bad_secret_and_unreachable_with_hints() {
    let fake = FakeCloudWatch::start();
    let good = test_delivery(&*sink(&fake.url()), Duration::from_secs(5)).await;
    assert!(good.ok, "{good:?}");
    assert_eq!(good.http_status, Some(200));
    assert!(fake.read(|s| s.stream_of.contains_key(&good.event_id)));

    let wrong = provider(&[(ACCESS_KEY, "not-the-secret", None)]).0;
    let bad = test_delivery(
        &*sink_with(&fake.url(), true, wrong),
        Duration::from_secs(5),
    )
    .await;
    assert!(!bad.ok);
    assert_eq!(bad.outcome, "permanent");
    assert!(
        bad.reply
            .as_deref()
            .unwrap_or("")
            .contains("InvalidSignatureException"),
        "{bad:?}"
    );
    assert!(bad.hint.unwrap().contains("AWS_SECRET_ACCESS_KEY"));

    let closed = format!("http://127.0.0.1:{}", siemrelay_e2e::free_port());
    let unreachable = test_delivery(&*sink(&closed), Duration::from_secs(5)).await;
    assert!(!unreachable.ok);
    assert_eq!(unreachable.outcome, "retry");
    assert!(
        unreachable
            .hint
            .unwrap()
            .contains("cannot reach CloudWatch Logs")
    );
}
