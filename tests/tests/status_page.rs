//! Issue 12 acceptance with the real binary and a real browser: the admin listener's status page,
//! driven by Debian's Chromium through playwright-core (`tests/browser/status_page.mjs`).
//!
//! The binary runs webhook receiver → filter → enrich → two `webhook` exporters (to a fake SIEM
//! that goes down and comes back; `webhook/flaky` gives up after 1 s, so it dead-letters during
//! the outage) and a `file` exporter, with the admin listener on a free port. The browser script
//! posts events, asks this test (over its stdout/stdin) to take the fake SIEM down and bring it
//! up, and checks the page: every exporter listed, version, uptime and config path, times with
//! date and zone, receiver refusals by reason and filter drops, counters rising, the card
//! turning degraded, "Test delivery" failing with a hint and then succeeding, the dead letters
//! listed and replayed (only with `allow_config_changes`), enable/disable, the admin token,
//! phone width, and that nothing outside the admin address was requested. Issue 26: every card's
//! charts (events/s in and out, queue depth, failed requests/s over the last 15 minutes, inline
//! SVG drawn by the page from `GET /api/v1/metrics/history`) show the outage's queue and failed
//! requests and add up to the events posted, sent and the failed requests; a reloaded page draws
//! the past samples at once. Screenshots go to `target/test-artifacts/status-page-*.png`
//! (`status-page-charts.png`: the card with its charts).
//!
//! Needs `node` (20+), `/usr/bin/chromium` and `tests/browser/node_modules` (all installed by
//! `bash scripts/setup-test-env.sh`); without them the test fails and says so.

use siemrelay_e2e::fake::http_sink::{FakeHttpSink, HttpSinkOptions};
use siemrelay_e2e::{Siemrelay, free_port, siemrelay_bin};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TOKEN: &str = "status-page-admin-token";
const HOOK_PATH: &str = "/hooks/siem";
/// The whole browser run may take this long.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

fn config(receiver_port: u16, admin_port: u16, hook_url: &str, with_token: bool) -> String {
    let auth = if with_token {
        // "Test delivery" is a state-changing request: it needs the token and changes allowed
        // (`allow_config_changes` follows `with_token` below).
        "\n    auth: { bearer_token: \"${env:ADMIN_TOKEN}\" }"
    } else {
        ""
    };
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
processors:
  filter/high: {{ include: {{ min_severity: high }} }}
  enrich: {{ source: status-page-test }}
exporters:
  webhook/soar:
    endpoint: "{hook_url}{HOOK_PATH}"
    format: json_array
    sending: {{ timeout: 2s }}
    retry: {{ initial_interval: 50ms, max_interval: 300ms, max_elapsed_time: 10m }}
  webhook/flaky:
    endpoint: "{hook_url}{HOOK_PATH}"
    format: json_array
    sending: {{ timeout: 1s }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 1s }}
  file:
    path: ./out/events-%Y-%m-%d.ndjson
service:
  shutdown_timeout: 5s
  admin:
    endpoint: "127.0.0.1:{admin_port}"
    allow_config_changes: {with_token}{auth}
  pipelines:
    security: {{ receivers: [webhook], processors: [filter/high, enrich], exporters: [webhook/soar, webhook/flaky, file] }}
"#
    )
}

/// The repository root (the parent of the `tests` crate).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the repository")
        .to_path_buf()
}

/// `target/test-artifacts` next to the binary under test (`target/debug/siemrelay`).
fn artifacts_dir() -> PathBuf {
    let bin = siemrelay_bin();
    let target = bin
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| repo_root().join("target"), Path::to_path_buf);
    target.join("test-artifacts")
}

/// Fails with instructions when the browser test's tools are missing.
fn require_browser_tools(root: &Path) {
    let fix = "run `bash scripts/setup-test-env.sh` as root (it installs Debian's `chromium` from \
               tests/apt-packages.txt and runs `npm ci` in tests/browser)";
    let node = Command::new("node").arg("--version").output();
    let version = match node {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => panic!(
            "`node` is not on PATH: install Node.js 20+ (apt-get install nodejs npm), then {fix}"
        ),
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "node {version} is too old for playwright-core: install Node.js 20+"
    );
    let chromium =
        std::env::var("SIEMRELAY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: {fix}"
    );
    let playwright = root.join("tests/browser/node_modules/playwright-core/package.json");
    assert!(
        playwright.exists(),
        "{} is missing: {fix}",
        playwright.display()
    );
}

/// What the browser script printed, and how it ended.
struct BrowserRun {
    output: String,
    success: bool,
}

/// Runs the browser script; answers its `@@siem down|up` requests by taking `siem` down or up.
fn run_browser(args: &[String], siem: Option<&FakeHttpSink>) -> BrowserRun {
    let root = repo_root();
    let mut child = Command::new("node")
        .arg(root.join("tests/browser/status_page.mjs"))
        .args(args)
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node tests/browser/status_page.mjs");
    let mut stdin = child.stdin.take().expect("node stdin");
    let stdout = child.stdout.take().expect("node stdout");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let mut output = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                println!("browser: {line}");
                output.push_str(&line);
                output.push('\n');
                let state = line.strip_prefix("@@siem ");
                match (state, siem) {
                    (Some("down"), Some(siem)) => siem.server().go_down(),
                    (Some("up"), Some(siem)) => siem.server().come_up(),
                    (Some(other), _) => panic!(
                        "the browser script asked for `siem {other}`, which this test cannot do"
                    ),
                    (None, _) => continue,
                }
                writeln!(stdin, "@@ok").expect("answer the browser script");
                stdin.flush().expect("answer the browser script");
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the browser script did not finish within {BROWSER_TIMEOUT:?}; output:\n{output}"
                );
            }
        }
    }
    let _ = reader.join();
    let status = child.wait().expect("wait for node");
    BrowserRun {
        output,
        success: status.success(),
    }
}

fn browser_args(
    admin_port: u16,
    receiver_port: u16,
    scenario: &str,
    token: Option<&str>,
) -> Vec<String> {
    let mut args = vec![
        "--url".to_string(),
        format!("http://127.0.0.1:{admin_port}"),
        "--exporters".into(),
        "webhook/soar,webhook/flaky,file".into(),
        "--flaky".into(),
        "webhook/flaky".into(),
        "--siem".into(),
        "webhook/soar".into(),
        "--webhook".into(),
        format!("http://127.0.0.1:{receiver_port}/v1/events"),
        "--artifacts".into(),
        artifacts_dir().display().to_string(),
        "--scenario".into(),
        scenario.into(),
    ];
    if let Some(token) = token {
        args.extend(["--token".to_string(), token.to_string()]);
    }
    args
}

fn start_relay(with_token: bool, hook: &FakeHttpSink) -> (Siemrelay, u16, u16) {
    let (receiver_port, admin_port) = (free_port(), free_port());
    let yaml = config(receiver_port, admin_port, &hook.url(), with_token);
    let mut relay = Siemrelay::start_with(&yaml, &[], &[("ADMIN_TOKEN", TOKEN)]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin_port)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], receiver_port)));
    (relay, receiver_port, admin_port)
}

fn assert_passed(run: &BrowserRun, relay: &Siemrelay, must_say: &[&str]) {
    assert!(
        run.success,
        "the browser test failed (screenshot: {}/status-page-failure-*.png):\n{}\n---- siemrelay logs ----\n{}",
        artifacts_dir().display(),
        run.output,
        relay.logs()
    );
    assert!(
        run.output.contains(" passed, 0 failed"),
        "no summary line:\n{}",
        run.output
    );
    for line in must_say {
        assert!(
            run.output.contains(line),
            "the browser test did not check {line:?}:\n{}",
            run.output
        );
    }
}

#[test]
fn status_page_follows_an_exporter_through_an_outage_with_admin_auth() {
    let root = repo_root();
    require_browser_tools(&root);
    let hook = FakeHttpSink::start(HttpSinkOptions {
        path: Some(HOOK_PATH.into()),
        ..Default::default()
    });
    let (relay, receiver_port, admin_port) = start_relay(true, &hook);

    let run = run_browser(
        &browser_args(admin_port, receiver_port, "full", Some(TOKEN)),
        Some(&hook),
    );

    assert_passed(
        &run,
        &relay,
        &[
            "ok - the API refuses GET /api/v1/exporters without a token (401)",
            "ok - the status appears after the token is entered",
            "ok - the page lists exactly the 3 exporters of the config",
            "ok - every exporter card has its three charts as inline SVG",
            "ok - the charts draw the samples the admin API serves",
            "ok - the page shows the version, uptime and config path",
            "ok - times are shown with their date and time zone",
            "ok - the receiver's refusals are shown by reason",
            "ok - the filter's drops are shown on its node",
            "ok - webhook/soar's events sent rise as events are posted",
            "ok - webhook/flaky's dead letters are listed with their time and error",
            "ok - replaying webhook/flaky's dead letters delivers them",
            "ok - webhook/soar's card says degraded",
            "ok - webhook/soar's queue chart shows the events waiting during the outage",
            "ok - webhook/soar's error chart shows the failed requests of the outage",
            "ok - webhook/soar's charts add up to the events posted, sent and the failed requests",
            "ok - a freshly loaded page draws the past samples at once",
            "ok - \"Test delivery\" shows the failure with a hint",
            "ok - \"Test delivery\" succeeds after the SIEM is back",
            "ok - an old error on an active card is shown as past, not in red",
            "ok - at 375 px the page fits without sideways scrolling",
            "ok - webhook/soar is disabled after \"Disable\"",
            "ok - the page requested nothing outside",
        ],
    );
    assert!(
        hook.distinct_events() >= 10,
        "the fake SIEM got only {} events",
        hook.distinct_events()
    );
    for shot in [
        "status-page-active.png",
        "status-page-degraded.png",
        "status-page-recovered.png",
        "status-page-charts.png",
    ] {
        let path = artifacts_dir().join(shot);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 10_000,
            "{} is missing or empty ({size} bytes)",
            path.display()
        );
    }
    println!(
        "screenshot of webhook/soar's card with its charts: {}",
        artifacts_dir().join("status-page-charts.png").display()
    );
}

#[test]
fn status_page_without_admin_auth_shows_every_exporter_at_once() {
    let root = repo_root();
    require_browser_tools(&root);
    let hook = FakeHttpSink::start(HttpSinkOptions::default());
    let (relay, receiver_port, admin_port) = start_relay(false, &hook);

    let run = run_browser(
        &browser_args(admin_port, receiver_port, "basic", None),
        None,
    );

    assert_passed(
        &run,
        &relay,
        &[
            "ok - without admin auth the page does not ask for a token",
            "ok - the page lists exactly the 3 exporters of the config",
            "ok - every exporter card has its three charts as inline SVG",
            "ok - the charts draw the samples the admin API serves",
            "ok - the page shows the version, uptime and config path",
            "ok - replay is offered only with allow_config_changes",
            "ok - the page requested nothing outside",
        ],
    );
}
