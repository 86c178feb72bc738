//! Issue 20, sections 2–4 (admin listener), against the real binary: each finding is a case.
//! The admin API is not a way in (DNS rebinding, foreign origins, missing token, `${…}` in API
//! config, plugin libraries, API paths); secrets never leave (a SIEM that echoes every header,
//! `validate`); log lines cannot be forged; the admin listener's TLS and `allowed_cidrs`.

mod admin_support;

use admin_support::{Admin, TOKEN, encode};
use base64::Engine;
use serde_json::json;
use siemrelay_e2e::fake::echo::{EchoSiem, FORGED_LINE};
use siemrelay_e2e::{Siemrelay, free_port, run_cli};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn admin_block(port: u16, extra: &str) -> String {
    format!("  admin:\n    endpoint: \"127.0.0.1:{port}\"\n{extra}")
}

const WITH_TOKEN: &str = "    auth: { bearer_token: \"${env:SIEMRELAY_ADMIN_TOKEN}\" }\n    allow_config_changes: true\n";

fn base_config(webhook: u16, admin: &str, exporters: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  file: {{ path: "./siemrelay-data/out/events.ndjson" }}
{exporters}
service:
  shutdown_timeout: 2s
{admin}
  pipelines:
    security: {{ receivers: [webhook], exporters: [file] }}
"#
    )
}

fn start(config: &str, ports: &[u16], env: &[(&str, &str)]) -> Siemrelay {
    let mut relay = Siemrelay::start_with(config, &[], env);
    for port in ports {
        relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], *port)));
    }
    relay
}

/// Sends `request` as is (an attacker's bytes) and returns the status and the whole answer.
fn raw(port: u16, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn post_raw(port: u16, path: &str, headers: &str) -> (u16, String) {
    raw(
        port,
        &format!("POST {path} HTTP/1.1\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_rebinding_and_foreign_origins_cannot_reach_the_api() {
    let (webhook, port) = (free_port(), free_port());
    // The finding's setup: the default loopback listener, no token, changes off.
    let relay = start(
        &base_config(webhook, &admin_block(port, ""), ""),
        &[webhook, port],
        &[],
    );
    let evil = "Host: evil.example:8686\r\nOrigin: http://evil.example\r\n";
    let (status, answer) = post_raw(port, "/api/v1/exporters/file/disable", evil);
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("allowed_hosts"), "{answer}");
    let (status, answer) = raw(
        port,
        "GET /api/v1/exporters HTTP/1.1\r\nHost: rebound.evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 403, "a rebound name reads nothing either: {answer}");
    // The right Host but a foreign Origin, and no Origin but no token: refused all the same.
    let host = format!("Host: 127.0.0.1:{port}\r\n");
    let (status, answer) = post_raw(
        port,
        "/api/v1/exporters/file/disable",
        &format!("{host}Origin: http://evil.example\r\n"),
    );
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = post_raw(port, "/api/v1/exporters/file/disable", &host);
    assert_eq!(status, 403, "{answer}");
    let admin = Admin::new(port, None);
    assert_eq!(admin.exporter("file").await["status"], "active");
    // Read-only endpoints keep today's rules on loopback.
    assert_eq!(admin.get("/healthz").await["status"], "ok");
    drop(relay);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_state_changing_endpoint_needs_the_token_and_allow_config_changes() {
    // Validation refuses allow_config_changes without a token.
    let dir = tempfile::tempdir().unwrap();
    let open = base_config(
        free_port(),
        &admin_block(free_port(), "    allow_config_changes: true\n"),
        "",
    );
    std::fs::write(dir.path().join("open.yaml"), open).unwrap();
    let out = run_cli(&["validate", "--config", "open.yaml"], dir.path());
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("service.admin.allow_config_changes"),
        "{text}"
    );

    // A token but changes off: every state-changing endpoint answers 403, token or not.
    let (webhook, port) = (free_port(), free_port());
    let off = base_config(
        webhook,
        &admin_block(
            port,
            "    auth: { bearer_token: \"${env:SIEMRELAY_ADMIN_TOKEN}\" }\n",
        ),
        "",
    );
    let relay = start(&off, &[webhook, port], &[("SIEMRELAY_ADMIN_TOKEN", TOKEN)]);
    let admin = Admin::new(port, Some(TOKEN));
    let calls = [
        (reqwest::Method::POST, "/api/v1/exporters/file/enable"),
        (reqwest::Method::POST, "/api/v1/exporters/file/disable"),
        (reqwest::Method::POST, "/api/v1/exporters/file/test"),
        (reqwest::Method::POST, "/api/v1/reload"),
        (reqwest::Method::PUT, "/api/v1/exporters/stdout%2Fx"),
        (reqwest::Method::DELETE, "/api/v1/exporters/file"),
    ];
    for (method, path) in &calls {
        let body = (*method == reqwest::Method::PUT)
            .then(|| json!({"config": {}, "pipelines": ["security"]}));
        let (status, answer) = admin.call(method.clone(), path, body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert_eq!(
            answer["key"], "service.admin.allow_config_changes",
            "{answer}"
        );
    }
    drop(relay);

    // Changes on: the token is required (401 without), a foreign Origin is refused even with it.
    let (webhook, port) = (free_port(), free_port());
    let on = base_config(webhook, &admin_block(port, WITH_TOKEN), "");
    let relay = start(&on, &[webhook, port], &[("SIEMRELAY_ADMIN_TOKEN", TOKEN)]);
    let anonymous = Admin::new(port, None);
    for (method, path) in &calls {
        let (status, answer) = anonymous.call(method.clone(), path, None).await;
        assert_eq!(status, 401, "{method} {path}: {answer}");
    }
    let host = format!("Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n");
    let (status, answer) = post_raw(
        port,
        "/api/v1/exporters/file/disable",
        &format!("{host}Origin: https://evil.example\r\n"),
    );
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = post_raw(
        port,
        "/api/v1/exporters/file/disable",
        &format!("{host}Origin: http://127.0.0.1:{port}\r\n"),
    );
    assert_eq!(status, 200, "same origin with the token: {answer}");
    drop(relay);
}

#[tokio::test(flavor = "multi_thread")]
async fn config_sent_through_the_api_is_never_expanded_beyond_allowed_env() {
    let siem = EchoSiem::start();
    let dir = tempfile::tempdir().unwrap();
    let host_file = dir.path().join("hostname");
    std::fs::write(&host_file, "secret-host-name-4242\n").unwrap();
    let env = [
        ("SIEMRELAY_ADMIN_TOKEN", TOKEN),
        ("SIGN_KEY", "sign-key-value-9876"),
        ("HEC_TOKEN", "hec-token-allowed-1"),
    ];
    // The finding's setup: changes allowed, nothing listed in allowed_env.
    let (webhook, port) = (free_port(), free_port());
    let relay = start(
        &base_config(webhook, &admin_block(port, WITH_TOKEN), ""),
        &[webhook, port],
        &env,
    );
    let admin = Admin::new(port, Some(TOKEN));
    let path = format!("/api/v1/exporters/{}", encode("webhook/steal"));
    for (header, reference, needle) in [
        (
            "X-Sign",
            "${env:SIGN_KEY}".to_string(),
            "service.admin.allowed_env",
        ),
        (
            "X-Host",
            format!("${{file:{}}}", host_file.display()),
            "never expanded",
        ),
    ] {
        let change = json!({
            "config": {"endpoint": siem.url(), "headers": {header: reference}},
            "pipelines": ["security"],
        });
        let (status, answer) = admin.call(reqwest::Method::PUT, &path, Some(change)).await;
        assert_eq!(status, 400, "{answer}");
        let text = answer.to_string();
        assert!(text.contains(needle), "{text}");
        assert!(
            !text.contains("sign-key-value") && !text.contains("secret-host-name"),
            "{text}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        siem.requests(),
        0,
        "nothing was sent to the caller's endpoint"
    );
    drop(relay);

    // A name listed in allowed_env expands.
    let (webhook, port) = (free_port(), free_port());
    let extra = format!("{WITH_TOKEN}    allowed_env: [HEC_TOKEN]\n");
    let relay = start(
        &base_config(webhook, &admin_block(port, &extra), ""),
        &[webhook, port],
        &env,
    );
    let admin = Admin::new(port, Some(TOKEN));
    let change = json!({
        "config": {"endpoint": siem.url(), "headers": {"X-Token": "${env:HEC_TOKEN}"}},
        "pipelines": ["security"],
    });
    let (status, answer) = admin.call(reqwest::Method::PUT, &path, Some(change)).await;
    assert_eq!(status, 201, "{answer}");
    assert!(
        !answer.to_string().contains("hec-token-allowed-1"),
        "{answer}"
    );
    drop(relay);
}

/// Compiles a shared library whose constructor writes `marker` (and that is no plugin).
fn constructor_library(out: &Path, marker: &Path) {
    let source = out.with_extension("c");
    std::fs::write(
        &source,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void ran(void) {{\n  FILE *f = fopen(\"{}\", \"w\");\n  if (f) {{ fputs(\"constructor ran\", f); fclose(f); }}\n}}\nint not_a_plugin(void) {{ return 1; }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let output = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-o"])
        .arg(out)
        .arg(&source)
        .output()
        .expect("run the C compiler `cc`");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_libraries_load_only_from_the_plugins_directory_and_never_run_unless_plugins() {
    let (webhook, port) = (free_port(), free_port());
    let relay = start(
        &base_config(webhook, &admin_block(port, WITH_TOKEN), ""),
        &[webhook, port],
        &[("SIEMRELAY_ADMIN_TOKEN", TOKEN)],
    );
    let plugins = relay.dir().join("siemrelay-data/plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let marker = outside.path().join("constructor-ran");
    constructor_library(&plugins.join("libinside.so"), &marker);
    constructor_library(&outside.path().join("libevil.so"), &marker);
    let admin = Admin::new(port, Some(TOKEN));
    let path = format!("/api/v1/exporters/{}", encode("plugin/x"));
    let evil = outside.path().join("libevil.so").display().to_string();
    for (library, needle) in [
        (evil.as_str(), "outside the plugins directory"),
        (
            "../../../../../../../../../../",
            "outside the plugins directory",
        ),
        ("libinside.so", "not a siemrelay plugin"),
    ] {
        let change = json!({"config": {"library": library}, "pipelines": ["security"]});
        let (status, answer) = admin.call(reqwest::Method::PUT, &path, Some(change)).await;
        assert_eq!(status, 400, "{library}: {answer}");
        assert!(answer.to_string().contains(needle), "{library}: {answer}");
        assert!(
            !marker.exists(),
            "{library}: the library's constructor ran: {answer}"
        );
    }
    // The operator's own file is held to the same rule.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("siemrelay-data/plugins")).unwrap();
    let config = format!(
        "receivers:\n  webhook: {{ endpoint: \"127.0.0.1:{}\" }}\nexporters:\n  plugin/x: {{ library: \"{evil}\" }}\nservice:\n  pipelines:\n    s: {{ receivers: [webhook], exporters: [plugin/x] }}\n",
        free_port()
    );
    std::fs::write(dir.path().join("p.yaml"), config).unwrap();
    let out = run_cli(&["validate", "--config", "p.yaml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the plugins directory"));
    assert!(!marker.exists(), "validate ran the constructor");
    drop(relay);
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_sent_through_the_api_stay_under_the_storage_directory() {
    let (webhook, port) = (free_port(), free_port());
    let relay = start(
        &base_config(webhook, &admin_block(port, WITH_TOKEN), ""),
        &[webhook, port],
        &[("SIEMRELAY_ADMIN_TOKEN", TOKEN)],
    );
    let outside = tempfile::tempdir().unwrap();
    let admin = Admin::new(port, Some(TOKEN));
    let target = outside.path().join("written-by-the-api.ndjson");
    let cases = [
        (
            "file/evil",
            json!({"path": target.display().to_string()}),
            "exporters.file/evil.path",
        ),
        (
            "file/dots",
            json!({"path": "./siemrelay-data/../../escape.ndjson"}),
            "exporters.file/dots.path",
        ),
        (
            "file/queue",
            json!({"path": "./siemrelay-data/q/events.ndjson",
                   "queue": {"type": "disk", "directory": outside.path().join("q").display().to_string()}}),
            "exporters.file/queue.queue.directory",
        ),
    ];
    for (id, config, key) in cases {
        let change = json!({"config": config, "pipelines": ["security"]});
        let path = format!("/api/v1/exporters/{}", encode(id));
        let (status, answer) = admin.call(reqwest::Method::PUT, &path, Some(change)).await;
        assert_eq!(status, 400, "{id}: {answer}");
        assert_eq!(answer["key"], key, "{answer}");
    }
    let change = json!({"config": {"path": "./siemrelay-data/api/events.ndjson"}, "pipelines": ["security"]});
    let path = format!("/api/v1/exporters/{}", encode("file/ok"));
    let (status, answer) = admin.call(reqwest::Method::PUT, &path, Some(change)).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    drop(relay);
}

/// Every form a secret can take on the way out.
fn forms(secret: &str) -> Vec<(String, String)> {
    let json = serde_json::to_string(secret).unwrap();
    let debug = format!("{secret:?}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let percent: String = secret
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut out = vec![
        ("raw".into(), secret.to_string()),
        ("json".into(), json[1..json.len() - 1].to_string()),
        ("debug".into(), debug[1..debug.len() - 1].to_string()),
        ("url".into(), percent),
        ("base64".into(), b64.encode(secret)),
        ("basic".into(), b64.encode(format!("user:{secret}"))),
    ];
    // A distinctive slice survives in no form either.
    out.push(("slice".into(), secret[..secret.len().min(12)].to_string()));
    out
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        for (form, value) in forms(secret) {
            assert!(
                !text.contains(&value),
                "{what} holds the secret in {form} form ({value:?}):\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_echoed_by_a_siem_never_reach_logs_statuses_answers_or_dead_letters() {
    let siem = EchoSiem::start();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let token = "tok\"en\\with-quote-and-backslash-7781";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let dd_key = "dd-key-0123456789abcdef";
    let (webhook, port) = (free_port(), free_port());
    let exporters = format!(
        r#"  webhook/echo:
    endpoint: "{}/ingest"
    headers:
      Authorization: "Bearer ${{file:{}}}"
      DD-API-KEY: "${{env:DD_KEY}}"
    retry: {{ initial_interval: 50ms, max_interval: 100ms, max_elapsed_time: 500ms }}"#,
        siem.url(),
        token_file.display()
    );
    let config = base_config(webhook, &admin_block(port, WITH_TOKEN), &exporters)
        .replace("exporters: [file]", "exporters: [file, webhook/echo]");
    let mut relay = start(
        &config,
        &[webhook, port],
        &[("SIEMRELAY_ADMIN_TOKEN", TOKEN), ("DD_KEY", dd_key)],
    );
    let client = reqwest::Client::new();
    for n in 0..3 {
        let body = format!("{{\"event_type\":\"auth.login\",\"summary\":\"echo {n}\"}}\n");
        let response = client
            .post(format!("http://127.0.0.1:{webhook}/v1/events"))
            .header("Content-Type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("post events");
        assert!(response.status().is_success());
    }
    let dead = relay
        .dir()
        .join("siemrelay-data/dead_letter/webhook__echo.ndjson");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&dead).map_or(0, |t| t.lines().count()) < 3 {
        assert!(
            Instant::now() < deadline,
            "no dead letters:\n{}",
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        siem.requests() >= 2,
        "the SIEM answered both a 503 and a 400"
    );
    let secrets = [token, dd_key];
    let admin = Admin::new(port, Some(TOKEN));
    let id = encode("webhook/echo");
    let mut answers = String::new();
    for path in [
        "/api/v1/exporters".to_string(),
        format!("/api/v1/exporters/{id}"),
        format!("/api/v1/exporters/{id}/deliveries"),
        "/api/v1/pipelines".to_string(),
        "/metrics".to_string(),
    ] {
        let (status, body) = admin.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        answers.push_str(&body.to_string());
    }
    let (_, test) = admin.post(&format!("/api/v1/exporters/{id}/test")).await;
    answers.push_str(&test.to_string());
    assert!(
        answers.contains("request refused"),
        "the SIEM's error is shown, scrubbed: {answers}"
    );
    assert_clean("the admin API's answers", &answers, &secrets);
    let dead_letters = std::fs::read_to_string(&dead).unwrap();
    assert!(dead_letters.contains("request refused"), "{dead_letters}");
    assert_clean("the dead-letter file", &dead_letters, &secrets);
    relay.terminate(Duration::from_secs(10));
    let logs = relay.logs();
    assert!(logs.contains("request refused"), "{logs}");
    assert_clean("the log", &logs, &secrets);
    // The SIEM's reply cannot forge a log line or reach the terminal.
    let forged = FORGED_LINE.trim_start().split("  ").next().unwrap();
    assert!(
        !logs.lines().any(|line| line.starts_with(forged)),
        "a forged line:\n{logs}"
    );
    assert!(!logs.contains('\u{1b}'), "an ANSI escape reached the log");
}

#[test]
fn validate_never_prints_a_multi_line_secret_in_any_escaped_form() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "first \"quoted\" line \\ with backslash\nsecond-line-of-the-secret 'x'";
    std::fs::write(dir.path().join("secret.txt"), format!("{secret}\n")).unwrap();
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{}" }}
exporters:
  splunk_hec/x:
    endpoint: "${{file:{dir}/secret.txt}}"
    token: "${{file:{dir}/secret.txt}}"
  webhook/x:
    endpoint: "${{file:{dir}/secret.txt}}"
    headers: {{ Authorization: "${{file:{dir}/secret.txt}}" }}
service:
  pipelines:
    s: {{ receivers: [webhook], exporters: [splunk_hec/x, webhook/x] }}
"#,
        free_port(),
        dir = dir.path().display()
    );
    std::fs::write(dir.path().join("s.yaml"), config).unwrap();
    let out = run_cli(&["validate", "--config", "s.yaml"], dir.path());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("exporters.splunk_hec/x.endpoint"), "{text}");
    assert_clean("validate's output", &text, &[secret]);
    assert!(!text.contains("second-line-of-the-secret"), "{text}");
}

/// A CA, and certificates it signs.
struct Pki {
    ca: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
    ca_pem: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        Pki { ca, ca_key, ca_pem }
    }

    /// Writes `<name>.pem` and `<name>.key` signed by this CA; returns their paths.
    fn issue(&self, dir: &Path, name: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        let issuer = rcgen::Issuer::from_params(&self.ca, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl (tests/apt-packages.txt installs it)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl (tests/apt-packages.txt installs it)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_admin_listener_serves_tls_requires_client_certificates_and_reloads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new("siemrelay test CA");
    let stranger = Pki::new("someone else's CA");
    std::fs::write(d.join("ca.pem"), &pki.ca_pem).unwrap();
    let (server_cert, server_key) = pki.issue(d, "admin-v1", &["localhost", "127.0.0.1"]);
    let (client_cert, client_key) = pki.issue(d, "client", &["client"]);
    let (other_cert, other_key) = stranger.issue(d, "other", &["other"]);
    let (webhook, port) = (free_port(), free_port());
    let tls = format!(
        "    tls: {{ cert_file: \"{}\", key_file: \"{}\", client_ca_file: \"{}\" }}\n",
        server_cert.display(),
        server_key.display(),
        d.join("ca.pem").display()
    );
    let relay = start(
        &base_config(webhook, &admin_block(port, &tls), ""),
        &[webhook, port],
        &[],
    );
    let url = format!("https://127.0.0.1:{port}/healthz");
    let ca = d.join("ca.pem").display().to_string();
    let (cert, key) = (
        client_cert.display().to_string(),
        client_key.display().to_string(),
    );
    let (ok, text) = curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, &url]);
    assert!(ok && text.contains("\"ok\""), "{text}");
    let (ok, text) = curl(&["--cacert", &ca, &url]);
    assert!(!ok, "no client certificate, no answer: {text}");
    let (other_cert, other_key) = (
        other_cert.display().to_string(),
        other_key.display().to_string(),
    );
    let (ok, text) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &other_cert,
        "--key",
        &other_key,
        &url,
    ]);
    assert!(!ok, "a certificate of another CA, no answer: {text}");
    let (ok, text) = curl(&[&format!("http://127.0.0.1:{port}/healthz")]);
    assert!(
        !ok || !text.contains("\"ok\""),
        "plain HTTP is not served: {text}"
    );

    let with_cert = [
        "-cert",
        cert.as_str(),
        "-key",
        key.as_str(),
        "-CAfile",
        ca.as_str(),
    ];
    for old in ["-tls1", "-tls1_1"] {
        let (_, text) = s_client(port, &[&[old][..], &with_cert[..]].concat());
        assert!(
            !text.contains("Cipher is") || text.contains("Cipher is (NONE)"),
            "{old} must fail:\n{text}"
        );
    }
    for good in ["-tls1_2", "-tls1_3"] {
        let (_, text) = s_client(port, &[&[good][..], &with_cert[..]].concat());
        assert!(
            text.contains("CN=admin-v1") || text.contains("CN = admin-v1"),
            "{good}:\n{text}"
        );
        assert!(!text.contains("Cipher is (NONE)"), "{good}:\n{text}");
    }

    // New certificate files, SIGHUP: the same listener serves the new certificate.
    let (new_cert, new_key) = pki.issue(d, "admin-v2", &["localhost", "127.0.0.1"]);
    std::fs::copy(&new_cert, &server_cert).unwrap();
    std::fs::copy(&new_key, &server_key).unwrap();
    relay.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = s_client(port, &[&["-tls1_2"][..], &with_cert[..]].concat());
        if text.contains("admin-v2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still the old certificate:\n{text}\n{}",
            relay.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, text) = curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, &url]);
    assert!(ok && text.contains("\"ok\""), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_cidrs_refuse_other_clients_before_reading_the_body() {
    let (webhook, port) = (free_port(), free_port());
    let relay = start(
        &base_config(
            webhook,
            &admin_block(port, "    allowed_cidrs: [\"10.0.0.0/8\", \"fd00::/8\"]\n"),
            "",
        ),
        &[webhook, port],
        &[],
    );
    // A body announced but never sent: the answer comes anyway.
    let (status, answer) = raw(
        port,
        &format!(
            "PUT /api/v1/exporters/stdout HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{"
        ),
    );
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("service.admin.allowed_cidrs"), "{answer}");
    let (status, answer) = Admin::new(port, None)
        .call(reqwest::Method::GET, "/healthz", None)
        .await;
    assert_eq!(status, 403, "{answer}");
    drop(relay);
    // 127.0.0.0/8 allowed: served.
    let (webhook, port) = (free_port(), free_port());
    let relay = start(
        &base_config(
            webhook,
            &admin_block(port, "    allowed_cidrs: [127.0.0.0/8]\n"),
            "",
        ),
        &[webhook, port],
        &[],
    );
    assert_eq!(Admin::new(port, None).get("/healthz").await["status"], "ok");
    drop(relay);
}
