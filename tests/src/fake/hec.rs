//! A fake Splunk HTTP Event Collector that speaks the real protocol:
//!
//! - `POST /services/collector/event` (aliases `/services/collector`, `/services/collector/event/1.0`):
//!   `Authorization: Splunk <token>` (missing → 401 code 2, no `Splunk ` prefix → 401 code 3,
//!   wrong token → 403 code 4), gzip bodies, concatenated JSON envelopes (malformed → 400 code 6,
//!   no `event` → code 12, blank `event` → code 13, index not allowed → code 7 reported one
//!   position late like real Splunk, each with `invalid-event-number`; objects before it are
//!   indexed), empty body → code 5, bodies over the limit → 413.
//! - `POST /services/collector/raw` (alias `/services/collector/raw/1.0`): the same
//!   authorization and gzip; a channel (`X-Splunk-Request-Channel` or `?channel=`) is required
//!   (missing → 400 code 10, not a GUID → code 11); metadata from the query parameters `host`,
//!   `source`, `sourcetype`, `index` (index not allowed → 400 code 7, nothing indexed); the body
//!   is broken into events at line breaks (Splunk's default `LINE_BREAKER = ([\r\n]+)`), empty
//!   lines skipped; an empty body → code 5. Each line is recorded as
//!   `{"raw", "host", "source", "sourcetype", "index"}` in [`HecState::raw`] (and, when the line
//!   is a JSON object with an `event_id`, counted under it).
//! - `POST /services/collector/ack?channel=<guid>`: `{"acks":[ids]}` → `{"acks":{"id":bool}}`
//!   (an id is forgotten once it read `true`).
//! - `GET /services/collector/health`: 200 code 17, or 503 code 9 while busy.
//!
//! An unknown top-level envelope key makes real Splunk silently drop the rest of the batch; the
//! fake does the same and records a violation, so tests catch it.
//!
//! Controls: [`Behaviour`] (busy / internal error for every request), a script of replies for the
//! next requests, event ids to reject as malformed, go down / come up, and acknowledgement release.

use super::http_sink::{
    EventLog, FakeServer, Recorder, SignatureChecks, decode_body, event_id_of, reply_with,
    signature_matches, with_retry_after,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// The token the fake accepts unless told otherwise.
pub const TOKEN: &str = "6f1c7f8e-2b1a-4c55-9d0e-4f3a2b1c0d9e";

/// Settings of a fake HEC.
#[derive(Clone, Debug)]
pub struct HecOptions {
    /// The accepted token.
    pub token: String,
    /// Indexes the token may write to (empty: any).
    pub indexes: Vec<String>,
    /// `max_content_length`: larger bodies (wire or decoded) answer 413.
    pub max_content_length: usize,
    /// Indexer acknowledgement on (requests need a channel; 200 carries an `ackId`).
    pub ack: bool,
    /// Verify payload signatures with this secret (results are recorded, never enforced).
    pub signing_secret: Option<String>,
    /// The signature header (default `X-Siemrelay-Signature`).
    pub signature_header: String,
}

impl Default for HecOptions {
    fn default() -> Self {
        HecOptions {
            token: TOKEN.into(),
            indexes: vec!["main".into(), "security".into()],
            max_content_length: 1_000_000,
            ack: false,
            signing_secret: None,
            signature_header: "X-Siemrelay-Signature".into(),
        }
    }
}

/// How every request is answered until changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// Index what is valid.
    #[default]
    Normal,
    /// 503 code 9 "Server is busy".
    Busy,
    /// 500 code 8 "Internal server error".
    InternalError,
}

/// A reply for one upcoming request (after the auth and channel checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scripted {
    /// Answer with this status, HEC code and text (and `Retry-After`), indexing nothing.
    Reply {
        /// HTTP status.
        status: u16,
        /// HEC code.
        code: u32,
        /// HEC text.
        text: &'static str,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// Index objects before `position`, answer 400 code 6 with `invalid-event-number: position`.
    InvalidEventAt(usize),
}

impl Scripted {
    /// 503 code 9 "Server is busy".
    pub fn busy() -> Scripted {
        Scripted::Reply {
            status: 503,
            code: 9,
            text: "Server is busy",
            retry_after: None,
        }
    }

    /// 500 code 8 "Internal server error".
    pub fn internal_error() -> Scripted {
        Scripted::Reply {
            status: 500,
            code: 8,
            text: "Internal server error",
            retry_after: None,
        }
    }

    /// 503 code 18 "HEC is unhealthy, queues are full".
    pub fn queues_full() -> Scripted {
        Scripted::Reply {
            status: 503,
            code: 18,
            text: "HEC is unhealthy, queues are full",
            retry_after: None,
        }
    }

    /// 429 with `Retry-After` (what a load balancer in front of HEC sends).
    pub fn throttled(retry_after: u64) -> Scripted {
        Scripted::Reply {
            status: 429,
            code: 9,
            text: "Too many requests",
            retry_after: Some(retry_after),
        }
    }
}

/// When acknowledgement ids read `true`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckRelease {
    /// As soon as the request is indexed.
    #[default]
    Immediately,
    /// Only after [`FakeHec::release_acks`].
    Manually,
    /// Never (acks are lost): senders must give up and resend.
    Never,
}

#[derive(Debug, Default)]
struct Channel {
    next_id: u64,
    /// Indexed, but not yet released.
    pending: HashSet<u64>,
    /// Released, read `true` at the next poll (then forgotten).
    released: HashSet<u64>,
}

/// What the fake recorded.
#[derive(Debug, Default)]
pub struct HecState {
    /// Indexed envelopes, counted by `event.event_id`.
    pub events: EventLog,
    /// `/event` requests seen (any outcome).
    pub requests: usize,
    /// Status of every `/event` request, in order.
    pub statuses: Vec<u16>,
    /// Headers of every `/event` request, in order.
    pub headers: Vec<HeaderMap>,
    /// Largest decoded body seen.
    pub max_body_bytes: usize,
    /// Largest body on the wire seen.
    pub max_wire_bytes: usize,
    /// Protocol violations by the sender (unknown envelope keys, …).
    pub violations: Vec<String>,
    /// Signature results (only with a signing secret).
    pub signatures: SignatureChecks,
    /// Acknowledgement polls answered.
    pub ack_polls: usize,
    /// Ack ids that read `true`.
    pub acks_confirmed: usize,
    /// Channels seen on `/event`.
    pub channels: HashSet<String>,
    /// Events indexed through `/raw`, in order: `{"raw", "host", "source", "sourcetype", "index"}`.
    pub raw: Vec<Value>,
    /// Status of every `/raw` request, in order.
    pub raw_statuses: Vec<u16>,
    /// Channels seen on `/raw`.
    pub raw_channels: HashSet<String>,
}

struct Control {
    behaviour: Behaviour,
    script: VecDeque<Scripted>,
    reject_ids: HashSet<String>,
    ack_release: AckRelease,
    channels: HashMap<String, Channel>,
    /// Overrides `HecOptions::max_content_length` while set.
    max_content_length: Option<usize>,
}

struct Shared {
    options: HecOptions,
    control: Mutex<Control>,
    recorder: Recorder<HecState>,
}

/// A running fake HEC.
pub struct FakeHec {
    server: FakeServer,
    shared: Arc<Shared>,
}

fake_accessors!(FakeHec, HecState, |s| &s.events.counts);

impl FakeHec {
    /// Starts a fake HEC.
    pub fn start(options: HecOptions) -> FakeHec {
        let shared = Arc::new(Shared {
            options,
            control: Mutex::new(Control {
                behaviour: Behaviour::Normal,
                script: VecDeque::new(),
                reject_ids: HashSet::new(),
                ack_release: AckRelease::Immediately,
                channels: HashMap::new(),
                max_content_length: None,
            }),
            recorder: Recorder::new(HecState::default()),
        });
        let router = Router::new()
            .route("/services/collector", post(event_endpoint))
            .route("/services/collector/event", post(event_endpoint))
            .route("/services/collector/event/1.0", post(event_endpoint))
            .route("/services/collector/raw", post(raw_endpoint))
            .route("/services/collector/raw/1.0", post(raw_endpoint))
            .route("/services/collector/ack", post(ack_endpoint))
            .route("/services/collector/health", get(health_endpoint))
            .route("/services/collector/health/1.0", get(health_endpoint))
            .fallback(not_found)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        FakeHec {
            server: FakeServer::start(router),
            shared,
        }
    }

    /// Starts with the default options (token [`TOKEN`], indexes `main` and `security`).
    pub fn start_default() -> FakeHec {
        FakeHec::start(HecOptions::default())
    }

    /// Stops listening (connections refused).
    pub fn go_down(&self) {
        self.server.go_down();
    }

    /// Listens again on the same port.
    pub fn come_up(&self) {
        self.server.come_up();
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        self.shared
            .control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Sets how every request is answered.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.control().behaviour = behaviour;
    }

    /// Replies for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Scripted>) {
        self.control().script.extend(replies);
    }

    /// Rejects envelopes whose `event.event_id` is one of `ids` as malformed (400 code 6 with
    /// their `invalid-event-number`), every time they come.
    pub fn reject_event_ids(&self, ids: impl IntoIterator<Item = String>) {
        self.control().reject_ids.extend(ids);
    }

    /// Sets `max_content_length` (`None`: the configured one again).
    pub fn set_max_content_length(&self, bytes: Option<usize>) {
        self.control().max_content_length = bytes;
    }

    /// When ack ids read `true` from now on.
    pub fn set_ack_release(&self, release: AckRelease) {
        self.control().ack_release = release;
    }

    /// Releases every pending ack id (they read `true` at the next poll).
    pub fn release_acks(&self) {
        let mut control = self.control();
        for channel in control.channels.values_mut() {
            let pending: Vec<u64> = channel.pending.drain().collect();
            channel.released.extend(pending);
        }
    }

    /// Envelopes indexed, duplicates included.
    pub fn total_events(&self) -> usize {
        self.read(|s| s.events.total())
    }

    /// Signature results.
    pub fn signatures(&self) -> SignatureChecks {
        self.read(|s| s.signatures)
    }

    /// Protocol violations seen.
    pub fn violations(&self) -> Vec<String> {
        self.read(|s| s.violations.clone())
    }
}

/// A HEC reply: `{"text":..,"code":..}` plus extra keys.
fn reply(status: u16, code: u32, text: &str, extra: Option<(&str, Value)>) -> Response {
    let mut body = json!({ "text": text, "code": code });
    if let (Some((key, value)), Some(map)) = (extra, body.as_object_mut()) {
        map.insert(key.to_string(), value);
    }
    json_response(status, body.to_string())
}

fn json_response(status: u16, body: String) -> Response {
    reply_with(status, "application/json", body, None)
}

async fn not_found() -> Response {
    reply(
        404,
        404,
        "The requested URL was not found on this server.",
        None,
    )
}

/// Checks `Authorization: Splunk <token>`.
fn check_auth(
    shared: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Option<Response> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        if query.contains_key("token") {
            return Some(reply(
                400,
                16,
                "Query string authorization is not enabled",
                None,
            ));
        }
        return Some(reply(401, 2, "Token is required", None));
    };
    let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Splunk ")) else {
        return Some(reply(401, 3, "Invalid authorization", None));
    };
    if token.trim() != shared.options.token {
        return Some(reply(403, 4, "Invalid token", None));
    }
    None
}

/// The channel of a request (`X-Splunk-Request-Channel` or `?channel=`), checked as a GUID.
/// The refusal is boxed: a `Response` is large.
fn channel_of(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<String, Box<Response>> {
    let channel = headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query.get("channel").cloned());
    match channel {
        None => Err(Box::new(reply(400, 10, "Data channel is missing", None))),
        Some(c) if !is_guid(&c) => Err(Box::new(reply(400, 11, "Invalid data channel", None))),
        Some(c) => Ok(c.to_ascii_lowercase()),
    }
}

fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn event_endpoint(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature =
        shared.options.signing_secret.as_ref().map(|secret| {
            signature_matches(secret, &headers, &shared.options.signature_header, &body)
        });
    let decoded = decode_body(&headers, &body);
    let outcome = index_request(&shared, &query, &headers, &body, decoded.as_deref());
    shared.recorder.update(|state| {
        state.requests += 1;
        state.headers.push(headers.clone());
        state.max_wire_bytes = state.max_wire_bytes.max(body.len());
        if let Ok(decoded) = &decoded {
            state.max_body_bytes = state.max_body_bytes.max(decoded.len());
        }
        match signature {
            Some(true) => state.signatures.passed += 1,
            Some(false) => state.signatures.failed += 1,
            None => {}
        }
        if let Some(channel) = &outcome.channel {
            state.channels.insert(channel.clone());
        }
        state.violations.extend(outcome.violations.iter().cloned());
        for envelope in &outcome.indexed {
            let id = envelope
                .get("event")
                .and_then(event_id_of)
                .map(str::to_string);
            state.events.add(id.as_deref(), envelope.clone());
        }
        state.statuses.push(outcome.response.status().as_u16());
    });
    outcome.response
}

async fn raw_endpoint(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, lines, channel) = raw_request(&shared, &query, &headers, &body);
    shared.recorder.update(|state| {
        state.raw_statuses.push(response.status().as_u16());
        if let Some(channel) = channel {
            state.raw_channels.insert(channel);
        }
        for line in lines {
            let id = serde_json::from_str::<Value>(&line).ok().and_then(|v| {
                v.get("event_id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            let item = json!({
                "raw": line,
                "host": query.get("host"),
                "source": query.get("source"),
                "sourcetype": query.get("sourcetype"),
                "index": query.get("index"),
            });
            if let Some(id) = id {
                state.events.add(Some(&id), item.clone());
            }
            state.raw.push(item);
        }
    });
    response
}

/// Judges a `/raw` request: the reply, the lines indexed and the channel.
fn raw_request(
    shared: &Shared,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, Vec<String>, Option<String>) {
    if let Some(refusal) = check_auth(shared, headers, query) {
        return (refusal, Vec::new(), None);
    }
    let channel = match channel_of(headers, query) {
        Ok(channel) => channel,
        Err(refusal) => return (*refusal, Vec::new(), None),
    };
    let decoded = match decode_body(headers, body) {
        Ok(decoded) => decoded,
        Err(e) if e.starts_with("unsupported") => {
            return (reply(415, 6, &e, None), Vec::new(), Some(channel));
        }
        Err(_) => {
            return (
                reply(400, 6, "Invalid data format", None),
                Vec::new(),
                Some(channel),
            );
        }
    };
    if let Some(index) = query.get("index")
        && !shared.options.indexes.is_empty()
        && !shared.options.indexes.iter().any(|i| i == index)
    {
        return (
            reply(400, 7, "Incorrect index", None),
            Vec::new(),
            Some(channel),
        );
    }
    let text = String::from_utf8_lossy(&decoded);
    let lines: Vec<String> = text
        .split(['\r', '\n'])
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        return (reply(400, 5, "No data", None), Vec::new(), Some(channel));
    }
    let response = if shared.options.ack {
        let id = new_ack_id(shared, &channel);
        reply(200, 0, "Success", Some(("ackId", json!(id))))
    } else {
        reply(200, 0, "Success", None)
    };
    (response, lines, Some(channel))
}

struct Indexing {
    response: Response,
    indexed: Vec<Value>,
    violations: Vec<String>,
    channel: Option<String>,
}

fn index_request(
    shared: &Shared,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    wire: &[u8],
    decoded: Result<&[u8], &String>,
) -> Indexing {
    let done = |response| Indexing {
        response,
        indexed: Vec::new(),
        violations: Vec::new(),
        channel: None,
    };
    if let Some(refusal) = check_auth(shared, headers, query) {
        return done(refusal);
    }
    let channel = if shared.options.ack {
        match channel_of(headers, query) {
            Ok(channel) => Some(channel),
            Err(refusal) => return done(*refusal),
        }
    } else {
        None
    };
    let max = shared
        .control
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .max_content_length
        .unwrap_or(shared.options.max_content_length);
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(e) if e.starts_with("unsupported") => return done(reply(415, 6, e, None)),
        Err(_) => return done(reply(400, 6, "Invalid data format", None)),
    };
    if wire.len() > max || decoded.len() > max {
        let text = format!(
            "Content-Length of {} too large (maximum is {max})",
            decoded.len().max(wire.len())
        );
        return done(json_response(
            413,
            json!({ "text": text, "code": 27 }).to_string(),
        ));
    }
    let (behaviour, scripted, reject_ids) = {
        let mut control = shared.control.lock().unwrap_or_else(|p| p.into_inner());
        let scripted = control.script.pop_front();
        (control.behaviour, scripted, control.reject_ids.clone())
    };
    match behaviour {
        Behaviour::Busy => return done(reply(503, 9, "Server is busy", None)),
        Behaviour::InternalError => return done(reply(500, 8, "Internal server error", None)),
        Behaviour::Normal => {}
    }
    let fail_at = match scripted {
        Some(Scripted::Reply {
            status,
            code,
            text,
            retry_after,
        }) => {
            return done(with_retry_after(
                reply(status, code, text, None),
                retry_after,
            ));
        }
        Some(Scripted::InvalidEventAt(position)) => Some(position),
        None => None,
    };
    let parsed = parse_batch(decoded, &shared.options.indexes, &reject_ids, fail_at);
    let response = match &parsed.error {
        Some((code, text, position)) => reply(
            400,
            *code,
            text,
            Some(("invalid-event-number", json!(position))),
        ),
        None if parsed.indexed.is_empty() && parsed.violations.is_empty() => {
            reply(400, 5, "No data", None)
        }
        None => match &channel {
            Some(channel) => {
                let id = new_ack_id(shared, channel);
                reply(200, 0, "Success", Some(("ackId", json!(id))))
            }
            None => reply(200, 0, "Success", None),
        },
    };
    Indexing {
        response,
        indexed: parsed.indexed,
        violations: parsed.violations,
        channel,
    }
}

fn new_ack_id(shared: &Shared, channel: &str) -> u64 {
    let mut control = shared.control.lock().unwrap_or_else(|p| p.into_inner());
    let release = control.ack_release;
    let entry = control.channels.entry(channel.to_string()).or_default();
    let id = entry.next_id;
    entry.next_id += 1;
    match release {
        AckRelease::Immediately => {
            entry.released.insert(id);
        }
        AckRelease::Manually => {
            entry.pending.insert(id);
        }
        AckRelease::Never => {}
    }
    id
}

/// The result of parsing one body.
#[derive(Debug, Default, PartialEq)]
pub struct ParsedBatch {
    /// Envelopes indexed (those before the first bad one).
    pub indexed: Vec<Value>,
    /// The first error: (code, text, invalid-event-number).
    pub error: Option<(u32, &'static str, usize)>,
    /// Protocol violations (the batch was cut silently after them).
    pub violations: Vec<String>,
}

const ENVELOPE_KEYS: &[&str] = &[
    "time",
    "host",
    "source",
    "sourcetype",
    "index",
    "event",
    "fields",
];

/// Parses concatenated JSON envelopes the way HEC's `/event` endpoint does.
pub fn parse_batch(
    body: &[u8],
    indexes: &[String],
    reject_ids: &HashSet<String>,
    fail_at: Option<usize>,
) -> ParsedBatch {
    let mut out = ParsedBatch::default();
    let stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    for (position, item) in stream.enumerate() {
        let fail = |code, text| Some((code, text, position));
        let Ok(Value::Object(envelope)) = item else {
            out.error = fail(6, "Invalid data format");
            return out;
        };
        if fail_at == Some(position) {
            out.error = fail(6, "Invalid data format");
            return out;
        }
        if let Some(key) = envelope
            .keys()
            .find(|k| !ENVELOPE_KEYS.contains(&k.as_str()))
        {
            out.violations.push(format!(
                "envelope {position} has the unknown top-level key {key:?}: Splunk drops the rest of the batch"
            ));
            return out;
        }
        match envelope.get("event") {
            None => {
                out.error = fail(12, "Event field is required");
                return out;
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                out.error = fail(13, "Event field cannot be blank");
                return out;
            }
            Some(Value::Null | Value::Bool(false)) => {
                out.error = fail(6, "Invalid data format");
                return out;
            }
            Some(event) => {
                if event_id_of(event).is_some_and(|id| reject_ids.contains(id)) {
                    out.error = fail(6, "Invalid data format");
                    return out;
                }
            }
        }
        match envelope.get("time") {
            None | Some(Value::Number(_)) => {}
            Some(Value::String(s)) if s.parse::<f64>().is_ok() => {}
            Some(_) => {
                out.error = fail(6, "Invalid data format");
                return out;
            }
        }
        for key in ["host", "source", "sourcetype", "index"] {
            if envelope.get(key).is_some_and(|v| !v.is_string()) {
                out.error = fail(6, "Invalid data format");
                return out;
            }
        }
        if let Some(index) = envelope.get("index").and_then(Value::as_str)
            && !indexes.is_empty()
            && !indexes.iter().any(|i| i == index)
        {
            // Real Splunk reports this one position late.
            out.error = Some((7, "Incorrect index", position + 1));
            return out;
        }
        if let Some(fields) = envelope.get("fields") {
            let flat = fields.as_object().is_some_and(|m| {
                m.values().all(|v| match v {
                    Value::String(_) => true,
                    Value::Array(items) => items.iter().all(Value::is_string),
                    _ => false,
                })
            });
            if !flat {
                out.error = fail(15, "Error in handling indexed fields");
                return out;
            }
        }
        out.indexed.push(Value::Object(envelope));
    }
    out
}

#[derive(serde::Deserialize)]
struct AckRequest {
    acks: Vec<u64>,
}

async fn ack_endpoint(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = check_auth(&shared, &headers, &query) {
        return refusal;
    }
    if !shared.options.ack {
        return reply(400, 14, "ACK is disabled", None);
    }
    let channel = match channel_of(&headers, &query) {
        Ok(channel) => channel,
        Err(refusal) => return *refusal,
    };
    let Ok(request) = serde_json::from_slice::<AckRequest>(&body) else {
        return reply(400, 6, "Invalid data format", None);
    };
    let mut answers = serde_json::Map::new();
    let mut confirmed = 0;
    {
        let mut control = shared.control.lock().unwrap_or_else(|p| p.into_inner());
        let entry = control.channels.entry(channel).or_default();
        for id in request.acks {
            let done = entry.released.remove(&id);
            confirmed += usize::from(done);
            answers.insert(id.to_string(), Value::Bool(done));
        }
    }
    shared.recorder.update(|state| {
        state.ack_polls += 1;
        state.acks_confirmed += confirmed;
    });
    json_response(200, json!({ "acks": answers }).to_string())
}

async fn health_endpoint(State(shared): State<Arc<Shared>>) -> Response {
    let behaviour = shared
        .control
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .behaviour;
    match behaviour {
        Behaviour::Normal => reply(200, 17, "HEC is healthy", None),
        Behaviour::Busy | Behaviour::InternalError => reply(503, 9, "Server is busy", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_concatenated_envelopes_and_reports_the_first_bad_one() {
        let body = br#"{"time":1.5,"event":{"event_id":"a"}} {"event":"x","index":"main"}{"event":" "}{"event":"y"}"#;
        let parsed = parse_batch(body, &["main".into()], &HashSet::new(), None);
        assert_eq!(parsed.indexed.len(), 2);
        assert_eq!(parsed.error, Some((13, "Event field cannot be blank", 2)));

        let parsed = parse_batch(
            br#"{"event":"a","index":"nope"}"#,
            &["main".into()],
            &HashSet::new(),
            None,
        );
        assert_eq!(
            parsed.error,
            Some((7, "Incorrect index", 1)),
            "code 7 is one position late"
        );

        let parsed = parse_batch(
            br#"{"event":{"event_id":"a"}}{"event":{"event_id":"b"}}"#,
            &[],
            &ids(&["b"]),
            None,
        );
        assert_eq!(
            (parsed.indexed.len(), parsed.error),
            (1, Some((6, "Invalid data format", 1)))
        );

        let parsed = parse_batch(
            br#"{"event":"a","extra":1}{"event":"b"}"#,
            &[],
            &HashSet::new(),
            None,
        );
        assert!(parsed.indexed.is_empty());
        assert_eq!(parsed.violations.len(), 1);

        let parsed = parse_batch(br#"{"host":"h"}"#, &[], &HashSet::new(), None);
        assert_eq!(parsed.error, Some((12, "Event field is required", 0)));
        let parsed = parse_batch(br#"{"event":"a"}{"ev"#, &[], &HashSet::new(), None);
        assert_eq!(parsed.error, Some((6, "Invalid data format", 1)));
    }

    #[test]
    fn answers_auth_channel_and_ack_like_splunk() {
        let hec = FakeHec::start(HecOptions {
            ack: true,
            ..Default::default()
        });
        hec.set_ack_release(AckRelease::Manually);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let url = format!("{}/services/collector/event", hec.url());
            let channel = "0192f0a4-7c1d-7e22-8a3b-1c2d3e4f5a6b";
            let send = |auth: Option<String>, channel: Option<&str>| {
                let mut request = client.post(&url).body(r#"{"event":{"event_id":"e1"}}"#);
                if let Some(auth) = auth {
                    request = request.header("authorization", auth);
                }
                if let Some(channel) = channel {
                    request = request.header("x-splunk-request-channel", channel);
                }
                request.send()
            };
            let body = |r: reqwest::Response| async move { r.json::<Value>().await.unwrap() };
            let r = send(None, Some(channel)).await.unwrap();
            assert_eq!(
                (r.status().as_u16(), body(r).await["code"].clone()),
                (401, json!(2))
            );
            let r = send(Some(format!("Bearer {TOKEN}")), Some(channel))
                .await
                .unwrap();
            assert_eq!(
                (r.status().as_u16(), body(r).await["code"].clone()),
                (401, json!(3))
            );
            let r = send(Some("Splunk wrong".into()), Some(channel))
                .await
                .unwrap();
            assert_eq!(
                (r.status().as_u16(), body(r).await["code"].clone()),
                (403, json!(4))
            );
            let r = send(Some(format!("Splunk {TOKEN}")), None).await.unwrap();
            assert_eq!(
                (r.status().as_u16(), body(r).await["code"].clone()),
                (400, json!(10))
            );
            let r = send(Some(format!("Splunk {TOKEN}")), Some(channel))
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            assert_eq!(body(r).await["ackId"], json!(0));

            let poll = || {
                client
                    .post(format!(
                        "{}/services/collector/ack?channel={channel}",
                        hec.url()
                    ))
                    .header("authorization", format!("Splunk {TOKEN}"))
                    .body(r#"{"acks":[0]}"#)
                    .send()
            };
            assert_eq!(
                body(poll().await.unwrap()).await,
                json!({"acks":{"0":false}})
            );
            hec.release_acks();
            assert_eq!(
                body(poll().await.unwrap()).await,
                json!({"acks":{"0":true}})
            );
            assert_eq!(
                body(poll().await.unwrap()).await,
                json!({"acks":{"0":false}}),
                "forgotten after true"
            );

            let health = client
                .get(format!("{}/services/collector/health", hec.url()))
                .send()
                .await
                .unwrap();
            assert_eq!(body(health).await["code"], json!(17));
        });
        assert_eq!(hec.count_of("e1"), 1);
        assert_eq!(hec.read(|s| s.requests), 5);
    }
}
