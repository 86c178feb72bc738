//! The OTLP receiver's limits over real sockets with a tonic client and HTTP (issue 20 §1, §4):
//! log records per request on both protocols and encodings, allowed_cidrs, and TLS that
//! requires a client certificate signed by the configured CA.

mod otlp_support;

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use otlp_support::{Mode, start};
use prost::Message;
use serde_json::{Value, json};
use std::io::Write;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

fn empty_records(n: usize) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); n],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

async fn channel(url: String) -> Channel {
    Channel::from_shared(url).unwrap().connect().await.unwrap()
}

#[tokio::test]
async fn more_records_than_the_limit_are_refused_before_decoding_on_both_protocols() {
    let config = json!({"protocols": {
        "grpc": {"endpoint": "127.0.0.1:0", "max_events_per_request": 100},
        "http": {"endpoint": "127.0.0.1:0"},
    }});
    let running = start(config, Mode::Accept).await;
    let mut client = LogsServiceClient::new(channel(running.grpc_url()).await);
    let status = client.export(empty_records(101)).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("max_events_per_request (100)"),
        "{}",
        status.message()
    );
    client
        .export(empty_records(100))
        .await
        .expect("at the limit");

    // A million empty records: about 2,000 bytes of gzip. The default limit stops them.
    let bomb = gzip(&empty_records(1_000_000).encode_to_vec());
    assert!(bomb.len() < 4_000, "{}", bomb.len());
    let response = reqwest::Client::new()
        .post(running.http_url("/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // The same in OTLP/JSON, counted while the JSON is parsed.
    let records = vec!["{}"; 10_001].join(",");
    let body = format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{records}]}}]}}]}}"#);
    let response = reqwest::Client::new()
        .post(running.http_url("/v1/logs"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let status: Value = response.json().await.unwrap();
    assert_eq!(status["code"], 8, "RESOURCE_EXHAUSTED");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("max_events_per_request (10000)")
    );
    assert_eq!(running.sink.events().len(), 100);
    running.stop().await;
}

#[tokio::test]
async fn clients_outside_allowed_cidrs_are_refused_on_both_protocols() {
    let config = json!({"protocols": {
        "grpc": {"endpoint": "127.0.0.1:0", "allowed_cidrs": ["192.0.2.0/24"]},
        "http": {"endpoint": "127.0.0.1:0", "allowed_cidrs": ["192.0.2.0/24"]},
    }});
    let running = start(config, Mode::Accept).await;
    let mut client = LogsServiceClient::new(channel(running.grpc_url()).await);
    let status = client.export(empty_records(1)).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{}",
        status.message()
    );
    let response = reqwest::Client::new()
        .post(running.http_url("/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(empty_records(1).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(running.sink.events().is_empty());
    running.stop().await;
}

/// A CA, a server certificate for localhost signed by it, a client certificate signed by it,
/// and a client certificate signed by another CA; all as PEM.
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
    rogue: (String, String),
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    fn ca() -> (String, Issuer<'static, KeyPair>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        (pem, Issuer::new(params, key))
    }
    fn leaf(names: &[&str], issuer: &Issuer<'static, KeyPair>) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
    let (ca_pem, issuer) = ca();
    let (_, other) = ca();
    Pki {
        server: leaf(&["localhost"], &issuer),
        client: leaf(&["sender.example"], &issuer),
        rogue: leaf(&["sender.example"], &other),
        ca: ca_pem,
    }
}

#[tokio::test]
async fn with_client_ca_file_a_client_needs_a_certificate_signed_by_it() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let config = json!({"protocols": {"grpc": {"endpoint": "127.0.0.1:0", "tls": {
        "cert_file": write("server.pem", &pki.server.0),
        "key_file": write("server.key", &pki.server.1),
        "client_ca_file": write("ca.pem", &pki.ca),
    }}}});
    let running = start(config, Mode::Accept).await;
    let url = format!("https://localhost:{}", running.grpc.unwrap().port());
    let tls = || ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca));
    let connect = |tls: ClientTlsConfig| {
        let url = url.clone();
        async move {
            let channel = Channel::from_shared(url)
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await?;
            LogsServiceClient::new(channel)
                .export(empty_records(1))
                .await
                .map_err(|status| -> Box<dyn std::error::Error> { Box::new(status) })?;
            Ok::<_, Box<dyn std::error::Error>>(())
        }
    };
    // No certificate, or one signed by another CA: refused in the handshake.
    assert!(connect(tls()).await.is_err());
    let rogue = Identity::from_pem(&pki.rogue.0, &pki.rogue.1);
    assert!(connect(tls().identity(rogue)).await.is_err());
    assert!(running.sink.events().is_empty());
    // Signed by the CA: served.
    let client = Identity::from_pem(&pki.client.0, &pki.client.1);
    connect(tls().identity(client))
        .await
        .expect("a client certificate signed by client_ca_file is accepted");
    assert_eq!(running.sink.events().len(), 1);
    running.stop().await;
}
