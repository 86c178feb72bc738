//! The kafka exporter's sink against a real broker (tansu, see `siemrelay_e2e::fake::tansu`):
//! events count as delivered only once acknowledged and carry their JSON form, key and headers;
//! an unknown topic is permanent; an unreachable broker is retried. `sink_throughput` (ignored)
//! measures events/s into the broker.

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use siemrelay_core::Event;
use siemrelay_e2e::fake::tansu::Tansu;
use siemrelay_exporters::delivery::{Outcome, Sink};
use siemrelay_exporters::kafka::{KafkaConfig, KafkaSink};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A sink whose `sending.timeout` is 4s (librdkafka gives a message up after 3s).
fn kafka_sink(brokers: &str, topic: &str, extra: &str) -> KafkaSink {
    let config: KafkaConfig = serde_yaml::from_str(&format!(
        "brokers: [\"{brokers}\"]\ntopic: \"{topic}\"\n{extra}"
    ))
    .unwrap();
    assert_eq!(config.validate(), vec![]);
    KafkaSink::new("kafka/test", &config, Duration::from_secs(4)).unwrap()
}

/// Reads `n` messages of `topic` from the start: (key, value, headers) by event id.
async fn read_back(
    tansu: &Tansu,
    topic: &str,
    n: usize,
) -> HashMap<String, (Vec<u8>, Vec<u8>, HashMap<String, String>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", tansu.bootstrap())
        .set("group.id", format!("read-back-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < n {
        let message = tokio::time::timeout_at(deadline.into(), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} messages read back", out.len()))
            .unwrap();
        let headers: HashMap<String, String> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let key = message.key().unwrap_or_default().to_vec();
        let value = message.payload().unwrap_or_default().to_vec();
        out.insert(
            headers.get("event_id").cloned().unwrap_or_default(),
            (key, value, headers),
        );
    }
    out
}

/// Sends `events` again and again, as the delivery layer does, until every one is
/// acknowledged (waiting `pause` between sends); fails after 60 s. Returns the number of sends.
async fn resend_until_acknowledged(sink: &KafkaSink, events: &[Event], pause: Duration) -> usize {
    let started = Instant::now();
    let mut pending = events.to_vec();
    let mut attempts = 0;
    while !pending.is_empty() {
        attempts += 1;
        let report = sink.send(&pending).await;
        pending = pending
            .into_iter()
            .enumerate()
            .filter(|(i, _)| report.outcomes.get(*i) != Some(&Outcome::Delivered))
            .map(|(_, e)| e)
            .collect();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} events still not acknowledged after {attempts} sends: {:?}",
            pending.len(),
            report.outcomes.get(0)
        );
        tokio::time::sleep(pause).await;
    }
    attempts
}

/// Asserts that each of `events` (all `topic` holds) was read back from the broker.
async fn assert_on_broker(tansu: &Tansu, topic: &str, events: &[&Event]) {
    let read = read_back(tansu, topic, events.len()).await;
    for event in events {
        assert!(
            read.contains_key(&event.event_id.to_string()),
            "event {} acknowledged but not on the broker",
            event.event_id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_carry_json_key_and_headers() {
    let tansu = Tansu::start();
    tansu.create_topic("security-policy_violation", 3);
    tansu.create_topic("security-lockout", 1);
    let sink = kafka_sink(
        &tansu.bootstrap(),
        "security-{event_type}",
        "key: source\ncompression: zstd\n",
    );
    let mut events = Vec::new();
    for i in 0..200 {
        let mut event = Event::new(if i % 4 == 0 {
            "lockout"
        } else {
            "policy_violation"
        });
        event.source = Some(format!("host-{}", i % 7));
        event.summary = Some(format!("event {i}"));
        events.push(event);
    }
    let report = sink.send(&events).await;
    for i in 0..events.len() {
        assert_eq!(
            *report.outcomes.get(i).unwrap(),
            Outcome::Delivered,
            "event {i}"
        );
    }
    assert_eq!(report.requests[0].events, 200);
    assert!(report.requests[0].bytes > 200 * 100);

    let mut seen = read_back(&tansu, "security-policy_violation", 150).await;
    seen.extend(read_back(&tansu, "security-lockout", 50).await);
    for event in &events {
        let (key, value, headers) = &seen[&event.event_id.to_string()];
        assert_eq!(
            value,
            &event.to_json_bytes(),
            "the message is the event's JSON form"
        );
        assert_eq!(key, event.source.as_ref().unwrap().as_bytes());
        assert_eq!(headers["event_type"], event.event_type);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_is_permanent_and_a_down_broker_is_retried() {
    let mut tansu = Tansu::start();
    // tansu does not auto-create topics, like a broker with auto.create.topics.enable=false.
    let sink = kafka_sink(
        &tansu.bootstrap(),
        "no-such-topic",
        "options: { topic.metadata.propagation.max.ms: \"1000\" }\n",
    );
    let report = sink.send(&[Event::new("x")]).await;
    match report.outcomes.get(0).unwrap() {
        Outcome::Permanent { reason } => {
            assert!(reason.to_lowercase().contains("unknown"), "{reason}")
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    let hint = sink.hint(&report.requests[0]).unwrap();
    assert!(hint.contains("topic does not exist"), "{hint}");

    tansu.create_topic("events", 1);
    let sink = kafka_sink(&tansu.bootstrap(), "events", "");
    assert_eq!(
        *sink.send(&[Event::new("x")]).await.outcomes.get(0).unwrap(),
        Outcome::Delivered
    );
    tansu.stop();
    let started = Instant::now();
    let report = sink.send(&[Event::new("y"), Event::new("z")]).await;
    assert!(
        matches!(report.outcomes.get(0).unwrap(), Outcome::Retry { .. }),
        "{:?}",
        report.outcomes
    );
    assert!(
        matches!(report.outcomes.get(1).unwrap(), Outcome::Retry { .. }),
        "{:?}",
        report.outcomes
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "outcomes come before sending.timeout, took {:?}",
        started.elapsed()
    );
}

/// A broker that stops answering (frozen: in-flight requests time out) and comes back: the
/// sink reports retries meanwhile and, after three sends in a row that got no acknowledgement
/// at all, replaces its producer. The replacement strands nothing: every event of the stalled
/// sends, sent again by the delivery layer, is acknowledged and on the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_is_ridden_out_and_a_replaced_producer_strands_nothing() {
    let tansu = Tansu::start();
    tansu.create_topic("events", 2);
    let sink = kafka_sink(&tansu.bootstrap(), "events", "");
    let batch = |n: usize| (0..n).map(|_| Event::new("x")).collect::<Vec<_>>();
    let first = batch(100);
    let report = sink.send(&first).await;
    assert!(matches!(
        report.outcomes,
        siemrelay_exporters::delivery::Outcomes::Uniform(Outcome::Delivered)
    ));

    tansu.freeze();
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let events = batch(500);
        let report = sink.send(&events).await;
        assert!(
            matches!(report.outcomes.get(0).unwrap(), Outcome::Retry { .. }),
            "{:?}",
            report.outcomes.get(0).unwrap()
        );
        stalled.extend(events);
    }
    assert_eq!(
        sink.producers_replaced(),
        1,
        "three sends without any acknowledgement replace the producer"
    );
    tansu.thaw();
    resend_until_acknowledged(&sink, &stalled, Duration::from_millis(200)).await;
    let all: Vec<&Event> = first.iter().chain(&stalled).collect();
    assert_on_broker(&tansu, "events", &all).await;
}

/// Issue 19: a send that timed out against a frozen broker leaves its events to the delivery
/// layer's retry, and every one of them is on the broker once it answers again, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_send_that_timed_out_all_arrive_after_the_broker_returns() {
    let tansu = Tansu::start();
    tansu.create_topic("fenced", 2);
    let sink = kafka_sink(&tansu.bootstrap(), "fenced", "");
    let first: Vec<Event> = (0..100).map(|_| Event::new("x")).collect();
    let report = sink.send(&first).await;
    assert_eq!(report.outcomes.get(0).unwrap(), &Outcome::Delivered);

    // One send times out against a frozen broker: its requests are in flight, unanswered.
    tansu.freeze();
    let stalled: Vec<Event> = (0..200).map(|_| Event::new("x")).collect();
    let report = sink.send(&stalled).await;
    assert!(
        matches!(report.outcomes.get(0).unwrap(), Outcome::Retry { .. }),
        "{:?}",
        report.outcomes.get(0).unwrap()
    );
    tansu.thaw();

    // The delivery layer sends the same events again until they are acknowledged.
    let started = Instant::now();
    let attempts = resend_until_acknowledged(&sink, &stalled, Duration::from_millis(100)).await;
    let all: Vec<&Event> = stalled.iter().chain(&first).collect();
    assert_on_broker(&tansu, "fenced", &all).await;
    println!(
        "timed-out send: the stalled send's events acknowledged {:.1?} after the broker returned, in {attempts} sends",
        started.elapsed()
    );
}

/// Events/s from the sink into the broker (debug build; run with `--ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn sink_throughput() {
    let tansu = Tansu::start();
    tansu.create_topic("bench", 6);
    let total = 100_000;
    for (label, extra) in [
        ("default batching", ""),
        (
            "batch.num.messages=1",
            "options: { batch.num.messages: \"1\" }\n",
        ),
    ] {
        let sink = kafka_sink(
            &tansu.bootstrap(),
            "bench",
            &format!("compression: lz4\n{extra}"),
        );
        let events: Vec<Event> = (0..10_000)
            .map(|i| {
                let mut e = Event::new("policy_violation");
                e.summary = Some(format!(
                    "benchmark event {i} with some text to look like a real one"
                ));
                e.source = Some("bench".into());
                e
            })
            .collect();
        let started = Instant::now();
        for _ in 0..total / events.len() {
            let report = sink.send(&events).await;
            assert!(matches!(
                report.outcomes,
                siemrelay_exporters::delivery::Outcomes::Uniform(Outcome::Delivered)
            ));
        }
        let elapsed = started.elapsed();
        println!(
            "kafka sink → tansu ({label}): {total} events in {elapsed:.2?} = {:.0} events/s",
            total as f64 / elapsed.as_secs_f64()
        );
    }
}

/// Issue 19: librdkafka's idempotent producer bumps its own epoch after messages timed out
/// (KIP-360: it may, without a transactional id, and sends the new epoch from sequence 0);
/// Kafka accepts that. The same producer then delivers the events the sink sends again, and
/// is never replaced (a broker that answers the bumped epoch with `ProducerFenced` turns
/// every timeout into a fatal error and a new producer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_that_bumped_its_epoch_after_timeouts_keeps_delivering() {
    let tansu = Tansu::start();
    tansu.create_topic("bumped", 2);
    // One message per request: five in flight, the rest wait in librdkafka's queue and time out.
    let sink = kafka_sink(
        &tansu.bootstrap(),
        "bumped",
        "options: { batch.num.messages: \"1\" }\n",
    );
    let first: Vec<Event> = (0..10).map(|_| Event::new("x")).collect();
    let report = sink.send(&first).await;
    assert_eq!(report.outcomes.get(0), Some(&Outcome::Delivered));

    tansu.freeze();
    let stalled: Vec<Event> = (0..300).map(|_| Event::new("x")).collect();
    let report = sink.send(&stalled).await;
    let timed_out = (0..stalled.len())
        .filter(|i| matches!(report.outcomes.get(*i), Some(Outcome::Retry { .. })))
        .count();
    assert!(
        timed_out > 5,
        "only {timed_out} events timed out in the frozen broker's queue"
    );
    // librdkafka scans its queues for timed-out messages once a second: give it that time, so
    // the epoch bump is certain to be due when the broker answers again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    tansu.thaw();

    resend_until_acknowledged(&sink, &stalled, Duration::ZERO).await;
    let more: Vec<Event> = (0..100).map(|_| Event::new("x")).collect();
    assert_eq!(
        sink.send(&more).await.outcomes.get(0),
        Some(&Outcome::Delivered)
    );
    assert_eq!(
        sink.producers_replaced(),
        0,
        "the producer was replaced after its own epoch bump (the broker fenced it)"
    );
    let all: Vec<&Event> = first.iter().chain(&stalled).chain(&more).collect();
    assert_on_broker(&tansu, "bumped", &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_values_take_the_schema_key() {
    let tansu = Tansu::start();
    tansu.create_topic("security-ecs", 1);
    let sink = kafka_sink(&tansu.bootstrap(), "security-ecs", "")
        .with_schema(siemrelay_exporters::delivery::Schema::Ecs);
    let mut event = Event::new("blocked");
    event
        .attributes
        .insert("action".into(), serde_json::json!("block"));
    let report = sink.send(std::slice::from_ref(&event)).await;
    assert_eq!(*report.outcomes.get(0).unwrap(), Outcome::Delivered);
    let seen = read_back(&tansu, "security-ecs", 1).await;
    let (_, value, _) = &seen[&event.event_id.to_string()];
    let value: serde_json::Value = serde_json::from_slice(value).unwrap();
    assert_eq!(value["event"]["action"], "block", "{value}");
    assert_eq!(value["event"]["id"], event.event_id.to_string());
}
