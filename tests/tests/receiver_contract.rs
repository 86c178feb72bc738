//! Issue 22: one contract suite for receivers, table-driven: each row is one way events come in
//! (an [`Ingress`]), and each case runs through the real binary with a `file` exporter whose
//! output directory is blocked (a regular file where the directory should be), so whatever the
//! receiver accepted can only be in the exporter's queue.
//!
//! - **ack after durable queue**: with a disk queue, the receiver acknowledges (HTTP 2xx, gRPC
//!   OK, the file receiver's checkpoint, the Kafka receiver's offset commit), siemrelay is killed with SIGKILL at once, the output is
//!   unblocked, siemrelay starts again on the same directory: every acknowledged event arrives.
//! - **backpressure**: the queue (200 events) is full: HTTP answers 503 with `Retry-After`, gRPC
//!   UNAVAILABLE, the file and Kafka receivers pause (their checkpoint / commit stops at the
//!   queue's capacity, and once the output is unblocked every event arrives exactly once).
//! - **max body** (`max_body_size` / `max_request_size` 4 KiB) and **max events**
//!   (`max_events_per_request` 50): 413 / RESOURCE_EXHAUSTED, and nothing of the request queued.
//! - **memory budget** (`service.memory_limit` 1 MiB): a request while another one holds the
//!   budget gets 503 + `Retry-After: 1` (gRPC UNAVAILABLE); a request larger than the whole
//!   budget gets 413 (RESOURCE_EXHAUSTED).
//!
//! A drop-in receiver (issue 23) adds an [`Ingress`] variant (its config and how to send one
//! request) and one row.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;
use siemrelay_e2e::contract::Plan::{self, NotApplicable, Run};
use siemrelay_e2e::fake::tansu::Tansu;
use siemrelay_e2e::{Siemrelay, free_port, read_ndjson_files};
use siemrelay_e2e::{python, repo};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// How events come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ingress {
    /// `webhook`: NDJSON over HTTP.
    Webhook,
    /// `otlp` over HTTP: OTLP/JSON.
    OtlpHttp,
    /// `otlp` over gRPC: protobuf, sent by Google's gRPC client (grpcio).
    OtlpGrpc,
    /// `file`: lines appended to a tailed file.
    File,
    /// `kafka`: records produced to a real broker (tansu) by confluent-kafka; the receiver's
    /// acknowledgement is its offset commit (`commit: after_queue`).
    Kafka,
    /// `datadog`: a JSON array of logs to `/api/v2/logs` with `DD-API-KEY`.
    Datadog,
    /// `elasticsearch`: an NDJSON bulk request of `create` actions to `/_bulk`; a full pipeline
    /// answers item 429s (no `Retry-After`: Elasticsearch sends none), the memory budget a
    /// whole-request 429 with `Retry-After`.
    Elasticsearch,
    /// `splunk_hec`: JSON envelopes back to back over HTTP (`/services/collector/event`).
    SplunkHec,
    /// `syslog` over TCP: octet-counted RFC 5424 messages with CEF bodies on one connection.
    Syslog,
}

/// One receiver's row.
struct Row {
    ingress: Ingress,
    ack_after_durable_queue: Plan,
    backpressure: Plan,
    max_body: Plan,
    max_events: Plan,
    memory_budget: Plan,
}

const FILE_HAS_NO_REQUESTS: &str = "a tailed file has no requests: the receiver reads at most `max_batch` lines of at most `max_line_size` bytes at a time, so there is nothing a request limit could refuse";

const KAFKA_HAS_NO_REQUESTS: &str = "a Kafka consumer fetches: there is no request to refuse; the receiver takes at most `max_batch_events` records per batch";

const SYSLOG_HAS_NO_ACK: &str = "TCP syslog has no acknowledgement (RFC 6587): a sender never learns what was queued; the receiver hands each batch over before it reads more (backpressure row, tests/tests/syslog_receiver.rs)";

const SYSLOG_HAS_NO_REQUESTS: &str = "a syslog stream has no requests and no answer: a message over max_message_size is skipped and counted (reason too_large), and a held memory budget makes the connection wait (read nothing) like a full queue";

const TABLE: &[Row] = &[
    Row {
        ingress: Ingress::Webhook,
        ack_after_durable_queue: Run,
        backpressure: Run,
        max_body: Run,
        max_events: Run,
        memory_budget: Run,
    },
    Row {
        ingress: Ingress::OtlpHttp,
        ack_after_durable_queue: Run,
        backpressure: Run,
        max_body: Run,
        max_events: Run,
        memory_budget: Run,
    },
    Row {
        ingress: Ingress::OtlpGrpc,
        ack_after_durable_queue: Run,
        backpressure: Run,
        max_body: Run,
        max_events: Run,
        memory_budget: Run,
    },
    Row {
        ingress: Ingress::File,
        // The checkpoint is the file receiver's acknowledgement.
        ack_after_durable_queue: Run,
        backpressure: Run,
        max_body: NotApplicable(FILE_HAS_NO_REQUESTS),
        max_events: NotApplicable(FILE_HAS_NO_REQUESTS),
        memory_budget: NotApplicable(FILE_HAS_NO_REQUESTS),
    },
    Row {
        ingress: Ingress::Kafka,
        // The offset commit is the Kafka receiver's acknowledgement.
        ack_after_durable_queue: Run,
        backpressure: Run,
        max_body: NotApplicable(KAFKA_HAS_NO_REQUESTS),
        max_events: NotApplicable(KAFKA_HAS_NO_REQUESTS),
        memory_budget: NotApplicable(KAFKA_HAS_NO_REQUESTS),
    },
    Row {
        ingress: Ingress::Datadog,
        ack_after_durable_queue: Run,
        backpressure: Run,
        max_body: Run,
        max_events: Run,
        memory_budget: Run,
    },
    Row {
        ingress: Ingress::Elasticsearch,
        ack_after_durable_queue: Run,
        backpressure: Run,
        max_body: Run,
        max_events: Run,
        memory_budget: Run,
    },
    Row {
        ingress: Ingress::SplunkHec,
        ack_after_durable_queue: Run,
        backpressure: Run,
        max_body: Run,
        max_events: Run,
        memory_budget: Run,
    },
    Row {
        ingress: Ingress::Syslog,
        ack_after_durable_queue: NotApplicable(SYSLOG_HAS_NO_ACK),
        // A full queue: the receiver stops reading the connection, then everything arrives.
        backpressure: Run,
        max_body: NotApplicable(SYSLOG_HAS_NO_REQUESTS),
        max_events: NotApplicable(SYSLOG_HAS_NO_REQUESTS),
        memory_budget: NotApplicable(SYSLOG_HAS_NO_REQUESTS),
    },
];

/// The API key of the `datadog` row.
const DD_KEY: &str = "contract-dd-key-7f3e";

/// The token of the `splunk_hec` row (sent as `?token=`, which its config allows).
const HEC_TOKEN: &str = "contract-hec-token-7c1e";

/// How a receiver answered one request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    /// 2xx / gRPC OK / (file) appended.
    Accepted,
    /// 503 / UNAVAILABLE, with the `Retry-After` value when HTTP.
    Busy(Option<String>),
    /// 413 / RESOURCE_EXHAUSTED.
    TooLarge,
    /// Anything else.
    Other(String),
}

/// The limits a relay's receiver gets.
#[derive(Clone, Copy, Default)]
struct Limits {
    /// `max_body_size` / `max_request_size`, and `max_events_per_request`.
    request: Option<(&'static str, usize)>,
}

/// One relay for one case: its ports and directory.
struct Relay {
    relay: Siemrelay,
    broker: Option<Tansu>,
    http: u16,
    grpc: u16,
    holder: u16,
    tailed: PathBuf,
}

impl Ingress {
    fn receiver(
        self,
        http: u16,
        grpc: u16,
        tailed: &Path,
        broker: Option<&Tansu>,
        limits: Limits,
    ) -> (String, String) {
        let (size, events) = match limits.request {
            Some((size, events)) => (size.to_string(), events.to_string()),
            None => ("10MiB".into(), "10000".into()),
        };
        match self {
            Ingress::Webhook => (
                format!(
                    "  webhook: {{ endpoint: \"127.0.0.1:{http}\", max_body_size: {size}, max_events_per_request: {events} }}"
                ),
                "webhook".into(),
            ),
            Ingress::OtlpHttp | Ingress::OtlpGrpc => {
                let limits = format!("max_request_size: {size}, max_events_per_request: {events}");
                (
                    format!(
                        "  otlp:\n    protocols:\n      http: {{ endpoint: \"127.0.0.1:{http}\", {limits} }}\n      grpc: {{ endpoint: \"127.0.0.1:{grpc}\", {limits} }}"
                    ),
                    "otlp".into(),
                )
            }
            Ingress::Datadog => (
                format!(
                    "  datadog: {{ endpoint: \"127.0.0.1:{http}\", api_keys: [{DD_KEY}], max_body_size: {size}, max_events_per_request: {events} }}"
                ),
                "datadog".into(),
            ),
            Ingress::Elasticsearch => (
                format!(
                    "  elasticsearch: {{ endpoint: \"127.0.0.1:{http}\", max_body_size: {size}, max_events_per_request: {events} }}"
                ),
                "elasticsearch".into(),
            ),
            Ingress::File => (
                format!(
                    "  file/app:\n    include: [\"{}\"]\n    start_at: beginning\n    poll_interval: 50ms\n    max_batch: 50",
                    tailed.display()
                ),
                "file/app".into(),
            ),
            Ingress::SplunkHec => (
                format!(
                    "  splunk_hec: {{ endpoint: \"127.0.0.1:{http}\", tokens: [{{ token: {HEC_TOKEN} }}], allow_query_token: true, max_body_size: {size}, max_events_per_request: {events} }}"
                ),
                "splunk_hec".into(),
            ),
            Ingress::Kafka => (
                format!(
                    "  kafka:\n    brokers: [\"{}\"]\n    topics: [{TOPIC}]\n    group_id: {GROUP}\n    commit: after_queue\n    max_batch_events: 50",
                    broker.map(Tansu::bootstrap).unwrap_or_default()
                ),
                "kafka".into(),
            ),
            Ingress::Syslog => (
                format!(
                    "  syslog:\n    protocols:\n      tcp: {{ endpoint: \"127.0.0.1:{http}\" }}\n    mapping: {{ event_id: attributes.externalId }}"
                ),
                "syslog".into(),
            ),
        }
    }

    /// Sends one request of events with these ids (each padded to about `pad` bytes).
    async fn send(self, relay: &Relay, ids: &[String], pad: usize) -> Answer {
        let padding = "x".repeat(pad);
        match self {
            Ingress::Webhook => {
                let body: String = ids
                    .iter()
                    .map(|id| {
                        format!(
                            "{{\"event_id\":\"{id}\",\"event_type\":\"contract\",\"severity\":\"high\",\"summary\":\"{padding}\"}}\n"
                        )
                    })
                    .collect();
                post(
                    relay.http,
                    "/v1/events",
                    "application/x-ndjson",
                    body.into_bytes(),
                )
                .await
            }
            Ingress::OtlpHttp => {
                let records: Vec<String> = ids
                    .iter()
                    .map(|id| {
                        format!(
                            r#"{{"timeUnixNano":"1732000000000000000","severityNumber":17,"body":{{"stringValue":"{padding}"}},"attributes":[{{"key":"event.id","value":{{"stringValue":"{id}"}}}}]}}"#
                        )
                    })
                    .collect();
                let body = format!(
                    r#"{{"resourceLogs":[{{"resource":{{"attributes":[]}},"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
                    records.join(",")
                );
                post(
                    relay.http,
                    "/v1/logs",
                    "application/json",
                    body.into_bytes(),
                )
                .await
            }
            Ingress::OtlpGrpc => grpc_export(relay, ids, &padding),
            Ingress::SplunkHec => {
                let body: String = ids
                    .iter()
                    .map(|id| {
                        format!(
                            "{{\"time\":1732000000.5,\"host\":\"h\",\"event\":{{\"event_id\":\"{id}\",\"event_type\":\"contract\",\"severity\":\"high\",\"summary\":\"{padding}\"}}}}"
                        )
                    })
                    .collect();
                post(
                    relay.http,
                    &format!("/services/collector/event?token={HEC_TOKEN}"),
                    "application/json",
                    body.into_bytes(),
                )
                .await
            }
            Ingress::Datadog => {
                let logs: Vec<String> = ids
                    .iter()
                    .map(|id| {
                        format!(
                            "{{\"event_id\":\"{id}\",\"ddsource\":\"contract\",\"status\":\"error\",\"message\":\"{padding}\"}}"
                        )
                    })
                    .collect();
                post_with(
                    relay.http,
                    "/api/v2/logs",
                    &[("content-type", "application/json"), ("dd-api-key", DD_KEY)],
                    format!("[{}]", logs.join(",")).into_bytes(),
                )
                .await
            }
            Ingress::Elasticsearch => {
                let body: String = ids
                    .iter()
                    .map(|id| {
                        format!(
                            "{{\"create\":{{\"_index\":\"contract\",\"_id\":\"{id}\"}}}}\n{{\"event_type\":\"contract\",\"message\":\"{padding}\"}}\n"
                        )
                    })
                    .collect();
                post_with(
                    relay.http,
                    "/_bulk",
                    &[("content-type", "application/x-ndjson")],
                    body.into_bytes(),
                )
                .await
            }
            Ingress::File => {
                let lines: String = ids
                    .iter()
                    .map(|id| {
                        format!(
                            "{{\"event_id\":\"{id}\",\"event_type\":\"contract\",\"summary\":\"{padding}\"}}\n"
                        )
                    })
                    .collect();
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&relay.tailed)
                    .expect("open the tailed file");
                std::io::Write::write_all(&mut file, lines.as_bytes()).expect("append lines");
                Answer::Accepted
            }
            Ingress::Kafka => {
                let lines: String = ids
                    .iter()
                    .map(|id| {
                        format!(
                            "{{\"event_id\":\"{id}\",\"event_type\":\"contract\",\"summary\":\"{padding}\"}}\n"
                        )
                    })
                    .collect();
                let bootstrap = relay
                    .broker
                    .as_ref()
                    .map(Tansu::bootstrap)
                    .unwrap_or_default();
                // One record per batch: see kafka_client.py (a tansu limitation, not Kafka's).
                kafka_client(
                    &["produce", &bootstrap, TOPIC, "one-per-batch"],
                    lines.as_bytes(),
                );
                Answer::Accepted
            }
            Ingress::Syslog => {
                let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", relay.http))
                    .await
                    .expect("connect the syslog receiver");
                let mut bytes = Vec::new();
                for id in ids {
                    let message = format!(
                        "<134>1 2026-11-20T09:00:00.000Z fw-1 contract - contract - CEF:0|V|P|1|contract|{padding}|8|externalId={id}"
                    );
                    bytes.extend_from_slice(format!("{} {message}", message.len()).as_bytes());
                }
                stream.write_all(&bytes).await.expect("send syslog");
                stream.shutdown().await.expect("close the syslog stream");
                Answer::Accepted
            }
        }
    }
}

async fn post(port: u16, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
    post_with(port, path, &[("content-type", content_type)], body).await
}

/// Posts with these headers. An Elasticsearch bulk answer (200 with `errors`) counts as
/// accepted when no item failed and as busy when its items got 429; a whole-request 429 (the
/// memory budget) is busy too.
async fn post_with(port: u16, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the request completes");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if path == "/_bulk" && status == 200 {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let statuses: Vec<u64> = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_object()?.values().next()?["status"].as_u64())
            .collect();
        return match (body["errors"].as_bool(), statuses.as_slice()) {
            (Some(false), _) => Answer::Accepted,
            (Some(true), items) if !items.is_empty() && items.iter().all(|s| *s == 429) => {
                Answer::Busy(None)
            }
            _ => Answer::Other(format!("bulk answer {body}")),
        };
    }
    match status {
        200..=299 => Answer::Accepted,
        503 | 429 => Answer::Busy(retry_after),
        413 => Answer::TooLarge,
        other => Answer::Other(format!(
            "HTTP {other}: {}",
            response.text().await.unwrap_or_default()
        )),
    }
}

fn string(text: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(text.into())),
    })
}

/// One `LogsService/Export` call with Google's gRPC client (tests/python/otlp_raw_grpc.py).
fn grpc_export(relay: &Relay, ids: &[String], padding: &str) -> Answer {
    let records = ids
        .iter()
        .map(|id| LogRecord {
            time_unix_nano: 1_732_000_000_000_000_000,
            severity_number: 17,
            body: string(padding),
            attributes: vec![KeyValue {
                key: "event.id".into(),
                value: string(id),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), request.encode_to_vec()).expect("write the request");
    let output = std::process::Command::new(python())
        .arg(repo().join("tests/python/otlp_raw_grpc.py"))
        .args(["--endpoint", &format!("127.0.0.1:{}", relay.grpc), "--file"])
        .arg(file.path())
        .output()
        .expect("run otlp_raw_grpc.py");
    let code = String::from_utf8_lossy(&output.stdout).trim().to_string();
    match code.as_str() {
        "OK" => Answer::Accepted,
        "UNAVAILABLE" => Answer::Busy(None),
        "RESOURCE_EXHAUSTED" => Answer::TooLarge,
        other => Answer::Other(format!(
            "gRPC {other}: {}",
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

const TOPIC: &str = "contract-in";
const GROUP: &str = "contract";

/// Runs tests/python/kafka_client.py (confluent-kafka) with `args`, feeding `stdin`; returns its
/// stdout.
fn kafka_client(args: &[&str], stdin: &[u8]) -> String {
    let mut child = std::process::Command::new(python())
        .arg(repo().join("tests/python/kafka_client.py"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kafka_client.py");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stdin)
        .expect("feed kafka_client.py");
    let output = child.wait_with_output().expect("kafka_client.py output");
    assert!(
        output.status.success(),
        "kafka_client.py {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Reads what a receiver has acknowledged (checkpoint bytes, committed records).
type Acknowledged = fn(&Relay) -> u64;

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect()
}

/// The config of one case: the receiver under test, a `webhook/holder` (to hold the memory
/// budget), and a `file` exporter writing to `./out/events.ndjson` with `queue`.
fn config(
    ingress: Ingress,
    ports: (u16, u16, u16),
    tailed: &Path,
    broker: Option<&Tansu>,
    queue: &str,
    limits: Limits,
    service: &str,
) -> String {
    let (http, grpc, holder) = ports;
    let (receiver, id) = ingress.receiver(http, grpc, tailed, broker, limits);
    format!(
        r#"
receivers:
{receiver}
  webhook/holder: {{ endpoint: "127.0.0.1:{holder}" }}
exporters:
  file: {{ path: "./out/events.ndjson", queue: {queue}, retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 1h }} }}
service:
  shutdown_timeout: 10s
{service}
  pipelines:
    contract: {{ receivers: ["{id}", webhook/holder], processors: [], exporters: [file] }}
"#
    )
}

impl Relay {
    /// Starts a relay whose output directory is blocked.
    fn start(ingress: Ingress, queue: &str, limits: Limits, service: &str) -> Relay {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("out"), b"blocked").expect("block the output");
        let tailed = dir.path().join("app.log");
        std::fs::write(&tailed, b"").expect("create the tailed file");
        let ports = (free_port(), free_port(), free_port());
        let broker = (ingress == Ingress::Kafka).then(|| {
            let broker = Tansu::start();
            broker.create_topic(TOPIC, 1);
            broker
        });
        let config = config(
            ingress,
            ports,
            &tailed,
            broker.as_ref(),
            queue,
            limits,
            service,
        );
        let mut relay = Siemrelay::start_in(dir, &config, &[], &[]);
        relay.wait_ready(([127, 0, 0, 1], ports.2).into());
        if matches!(
            ingress,
            Ingress::Webhook
                | Ingress::OtlpHttp
                | Ingress::OtlpGrpc
                | Ingress::Datadog
                | Ingress::Elasticsearch
                | Ingress::SplunkHec
                | Ingress::Syslog
        ) {
            relay.wait_ready(([127, 0, 0, 1], ports.0).into());
        }
        if matches!(ingress, Ingress::OtlpGrpc | Ingress::OtlpHttp) {
            relay.wait_ready(([127, 0, 0, 1], ports.1).into());
        }
        Relay {
            relay,
            broker,
            http: ports.0,
            grpc: ports.1,
            holder: ports.2,
            tailed,
        }
    }

    fn unblock(&self) {
        siemrelay_e2e::intake::unblock_out(&self.relay);
    }

    /// Deliveries per event id in the output.
    fn delivered(&self) -> HashMap<String, u32> {
        let mut counts = HashMap::new();
        for line in read_ndjson_files(&self.relay.dir().join("out"), "events") {
            if let Some(id) = line["event_id"].as_str() {
                *counts.entry(id.to_string()).or_insert(0) += 1;
            }
        }
        counts
    }

    async fn wait_delivered(&self, ids: &[String], timeout: Duration) -> HashMap<String, u32> {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = self.delivered();
            if ids.iter().all(|id| counts.contains_key(id)) || Instant::now() > deadline {
                return counts;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The Kafka receiver's committed offsets, summed (its acknowledgement).
    fn committed(&self) -> u64 {
        let bootstrap = self
            .broker
            .as_ref()
            .map(Tansu::bootstrap)
            .unwrap_or_default();
        let output = kafka_client(&["committed", &bootstrap, TOPIC, GROUP], b"");
        serde_json::from_str::<serde_json::Value>(&output).unwrap_or_default()["committed"]
            .as_u64()
            .unwrap_or(0)
    }

    /// The file receiver's committed offset (its acknowledgement), 0 before the first.
    fn checkpoint(&self) -> u64 {
        let path = self
            .relay
            .dir()
            .join("siemrelay-data/receivers/file__app/checkpoints.json");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        value["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["offset"].as_u64())
            .max()
            .unwrap_or(0)
    }
}

fn assert_once(counts: &HashMap<String, u32>, ids: &[String], what: &str, relay: &Relay) {
    let wrong: Vec<(&String, u32)> = ids
        .iter()
        .map(|id| (id, counts.get(id).copied().unwrap_or(0)))
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: {} of {} events not delivered exactly once: {:?}\nlogs:\n{}",
        wrong.len(),
        ids.len(),
        &wrong[..wrong.len().min(5)],
        relay.relay.logs()
    );
}

/// Acknowledged, then SIGKILL at once, then a restart on the same directory: every event of
/// the acknowledged request arrives.
async fn ack_after_durable_queue(ingress: Ingress) {
    let relay = Relay::start(ingress, "{ type: disk }", Limits::default(), "");
    let sent = ids(40);
    let answer = ingress.send(&relay, &sent, 40).await;
    assert_eq!(answer, Answer::Accepted, "{ingress:?}");
    // The file receiver's checkpoint and the Kafka receiver's commit are their
    // acknowledgements: kill as soon as they cover the events.
    let acknowledged: Option<(u64, Acknowledged)> = match ingress {
        Ingress::File => Some((
            std::fs::metadata(&relay.tailed).map_or(0, |m| m.len()),
            Relay::checkpoint,
        )),
        Ingress::Kafka => Some((sent.len() as u64, Relay::committed)),
        _ => None,
    };
    if let Some((all, acknowledged)) = acknowledged {
        let deadline = Instant::now() + Duration::from_secs(30);
        while acknowledged(&relay) < all {
            assert!(
                Instant::now() < deadline,
                "{ingress:?}: the acknowledgement never covered the events; logs:\n{}",
                relay.relay.logs()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let Relay {
        relay,
        broker,
        http,
        grpc,
        holder,
        tailed,
    } = relay;
    let config = std::fs::read_to_string(relay.dir().join("siemrelay.yaml")).expect("config");
    let dir = relay.into_dir();
    std::fs::remove_file(dir.path().join("out")).expect("unblock");
    std::fs::create_dir(dir.path().join("out")).expect("unblock");
    let mut restarted = Siemrelay::start_in(dir, &config, &[], &[]);
    restarted.wait_ready(([127, 0, 0, 1], holder).into());
    let relay = Relay {
        relay: restarted,
        broker,
        http,
        grpc,
        holder,
        tailed,
    };
    let counts = relay.wait_delivered(&sent, Duration::from_secs(30)).await;
    let missing = sent.iter().filter(|id| !counts.contains_key(*id)).count();
    assert_eq!(
        missing,
        0,
        "{ingress:?}: {missing} acknowledged events lost by a SIGKILL right after the acknowledgement; logs:\n{}",
        relay.relay.logs()
    );
}

/// A full queue: 503 + Retry-After / UNAVAILABLE / the file receiver pauses; nothing of an
/// accepted request is lost once the output is back, nothing refused is delivered.
async fn backpressure(ingress: Ingress) {
    let relay = Relay::start(
        ingress,
        "{ type: memory, max_events: 200 }",
        Limits::default(),
        "",
    );
    if matches!(ingress, Ingress::File | Ingress::Kafka | Ingress::Syslog) {
        // 300 events, 200 fit: the receiver pauses (the file receiver's checkpoint stops at
        // line 200; the Kafka receiver says so and its commit stays within the 200), and once
        // there is room the rest is read.
        let sent = ids(300);
        ingress.send(&relay, &sent, 40).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let paused = || match ingress {
            Ingress::File => {
                let total = std::fs::metadata(&relay.tailed).map_or(0, |m| m.len());
                relay.checkpoint() >= total / 300 * 200
            }
            Ingress::Syslog => relay.relay.logs().contains("syslog reading paused"),
            _ => relay.relay.logs().contains("partitions paused"),
        };
        while !paused() {
            assert!(
                Instant::now() < deadline,
                "{ingress:?}: the receiver never paused on a full queue; logs:\n{}",
                relay.relay.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (acknowledged, at_most) = match ingress {
            // TCP syslog acknowledges nothing: the pause above is what there is to see.
            Ingress::Syslog => (0, 0),
            Ingress::File => (
                relay.checkpoint(),
                std::fs::metadata(&relay.tailed).map_or(0, |m| m.len()) / 300 * 200,
            ),
            _ => (relay.committed(), 200),
        };
        assert!(
            acknowledged <= at_most,
            "{ingress:?}: acknowledged {acknowledged} with room for {at_most}: events past a full queue were acknowledged"
        );
        relay.unblock();
        let counts = relay.wait_delivered(&sent, Duration::from_secs(60)).await;
        assert_once(&counts, &sent, "after a pause", &relay);
        return;
    }
    let accepted = ids(200);
    let answer = ingress.send(&relay, &accepted, 40).await;
    assert_eq!(answer, Answer::Accepted, "{ingress:?}: the first 200 fit");
    let refused = ids(10);
    let answer = ingress.send(&relay, &refused, 40).await;
    match (&answer, ingress) {
        (Answer::Busy(Some(seconds)), _) if seconds.parse::<u64>().is_ok_and(|s| s >= 1) => {}
        (Answer::Busy(None), Ingress::OtlpGrpc | Ingress::Elasticsearch) => {}
        _ => panic!("{ingress:?}: a full queue answered {answer:?}"),
    }
    relay.unblock();
    let counts = relay
        .wait_delivered(&accepted, Duration::from_secs(30))
        .await;
    assert_once(
        &counts,
        &accepted,
        "accepted before the queue was full",
        &relay,
    );
    let leaked = refused.iter().filter(|id| counts.contains_key(*id)).count();
    assert_eq!(leaked, 0, "{ingress:?}: refused events were queued");
}

/// `max_body_size` / `max_request_size` 4 KiB and `max_events_per_request` 50.
async fn request_limits(ingress: Ingress, body: bool) {
    let limits = Limits {
        request: Some(if body {
            ("4KiB", 10_000)
        } else {
            ("10MiB", 50)
        }),
    };
    let relay = Relay::start(ingress, "{ type: memory }", limits, "");
    relay.unblock();
    let (refused, pad) = if body { (ids(10), 1000) } else { (ids(51), 4) };
    let answer = ingress.send(&relay, &refused, pad).await;
    assert_eq!(answer, Answer::TooLarge, "{ingress:?} body: {body}");
    let fits = ids(if body { 2 } else { 50 });
    let answer = ingress.send(&relay, &fits, 4).await;
    assert_eq!(
        answer,
        Answer::Accepted,
        "{ingress:?}: a request within the limits"
    );
    let counts = relay.wait_delivered(&fits, Duration::from_secs(30)).await;
    assert_once(&counts, &fits, "within the limits", &relay);
    let leaked = refused.iter().filter(|id| counts.contains_key(*id)).count();
    assert_eq!(
        leaked, 0,
        "{ingress:?}: part of a refused request was queued"
    );
}

/// `service.memory_limit: 1MiB`: held by a slow sender → 503 + `Retry-After: 1` / UNAVAILABLE;
/// a request larger than the whole budget → 413 / RESOURCE_EXHAUSTED.
async fn memory_budget(ingress: Ingress) {
    let relay = Relay::start(
        ingress,
        "{ type: memory }",
        Limits::default(),
        "  memory_limit: 1MiB",
    );
    relay.unblock();
    let huge = ingress.send(&relay, &ids(1), 2 * 1024 * 1024).await;
    assert_eq!(
        huge,
        Answer::TooLarge,
        "{ingress:?}: larger than the budget"
    );

    // A sender on the holder announces 900 KiB and sends its body slowly: it holds the budget.
    let mut holder = tokio::net::TcpStream::connect(("127.0.0.1", relay.holder))
        .await
        .expect("connect the holder");
    holder
        .write_all(
            format!(
                "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\n\r\n",
                900 * 1024
            )
            .as_bytes(),
        )
        .await
        .expect("holder head");
    holder
        .write_all(format!("{{\"pad\":\"{}\"}}\n", "x".repeat(990)).as_bytes())
        .await
        .expect("holder body");
    let sent = ids(200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        // Until the holder's reservation is in place, a request may still get through.
        let answer = ingress.send(&relay, &sent, 200).await;
        if answer != Answer::Accepted || Instant::now() > deadline {
            break answer;
        }
    };
    match (&answer, ingress) {
        (Answer::Busy(Some(seconds)), _) if seconds == "1" => {}
        (Answer::Busy(None), Ingress::OtlpGrpc) => {}
        _ => panic!("{ingress:?}: with the budget held the answer was {answer:?}"),
    }
    drop(holder);
}

async fn run(row: &Row) {
    let cases: [(&str, Plan); 5] = [
        ("ack_after_durable_queue", row.ack_after_durable_queue),
        ("backpressure", row.backpressure),
        ("max_body", row.max_body),
        ("max_events", row.max_events),
        ("memory_budget", row.memory_budget),
    ];
    for (name, plan) in cases {
        let started = Instant::now();
        match plan {
            NotApplicable(why) => {
                eprintln!("{:?} {name}: not applicable: {why}", row.ingress);
                continue;
            }
            Plan::KnownFailure(finding) => {
                panic!(
                    "{:?} {name}: known failures are listed in exporter rows only ({finding})",
                    row.ingress
                )
            }
            Run => {}
        }
        match name {
            "ack_after_durable_queue" => ack_after_durable_queue(row.ingress).await,
            "backpressure" => backpressure(row.ingress).await,
            "max_body" => request_limits(row.ingress, true).await,
            "max_events" => request_limits(row.ingress, false).await,
            _ => memory_budget(row.ingress).await,
        }
        eprintln!("{:?} {name}: ok ({:.1?})", row.ingress, started.elapsed());
    }
}

fn row(ingress: Ingress) -> &'static Row {
    TABLE
        .iter()
        .find(|row| row.ingress == ingress)
        .expect("a row per ingress")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook() {
    run(row(Ingress::Webhook)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http() {
    run(row(Ingress::OtlpHttp)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc() {
    run(row(Ingress::OtlpGrpc)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file() {
    run(row(Ingress::File)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka() {
    run(row(Ingress::Kafka)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog() {
    run(row(Ingress::Datadog)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch() {
    run(row(Ingress::Elasticsearch)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec() {
    run(row(Ingress::SplunkHec)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog() {
    run(row(Ingress::Syslog)).await;
}
