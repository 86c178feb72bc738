//! A real syslog server for tests: Debian's `rsyslogd`, started unprivileged on a free port of
//! 127.0.0.1 with its own config in a temp dir (`rsyslogd -n -f <conf> -i <pidfile>`). `imtcp`
//! accepts LF-terminated and octet-counted frames; with TLS it uses the `gtls` driver
//! (package `rsyslog-gnutls`). Every message is written raw (`%rawmsg%`, no control-character
//! escaping) as one line of `<dir>/received.log`. It can be stopped (SIGTERM: rsyslog drains its
//! queue to the file) and started again on the same port.
//!
//! Needs `rsyslog` and `rsyslog-gnutls` (listed in tests/apt-packages.txt; run
//! `bash scripts/setup-test-env.sh`). `$SIEMRELAY_RSYSLOGD` overrides the binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// TLS files for rsyslog's `gtls` driver (PEM paths).
#[derive(Clone, Debug)]
pub struct RsyslogTls {
    /// CA that signed the server certificate (and, with `require_client_cert`, client certs).
    pub ca_file: PathBuf,
    /// Server certificate.
    pub cert_file: PathBuf,
    /// Server key.
    pub key_file: PathBuf,
    /// Demand a client certificate signed by the CA (`x509/certvalid`); otherwise `anon`.
    pub require_client_cert: bool,
}

/// A running (or stopped) rsyslogd.
pub struct Rsyslog {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

/// The rsyslogd binary: `$SIEMRELAY_RSYSLOGD`, `/usr/sbin/rsyslogd` or `rsyslogd` on the PATH.
/// Panics with install instructions when missing.
pub fn rsyslogd() -> PathBuf {
    if let Some(path) = std::env::var_os("SIEMRELAY_RSYSLOGD") {
        return PathBuf::from(path);
    }
    for candidate in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd", "/usr/bin/rsyslogd"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "rsyslogd is not installed: these tests need a real syslog server. Install it with \
         `bash scripts/setup-test-env.sh` (as root; it installs the Debian packages in \
         tests/apt-packages.txt: rsyslog, rsyslog-gnutls) or set SIEMRELAY_RSYSLOGD"
    );
}

fn config(dir: &Path, port: u16, tls: Option<&RsyslogTls>) -> String {
    let dir = dir.display();
    let (tls_global, module) = match tls {
        Some(tls) => (
            format!(
                " DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                tls.ca_file.display(),
                tls.cert_file.display(),
                tls.key_file.display()
            ),
            format!(
                "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"{}\")",
                if tls.require_client_cert {
                    "x509/certvalid"
                } else {
                    "anon"
                }
            ),
        ),
        None => (String::new(), "module(load=\"imtcp\")".to_string()),
    };
    format!(
        r#"global(workDirectory="{dir}" maxMessageSize="256k" parser.escapeControlCharactersOnReceive="off"{tls_global})
main_queue(queue.size="500000" queue.timeoutShutdown="30000" queue.timeoutEnqueue="30000")
{module}
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\n")
action(type="omfile" file="{dir}/received.log" template="raw")
"#
    )
}

impl Rsyslog {
    /// Starts rsyslogd on a free port (plain TCP, or TLS with `tls`) and waits until it listens.
    pub fn start(tls: Option<RsyslogTls>) -> Rsyslog {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::free_port();
        let conf = config(dir.path(), port, tls.as_ref());
        std::fs::write(dir.path().join("rsyslog.conf"), conf).expect("write rsyslog.conf");
        let mut server = Rsyslog {
            dir,
            port,
            child: None,
        };
        server.start_again();
        server
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file rsyslog writes every received message to, one per line.
    pub fn output(&self) -> PathBuf {
        self.dir.path().join("received.log")
    }

    /// Starts rsyslogd (again) on the same port and config; waits until it listens.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "rsyslogd is already running");
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("rsyslogd.log"))
            .expect("rsyslogd log");
        let _ = std::fs::remove_file(dir.join("rsyslogd.pid"));
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", rsyslogd().display()));
        self.child = Some(child);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "rsyslogd exited at start ({status}); its log:\n{}",
                    self.log()
                );
            }
            if crate::wait_for_port(addr, Duration::from_millis(100)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on {addr}; its log:\n{}",
                self.log()
            );
        }
    }

    /// SIGTERM and wait for the exit: rsyslog closes its connections and writes what it has
    /// queued to the file first.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the pid of a child we started and have not reaped.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("rsyslogd did not stop within 40s after SIGTERM");
    }

    /// rsyslogd's own log (stdout/stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap_or_default()
    }

    /// Every complete line received so far (a line rsyslog is still writing is left out).
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.output())
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter_map(|line| line.strip_suffix('\n'))
            .map(str::to_string)
            .collect()
    }

    /// Polls the output file until `done(lines)` holds or `timeout` passes; returns the lines.
    /// (rsyslog writes a file; there is nothing to await but its content.)
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if done(&lines) || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- rsyslogd log ----\n{}", self.log());
        }
    }
}
