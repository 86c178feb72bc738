//! Issue 23: the `syslog` receiver with real senders, through the real binary to a `file`
//! exporter.
//!
//! - rsyslog `omfwd` (Debian `rsyslog`, `rsyslog-gnutls`; started unprivileged with its own
//!   config, an `imfile` input and `-i <pidfile>`): RFC 5424 over TCP with LF framing, with
//!   octet counting, and over mutual TLS (`StreamDriver="gtls"`).
//! - syslog-ng from Debian's `syslog-ng-core` (unpacked under `target/syslog-ng` by
//!   `scripts/setup-test-env.sh`: the package conflicts with rsyslog) in the foreground with its
//!   own config and a file source: RFC 3164 over TCP.
//! - Python's `logging.handlers.SysLogHandler` over UDP.
//!
//! Each sends 10,000 messages; every one arrives exactly once with its fields. Under
//! backpressure (the file exporter's output blocked, a 200-event queue): rsyslog is held back
//! (siemrelay stops reading) and everything arrives once unblocked; Python's UDP losses are
//! counted in `siemrelay_receiver_events_dropped_total` and equal what did not arrive.
//! Round trip: siemrelay's own `syslog` (CEF) and `qradar` (LEEF) exporters into this receiver.

use serde_json::{Value, json};
use siemrelay_e2e::fake::rsyslog::rsyslogd;
use siemrelay_e2e::{Siemrelay, free_port, python, read_ndjson_files, repo};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MESSAGES: usize = 10_000;

/// A relay with a syslog receiver (TCP, optionally TLS, and UDP), an admin listener for
/// `/metrics` and a file exporter writing `./out/events*.ndjson`.
struct Relay {
    relay: Siemrelay,
    tcp: u16,
    udp: u16,
    admin: u16,
}

fn start_relay(tls: Option<&Pki>, queue: &str, blocked: bool) -> Relay {
    let (tcp, udp, admin) = (free_port(), free_port(), free_port());
    let tls = tls.map_or(String::new(), |pki| {
        format!(
            ", tls: {{ cert_file: \"{}\", key_file: \"{}\", client_ca_file: \"{}\" }}",
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display()
        )
    });
    let config = format!(
        r#"
receivers:
  syslog:
    protocols:
      tcp: {{ endpoint: "127.0.0.1:{tcp}"{tls} }}
      udp: {{ endpoint: "127.0.0.1:{udp}" }}
exporters:
  file: {{ path: "./out/events.ndjson", queue: {queue}, retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 1h }} }}
service:
  shutdown_timeout: 10s
  admin: {{ endpoint: "127.0.0.1:{admin}" }}
  pipelines:
    logs: {{ receivers: [syslog], exporters: [file] }}
"#
    );
    let dir = tempfile::tempdir().expect("tempdir");
    if blocked {
        std::fs::write(dir.path().join("out"), b"blocked").expect("block the output");
    }
    let mut relay = Siemrelay::start_in(dir, &config, &[], &[]);
    relay.wait_ready(([127, 0, 0, 1], admin).into());
    relay.wait_ready(([127, 0, 0, 1], tcp).into());
    Relay {
        relay,
        tcp,
        udp,
        admin,
    }
}

impl Relay {
    fn events(&self) -> Vec<Value> {
        read_ndjson_files(&self.relay.dir().join("out"), "events")
    }

    fn unblock(&self) {
        siemrelay_e2e::intake::unblock_out(&self.relay);
    }

    /// The sum of a counter's series for this receiver (0 when absent).
    async fn counter(&self, name: &str) -> u64 {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.admin))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|line| line.starts_with(name) && line.contains("receiver=\"syslog\""))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Waits until `done(events)` holds, as long as events keep arriving (30 s without
    /// progress ends the wait); returns the events.
    async fn wait_events(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut last = (0, Instant::now());
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            if events.len() != last.0 {
                last = (events.len(), Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(30) {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Events by their `summary`, checking each arrived once.
fn by_summary(events: &[Value], expected: usize, relay: &Relay) -> HashMap<String, Value> {
    let mut map = HashMap::new();
    for event in events {
        let summary = event["summary"].as_str().unwrap_or_default().to_string();
        assert!(
            map.insert(summary.clone(), event.clone()).is_none(),
            "{summary:?} arrived twice"
        );
    }
    assert_eq!(
        map.len(),
        expected,
        "events arrived: {} of {expected}\nlogs:\n{}",
        map.len(),
        relay.relay.logs()
    );
    map
}

fn line(i: usize) -> String {
    format!("msg-{i:05} action=block user=alice|bob path=C:\\temp")
}

fn write_lines(path: &Path) {
    let text: String = (0..MESSAGES).map(|i| line(i) + "\n").collect();
    std::fs::write(path, text).expect("write the sender's input file");
}

/// A sender process that is stopped when dropped.
struct Sender {
    child: Child,
    dir: tempfile::TempDir,
}

impl Sender {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sender.log")).unwrap_or_default()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut command: Command, dir: tempfile::TempDir) -> Sender {
    let log = std::fs::File::create(dir.path().join("sender.log")).expect("sender log");
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    Sender { child, dir }
}

/// rsyslogd reading `in.log` with `imfile` and forwarding it with `omfwd` in RFC 5424.
fn rsyslog_sender(port: u16, framing: &str, pki: Option<&Pki>) -> Sender {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    write_lines(&dir.path().join("in.log"));
    let (globals, driver) = match pki {
        Some(pki) => (
            format!(
                " DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                pki.ca.display(),
                pki.client_cert.display(),
                pki.client_key.display()
            ),
            " StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"localhost\"",
        ),
        None => (String::new(), ""),
    };
    let conf = format!(
        r#"global(workDirectory="{d}" maxMessageSize="64k"{globals})
module(load="imfile")
input(type="imfile" File="{d}/in.log" Tag="fwapp" Facility="local3" Severity="warning" ruleset="forward")
ruleset(name="forward") {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" TCP_Framing="{framing}"
         template="RSYSLOG_SyslogProtocol23Format"{driver}
         queue.type="LinkedList" queue.size="100000" action.resumeRetryCount="-1" action.resumeInterval="1")
}}
"#
    );
    std::fs::write(dir.path().join("rsyslog.conf"), conf).expect("rsyslog.conf");
    let mut command = Command::new(rsyslogd());
    command
        .arg("-n")
        .arg("-f")
        .arg(dir.path().join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"));
    spawn(command, dir)
}

/// Checks what rsyslog's messages became: RFC 5424 header fields and the line as summary.
fn check_rsyslog_event(event: &Value) {
    let syslog = &event["attributes"]["syslog"];
    assert_eq!(syslog["protocol"], "rfc5424", "{event}");
    assert_eq!(syslog["facility"], 19, "{event}");
    assert_eq!(syslog["facility_name"], "local3", "{event}");
    assert_eq!(syslog["severity"], 4, "{event}");
    assert_eq!(syslog["app_name"], "fwapp", "{event}");
    assert_eq!(syslog["peer"], "127.0.0.1", "{event}");
    assert!(
        syslog["hostname"].as_str().is_some_and(|h| !h.is_empty()),
        "{event}"
    );
    assert_eq!(event["severity"], "warning", "{event}");
    assert_eq!(event["severity_number"], 13, "{event}");
    assert_eq!(event["source"], "fwapp", "{event}");
    assert_eq!(event["event_type"], "syslog", "{event}");
    assert_ne!(
        event["timestamp"], event["observed_timestamp"],
        "the sender's time is kept: {event}"
    );
}

async fn rsyslog_case(framing: &str, tls: bool) {
    let pki = tls.then(pki);
    let relay = start_relay(pki.as_ref(), "{ type: memory, max_events: 20000 }", false);
    let sender = rsyslog_sender(relay.tcp, framing, pki.as_ref());
    let events = relay.wait_events(|e| e.len() >= MESSAGES).await;
    let events = by_summary(&events, MESSAGES, &relay);
    for i in 0..MESSAGES {
        let event = events
            .get(&line(i))
            .unwrap_or_else(|| panic!("{} missing; rsyslog: {}", line(i), sender.log()));
        check_rsyslog_event(event);
    }
    assert_eq!(
        relay
            .counter("siemrelay_receiver_events_received_total")
            .await,
        MESSAGES as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_omfwd_tcp_lf_framing_delivers_every_message_once() {
    rsyslog_case("traditional", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_omfwd_octet_counted_delivers_every_message_once() {
    rsyslog_case("octet-counted", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_omfwd_over_mutual_tls_delivers_every_message_once() {
    rsyslog_case("octet-counted", true).await;
}

/// syslog-ng as unpacked by scripts/setup-test-env.sh.
fn syslog_ng_root() -> PathBuf {
    let root = repo().join("target/syslog-ng");
    assert!(
        root.join("usr/sbin/syslog-ng").exists(),
        "syslog-ng is not unpacked under {}: run `bash scripts/setup-test-env.sh` (as root; it \
         unpacks Debian's syslog-ng-core there, since the package conflicts with rsyslog)",
        root.display()
    );
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_ng_rfc3164_over_tcp_delivers_every_message_once() {
    let root = syslog_ng_root();
    let relay = start_relay(None, "{ type: memory, max_events: 20000 }", false);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    write_lines(&dir.path().join("in.log"));
    let conf = format!(
        r#"@version: 3.38
options {{ chain_hostnames(no); stats-freq(0); log-fifo-size(20000); }};
source s_in {{ file("{d}/in.log" follow-freq(0.1) flags(no-parse) program-override("ngapp") default-facility(local5) default-priority(err) log-iw-size(20000)); }};
destination d_out {{ network("127.0.0.1" port({port}) transport("tcp")); }};
log {{ source(s_in); destination(d_out); }};
"#,
        port = relay.tcp
    );
    std::fs::write(dir.path().join("syslog-ng.conf"), conf).expect("syslog-ng.conf");
    let mut command = Command::new(root.join("usr/sbin/syslog-ng"));
    command
        .env(
            "LD_LIBRARY_PATH",
            // Debian's packages put some libraries under /lib (libpcre3's libpcre.so.3),
            // others under /usr/lib: both, so nothing depends on the host having them installed.
            format!(
                "{}:{}:{}",
                root.join("usr/lib/x86_64-linux-gnu").display(),
                root.join("lib/x86_64-linux-gnu").display(),
                root.join("usr/lib/syslog-ng").display()
            ),
        )
        .arg("-F")
        .arg("--no-caps")
        .arg(format!("--cfgfile={d}/syslog-ng.conf"))
        .arg(format!(
            "--module-path={}",
            root.join("usr/lib/syslog-ng/3.38").display()
        ))
        .arg(format!("--persist-file={d}/syslog-ng.persist"))
        .arg(format!("--pidfile={d}/syslog-ng.pid"))
        .arg(format!("--control={d}/syslog-ng.ctl"));
    let sender = spawn(command, dir);
    let events = relay.wait_events(|e| e.len() >= MESSAGES).await;
    let events = by_summary(&events, MESSAGES, &relay);
    for i in 0..MESSAGES {
        let event = events
            .get(&line(i))
            .unwrap_or_else(|| panic!("{} missing; syslog-ng: {}", line(i), sender.log()));
        let syslog = &event["attributes"]["syslog"];
        assert_eq!(syslog["protocol"], "rfc3164", "{event}");
        assert_eq!(syslog["facility_name"], "local5", "{event}");
        assert_eq!(syslog["severity_name"], "err", "{event}");
        assert_eq!(syslog["app_name"], "ngapp", "{event}");
        assert!(syslog["hostname"].is_string(), "{event}");
        assert_eq!(event["severity_number"], 17, "{event}");
        assert_eq!(event["source"], "ngapp", "{event}");
    }
}

/// Python's SysLogHandler over UDP: `count` messages `msg-NNNNN …` from logger `pyapp`, paced
/// (2 ms after every 25; every 100 still lost a burst to the socket buffer once in a suite run
/// on two busy cores): UDP has no backpressure, so an unpaced burst into a receiver starved of
/// CPU (a loaded CI machine) overflows the socket buffer; those losses are counted (the test of
/// the drop counter shows it), but this test is about every delivered message arriving once.
fn python_udp(port: u16, count: usize) -> std::process::Output {
    let script = r#"
import logging, logging.handlers, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
handler = logging.handlers.SysLogHandler(address=("127.0.0.1", port),
    facility=logging.handlers.SysLogHandler.LOG_LOCAL2)
handler.setFormatter(logging.Formatter("%(name)s[%(process)d]: %(message)s"))
log = logging.getLogger("pyapp")
log.addHandler(handler)
log.propagate = False
for i in range(count):
    log.warning("msg-%05d action=block user=alice|bob path=C:\\temp", i)
    if i % 25 == 24:
        time.sleep(0.002)
"#;
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(count.to_string())
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_syslog_handler_over_udp_delivers_every_message_once() {
    let relay = start_relay(None, "{ type: memory, max_events: 20000 }", false);
    python_udp(relay.udp, MESSAGES);
    let events = relay.wait_events(|e| e.len() >= MESSAGES).await;
    let dropped = relay
        .counter("siemrelay_receiver_events_dropped_total")
        .await;
    assert_eq!(dropped, 0, "no backpressure, nothing dropped");
    let events = by_summary(&events, MESSAGES, &relay);
    for i in 0..MESSAGES {
        let event = &events[&line(i)];
        let syslog = &event["attributes"]["syslog"];
        assert_eq!(syslog["facility"], 18, "{event}");
        assert_eq!(syslog["severity_name"], "warning", "{event}");
        assert_eq!(syslog["app_name"], "pyapp", "{event}");
        assert!(syslog["procid"].is_number(), "{event}");
        assert_eq!(event["severity_number"], 13, "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_losses_under_backpressure_are_counted_and_equal_what_did_not_arrive() {
    let relay = start_relay(None, "{ type: memory, max_events: 200 }", true);
    python_udp(relay.udp, MESSAGES);
    // The queue holds 200; the rest waits in the receiver or is dropped and counted.
    let deadline = Instant::now() + Duration::from_secs(30);
    while relay
        .counter("siemrelay_receiver_events_dropped_total")
        .await
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "nothing was counted as dropped; logs:\n{}",
            relay.relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.unblock();
    // Wait on progress until what arrived plus what was counted as dropped covers every message.
    let mut progress = (0, Instant::now());
    let (events, dropped) = loop {
        let events = relay.events();
        let dropped = relay
            .counter("siemrelay_receiver_events_dropped_total")
            .await as usize;
        if events.len() + dropped >= MESSAGES {
            break (events, dropped);
        }
        if events.len() != progress.0 {
            progress = (events.len(), Instant::now());
        } else if progress.1.elapsed() > Duration::from_secs(30) {
            break (events, dropped);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let arrived = by_summary(&events, events.len(), &relay);
    assert!(arrived.len() >= 200, "the queue's 200 arrived");
    assert_eq!(
        dropped,
        MESSAGES - arrived.len(),
        "every UDP message that did not arrive is counted as dropped; logs:\n{}",
        relay.relay.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_senders_are_held_back_by_a_full_queue_and_everything_arrives() {
    let relay = start_relay(None, "{ type: memory, max_events: 200 }", true);
    let sender = rsyslog_sender(relay.tcp, "octet-counted", None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !relay.relay.logs().contains("syslog reading paused") {
        assert!(
            Instant::now() < deadline,
            "the receiver never paused; logs:\n{}\nrsyslog: {}",
            relay.relay.logs(),
            sender.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Held back: no more was taken than the queue holds, and nothing was dropped.
    let received = relay
        .counter("siemrelay_receiver_events_received_total")
        .await;
    assert!(received <= 200, "received {received} with room for 200");
    relay.unblock();
    let events = relay.wait_events(|e| e.len() >= MESSAGES).await;
    let events = by_summary(&events, MESSAGES, &relay);
    for event in events.values() {
        check_rsyslog_event(event);
    }
    assert_eq!(
        relay
            .counter("siemrelay_receiver_events_dropped_total")
            .await,
        0
    );
    assert!(relay.relay.logs().contains("syslog reading resumed"));
}

/// What the LEEF encoder documents for a value (docs/exporters/syslog.md): the delimiter
/// becomes a space, CR and LF the two characters `\r` and `\n`; nothing else changes.
fn leef_value(value: &str, delimiter: char) -> String {
    value
        .chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            c if c == delimiter => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cef_and_leef_from_siemrelays_own_exporters_round_trip_with_every_escaping_case() {
    let (webhook, tcp, admin) = (free_port(), free_port(), free_port());
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
  syslog:
    protocols:
      tcp: {{ endpoint: "127.0.0.1:{tcp}" }}
exporters:
  syslog/cef: {{ endpoint: "127.0.0.1:{tcp}", transport: tcp, framing: octet_counting, format: cef, app_name: edge }}
  qradar: {{ endpoint: "127.0.0.1:{tcp}", framing: lf, app_name: edge, leef: {{ delimiter: "^" }} }}
  file: {{ path: "./out/events.ndjson" }}
service:
  admin: {{ endpoint: "127.0.0.1:{admin}" }}
  pipelines:
    out: {{ receivers: [webhook], exporters: [syslog/cef, qradar] }}
    in: {{ receivers: [syslog], exporters: [file] }}
"#
    );
    let mut relay = Siemrelay::start(&config);
    relay.wait_ready(([127, 0, 0, 1], webhook).into());
    relay.wait_ready(([127, 0, 0, 1], tcp).into());
    let values = [
        ("pipe", "a|b|c"),
        ("backslash", "C:\\temp\\"),
        ("equals", "k=v=w"),
        ("escaped", "\\| \\= \\\\ \\n"),
        ("newlines", "line1\nline2\r\nline3"),
        ("caret", "x^y^"),
        ("spaces", "two  spaces "),
        ("unicode", "grüße ✓"),
    ];
    let mut sent = Vec::new();
    let mut body = String::new();
    for i in 0..20 {
        let id = uuid::Uuid::new_v4().to_string();
        let mut attributes = serde_json::Map::new();
        for (key, value) in values {
            attributes.insert(key.into(), json!(format!("{value}{i}")));
        }
        let event = json!({
            "event_id": id, "event_type": "policy_violation", "severity": "high",
            "summary": format!("Blocked a|b \\ c={i}"), "source": "gateway",
            "timestamp": "2026-11-20T09:00:00.123Z", "attributes": attributes,
        });
        body.push_str(&event.to_string());
        body.push('\n');
        sent.push(event);
    }
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{webhook}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("post");
    assert!(response.status().is_success());
    let out = relay.dir().join("out");
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = read_ndjson_files(&out, "events");
        if events.len() >= 40 || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(events.len(), 40, "logs:\n{}", relay.logs());
    for original in &sent {
        let id = original["event_id"].as_str().unwrap_or_default();
        // CEF: every value comes back exactly (its escaping is reversible).
        let cef = events
            .iter()
            .find(|e| e["attributes"]["externalId"] == id)
            .unwrap_or_else(|| panic!("CEF event {id} missing"));
        assert_eq!(cef["event_type"], original["event_type"], "{cef}");
        assert_eq!(cef["summary"], original["summary"], "CEF Name: {cef}");
        assert_eq!(cef["severity_number"], 17, "{cef}");
        assert_eq!(cef["attributes"]["msg"], original["summary"], "{cef}");
        assert_eq!(cef["attributes"]["source"], "gateway", "{cef}");
        assert_eq!(cef["attributes"]["rt"], "1795165200123", "{cef}");
        assert_eq!(cef["attributes"]["syslog"]["app_name"], "edge", "{cef}");
        for (key, _) in values {
            assert_eq!(
                cef["attributes"][key], original["attributes"][key],
                "CEF {key}: {cef}"
            );
        }
        // LEEF (QRadar): as the encoder documents: values are not escaped, the delimiter
        // becomes a space and CR/LF become `\r`/`\n`.
        let leef = events
            .iter()
            .find(|e| e["attributes"]["event_id"] == id && e["attributes"]["leef"].is_object())
            .unwrap_or_else(|| panic!("LEEF event {id} missing"));
        assert_eq!(leef["event_type"], original["event_type"], "{leef}");
        assert_eq!(leef["severity_number"], 17, "{leef}");
        assert_eq!(leef["attributes"]["leef"]["delimiter"], "^", "{leef}");
        assert_eq!(leef["attributes"]["source"], "gateway", "{leef}");
        let summary = original["summary"].as_str().unwrap_or_default();
        assert_eq!(
            leef["attributes"]["msg"],
            leef_value(summary, '^'),
            "{leef}"
        );
        for (key, _) in values {
            let value = original["attributes"][key].as_str().unwrap_or_default();
            assert_eq!(
                leef["attributes"][key],
                leef_value(value, '^'),
                "LEEF {key}: {leef}"
            );
        }
    }
}

/// A test CA, a server certificate for localhost/127.0.0.1 and a client certificate (PEM).
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
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
        .push(DnType::CommonName, "siemrelay syslog test CA");
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
        vec!["firewall.test".into()],
        "firewall.test",
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
