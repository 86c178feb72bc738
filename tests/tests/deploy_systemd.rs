//! Issue 26: running under systemd. The unit (`deploy/systemd/siemrelay.service`) passes
//! `systemd-analyze verify` without a warning and keeps its `systemd-analyze security` exposure
//! at the score the README gives; and the binary speaks the `sd_notify` protocol for
//! `Type=notify` over a real unix datagram socket this test listens on, as systemd does:
//! `READY=1` only once every receiver listens, `RELOADING=1`/`READY=1` around a SIGHUP reload,
//! `WATCHDOG=1` keep-alives when `WATCHDOG_USEC` is set, `STOPPING=1` when the drain begins.

use siemrelay_e2e::{Siemrelay, free_port, run_cli, siemrelay_bin};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A notify socket like systemd's: the test reads what the service sends.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
    /// Every message received so far, in order.
    messages: Vec<String>,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        NotifySocket {
            socket,
            path,
            _dir: dir,
            messages: Vec::new(),
        }
    }

    fn path(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }

    /// Receives messages until one has the line `wanted` (returned), or `timeout` passes.
    fn wait_for(&mut self, wanted: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..n]).to_string();
                self.messages.push(message.clone());
                if message.lines().any(|line| line == wanted) {
                    return Some(message);
                }
            }
        }
        None
    }

    /// Everything received so far (after draining what is waiting).
    fn drain(&mut self) -> &[String] {
        let _ = self.wait_for("\u{0}never", Duration::from_millis(300));
        &self.messages
    }
}

fn config(webhook: u16, admin: u16) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  file: {{ path: ./siemrelay-data/events-%Y-%m-%d.ndjson }}
service:
  shutdown_timeout: 7s
  admin: {{ endpoint: "127.0.0.1:{admin}" }}
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [file] }}
"#
    )
}

/// `GET path` on the admin listener; the status code.
fn http_status(port: u16, path: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to admin");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("request");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[test]
fn ready_only_once_every_receiver_listens_then_reloading_watchdog_and_stopping() {
    let mut notify = NotifySocket::bind();
    let (webhook, admin) = (free_port(), free_port());
    let mut relay = Siemrelay::start_with(
        &config(webhook, admin),
        &[],
        &[
            ("NOTIFY_SOCKET", notify.path()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );

    let ready = notify.wait_for("READY=1", Duration::from_secs(60));
    // At the moment systemd hears READY=1 the receiver and the admin listener already serve:
    // no waiting here.
    let listening = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], webhook))).is_ok();
    let ready_status = http_status(admin, "/readyz");
    assert!(
        ready.is_some(),
        "no READY=1; got {:?}; logs:\n{}",
        notify.messages,
        relay.logs()
    );
    assert!(listening, "READY=1 before the webhook receiver listened");
    assert_eq!(ready_status, 200, "READY=1 before /readyz said ready");
    assert!(
        ready.as_deref().is_some_and(|m| m.contains("STATUS=")),
        "{ready:?}"
    );

    // Watchdog keep-alives every half interval (200 ms): wait for two.
    for _ in 0..2 {
        assert!(
            notify
                .wait_for("WATCHDOG=1", Duration::from_secs(30))
                .is_some(),
            "no WATCHDOG=1 keep-alive; got {:?}",
            notify.messages
        );
    }

    // SIGHUP: RELOADING=1 (with the monotonic time systemd expects), then READY=1 again.
    relay.signal(libc::SIGHUP);
    let reloading = notify.wait_for("RELOADING=1", Duration::from_secs(30));
    assert!(
        reloading
            .as_deref()
            .is_some_and(|m| m.contains("MONOTONIC_USEC=")),
        "RELOADING=1 with MONOTONIC_USEC; got {:?}",
        notify.messages
    );
    assert!(
        notify
            .wait_for("READY=1", Duration::from_secs(30))
            .is_some(),
        "READY=1 after the reload; got {:?}",
        notify.messages
    );

    // SIGTERM: STOPPING=1 with the stop timeout extended past shutdown_timeout (7 s + 10 s).
    relay.signal(libc::SIGTERM);
    let stopping = notify.wait_for("STOPPING=1", Duration::from_secs(30));
    let status = relay.wait_exit(Duration::from_secs(30));
    assert!(
        stopping
            .as_deref()
            .is_some_and(|m| m.contains("EXTEND_TIMEOUT_USEC=17000000")),
        "STOPPING=1 with EXTEND_TIMEOUT_USEC; got {:?}",
        notify.messages
    );
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
}

#[test]
fn no_ready_when_a_receiver_cannot_listen() {
    let mut notify = NotifySocket::bind();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut relay = Siemrelay::start_with(
        &config(port, free_port()),
        &[],
        &[("NOTIFY_SOCKET", notify.path())],
    );
    let status = relay.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| !s.success()),
        "should fail to start: {status:?}"
    );
    let messages = notify.drain();
    assert!(
        !messages.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "READY=1 sent although the receiver could not listen: {messages:?}"
    );
}

fn systemd_analyze() -> Command {
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        available,
        "systemd-analyze is not installed: run `bash scripts/setup-test-env.sh` (installs `systemd` from tests/apt-packages.txt)"
    );
    Command::new("systemd-analyze")
}

/// The unit as installed, with `/usr/bin/siemrelay` pointing at the binary under test (verify
/// checks that ExecStart is executable), and the man page its `Documentation=` names.
fn unit_under_test(dir: &Path) -> (PathBuf, PathBuf) {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/siemrelay.service"))
        .expect("deploy/systemd/siemrelay.service");
    let bin = siemrelay_bin();
    let unit = unit.replace("/usr/bin/siemrelay", bin.to_str().expect("utf-8 path"));
    let path = dir.join("siemrelay.service");
    std::fs::write(&path, unit).expect("write unit");
    let man = dir.join("man");
    std::fs::create_dir_all(man.join("man1")).expect("man dir");
    let output = run_cli(
        &["man", "--dir", man.join("man1").to_str().expect("utf-8")],
        dir,
    );
    assert!(output.status.success(), "siemrelay man --dir: {output:?}");
    (path, man)
}

#[test]
fn the_unit_passes_systemd_analyze_verify_without_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (unit, man) = unit_under_test(dir.path());
    let output = systemd_analyze()
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", &man)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // verify exits 0 on unknown keys and bad values ("ignoring"): any output is a finding.
    assert!(
        output.status.success() && text.trim().is_empty(),
        "systemd-analyze verify: {}\n{text}",
        output.status
    );
    let unit_text = std::fs::read_to_string(&unit).expect("unit");
    for required in [
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=siemrelay",
        "ConfigurationDirectory=siemrelay",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "WatchdogSec=",
    ] {
        assert!(unit_text.contains(required), "the unit lacks {required:?}");
    }
}

#[test]
fn the_units_security_exposure_is_the_one_the_readme_gives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (unit, _) = unit_under_test(dir.path());
    let output = systemd_analyze()
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&output.stdout);
    let score = text
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for siemrelay.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| {
            panic!(
                "no overall exposure in:\n{text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
        .to_string();
    let value: f64 = score.parse().expect("a number");
    assert!(value <= 2.0, "exposure {score} (above 2.0):\n{text}");
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    assert!(
        readme.contains(&format!("exposure level **{score}**")),
        "README.md should give the measured `systemd-analyze security` exposure level **{score}**"
    );
}

#[test]
fn the_units_pipeline_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = repo().join("deploy/systemd/siemrelay.yaml");
    let output = run_cli(
        &["validate", "--config", path.to_str().expect("utf-8")],
        dir.path(),
    );
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
