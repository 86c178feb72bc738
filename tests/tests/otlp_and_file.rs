//! Issue 3 acceptance with the real binary.
//!
//! OTLP: the official OpenTelemetry Python SDK (tests/python/otlp_send.py) over gRPC and HTTP,
//! gzip on and off, 1,000 log records each, all arriving at the file exporter with their mapped
//! fields; hand-made OTLP/HTTP requests in JSON and protobuf, gzip and plain; a malformed
//! protobuf gets 400 and the server keeps serving; a full pipeline answers 503 / UNAVAILABLE and
//! the SDK's retries then deliver everything.
//!
//! File tail: appends while running (a line written in two pieces arrives whole), rename
//! rotation mid-stream, copy-truncate, and a 100,000-line file across a SIGTERM restart (every
//! line exactly once) and a SIGKILL restart with a disk queue (no line lost, duplicates bounded
//! by one receiver batch plus one exporter request).

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{Value, json};
use siemrelay_e2e::{Siemrelay, free_port};
use siemrelay_e2e::{python, repo as workspace};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// The complete lines of the NDJSON file at `path` (a line still being written is left out).
fn complete_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read(path).unwrap_or_default();
    let end = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    String::from_utf8_lossy(&text[..end])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: bad line {l:?}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Number of complete lines in `path` (cheap: no parsing).
fn line_count(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |text| text.iter().filter(|b| **b == b'\n').count())
}

fn stop(relay: &mut Siemrelay) {
    let status = relay.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit after SIGTERM: {status:?}\n{}",
        relay.logs()
    );
}

// ---------------------------------------------------------------------------------------------
// OTLP
// ---------------------------------------------------------------------------------------------

struct OtlpPorts {
    grpc: u16,
    http: u16,
}

fn otlp_config(ports: &OtlpPorts, exporter_extra: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:{grpc}" }}
      http: {{ endpoint: "127.0.0.1:{http}" }}
exporters:
  file: {{ path: "./out/events.ndjson" {exporter_extra} }}
service:
  shutdown_timeout: 20s
  pipelines:
    logs: {{ receivers: [otlp], exporters: [file] }}
"#,
        grpc = ports.grpc,
        http = ports.http
    )
}

fn start_otlp(exporter_extra: &str, dir: tempfile::TempDir) -> (Siemrelay, OtlpPorts) {
    let ports = OtlpPorts {
        grpc: free_port(),
        http: free_port(),
    };
    let mut relay = Siemrelay::start_in(dir, &otlp_config(&ports, exporter_extra), &[], &[]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], ports.grpc)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], ports.http)));
    (relay, ports)
}

/// The Python SDK exporter, started (stdout/stderr go to files in `dir`).
fn spawn_python(
    protocol: &str,
    ports: &OtlpPorts,
    gzip: bool,
    count: usize,
    timeout_s: u32,
    dir: &Path,
) -> std::process::Child {
    let endpoint = match protocol {
        "grpc" => format!("http://127.0.0.1:{}", ports.grpc),
        _ => format!("http://127.0.0.1:{}/v1/logs", ports.http),
    };
    let stdout = std::fs::File::create(dir.join("python.out")).expect("python stdout file");
    let stderr = std::fs::File::create(dir.join("python.err")).expect("python stderr file");
    let mut command = std::process::Command::new(python());
    command
        .arg(workspace().join("tests/python/otlp_send.py"))
        .args([
            "--protocol",
            protocol,
            "--endpoint",
            &endpoint,
            "--count",
            &count.to_string(),
        ])
        .args(["--timeout", &timeout_s.to_string()])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    if gzip {
        command.arg("--gzip");
    }
    command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()))
}

/// Waits for the Python sender; panics with its output unless it exited 0.
fn wait_python(mut child: std::process::Child, what: &str, dir: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: otlp_send.py did not finish within {timeout:?}:\n{}",
                python_output(dir)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "{what}: otlp_send.py failed ({status}):\n{}",
        python_output(dir)
    );
}

fn python_output(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!(
        "stdout:\n{}\nstderr:\n{}",
        read("python.out"),
        read("python.err")
    )
}

/// The event id otlp_send.py gives record `i`.
fn python_event_id(i: u64) -> String {
    format!("0192f0c4-8a52-7c3e-9d4b-{i:012x}")
}

/// Checks the Python SDK's records among `events`: each of `0..count` exactly once, with the
/// mapped fields intact.
fn check_python_records(events: &[Value], count: u64, what: &str) {
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for event in events
        .iter()
        .filter(|e| e["resource"]["service.name"] == "python-sdk")
    {
        let a = &event["attributes"];
        let seq = a["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: no integer seq in {event}"));
        *seen.entry(seq).or_default() += 1;
        let expected = json!({
            "event_id": python_event_id(seq),
            "event_type": "python.login",
            "severity": "WARN",
            "severity_number": 13,
            "summary": format!("python record {seq}"),
            "source": "python-sdk",
        });
        for (field, value) in expected.as_object().expect("object") {
            assert_eq!(
                &event[field], value,
                "{what}: record {seq} field {field}: {event}"
            );
        }
        assert_eq!(a["user"], format!("user-{seq}"), "{what}: {event}");
        assert_eq!(a["event.name"], "python.login", "{what}: {event}");
        assert_eq!(a["event.id"], python_event_id(seq), "{what}: {event}");
        assert!(
            a["ratio"].is_f64() && a["ratio"] == 0.5,
            "{what}: ratio stays a float: {event}"
        );
        assert_eq!(a["tags"], json!(["a", "b"]), "{what}: {event}");
        assert_eq!(a["otel.scope.name"], "siemrelay.python", "{what}: {event}");
        assert_eq!(a["otel.scope.version"], "2.0", "{what}: {event}");
        assert_eq!(
            event["resource"]["host.name"], "test-host",
            "{what}: {event}"
        );
        assert_eq!(
            event["resource"]["telemetry.sdk.language"], "python",
            "{what}: {event}"
        );
        assert!(
            event["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{what}: {event}"
        );
    }
    let missing: Vec<u64> = (0..count).filter(|i| !seen.contains_key(i)).collect();
    let repeated: Vec<(&u64, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} records missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        repeated.is_empty(),
        "{what}: records written more than once, e.g. {:?}",
        &repeated[..repeated.len().min(10)]
    );
    assert_eq!(seen.len() as u64, count, "{what}: no unexpected seq values");
}

fn python_round_trip(protocol: &str, gzip: bool) {
    let (mut relay, ports) = start_otlp("", tempfile::tempdir().expect("tempdir"));
    let what = format!("{protocol} gzip={gzip}");
    let child = spawn_python(protocol, &ports, gzip, 1000, 10, relay.dir());
    wait_python(child, &what, relay.dir(), Duration::from_secs(60));
    // The SDK got success for every record, so they are all queued: a clean stop writes them.
    stop(&mut relay);
    let events = complete_lines(&relay.dir().join("out/events.ndjson"));
    assert_eq!(events.len(), 1000, "{what}: lines written");
    check_python_records(&events, 1000, &what);
}

#[test]
fn python_sdk_grpc_plain() {
    python_round_trip("grpc", false);
}

#[test]
fn python_sdk_grpc_gzip() {
    python_round_trip("grpc", true);
}

#[test]
fn python_sdk_http_plain() {
    python_round_trip("http", false);
}

#[test]
fn python_sdk_http_gzip() {
    python_round_trip("http", true);
}

const TIME_NANOS: u64 = 1_732_000_000_123_456_789;
const TIME_TEXT: &str = "2024-11-19T07:06:40.123456789Z";

fn hand_made_id(label: usize, i: usize) -> String {
    format!("6f1e2d3c-4b5a-4789-8abc-{:06x}{i:06x}", label)
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(text: &str) -> any_value::Value {
    any_value::Value::StringValue(text.into())
}

/// A protobuf request of `n` records tagged `label`.
fn protobuf_request(label: usize, n: usize) -> ExportLogsServiceRequest {
    let records = (0..n)
        .map(|i| LogRecord {
            time_unix_nano: TIME_NANOS,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(AnyValue {
                value: Some(string(&format!("hand-made {label} {i}"))),
            }),
            attributes: vec![
                kv("event.id", string(&hand_made_id(label, i))),
                kv("event.name", string("hand.made")),
                kv("seq", any_value::Value::IntValue(i as i64)),
                kv("ratio", any_value::Value::DoubleValue(0.25)),
                kv("flag", any_value::Value::BoolValue(true)),
                kv(
                    "list",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(string("x")),
                            },
                            AnyValue {
                                value: Some(any_value::Value::IntValue(2)),
                            },
                        ],
                    }),
                ),
                kv(
                    "nested",
                    any_value::Value::KvlistValue(KeyValueList {
                        values: vec![kv("inner", string("v"))],
                    }),
                ),
            ],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", string("hand-made")),
                    kv("label", any_value::Value::IntValue(label as i64)),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "e2e".into(),
                    version: "1".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The same request in OTLP/JSON, written by hand per the OTLP spec.
fn json_request(label: usize, n: usize) -> String {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "timeUnixNano": TIME_NANOS.to_string(),
                "severityNumber": 17,
                "severityText": "ERROR",
                "body": {"stringValue": format!("hand-made {label} {i}")},
                "attributes": [
                    {"key": "event.id", "value": {"stringValue": hand_made_id(label, i)}},
                    {"key": "event.name", "value": {"stringValue": "hand.made"}},
                    {"key": "seq", "value": {"intValue": i.to_string()}},
                    {"key": "ratio", "value": {"doubleValue": 0.25}},
                    {"key": "flag", "value": {"boolValue": true}},
                    {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "x"}, {"intValue": "2"}]}}},
                    {"key": "nested", "value": {"kvlistValue": {"values": [{"key": "inner", "value": {"stringValue": "v"}}]}}},
                ],
            })
        })
        .collect();
    json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "hand-made"}},
            {"key": "label", "value": {"intValue": label.to_string()}},
        ]},
        "scopeLogs": [{"scope": {"name": "e2e", "version": "1"}, "logRecords": records}],
    }]})
    .to_string()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("in memory");
    encoder.finish().expect("in memory")
}

async fn post_logs(
    port: u16,
    body: Vec<u8>,
    content_type: &str,
    gzipped: bool,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/logs"))
        .header("content-type", content_type)
        .body(body);
    if gzipped {
        request = request.header("content-encoding", "gzip");
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn hand_made_http_json_and_protobuf_gzip_and_plain() {
    let (mut relay, ports) = start_otlp("", tempfile::tempdir().expect("tempdir"));
    // label: 0 protobuf plain, 1 protobuf gzip, 2 JSON plain, 3 JSON gzip.
    for label in 0..4 {
        let protobuf = label < 2;
        let gzipped = label % 2 == 1;
        let (body, content_type) = if protobuf {
            (
                protobuf_request(label, 25).encode_to_vec(),
                "application/x-protobuf",
            )
        } else {
            (json_request(label, 25).into_bytes(), "application/json")
        };
        let body = if gzipped { gzip(&body) } else { body };
        let response = post_logs(ports.http, body, content_type, gzipped).await;
        assert_eq!(response.status(), 200, "label {label}");
        let reply_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            reply_type.starts_with(content_type),
            "label {label}: reply content type {reply_type}"
        );
        let reply = response.bytes().await.expect("reply body");
        if protobuf {
            let decoded =
                opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::decode(
                    reply.as_ref(),
                )
                .expect("protobuf reply");
            assert!(
                decoded
                    .partial_success
                    .is_none_or(|p| p.rejected_log_records == 0),
                "label {label}"
            );
        } else {
            assert_eq!(
                serde_json::from_slice::<Value>(&reply).ok(),
                Some(json!({})),
                "label {label}"
            );
        }
    }

    // A malformed protobuf is refused with 400 and nothing of it is kept ...
    let mut broken = protobuf_request(9, 5).encode_to_vec();
    broken.truncate(broken.len() - 7);
    broken.extend_from_slice(&[0xff, 0xff, 0xff]);
    let response = post_logs(ports.http, broken, "application/x-protobuf", false).await;
    assert_eq!(response.status(), 400);
    let response = post_logs(
        ports.http,
        b"\x0a\x05garbage-that-is-not-otlp".to_vec(),
        "application/x-protobuf",
        false,
    )
    .await;
    assert_eq!(response.status(), 400);
    // ... and the server keeps serving.
    let response = post_logs(
        ports.http,
        protobuf_request(4, 25).encode_to_vec(),
        "application/x-protobuf",
        false,
    )
    .await;
    assert_eq!(response.status(), 200);

    stop(&mut relay);
    let events = complete_lines(&relay.dir().join("out/events.ndjson"));
    assert_eq!(
        events.len(),
        125,
        "5 good requests of 25; nothing of the malformed ones"
    );
    let mut by_label: HashMap<u64, usize> = HashMap::new();
    for event in &events {
        let label = event["resource"]["label"].as_u64().expect("label");
        *by_label.entry(label).or_default() += 1;
        let seq = event["attributes"]["seq"].as_u64().expect("seq") as usize;
        let expected = json!({
            "event_id": hand_made_id(label as usize, seq),
            "event_type": "hand.made",
            "timestamp": TIME_TEXT,
            "severity": "ERROR",
            "severity_number": 17,
            "summary": format!("hand-made {label} {seq}"),
            "source": "hand-made",
        });
        for (field, value) in expected.as_object().expect("object") {
            assert_eq!(
                &event[field], value,
                "label {label} record {seq} field {field}: {event}"
            );
        }
        let a = &event["attributes"];
        assert!(a["ratio"].is_f64() && a["ratio"] == 0.25, "{event}");
        assert_eq!(a["flag"], true, "{event}");
        assert_eq!(a["list"], json!(["x", 2]), "{event}");
        assert_eq!(a["nested"], json!({"inner": "v"}), "{event}");
        assert_eq!(a["otel.scope.name"], "e2e", "{event}");
        assert_eq!(event["resource"]["service.name"], "hand-made", "{event}");
    }
    for label in [0, 1, 2, 3, 4] {
        assert_eq!(
            by_label.get(&label),
            Some(&25),
            "label {label}: {by_label:?}"
        );
    }
}

/// The file exporter's output directory is a regular file: every write fails and the tiny
/// queue (200 events) fills. A hand-made request gets 503 + Retry-After; the Python SDK gets
/// 503 / UNAVAILABLE, retries, and once the directory is back everything arrives once.
fn full_pipeline_then_retry(protocol: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("out"), b"blocked").expect("block the output directory");
    let exporter_extra = ", queue: { max_events: 200 }, retry: { initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 1h }";
    let (mut relay, ports) = start_otlp(exporter_extra, dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // 200 records fill the 200-event queue (a queue never takes more than its max_events).
    let response = runtime.block_on(post_logs(
        ports.http,
        protobuf_request(7, 200).encode_to_vec(),
        "application/x-protobuf",
        false,
    ));
    assert_eq!(
        response.status(),
        200,
        "the first batch fits the empty queue"
    );
    let response = runtime.block_on(post_logs(
        ports.http,
        json_request(8, 10).into_bytes(),
        "application/json",
        false,
    ));
    assert_eq!(response.status(), 503, "a full pipeline answers 503");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "503 carries Retry-After in seconds: {retry_after:?}"
    );

    let child = spawn_python(protocol, &ports, false, 1000, 30, relay.dir());
    // Wait until the SDK reports that it was pushed back and is retrying, then unblock.
    let err_path = relay.dir().join("python.err");
    let pushed_back = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&err_path).is_ok_and(|t| t.contains("Transient error"))
    });
    assert!(
        pushed_back,
        "{protocol}: the SDK was never pushed back:\n{}",
        python_output(relay.dir())
    );
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let expected_code = if protocol == "grpc" {
        "UNAVAILABLE"
    } else {
        "Service Unavailable"
    };
    assert!(
        stderr.contains(expected_code),
        "{protocol}: the SDK saw {expected_code}:\n{stderr}"
    );
    std::fs::remove_file(relay.dir().join("out")).expect("unblock");
    std::fs::create_dir(relay.dir().join("out")).expect("unblock");
    wait_python(child, protocol, relay.dir(), Duration::from_secs(60));
    stop(&mut relay);
    let events = complete_lines(&relay.dir().join("out/events.ndjson"));
    check_python_records(&events, 1000, &format!("{protocol} after 503"));
    let hand_made = events
        .iter()
        .filter(|e| e["resource"]["label"] == 7)
        .count();
    assert_eq!(
        hand_made, 200,
        "the batch accepted while blocked is delivered once"
    );
    assert_eq!(
        events.len(),
        1200,
        "nothing else (the refused request is not written)"
    );
}

#[test]
fn full_pipeline_http_503_then_the_sdk_retry_delivers_everything() {
    full_pipeline_then_retry("http");
}

#[test]
fn full_pipeline_grpc_unavailable_then_the_sdk_retry_delivers_everything() {
    full_pipeline_then_retry("grpc");
}

// ---------------------------------------------------------------------------------------------
// File tail
// ---------------------------------------------------------------------------------------------

fn tail_config(logs: &Path, format: &str, port: u16, exporter_extra: &str) -> String {
    format!(
        r#"
receivers:
  file/app:
    include: ["{logs}/app.log"]
    format: {format}
    start_at: beginning
    poll_interval: 50ms
    max_batch: 1000
  # Only there so that the test can wait for the process to be up.
  webhook/ready: {{ endpoint: "127.0.0.1:{port}" }}
processors:
  # Exporter requests of at most 1,000 events (bounds what a disk queue replays after a kill).
  batch: {{ send_batch_size: 1000, send_batch_max_size: 1000, timeout: 50ms }}
exporters:
  file/out: {{ path: "./out/events.ndjson" {exporter_extra} }}
service:
  shutdown_timeout: 20s
  pipelines:
    tail: {{ receivers: [file/app, webhook/ready], processors: [batch], exporters: [file/out] }}
"#,
        logs = logs.display()
    )
}

/// A JSON-mode line carrying its line number.
fn json_line(n: usize) -> String {
    format!("{{\"event_type\":\"tail\",\"line\":{n},\"summary\":\"line {n}\"}}\n")
}

fn json_lines(range: std::ops::Range<usize>) -> String {
    range.map(json_line).collect()
}

/// Line numbers of the written events (JSON mode: `attributes.line`; text mode: `line N` in
/// the summary) with how often each was written.
fn delivered_lines(events: &[Value]) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for event in events {
        let n = event["attributes"]["line"].as_u64().or_else(|| {
            event["summary"]
                .as_str()
                .and_then(|s| s.strip_prefix("line "))
                .and_then(|s| s.split(' ').next())
                .and_then(|s| s.parse().ok())
        });
        let n = n.unwrap_or_else(|| panic!("no line number in {event}"));
        *counts.entry(n).or_insert(0) += 1;
    }
    counts
}

fn assert_exactly_once(counts: &BTreeMap<u64, usize>, total: u64, what: &str) {
    let missing: Vec<u64> = (0..total).filter(|n| !counts.contains_key(n)).collect();
    let repeated: Vec<(&u64, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} lines missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        repeated.is_empty(),
        "{what}: {} lines repeated, e.g. {:?}",
        repeated.len(),
        &repeated[..repeated.len().min(10)]
    );
    assert_eq!(
        counts.len() as u64,
        total,
        "{what}: unexpected line numbers"
    );
}

struct Tail {
    relay: Siemrelay,
    logs: PathBuf,
    out: PathBuf,
}

fn start_tail(format: &str, exporter_extra: &str, prepare: impl FnOnce(&Path)) -> Tail {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("logs dir");
    prepare(&logs);
    let port = free_port();
    let mut relay = Siemrelay::start_in(
        dir,
        &tail_config(&logs, format, port, exporter_extra),
        &[],
        &[],
    );
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let out = relay.dir().join("out/events.ndjson");
    Tail { relay, logs, out }
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    file.write_all(text.as_bytes()).expect("append");
}

fn wait_for_lines(tail: &Tail, n: usize, timeout: Duration) {
    assert!(
        wait_until(timeout, || line_count(&tail.out) >= n),
        "{} of {n} lines written within {timeout:?}\n{}",
        line_count(&tail.out),
        tail.relay.logs()
    );
}

#[test]
fn tail_appends_while_running_and_a_line_written_in_two_pieces_arrives_whole() {
    let mut tail = start_tail("json", "", |logs| {
        append(&logs.join("app.log"), &json_lines(0..100))
    });
    let log = tail.logs.join("app.log");
    wait_for_lines(&tail, 100, Duration::from_secs(10));
    for chunk in 1..5 {
        append(&log, &json_lines(chunk * 100..chunk * 100 + 100));
        wait_for_lines(&tail, chunk * 100 + 100, Duration::from_secs(10));
    }
    // Half a line, a pause of several polls, then the rest.
    let split = json_line(500);
    append(&log, &split[..20]);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(line_count(&tail.out), 500, "a partial line is held back");
    append(&log, &split[20..]);
    append(&log, &json_lines(501..600));
    wait_for_lines(&tail, 600, Duration::from_secs(10));
    stop(&mut tail.relay);
    let events = complete_lines(&tail.out);
    assert_exactly_once(&delivered_lines(&events), 600, "append");
    let whole = events
        .iter()
        .find(|e| e["attributes"]["line"] == 500)
        .expect("line 500");
    assert_eq!(whole["summary"], "line 500");
    assert!(whole["attributes"].get("parse_error").is_none(), "{whole}");
    assert_eq!(
        whole["attributes"]["log.file.path"],
        log.to_string_lossy().as_ref()
    );
}

#[test]
fn tail_follows_a_rename_rotation_mid_stream() {
    let mut tail = start_tail("json", "", |logs| {
        append(&logs.join("app.log"), &json_lines(0..300))
    });
    let log = tail.logs.join("app.log");
    let rotated = tail.logs.join("app.log.1");
    // The writer keeps its handle across the rename, like a logger that reopens late.
    let mut writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open log");
    writer
        .write_all(json_lines(300..500).as_bytes())
        .expect("write");
    wait_for_lines(&tail, 100, Duration::from_secs(10));
    std::fs::rename(&log, &rotated).expect("rotate");
    // Written after the rename through the old handle: lands in app.log.1 (out of the glob).
    writer
        .write_all(json_lines(500..600).as_bytes())
        .expect("write");
    drop(writer);
    append(&log, &json_lines(600..1000));
    wait_for_lines(&tail, 1000, Duration::from_secs(15));
    stop(&mut tail.relay);
    let events = complete_lines(&tail.out);
    assert_exactly_once(&delivered_lines(&events), 1000, "rename rotation");
    // The rest of the old file is sent before the new file's first lines.
    let position = |n: u64| {
        events
            .iter()
            .position(|e| e["attributes"]["line"] == n)
            .expect("line present")
    };
    assert!(
        position(599) < position(600),
        "old file finished before the new one starts"
    );
}

#[test]
fn tail_rereads_a_copy_truncated_file_from_the_start() {
    let mut tail = start_tail("json", "", |logs| {
        append(&logs.join("app.log"), &json_lines(0..500))
    });
    let log = tail.logs.join("app.log");
    wait_for_lines(&tail, 500, Duration::from_secs(10));
    std::fs::copy(&log, tail.logs.join("app.log.1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    append(&log, &json_lines(500..800));
    wait_for_lines(&tail, 800, Duration::from_secs(10));
    // Truncated again and refilled with fewer bytes than were read: read from offset 0 again.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    append(&log, &json_lines(800..810));
    wait_for_lines(&tail, 810, Duration::from_secs(10));
    stop(&mut tail.relay);
    assert_exactly_once(
        &delivered_lines(&complete_lines(&tail.out)),
        810,
        "copy-truncate",
    );
}

const BIG: usize = 100_000;

fn big_file(logs: &Path, format: &str) {
    let mut text = String::with_capacity(BIG * 60);
    for n in 0..BIG {
        if format == "json" {
            text.push_str(&json_line(n));
        } else {
            text.push_str(&format!("line {n} of the big text file\n"));
        }
    }
    std::fs::write(logs.join("app.log"), text).expect("write big file");
}

/// Waits until at least `at_least` lines are out, then stops the process (SIGTERM or SIGKILL)
/// and returns how many lines were out at that moment.
fn interrupt(tail: &mut Tail, at_least: usize, kill: bool) -> usize {
    wait_for_lines(tail, at_least, Duration::from_secs(30));
    if kill {
        tail.relay.kill();
    } else {
        stop(&mut tail.relay);
    }
    line_count(&tail.out)
}

fn restart(tail: Tail, format: &str, exporter_extra: &str) -> Tail {
    let Tail { relay, logs, out } = tail;
    let port = free_port();
    let config = tail_config(&logs, format, port, exporter_extra);
    let mut relay = Siemrelay::start_in(relay.into_dir(), &config, &[], &[]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    Tail { relay, logs, out }
}

#[test]
fn a_sigterm_restart_in_a_100k_line_file_delivers_every_line_exactly_once() {
    let mut tail = start_tail("json", "", |logs| big_file(logs, "json"));
    let before = interrupt(&mut tail, 20_000, false);
    assert!(
        before < BIG,
        "the restart happened mid-file ({before} lines out at SIGTERM)"
    );
    let mut tail = restart(tail, "json", "");
    wait_for_lines(&tail, BIG, Duration::from_secs(60));
    stop(&mut tail.relay);
    let events = complete_lines(&tail.out);
    assert_eq!(events.len(), BIG, "lines written in total");
    assert_exactly_once(&delivered_lines(&events), BIG as u64, "SIGTERM restart");
}

#[test]
fn a_sigkill_restart_in_a_100k_line_file_loses_nothing_and_repeats_little() {
    // A disk queue keeps what was acknowledged; max_batch (1,000) bounds the receiver's replay
    // and one exporter request (send_batch_size 1,000) bounds the queue's.
    let extra = ", queue: { type: disk }";
    let mut tail = start_tail("text", extra, |logs| big_file(logs, "text"));
    let before = interrupt(&mut tail, 20_000, true);
    assert!(
        before < BIG,
        "the kill happened mid-file ({before} lines out at SIGKILL)"
    );
    let mut tail = restart(tail, "text", extra);
    let complete = wait_until(Duration::from_secs(60), || {
        line_count(&tail.out) >= BIG && delivered_lines(&complete_lines(&tail.out)).len() >= BIG
    });
    assert!(
        complete,
        "{} lines out, not every line number\n{}",
        line_count(&tail.out),
        tail.relay.logs()
    );
    stop(&mut tail.relay);
    let events = complete_lines(&tail.out);
    let counts = delivered_lines(&events);
    let missing: Vec<u64> = (0..BIG as u64)
        .filter(|n| !counts.contains_key(n))
        .collect();
    assert!(
        missing.is_empty(),
        "{} lines lost across SIGKILL, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let duplicates = events.len() - BIG;
    // Replays come from two places: the receiver's last accepted batch whose checkpoint was not
    // written (at most max_batch = 1,000 lines), and disk-queue records that were delivered but
    // whose acks (synced every 100 ms) were not yet durable: at most what the queue reported
    // pending when it was opened again.
    let pending = pending_at_open(&tail.relay.logs());
    eprintln!(
        "SIGKILL at {before} lines: {pending} events pending in the disk queue at restart, {duplicates} duplicate lines"
    );
    assert!(
        pending <= 20_000,
        "{pending} events pending in the disk queue after the kill"
    );
    assert!(
        duplicates <= 1_000 + pending,
        "{duplicates} duplicates: more than one receiver batch plus the queue's pending events"
    );
}

/// The `events=N` of the "disk queue opened" log line (0 when absent).
fn pending_at_open(logs: &str) -> usize {
    let mut plain = String::with_capacity(logs.len());
    let mut chars = logs.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skips an ANSI colour sequence: ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter(|l| l.contains("disk queue opened"))
        .filter_map(|l| l.split(" events=").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

#[test]
fn pending_events_are_read_from_the_disk_queue_log_line() {
    let line = "\u{1b}[2m2026\u{1b}[0m INFO disk queue opened \u{1b}[3mexporter\u{1b}[0m\u{1b}[2m=\u{1b}[0mfile/out \u{1b}[3mevents\u{1b}[0m\u{1b}[2m=\u{1b}[0m4000 segments=1";
    assert_eq!(pending_at_open(line), 4000);
    assert_eq!(pending_at_open("nothing here"), 0);
}
