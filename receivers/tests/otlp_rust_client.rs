//! The Rust `opentelemetry-otlp` exporter (with the SDK's batch processor) sends 1,000 log
//! records over gRPC, HTTP/protobuf and HTTP/JSON, gzip on and off; every record arrives with
//! its fields mapped. Also: the exporter's retry after the pipeline refused with `Full`.

mod otlp_support;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::{InstrumentationScope, KeyValue, SpanId, TraceFlags, TraceId};
use opentelemetry_otlp::{
    Compression, LogExporter, Protocol, RetryPolicy, WithExportConfig, WithHttpConfig,
    WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use otlp_support::{Mode, Running, by_seq, plain_config, start};
use siemrelay_core::Event;
use std::time::Duration;

const RECORDS: usize = 1_000;
const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";

#[derive(Clone, Copy, Debug)]
enum Transport {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

/// Where the exporter sends to: the receiver's gRPC URL and HTTP logs URL.
struct Endpoints {
    grpc: String,
    http: String,
}

fn exporter(endpoints: &Endpoints, transport: Transport, gzip: bool) -> LogExporter {
    let retry = RetryPolicy::recommended()
        .with_initial_delay(Duration::from_millis(50))
        .with_max_retries(5);
    match transport {
        Transport::Grpc => {
            let builder = LogExporter::builder()
                .with_tonic()
                .with_endpoint(endpoints.grpc.clone())
                .with_retry_policy(retry);
            let builder = if gzip {
                builder.with_compression(Compression::Gzip)
            } else {
                builder
            };
            builder.build().expect("grpc exporter")
        }
        Transport::HttpProtobuf | Transport::HttpJson => {
            let protocol = match transport {
                Transport::HttpJson => Protocol::HttpJson,
                _ => Protocol::HttpBinary,
            };
            let builder = LogExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(endpoints.http.clone())
                .with_retry_policy(retry);
            let builder = if gzip {
                builder.with_compression(Compression::Gzip)
            } else {
                builder
            };
            builder.build().expect("http exporter")
        }
    }
}

/// Sends `RECORDS` records through the SDK (batch processor) and flushes.
async fn send(running: &Running, transport: Transport, gzip: bool) {
    let endpoints = Endpoints {
        grpc: running.grpc_url(),
        http: running.http_url("/v1/logs"),
    };
    // The SDK's batch processor and the blocking HTTP client block their threads.
    tokio::task::spawn_blocking(move || {
        let exporter = exporter(&endpoints, transport, gzip);
        let resource = Resource::builder()
            .with_service_name("rust-client")
            .with_attribute(KeyValue::new("deployment.environment", "test"))
            .build();
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build();
        let scope = InstrumentationScope::builder("siemrelay.test")
            .with_version("1.0")
            .build();
        let logger = provider.logger_with_scope(scope);
        let trace_id = TraceId::from_hex(TRACE_ID).unwrap();
        for seq in 0..RECORDS {
            let mut record = logger.create_log_record();
            record.set_event_name("login_failed");
            record.set_severity_number(Severity::Warn);
            record.set_severity_text("WARN");
            record.set_body(AnyValue::from(format!("record {seq}")));
            record.add_attribute("seq", seq as i64);
            record.add_attribute("user", format!("user-{seq}"));
            record.add_attribute("ratio", 0.25);
            record.add_attribute("admin", seq % 2 == 0);
            record.set_trace_context(
                trace_id,
                SpanId::from_bytes((seq as u64 + 1).to_be_bytes()),
                Some(TraceFlags::SAMPLED),
            );
            logger.emit(record);
        }
        provider.force_flush().expect("flush");
        provider.shutdown().expect("shutdown");
    })
    .await
    .expect("client thread");
}

fn check_events(events: Vec<Event>) {
    let events = by_seq(events, RECORDS);
    for (seq, event) in events.iter().enumerate() {
        let a = &event.attributes;
        assert_eq!(event.event_type, "login_failed", "event_name → event_type");
        assert_eq!(event.severity.number, 13);
        assert_eq!(event.severity.text, "WARN");
        assert_eq!(
            event.summary.as_deref(),
            Some(format!("record {seq}").as_str())
        );
        assert_eq!(a["user"], format!("user-{seq}"));
        assert_eq!(a["ratio"], 0.25);
        assert_eq!(a["admin"], seq % 2 == 0);
        assert_eq!(a["trace_id"], TRACE_ID);
        assert_eq!(a["span_id"], format!("{:016x}", seq as u64 + 1));
        assert_eq!(a["otel.scope.name"], "siemrelay.test");
        assert_eq!(a["otel.scope.version"], "1.0");
        assert_eq!(event.source.as_deref(), Some("rust-client"));
        assert_eq!(event.resource["deployment.environment"], "test");
        assert!(
            event.timestamp.0 > 1_600_000_000_000_000_000,
            "SDK timestamp kept"
        );
        assert!(event.observed_timestamp >= event.timestamp);
    }
}

async fn round_trip(transport: Transport, gzip: bool) {
    let running = start(plain_config(), Mode::Accept).await;
    send(&running, transport, gzip).await;
    let events = running.sink.wait_for(RECORDS).await;
    assert_eq!(events.len(), RECORDS, "{transport:?} gzip={gzip}");
    check_events(events);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_plain() {
    round_trip(Transport::Grpc, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_gzip() {
    round_trip(Transport::Grpc, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_plain() {
    round_trip(Transport::HttpProtobuf, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_gzip() {
    round_trip(Transport::HttpProtobuf, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_plain() {
    round_trip(Transport::HttpJson, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_gzip() {
    round_trip(Transport::HttpJson, true).await;
}

/// The pipeline refuses the first two batches with `Full`; the exporter retries
/// (gRPC UNAVAILABLE with RetryInfo, HTTP 503 with Retry-After) and nothing is lost.
async fn retries_after_full(transport: Transport) {
    let running = start(plain_config(), Mode::RefuseFirst(2)).await;
    send(&running, transport, false).await;
    let events = running.sink.wait_for(RECORDS).await;
    assert!(running.sink.calls() >= 3, "the first calls were refused");
    check_events(events);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_client_retries_after_full() {
    retries_after_full(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_client_retries_after_full() {
    retries_after_full(Transport::HttpProtobuf).await;
}
