//! A real Kafka-compatible broker for the kafka tests: `tansu` (crates.io) with in-memory
//! storage, started on a free port on 127.0.0.1 and killed when dropped. Topics are not
//! auto-created: [`Tansu::create_topic`] makes them.
//!
//! The binary comes from `$SIEMRELAY_TANSU`, else `<tool cache>/bin/tansu` (the cache is
//! `$SIEMRELAY_TOOL_CACHE`, default `~/.cache/siemrelay-tools`, filled by
//! `scripts/install-tansu.sh`), else `tansu` on the PATH. Without it the tests fail, saying how
//! to install it.

use crate::{free_port, wait_for_port};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds the tansu binary, or panics with how to install it.
pub fn tansu_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SIEMRELAY_TANSU") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("SIEMRELAY_TOOL_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/siemrelay-tools"))
        });
    if let Some(bin) = cache.map(|c| c.join("bin/tansu")).filter(|b| b.exists()) {
        return bin;
    }
    if let Some(paths) = std::env::var_os("PATH")
        && let Some(found) = std::env::split_paths(&paths)
            .map(|p| p.join("tansu"))
            .find(|p| p.exists())
    {
        return found;
    }
    panic!(
        "the tansu Kafka broker is not installed: run `bash scripts/install-tansu.sh` from the \
         workspace root (about 6 minutes; scripts/test-all.sh does it), or set SIEMRELAY_TANSU"
    );
}

/// A running tansu broker.
pub struct Tansu {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Tansu {
        let dir = tempfile::tempdir().expect("tempdir for tansu");
        let log = dir.path().join("tansu.log");
        let mut tansu = Tansu {
            port: free_port(),
            child: None,
            log,
            _dir: dir,
        };
        tansu.up();
        tansu
    }

    fn up(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("tansu log file");
        let child = Command::new(tansu_bin())
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .env(
                "RUST_LOG",
                std::env::var("SIEMRELAY_TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("tansu log"))
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        assert!(
            wait_for_port(self.addr(), Duration::from_secs(20)),
            "tansu did not listen on {}; log:\n{}",
            self.addr(),
            self.logs()
        );
    }

    /// `127.0.0.1:PORT`, for `brokers:` lists.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// What the broker logged.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Creates a topic with `partitions` partitions (tansu's own CLI), retrying briefly.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let output = Command::new(tansu_bin())
                .args(["topic", "create", name])
                .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
                .args(["--partitions", &partitions.to_string()])
                .output()
                .expect("run tansu topic create");
            if output.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu topic create {name} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the broker (its in-memory topics and offsets are gone).
    pub fn stop(&mut self) {
        self.thaw();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the broker (SIGSTOP): clients see it unreachable, as in a network partition or a
    /// hung broker, while its topics, offsets and producer state are kept.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a frozen broker run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on a child we own; no memory is shared.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    /// Starts it again on the same port (empty: topics must be created again).
    pub fn restart(&mut self) {
        self.stop();
        self.up();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: String = logs
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("---- tansu log (last lines) ----\n{tail}");
        }
    }
}
