//! A generic webhook receiver (the peer of the `webhook` exporter), and the plumbing every fake
//! server shares: an axum app on 127.0.0.1 served from its own tokio runtime (usable from sync and
//! async tests), that can go down (connections refused) and come back on the same port, plus a
//! recorder tests can wait on.
//!
//! The receiver answers `POST <path>` (any path unless one is set): it checks the payload signature
//! (`sha256=<hex>` HMAC over the exact body bytes received) when a secret is configured, decodes
//! gzip, enforces a body limit (413), parses the body by its `Content-Type` (`application/json`: an
//! array or one object; `application/x-ndjson`: one object per line; anything else: 415; malformed
//! → 400) and records every item by its `event_id`. Replies can be scripted per request
//! (`503` then `200`, `429` with `Retry-After`, …).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Shared plumbing
// ---------------------------------------------------------------------------------------------

/// An axum app served on 127.0.0.1 from a private tokio runtime. It can be taken down (the
/// listener closes: new connections are refused, idle keep-alive connections are closed) and
/// brought back on the same port.
pub struct FakeServer {
    runtime: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
    router: Router,
    running: Mutex<Option<Running>>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

/// One request a fake server answered: when the answer left, to what, with which status and
/// `Retry-After`. Recorded for every fake, so a test can check how a sender paced its retries.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// When the response was produced.
    pub at: Instant,
    /// Request method.
    pub method: String,
    /// Request path (no query).
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// The `Retry-After` header answered, if any.
    pub retry_after: Option<String>,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    stopped: std::sync::mpsc::Receiver<()>,
}

impl FakeServer {
    /// Serves `router` on a free port of 127.0.0.1, recording every exchange.
    pub fn start(router: Router) -> FakeServer {
        let exchanges: Arc<Mutex<Vec<Exchange>>> = Arc::default();
        let log = exchanges.clone();
        let router = router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let log = log.clone();
                async move {
                    let method = request.method().to_string();
                    let path = request.uri().path().to_string();
                    let response = next.run(request).await;
                    let retry_after = response
                        .headers()
                        .get(axum::http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    lock(&log).push(Exchange {
                        at: Instant::now(),
                        method,
                        path,
                        status: response.status().as_u16(),
                        retry_after,
                    });
                    response
                }
            },
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-siem")
            .enable_all()
            .build()
            .expect("fake server runtime");
        let listener = {
            let _entered = runtime.enter();
            bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind the fake server")
        };
        let addr = listener.local_addr().expect("fake server address");
        let server = FakeServer {
            runtime: Some(runtime),
            addr,
            router,
            running: Mutex::new(None),
            exchanges,
        };
        server.serve(listener);
        server
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("runtime lives until drop")
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (stopped_tx, stopped) = std::sync::mpsc::channel();
        let router = self.router.clone();
        self.runtime().spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
            let _ = stopped_tx.send(());
        });
        *lock(&self.running) = Some(Running { stop, stopped });
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every exchange so far, in the order the answers left.
    pub fn exchanges(&self) -> Vec<Exchange> {
        lock(&self.exchanges).clone()
    }

    /// True while listening.
    pub fn is_up(&self) -> bool {
        lock(&self.running).is_some()
    }

    /// Stops listening: connections are refused until [`FakeServer::come_up`]. Waits (up to 5 s)
    /// for requests in flight to finish.
    pub fn go_down(&self) {
        let Some(running) = lock(&self.running).take() else {
            return;
        };
        let _ = running.stop.send(());
        let _ = running.stopped.recv_timeout(Duration::from_secs(5));
    }

    /// Listens again on the same port.
    pub fn come_up(&self) {
        if self.is_up() {
            return;
        }
        let listener = {
            let _entered = self.runtime().enter();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match bind(self.addr) {
                    Ok(listener) => break listener,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
                }
            }
        };
        self.serve(listener);
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(running) = lock(&self.running).take() {
            let _ = running.stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            // Allowed inside an async test, unlike dropping the runtime.
            runtime.shutdown_background();
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// State a fake records, which tests read and wait on (blocking or async).
pub struct Recorder<T> {
    state: Mutex<T>,
    changed: Condvar,
    notify: tokio::sync::Notify,
}

impl<T> Recorder<T> {
    /// Wraps the initial state.
    pub fn new(state: T) -> Recorder<T> {
        Recorder {
            state: Mutex::new(state),
            changed: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// Reads the state.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&lock(&self.state))
    }

    /// Changes the state and wakes waiters.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let result = f(&mut lock(&self.state));
        self.changed.notify_all();
        self.notify.notify_waiters();
        result
    }

    /// Blocks until `done` holds or `timeout` passes; returns whether it holds.
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&T) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.state);
        loop {
            if done(&state) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits (async) until `done` holds or `timeout` passes; returns whether it holds.
    pub async fn wait_until_async(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&T) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.read(&mut done) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.read(&mut done);
            }
        }
    }
}

/// Events a fake accepted, counted by `event_id` (so a test can assert each arrived exactly once).
#[derive(Debug, Default)]
pub struct EventLog {
    /// Every accepted item in arrival order (the whole envelope, for HEC).
    pub items: Vec<Value>,
    /// Deliveries per event id.
    pub counts: HashMap<String, u32>,
}

impl EventLog {
    /// Records one item whose event id is `id`.
    pub fn add(&mut self, id: Option<&str>, item: Value) {
        *self
            .counts
            .entry(id.unwrap_or("<no event_id>").to_string())
            .or_default() += 1;
        self.items.push(item);
    }

    /// Items accepted, duplicates included.
    pub fn total(&self) -> usize {
        self.items.len()
    }

    /// Distinct event ids accepted.
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    /// Ids accepted more than once, with their counts.
    pub fn duplicates(&self) -> Vec<(String, u32)> {
        let mut dups: Vec<(String, u32)> = self
            .counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (id.clone(), *n))
            .collect();
        dups.sort();
        dups
    }
}

/// How payload signatures fared at a fake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignatureChecks {
    /// Requests whose signature matched.
    pub passed: usize,
    /// Requests with a wrong or missing signature.
    pub failed: usize,
}

/// Checks `sha256=<hex>` in `header` against HMAC-SHA256(`secret`, `body`) in constant time.
pub fn signature_matches(secret: &str, headers: &HeaderMap, header: &str, body: &[u8]) -> bool {
    let Some(given) = headers.get(header).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(hex_part) = given.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(mac_bytes) = hex::decode(hex_part) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&mac_bytes).is_ok()
}

/// A reply with this status, `Content-Type` and body, and `Retry-After: <seconds>` when given:
/// how every fake answers.
pub fn reply_with(
    status: u16,
    content_type: &'static str,
    body: String,
    retry_after: Option<u64>,
) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    with_retry_after(response, retry_after)
}

/// Adds `Retry-After: <seconds>` to a reply when given.
pub fn with_retry_after(mut response: Response, retry_after: Option<u64>) -> Response {
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Decodes a body by its `Content-Encoding` (none or gzip); `Err` names the problem.
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, String> {
    match headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => Ok(body.to_vec()),
        Some("gzip") => {
            let mut out = Vec::with_capacity(body.len() * 4);
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .map_err(|e| format!("bad gzip body: {e}"))?;
            Ok(out)
        }
        Some(other) => Err(format!("unsupported content encoding {other:?}")),
    }
}

/// The `event_id` of an item, if it has one.
pub fn event_id_of(item: &Value) -> Option<&str> {
    item.get("event_id").and_then(Value::as_str)
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver
// ---------------------------------------------------------------------------------------------

/// Settings of the fake webhook receiver.
#[derive(Clone, Debug)]
pub struct HttpSinkOptions {
    /// Only this path is accepted (others answer 404); `None` accepts any path.
    pub path: Option<String>,
    /// Verify signatures with this secret.
    pub secret: Option<String>,
    /// The signature header (default `X-Siemrelay-Signature`).
    pub signature_header: String,
    /// Largest body (decoded) accepted; larger answers 413 (default 5 MiB).
    pub max_body: usize,
}

impl Default for HttpSinkOptions {
    fn default() -> Self {
        HttpSinkOptions {
            path: None,
            secret: None,
            signature_header: "X-Siemrelay-Signature".into(),
            max_body: 5 << 20,
        }
    }
}

/// A scripted reply for one request.
#[derive(Clone, Debug)]
pub struct ScriptedReply {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` seconds, if any.
    pub retry_after: Option<u64>,
    /// Reply body.
    pub body: String,
}

impl ScriptedReply {
    /// A reply with this status and a short JSON body.
    pub fn status(status: u16) -> ScriptedReply {
        ScriptedReply {
            status,
            retry_after: None,
            body: format!(r#"{{"error":"scripted {status}"}}"#),
        }
    }

    /// `429 Too Many Requests` with `Retry-After: <seconds>`.
    pub fn throttled(retry_after: u64) -> ScriptedReply {
        ScriptedReply {
            retry_after: Some(retry_after),
            ..ScriptedReply::status(429)
        }
    }
}

/// One request the receiver saw.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Bytes on the wire.
    pub wire_bytes: usize,
    /// The decoded body.
    pub body: Vec<u8>,
    /// The status answered.
    pub status: u16,
}

/// What the receiver recorded.
#[derive(Debug, Default)]
pub struct HttpSinkState {
    /// Accepted items.
    pub events: EventLog,
    /// Every request, in arrival order.
    pub requests: Vec<SeenRequest>,
    /// Signature results (only with a secret).
    pub signatures: SignatureChecks,
    /// Largest decoded body accepted.
    pub max_body_bytes: usize,
    /// Most items in one accepted body.
    pub max_items: usize,
}

struct SinkShared {
    options: HttpSinkOptions,
    /// Overrides `HttpSinkOptions::max_body` while set.
    max_body: Mutex<Option<usize>>,
    script: Mutex<VecDeque<ScriptedReply>>,
    recorder: Recorder<HttpSinkState>,
}

/// A running fake webhook receiver.
pub struct FakeHttpSink {
    server: FakeServer,
    shared: Arc<SinkShared>,
}

fake_accessors!(FakeHttpSink, HttpSinkState, |s| &s.events.counts);

impl FakeHttpSink {
    /// Starts a receiver.
    pub fn start(options: HttpSinkOptions) -> FakeHttpSink {
        let shared = Arc::new(SinkShared {
            options,
            max_body: Mutex::new(None),
            script: Mutex::new(VecDeque::new()),
            recorder: Recorder::new(HttpSinkState::default()),
        });
        let router = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        FakeHttpSink {
            server: FakeServer::start(router),
            shared,
        }
    }

    /// Sets the largest body accepted (`None`: the configured one again).
    pub fn set_max_body(&self, bytes: Option<usize>) {
        *lock(&self.shared.max_body) = bytes;
    }

    /// Replies for the next requests, in order; afterwards requests are handled normally.
    pub fn script(&self, replies: impl IntoIterator<Item = ScriptedReply>) {
        lock(&self.shared.script).extend(replies);
    }

    /// Signature results.
    pub fn signatures(&self) -> SignatureChecks {
        self.read(|s| s.signatures)
    }
}

async fn handle(
    State(shared): State<Arc<SinkShared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (status, retry_after, reply, items) = judge(&shared, &method, &uri, &headers, &body);
    let decoded = decode_body(&headers, &body).unwrap_or_default();
    let signature =
        shared.options.secret.as_ref().map(|secret| {
            signature_matches(secret, &headers, &shared.options.signature_header, &body)
        });
    shared.recorder.update(|state| {
        match signature {
            Some(true) => state.signatures.passed += 1,
            Some(false) => state.signatures.failed += 1,
            None => {}
        }
        if let Some(items) = items {
            state.max_body_bytes = state.max_body_bytes.max(decoded.len());
            state.max_items = state.max_items.max(items.len());
            for item in items {
                let id = event_id_of(&item).map(str::to_string);
                state.events.add(id.as_deref(), item);
            }
        }
        state.requests.push(SeenRequest {
            method: method.to_string(),
            uri: uri.to_string(),
            headers: headers.clone(),
            wire_bytes: body.len(),
            body: decoded,
            status,
        });
    });
    reply_with(status, "application/json", reply, retry_after)
}

/// Decides the reply: (status, Retry-After, body, accepted items).
fn judge(
    shared: &SinkShared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> (u16, Option<u64>, String, Option<Vec<Value>>) {
    let error = |status: u16, message: String| {
        (
            status,
            None,
            serde_json::json!({ "error": message }).to_string(),
            None,
        )
    };
    if let Some(path) = &shared.options.path
        && uri.path() != path
    {
        return error(404, format!("no hook at {}", uri.path()));
    }
    if method != Method::POST {
        return error(405, format!("{method} is not allowed; POST events"));
    }
    if let Some(reply) = lock(&shared.script).pop_front() {
        return (reply.status, reply.retry_after, reply.body, None);
    }
    let decoded = match decode_body(headers, body) {
        Ok(decoded) => decoded,
        Err(e) if e.starts_with("unsupported") => return error(415, e),
        Err(e) => return error(400, e),
    };
    let max_body = lock(&shared.max_body).unwrap_or(shared.options.max_body);
    if decoded.len() > max_body {
        return error(
            413,
            format!("body is {} bytes, more than {max_body}", decoded.len()),
        );
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let items = if content_type.starts_with("application/x-ndjson") {
        parse_ndjson(&decoded)
    } else if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&decoded) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(item @ Value::Object(_)) => Ok(vec![item]),
            Ok(_) => Err("body must be a JSON array or object".to_string()),
            Err(e) => Err(format!("malformed JSON: {e}")),
        }
    } else {
        return error(415, format!("unsupported content type {content_type:?}"));
    };
    match items {
        Ok(items) if items.iter().all(Value::is_object) => {
            let reply = serde_json::json!({ "accepted": items.len() }).to_string();
            (200, None, reply, Some(items))
        }
        Ok(_) => error(400, "every item must be a JSON object".into()),
        Err(e) => error(400, e),
    }
}

fn parse_ndjson(body: &[u8]) -> Result<Vec<Value>, String> {
    if !body.is_empty() && !body.ends_with(b"\n") {
        return Err("NDJSON body must end with a newline".into());
    }
    body.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(n, line)| {
            serde_json::from_slice(line).map_err(|e| format!("line {}: malformed JSON: {e}", n + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_arrays_and_ndjson_and_scripts_replies() {
        let sink = FakeHttpSink::start(HttpSinkOptions {
            path: Some("/hook".into()),
            secret: Some("s3cret".into()),
            ..Default::default()
        });
        sink.script([ScriptedReply::throttled(7)]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let url = format!("{}/hook", sink.url());
            let body = br#"[{"event_id":"a"},{"event_id":"b"}]"#.to_vec();
            let sig = {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"s3cret").unwrap();
                mac.update(&body);
                format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
            };
            let post = |body: Vec<u8>, ct: &'static str, sig: String| {
                client
                    .post(&url)
                    .header("content-type", ct)
                    .header("X-Siemrelay-Signature", sig)
                    .body(body)
                    .send()
            };
            let first = post(body.clone(), "application/json", sig.clone())
                .await
                .unwrap();
            assert_eq!(first.status(), 429);
            assert_eq!(first.headers()["retry-after"], "7");
            let ok = post(body.clone(), "application/json", sig.clone())
                .await
                .unwrap();
            assert_eq!(ok.status(), 200);
            let nd = post(
                b"{\"event_id\":\"c\"}\n".to_vec(),
                "application/x-ndjson",
                "sha256=00".into(),
            )
            .await
            .unwrap();
            assert_eq!(nd.status(), 200);
            let bad = post(b"[{".to_vec(), "application/json", sig.clone())
                .await
                .unwrap();
            assert_eq!(bad.status(), 400);
            let elsewhere = client
                .post(format!("{}/other", sink.url()))
                .send()
                .await
                .unwrap();
            assert_eq!(elsewhere.status(), 404);
        });
        assert_eq!(sink.distinct_events(), 3);
        assert_eq!(sink.read(|s| s.events.counts["a"]), 1);
        let checks = sink.signatures();
        // Signed right: the 429 and the 200; wrong: the NDJSON post, the `[{` body (signed as the
        // other body) and the unsigned post to another path.
        assert_eq!(checks.passed, 2);
        assert_eq!(checks.failed, 3);
    }

    #[test]
    fn goes_down_and_comes_back_on_the_same_port() {
        let sink = FakeHttpSink::start(HttpSinkOptions::default());
        let addr = sink.addr();
        assert!(std::net::TcpStream::connect(addr).is_ok());
        sink.server().go_down();
        assert!(std::net::TcpStream::connect(addr).is_err());
        sink.server().come_up();
        assert!(std::net::TcpStream::connect(addr).is_ok());
    }
}
