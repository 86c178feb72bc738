//! OTLP ingest benchmark: several clients send `ExportLogsServiceRequest`s of 1,000 realistic
//! log records over loopback into the `otlp` receiver with a null sink, over OTLP/gRPC (tonic
//! clients) or OTLP/HTTP protobuf (reqwest clients, `POST /v1/logs`).
//!
//! Run: `cargo bench -p siemrelay-receivers --bench otlp_ingest`
//! Knobs (environment): `OTLP_BENCH_PROTOCOL` (`grpc`, the default, or `http`),
//! `OTLP_BENCH_SECS` (default 10), `OTLP_BENCH_CLIENTS` (default 4),
//! `OTLP_BENCH_RECEIVER_THREADS` (default 1), `OTLP_BENCH_RECORDS` per request (default 1000).
//!
//! Prints log records/s and the receiver threads' CPU time (from /proc), so the figure per
//! receiver core is independent of the CPU the clients use.

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use siemrelay_core::component::Receiver as _;
use siemrelay_core::{Accepted, Batch, EventSink, ReceiverContext, Refusal};
use siemrelay_receivers::otlp;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The allocator of the `siemrelay` binary, so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RECEIVER_THREAD: &str = "otlp-receiver";

/// Accepts and drops every batch.
struct NullSink;

#[async_trait]
impl EventSink for NullSink {
    async fn accept(&self, batch: Batch) -> Result<Accepted, Refusal> {
        let n = batch.len();
        Ok(Accepted {
            received: n,
            queued: n,
        })
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn string(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(AnyValueKind::StringValue(value)),
        }),
        ..KeyValue::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(AnyValueKind::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

/// One request of `records` log records resembling security events.
fn request(records: usize) -> ExportLogsServiceRequest {
    let log_records = (0..records)
        .map(|i| LogRecord {
            time_unix_nano: 1_718_000_000_000_000_000 + i as u64 * 1_000,
            observed_time_unix_nano: 1_718_000_000_000_000_000 + i as u64 * 1_000 + 500,
            severity_number: 13,
            severity_text: "WARN".into(),
            body: Some(AnyValue {
                value: Some(AnyValueKind::StringValue(format!(
                    "policy violation: user user{i}@example.com uploaded a file with PII to an unapproved destination"
                ))),
            }),
            attributes: vec![
                string("event.name", "policy_violation".into()),
                string("user.email", format!("user{i}@example.com")),
                string("source.ip", format!("10.0.{}.{}", i / 256 % 256, i % 256)),
                string("policy.id", "dlp-pii-upload".into()),
                string("action", "blocked".into()),
                int("http.response.status_code", 403),
                int("bytes", 123_456 + i as i64),
                KeyValue {
                    key: "risk.score".into(),
                    value: Some(AnyValue {
                        value: Some(AnyValueKind::DoubleValue(0.87)),
                    }),
                    ..KeyValue::default()
                },
            ],
            trace_id: (0..16u8).map(|b| b.wrapping_add(i as u8)).collect(),
            span_id: (0..8u8).map(|b| b.wrapping_add(i as u8 + 1)).collect(),
            ..LogRecord::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    string("service.name", "acme-dlp".into()),
                    string("service.version", "4.2.1".into()),
                    string("host.name", "dlp-gateway-01".into()),
                    string("deployment.environment", "production".into()),
                ],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "acme.dlp.audit".into(),
                    version: "1.0".into(),
                    ..InstrumentationScope::default()
                }),
                log_records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// Sends pre-encoded request bytes as-is, so clients spend no CPU on encoding.
#[derive(Clone, Default)]
struct PreEncoded;

struct RawEncoder;
struct ResponseDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportLogsServiceResponse;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportLogsServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = ExportLogsServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

/// One OTLP/HTTP client: posts `body` as `application/x-protobuf` until `deadline`.
async fn http_client(
    addr: std::net::SocketAddr,
    body: Bytes,
    deadline: Instant,
    sent: Arc<AtomicU64>,
    records: u64,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/logs");
    while Instant::now() < deadline {
        let response = client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "HTTP {}", response.status());
        response.bytes().await?;
        sent.fetch_add(records, Ordering::Relaxed);
    }
    Ok(())
}

/// CPU time (seconds) of this process's threads named `name`.
fn thread_cpu_seconds(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut total = 0.0;
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        // schedstat: nanoseconds on CPU, first field.
        if let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|f| f.parse::<f64>().ok())
            })
        {
            total += ns / 1e9;
        }
    }
    total
}

fn main() -> anyhow::Result<()> {
    let secs = env_or("OTLP_BENCH_SECS", 10);
    let clients = env_or("OTLP_BENCH_CLIENTS", 4);
    let receiver_threads = env_or("OTLP_BENCH_RECEIVER_THREADS", 1) as usize;
    let records = env_or("OTLP_BENCH_RECORDS", 1_000) as usize;
    let http = match std::env::var("OTLP_BENCH_PROTOCOL").as_deref() {
        Err(_) | Ok("grpc") => false,
        Ok("http") => true,
        Ok(other) => anyhow::bail!("OTLP_BENCH_PROTOCOL {other:?}: use grpc or http"),
    };

    let receiver_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(receiver_threads)
        .thread_name(RECEIVER_THREAD)
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-bench-client")
        .enable_all()
        .build()?;

    let shutdown = CancellationToken::new();
    let config: otlp::OtlpConfig = serde_json::from_value(serde_json::json!({
        "protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}
    }))?;
    let receiver = receiver_rt.block_on(otlp::bind("otlp", config))?;
    let addr = if http {
        receiver.http_addr()
    } else {
        receiver.grpc_addr()
    }
    .ok_or_else(|| anyhow::anyhow!("no listener"))?;
    let ctx = ReceiverContext {
        id: "otlp".into(),
        sink: Arc::new(NullSink),
        shutdown: shutdown.clone(),
        storage_dir: std::env::temp_dir(),
    };
    let server = receiver_rt.spawn(Box::new(receiver).run(ctx));

    let body = Bytes::from(request(records).encode_to_vec());
    println!(
        "otlp_ingest: {clients} {} clients, {records} records/request ({} KiB), \
         {receiver_threads} receiver thread(s), {secs}s",
        if http { "OTLP/HTTP" } else { "gRPC" },
        body.len() / 1024
    );
    let sent = Arc::new(AtomicU64::new(0));
    let (cpu_before, started) = (thread_cpu_seconds(RECEIVER_THREAD), Instant::now());
    let deadline = started + Duration::from_secs(secs);
    client_rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..clients {
            let body = body.clone();
            let sent = sent.clone();
            if http {
                tasks.spawn(http_client(addr, body, deadline, sent, records as u64));
                continue;
            }
            tasks.spawn(async move {
                let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
                    .initial_stream_window_size(4 * 1024 * 1024)
                    .initial_connection_window_size(8 * 1024 * 1024)
                    .connect()
                    .await?;
                let mut grpc = tonic::client::Grpc::new(channel);
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                );
                while Instant::now() < deadline {
                    grpc.ready().await?;
                    grpc.unary(tonic::Request::new(body.clone()), path.clone(), PreEncoded)
                        .await?;
                    sent.fetch_add(records as u64, Ordering::Relaxed);
                }
                anyhow::Ok(())
            });
        }
        while let Some(result) = tasks.join_next().await {
            result??;
        }
        anyhow::Ok(())
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds(RECEIVER_THREAD) - cpu_before;
    let total = sent.load(Ordering::Relaxed) as f64;
    println!("log records sent and acknowledged: {total:.0} in {elapsed:.2}s");
    println!("throughput: {:.0} log records/s", total / elapsed);
    println!(
        "receiver CPU: {cpu:.2}s ({:.0}% of one core) → {:.0} log records per receiver CPU-second",
        cpu / elapsed * 100.0,
        total / cpu
    );
    shutdown.cancel();
    receiver_rt.block_on(server)??;
    Ok(())
}
