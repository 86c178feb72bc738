//! Getting syslog bytes to the server: TCP or TLS connections (a small pool, one connection per
//! concurrent sender, reconnecting on the next attempt after a failure), and UDP datagrams.
//!
//! Each stream connection has a reader task that drains whatever the server sends (syslog servers
//! normally send nothing) and notes when the server closes (EOF) or resets the connection. That
//! is how a broken connection is noticed even between sends, and how the two confirmation modes
//! work:
//! - [`Connection::confirm_acked`]: every byte written was acknowledged by the server's TCP stack
//!   (Linux `SIOCOUTQ` reaches 0) and the connection was not reset meanwhile;
//! - [`Connection::close_and_confirm`]: half-close (TLS: close_notify), then wait for the server to
//!   close its side: it has read everything we sent.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A host and port to connect to (resolved on every connect, so DNS changes are followed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host:port`, `[v6]:port`, or a bare host (then `default_port`).
pub fn parse_endpoint(text: &str, default_port: u16) -> Result<Endpoint, String> {
    let text = text.trim();
    if text.contains("://") {
        return Err(format!(
            "{text:?} is a URL; write host:port (e.g. qradar.example.com:514)"
        ));
    }
    let port_of = |port: &str| {
        port.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{text:?}: port {port:?} is not a number 1-65535"))
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: missing ] after the IPv6 address"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, port_of(port)?),
            None if after.is_empty() => (host, default_port),
            None => return Err(format!("{text:?}: expected :port after ]")),
        }
    } else if text.matches(':').count() > 1 {
        (text, default_port)
    } else if let Some((host, port)) = text.split_once(':') {
        (host, port_of(port)?)
    } else {
        (text, default_port)
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{text:?}: missing or invalid host"));
    }
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

/// What the reader task has seen of the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Connected.
    Open,
    /// The server closed its side (EOF).
    Closed,
    /// The connection failed (reset, TLS error …).
    Failed(String),
}

/// How to open stream connections.
pub struct Connector {
    endpoint: Endpoint,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    connect_timeout: Duration,
    exporter: String,
}

impl Connector {
    /// A connector for plain TCP, or TLS with `tls` (client config and the name to verify).
    pub fn new(
        exporter: &str,
        endpoint: Endpoint,
        tls: Option<(rustls::ClientConfig, rustls::pki_types::ServerName<'static>)>,
        connect_timeout: Duration,
    ) -> Connector {
        Connector {
            endpoint,
            tls: tls
                .map(|(config, name)| (tokio_rustls::TlsConnector::from(Arc::new(config)), name)),
            connect_timeout,
            exporter: exporter.to_string(),
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Opens a connection (TCP connect and, with TLS, the handshake) within the connect timeout.
    pub async fn connect(&self) -> Result<Connection, String> {
        let endpoint = &self.endpoint;
        let stream = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await
        .map_err(|_| {
            format!(
                "connecting to {endpoint} timed out after {:?}",
                self.connect_timeout
            )
        })?
        .map_err(|e| format!("connecting to {endpoint} failed: {e}"))?;
        let _ = stream.set_nodelay(true);
        metrics::counter!("siemrelay_exporter_connections_total", "exporter" => self.exporter.clone())
            .increment(1);
        #[cfg(unix)]
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        #[cfg(not(unix))]
        let fd = 0;
        match &self.tls {
            None => {
                let (read, write) = stream.into_split();
                Ok(Connection::new(read, Box::new(write), fd))
            }
            Some((connector, name)) => {
                let started = std::time::Instant::now();
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    connector.connect(name.clone(), stream),
                )
                .await
                .map_err(|_| format!("TLS handshake with {endpoint} timed out"))?
                .map_err(|e| format!("TLS handshake with {endpoint} failed: {e}"))?;
                let (read, write) = tokio::io::split(tls);
                let mut connection = Connection::new(read, Box::new(write), fd);
                connection.handshake_time = Some(started.elapsed());
                Ok(connection)
            }
        }
    }
}

/// One TCP or TLS connection to the server.
pub struct Connection {
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fd: i32,
    peer: watch::Receiver<PeerState>,
    reader: JoinHandle<()>,
    /// For a fresh TLS connection: how long the handshake took (a round-trip estimate).
    handshake_time: Option<Duration>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_until_end<R: AsyncRead + Unpin>(mut reader: R, state: watch::Sender<PeerState>) {
    let mut buf = [0u8; 2048];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => {
                state.send_replace(PeerState::Closed);
                return;
            }
            Ok(_) => {}
            // TLS peers that close without close_notify: still an orderly close of TCP.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                state.send_replace(PeerState::Closed);
                return;
            }
            Err(e) => {
                state.send_replace(PeerState::Failed(e.to_string()));
                return;
            }
        }
    }
}

impl Connection {
    fn new<R: AsyncRead + Unpin + Send + 'static>(
        read: R,
        writer: Box<dyn AsyncWrite + Send + Unpin>,
        fd: i32,
    ) -> Connection {
        let (state, peer) = watch::channel(PeerState::Open);
        let reader = tokio::spawn(read_until_end(read, state));
        Connection {
            writer,
            fd,
            peer,
            reader,
            handshake_time: None,
        }
    }

    /// True while the server has neither closed nor reset the connection.
    pub fn is_open(&self) -> bool {
        *self.peer.borrow() == PeerState::Open
    }

    /// Writes all of `bytes` and flushes (TLS: every record handed to the socket).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        if let PeerState::Failed(reason) = &*self.peer.borrow() {
            return Err(format!("the connection broke: {reason}"));
        }
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| format!("writing failed: {e}"))?;
        self.writer
            .flush()
            .await
            .map_err(|e| format!("flushing failed: {e}"))
    }

    /// Waits until the server's TCP stack acknowledged every byte written (Linux `SIOCOUTQ`;
    /// elsewhere the flush is all there is). Fails when the connection is reset first, or the
    /// server closes it with bytes unacknowledged.
    pub async fn confirm_acked(&mut self) -> Result<(), String> {
        let mut interval = Duration::from_millis(1);
        loop {
            let state = self.peer.borrow().clone();
            if let PeerState::Failed(reason) = &state {
                return Err(format!("the connection broke: {reason}"));
            }
            let pending = unacknowledged_bytes(self.fd)
                .map_err(|e| format!("cannot read the socket's send queue: {e}"))?;
            if pending == 0 {
                return self.await_late_tls_rejection().await;
            }
            if state == PeerState::Closed {
                return Err(format!(
                    "the server closed the connection with {pending} bytes unacknowledged"
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.peer.changed() => {}
            }
            interval = (interval * 2).min(Duration::from_millis(50));
        }
    }

    /// With TLS 1.3 the server checks a client certificate after our handshake has finished, so
    /// a refusal (an alert, then a reset) arrives only after the first bytes. On the first batch
    /// of a TLS connection, wait up to twice the handshake time (at least 20ms) for it.
    async fn await_late_tls_rejection(&mut self) -> Result<(), String> {
        let Some(handshake) = self.handshake_time.take() else {
            return Ok(());
        };
        let grace = (handshake * 2).max(Duration::from_millis(20));
        let settled =
            tokio::time::timeout(grace, self.peer.wait_for(|state| *state != PeerState::Open))
                .await;
        match settled {
            Ok(Ok(state)) => match &*state {
                PeerState::Failed(reason) => {
                    Err(format!("the server refused the TLS session: {reason}"))
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Half-closes (TLS: close_notify) and waits for the server to close its side, which it does
    /// after reading everything sent. Fails when the connection is reset instead.
    pub async fn close_and_confirm(&mut self) -> Result<(), String> {
        self.writer
            .shutdown()
            .await
            .map_err(|e| format!("closing the connection failed: {e}"))?;
        let state = self
            .peer
            .wait_for(|state| *state != PeerState::Open)
            .await
            .map(|state| state.clone())
            .unwrap_or(PeerState::Failed("reader stopped".into()));
        match state {
            PeerState::Closed => Ok(()),
            PeerState::Failed(reason) => Err(format!(
                "the connection broke before the server confirmed by closing: {reason}"
            )),
            PeerState::Open => Err("the connection is still open".into()),
        }
    }
}

#[cfg(target_os = "linux")]
fn unacknowledged_bytes(fd: i32) -> io::Result<usize> {
    let mut pending: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (= SIOCOUTQ for sockets) writes one int through the pointer; `fd` is the
    // TCP socket of a connection this struct still owns (both halves are alive).
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut pending as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(pending).unwrap_or(0))
}

#[cfg(not(target_os = "linux"))]
fn unacknowledged_bytes(_fd: i32) -> io::Result<usize> {
    Ok(0)
}

/// Idle connections, one per concurrent sender at most.
pub struct StreamPool {
    connector: Connector,
    idle: Mutex<Vec<Connection>>,
}

impl StreamPool {
    /// A pool opening connections with `connector`.
    pub fn new(connector: Connector) -> StreamPool {
        StreamPool {
            connector,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The connector.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// An idle connection still open, or a new one.
    pub async fn take(&self) -> Result<Connection, String> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            // Connections the server closed while idle are dropped here.
            idle.retain(Connection::is_open);
            idle.pop()
        };
        match reused {
            Some(connection) => Ok(connection),
            None => self.connector.connect().await,
        }
    }

    /// Returns a healthy connection for reuse.
    pub fn give_back(&self, connection: Connection) {
        if connection.is_open() {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(connection);
        }
    }
}

/// Datagrams to one server (RFC 5426: one message per datagram).
pub struct UdpSender {
    endpoint: Endpoint,
    socket: tokio::sync::OnceCell<UdpSocket>,
}

impl UdpSender {
    /// A sender for `endpoint`; the socket is opened on first use.
    pub fn new(endpoint: Endpoint) -> UdpSender {
        UdpSender {
            endpoint,
            socket: tokio::sync::OnceCell::new(),
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn socket(&self) -> Result<&UdpSocket, String> {
        self.socket
            .get_or_try_init(|| async {
                let target =
                    tokio::net::lookup_host((self.endpoint.host.as_str(), self.endpoint.port))
                        .await
                        .map_err(|e| format!("resolving {} failed: {e}", self.endpoint))?
                        .next()
                        .ok_or_else(|| format!("{} does not resolve", self.endpoint))?;
                let local: std::net::SocketAddr = if target.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let socket = UdpSocket::bind(local)
                    .await
                    .map_err(|e| format!("opening a UDP socket failed: {e}"))?;
                socket
                    .connect(target)
                    .await
                    .map_err(|e| format!("UDP connect to {target} failed: {e}"))?;
                Ok(socket)
            })
            .await
    }

    /// Sends each message as one datagram; returns how many were sent before an error.
    pub async fn send_all<'a>(
        &self,
        messages: impl Iterator<Item = &'a [u8]>,
    ) -> (usize, Option<String>) {
        let socket = match self.socket().await {
            Ok(socket) => socket,
            Err(e) => return (0, Some(e)),
        };
        let mut sent = 0;
        for message in messages {
            if let Err(e) = socket.send(message).await {
                return (
                    sent,
                    Some(format!("UDP send to {} failed: {e}", self.endpoint)),
                );
            }
            sent += 1;
        }
        (sent, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_default_ports() {
        let e = |text: &str| parse_endpoint(text, 514);
        assert_eq!(e("q.example.com:6514").unwrap().port, 6514);
        assert_eq!(e("q.example.com").unwrap().port, 514);
        assert_eq!(e("[::1]:601").unwrap().host, "::1");
        assert_eq!(e("[::1]").unwrap().port, 514);
        assert_eq!(e("fe80::1").unwrap().host, "fe80::1");
        assert!(e("https://q:1").unwrap_err().contains("URL"));
        assert!(e("q:99999").unwrap_err().contains("port"));
        assert!(e(":514").is_err());
        assert_eq!(e("[::1]:7").unwrap().to_string(), "[::1]:7");
    }

    #[tokio::test]
    async fn acked_and_close_confirmations_against_a_reading_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut total = 0usize;
            for _ in 0..2 {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                socket.read_to_end(&mut buf).await.unwrap();
                total += buf.len();
            }
            total
        });
        let connector = Connector::new(
            "test",
            Endpoint {
                host: "127.0.0.1".into(),
                port,
            },
            None,
            Duration::from_secs(2),
        );
        let mut first = connector.connect().await.unwrap();
        first.write(&vec![b'x'; 300_000]).await.unwrap();
        first.confirm_acked().await.unwrap();
        first.close_and_confirm().await.unwrap();
        let mut second = connector.connect().await.unwrap();
        second.write(b"hello\n").await.unwrap();
        second.close_and_confirm().await.unwrap();
        assert_eq!(server.await.unwrap(), 300_006);
    }

    #[tokio::test]
    async fn a_reset_fails_the_confirmation() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connector = Connector::new(
            "test",
            Endpoint {
                host: "127.0.0.1".into(),
                port,
            },
            None,
            Duration::from_secs(2),
        );
        let mut connection = connector.connect().await.unwrap();
        let (socket, _) = listener.accept().await.unwrap();
        // A zero linger turns the close into a reset.
        connection.write(b"unread\n").await.unwrap();
        #[allow(deprecated)] // a zero linger does not block
        socket.set_linger(Some(Duration::ZERO)).unwrap();
        drop(socket);
        let outcome = connection.close_and_confirm().await;
        assert!(outcome.is_err(), "{outcome:?}");
    }
}
