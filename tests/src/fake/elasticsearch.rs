//! A fake Elasticsearch (7/8, OpenSearch) that speaks the real Bulk API:
//!
//! - `POST /_bulk` and `POST /<index>/_bulk`: `Content-Type` `application/x-ndjson` or
//!   `application/json` (else 406), gzip bodies, NDJSON with the real rules (the last line must
//!   end with `\n`, else 400 `illegal_argument_exception`; malformed action lines → 400; `_type`
//!   refused like ES 8), bodies over `http.max_content_length` → 413. `create` answers 409
//!   `version_conflict_engine_exception` when the `_id` exists in that index, `index`
//!   overwrites; data streams (indices matching an installed template with `data_stream: {}`)
//!   take only `create` and need `@timestamp`. The `pipeline` query parameter is recorded.
//! - `PUT /_index_template/<name>`: stored, `{"acknowledged":true}`; with `?create=true` an
//!   existing name answers 400 `illegal_argument_exception` "index template [name] already
//!   exists"; a template whose patterns overlap another's with the same priority answers 400
//!   like Elasticsearch 8 ("… that have the same priority …"). `GET /_index_template/<name>`:
//!   `{"index_templates":[{"name","index_template"}]}` or 404 `resource_not_found_exception`.
//!   (Put index template API, elastic.co/guide/en/elasticsearch/reference/current/indices-put-template.html:
//!   "create: If true, this request cannot replace or update existing index templates".)
//! - `GET /_plugins/_ism/policies/<id>` (OpenSearch ISM): `{"_id","policy"}` for a policy the
//!   test added, else 404 `status_exception` "Policy not found".
//! - `GET /`: cluster info.
//! - Auth: `Authorization: ApiKey <encoded>` or `Basic …` as configured; missing or wrong → 401
//!   with ES's `security_exception` error JSON.
//!
//! Controls: per-item failures (429 `es_rejected_execution_exception`, 400
//! `mapper_parsing_exception`, …) for given `_id`s or the next N items, scripted whole-request
//! replies, [`Behaviour::Unavailable`] (503 for everything), going down (connections refused)
//! through [`FakeElasticsearch::server`]. Documents are stored by index and `_id`; successful
//! writes are counted per `_id`, so a test can check each event was stored exactly once.

use super::http_sink::{
    FakeServer, Recorder, SignatureChecks, decode_body, reply_with, signature_matches,
    with_retry_after,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Who may write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EsAuth {
    /// No security (anonymous access).
    #[default]
    None,
    /// `Authorization: ApiKey <encoded>` with this encoded value.
    ApiKey(String),
    /// `Authorization: Basic …` with this user and password.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

/// Settings of a fake Elasticsearch.
#[derive(Clone, Debug)]
pub struct EsOptions {
    /// Required credentials.
    pub auth: EsAuth,
    /// `http.max_content_length`: bodies (wire or decoded) above answer 413 (default 100 MB).
    pub max_content_length: usize,
    /// Verify payload signatures with this secret (results are recorded, never enforced).
    pub signing_secret: Option<String>,
    /// The signature header (default `X-Siemrelay-Signature`).
    pub signature_header: String,
}

impl Default for EsOptions {
    fn default() -> Self {
        EsOptions {
            auth: EsAuth::None,
            max_content_length: 100 << 20,
            signing_secret: None,
            signature_header: "X-Siemrelay-Signature".into(),
        }
    }
}

/// How every request is answered until changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// Serve normally.
    #[default]
    Normal,
    /// 503 `cluster_block_exception`-free "no master" unavailability for every request.
    Unavailable,
}

/// A per-item failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemFailure {
    /// 429 `es_rejected_execution_exception` (write queue full): retryable.
    Rejected,
    /// 400 `mapper_parsing_exception`: permanent.
    MapperParsing,
    /// 503 `unavailable_shards_exception`: retryable.
    UnavailableShards,
    /// 404 `index_not_found_exception`: permanent.
    IndexNotFound,
}

impl ItemFailure {
    fn status_and_error(self, index: &str, id: &str) -> (u16, Value) {
        match self {
            ItemFailure::Rejected => (
                429,
                json!({"type": "es_rejected_execution_exception", "reason": format!("rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0] for document [{id}]")}),
            ),
            ItemFailure::MapperParsing => (
                400,
                json!({"type": "mapper_parsing_exception", "reason": "failed to parse field [attributes.port] of type [long] in document with id '".to_string() + id + "'. Preview of field's value: 'http'"}),
            ),
            ItemFailure::UnavailableShards => (
                503,
                json!({"type": "unavailable_shards_exception", "reason": format!("[{index}][0] primary shard is not active Timeout: [1m]")}),
            ),
            ItemFailure::IndexNotFound => (
                404,
                json!({"type": "index_not_found_exception", "reason": format!("no such index [{index}]"), "index": index}),
            ),
        }
    }
}

/// A whole-request reply for one upcoming request (before any check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scripted {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl Scripted {
    /// 429 `es_rejected_execution_exception` for the whole request.
    pub fn too_many_requests(retry_after: Option<u64>) -> Scripted {
        Scripted {
            status: 429,
            retry_after,
        }
    }

    /// 503 for the whole request.
    pub fn unavailable() -> Scripted {
        Scripted {
            status: 503,
            retry_after: None,
        }
    }
}

/// One request the fake saw.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The `pipeline` query parameter.
    pub pipeline: Option<String>,
    /// Headers as received.
    pub headers: HeaderMap,
    /// Bytes on the wire.
    pub wire_bytes: usize,
    /// Decoded body bytes.
    pub body_bytes: usize,
    /// Bulk actions in the body (0 when not parsed).
    pub actions: usize,
    /// The status answered.
    pub status: u16,
}

/// What the fake recorded.
#[derive(Debug, Default)]
pub struct EsState {
    /// Stored documents: index → `_id` → source.
    pub indices: HashMap<String, HashMap<String, Value>>,
    /// Successful writes (created or overwritten) per `_id`, across indices.
    pub writes: HashMap<String, u32>,
    /// Items answered 409 (the `_id` existed).
    pub conflicts: usize,
    /// Items answered with a scripted failure.
    pub item_failures: usize,
    /// Installed index templates: name → body.
    pub templates: HashMap<String, Value>,
    /// OpenSearch ISM policies (added by the test): id → policy object.
    pub ism_policies: HashMap<String, Value>,
    /// Every request, in arrival order.
    pub requests: Vec<SeenRequest>,
    /// Signature results (only with a secret).
    pub signatures: SignatureChecks,
    /// Largest decoded bulk body accepted.
    pub max_body_bytes: usize,
    /// Most actions in one accepted bulk body.
    pub max_actions: usize,
}

impl EsState {
    /// Documents stored in all indices.
    pub fn doc_count(&self) -> usize {
        self.indices.values().map(HashMap::len).sum()
    }

    /// The stored document with this `_id` (in any index) and its index.
    pub fn doc(&self, id: &str) -> Option<(&str, &Value)> {
        self.indices
            .iter()
            .find_map(|(index, docs)| docs.get(id).map(|doc| (index.as_str(), doc)))
    }

    /// `_id`s written more than once.
    pub fn duplicates(&self) -> Vec<(String, u32)> {
        let mut dups: Vec<(String, u32)> = self
            .writes
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (id.clone(), *n))
            .collect();
        dups.sort();
        dups
    }

    /// Bulk requests answered with `status`.
    pub fn requests_with_status(&self, status: u16) -> usize {
        self.requests.iter().filter(|r| r.status == status).count()
    }
}

#[derive(Default)]
struct Controls {
    behaviour: Behaviour,
    script: VecDeque<Scripted>,
    /// `_id` → (failure, remaining times).
    by_id: HashMap<String, (ItemFailure, usize)>,
    /// Failures for the next items, in order.
    next_items: VecDeque<ItemFailure>,
    seq_no: u64,
    /// Overrides `EsOptions::max_content_length` while set.
    max_content_length: Option<usize>,
}

struct Shared {
    options: EsOptions,
    controls: Mutex<Controls>,
    recorder: Recorder<EsState>,
}

/// A running fake Elasticsearch.
pub struct FakeElasticsearch {
    server: FakeServer,
    shared: Arc<Shared>,
}

fake_accessors!(FakeElasticsearch, EsState, |s| &s.writes);

impl FakeElasticsearch {
    /// Starts a cluster without security.
    pub fn start() -> FakeElasticsearch {
        FakeElasticsearch::start_with(EsOptions::default())
    }

    /// Starts a cluster with the given settings.
    pub fn start_with(options: EsOptions) -> FakeElasticsearch {
        let shared = Arc::new(Shared {
            options,
            controls: Mutex::new(Controls::default()),
            recorder: Recorder::new(EsState::default()),
        });
        let router = Router::new()
            .route("/", get(root))
            .route("/_bulk", post(bulk_default))
            .route("/{index}/_bulk", post(bulk_index))
            .route(
                "/_index_template/{name}",
                put(put_template).get(get_template),
            )
            .route("/_plugins/_ism/policies/{id}", get(get_ism_policy))
            .fallback(|method: Method, uri: Uri| async move {
                es_error(
                    400,
                    "illegal_argument_exception",
                    &format!("no handler found for uri [{uri}] and method [{method}]"),
                )
            })
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        FakeElasticsearch {
            server: FakeServer::start(router),
            shared,
        }
    }

    /// Sets how every request is answered.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        lock(&self.shared.controls).behaviour = behaviour;
    }

    /// Whole-request replies for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Scripted>) {
        lock(&self.shared.controls).script.extend(replies);
    }

    /// Items with these `_id`s fail `times` times (`usize::MAX`: always).
    pub fn fail_ids<S: Into<String>>(
        &self,
        ids: impl IntoIterator<Item = S>,
        failure: ItemFailure,
        times: usize,
    ) {
        let mut controls = lock(&self.shared.controls);
        for id in ids {
            controls.by_id.insert(id.into(), (failure, times));
        }
    }

    /// Waits (async) until `n` distinct documents were written (or `timeout`): the
    /// Elasticsearch word for [`FakeElasticsearch::events_reached`], which the exporters
    /// crate's own tests use.
    pub async fn docs_reached(&self, n: usize, timeout: std::time::Duration) -> bool {
        self.events_reached(n, timeout).await
    }

    /// Sets `http.max_content_length` (`None`: the configured one again).
    pub fn set_max_content_length(&self, bytes: Option<usize>) {
        lock(&self.shared.controls).max_content_length = bytes;
    }

    /// The next `n` items (of any request) fail.
    pub fn fail_next_items(&self, n: usize, failure: ItemFailure) {
        lock(&self.shared.controls)
            .next_items
            .extend(std::iter::repeat_n(failure, n));
    }

    /// Installs a template as someone else would (an operator, another tool), without a request.
    pub fn add_template(&self, name: &str, body: Value) {
        self.shared.recorder.update(|s| {
            s.templates.insert(name.to_string(), body);
        });
    }

    /// Adds an OpenSearch ISM policy (the `policy` object of the ISM API).
    pub fn add_ism_policy(&self, id: &str, policy: Value) {
        self.shared.recorder.update(|s| {
            s.ism_policies.insert(id.to_string(), policy);
        });
    }

    /// Signature results.
    pub fn signatures(&self) -> SignatureChecks {
        self.read(|s| s.signatures)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// ES's error reply: `{"error":{"root_cause":[…],"type":…,"reason":…},"status":N}`.
fn es_error(status: u16, kind: &str, reason: &str) -> Response {
    let cause = json!({"type": kind, "reason": reason});
    let body =
        json!({"error": {"root_cause": [cause], "type": kind, "reason": reason}, "status": status});
    json_response(status, body.to_string())
}

fn json_response(status: u16, body: String) -> Response {
    reply_with(status, "application/json", body, None)
}

/// Behaviour, script, signature and auth checks shared by every route. `Err` is the reply.
fn gate(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
) -> Result<(), Box<Response>> {
    if let Some(secret) = &shared.options.signing_secret {
        let ok = signature_matches(secret, headers, &shared.options.signature_header, body);
        shared.recorder.update(|s| {
            if ok {
                s.signatures.passed += 1;
            } else {
                s.signatures.failed += 1;
            }
        });
    }
    {
        let mut controls = lock(&shared.controls);
        if controls.behaviour == Behaviour::Unavailable {
            return Err(Box::new(es_error(
                503,
                "master_not_discovered_exception",
                "no master node",
            )));
        }
        if let Some(scripted) = controls.script.pop_front() {
            let (kind, reason) = match scripted.status {
                429 => (
                    "es_rejected_execution_exception",
                    "rejected execution of coordinating operation",
                ),
                503 => (
                    "unavailable_shards_exception",
                    "primary shard is not active",
                ),
                _ => ("exception", "scripted failure"),
            };
            let response = es_error(scripted.status, kind, reason);
            return Err(Box::new(with_retry_after(response, scripted.retry_after)));
        }
    }
    check_auth(&shared.options.auth, headers, path)
}

fn check_auth(auth: &EsAuth, headers: &HeaderMap, path: &str) -> Result<(), Box<Response>> {
    let expected = match auth {
        EsAuth::None => return Ok(()),
        EsAuth::ApiKey(key) => format!("ApiKey {key}"),
        EsAuth::Basic { username, password } => {
            format!(
                "Basic {}",
                base64(format!("{username}:{password}").as_bytes())
            )
        }
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let reason = match given {
        Some(given) if given == expected => return Ok(()),
        Some(_) => "unable to authenticate with provided credentials and anonymous access is not allowed for this request".to_string(),
        None => format!("missing authentication credentials for REST request [{path}]"),
    };
    let header = json!({"WWW-Authenticate": ["Basic realm=\"security\", charset=\"UTF-8\"", "Bearer realm=\"security\"", "ApiKey"]});
    let cause = json!({"type": "security_exception", "reason": reason, "header": header});
    let body = json!({"error": {"root_cause": [cause], "type": "security_exception", "reason": reason, "header": header}, "status": 401});
    let mut response = json_response(401, body.to_string());
    response.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("ApiKey"),
    );
    Err(Box::new(response))
}

/// Standard base64 with padding (for the expected Basic credentials).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn root(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(response) = gate(&shared, &headers, b"", "/") {
        return *response;
    }
    json_response(
        200,
        json!({"name": "fake-es", "cluster_name": "siemrelay-test", "version": {"number": "8.15.0", "distribution": "elasticsearch"}, "tagline": "You Know, for Search"}).to_string(),
    )
}

async fn put_template(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/_index_template/{name}");
    let create = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|pair| pair == "create=true"));
    let reply = match gate(&shared, &headers, &body, &path) {
        Err(response) => *response,
        Ok(()) => match serde_json::from_slice::<Value>(&body) {
            Ok(template) if template.get("index_patterns").is_some() => {
                shared.recorder.update(|s| {
                    match template_conflict(&s.templates, &name, &template, create) {
                        Some(reason) => es_error(400, "illegal_argument_exception", &reason),
                        None => {
                            s.templates.insert(name.clone(), template);
                            json_response(200, r#"{"acknowledged":true}"#.into())
                        }
                    }
                })
            }
            Ok(_) => es_error(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index patterns are missing;",
            ),
            Err(e) => es_error(400, "x_content_parse_exception", &e.to_string()),
        },
    };
    let uri = match &query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    record(
        &shared,
        "PUT",
        uri,
        None,
        &headers,
        body.len(),
        0,
        0,
        reply.status().as_u16(),
    );
    reply
}

/// Why Elasticsearch would refuse to store `template` as `name`: `create` and the name exists,
/// or its patterns overlap another template's with the same priority.
fn template_conflict(
    templates: &HashMap<String, Value>,
    name: &str,
    template: &Value,
    create: bool,
) -> Option<String> {
    if create && templates.contains_key(name) {
        return Some(format!("index template [{name}] already exists"));
    }
    let patterns = |t: &Value| -> Vec<String> {
        t["index_patterns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect()
    };
    let priority = |t: &Value| t["priority"].as_u64().unwrap_or(0);
    let mine = patterns(template);
    for (other, body) in templates.iter().filter(|(other, _)| *other != name) {
        let theirs = patterns(body);
        let overlap = mine
            .iter()
            .any(|a| theirs.iter().any(|b| patterns_overlap(a, b)));
        if overlap && priority(body) == priority(template) {
            return Some(format!(
                "index template [{name}] has index patterns {mine:?} matching patterns from existing templates [{other}] with patterns ({other} => {theirs:?}) that have the same priority [{}], multiple index templates may not match during index creation, please use a different priority",
                priority(template)
            ));
        }
    }
    None
}

/// Whether two `*` patterns can match one name (prefix patterns and exact names).
fn patterns_overlap(a: &str, b: &str) -> bool {
    let prefix = |p: &str| p.split('*').next().unwrap_or("").to_string();
    match (a.contains('*'), b.contains('*')) {
        (false, false) => a == b,
        (true, false) => glob(a, b),
        (false, true) => glob(b, a),
        (true, true) => {
            let (pa, pb) = (prefix(a), prefix(b));
            pa.starts_with(&pb) || pb.starts_with(&pa)
        }
    }
}

async fn get_template(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/_index_template/{name}");
    let reply = match gate(&shared, &headers, b"", &path) {
        Err(response) => *response,
        Ok(()) => match shared.recorder.read(|s| s.templates.get(&name).cloned()) {
            Some(template) => json_response(
                200,
                json!({"index_templates": [{"name": name, "index_template": template}]})
                    .to_string(),
            ),
            None => es_error(
                404,
                "resource_not_found_exception",
                &format!("index template matching [{name}] not found"),
            ),
        },
    };
    record(
        &shared,
        "GET",
        path,
        None,
        &headers,
        0,
        0,
        0,
        reply.status().as_u16(),
    );
    reply
}

async fn get_ism_policy(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/_plugins/_ism/policies/{id}");
    let reply = match gate(&shared, &headers, b"", &path) {
        Err(response) => *response,
        Ok(()) => match shared.recorder.read(|s| s.ism_policies.get(&id).cloned()) {
            Some(policy) => json_response(
                200,
                json!({"_id": id, "_version": 1, "_seq_no": 0, "_primary_term": 1, "policy": policy}).to_string(),
            ),
            None => es_error(404, "status_exception", "Policy not found"),
        },
    };
    record(
        &shared,
        "GET",
        path,
        None,
        &headers,
        0,
        0,
        0,
        reply.status().as_u16(),
    );
    reply
}

async fn bulk_default(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bulk(shared, None, query, headers, body)
}

async fn bulk_index(
    State(shared): State<Arc<Shared>>,
    Path(index): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bulk(shared, Some(index), query, headers, body)
}

#[allow(clippy::too_many_arguments)]
fn record(
    shared: &Shared,
    method: &str,
    uri: String,
    pipeline: Option<String>,
    headers: &HeaderMap,
    wire_bytes: usize,
    body_bytes: usize,
    actions: usize,
    status: u16,
) {
    shared.recorder.update(|s| {
        s.requests.push(SeenRequest {
            method: method.into(),
            uri,
            pipeline,
            headers: headers.clone(),
            wire_bytes,
            body_bytes,
            actions,
            status,
        });
    });
}

fn bulk(
    shared: Arc<Shared>,
    path_index: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = match &path_index {
        Some(index) => format!("/{index}/_bulk"),
        None => "/_bulk".to_string(),
    };
    let uri = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let pipeline = query.as_deref().and_then(|q| {
        q.split('&').find_map(|pair| {
            pair.strip_prefix("pipeline=")
                .map(|v| v.replace('+', " ").replace("%20", " "))
        })
    });
    let (reply, decoded_len, actions) = match gate(&shared, &headers, &body, &path) {
        Err(response) => (*response, 0, 0),
        Ok(()) => bulk_checked(&shared, path_index.as_deref(), &headers, &body),
    };
    let status = reply.status().as_u16();
    record(
        &shared,
        "POST",
        uri,
        pipeline,
        &headers,
        body.len(),
        decoded_len,
        actions,
        status,
    );
    reply
}

/// After the gate: content type, size, NDJSON, then the actions. Returns (reply, decoded bytes, actions).
fn bulk_checked(
    shared: &Shared,
    path_index: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, usize, usize) {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media != "application/x-ndjson" && media != "application/json" {
        let body = json!({"error": format!("Content-Type header [{content_type}] is not supported"), "status": 406});
        return (json_response(406, body.to_string()), 0, 0);
    }
    let limit = lock(&shared.controls)
        .max_content_length
        .unwrap_or(shared.options.max_content_length);
    if body.len() > limit {
        return (json_response(413, String::new()), 0, 0);
    }
    let decoded = match decode_body(headers, body) {
        Ok(decoded) => decoded,
        Err(e) => return (es_error(400, "illegal_argument_exception", &e), 0, 0),
    };
    if decoded.len() > limit {
        return (json_response(413, String::new()), decoded.len(), 0);
    }
    let actions = match parse_bulk(&decoded, path_index) {
        Ok(actions) => actions,
        Err((kind, reason)) => return (es_error(400, kind, &reason), decoded.len(), 0),
    };
    let count = actions.len();
    let started = std::time::Instant::now();
    let items = apply(shared, actions, decoded.len());
    let errors = items.iter().any(|item| {
        item.as_object()
            .and_then(|o| o.values().next())
            .and_then(|r| r.get("status"))
            .and_then(Value::as_u64)
            .is_some_and(|s| s >= 300)
    });
    let reply =
        json!({"took": started.elapsed().as_millis() as u64, "errors": errors, "items": items});
    (json_response(200, reply.to_string()), decoded.len(), count)
}

/// One parsed bulk action.
struct Action {
    op: String,
    index: String,
    id: Option<String>,
    source: Option<Value>,
}

/// Parses NDJSON like ES: the body must end with a newline; action lines are single-key objects.
fn parse_bulk(
    body: &[u8],
    path_index: Option<&str>,
) -> Result<Vec<Action>, (&'static str, String)> {
    if body.is_empty() {
        return Err((
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;".into(),
        ));
    }
    if !body.ends_with(b"\n") {
        return Err((
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]".into(),
        ));
    }
    let mut lines = body[..body.len() - 1].split(|b| *b == b'\n').enumerate();
    let mut actions = Vec::new();
    while let Some((n, line)) = lines.next() {
        let line_no = n + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed: Map<String, Value> = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err((
                    "illegal_argument_exception",
                    format!(
                        "Malformed action/metadata line [{line_no}], expected START_OBJECT but found [{}]",
                        json_kind(&other)
                    ),
                ));
            }
            Err(e) => {
                return Err((
                    "x_content_parse_exception",
                    format!("[{line_no}:1] Malformed action/metadata line: {e}"),
                ));
            }
        };
        let Some((op, meta)) = parsed.iter().next().filter(|_| parsed.len() == 1) else {
            return Err((
                "illegal_argument_exception",
                format!("Malformed action/metadata line [{line_no}], expected a single action"),
            ));
        };
        if !matches!(op.as_str(), "create" | "index" | "update" | "delete") {
            return Err((
                "illegal_argument_exception",
                format!(
                    "Malformed action/metadata line [{line_no}], expected field [create], [delete], [index] or [update] but found [{op}]"
                ),
            ));
        }
        let Some(meta) = meta.as_object() else {
            return Err((
                "illegal_argument_exception",
                format!("Malformed action/metadata line [{line_no}], expected START_OBJECT"),
            ));
        };
        if meta.contains_key("_type") {
            return Err((
                "illegal_argument_exception",
                format!("Action/metadata line [{line_no}] contains an unknown parameter [_type]"),
            ));
        }
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(path_index)
            .map(str::to_string)
            .ok_or((
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;".to_string(),
            ))?;
        let id = meta.get("_id").and_then(Value::as_str).map(str::to_string);
        let source = if op == "delete" {
            None
        } else {
            match lines.next() {
                Some((_, source_line)) => {
                    Some(serde_json::from_slice::<Value>(source_line).unwrap_or(Value::Null))
                }
                None => {
                    return Err((
                        "illegal_argument_exception",
                        format!(
                            "Validation Failed: 1: source is missing for action/metadata line [{line_no}];"
                        ),
                    ));
                }
            }
        };
        actions.push(Action {
            op: op.clone(),
            index,
            id,
            source,
        });
    }
    Ok(actions)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "START_ARRAY",
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Null => "VALUE_NULL",
        Value::Object(_) => "START_OBJECT",
    }
}

/// Applies the actions; returns the reply items in order.
fn apply(shared: &Shared, actions: Vec<Action>, decoded_len: usize) -> Vec<Value> {
    let mut controls = lock(&shared.controls);
    let data_stream_patterns: Vec<String> = shared.recorder.read(|s| {
        s.templates
            .values()
            .filter(|t| t.get("data_stream").is_some())
            .filter_map(|t| t.get("index_patterns").and_then(Value::as_array).cloned())
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect()
    });
    let count = actions.len();
    shared.recorder.update(|state| {
        state.max_body_bytes = state.max_body_bytes.max(decoded_len);
        state.max_actions = state.max_actions.max(count);
        actions
            .into_iter()
            .map(|action| {
                controls.seq_no += 1;
                let id = action
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("auto-{}", controls.seq_no));
                let item = |status: u16, extra: Value| {
                    let mut result = json!({"_index": action.index, "_id": id, "status": status});
                    if let (Some(result), Some(extra)) = (result.as_object_mut(), extra.as_object()) {
                        result.extend(extra.clone());
                    }
                    json!({ action.op.clone(): result })
                };
                let scripted = match controls.by_id.get_mut(&id) {
                    Some((failure, times)) if *times > 0 => {
                        *times = times.saturating_sub(1);
                        Some(*failure)
                    }
                    _ => controls.next_items.pop_front(),
                };
                if let Some(failure) = scripted {
                    state.item_failures += 1;
                    let (status, error) = failure.status_and_error(&action.index, &id);
                    return item(status, json!({"error": error}));
                }
                let data_stream = data_stream_patterns.iter().any(|p| glob(p, &action.index));
                if data_stream && action.op != "create" {
                    return item(400, json!({"error": {"type": "illegal_argument_exception", "reason": format!("only write ops with an op_type of create are allowed in data streams")}}));
                }
                let Some(source) = action.source.filter(Value::is_object) else {
                    if action.op == "delete" {
                        let removed = state.indices.get_mut(&action.index).and_then(|d| d.remove(&id));
                        return item(if removed.is_some() { 200 } else { 404 }, json!({"result": if removed.is_some() { "deleted" } else { "not_found" }}));
                    }
                    return item(400, json!({"error": {"type": "document_parsing_exception", "reason": "[1:1] failed to parse: the document is not a JSON object"}}));
                };
                if data_stream && source.get("@timestamp").is_none() {
                    return item(400, json!({"error": {"type": "document_parsing_exception", "reason": "data stream timestamp field [@timestamp] is missing"}}));
                }
                let docs = state.indices.entry(action.index.clone()).or_default();
                let exists = docs.contains_key(&id);
                if exists && action.op == "create" {
                    state.conflicts += 1;
                    return item(409, json!({"error": {"type": "version_conflict_engine_exception", "reason": format!("[{id}]: version conflict, document already exists (current version [1])"), "index": action.index, "shard": "0"}}));
                }
                docs.insert(id.clone(), source);
                *state.writes.entry(id.clone()).or_default() += 1;
                let seq_no = controls.seq_no;
                item(
                    if exists { 200 } else { 201 },
                    json!({"_version": 1, "result": if exists { "updated" } else { "created" }, "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": seq_no, "_primary_term": 1}),
                )
            })
            .collect()
    })
}

/// `*` wildcards only, like index patterns.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, rest)) => {
            if !name.starts_with(prefix) {
                return false;
            }
            let tail = &name[prefix.len()..];
            if rest.is_empty() {
                return true;
            }
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
        assert!(glob("logs-*-*", "logs-siemrelay-default"));
        assert!(!glob("logs-*-*", "metrics-x-y"));
    }

    #[test]
    fn bulk_follows_the_real_rules() {
        let es = FakeElasticsearch::start_with(EsOptions {
            auth: EsAuth::ApiKey("a2V5OnNlY3JldA==".into()),
            ..Default::default()
        });
        es.fail_ids(["bad"], ItemFailure::MapperParsing, usize::MAX);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let url = format!("{}/_bulk?pipeline=geo", es.url());
            let post = |auth: Option<&str>, body: &'static str| {
                let mut request = client.post(&url).header("content-type", "application/x-ndjson");
                if let Some(auth) = auth {
                    request = request.header("authorization", auth);
                }
                request.body(body).send()
            };
            let key = Some("ApiKey a2V5OnNlY3JldA==");
            let two = "{\"create\":{\"_index\":\"ix\",\"_id\":\"a\"}}\n{\"x\":1}\n{\"create\":{\"_index\":\"ix\",\"_id\":\"bad\"}}\n{\"x\":2}\n";
            assert_eq!(post(None, two).await.unwrap().status(), 401);
            let wrong = post(Some("ApiKey nope"), two).await.unwrap();
            assert_eq!(wrong.status(), 401);
            let wrong: Value = wrong.json().await.unwrap();
            assert_eq!(wrong["error"]["type"], "security_exception");
            let reply: Value = post(key, two).await.unwrap().json().await.unwrap();
            assert_eq!(reply["errors"], true);
            assert_eq!(reply["items"][0]["create"]["status"], 201);
            assert_eq!(reply["items"][1]["create"]["error"]["type"], "mapper_parsing_exception");
            let again: Value = post(key, "{\"create\":{\"_index\":\"ix\",\"_id\":\"a\"}}\n{\"x\":1}\n").await.unwrap().json().await.unwrap();
            assert_eq!(again["items"][0]["create"]["status"], 409);
            let no_newline = post(key, "{\"create\":{\"_index\":\"ix\",\"_id\":\"c\"}}\n{\"x\":1}").await.unwrap();
            assert_eq!(no_newline.status(), 400);
            let no_newline: Value = no_newline.json().await.unwrap();
            assert_eq!(no_newline["error"]["reason"], "The bulk request must be terminated by a newline [\\n]");
            let typed = post(key, "{\"index\":{\"_index\":\"ix\",\"_type\":\"_doc\"}}\n{}\n").await.unwrap();
            assert_eq!(typed.status(), 400);
        });
        es.read(|s| {
            assert_eq!(s.doc_count(), 1);
            assert_eq!(s.writes["a"], 1);
            assert_eq!(s.conflicts, 1);
            assert_eq!(s.item_failures, 1);
            assert_eq!(s.requests[2].pipeline.as_deref(), Some("geo"));
        });
    }
}
