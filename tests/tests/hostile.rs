//! Issue 20 against the real binary, one case per finding of §1 (bounded memory), §4 (transport
//! security) and §5 (what siemrelay writes is what it saw), with real clients: reqwest, raw
//! sockets, grpcio, curl, openssl s_client and the OpenTelemetry Python SDK.
//!
//! Peak RSS is read from `/proc/<pid>/status` (`VmHWM`) after the hostile requests; the README's
//! "Security model" section quotes what these cases measure.

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;
use serde_json::Value;
use siemrelay_e2e::{Siemrelay, free_port, read_ndjson_files};
use siemrelay_e2e::{python, repo as workspace};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The issue's bound for peak RSS under the hostile bodies.
const PEAK_RSS_LIMIT_KIB: u64 = 150 * 1024;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

/// The issue's finding: a gzip body of about 10 KB that decodes to 10 MiB of `[{},{},…]`.
fn empty_objects_bomb() -> Vec<u8> {
    let mut body = String::with_capacity(10 * 1024 * 1024);
    body.push_str("[{}");
    while body.len() < 10 * 1024 * 1024 - 4 {
        body.push_str(",{}");
    }
    body.push(']');
    gzip(body.as_bytes())
}

/// A million empty LogRecords: two bytes each on the wire.
fn empty_records(n: usize) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); n],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
    .encode_to_vec()
}

fn events_written(dir: &Path) -> Vec<Value> {
    read_ndjson_files(&dir.join("out"), "events")
}

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

async fn post(url: &str, content_type: &str, gzipped: bool, body: Vec<u8>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type);
    if gzipped {
        request = request.header("content-encoding", "gzip");
    }
    request.body(body).send().await.expect("request completes")
}

fn pipeline(receivers: &str, receiver_ids: &str, service_extra: &str) -> String {
    format!(
        r#"
receivers:
{receivers}
exporters:
  file: {{ path: "./out/events.ndjson" }}
service:
{service_extra}
  pipelines:
    security: {{ receivers: [{receiver_ids}], processors: [], exporters: [file] }}
"#
    )
}

/// §1: the gzip `[{},…]` body, two at once, and the OTLP empty-record body over HTTP and gRPC
/// are refused at the events limit while parsing; peak RSS stays under 150 MiB and the process
/// serves the next request.
#[tokio::test]
async fn hostile_bodies_are_refused_at_the_events_limit_and_peak_rss_stays_low() {
    let (webhook, http, grpc) = (free_port(), free_port(), free_port());
    let receivers = format!(
        r#"  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
  otlp:
    protocols:
      http: {{ endpoint: "127.0.0.1:{http}" }}
      grpc: {{ endpoint: "127.0.0.1:{grpc}" }}"#
    );
    let mut relay = Siemrelay::start(&pipeline(&receivers, "webhook, otlp", ""));
    relay.wait_ready(addr(webhook));
    relay.wait_ready(addr(http));
    relay.wait_ready(addr(grpc));
    let before = peak_rss_kib(relay.pid());

    let bomb = empty_objects_bomb();
    assert!(bomb.len() < 12_000, "{} bytes", bomb.len());
    let url = format!("http://127.0.0.1:{webhook}/v1/events");
    let response = post(&url, "application/json", true, bomb.clone()).await;
    assert_eq!(response.status(), 413);
    let text = response.text().await.unwrap();
    assert!(text.contains("max_events_per_request (10000)"), "{text}");
    let (a, b) = tokio::join!(
        post(&url, "application/json", true, bomb.clone()),
        post(&url, "application/json", true, bomb.clone()),
    );
    assert_eq!(
        (a.status(), b.status()),
        (413.try_into().unwrap(), 413.try_into().unwrap())
    );

    let records = gzip(&empty_records(1_000_000));
    assert!(records.len() < 4_000, "{} bytes", records.len());
    eprintln!(
        "hostile bodies: {} bytes of gzip → 10 MiB of [{{}},…]; {} bytes of gzip → 1,000,000 empty log records",
        bomb.len(),
        records.len()
    );
    let otlp_url = format!("http://127.0.0.1:{http}/v1/logs");
    let response = post(&otlp_url, "application/x-protobuf", true, records).await;
    assert_eq!(response.status(), 413);

    // The same million records over gRPC (gzip on the wire) with Google's gRPC client.
    let request_file = relay.dir().join("records.bin");
    std::fs::write(&request_file, empty_records(1_000_000)).unwrap();
    let output = Command::new(python())
        .arg(workspace().join("tests/python/otlp_raw_grpc.py"))
        .args([
            "--endpoint",
            &format!("127.0.0.1:{grpc}"),
            "--gzip",
            "--file",
        ])
        .arg(&request_file)
        .output()
        .expect("python runs");
    let code = String::from_utf8_lossy(&output.stdout);
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(code.trim(), "RESOURCE_EXHAUSTED", "{message}");
    assert!(message.contains("max_events_per_request"), "{message}");

    let peak = peak_rss_kib(relay.pid());
    eprintln!(
        "peak RSS: {} MiB before the hostile requests, {} MiB after",
        before / 1024,
        peak / 1024
    );
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "peak RSS {peak} KiB over {PEAK_RSS_LIMIT_KIB} KiB"
    );
    // Still serving.
    let response = post(
        &url,
        "application/json",
        false,
        br#"{"event_type":"after"}"#.to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(wait_until(Duration::from_secs(10), || events_written(
        relay.dir()
    )
    .len()
        == 1));
    relay.terminate(Duration::from_secs(20));
}

/// §1: a request that does not fit `service.memory_limit` waits briefly, then gets 503 with
/// Retry-After; one that could never fit gets 413; memory given back serves the next.
#[tokio::test]
async fn the_memory_limit_holds_for_everything_received_but_not_yet_queued() {
    let webhook = free_port();
    let receivers = format!(r#"  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}"#);
    let mut relay = Siemrelay::start(&pipeline(&receivers, "webhook", "  memory_limit: 1MiB"));
    relay.wait_ready(addr(webhook));
    let url = format!("http://127.0.0.1:{webhook}/v1/events");

    // A sender announces 900 KiB and sends it slowly (above min_body_rate): its body holds
    // the budget while it arrives.
    let mut holder = TcpStream::connect(addr(webhook)).await.unwrap();
    let declared = 900 * 1024;
    holder
        .write_all(
            format!(
                "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ncontent-length: {declared}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let line = format!(
        "{{\"event_type\":\"held\",\"pad\":\"{}\"}}\n",
        "x".repeat(990)
    );
    holder.write_all(line.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 200 small events: 4 KB on the wire, a few hundred KB once parsed into events.
    let body = "{\"event_type\":\"t\"}\n".repeat(200).into_bytes();
    let started = Instant::now();
    let response = post(&url, "application/x-ndjson", false, body.clone()).await;
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited briefly first"
    );
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("service.memory_limit")
    );

    // Larger than the whole limit: 413, not a retry loop.
    let huge = format!("{{\"s\":\"{}\"}}", "x".repeat(2 * 1024 * 1024)).into_bytes();
    assert_eq!(
        post(&url, "application/x-ndjson", false, huge)
            .await
            .status(),
        413
    );

    // The holder goes away: its memory is given back and the request goes through.
    drop(holder);
    let mut status = 0;
    for _ in 0..50 {
        status = post(&url, "application/x-ndjson", false, body.clone())
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "logs:\n{}", relay.logs());
    relay.terminate(Duration::from_secs(20));
}

/// One slow-loris connection: trickles `prefix` then one byte a second; returns when the
/// server closed it (or answered), with how long that took.
async fn trickle(target: SocketAddr, prefix: &'static [u8], bytes: &'static [u8]) -> Duration {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(target).await else {
        return started.elapsed();
    };
    if stream.write_all(prefix).await.is_err() {
        return started.elapsed();
    }
    let mut buf = [0u8; 512];
    for byte in bytes.iter().cycle() {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        // Closed, failed, or answered (408): the server let go.
        if tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf))
            .await
            .is_ok()
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    started.elapsed()
}

/// §1: 200 slow-loris connections at 1 byte/s (100 trickling headers, 100 trickling bodies)
/// are closed by the default timeouts while normal senders keep getting 2xx.
#[tokio::test]
async fn slow_loris_connections_are_closed_while_senders_are_served() {
    let webhook = free_port();
    let receivers = format!(r#"  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}"#);
    let mut relay = Siemrelay::start(&pipeline(&receivers, "webhook", ""));
    relay.wait_ready(addr(webhook));
    let target = addr(webhook);
    const HEAD: &[u8] = b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n";
    let mut slow = Vec::new();
    for i in 0..200 {
        slow.push(tokio::spawn(if i % 2 == 0 {
            trickle(target, b"", HEAD)
        } else {
            trickle(target, HEAD, b"{")
        }));
    }
    let url = format!("http://127.0.0.1:{webhook}/v1/events");
    let client = reqwest::Client::new();
    let mut served = 0;
    let started = Instant::now();
    while slow.iter().any(|task| !task.is_finished()) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "slow connections still open after 90 s"
        );
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body(format!("{{\"event_type\":\"normal\",\"n\":{served}}}"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("a normal sender is answered");
        assert_eq!(response.status(), 200);
        served += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut closed_after = Vec::new();
    for task in slow {
        closed_after.push(task.await.unwrap());
    }
    let longest = closed_after.iter().max().unwrap();
    eprintln!(
        "200 slow connections closed after at most {longest:?}; {served} normal requests served meanwhile"
    );
    // header_read_timeout 10s; a body needs 1 KiB/s after 10 s.
    assert!(*longest < Duration::from_secs(40), "{longest:?}");
    assert!(served >= 10);
    assert!(wait_until(Duration::from_secs(10), || events_written(
        relay.dir()
    )
    .len()
        == served));
    relay.terminate(Duration::from_secs(20));
}

/// A throwaway PKI made with the openssl command line: a CA, a server certificate for
/// localhost/127.0.0.1 and a client certificate signed by it, and a client certificate signed
/// by another CA.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let pki = Pki {
            dir: dir.join("pki"),
        };
        std::fs::create_dir_all(&pki.dir).unwrap();
        pki.ca("ca");
        pki.ca("other-ca");
        pki.leaf("server", "ca", "DNS:localhost,IP:127.0.0.1", "serverAuth");
        pki.leaf("client", "ca", "DNS:sender.example", "clientAuth");
        pki.leaf("rogue", "other-ca", "DNS:sender.example", "clientAuth");
        pki
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl (Debian package openssl) runs");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=siemrelay test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    fn leaf(&self, name: &str, ca: &str, san: &str, usage: &str) {
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        std::fs::write(
            self.dir.join(format!("{name}.ext")),
            format!(
                "subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
                 extendedKeyUsage={usage}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            ),
        )
        .unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    fn tls_block(&self) -> String {
        format!(
            "{{ cert_file: \"{}\", key_file: \"{}\", client_ca_file: \"{}\" }}",
            self.path("server.pem"),
            self.path("server.key"),
            self.path("ca.pem")
        )
    }
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(args)
        .output()
        .expect("curl (Debian package curl) runs")
}

fn s_client(port: u16, pki: &Pki, version: &str, extra: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            version,
        ])
        .args(["-CAfile", &pki.path("ca.pem")])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client runs");
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// §4: the webhook over TLS with `client_ca_file`: curl without a certificate, or with one
/// from another CA, is refused in the handshake; with a certificate signed by the CA it is
/// served. openssl s_client gets TLS 1.2 and 1.3 but not 1.1. SIGHUP re-reads the files without
/// dropping the listener.
#[tokio::test]
async fn webhook_tls_requires_client_certificates_and_tls_1_2_or_later() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let webhook = free_port();
    let receivers = format!(
        "  webhook: {{ endpoint: \"127.0.0.1:{webhook}\", tls: {} }}",
        pki.tls_block()
    );
    let mut relay = Siemrelay::start(&pipeline(&receivers, "webhook", ""));
    relay.wait_ready(addr(webhook));
    let url = format!("https://localhost:{webhook}/v1/events");
    let resolve = format!("localhost:{webhook}:127.0.0.1");
    let post_with = |cert: Option<&str>| {
        let mut args: Vec<String> = ["--resolve", &resolve, "--cacert", &pki.path("ca.pem")]
            .iter()
            .map(|a| a.to_string())
            .collect();
        if let Some(name) = cert {
            args.extend([
                "--cert".to_string(),
                pki.path(&format!("{name}.pem")),
                "--key".to_string(),
                pki.path(&format!("{name}.key")),
            ]);
        }
        args.extend(
            [
                "-H",
                "content-type: application/json",
                "-d",
                r#"{"event_type":"tls"}"#,
                &url,
            ]
            .map(String::from),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&args)
    };
    let without = post_with(None);
    assert!(
        !without.status.success(),
        "no client certificate must fail: {without:?}"
    );
    let rogue = post_with(Some("rogue"));
    assert!(
        !rogue.status.success(),
        "a certificate from another CA must fail: {rogue:?}"
    );
    let with = post_with(Some("client"));
    assert_eq!(String::from_utf8_lossy(&with.stdout), "200", "{with:?}");
    assert!(wait_until(Duration::from_secs(10), || events_written(
        relay.dir()
    )
    .len()
        == 1));

    let client = [
        "-cert",
        &pki.path("client.pem"),
        "-key",
        &pki.path("client.key"),
    ];
    let (ok, text) = s_client(
        webhook,
        &pki,
        "-tls1_1",
        &["-cipher", "DEFAULT:@SECLEVEL=0"],
    );
    assert!(
        !ok && !text.contains("Protocol: TLSv1.1"),
        "TLS 1.1 must be refused:\n{text}"
    );
    for version in ["-tls1_2", "-tls1_3"] {
        let (ok, text) = s_client(webhook, &pki, version, &client);
        let name = if version == "-tls1_2" {
            "TLSv1.2"
        } else {
            "TLSv1.3"
        };
        assert!(ok && text.contains(name), "{version}:\n{text}");
    }

    // New certificate from another CA on disk, SIGHUP: same port, new certificate.
    pki.leaf(
        "server2",
        "other-ca",
        "DNS:localhost,IP:127.0.0.1",
        "serverAuth",
    );
    std::fs::copy(pki.dir.join("server2.pem"), pki.dir.join("server.pem")).unwrap();
    std::fs::copy(pki.dir.join("server2.key"), pki.dir.join("server.key")).unwrap();
    relay.signal(libc::SIGHUP);
    let trusted_by_other_ca = || {
        let output = curl(&[
            "--resolve",
            &resolve,
            "--cacert",
            &pki.path("other-ca.pem"),
            "--cert",
            &pki.path("client.pem"),
            "--key",
            &pki.path("client.key"),
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"event_type":"reloaded"}"#,
            &url,
        ]);
        String::from_utf8_lossy(&output.stdout) == "200"
    };
    assert!(
        wait_until(Duration::from_secs(20), trusted_by_other_ca),
        "the new certificate is served after SIGHUP; logs:\n{}",
        relay.logs()
    );
    assert!(relay.logs().contains("TLS certificate and key reloaded"));
    relay.terminate(Duration::from_secs(20));
}

/// §4: the OpenTelemetry Python SDK exports over TLS with a client certificate on both OTLP
/// protocols; without the certificate its exports fail.
#[tokio::test]
async fn otlp_python_sdk_exports_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (http, grpc) = (free_port(), free_port());
    let receivers = format!(
        r#"  otlp:
    protocols:
      http: {{ endpoint: "127.0.0.1:{http}", tls: {tls} }}
      grpc: {{ endpoint: "127.0.0.1:{grpc}", tls: {tls} }}"#,
        tls = pki.tls_block()
    );
    let mut relay = Siemrelay::start(&pipeline(&receivers, "otlp", ""));
    relay.wait_ready(addr(http));
    relay.wait_ready(addr(grpc));
    let send = |protocol: &str, endpoint: &str, client_cert: bool| {
        let mut command = Command::new(python());
        command
            .arg(workspace().join("tests/python/otlp_send.py"))
            .args([
                "--protocol",
                protocol,
                "--endpoint",
                endpoint,
                "--count",
                "20",
            ])
            .args(["--timeout", "5", "--ca", &pki.path("ca.pem")])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
            // requests lets these beat the exporter's own CA file (psf/requests#3829).
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE");
        if client_cert {
            command.args(["--client-cert", &pki.path("client.pem")]);
            command.args(["--client-key", &pki.path("client.key")]);
        }
        command.output().expect("python runs")
    };
    let grpc_endpoint = format!("https://localhost:{grpc}");
    let http_endpoint = format!("https://localhost:{http}/v1/logs");
    for (protocol, endpoint) in [("grpc", &grpc_endpoint), ("http", &http_endpoint)] {
        let refused = send(protocol, endpoint, false);
        assert!(
            !refused.status.success(),
            "{protocol} without a client certificate must fail"
        );
        let sent = send(protocol, endpoint, true);
        assert!(
            sent.status.success(),
            "{protocol}: {}{}",
            String::from_utf8_lossy(&sent.stdout),
            String::from_utf8_lossy(&sent.stderr)
        );
    }
    assert!(wait_until(Duration::from_secs(20), || events_written(
        relay.dir()
    )
    .len()
        == 40));
    relay.terminate(Duration::from_secs(20));
}

/// §4: a client outside `allowed_cidrs` gets 403 (OTLP/gRPC PERMISSION_DENIED) before its
/// body is read; nothing is written.
#[tokio::test]
async fn clients_outside_allowed_cidrs_are_refused() {
    let (webhook, http, grpc) = (free_port(), free_port(), free_port());
    let receivers = format!(
        r#"  webhook: {{ endpoint: "127.0.0.1:{webhook}", allowed_cidrs: ["10.0.0.0/8"] }}
  otlp:
    protocols:
      http: {{ endpoint: "127.0.0.1:{http}", allowed_cidrs: ["10.0.0.0/8"] }}
      grpc: {{ endpoint: "127.0.0.1:{grpc}", allowed_cidrs: ["10.0.0.0/8"] }}"#
    );
    let mut relay = Siemrelay::start(&pipeline(&receivers, "webhook, otlp", ""));
    relay.wait_ready(addr(webhook));
    relay.wait_ready(addr(grpc));
    let response = post(
        &format!("http://127.0.0.1:{webhook}/v1/events"),
        "application/json",
        false,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 403);
    let response = post(
        &format!("http://127.0.0.1:{http}/v1/logs"),
        "application/x-protobuf",
        false,
        empty_records(1),
    )
    .await;
    assert_eq!(response.status(), 403);
    let request_file = relay.dir().join("one.bin");
    std::fs::write(&request_file, empty_records(1)).unwrap();
    let output = Command::new(python())
        .arg(workspace().join("tests/python/otlp_raw_grpc.py"))
        .args(["--endpoint", &format!("127.0.0.1:{grpc}"), "--file"])
        .arg(&request_file)
        .output()
        .expect("python runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "PERMISSION_DENIED"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(events_written(relay.dir()).is_empty());
    relay.terminate(Duration::from_secs(20));
}

/// §5: observed_timestamp is the receive time (a sender's value kept in attributes, a signed
/// event's kept as signed), a repeated key loses nothing, an integer wider than 64 bits is
/// refused naming its field, a replayed signed request gets 401, and a sender id that is not
/// a UUID gives the same UUIDv5 on a retry.
#[tokio::test]
async fn what_siemrelay_writes_is_what_it_saw() {
    let (plain, signed) = (free_port(), free_port());
    let receivers = format!(
        r#"  webhook: {{ endpoint: "127.0.0.1:{plain}" }}
  webhook/stripe:
    endpoint: "127.0.0.1:{signed}"
    verify: {{ scheme: stripe, secrets: ["whsec_e2e"] }}"#
    );
    let mut relay = Siemrelay::start(&pipeline(&receivers, "webhook, webhook/stripe", ""));
    relay.wait_ready(addr(plain));
    relay.wait_ready(addr(signed));
    let url = format!("http://127.0.0.1:{plain}/v1/events");
    let body = br#"{"event_id":"evt_42","event_type":"x","observed_timestamp":"2001-01-01T00:00:00Z","user":"ann","user":"bob"}"#;
    for _ in 0..2 {
        assert_eq!(
            post(&url, "application/json", false, body.to_vec())
                .await
                .status(),
            200
        );
    }
    let signed_event = br#"{"event_id":"0192f0c4-8a52-7c3e-9d4b-2f6a1b3c4d5e","event_type":"fwd","observed_timestamp":"2001-01-01T00:00:00Z","signature":{"alg":"HMAC-SHA256","kid":"k","value":"00"}}"#;
    assert_eq!(
        post(&url, "application/json", false, signed_event.to_vec())
            .await
            .status(),
        200
    );
    let wide = post(
        &url,
        "application/json",
        false,
        br#"{"n":{"big":123456789012345678901234567890}}"#.to_vec(),
    )
    .await;
    assert_eq!(wide.status(), 400);
    assert!(wide.text().await.unwrap().contains("n.big"));

    let stripe_body = r#"{"event_type":"payment"}"#;
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mac = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec_e2e").unwrap();
        mac.update(format!("{t}.{stripe_body}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let stripe = || {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{signed}/v1/events"))
            .header("content-type", "application/json")
            .header("stripe-signature", format!("t={t},v1={mac}"))
            .body(stripe_body)
            .send()
    };
    assert_eq!(stripe().await.unwrap().status(), 200);
    let replay = stripe().await.unwrap();
    assert_eq!(replay.status(), 401);
    assert!(replay.text().await.unwrap().contains("replay"));

    assert!(wait_until(Duration::from_secs(10), || events_written(
        relay.dir()
    )
    .len()
        == 4));
    let events = events_written(relay.dir());
    let retried: Vec<&Value> = events.iter().filter(|e| e["event_type"] == "x").collect();
    assert_eq!(retried.len(), 2);
    assert_eq!(
        retried[0]["event_id"], retried[1]["event_id"],
        "a retry keeps its id"
    );
    let id: uuid::Uuid = retried[0]["event_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version_num(), 5);
    assert_eq!(retried[0]["attributes"]["event_id"], "evt_42");
    assert_ne!(retried[0]["observed_timestamp"], "2001-01-01T00:00:00Z");
    assert_eq!(
        retried[0]["attributes"]["observed_timestamp"],
        "2001-01-01T00:00:00Z"
    );
    assert_eq!(retried[0]["attributes"]["user"], "ann");
    assert_eq!(
        retried[0]["attributes"]["_duplicate"]["user"],
        serde_json::json!(["bob"])
    );
    let forwarded = events.iter().find(|e| e["event_type"] == "fwd").unwrap();
    assert_eq!(
        forwarded["observed_timestamp"], "2001-01-01T00:00:00Z",
        "kept as signed"
    );
    relay.terminate(Duration::from_secs(20));
}
