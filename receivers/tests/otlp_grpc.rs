//! Hand-made OTLP/gRPC calls with a tonic client: refusals with RetryInfo, partial success,
//! unsupported services, auth, TLS, gzip, and graceful shutdown with a request in flight.

mod otlp_support;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use otlp_support::{Mode, by_seq, plain_config, start};
use serde_json::json;
use std::time::Duration;
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_types::StatusExt;

fn request(n: usize) -> ExportLogsServiceRequest {
    let records = (0..n)
        .map(|seq| LogRecord {
            severity_text: "high".into(),
            attributes: vec![KeyValue {
                key: "seq".into(),
                value: Some(AnyValue {
                    value: Some(AnyValueKind::IntValue(seq as i64)),
                }),
                ..KeyValue::default()
            }],
            ..LogRecord::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// Sends raw bytes as the request message (to send what a prost client never would).
#[derive(Clone, Default)]
struct RawRequest;

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Codec for RawRequest {
    type Encode = Vec<u8>;
    type Decode = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = <tonic_prost::ProstCodec<Vec<u8>, Self::Decode> as tonic::codec::Codec>::Decoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        tonic::codec::Codec::decoder(
            &mut tonic_prost::ProstCodec::<Vec<u8>, Self::Decode>::default(),
        )
    }
}

async fn client(url: String) -> LogsServiceClient<Channel> {
    LogsServiceClient::connect(url).await.expect("connect")
}

#[tokio::test]
async fn export_plain_and_gzip() {
    let running = start(plain_config(), Mode::Accept).await;
    let plain = client(running.grpc_url()).await;
    let gzip = client(running.grpc_url())
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    for mut c in [plain, gzip] {
        let reply = c.export(request(500)).await.expect("export").into_inner();
        assert_eq!(reply.partial_success, None);
    }
    let events = running.sink.wait_for(1000).await;
    for half in [&events[..500], &events[500..]] {
        for event in by_seq(half.to_vec(), 500) {
            assert_eq!(event.severity.number, 17, "text 'high' gives number 17");
            assert_eq!(event.severity.text, "high");
        }
    }
    running.stop().await;
}

/// A request of 3 good records, then one whose bytes are `damage`d.
fn damaged_request(damage: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut requests = request(4);
    let last = requests.resource_logs[0].scope_logs[0]
        .log_records
        .pop()
        .unwrap();
    let mut last = prost::Message::encode_to_vec(&last);
    damage(&mut last);
    let mut scope = Vec::new();
    for record in &requests.resource_logs[0].scope_logs[0].log_records {
        let record = prost::Message::encode_to_vec(record);
        scope.push(0x12);
        prost::encoding::encode_varint(record.len() as u64, &mut scope);
        scope.extend(record);
    }
    scope.push(0x12);
    prost::encoding::encode_varint(last.len() as u64, &mut scope);
    scope.extend(last);
    let mut resource_logs = vec![0x12];
    prost::encoding::encode_varint(scope.len() as u64, &mut resource_logs);
    resource_logs.extend(scope);
    let mut body = vec![0x0a];
    prost::encoding::encode_varint(resource_logs.len() as u64, &mut body);
    body.extend(resource_logs);
    body
}

/// Sends `body` as the Export message; returns the refusal.
async fn export_raw(channel: &Channel, body: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(body),
        tonic::codegen::http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        ),
        RawRequest,
    )
    .await
    .expect_err("refused")
}

#[tokio::test]
async fn malformed_requests_are_refused_whole_with_the_fields_place() {
    let running = start(plain_config(), Mode::Accept).await;
    let channel = Channel::from_shared(running.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let place = "resource_logs[0].scope_logs[0].log_records[3]";
    let cases = [
        // An attribute's length runs past the record.
        (
            damaged_request(|record| record.extend([0x32, 0x7f, 0x0a])),
            format!("{place}.attributes: truncated length-delimited field"),
        ),
        // An attribute key that is not UTF-8.
        (
            damaged_request(|record| record.extend([0x32, 0x03, 0x0a, 0x01, 0xff])),
            format!("{place}.attributes[1].key: a string field is not valid UTF-8"),
        ),
        // severity_number sent as a string.
        (
            damaged_request(|record| record.extend([0x12, 0x01, b'9'])),
            format!(
                "{place}.severity_number: wire type length-delimited where the schema has varint"
            ),
        ),
    ];
    for (body, want) in cases {
        let status = export_raw(&channel, body).await;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains(&want),
            "{} should name {want}",
            status.message()
        );
    }
    // Nothing of the three good records before the bad one was accepted.
    assert_eq!(running.sink.calls(), 0);
    assert!(running.sink.events().is_empty());
    running.stop().await;
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_final_errors() {
    let config =
        json!({"protocols": {"grpc": {"endpoint": "127.0.0.1:0", "max_request_size": "64KiB"}}});
    let running = start(config, Mode::Accept).await;
    let channel = Channel::from_shared(running.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let big = prost::Message::encode_to_vec(&request(10_000));
    assert!(big.len() > 64 * 1024);
    for (body, code) in [
        (vec![0x0a, 0xff, 0x01], Code::InvalidArgument),
        (big.clone(), Code::ResourceExhausted),
    ] {
        let status = export_raw(&channel, body).await;
        assert_eq!(status.code(), code, "{}", status.message());
    }
    // Compressed and too large once decompressed: also final.
    let status = LogsServiceClient::new(channel.clone())
        .send_compressed(CompressionEncoding::Gzip)
        .export(request(10_000))
        .await
        .expect_err("too large");
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "{}",
        status.message()
    );
    assert_eq!(running.sink.calls(), 0);
    // The server keeps serving on the same connection.
    LogsServiceClient::new(channel)
        .export(request(2))
        .await
        .expect("good export");
    assert_eq!(running.sink.wait_for(2).await.len(), 2);
    running.stop().await;
}

#[tokio::test]
async fn full_pipeline_is_unavailable_with_retry_info() {
    let running = start(plain_config(), Mode::AlwaysFull).await;
    let status = client(running.grpc_url())
        .await
        .export(request(10))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("full"), "{}", status.message());
    let retry = status.get_details_retry_info().expect("RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));
    running.stop().await;
}

#[tokio::test]
async fn unmappable_records_are_a_partial_success() {
    let running = start(plain_config(), Mode::Accept).await;
    let mut req = request(4);
    req.resource_logs[0].scope_logs[0].log_records[3].severity_number = -1;
    let reply = client(running.grpc_url())
        .await
        .export(req)
        .await
        .expect("export")
        .into_inner();
    let partial = reply.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial.error_message.contains("log_records[3]"),
        "{}",
        partial.error_message
    );
    assert_eq!(running.sink.wait_for(3).await.len(), 3);
    running.stop().await;
}

#[tokio::test]
async fn traces_and_metrics_services_are_unimplemented_with_a_message() {
    let running = start(plain_config(), Mode::Accept).await;
    let channel = Channel::from_shared(running.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    for path in [
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    ] {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let status = grpc
            .unary::<_, ExportLogsServiceRequest, _>(
                tonic::Request::new(ExportLogsServiceRequest::default()),
                tonic::codegen::http::uri::PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .expect_err("unimplemented");
        assert_eq!(status.code(), Code::Unimplemented, "{path}");
        assert!(
            status
                .message()
                .starts_with("not supported: siemrelay accepts logs only"),
            "{}",
            status.message()
        );
    }
    // The logs service still works on the same connection.
    LogsServiceClient::new(channel)
        .export(request(1))
        .await
        .expect("export after unimplemented calls");
    running.stop().await;
}

#[tokio::test]
async fn bearer_token_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let config = json!({"protocols": {"grpc": {"endpoint": "127.0.0.1:0",
        "tls": {"cert_file": cert_file, "key_file": key_file},
        "auth": {"bearer_token": "s3cret"}}}});
    let running = start(config, Mode::Accept).await;
    let port = running.grpc.unwrap().port();
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(cert.cert.pem())))
        .unwrap()
        .connect()
        .await
        .expect("TLS connect");
    let mut c = LogsServiceClient::new(channel);
    let status = c.export(request(1)).await.expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains("s3cret"));
    let mut wrong = tonic::Request::new(request(1));
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        c.export(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(running.sink.calls(), 0);
    let mut right = tonic::Request::new(request(2));
    right
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    c.export(right).await.expect("authorized export");
    assert_eq!(running.sink.wait_for(2).await.len(), 2);
    running.stop().await;
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish() {
    let running = start(plain_config(), Mode::Gate).await;
    let mut c = client(running.grpc_url()).await;
    let in_flight = tokio::spawn(async move { c.export(request(3)).await });
    running.sink.wait_for_calls(1).await;
    running.shutdown.cancel();
    // New connections are refused once shutdown began (the listener is closed).
    let url = running.grpc_url();
    let refused = async {
        loop {
            if Channel::from_shared(url.clone())
                .unwrap()
                .connect()
                .await
                .is_err()
            {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), refused)
        .await
        .expect("listener closes after shutdown");
    running.sink.release();
    let reply = in_flight
        .await
        .unwrap()
        .expect("the in-flight export succeeds");
    assert_eq!(reply.into_inner().partial_success, None);
    assert_eq!(running.sink.events().len(), 3);
    running.stop().await;
}
