//! The signature chain head (`sign` with `chain: true`) survives a crash: siemrelay runs under
//! strace, which records the file system calls of a start that takes the saved head and of a
//! clean stop that saves the new one. The head must be written to `chain-state.tmp`, fsynced,
//! renamed over `chain-state` and the directory fsynced (so a crash or power loss after the stop
//! leaves the old or the new head, never a torn or missing one), and its removal at start must
//! be fsynced too (or a crash could bring back a stale head and break the chain).

use siemrelay_e2e::{Siemrelay, free_port, siemrelay_bin, wait_for_port};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "chain-state-test-key-3c2b1a";

fn config(port: u16) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
processors:
  sign:
    keys: [{{ id: k1, secret: "${{env:SIGN_KEY}}" }}]
    active: k1
    chain: true
exporters:
  file: {{ path: "./out/signed.ndjson" }}
service:
  shutdown_timeout: 10s
  pipelines:
    security: {{ receivers: [webhook], processors: [sign], exporters: [file] }}
"#
    )
}

async fn post(port: u16, n: usize) {
    let body: String = (0..n)
        .map(|i| {
            format!("{{\"event_type\":\"login\",\"severity\":\"high\",\"summary\":\"{i}\"}}\n")
        })
        .collect();
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}

/// The `chain-state` file under `dir` (searched: the storage layout is not this test's
/// business), canonical so it compares with the paths strace prints.
fn find_chain_state(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_chain_state(&path) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == "chain-state") {
            return path.canonicalize().ok();
        }
    }
    None
}

/// The process strace started (its only child).
fn traced_child(strace: u32) -> Option<i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The position of the first traced call at or after `from` that `matches`.
fn position(lines: &[&str], from: usize, matches: impl Fn(&str) -> bool) -> Option<usize> {
    (from..lines.len()).find(|&i| matches(lines[i]))
}

/// The syscall name of an strace line (`1234  fsync(5</x>) = 0` → `fsync`).
fn syscall(line: &str) -> &str {
    let call = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
    call.split('(').next().unwrap_or_default()
}

fn is_sync(line: &str) -> bool {
    matches!(syscall(line), "fsync" | "fdatasync")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_head_is_fsynced_renamed_and_its_directory_fsynced() {
    let strace_ok = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=none", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        strace_ok,
        "strace is missing or cannot trace here (tests/apt-packages.txt lists it; scripts/setup-test-env.sh installs it)"
    );
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let env = [("SIGN_KEY", KEY)];

    // A first run leaves a saved head for the traced run to take.
    let mut relay = Siemrelay::start_in(tempfile::tempdir().unwrap(), &config(port), &[], &env);
    relay.wait_ready(addr);
    post(port, 5).await;
    let status = relay.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{}", relay.logs());
    let dir = relay.into_dir();
    let state = find_chain_state(dir.path()).expect("a clean stop saves chain-state");
    let state_dir = state.parent().unwrap().display().to_string();
    let state = state.display().to_string();
    let temp = format!("{state}.tmp");

    // The traced run: takes the head at start, saves the new one at a clean stop.
    let trace = dir.path().join("trace.txt");
    let log = std::fs::File::create(dir.path().join("traced.log")).unwrap();
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-y", "-s", "256", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=openat,write,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat",
            "--",
        ])
        .arg(siemrelay_bin())
        .args(["run", "--config", "siemrelay.yaml"])
        .current_dir(dir.path())
        .env("SIGN_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start strace");
    let logs = || std::fs::read_to_string(dir.path().join("traced.log")).unwrap_or_default();
    assert!(
        wait_for_port(addr, Duration::from_secs(60)),
        "the traced siemrelay did not start\n{}",
        logs()
    );
    post(port, 5).await;
    let pid = traced_child(strace.id()).expect("the process strace started");
    // SAFETY: kill(2) with the pid of a process this test started; no memory is shared.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(
        wait_exit(&mut strace, Duration::from_secs(60)),
        "the traced siemrelay did not stop\n{}",
        logs()
    );

    let text = std::fs::read_to_string(&trace).expect("strace output");
    let lines: Vec<&str> = text.lines().collect();
    let fails = |what: &str| {
        format!("{what}\n--- chain-state calls ---\n{}", {
            let relevant: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.contains("chain-state") || (is_sync(l) && l.contains(&state_dir)))
                .collect();
            relevant.join("\n")
        })
    };

    // Start: the saved head is read and removed, and the removal is made durable.
    let unlinked = position(&lines, 0, |l| {
        matches!(syscall(l), "unlink" | "unlinkat") && l.contains("/chain-state\"")
    })
    .unwrap_or_else(|| panic!("{}", fails("the start did not remove chain-state")));
    let opened = position(&lines, unlinked, |l| l.contains("/chain-state.tmp\""))
        .unwrap_or_else(|| panic!("{}", fails("the stop did not write chain-state.tmp")));
    assert!(
        position(&lines, unlinked, |l| is_sync(l)
            && l.contains(&format!("<{state_dir}>")))
        .is_some_and(|i| i < opened),
        "{}",
        fails("the removal of chain-state at start is not fsynced (a crash could bring it back)")
    );

    // Stop: write the temporary file, fsync it, rename it over chain-state, fsync the directory.
    let written = position(&lines, opened, |l| {
        syscall(l) == "write" && l.contains(&format!("<{temp}>"))
    })
    .unwrap_or_else(|| panic!("{}", fails("nothing written to chain-state.tmp")));
    let synced = position(&lines, written, |l| {
        is_sync(l) && l.contains(&format!("<{temp}>"))
    });
    let renamed = position(&lines, written, |l| {
        syscall(l).starts_with("rename") && l.contains("/chain-state.tmp\"")
    })
    .unwrap_or_else(|| panic!("{}", fails("chain-state.tmp was not renamed")));
    assert!(
        synced.is_some_and(|s| s < renamed),
        "{}",
        fails(
            "chain-state.tmp is not fsynced before the rename (a crash can leave it torn or empty)"
        )
    );
    assert!(
        position(&lines, renamed, |l| is_sync(l)
            && l.contains(&format!("<{state_dir}>")))
        .is_some(),
        "{}",
        fails("the directory is not fsynced after the rename (a crash can undo it)")
    );

    // What was written is what the file holds: one whole SHA-256 hex digest.
    let saved = std::fs::read_to_string(&state).expect("chain-state after the stop");
    let digest = saved.trim_end();
    assert!(
        saved.ends_with('\n')
            && digest.len() == 64
            && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "chain-state holds {saved:?}"
    );
    assert!(
        lines[written].contains(&format!("\"{digest}\\n\"")),
        "{}",
        fails("the write did not carry the saved head")
    );
}
