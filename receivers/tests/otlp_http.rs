//! Hand-made OTLP/HTTP requests: JSON and protobuf, gzip and plain, malformed bodies, auth,
//! TLS, size limits, unsupported signals, and refusals by a full pipeline.

mod otlp_support;

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use otlp_support::{Mode, by_seq, plain_config, start};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;

/// The OTLP/JSON sample of siem-protocols.md §8, plus a string-encoded int attribute.
const SAMPLE: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"acme-edr"}}]},"scopeLogs":[{"scope":{"name":"acme.exporter"},"logRecords":[{"timeUnixNano":"1718000000123000000","severityNumber":17,"severityText":"ERROR","body":{"stringValue":"malware blocked"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","attributes":[{"key":"bytes_out","value":{"intValue":"9007199254740993"}}]}]}]}]}"#;

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

fn kv(key: &str, value: AnyValueKind) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// A protobuf request with `n` records numbered by the `seq` attribute.
fn request(n: usize) -> ExportLogsServiceRequest {
    let records = (0..n)
        .map(|seq| LogRecord {
            time_unix_nano: 1_718_000_000_000_000_000 + seq as u64,
            severity_number: 9,
            body: Some(AnyValue {
                value: Some(AnyValueKind::StringValue(format!("line {seq}"))),
            }),
            attributes: vec![
                kv("seq", AnyValueKind::IntValue(seq as i64)),
                kv("event_type", AnyValueKind::StringValue("dlp_alert".into())),
            ],
            ..LogRecord::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    AnyValueKind::StringValue("proto".into()),
                )],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

async fn post(url: &str, content_type: &str, gzipped: bool, body: Vec<u8>) -> reqwest::Response {
    let client = reqwest::Client::new();
    let mut builder = client.post(url).header("content-type", content_type);
    let body = if gzipped {
        builder = builder.header("content-encoding", "gzip");
        gzip(&body)
    } else {
        body
    };
    builder.body(body).send().await.expect("request")
}

#[tokio::test]
async fn json_sample_maps_hex_ids_and_string_ints() {
    let running = start(plain_config(), Mode::Accept).await;
    for gzipped in [false, true] {
        let response = post(
            &running.http_url("/v1/logs"),
            "application/json",
            gzipped,
            SAMPLE.into(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    }
    let events = running.sink.wait_for(2).await;
    for event in &events {
        assert_eq!(event.timestamp.to_rfc3339(), "2024-06-10T06:13:20.123Z");
        assert_eq!(event.severity.number, 17);
        assert_eq!(event.severity.text, "ERROR");
        assert_eq!(event.summary.as_deref(), Some("malware blocked"));
        assert_eq!(event.source.as_deref(), Some("acme-edr"));
        assert_eq!(event.event_type, "otlp.log");
        assert_eq!(
            event.attributes["trace_id"],
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(event.attributes["span_id"], "eee19b7ec3c1b174");
        assert_eq!(
            event.attributes["bytes_out"],
            json!(9_007_199_254_740_993_i64)
        );
        assert_eq!(event.attributes["otel.scope.name"], "acme.exporter");
    }
    running.stop().await;
}

#[tokio::test]
async fn protobuf_plain_and_gzip() {
    let running = start(plain_config(), Mode::Accept).await;
    let body = request(100).encode_to_vec();
    for gzipped in [false, true] {
        let response = post(
            &running.http_url("/v1/logs"),
            "application/x-protobuf",
            gzipped,
            body.clone(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/x-protobuf");
        let reply = ExportLogsServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
        assert_eq!(reply.partial_success, None);
    }
    // Requests were sent one after the other, so their batches arrive in that order.
    let events = running.sink.wait_for(200).await;
    let plain = by_seq(events[..100].to_vec(), 100);
    let gzipped = by_seq(events[100..].to_vec(), 100);
    for events in [plain, gzipped] {
        for (seq, event) in events.iter().enumerate() {
            assert_eq!(event.event_type, "dlp_alert");
            assert_eq!(event.summary, Some(format!("line {seq}")));
            assert_eq!(event.severity.text, "INFO");
            assert_eq!(event.timestamp.0, 1_718_000_000_000_000_000 + seq as i64);
            assert_eq!(event.source.as_deref(), Some("proto"));
        }
    }
    running.stop().await;
}

#[tokio::test]
async fn malformed_bodies_get_400_and_the_server_keeps_serving() {
    let running = start(plain_config(), Mode::Accept).await;
    let url = running.http_url("/v1/logs");
    let response = post(
        &url,
        "application/x-protobuf",
        false,
        vec![0x0a, 0xff, 0x01],
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let status = response.bytes().await.unwrap();
    assert!(
        String::from_utf8_lossy(&status).contains("not a valid ExportLogsServiceRequest"),
        "google.rpc.Status message: {status:?}"
    );
    let response = post(
        &url,
        "application/json",
        false,
        b"{\"resourceLogs\":[".to_vec(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let status: Value = response.json().await.unwrap();
    assert_eq!(status["code"], 3);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let response = post(
        &url,
        "application/json",
        false,
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}"#.to_vec(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let status: Value = response.json().await.unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("resourceLogs[0].scopeLogs[0].logRecords[0].traceId"),
        "{status}"
    );
    let response = post(&url, "application/json", false, b"not gzip".to_vec()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = post(&url, "text/plain", false, SAMPLE.into()).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        running.sink.events().is_empty(),
        "nothing of a bad request is kept"
    );

    let response = post(&url, "application/json", false, SAMPLE.into()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(running.sink.wait_for(1).await.len(), 1);
    running.stop().await;
}

#[tokio::test]
async fn unmappable_records_are_a_partial_success() {
    let running = start(plain_config(), Mode::Accept).await;
    let mut req = request(3);
    req.resource_logs[0].scope_logs[0].log_records[1].severity_number = 99;
    let response = post(
        &running.http_url("/v1/logs"),
        "application/x-protobuf",
        false,
        req.encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply = ExportLogsServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial = reply.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial
            .error_message
            .contains("log_records[1]: severity_number 99")
    );
    let events = running.sink.wait_for(2).await;
    let seqs: Vec<_> = events.iter().map(|e| e.attributes["seq"].clone()).collect();
    assert_eq!(seqs, [json!(0), json!(2)]);
    running.stop().await;
}

#[tokio::test]
async fn traces_and_metrics_are_not_supported() {
    let running = start(plain_config(), Mode::Accept).await;
    for path in ["/v1/traces", "/v1/metrics"] {
        let response = post(
            &running.http_url(path),
            "application/json",
            false,
            b"{}".to_vec(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let status: Value = response.json().await.unwrap();
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .starts_with("not supported: siemrelay accepts logs only"),
            "{status}"
        );
    }
    let response = reqwest::get(running.http_url("/v1/logs")).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    running.stop().await;
}

#[tokio::test]
async fn full_pipeline_gives_503_with_retry_after() {
    let running = start(plain_config(), Mode::AlwaysFull).await;
    for (content_type, body) in [
        ("application/json", SAMPLE.as_bytes().to_vec()),
        ("application/x-protobuf", request(5).encode_to_vec()),
    ] {
        let response = post(&running.http_url("/v1/logs"), content_type, false, body).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["content-type"], content_type);
    }
    assert_eq!(running.sink.calls(), 2);
    running.stop().await;
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let config = json!({"protocols": {"http": {
        "endpoint": "127.0.0.1:0", "auth": {"bearer_token": "s3cret"}}}});
    let running = start(config, Mode::Accept).await;
    let client = reqwest::Client::new();
    let url = running.http_url("/v1/logs");
    for auth in [None, Some("Bearer wrong"), Some("s3cret")] {
        let mut builder = client.post(&url).header("content-type", "application/json");
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        let response = builder.body(SAMPLE).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let status: Value = response.json().await.unwrap();
        assert_eq!(status["code"], 16);
        assert!(
            !status.to_string().contains("s3cret"),
            "secret never echoed"
        );
    }
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer s3cret")
        .body(SAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(running.sink.wait_for(1).await.len(), 1);
    running.stop().await;
}

#[tokio::test]
async fn oversized_requests_get_413_even_when_compressed() {
    let config =
        json!({"protocols": {"http": {"endpoint": "127.0.0.1:0", "max_request_size": "64KiB"}}});
    let running = start(config, Mode::Accept).await;
    let body = request(2_000).encode_to_vec();
    assert!(body.len() > 64 * 1024);
    for gzipped in [false, true] {
        let response = post(
            &running.http_url("/v1/logs"),
            "application/x-protobuf",
            gzipped,
            body.clone(),
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "gzip={gzipped}"
        );
    }
    assert_eq!(running.sink.calls(), 0);
    running.stop().await;
}

#[tokio::test]
async fn tls_serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let config = json!({"protocols": {"http": {"endpoint": "127.0.0.1:0",
        "tls": {"cert_file": cert_file, "key_file": key_file}}}});
    let running = start(config, Mode::Accept).await;
    let port = running.http.unwrap().port();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = client
        .post(format!("https://localhost:{port}/v1/logs"))
        .header("content-type", "application/json")
        .body(SAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        running.sink.wait_for(1).await[0].summary.as_deref(),
        Some("malware blocked")
    );
    let plain = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/logs"))
        .header("content-type", "application/json")
        .body(SAMPLE)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP is not served on a TLS listener");
    assert_eq!(running.sink.events().len(), 1);
    running.stop().await;
}

#[tokio::test]
async fn build_errors_name_the_address_and_files() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config =
        serde_json::from_value(json!({"protocols": {"grpc": {"endpoint": addr.to_string()}}}))
            .unwrap();
    let err = siemrelay_receivers::otlp::build("otlp/edr", config)
        .await
        .err()
        .unwrap();
    let message = format!("{err:#}");
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.contains("protocols.grpc.endpoint"), "{message}");

    let config = serde_json::from_value(json!({"protocols": {"http": {"endpoint": "127.0.0.1:0",
        "tls": {"cert_file": "/nonexistent/cert.pem", "key_file": "/nonexistent/key.pem"}}}}))
    .unwrap();
    let err = siemrelay_receivers::otlp::build("otlp/edr", config)
        .await
        .err()
        .unwrap();
    let message = format!("{err:#}");
    assert!(
        message.contains("protocols.http.tls.cert_file"),
        "{message}"
    );
    assert!(message.contains("/nonexistent/cert.pem"), "{message}");
}
