//! Issue 13 acceptance with the real binaries: an edge siemrelay (webhook → `kafka` exporter),
//! a real Kafka-compatible broker (tansu, in memory, one per test on a free port), aggregator
//! siemrelays (`kafka` receiver, one consumer group → `file` exporter), and an independent
//! client (confluent-kafka, tests/python/kafka_client.py).
//!
//! tansu 0.6 fetches only record batches that start at or after the requested offset, so a
//! consumer resuming inside a batch (from a commit after a rebalance) would skip or stall. The
//! edges in these tests therefore produce one message per batch (`batch.num.messages: "1"`);
//! real Kafka returns the whole batch and needs no such setting.
//!
//! tansu 0.6's group coordinator, unpatched, never reassigns a dead member's partitions (it
//! evicts the member while answering another member's heartbeat and keeps the old generation);
//! `scripts/install-tansu.sh` builds it with a fix (scripts/tansu/tansu-broker/) so that the
//! live members rejoin, as with Kafka. Unpatched, it also fences an idempotent producer that
//! bumped its own epoch after messages timed out, which Kafka accepts; under load that cost
//! the edge one producer after another (scripts/tansu/tansu-storage/ fixes it).
//!
//! Needs `scripts/install-tansu.sh` (the patched tansu binary) and `scripts/setup-test-env.sh` (the
//! Python client); without them the tests fail saying so.

use serde::Deserialize;
use siemrelay_e2e::fake::tansu::Tansu;
use siemrelay_e2e::{Siemrelay, free_port};
use siemrelay_e2e::{python, repo as workspace};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOPIC: &str = "security-events";
const SIGNING_KEY: &str = "kafka-e2e-signing-key-0123456789abcdef";

/// Runs kafka_client.py with `args`, feeding `stdin`; returns stdout, panicking on failure.
fn kafka_client(args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(python())
        .arg(workspace().join("tests/python/kafka_client.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kafka_client.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("feed kafka_client.py");
    let output = child.wait_with_output().expect("kafka_client.py output");
    assert!(
        output.status.success(),
        "kafka_client.py {args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A message as kafka_client.py prints it.
#[derive(Debug, Deserialize)]
struct Consumed {
    key: Option<String>,
    value: String,
    headers: HashMap<String, Option<String>>,
}

fn consume(tansu: &Tansu, topic: &str, count: usize) -> Vec<Consumed> {
    kafka_client(
        &[
            "consume",
            &tansu.bootstrap(),
            topic,
            &count.to_string(),
            "60",
        ],
        b"",
    )
    .lines()
    .map(|line| serde_json::from_str(line).expect("consumed message JSON"))
    .collect()
}

/// The distinct `event_id` headers on `topic`, read by the independent client until `expected`
/// were seen or nothing more came for a while (for the diagnosis of a failed test).
fn event_ids_on_broker(tansu: &Tansu, topic: &str, expected: usize) -> HashSet<String> {
    let output = Command::new(python())
        .arg(workspace().join("tests/python/kafka_client.py"))
        .args([
            "consume",
            &tansu.bootstrap(),
            topic,
            &expected.to_string(),
            "120",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run kafka_client.py");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Consumed>(line).ok())
        .filter_map(|m| m.headers.get("event_id").cloned().flatten())
        .collect()
}

fn edge_config(port: u16, tansu: &Tansu, topic: &str, extra: &str, processors: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
processors:
  sign:
    keys: [{{ id: k1, secret: "${{env:SIGNING_KEY}}" }}]
exporters:
  kafka:
    brokers: ["{brokers}"]
    topic: {topic}
    key: event_id
    compression: lz4
    options: {{ batch.num.messages: "1" }}
    retry: {{ initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 10m }}
    {extra}
service:
  shutdown_timeout: 20s
  pipelines:
    edge: {{ receivers: [webhook], processors: [{processors}], exporters: [kafka] }}
"#,
        brokers = tansu.bootstrap()
    )
}

fn start_edge(config: &str, port: u16) -> Siemrelay {
    let mut edge = Siemrelay::start_with(config, &[], &[("SIGNING_KEY", SIGNING_KEY)]);
    edge.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    edge
}

fn aggregator_config(tansu: &Tansu, topic: &str) -> String {
    aggregator_config_with(tansu, topic, "disk", "")
}

/// An aggregator with the given exporter queue type and extra `kafka` receiver settings.
fn aggregator_config_with(tansu: &Tansu, topic: &str, queue: &str, receiver: &str) -> String {
    format!(
        r#"
receivers:
  kafka:
    brokers: ["{brokers}"]
    topics: [{topic}]
    group_id: aggregators
    session_timeout: 6s
    max_batch_events: 2000
    {receiver}
exporters:
  file:
    path: "./out/events.ndjson"
    fsync: never
    queue: {{ type: {queue} }}
service:
  shutdown_timeout: 20s
  pipelines:
    central: {{ receivers: [kafka], processors: [], exporters: [file] }}
"#,
        brokers = tansu.bootstrap()
    )
}

/// The partitions an aggregator owns now, replayed from its assignment and revocation logs
/// (eager rebalances revoke everything and assign the full set, cooperative ones change
/// only the difference: replaying both as set operations covers either).
fn current_assignment(aggregator: &Siemrelay) -> HashSet<String> {
    let mut owned = HashSet::new();
    for line in aggregator.logs().lines() {
        let line = without_ansi_colours(line);
        let assigned = line.contains("kafka partitions assigned");
        if !assigned && !line.contains("kafka partitions revoked") {
            continue;
        }
        let partitions = line
            .split("partitions=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default()
            .trim_matches('"')
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        for partition in partitions {
            if assigned {
                owned.insert(partition);
            } else {
                owned.remove(&partition);
            }
        }
    }
    owned
}

/// `line` without terminal colour sequences (`ESC [ … m`).
fn without_ansi_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('\u{1b}') {
        plain.push_str(&rest[..at]);
        rest = &rest[at..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    plain.push_str(rest);
    plain
}

/// True once the aggregator's last rebalance event was an assignment.
fn assigned(aggregator: &Siemrelay) -> bool {
    let logs = aggregator.logs();
    match (
        logs.rfind("kafka partitions assigned"),
        logs.rfind("kafka partitions revoked"),
    ) {
        (Some(assigned), Some(revoked)) => assigned > revoked,
        (Some(_), None) => true,
        _ => false,
    }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn out_file(aggregator_dir: &Path) -> PathBuf {
    aggregator_dir.join("out/events.ndjson")
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |bytes| bytes.iter().filter(|b| **b == b'\n').count())
}

#[derive(Deserialize)]
struct IdOnly {
    event_id: String,
}

/// Every event id written by an aggregator (with repeats).
fn ids_in(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<IdOnly>(l)
                .expect("aggregator output line")
                .event_id
        })
        .collect()
}

/// `n` NDJSON events with fresh ids; returns the body and the ids.
fn ndjson(first: usize, n: usize) -> (String, Vec<String>) {
    let mut body = String::with_capacity(n * 200);
    let mut ids = Vec::with_capacity(n);
    for i in first..first + n {
        let id = uuid::Uuid::now_v7().to_string();
        body.push_str(&format!(
            "{{\"event_id\":\"{id}\",\"event_type\":\"policy_violation\",\"severity\":\"high\",\"source\":\"toktra\",\"summary\":\"event {i}\",\"user_email\":\"u{}@acme.example\"}}\n",
            i % 97
        ));
        ids.push(id);
    }
    (body, ids)
}

/// Posts `requests` × `per_request` events, 8 requests at a time; returns the ids.
async fn post(port: u16, requests: usize, per_request: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let mut sent = Vec::with_capacity(requests * per_request);
    for wave in (0..requests).collect::<Vec<_>>().chunks(8) {
        let mut tasks = Vec::new();
        for &request in wave {
            let (body, ids) = ndjson(request * per_request, per_request);
            sent.extend(ids);
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                // A full edge answers 503 with Retry-After: send the same request again.
                loop {
                    let response = client
                        .post(&url)
                        .header("content-type", "application/x-ndjson")
                        .body(body.clone())
                        .send()
                        .await?;
                    if response.status() != 503 {
                        return Ok::<u16, reqwest::Error>(response.status().as_u16());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }));
        }
        for task in tasks {
            assert_eq!(
                task.await.expect("sender task").expect("post to the edge"),
                200
            );
        }
    }
    sent
}

/// The aggregators' exporter queue (`memory` or `disk`) and extra receiver settings.
struct FleetSetup {
    queue: &'static str,
    receiver: &'static str,
    /// Restart the killed aggregator on its storage once the survivors took its partitions.
    restart_killed: bool,
}

/// How long the fleet may show no progress at all (nothing new at the aggregators, nothing new
/// acknowledged by the broker to the edge) before the test gives up: longer than a group
/// rebalance (6 s session timeout) plus one producer timeout (24 s), so only a real stall trips it.
const FLEET_STALL: Duration = Duration::from_secs(60);

/// Issue 13/19/21: edge → Kafka → three aggregators; one aggregator is killed (-9) a third of the
/// way in. Waits on progress, not a deadline: until every event the edge acknowledged (HTTP 200)
/// arrived, or nothing moved for [`FLEET_STALL`] — then it fails with the counts that tell lost
/// from late (acknowledged by the edge, acknowledged by the broker to the edge, still queued at
/// the edge, dead-lettered, on the broker, arrived).
async fn fleet_scenario(setup: FleetSetup) {
    let tansu = Tansu::start();
    tansu.create_topic(TOPIC, 6);
    let aggregator_config = || aggregator_config_with(&tansu, TOPIC, setup.queue, setup.receiver);
    let mut aggregators: Vec<Siemrelay> = Vec::new();
    for _ in 0..3 {
        let aggregator = Siemrelay::start(&aggregator_config());
        wait_until(
            "an aggregator to join the group",
            Duration::from_secs(30),
            || assigned(&aggregator),
        );
        aggregators.push(aggregator);
    }
    wait_until("the group to settle", Duration::from_secs(30), || {
        aggregators.iter().all(assigned)
    });

    let (port, admin) = (free_port(), free_port());
    let edge = start_edge(
        &with_admin(
            &edge_config(
                port,
                &tansu,
                TOPIC,
                "queue: { max_events: 200000, max_size: 512MiB }",
                "",
            ),
            admin,
        ),
        port,
    );
    let started = Instant::now();
    let total = 100_000;
    let sender = tokio::spawn(post(port, 100, total / 100));

    // Kill one aggregator once about a third has arrived.
    let outputs: Vec<PathBuf> = aggregators.iter().map(|a| out_file(a.dir())).collect();
    let arrived = |outputs: &[PathBuf]| outputs.iter().map(|p| count_lines(p)).sum::<usize>();
    let mut progress = Progress::new(FLEET_STALL);
    while arrived(&outputs) < total / 3 {
        let now = (arrived(&outputs), EdgeCounts::read(admin).await.delivered);
        assert!(
            !progress.stalled(now),
            "nothing moved for {FLEET_STALL:?} before the kill ({now:?}); edge logs:\n{}",
            tail(&edge.logs(), 30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    aggregators[0].kill();
    let killed_at = arrived(&outputs);
    let killed = Instant::now();
    // The survivors notice the dead member once its session times out (6 s) and rebalance:
    // between them they then own every partition, while the edge keeps producing.
    wait_until(
        "the surviving aggregators to take the dead one's partitions",
        Duration::from_secs(60),
        || {
            let owned: HashSet<String> = aggregators[1..]
                .iter()
                .flat_map(current_assignment)
                .collect();
            owned.len() == 6
        },
    );
    let taken_over_in = killed.elapsed();
    let by_others_at_takeover: usize = outputs[1..].iter().map(|p| count_lines(p)).sum();
    if setup.restart_killed {
        // What the killed aggregator had accepted but not yet written waits in its disk queue:
        // a supervisor restarts it on the same storage and it delivers that.
        let dir = aggregators.remove(0).into_dir();
        aggregators.insert(0, Siemrelay::start_in(dir, &aggregator_config(), &[], &[]));
    }
    let sent = sender.await.expect("sender");
    let posted = started.elapsed();

    // Wait on progress until every acknowledged event arrived.
    let distinct = |outputs: &[PathBuf]| {
        outputs
            .iter()
            .flat_map(|p| ids_in(p))
            .collect::<HashSet<String>>()
    };
    let mut progress = Progress::new(FLEET_STALL);
    loop {
        let lines = arrived(&outputs);
        // Counting lines is cheap; parse only once enough lines are there.
        if lines >= total && distinct(&outputs).len() >= total {
            break;
        }
        let edge_counts = EdgeCounts::read(admin).await;
        if progress.stalled((lines, edge_counts.delivered)) {
            let unique = distinct(&outputs);
            let missing: Vec<&String> = sent.iter().filter(|id| !unique.contains(*id)).collect();
            let on_broker = event_ids_on_broker(&tansu, TOPIC, sent.len());
            let missing_on_broker = missing
                .iter()
                .filter(|id| !on_broker.contains(**id))
                .count();
            panic!(
                "nothing moved for {FLEET_STALL:?}: {} events acknowledged by the edge, {} distinct arrived \
                 ({lines} lines), {} missing; edge: {edge_counts:?}; of the missing, {missing_on_broker} are not \
                 on the broker either ({} distinct ids on the broker); first missing: {:?}\nedge logs:\n{}\nsurvivor logs:\n{}\n{}",
                sent.len(),
                unique.len(),
                missing.len(),
                on_broker.len(),
                missing.iter().take(3).collect::<Vec<_>>(),
                tail(&edge.logs(), 40),
                tail(&aggregators[1].logs(), 30),
                tail(&aggregators[2].logs(), 30),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = started.elapsed();

    let all: Vec<String> = outputs.iter().flat_map(|p| ids_in(p)).collect();
    let unique: HashSet<&String> = all.iter().collect();
    for id in &sent {
        assert!(unique.contains(id), "event {id} was lost");
    }
    assert_eq!(unique.len(), total, "nothing but the sent events");
    let duplicates = all.len() - unique.len();
    let by_others: usize = outputs[1..].iter().map(|p| count_lines(p)).sum();
    let edge_counts = EdgeCounts::read(admin).await;
    println!(
        "fleet ({} queues{}): {total} events acknowledged by the edge in {posted:.1?}, all {} arrived in {elapsed:.1?} ({:.0} events/s end to end); \
         killed an aggregator after {killed_at}; the survivors owned all partitions {taken_over_in:.1?} later (having written {by_others_at_takeover}); \
         {duplicates} duplicates; the others wrote {by_others}; edge: {edge_counts:?}",
        setup.queue,
        if setup.restart_killed {
            ", killed one restarted"
        } else {
            ", killed one not restarted"
        },
        unique.len(),
        total as f64 / elapsed.as_secs_f64(),
    );
    // Duplicates only come from batches accepted but not yet committed when the group
    // rebalanced: bounded by what was in flight, far below the total.
    assert!(duplicates < total / 4, "{duplicates} duplicates");
    assert!(
        by_others > total / 2,
        "the other aggregators took their share: {by_others}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_delivers_100k_events_through_kafka_when_an_aggregator_is_killed() {
    fleet_scenario(FleetSetup {
        queue: "memory",
        receiver: "commit: after_delivery",
        restart_killed: false,
    })
    .await;
}

/// Tells a stall from slow progress: true once the observed value has not changed for `limit`.
struct Progress<T> {
    last: Option<T>,
    since: Instant,
    limit: Duration,
}

impl<T: PartialEq> Progress<T> {
    fn new(limit: Duration) -> Progress<T> {
        Progress {
            last: None,
            since: Instant::now(),
            limit,
        }
    }

    fn stalled(&mut self, now: T) -> bool {
        if self.last.as_ref() != Some(&now) {
            self.last = Some(now);
            self.since = Instant::now();
        }
        self.since.elapsed() >= self.limit
    }
}

/// `config` with the admin listener (metrics) on loopback port `admin`.
fn with_admin(config: &str, admin: u16) -> String {
    config.replacen(
        "service:\n",
        &format!("service:\n  admin: {{ endpoint: \"127.0.0.1:{admin}\" }}\n"),
        1,
    )
}

/// The edge's own account of its kafka exporter, from its `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct EdgeCounts {
    /// Events the broker acknowledged.
    delivered: u64,
    /// Events written to the dead-letter file.
    dead_lettered: u64,
    /// Events queued or in flight.
    queued: u64,
    /// Producers the exporter replaced (fenced, failed or stalled).
    producers_replaced: u64,
}

impl EdgeCounts {
    async fn read(admin: u16) -> EdgeCounts {
        let text = match reqwest::get(format!("http://127.0.0.1:{admin}/metrics")).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => return EdgeCounts::default(),
        };
        let value = |name: &str| {
            text.lines()
                .filter(|l| l.starts_with(name) && l.contains("exporter=\"kafka\""))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .next()
                .unwrap_or(0.0) as u64
        };
        EdgeCounts {
            delivered: value("siemrelay_exporter_events_sent_total"),
            dead_lettered: value("siemrelay_exporter_events_failed_total"),
            queued: value("siemrelay_exporter_queue_events"),
            producers_replaced: value("siemrelay_exporter_kafka_producers_replaced_total"),
        }
    }
}

/// The broker is frozen (SIGSTOP: unreachable, as in a network partition) rather than
/// restarted, because tansu's in-memory storage would forget the idempotent producer's id on a
/// restart, which a real Kafka cluster keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_in_the_edge_disk_queue_while_the_broker_is_down() {
    let tansu = Tansu::start();
    tansu.create_topic(TOPIC, 2);
    let port = free_port();
    let edge = start_edge(
        &edge_config(
            port,
            &tansu,
            TOPIC,
            "queue: { type: disk }\n    sending: { timeout: 3s }",
            "",
        ),
        port,
    );
    let before = post(port, 2, 100).await;
    let read: HashSet<String> = consume(&tansu, TOPIC, before.len())
        .into_iter()
        .filter_map(|m| m.headers.get("event_id").cloned().flatten())
        .collect();
    assert_eq!(read, before.iter().cloned().collect::<HashSet<_>>());

    tansu.freeze();
    // The edge keeps accepting: the events wait in its disk queue.
    let during = post(port, 3, 100).await;
    wait_until(
        "the edge to retry against the unreachable broker",
        Duration::from_secs(30),
        || edge.logs().contains("exporter is degraded"),
    );
    tansu.thaw();
    let read: Vec<String> = consume(&tansu, TOPIC, before.len() + during.len())
        .into_iter()
        .filter_map(|m| m.headers.get("event_id").cloned().flatten())
        .collect();
    let unique: HashSet<&String> = read.iter().collect();
    for id in &during {
        assert!(
            unique.contains(id),
            "event {id} posted while the broker was down never arrived"
        );
    }
    assert_eq!(
        unique.len(),
        before.len() + during.len(),
        "nothing else arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_client_reads_our_messages_and_feeds_our_receiver() {
    let tansu = Tansu::start();
    tansu.create_topic("ours", 1);
    tansu.create_topic("interop", 2);

    // Ours, read by confluent-kafka: the documented JSON form (signed), key and headers.
    let port = free_port();
    let _edge = start_edge(&edge_config(port, &tansu, "ours", "", "sign"), port);
    let sent = post(port, 1, 10).await;
    let messages = consume(&tansu, "ours", 10);
    assert_eq!(messages.len(), 10);
    for message in &messages {
        let event: serde_json::Value = serde_json::from_str(&message.value).expect("value is JSON");
        let id = event["event_id"].as_str().expect("event_id");
        assert!(sent.iter().any(|s| s == id));
        for field in [
            "timestamp",
            "observed_timestamp",
            "event_type",
            "severity",
            "severity_number",
            "attributes",
        ] {
            assert!(event.get(field).is_some(), "{field} missing in {event}");
        }
        assert_eq!(event["signature"]["alg"], "HMAC-SHA256");
        assert_eq!(event["signature"]["kid"], "k1");
        assert_eq!(message.headers["event_id"].as_deref(), Some(id));
        assert_eq!(
            message.headers["event_type"].as_deref(),
            Some("policy_violation")
        );
        assert_eq!(message.key.as_deref(), Some(id), "keyed by event_id");
    }

    // Theirs, consumed by our receiver: our form, a foreign object, and malformed payloads.
    let ours: Vec<String> = messages.iter().map(|m| m.value.clone()).collect();
    let mut payloads = ours.join("\n");
    payloads.push_str("\n{\"user\":\"bob\",\"action\":\"login\"}\nnot json at all\n[1,2,3]\n");
    let produced = kafka_client(
        &["produce", &tansu.bootstrap(), "interop"],
        payloads.as_bytes(),
    );
    assert!(produced.contains("\"produced\": 13"), "{produced}");
    let aggregator = Siemrelay::start(&aggregator_config(&tansu, "interop"));
    let out = out_file(aggregator.dir());
    wait_until(
        "13 events at the aggregator",
        Duration::from_secs(60),
        || count_lines(&out) >= 13,
    );
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("output line"))
        .collect();
    assert_eq!(events.len(), 13);
    for original in &ours {
        let original: serde_json::Value = serde_json::from_str(original).expect("ours");
        assert!(
            events.contains(&original),
            "our event came back unchanged: {original}"
        );
    }
    let malformed: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event_type"] == "malformed_message")
        .collect();
    assert_eq!(malformed.len(), 2, "{events:?}");
    for event in &malformed {
        assert!(event["attributes"]["parse_error"].is_string(), "{event}");
        assert!(
            ["not json at all", "[1,2,3]"].contains(&event["summary"].as_str().unwrap_or("")),
            "{event}"
        );
    }
    let foreign = events
        .iter()
        .find(|e| e["attributes"]["user"] == "bob")
        .expect("the foreign object");
    assert_eq!(foreign["attributes"]["action"], "login");
    assert!(
        aggregator.logs().contains("malformed_message"),
        "malformed messages are logged (and counted)"
    );
}
