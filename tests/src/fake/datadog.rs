//! A fake Datadog Logs intake (API v2) that speaks the real protocol:
//!
//! - `POST /api/v2/logs` with `DD-API-KEY` (missing → 401 `{"errors":["Unauthorized"]}`, wrong →
//!   403 `{"errors":["Forbidden"]}`), `Content-Encoding: gzip` or `deflate` (others → 415), a JSON
//!   array of log objects or one object (malformed → 400), at most 1000 entries and 5,000,000
//!   decoded bytes per request (more → 413). Accepted requests answer `202 {}`.
//! - Logs are recorded by their `event_id` attribute, with their `ddtags`, `status` and the rest,
//!   so a test can check the mapping and that each event arrived exactly once.
//!
//! Controls: [`Behaviour`] (503 for every request), a script of replies for the next requests
//! (429 with `Retry-After`, 503, any status), limits, and going down (connections refused) through
//! [`FakeDatadog::server`]. Payload signatures are verified when a secret is set (recorded, never
//! enforced: real Datadog does not check them).

use super::http_sink::{
    EventLog, FakeServer, Recorder, SignatureChecks, decode_body, event_id_of, reply_with,
    signature_matches,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};

/// The API key the fake accepts unless told otherwise.
pub const API_KEY: &str = "0123456789abcdef0123456789abcdef";

/// Settings of a fake Datadog intake.
#[derive(Clone, Debug)]
pub struct DatadogOptions {
    /// The accepted API key.
    pub api_key: String,
    /// Most log entries per request (Datadog: 1000).
    pub max_entries: usize,
    /// Most decoded bytes per request (Datadog: 5 MB).
    pub max_request_bytes: usize,
    /// Verify payload signatures with this secret (results are recorded, never enforced).
    pub signing_secret: Option<String>,
    /// The signature header (default `X-Siemrelay-Signature`).
    pub signature_header: String,
}

impl Default for DatadogOptions {
    fn default() -> Self {
        DatadogOptions {
            api_key: API_KEY.into(),
            max_entries: 1000,
            max_request_bytes: 5_000_000,
            signing_secret: None,
            signature_header: "X-Siemrelay-Signature".into(),
        }
    }
}

/// How every request is answered until changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// Accept what is valid.
    #[default]
    Normal,
    /// 503 for every request.
    Unavailable,
}

/// A reply for one upcoming request (before any check), accepting nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scripted {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl Scripted {
    /// 429 Too Many Requests with `Retry-After: <seconds>`.
    pub fn throttled(retry_after: u64) -> Scripted {
        Scripted {
            status: 429,
            retry_after: Some(retry_after),
        }
    }

    /// 503 Service Unavailable.
    pub fn unavailable() -> Scripted {
        Scripted {
            status: 503,
            retry_after: None,
        }
    }

    /// Any status.
    pub fn status(status: u16) -> Scripted {
        Scripted {
            status,
            retry_after: None,
        }
    }
}

/// One request the fake saw.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// Headers as received.
    pub headers: HeaderMap,
    /// Bytes on the wire.
    pub wire_bytes: usize,
    /// Decoded body bytes (0 when not decoded).
    pub body_bytes: usize,
    /// Log entries in the body (0 when not parsed).
    pub entries: usize,
    /// The status answered.
    pub status: u16,
}

/// What the fake recorded.
#[derive(Debug, Default)]
pub struct DatadogState {
    /// Accepted logs, counted by `event_id`.
    pub logs: EventLog,
    /// Every request, in arrival order.
    pub requests: Vec<SeenRequest>,
    /// Signature results (only with a secret).
    pub signatures: SignatureChecks,
    /// Largest decoded body accepted.
    pub max_body_bytes: usize,
    /// Most entries in one accepted body.
    pub max_entries: usize,
    /// Position in `logs.items` of the first log of each event id.
    first_by_id: HashMap<String, usize>,
}

impl DatadogState {
    /// The accepted log of an event (the first, if it came more than once).
    pub fn log(&self, event_id: &str) -> Option<&Value> {
        self.first_by_id
            .get(event_id)
            .and_then(|at| self.logs.items.get(*at))
    }

    /// Requests answered with `status`.
    pub fn requests_with_status(&self, status: u16) -> usize {
        self.requests.iter().filter(|r| r.status == status).count()
    }
}

struct Shared {
    options: Mutex<DatadogOptions>,
    behaviour: Mutex<Behaviour>,
    script: Mutex<VecDeque<Scripted>>,
    recorder: Recorder<DatadogState>,
}

/// A running fake Datadog intake.
pub struct FakeDatadog {
    server: FakeServer,
    shared: Arc<Shared>,
}

fake_accessors!(FakeDatadog, DatadogState, |s| &s.logs.counts);

impl FakeDatadog {
    /// Starts an intake accepting [`API_KEY`].
    pub fn start() -> FakeDatadog {
        FakeDatadog::start_with(DatadogOptions::default())
    }

    /// Starts an intake with the given settings.
    pub fn start_with(options: DatadogOptions) -> FakeDatadog {
        let shared = Arc::new(Shared {
            options: Mutex::new(options),
            behaviour: Mutex::new(Behaviour::Normal),
            script: Mutex::new(VecDeque::new()),
            recorder: Recorder::new(DatadogState::default()),
        });
        let router = Router::new()
            .route("/api/v2/logs", post(intake))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    json!({"errors": ["Not Found"]}).to_string(),
                )
            })
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        FakeDatadog {
            server: FakeServer::start(router),
            shared,
        }
    }

    /// Sets how every request is answered.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    /// Replies for the next requests, in order; afterwards requests are handled normally.
    pub fn script(&self, replies: impl IntoIterator<Item = Scripted>) {
        lock(&self.shared.script).extend(replies);
    }

    /// Changes the per-request limits (e.g. a small byte limit to provoke 413).
    pub fn set_limits(&self, max_entries: usize, max_request_bytes: usize) {
        let mut options = lock(&self.shared.options);
        options.max_entries = max_entries;
        options.max_request_bytes = max_request_bytes;
    }

    /// Signature results.
    pub fn signatures(&self) -> SignatureChecks {
        self.read(|s| s.signatures)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The outcome of judging one request.
struct Judged {
    status: u16,
    retry_after: Option<u64>,
    body: String,
    decoded_len: usize,
    logs: Vec<Value>,
}

impl Judged {
    fn error(status: u16, body: Value) -> Judged {
        Judged {
            status,
            retry_after: None,
            body: body.to_string(),
            decoded_len: 0,
            logs: Vec::new(),
        }
    }
}

async fn intake(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let options = lock(&shared.options).clone();
    let judged = judge(&shared, &options, &headers, &body);
    let signature = options
        .signing_secret
        .as_ref()
        .map(|secret| signature_matches(secret, &headers, &options.signature_header, &body));
    let entries = judged.logs.len();
    let Judged {
        status,
        retry_after,
        body: reply,
        decoded_len,
        logs,
    } = judged;
    shared.recorder.update(|state| {
        match signature {
            Some(true) => state.signatures.passed += 1,
            Some(false) => state.signatures.failed += 1,
            None => {}
        }
        if status == 202 {
            state.max_body_bytes = state.max_body_bytes.max(decoded_len);
            state.max_entries = state.max_entries.max(entries);
            for log in logs {
                let id = event_id_of(&log).map(str::to_string);
                if let Some(id) = &id {
                    let at = state.logs.items.len();
                    state.first_by_id.entry(id.clone()).or_insert(at);
                }
                state.logs.add(id.as_deref(), log);
            }
        }
        state.requests.push(SeenRequest {
            headers: headers.clone(),
            wire_bytes: body.len(),
            body_bytes: decoded_len,
            entries,
            status,
        });
    });
    reply_with(status, "application/json", reply, retry_after)
}

fn judge(shared: &Shared, options: &DatadogOptions, headers: &HeaderMap, body: &[u8]) -> Judged {
    if *lock(&shared.behaviour) == Behaviour::Unavailable {
        return Judged::error(503, json!({"errors": ["Service Unavailable"]}));
    }
    if let Some(scripted) = lock(&shared.script).pop_front() {
        let title = StatusCode::from_u16(scripted.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let mut judged = Judged::error(scripted.status, json!({"errors": [title]}));
        judged.retry_after = scripted.retry_after;
        return judged;
    }
    match headers.get("dd-api-key").map(HeaderValue::as_bytes) {
        None => return Judged::error(401, json!({"errors": ["Unauthorized"]})),
        Some(key) if key != options.api_key.as_bytes() => {
            return Judged::error(403, json!({"errors": ["Forbidden"]}));
        }
        Some(_) => {}
    }
    let decoded = match decode(headers, body) {
        Ok(decoded) => decoded,
        Err((status, detail)) => return Judged::error(status, bad_request(status, &detail)),
    };
    if decoded.len() > options.max_request_bytes {
        return Judged::error(
            413,
            json!({"errors": ["Request Entity Too Large"], "detail": format!("payload is {} bytes, the limit is {}", decoded.len(), options.max_request_bytes)}),
        );
    }
    let logs = match serde_json::from_slice::<Value>(&decoded) {
        Ok(Value::Array(logs)) => logs,
        Ok(log @ Value::Object(_)) => vec![log],
        Ok(_) => {
            return Judged::error(
                400,
                bad_request(400, "payload must be a log object or an array of logs"),
            );
        }
        Err(e) => return Judged::error(400, bad_request(400, &format!("malformed JSON: {e}"))),
    };
    if logs.len() > options.max_entries {
        return Judged::error(
            413,
            json!({"errors": ["Request Entity Too Large"], "detail": format!("{} entries, the limit is {}", logs.len(), options.max_entries)}),
        );
    }
    if !logs.iter().all(Value::is_object) {
        return Judged::error(400, bad_request(400, "every log must be a JSON object"));
    }
    Judged {
        status: 202,
        retry_after: None,
        body: "{}".into(),
        decoded_len: decoded.len(),
        logs,
    }
}

/// Datadog's v2 error shape.
fn bad_request(status: u16, detail: &str) -> Value {
    let title = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    json!({"errors": [{"status": status.to_string(), "title": title, "detail": detail}]})
}

/// Decodes none / gzip / deflate (zlib, or raw deflate); other encodings → 415.
fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, (u16, String)> {
    let encoding = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    if encoding.as_deref() == Some("deflate") {
        let mut out = Vec::with_capacity(body.len() * 4);
        if flate2::read::ZlibDecoder::new(body)
            .read_to_end(&mut out)
            .is_ok()
        {
            return Ok(out);
        }
        out.clear();
        return flate2::read::DeflateDecoder::new(body)
            .read_to_end(&mut out)
            .map(|_| out)
            .map_err(|e| (400, format!("bad deflate body: {e}")));
    }
    decode_body(headers, body).map_err(|e| {
        if e.starts_with("unsupported") {
            (415, e)
        } else {
            (400, e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(body: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(body).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn checks_keys_decodes_limits_and_scripts() {
        let dd = FakeDatadog::start();
        dd.set_limits(2, 5_000_000);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let statuses = runtime.block_on(async {
            let client = reqwest::Client::new();
            let url = format!("{}/api/v2/logs", dd.url());
            let post = |key: Option<&str>, body: Vec<u8>, encoding: Option<&str>| {
                let mut request = client.post(&url).header("content-type", "application/json");
                if let Some(key) = key {
                    request = request.header("DD-API-KEY", key);
                }
                if let Some(encoding) = encoding {
                    request = request.header("content-encoding", encoding);
                }
                request.body(body).send()
            };
            let one = br#"[{"event_id":"a","message":"m"}]"#.to_vec();
            let mut statuses = Vec::new();
            statuses.push(
                post(None, one.clone(), None)
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
            let forbidden = post(Some("wrong"), one.clone(), None).await.unwrap();
            statuses.push(forbidden.status().as_u16());
            assert_eq!(
                forbidden.text().await.unwrap(),
                r#"{"errors":["Forbidden"]}"#
            );
            statuses.push(
                post(Some(API_KEY), gzip(&one), Some("gzip"))
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
            statuses.push(
                post(Some(API_KEY), b"[{".to_vec(), None)
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
            let three = br#"[{"event_id":"b"},{"event_id":"c"},{"event_id":"d"}]"#.to_vec();
            statuses.push(
                post(Some(API_KEY), three, None)
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
            dd.script([Scripted::throttled(3)]);
            let throttled = post(Some(API_KEY), one.clone(), None).await.unwrap();
            assert_eq!(throttled.headers()["retry-after"], "3");
            statuses.push(throttled.status().as_u16());
            statuses.push(
                post(Some(API_KEY), one.clone(), Some("br"))
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
            statuses
        });
        assert_eq!(statuses, vec![401, 403, 202, 400, 413, 429, 415]);
        assert_eq!(dd.distinct_events(), 1);
        assert_eq!(dd.read(|s| s.log("a").unwrap()["message"].clone()), "m");
        assert_eq!(dd.read(|s| s.requests.len()), 7);
    }
}
