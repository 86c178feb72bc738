//! Helpers for siemrelay's end-to-end tests: start the real binary on a config, talk to it, stop
//! or kill it, and fake SIEM servers that speak the real protocols (see [`fake`]).

pub mod contract;
pub mod events;
pub mod fake;
pub mod intake;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The siemrelay binary under test: `$SIEMRELAY_BIN`, or `target/debug/siemrelay` next to the
/// running test executable (cargo builds it because the `siemrelay-pipelines` package has
/// integration tests).
pub fn siemrelay_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SIEMRELAY_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> → target/debug/siemrelay
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("siemrelay");
    assert!(
        bin.exists(),
        "{} does not exist: build it with `cargo build -p siemrelay-pipelines` (the test command does)",
        bin.display()
    );
    bin
}

/// The repository root (the parent of this crate's directory).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python of the test environment (`$SIEMRELAY_PYTHON`, else `target/py-venv/bin/python`,
/// with the packages of tests/python/requirements.txt); a missing one fails saying how to make
/// it.
pub fn python() -> PathBuf {
    let python = std::env::var_os("SIEMRELAY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/py-venv/bin/python"));
    assert!(
        python.exists(),
        "the test Python is not at {}: run `bash scripts/setup-test-env.sh` from the workspace \
         root (creates target/py-venv from tests/python/requirements.txt) or set SIEMRELAY_PYTHON",
        python.display()
    );
    python
}

/// A free TCP port on 127.0.0.1 for a server a test starts later.
///
/// Chosen below the kernel's ephemeral range (32768 and up), which outgoing connections and
/// `:0` binds draw from: a port handed out here cannot be taken by one of the many client
/// sockets the tests open before the server binds it. Random per process (tests run in
/// parallel processes), never the same twice in one process, and bindable when returned.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    const LOW: u64 = 20_000;
    const HIGH: u64 = 32_000;
    let mut state = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
        | 1;
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..10_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let port = (LOW + state % (HIGH - LOW)) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port between {LOW} and {HIGH}")
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A running siemrelay process in its own working directory (so `./siemrelay-data` is private).
pub struct Siemrelay {
    child: Option<Child>,
    dir: tempfile::TempDir,
    log_path: PathBuf,
}

impl Siemrelay {
    /// Writes `config` to `<tmp>/siemrelay.yaml` and runs `siemrelay run --config` there.
    pub fn start(config: &str) -> Siemrelay {
        Self::start_with(config, &[], &[])
    }

    /// Like [`Siemrelay::start`] with extra arguments after `run --config FILE` and extra env vars.
    pub fn start_with(config: &str, args: &[&str], env: &[(&str, &str)]) -> Siemrelay {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, config, args, env)
    }

    /// Starts in a given directory (to restart on the same data).
    pub fn start_in(
        dir: tempfile::TempDir,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Siemrelay {
        let config_path = dir.path().join("siemrelay.yaml");
        std::fs::write(&config_path, config).expect("write config");
        // One log file per start: a restart in the same directory (`into_dir`, then `start_in`)
        // must not read the previous run's lines as its own.
        static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let start = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log_path = dir
            .path()
            .join(format!("siemrelay-{}-{start}.log", std::process::id()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        let mut command = Command::new(siemrelay_bin());
        command
            .current_dir(dir.path())
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .env(
                "RUST_LOG",
                std::env::var("SIEMRELAY_TEST_LOG").unwrap_or_else(|_| "info".into()),
            );
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start siemrelay");
        Siemrelay {
            child: Some(child),
            dir,
            log_path,
        }
    }

    /// The process's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the process logged so far.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Waits until `addr` accepts connections, panicking with the logs if it does not.
    pub fn wait_ready(&mut self, addr: SocketAddr) {
        if !wait_for_port(addr, Duration::from_secs(20)) {
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "siemrelay did not listen on {addr} (exit: {status:?}); logs:\n{}",
                self.logs()
            );
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends a signal (e.g. `libc::SIGTERM`, `libc::SIGHUP`).
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) with a pid we own; no memory is shared.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    /// SIGTERM, then waits for the exit (up to `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        self.wait_exit(timeout)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Some(status);
                }
            } else {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops the process (SIGKILL if needed) and hands back its directory for a restart.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        self.kill();
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for Siemrelay {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- siemrelay logs ----\n{}", self.logs());
        }
    }
}

/// Runs `siemrelay test <exporter>` on `config` (written to a fresh directory) with extra
/// environment variables; returns whether it succeeded and its stdout and stderr together.
pub fn run_test_command(exporter: &str, config: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("siemrelay.yaml");
    std::fs::write(&path, config).expect("write config");
    let output = Command::new(siemrelay_bin())
        .args(["test", exporter, "--config"])
        .arg(&path)
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .output()
        .expect("run siemrelay test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Runs `siemrelay ARGS…` to completion (for `validate`, `verify`, `test`, …).
pub fn run_cli(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(siemrelay_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run siemrelay")
}

/// Reads every complete NDJSON line of every file in `dir` whose name starts with `prefix`.
pub fn read_ndjson_files(dir: &Path, prefix: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // A line still being written (no newline yet) is not complete: skip it.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        for line in complete.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str(line) {
                Ok(value) => out.push(value),
                Err(e) => panic!("{}: bad line {line:?}: {e}", path.display()),
            }
        }
    }
    out
}

/// The top-level keys of a JSON object in the order they appear in the text (parsing into a
/// `serde_json::Value` sorts them).
pub fn json_keys_in_order(text: &[u8]) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    serde::Deserializer::deserialize_map(&mut deserializer, Keys).unwrap_or_default()
}

/// Posts `requests` NDJSON bodies concurrently to the webhook receiver on `port`
/// (`/v1/events`); `body(request)` builds each body and returns the event ids in it. Asserts
/// that every request is answered 200 and returns all the ids sent.
pub async fn post_ndjson_requests(
    port: u16,
    requests: usize,
    body: impl Fn(usize) -> (String, Vec<String>),
) -> Vec<String> {
    let mut sent = Vec::new();
    let mut bodies = Vec::with_capacity(requests);
    for request in 0..requests {
        let (text, ids) = body(request);
        sent.extend(ids);
        bodies.push(text);
    }
    post_ndjson_bodies(port, bodies).await;
    sent
}

/// Posts NDJSON bodies concurrently to the webhook receiver on `port` (`/v1/events`) and
/// asserts that each is answered 200.
pub async fn post_ndjson_bodies(port: u16, bodies: Vec<String>) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let mut tasks = Vec::new();
    for text in bodies {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/x-ndjson")
                .body(text)
                .send()
                .await
                .expect("post to the webhook receiver")
                .status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("sender task"), 200);
    }
}
