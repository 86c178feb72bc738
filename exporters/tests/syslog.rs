//! The `syslog` and `qradar` exporters through a real `ExporterHandle` against a real syslog
//! server (Debian's rsyslogd, started by the test) and a fake QRadar HTTP Receiver.

use serde_json::{Value, json};
use siemrelay_core::{Event, Severity, Timestamp};
use siemrelay_e2e::fake::qradar_http::FakeQradarHttp;
use siemrelay_e2e::fake::rsyslog::{Rsyslog, RsyslogTls};
use siemrelay_e2e::fake::syslog_parse::{parse_cef, parse_leef, parse_rfc5424};
use siemrelay_exporters::delivery::config::WhenFull;
use siemrelay_exporters::delivery::dead_letter::DeadLetter;
use siemrelay_exporters::delivery::memory_queue::MemoryQueue;
use siemrelay_exporters::delivery::queue::SizedBatch;
use siemrelay_exporters::delivery::{
    BatchPolicy, DeliveryConfig, ExporterHandle, Sink, test_delivery,
};
use siemrelay_exporters::qradar::{self, QradarConfig};
use siemrelay_exporters::syslog::{self, SyslogConfig};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: usize = 10_000;

struct Rig {
    handle: ExporterHandle,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn start(sink: Arc<dyn Sink>, concurrency: usize) -> Rig {
        let config: DeliveryConfig = serde_json::from_value(json!({
            "sending": { "concurrency": concurrency, "timeout": "5s" },
            "retry": { "initial_interval": "20ms", "max_interval": "100ms", "max_elapsed_time": "60s" }
        }))
        .expect("delivery config");
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = Arc::new(MemoryQueue::new(
            "syslog/t",
            100_000,
            512 << 20,
            WhenFull::Backpressure,
        ));
        let batch = BatchPolicy {
            min_events: 500,
            max_events: 0,
            linger: Duration::from_millis(20),
        };
        let handle = ExporterHandle::start(
            "syslog/t",
            sink,
            &config,
            batch,
            queue,
            DeadLetter::new(dir.path(), "syslog/t"),
        );
        Rig { handle, _dir: dir }
    }

    async fn push(&self, events: &[Event]) {
        for chunk in events.chunks(500) {
            let batch = SizedBatch::new(chunk.to_vec());
            let queue = self.handle.queue();
            let reservation = queue
                .try_reserve(batch.len(), batch.total_bytes)
                .expect("room in the queue");
            queue.push(reservation, batch).await.expect("push");
        }
    }

    async fn drain(&self) {
        let report = self
            .handle
            .shutdown(Instant::now() + Duration::from_secs(60))
            .await;
        assert!(report.drained, "not drained: {report:?}");
    }
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut event = Event::new(if i % 2 == 0 {
                "policy_violation"
            } else {
                "lockout"
            });
            event.timestamp = Timestamp(1_718_000_000_000_000_000 + i as i64 * 1_000_000);
            event.severity = Severity::from_name(["low", "medium", "high", "critical"][i % 4])
                .unwrap_or_default();
            event.source = Some("toktra".into());
            event.summary = Some(format!("event {i} with = and | and \\ inside"));
            event.attributes.insert("seq".into(), i.into());
            event
                .attributes
                .insert("user_email".into(), format!("user{i}@example.com").into());
            event.attributes.insert(
                "src".into(),
                format!("10.0.{}.{}", i / 256 % 256, i % 256).into(),
            );
            event.attributes.insert(
                "tags".into(),
                json!({"env": "prod", "note": "tab\there^caret"}),
            );
            event
        })
        .collect()
}

fn sink<C: serde::de::DeserializeOwned>(config: Value) -> C {
    serde_json::from_value(config).expect("exporter config")
}

fn qradar_sink(config: Value) -> Arc<dyn Sink> {
    let config: QradarConfig = sink(config);
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    qradar::build("qradar", config, Duration::from_secs(5)).expect("build qradar")
}

/// Waits (off the async threads) until rsyslog wrote at least `n` lines.
async fn received(server: &Rsyslog, n: usize, timeout: Duration) -> Vec<String> {
    tokio::task::block_in_place(|| server.wait_for(timeout, |lines| lines.len() >= n))
}

/// Parses every line as RFC 5424 + LEEF, checks the fields against the sent events, and returns
/// how often each event arrived.
fn check_leef_lines(lines: &[String], sent: &[Event]) -> HashMap<String, usize> {
    let by_id: HashMap<String, &Event> = sent.iter().map(|e| (e.event_id.to_string(), e)).collect();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in lines {
        let syslog = parse_rfc5424(line).unwrap_or_else(|e| panic!("{e}"));
        let leef = parse_leef(&syslog.msg).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let id = leef
            .get("event_id")
            .expect("event_id attribute")
            .to_string();
        let event = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("unknown event id {id}"));
        let seq = event.attributes["seq"].as_u64().expect("seq");
        assert_eq!(syslog.hostname, "relay-test");
        assert_eq!(syslog.app_name, "siemrelay");
        assert_eq!(syslog.msgid, event.event_type);
        let syslog_severity = match event.severity.text.as_str() {
            "low" => 6,
            "medium" => 4,
            "high" => 3,
            _ => 2,
        };
        assert_eq!(syslog.pri, 20 * 8 + syslog_severity, "{line}");
        assert_eq!(leef.vendor, "siemrelay");
        assert_eq!(leef.event_id, event.event_type);
        assert_eq!(leef.get("seq"), Some(seq.to_string().as_str()));
        assert_eq!(
            leef.get("usrName"),
            Some(format!("user{seq}@example.com").as_str())
        );
        assert_eq!(leef.get("src"), event.attributes["src"].as_str());
        assert_eq!(leef.get("msg"), event.summary.as_deref());
        assert_eq!(leef.get("tags_env"), Some("prod"));
        let sev = ["3", "5", "8", "10"][seq as usize % 4];
        assert_eq!(leef.get("sev"), Some(sev));
        let millis = event
            .timestamp
            .to_datetime()
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string();
        assert_eq!(leef.get("devTime"), Some(millis.as_str()));
        *counts.entry(id).or_default() += 1;
    }
    counts
}

async fn ten_thousand_leef(server: &Rsyslog, extra: Value) {
    let mut config = json!({ "endpoint": server.endpoint(), "hostname": "relay-test" });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    let rig = Rig::start(qradar_sink(config), 4);
    let sent = events(N);
    rig.push(&sent).await;
    rig.drain().await;
    let lines = received(server, N, Duration::from_secs(20)).await;
    let counts = check_leef_lines(&lines, &sent);
    assert_eq!(counts.len(), N, "every event arrived");
    assert_eq!(lines.len(), N, "and once each");
    assert_eq!(rig.handle.status().snapshot().events_sent, N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leef_over_tcp_with_lf_framing_arrives_once_each() {
    let server = Rsyslog::start(None);
    ten_thousand_leef(&server, json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leef_over_tcp_with_octet_counting_arrives_once_each() {
    let server = Rsyslog::start(None);
    ten_thousand_leef(
        &server,
        json!({ "framing": "octet_counting", "leef": { "delimiter": "^" } }),
    )
    .await;
}

/// A test CA, a server certificate for localhost/127.0.0.1 and a client certificate (PEM files).
struct Pki {
    ca: std::path::PathBuf,
    server_cert: std::path::PathBuf,
    server_key: std::path::PathBuf,
    client_cert: std::path::PathBuf,
    client_key: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "siemrelay test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &issuer).expect("leaf cert");
        (cert.pem(), key.serialize_pem())
    };
    let (server_pem, server_key_pem) = leaf(
        vec!["localhost".into(), "127.0.0.1".into()],
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_pem, client_key_pem) = leaf(
        vec!["relay.test".into()],
        "relay.test",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    Pki {
        ca: write("ca.pem", &ca_cert.pem()),
        server_cert: write("server.pem", &server_pem),
        server_key: write("server-key.pem", &server_key_pem),
        client_cert: write("client.pem", &client_pem),
        client_key: write("client-key.pem", &client_key_pem),
        _dir: dir,
    }
}

fn tls_server(pki: &Pki) -> Rsyslog {
    Rsyslog::start(Some(RsyslogTls {
        ca_file: pki.ca.clone(),
        cert_file: pki.server_cert.clone(),
        key_file: pki.server_key.clone(),
        require_client_cert: true,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leef_over_mutual_tls_arrives_once_each() {
    let pki = pki();
    let server = tls_server(&pki);
    let tls = json!({
        "ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key, "server_name": "localhost"
    });
    ten_thousand_leef(
        &server,
        json!({ "transport": "tls", "framing": "octet_counting", "tls": tls }),
    )
    .await;
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_reported_with_a_hint() {
    let pki = pki();
    let server = tls_server(&pki);
    // No client certificate: rsyslog (x509/certvalid) refuses the session after the handshake.
    for confirm in ["peer_close", "tcp_ack"] {
        let no_client_cert = qradar_sink(json!({
            "endpoint": server.endpoint(), "transport": "tls", "confirm": confirm,
            "tls": { "ca_file": path_text(&pki.ca), "server_name": "localhost" }
        }));
        let report = test_delivery(no_client_cert.as_ref(), Duration::from_secs(5)).await;
        assert!(!report.ok, "{confirm}: {report:?}");
    }
    // Unknown CA: the handshake fails on our side.
    let unknown_ca = qradar_sink(json!({
        "endpoint": server.endpoint(), "transport": "tls",
        "tls": { "cert_file": path_text(&pki.client_cert), "key_file": path_text(&pki.client_key), "server_name": "localhost" }
    }));
    let report = test_delivery(unknown_ca.as_ref(), Duration::from_secs(5)).await;
    assert!(!report.ok);
    assert!(
        report
            .reply
            .as_deref()
            .unwrap_or_default()
            .contains("TLS handshake"),
        "{report:?}"
    );
    assert!(
        report
            .hint
            .as_deref()
            .unwrap_or_default()
            .contains("tls.ca_file"),
        "{report:?}"
    );
    // With everything right, the test event arrives.
    let good = qradar_sink(json!({
        "endpoint": server.endpoint(), "transport": "tls", "hostname": "relay-test",
        "tls": { "ca_file": path_text(&pki.ca), "cert_file": path_text(&pki.client_cert),
                 "key_file": path_text(&pki.client_key), "server_name": "localhost" }
    }));
    let report = test_delivery(good.as_ref(), Duration::from_secs(5)).await;
    assert!(report.ok, "{report:?}");
    let lines = received(&server, 1, Duration::from_secs(10)).await;
    assert!(
        lines.iter().any(|l| l.contains(&report.event_id)),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cef_over_syslog_parses_back() {
    let server = Rsyslog::start(None);
    let config: SyslogConfig = sink(json!({
        "endpoint": server.endpoint(), "format": "cef", "hostname": "relay-test", "facility": "local0",
        "cef": { "vendor": "Toktra", "product": "Gateway", "custom_strings": [{ "label": "Environment", "attribute": "tags.env" }] }
    }));
    assert!(config.validate().is_empty());
    let rig = Rig::start(
        syslog::build("syslog/arcsight", config, Duration::from_secs(5)).expect("build"),
        2,
    );
    let sent = events(1_000);
    rig.push(&sent).await;
    rig.drain().await;
    let lines = received(&server, sent.len(), Duration::from_secs(20)).await;
    assert_eq!(lines.len(), sent.len());
    let by_id: HashMap<String, &Event> = sent.iter().map(|e| (e.event_id.to_string(), e)).collect();
    for line in &lines {
        let syslog = parse_rfc5424(line).expect("rfc 5424");
        assert_eq!(syslog.pri / 8, 16, "local0");
        let cef = parse_cef(&syslog.msg).unwrap_or_else(|e| panic!("{e}: {line}"));
        let event = by_id[cef.get("externalId").expect("externalId")];
        assert_eq!(cef.header[0], "Toktra");
        assert_eq!(cef.header[3], event.event_type);
        assert_eq!(cef.header[4], event.summary.as_deref().unwrap_or_default());
        assert_eq!(cef.get("msg"), event.summary.as_deref());
        assert_eq!(
            cef.get("rt"),
            Some(event.timestamp.as_epoch_millis().to_string().as_str())
        );
        assert_eq!(cef.get("cs1"), Some("prod"));
        assert_eq!(cef.get("cs1Label"), Some("Environment"));
        assert_eq!(cef.get("tags_note"), Some("tab\there^caret"));
        assert_eq!(cef.get("suser"), event.attributes["user_email"].as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_restarted_mid_stream_loses_nothing_with_peer_close() {
    let mut server = Rsyslog::start(None);
    let rig = Rig::start(
        qradar_sink(json!({
            "endpoint": server.endpoint(), "hostname": "relay-test", "confirm": "peer_close", "max_events": 100
        })),
        2,
    );
    let sent = events(N);
    // Feed the queue over about a second so that the stop lands mid-stream.
    let feeder = {
        let queue = rig.handle.queue().clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            for chunk in sent.chunks(100) {
                let batch = SizedBatch::new(chunk.to_vec());
                let reservation = queue
                    .try_reserve(batch.len(), batch.total_bytes)
                    .expect("room");
                queue.push(reservation, batch).await.expect("push");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let before_stop = received(&server, 2_000, Duration::from_secs(20))
        .await
        .len();
    tokio::task::block_in_place(|| server.stop());
    let at_stop = server.lines().len();
    assert!(
        at_stop < N,
        "the stop should land mid-stream ({at_stop} lines already)"
    );
    // Down for a moment: the exporter's sends fail and are retried.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| server.start_again());
    feeder.await.expect("feeder");
    rig.drain().await;
    let lines = received(&server, N, Duration::from_secs(30)).await;
    let counts = check_leef_lines(&lines, &sent);
    let missing = N - counts.len();
    assert_eq!(
        missing, 0,
        "{missing} events lost (stopped after {before_stop}..{at_stop} lines)"
    );
    let duplicates = lines.len() - N;
    eprintln!(
        "stopped at {before_stop}..{at_stop} lines; {duplicates} duplicates after the restart"
    );
    // Only batches in flight at the stop can repeat: concurrency 2 × 100 events, plus retries.
    assert!(duplicates <= 1_000, "{duplicates} duplicates");
    assert!(
        rig.handle.status().snapshot().events_retried > 0,
        "the stop caused retries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_receiver_gets_leef_lines_and_retries_on_503() {
    let receiver = FakeQradarHttp::start();
    receiver.script([503]);
    let rig = Rig::start(
        qradar_sink(json!({
            "endpoint": format!("{}/", receiver.url()), "transport": "http", "max_events": 400,
            "leef": { "vendor": "Toktra", "product": "Gateway", "version": "2.1" }
        })),
        2,
    );
    let sent = events(2_000);
    rig.push(&sent).await;
    assert!(receiver.lines_reached(2_000, Duration::from_secs(20)).await);
    rig.drain().await;
    let by_id: HashMap<String, &Event> = sent.iter().map(|e| (e.event_id.to_string(), e)).collect();
    receiver.read(|state| {
        assert_eq!(state.lines.len(), 2_000, "once each");
        assert!(
            state.requests >= 6,
            "max_events 400 → 5 posts + the refused one"
        );
        assert_eq!(
            state.content_type.as_deref(),
            Some("text/plain; charset=utf-8")
        );
        for line in &state.lines {
            let leef = parse_leef(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(
                (leef.vendor.as_str(), leef.product.as_str()),
                ("Toktra", "Gateway")
            );
            let event = by_id[leef.get("event_id").expect("event_id")];
            assert_eq!(leef.event_id, event.event_type);
            assert_eq!(
                leef.get("seq"),
                Some(event.attributes["seq"].to_string().as_str())
            );
        }
    });
    assert!(rig.handle.status().snapshot().events_retried > 0);
}
