//! Serving one network listener of a receiver (the webhook, OTLP/gRPC, OTLP/HTTP): TLS with
//! optional client certificates, an address allow-list, and the limits that keep slow or
//! numerous clients from holding it (`limits:` in each listener's config).
//!
//! - At most `max_connections` connections; past it the listener stops accepting until one
//!   closes (the kernel's backlog holds the rest).
//! - At most `max_concurrent_requests` requests in flight; past it a request is answered at once
//!   with 503 + `Retry-After` (gRPC `UNAVAILABLE`) and its body is not read.
//! - A connection with no request in flight is closed `idle_timeout` after its last response
//!   (or after it opened), or `header_read_timeout` after the first byte of a request head that
//!   has not become a request: a client trickling its headers is cut off there, whatever the
//!   protocol (HTTP/1.1, HTTP/2 with or without TLS).
//! - A request body must arrive at `min_body_rate` bytes per second on average, counted from
//!   `header_read_timeout` after the request began ([`crate::body::MinRate`]).
//! - A client whose address is outside `allowed_cidrs` gets the protocol's refusal (403, gRPC
//!   `PERMISSION_DENIED`) to every request on its connection, before any body is read.

use crate::body::MinRate;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::cidr::CidrAllowList;
use siemrelay_core::config_types::{ConfigDuration, ConfigSize};
use siemrelay_core::listener_tls::{ListenerTlsConfig, ReloadableTls};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Longest in-flight requests may take to finish after shutdown began.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection being closed for idleness may take to finish cleanly (HTTP/2 GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long a closed connection keeps reading and discarding what its client still sends (a
/// request body refused before it was read), so that the client can finish writing and read
/// the answer instead of getting a reset that destroys it: nginx's lingering close.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// Lingering ends sooner when the client sends nothing for this long.
const LINGER_IDLE: Duration = Duration::from_secs(1);
/// HTTP/2 flow-control windows: large enough that a 1–4 MB export is not throttled on loopback.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// Counter of connections and requests a listener refused or closed, by reason.
const REFUSED_TOTAL: &str = "siemrelay_listener_refused_total";

/// Default `limits.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default `limits.max_concurrent_requests`.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;
/// Default `limits.header_read_timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `limits.min_body_rate`, in bytes per second.
pub const DEFAULT_MIN_BODY_RATE: u64 = 1024;
/// Default `limits.idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A listener's `limits:` block: caps and timeouts that bound what clients can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerLimits {
    /// Open connections at most; past it the listener stops accepting. Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Requests in flight at most; past it a request gets 503 (gRPC UNAVAILABLE). Default 256.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Time from the first byte of a request head to the request being read. Default `10s`.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: ConfigDuration,
    /// Slowest accepted body, in bytes per second on average (after `header_read_timeout`);
    /// `0` turns the check off. Default `1KiB`.
    #[serde(default = "default_min_body_rate")]
    pub min_body_rate: ConfigSize,
    /// A connection with no request is closed this long after its last response. Default `60s`.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: ConfigDuration,
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_max_concurrent_requests() -> usize {
    DEFAULT_MAX_CONCURRENT_REQUESTS
}
fn default_header_read_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_HEADER_READ_TIMEOUT)
}
fn default_min_body_rate() -> ConfigSize {
    ConfigSize(DEFAULT_MIN_BODY_RATE)
}
fn default_idle_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_IDLE_TIMEOUT)
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            header_read_timeout: default_header_read_timeout(),
            min_body_rate: default_min_body_rate(),
            idle_timeout: default_idle_timeout(),
        }
    }
}

/// Issues of a listener's `tls` block, their keys under `prefix` (`tls`, `protocols.tcp.tls`).
pub fn tls_issues(prefix: &str, tls: Option<&ListenerTlsConfig>) -> Vec<ConfigIssue> {
    tls.map_or_else(Vec::new, |tls| {
        tls.validate()
            .into_iter()
            .map(|issue| ConfigIssue::new(format!("{prefix}.{}", issue.key), issue.message))
            .collect()
    })
}

/// Issues of what every HTTP listener shares, its `tls` block and its connection `limits`,
/// their keys under `prefix` (empty for a receiver's own block, `protocols.grpc.` for OTLP's).
pub fn listener_issues(
    prefix: &str,
    tls: Option<&ListenerTlsConfig>,
    limits: &ListenerLimits,
) -> Vec<ConfigIssue> {
    let mut issues = tls_issues(&format!("{prefix}tls"), tls);
    issues.extend(limits.validate(&format!("{prefix}limits")));
    issues
}

/// Issues of the request limits the JSON-over-HTTP receivers share: `max_body_size` and
/// `max_events_per_request` must be greater than 0.
pub fn request_limit_issues(
    max_body_size: ConfigSize,
    max_events_per_request: usize,
) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    if max_body_size.0 == 0 {
        issues.push(ConfigIssue::new(
            "max_body_size",
            "max_body_size must be greater than 0",
        ));
    }
    if max_events_per_request == 0 {
        issues.push(ConfigIssue::new(
            "max_events_per_request",
            "max_events_per_request must be greater than 0",
        ));
    }
    issues
}

impl ListenerLimits {
    /// Checks the values; keys are relative to the `limits` block's parent (`prefix` is e.g.
    /// `limits` or `protocols.grpc.limits`).
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for (key, zero) in [
            ("max_connections", self.max_connections == 0),
            ("max_concurrent_requests", self.max_concurrent_requests == 0),
            ("header_read_timeout", self.header_read_timeout.0.is_zero()),
            ("idle_timeout", self.idle_timeout.0.is_zero()),
        ] {
            if zero {
                issues.push(ConfigIssue::new(
                    format!("{prefix}.{key}"),
                    "must be greater than 0",
                ));
            }
        }
        issues
    }
}

/// A bound listener with everything it needs to serve.
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// TLS, re-read on SIGHUP; `None` serves plain text.
    pub tls: Option<Arc<ReloadableTls>>,
    /// Client addresses served; empty = all.
    pub allowed: CidrAllowList,
    /// Caps and timeouts.
    pub limits: ListenerLimits,
    /// `receiver/protocol`, for logs and metrics.
    pub name: String,
}

/// `response` with `Connection: close`: an answer to a request whose body was not read (a
/// refused client or request), so the connection cannot be reused.
pub fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// A busy refusal: `response` with `Retry-After` ([`siemrelay_core::admission::RETRY_AFTER`])
/// and `Connection: close`.
pub fn busy_closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(siemrelay_core::admission::RETRY_AFTER.as_secs()),
    );
    closing(response)
}

/// The protocol's answers to requests a listener refuses on its own.
#[derive(Clone)]
pub struct Refusals {
    /// Serves every request of a client outside `allowed_cidrs` (403, `PERMISSION_DENIED`).
    pub forbidden: Router,
    /// The answer to a request over `max_concurrent_requests` (503, `UNAVAILABLE`).
    pub busy: fn() -> Response,
}

impl Listener {
    /// Loads the TLS files (ALPN `h2`, `http/1.1`) and binds `endpoint` for the HTTP receiver
    /// `id`, so a bad certificate or a busy address fails at start-up naming the receiver and the
    /// address.
    pub async fn bind_http(
        id: &str,
        endpoint: &siemrelay_core::config_types::HostPort,
        tls: Option<&siemrelay_core::listener_tls::ListenerTlsConfig>,
        allowed: CidrAllowList,
        limits: ListenerLimits,
    ) -> anyhow::Result<Listener> {
        let tls = tls
            .map(|tls| {
                ReloadableTls::load(
                    tls,
                    &format!("receivers.{id}.tls"),
                    &[b"h2".as_slice(), b"http/1.1".as_slice()],
                )
            })
            .transpose()?;
        let tcp = TcpListener::bind(endpoint.addr).await.map_err(|e| {
            anyhow::anyhow!(
                "receiver {id}: cannot listen on {} ({}): {e}",
                endpoint.text,
                endpoint.addr
            )
        })?;
        Ok(Listener {
            tcp,
            tls,
            allowed,
            limits,
            name: id.to_string(),
        })
    }
}

/// Accepts connections and serves `router` on each (HTTP/1.1 and HTTP/2, the latter with prior
/// knowledge or ALPN) until `shutdown` is cancelled; then stops accepting and waits up to 30 s
/// for requests in flight.
pub async fn serve(
    listener: Listener,
    router: Router,
    refusals: Refusals,
    shutdown: CancellationToken,
) {
    let Listener {
        tcp,
        tls,
        allowed,
        limits,
        name,
    } = listener;
    let name: Arc<str> = name.into();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Header and idle timing is the connection watchdog's, the same for both protocols.
    builder.http1().header_read_timeout(None).keep_alive(true);
    builder
        .http2()
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(u32::try_from(limits.max_concurrent_requests).unwrap_or(u32::MAX));
    let shared = Arc::new(Shared {
        builder,
        router,
        refusals,
        requests: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
        limits,
        name: name.clone(),
    });
    let connections = Arc::new(Semaphore::new(limits.max_connections));
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
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and similar: wait a little instead of spinning.
                    tracing::warn!(listener = %name, error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let allowed = allowed.allows(peer.ip());
        if !allowed {
            metrics::counter!(REFUSED_TOTAL, "listener" => name.to_string(), "reason" => "address")
                .increment(1);
            tracing::debug!(listener = %name, %peer, "client address is outside allowed_cidrs");
        }
        let (tls, shared, shutdown) = (tls.clone(), shared.clone(), shutdown.clone());
        tracker.spawn(async move {
            let _permit = permit;
            match tls {
                None => shared.connection(stream, peer, allowed, shutdown).await,
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => shared.connection(stream, peer, allowed, shutdown).await,
                    Err(e) => {
                        metrics::counter!(REFUSED_TOTAL, "listener" => shared.name.to_string(), "reason" => "tls_handshake")
                            .increment(1);
                        tracing::debug!(listener = %shared.name, %peer, error = %e, "TLS handshake failed");
                    }
                },
            }
        });
    }
    drop(tcp);
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(listener = %name, "requests still in flight after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// What every connection of one listener shares.
struct Shared {
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    refusals: Refusals,
    requests: Arc<Semaphore>,
    limits: ListenerLimits,
    name: Arc<str>,
}

impl Shared {
    /// Serves one connection until it ends, idles out, or the listener shuts down. A connection
    /// that HTTP ended (after an answer) lingers (see [`linger`]); one the watchdog cut off or
    /// the shutdown closed does not.
    async fn connection<I>(
        self: Arc<Self>,
        io: I,
        peer: SocketAddr,
        allowed: bool,
        shutdown: CancellationToken,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let returned = Arc::new(std::sync::Mutex::new(None));
        let io = Returned {
            inner: Some(io),
            slot: returned.clone(),
        };
        let ended_by_http = self
            .serve_connection(io, peer, allowed, shutdown.clone())
            .await;
        let io = returned.lock().ok().and_then(|mut slot| slot.take());
        if let (true, Some(io)) = (ended_by_http, io) {
            tokio::select! {
                () = linger(io) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }

    /// Serves HTTP on one connection until it ends, idles out, or the listener shuts down.
    /// Returns true when HTTP ended it.
    async fn serve_connection<I>(
        self: Arc<Self>,
        io: I,
        peer: SocketAddr,
        allowed: bool,
        shutdown: CancellationToken,
    ) -> bool
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let io = WatchedIo {
            inner: io,
            activity: activity.clone(),
        };
        let router = if allowed {
            self.router.clone()
        } else {
            self.refusals.forbidden.clone()
        };
        let service = {
            let (shared, activity) = (self.clone(), activity.clone());
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let request_guard = activity.begin();
                let (shared, router) = (shared.clone(), router.clone());
                async move {
                    let _request_guard = request_guard;
                    let Ok(_permit) = shared.requests.clone().try_acquire_owned() else {
                        metrics::counter!(REFUSED_TOTAL, "listener" => shared.name.to_string(), "reason" => "busy")
                            .increment(1);
                        return Ok::<_, Infallible>((shared.refusals.busy)());
                    };
                    let limits = &shared.limits;
                    let (mut parts, body) = request.into_parts();
                    parts.extensions.insert(ConnectInfo(peer));
                    let body = Body::new(MinRate::new(
                        body,
                        limits.min_body_rate.0,
                        limits.header_read_timeout.0,
                    ));
                    router
                        .oneshot(hyper::Request::from_parts(parts, body))
                        .await
                }
            })
        };
        let connection = self
            .builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        tokio::pin!(connection);
        let limits = self.limits;
        let reason = tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(listener = %self.name, %peer, error = %e, "connection ended with an error");
                }
                return true;
            }
            () = shutdown.cancelled() => None,
            reason = activity.expired(limits.header_read_timeout.0, limits.idle_timeout.0) => Some(reason),
        };
        if let Some(reason) = reason {
            metrics::counter!(REFUSED_TOTAL, "listener" => self.name.to_string(), "reason" => reason)
                .increment(1);
            tracing::debug!(listener = %self.name, %peer, reason, "closing connection");
        }
        connection.as_mut().graceful_shutdown();
        let grace = if reason.is_some() {
            CLOSE_GRACE
        } else {
            DRAIN_TIMEOUT
        };
        let _ = tokio::time::timeout(grace, connection).await;
        false
    }
}

/// What one connection is doing, for its watchdog: requests in flight, when it went idle, and
/// when the first byte after that arrived. Touched once per request and once per read, never
/// per event.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds after `opened` (+1, so 0 means "none") of the first byte read while idle.
    reading_since: AtomicU64,
    changed: Notify,
}

/// Ends one request's hold on its connection when dropped.
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .idle_since
            .store(activity.millis(), Ordering::Relaxed);
        activity.reading_since.store(0, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        activity.changed.notify_one();
    }
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            reading_since: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.reading_since.store(0, Ordering::Relaxed);
        self.changed.notify_one();
        RequestGuard(self.clone())
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.reading_since.load(Ordering::Relaxed) == 0
        {
            self.reading_since
                .store(self.millis() + 1, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// Resolves when the connection has had no request in flight for too long: `idle` after it
    /// went idle with nothing read, or `header` after the first byte of a request head that did
    /// not become a request. Returns which.
    async fn expired(&self, header: Duration, idle: Duration) -> &'static str {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) > 0 {
                changed.await;
                continue;
            }
            let (deadline, reason) = match self.reading_since.load(Ordering::Relaxed) {
                0 => (
                    self.at(self.idle_since.load(Ordering::Relaxed)) + idle,
                    "idle_timeout",
                ),
                since => (self.at(since - 1) + header, "header_read_timeout"),
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    if self.in_flight.load(Ordering::Acquire) == 0 {
                        return reason;
                    }
                }
                () = &mut changed => {}
            }
        }
    }
}

/// Half-closes a connection HTTP is done with, then reads and discards what the client still
/// sends until it closes, pauses for [`LINGER_IDLE`], or [`LINGER_TIME`] passes. A close with
/// unread bytes makes the kernel send a reset, which destroys the answer the client has not
/// read yet; a client that already closed costs one read.
async fn linger<I: AsyncRead + AsyncWrite + Unpin>(mut io: I) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + LINGER_TIME;
    if tokio::time::timeout(LINGER_IDLE, io.shutdown())
        .await
        .is_err()
    {
        return;
    }
    let mut discard = [0u8; 16 * 1024];
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(LINGER_IDLE);
        match tokio::time::timeout(left, io.read(&mut discard)).await {
            Ok(Ok(read)) if read > 0 => {}
            _ => return,
        }
    }
}

/// A connection's IO that is handed back through `slot` when HTTP drops it, so that the
/// connection can [`linger`] before it is closed.
struct Returned<I> {
    inner: Option<I>,
    slot: Arc<std::sync::Mutex<Option<I>>>,
}

impl<I> Returned<I> {
    fn io(&mut self) -> io::Result<&mut I> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl<I> Drop for Returned<I> {
    fn drop(&mut self) {
        if let (Some(io), Ok(mut slot)) = (self.inner.take(), self.slot.lock()) {
            *slot = Some(io);
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Returned<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(io) => Pin::new(io).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Returned<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.io() {
            Ok(io) => Pin::new(io).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(io) => Pin::new(io).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.io() {
            Ok(io) => Pin::new(io).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.io() {
            Ok(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(I::is_write_vectored)
    }
}

/// The connection's IO, telling its [`Activity`] when bytes arrive.
struct WatchedIo<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for WatchedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WatchedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_have_documented_defaults_and_checked_values() {
        let limits: ListenerLimits = serde_json::from_str("{}").unwrap();
        assert_eq!(limits, ListenerLimits::default());
        assert_eq!(limits.max_connections, 1024);
        assert_eq!(limits.min_body_rate.0, 1024);
        let limits: ListenerLimits =
            serde_json::from_str(r#"{"max_connections":0,"idle_timeout":"0s","min_body_rate":0}"#)
                .unwrap();
        let keys: Vec<String> = limits
            .validate("limits")
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(keys, ["limits.max_connections", "limits.idle_timeout"]);
        assert!(serde_json::from_str::<ListenerLimits>(r#"{"max_conns":1}"#).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_times_idle_and_trickling_connections_apart() {
        let header = Duration::from_secs(10);
        let idle = Duration::from_secs(60);
        // Nothing read: idle timeout.
        let activity = Activity::new();
        let started = Instant::now();
        assert_eq!(activity.expired(header, idle).await, "idle_timeout");
        assert_eq!(started.elapsed(), idle);
        // A byte read while idle: the header timeout runs from it.
        let activity = Arc::new(Activity::new());
        tokio::time::sleep(Duration::from_secs(5)).await;
        activity.bytes_read();
        let started = Instant::now();
        assert_eq!(activity.expired(header, idle).await, "header_read_timeout");
        assert_eq!(started.elapsed(), header);
        // A request in flight holds the connection however long it takes.
        let activity = Arc::new(Activity::new());
        let guard = activity.begin();
        let watchdog = {
            let activity = activity.clone();
            tokio::spawn(async move { activity.expired(header, idle).await })
        };
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!watchdog.is_finished());
        let released = Instant::now();
        drop(guard);
        assert_eq!(watchdog.await.unwrap(), "idle_timeout");
        assert_eq!(released.elapsed(), idle);
    }
}
