//! Syslog over TCP and TLS (RFC 6587, RFC 5425): one task per connection reads, frames
//! ([`super::framing`]) and hands batches over ([`super::intake`]). A batch is handed over when
//! it is full or when the socket has nothing more to read right now; while the pipeline refuses
//! it the connection reads nothing, so the kernel's receive window fills and the sender is slowed
//! (TCP flow control): nothing is dropped.
//!
//! Limits: at most `max_connections` connections (past it the listener stops accepting), at most
//! `max_message_size` per message plus one read buffer held per connection, connections silent
//! for `idle_timeout` closed, clients outside `allowed_cidrs` closed before a byte is read, TLS
//! handshakes within 10 s.

use super::framing::{Frame, Framer};
use super::intake::{Intake, NotQueued, Pending, Received};
use super::telemetry::{Reason, Telemetry};
use bytes::BytesMut;
use siemrelay_core::cidr::CidrAllowList;
use siemrelay_core::listener_tls::ReloadableTls;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 * 1024;
/// Longest the connections may take to hand over what they hold after shutdown began.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound TCP (or TLS) listener of the syslog receiver.
pub struct TcpListen {
    /// The socket.
    pub tcp: TcpListener,
    /// TLS, re-read on SIGHUP; `None` serves plain TCP.
    pub tls: Option<Arc<ReloadableTls>>,
    /// Clients served; empty = all.
    pub allowed: CidrAllowList,
    /// Largest message.
    pub max_message_size: usize,
    /// Most open connections.
    pub max_connections: usize,
    /// Silence after which a connection is closed.
    pub idle_timeout: Duration,
    /// `receiver/tcp`, for logs and metrics.
    pub name: String,
}

/// What one connection needs.
struct Connection {
    intake: Arc<Intake>,
    max_message_size: usize,
    idle_timeout: Duration,
    name: Arc<str>,
    peer: SocketAddr,
}

/// Accepts connections until `shutdown`, then waits (up to 30 s) for each to hand over what it
/// read.
pub async fn serve(listen: TcpListen, intake: Arc<Intake>, shutdown: CancellationToken) {
    let name: Arc<str> = listen.name.clone().into();
    let connections = Arc::new(Semaphore::new(listen.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listen.tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(listener = %name, error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if !listen.allowed.allows(peer.ip()) {
            Telemetry::listener_refused(&name, "address");
            tracing::debug!(listener = %name, %peer, "client address is outside allowed_cidrs");
            continue;
        }
        let connection = Connection {
            intake: intake.clone(),
            max_message_size: listen.max_message_size,
            idle_timeout: listen.idle_timeout,
            name: name.clone(),
            peer,
        };
        let (tls, shutdown) = (listen.tls.clone(), shutdown.clone());
        tracker.spawn(async move {
            let _permit = permit;
            match tls {
                None => connection.run(stream, shutdown).await,
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => connection.run(stream, shutdown).await,
                    Err(e) => {
                        Telemetry::listener_refused(&connection.name, "tls_handshake");
                        tracing::debug!(listener = %connection.name, %peer, error = %e, "TLS handshake failed");
                    }
                },
            }
        });
    }
    drop(listen.tcp);
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(listener = %name, "syslog connections still handing over after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// How one read ended.
enum Read {
    Bytes,
    Closed,
    Idle,
    Shutdown,
    Failed(std::io::Error),
}

impl Connection {
    async fn run<S: AsyncRead + Unpin>(self, mut stream: S, shutdown: CancellationToken) {
        let mut framer = Framer::new(self.max_message_size);
        let mut buffer = BytesMut::with_capacity(READ_SIZE);
        let mut pending = Pending::default();
        let telemetry = &self.intake.telemetry;
        let peer = self.peer.ip();
        let end = loop {
            // With messages waiting, hand them over as soon as the socket has nothing ready.
            if !pending.is_empty() {
                buffer.reserve(READ_SIZE);
                match tokio::time::timeout(Duration::ZERO, stream.read_buf(&mut buffer)).await {
                    Ok(result) => match self.after_read(result) {
                        Read::Bytes => {}
                        other => break other,
                    },
                    Err(_) => {
                        if let Err(lost) = self.intake.hand_over(&mut pending, &shutdown).await {
                            break self.lost(lost);
                        }
                        continue;
                    }
                }
            } else {
                buffer.reserve(READ_SIZE);
                let read = tokio::select! {
                    () = shutdown.cancelled() => Read::Shutdown,
                    result = tokio::time::timeout(self.idle_timeout, stream.read_buf(&mut buffer)) => match result {
                        Ok(result) => self.after_read(result),
                        Err(_) => Read::Idle,
                    },
                };
                if !matches!(read, Read::Bytes) {
                    break read;
                }
            }
            let mut broken = false;
            loop {
                match framer.next(&mut buffer) {
                    Ok(Some(Frame::Message(bytes))) => pending.push(Received { bytes, peer }),
                    Ok(Some(Frame::TooLarge(size))) => {
                        telemetry.refused(Reason::TooLarge, 1);
                        tracing::debug!(listener = %self.name, peer = %self.peer, size, max = self.max_message_size, "syslog message over max_message_size skipped");
                    }
                    Ok(None) => break,
                    Err(error) => {
                        telemetry.refused(Reason::Framing, 1);
                        tracing::warn!(listener = %self.name, peer = %self.peer, %error, "closing a syslog connection that broke its framing");
                        broken = true;
                        break;
                    }
                }
                if pending.is_full()
                    && let Err(lost) = self.intake.hand_over(&mut pending, &shutdown).await
                {
                    self.lost(lost);
                    return;
                }
            }
            if broken {
                break Read::Closed;
            }
        };
        if let Read::Failed(error) = &end {
            tracing::debug!(listener = %self.name, peer = %self.peer, %error, "syslog connection ended with an error");
        }
        if let Read::Idle = end {
            Telemetry::listener_refused(&self.name, "idle");
        }
        // What was read before the end is handed over (a partial last frame is not a message).
        if let Err(lost) = self.intake.hand_over(&mut pending, &shutdown).await {
            self.lost(lost);
        }
        tracing::trace!(listener = %self.name, peer = %self.peer, framing = ?framer.mode().map(|m| m.name()), "syslog connection closed");
    }

    fn after_read(&self, result: std::io::Result<usize>) -> Read {
        match result {
            Ok(0) => Read::Closed,
            Ok(_) => Read::Bytes,
            Err(e) => Read::Failed(e),
        }
    }

    fn lost(&self, NotQueued(events): NotQueued) -> Read {
        self.intake.telemetry.refused(Reason::ShuttingDown, events);
        tracing::warn!(listener = %self.name, peer = %self.peer, events, "siemrelay is stopping: syslog messages read from this connection were not queued");
        Read::Shutdown
    }
}
