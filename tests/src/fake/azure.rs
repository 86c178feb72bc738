//! A fake Entra ID token endpoint and a fake Azure Monitor Logs Ingestion endpoint, one server.
//!
//! - `POST /{tenant}/oauth2/v2.0/token` (form body): checks the tenant (`AADSTS90002`),
//!   `grant_type=client_credentials` (`AADSTS70003`), the client id (`AADSTS700016`), the client
//!   secret (401 `invalid_client`, `AADSTS7000215`) or, for workload identity federation, the
//!   client assertion (`client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//!   `client_assertion` = the federated token; else 400 `invalid_client` `AADSTS700211`/`AADSTS700024`),
//!   and the scope (`AADSTS70011`): the scope the Logs Ingestion API documentation gives,
//!   `https://monitor.azure.com//.default` (learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview,
//!   "…scope https://monitor.azure.com//.default"), not whatever siemrelay sends; answering with
//!   Entra's error shape `{"error","error_description","error_codes",…}`; success is
//!   `{"token_type":"Bearer","expires_in":N,"access_token":".."}` with a configurable lifetime
//!   (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
//! - Managed identity, as learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token
//!   documents IMDS: `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`
//!   with `Metadata: true` (else 400 `invalid_request` "Required metadata header not
//!   specified"); `resource` must be `https://monitor.azure.com/`; optional `client_id` of a
//!   user-assigned identity; reply `{"access_token","refresh_token":"","expires_in":"3599",
//!   "expires_on","not_before","resource","token_type":"Bearer"}` (numbers as strings). And the
//!   App Service endpoint (learn.microsoft.com/azure/app-service/overview-managed-identity, REST
//!   protocol): `GET /msi/token?api-version=2019-08-01&resource=…` with `X-IDENTITY-HEADER`
//!   (else 401), reply `{"access_token","expires_on","resource","token_type","client_id"}`
//!   without `expires_in`.
//! - `POST /dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`: checks the
//!   api-version (400), the bearer token (missing, unknown, expired or revoked → 401), the DCR and
//!   stream (404), the role (403 `OperationFailed` when forbidden), gzip, the 1 MB limit on the
//!   decoded body (413 `ContentLengthLimitExceeded`), and that the body is a JSON array of
//!   objects (400). Accepted bodies answer 204 and their records are kept by event id.
//!   Errors use `{"error":{"code":..,"message":..}}`.
//! - The DCR it serves is a deployed one: its `streamDeclarations` (default: those of the shipped
//!   `examples/sentinel/azuredeploy.json`, as if that template were deployed; or
//!   [`FakeAzure::set_streams`]). A stream it does not declare is 404 `InvalidStream`. Each
//!   record is then taken as the DCR takes it: the upload is accepted (204, the API validates
//!   asynchronously), a column the stream does not declare is not ingested, and a value that is
//!   not of its column's declared type is not stored (learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview:
//!   "the data … must match the structure expected by the DCR"; the stream declaration types are
//!   `string`, `int`, `long`, `real`, `boolean`, `datetime`, `dynamic`). Whatever the DCR would
//!   have dropped is listed in [`AzureState::dropped`], so a test sees what Log Analytics would
//!   silently lose.
//!
//! Controls: a script of replies for the next uploads (429 with `Retry-After`, 503, …), token
//! lifetime, revoking every issued token (the next upload gets 401), forbidding the app (403),
//! limits, and going down via [`FakeAzure::server`].

use super::http_sink::{EventLog, FakeServer, Recorder, decode_body, reply_with};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tenant the fake knows.
pub const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The app (client) id it accepts.
pub const CLIENT_ID: &str = "5f2b1a7e-0c4d-4e8f-9a1b-2c3d4e5f6a7b";
/// The client secret it accepts.
pub const CLIENT_SECRET: &str = "Xq8~siemrelay.test-secret_0123456789";
/// The DCR immutable id it serves.
pub const DCR_ID: &str = "dcr-0123456789abcdef0123456789abcdef";
/// The stream it serves.
pub const STREAM: &str = "Custom-SiemrelayEvents_CL";
/// The scope it expects: the one Microsoft documents for the Logs Ingestion API.
pub const SCOPE: &str = "https://monitor.azure.com//.default";
/// The managed-identity `resource` it expects.
pub const RESOURCE: &str = "https://monitor.azure.com/";
/// The federated (workload identity) token it accepts as a client assertion.
pub const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImFrcyJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2VjdXJpdHk6c2llbXJlbGF5In0.c2ln";
/// The App Service `IDENTITY_HEADER` it accepts.
pub const IDENTITY_HEADER: &str = "2f1b9c6e-app-service-identity-header";
/// A user-assigned managed identity's client id it knows.
pub const USER_ASSIGNED_CLIENT_ID: &str = "0d6a7a7c-3f4e-4c1b-9d8e-user-assigned";

/// Settings of the fake.
#[derive(Clone, Debug)]
pub struct AzureOptions {
    /// Token lifetime in seconds (`expires_in`).
    pub token_lifetime: u64,
    /// Largest decoded body accepted (the service: 1 MB).
    pub max_body: usize,
}

impl Default for AzureOptions {
    fn default() -> Self {
        AzureOptions {
            token_lifetime: 3599,
            max_body: 1_048_576,
        }
    }
}

/// A reply for one upcoming upload (after the token check), accepting nothing.
#[derive(Clone, Debug)]
pub struct Scripted {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl Scripted {
    /// 429 with `Retry-After`.
    pub fn throttled(seconds: u64) -> Scripted {
        Scripted {
            status: 429,
            retry_after: Some(seconds),
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

/// One upload the fake saw.
#[derive(Clone, Debug)]
pub struct SeenUpload {
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Bytes on the wire.
    pub wire_bytes: usize,
    /// Decoded body bytes.
    pub body_bytes: usize,
    /// Records in the body (when parsed).
    pub records: usize,
    /// Status answered.
    pub status: u16,
}

/// What the fake recorded.
#[derive(Debug, Default)]
pub struct AzureState {
    /// Accepted records as stored (only declared columns with values of their type), counted
    /// by event id ([`record_id`]).
    pub records: EventLog,
    /// The stream each record of `records` came in by, in the same order.
    pub record_streams: Vec<String>,
    /// What the DCR would not have stored: `stream: column …` lines.
    pub dropped: Vec<String>,
    /// Every upload, in arrival order.
    pub uploads: Vec<SeenUpload>,
    /// Token requests answered with success.
    pub tokens_issued: usize,
    /// Token requests refused, with the Entra error code.
    pub token_errors: Vec<String>,
    /// Form fields of the last token request (the secret replaced by `***`).
    pub last_token_form: HashMap<String, String>,
    /// Managed identity requests: (path, query fields, headers).
    pub identity_requests: Vec<(String, HashMap<String, String>, HeaderMap)>,
}

impl AzureState {
    /// Uploads answered with `status`.
    pub fn uploads_with(&self, status: u16) -> usize {
        self.uploads.iter().filter(|u| u.status == status).count()
    }

    /// Accepted records by `EventId` (the first, if one came more than once).
    pub fn records_by_id(&self) -> HashMap<&str, &Value> {
        let mut index = HashMap::with_capacity(self.records.items.len());
        for record in &self.records.items {
            if let Some(id) = record.get("EventId").and_then(Value::as_str) {
                index.entry(id).or_insert(record);
            }
        }
        index
    }

    /// The records that came in by `stream`, as stored.
    pub fn records_of(&self, stream: &str) -> Vec<&Value> {
        self.records
            .items
            .iter()
            .zip(&self.record_streams)
            .filter(|(_, s)| s.as_str() == stream)
            .map(|(record, _)| record)
            .collect()
    }

    /// The accepted record of an event id.
    pub fn record(&self, event_id: &str) -> Option<&Value> {
        self.records
            .items
            .iter()
            .find(|r| r.get("EventId").and_then(Value::as_str) == Some(event_id))
    }
}

/// A DCR's stream declarations: stream name → (column name, type), in order.
pub type StreamDeclarations = HashMap<String, Vec<(String, String)>>;

/// The `streamDeclarations` of the data collection rule in an ARM template.
pub fn template_streams(template: &Value) -> StreamDeclarations {
    let mut streams = StreamDeclarations::new();
    for resource in template["resources"].as_array().into_iter().flatten() {
        if resource["type"] != "Microsoft.Insights/dataCollectionRules" {
            continue;
        }
        for (name, declaration) in resource["properties"]["streamDeclarations"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let columns = declaration["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["type"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            streams.insert(name.clone(), columns);
        }
    }
    streams
}

/// The shipped template `examples/sentinel/azuredeploy.json`, parsed.
pub fn shipped_template() -> Value {
    let path = crate::repo().join("examples/sentinel/azuredeploy.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An accepted record's event id, whatever its columns: `EventId` (the native columns),
/// `event_id` (flat), `event.id` (ECS) or `metadata.uid` (OCSF).
pub fn record_id(record: &Value) -> Option<&str> {
    record
        .get("EventId")
        .or_else(|| record.get("event_id"))
        .or_else(|| record.get("event").and_then(|e| e.get("id")))
        .or_else(|| record.get("metadata").and_then(|m| m.get("uid")))
        .and_then(Value::as_str)
}

/// True when a JSON value is of a stream declaration column type.
fn of_type(value: &Value, kind: &str) -> bool {
    match kind {
        "string" => value.is_string(),
        "int" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "long" => value.is_i64(),
        "real" => value.is_number(),
        "boolean" => value.is_boolean(),
        "datetime" => value.as_str().is_some_and(|t| unix_seconds(t).is_some()),
        "dynamic" => true,
        _ => false,
    }
}

/// The record as the DCR stores it (declared columns with values of their type), and what it
/// drops.
fn take_declared(
    stream: &str,
    columns: &[(String, String)],
    record: Value,
) -> (Value, Vec<String>) {
    let mut dropped = Vec::new();
    let Value::Object(members) = record else {
        return (record, dropped);
    };
    let mut kept = serde_json::Map::new();
    for (name, value) in members {
        match columns.iter().find(|(column, _)| *column == name) {
            None => dropped.push(format!("{stream}: column {name} is not declared")),
            Some((_, kind)) if value.is_null() || of_type(&value, kind) => {
                kept.insert(name, value);
            }
            Some((_, kind)) => {
                dropped.push(format!("{stream}: column {name} ({kind}) got {value}"))
            }
        }
    }
    (Value::Object(kept), dropped)
}

struct Shared {
    options: Mutex<AzureOptions>,
    streams: Mutex<StreamDeclarations>,
    tokens: Mutex<HashMap<String, Instant>>,
    script: Mutex<VecDeque<Scripted>>,
    forbidden: Mutex<bool>,
    recorder: Recorder<AzureState>,
}

/// A running fake Entra ID + Logs Ingestion endpoint.
pub struct FakeAzure {
    server: FakeServer,
    shared: Arc<Shared>,
}

fake_accessors!(FakeAzure, AzureState, |s| &s.records.counts);

impl FakeAzure {
    /// Starts with default settings.
    pub fn start() -> FakeAzure {
        FakeAzure::start_with(AzureOptions::default())
    }

    /// Starts with the given settings.
    pub fn start_with(options: AzureOptions) -> FakeAzure {
        let shared = Arc::new(Shared {
            options: Mutex::new(options),
            streams: Mutex::new(template_streams(&shipped_template())),
            tokens: Mutex::new(HashMap::new()),
            script: Mutex::new(VecDeque::new()),
            forbidden: Mutex::new(false),
            recorder: Recorder::new(AzureState::default()),
        });
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/metadata/identity/oauth2/token", get(imds_token))
            .route("/msi/token", get(app_service_token))
            .route("/dataCollectionRules/{dcr}/streams/{stream}", post(upload))
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        FakeAzure {
            server: FakeServer::start(router),
            shared,
        }
    }

    /// Replies for the next uploads, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Scripted>) {
        lock(&self.shared.script).extend(replies);
    }

    /// Sets the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, seconds: u64) {
        lock(&self.shared.options).token_lifetime = seconds;
    }

    /// Sets the largest decoded body accepted.
    pub fn set_max_body(&self, bytes: usize) {
        lock(&self.shared.options).max_body = bytes;
    }

    /// Replaces the DCR's stream declarations.
    pub fn set_streams(&self, streams: StreamDeclarations) {
        *lock(&self.shared.streams) = streams;
    }

    /// Revokes every token issued so far (uploads with them get 401).
    pub fn revoke_tokens(&self) {
        lock(&self.shared.tokens).clear();
    }

    /// Removes (true) or restores the app's role on the DCR (403 `OperationFailed`).
    pub fn set_forbidden(&self, forbidden: bool) {
        *lock(&self.shared.forbidden) = forbidden;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Decodes `application/x-www-form-urlencoded`.
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(byte) => {
                            out.push(byte);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                other => out.push(other),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn entra_error(status: u16, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: 0c3f3a5e-0000-4000-8000-000000000000 Correlation ID: 1d4e4b6f-0000-4000-8000-000000000000 Timestamp: 2026-01-01 00:00:00Z"),
        "error_codes": [code],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": "0c3f3a5e-0000-4000-8000-000000000000",
        "correlation_id": "1d4e4b6f-0000-4000-8000-000000000000",
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    json_response(status, body, None)
}

fn json_response(status: u16, body: Value, retry_after: Option<u64>) -> Response {
    reply_with(
        status,
        "application/json; charset=utf-8",
        body.to_string(),
        retry_after,
    )
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let field = |key: &str| form.get(key).map(String::as_str).unwrap_or("");
    let mut shown = form.clone();
    for hidden in ["client_secret", "client_assertion"] {
        if shown.contains_key(hidden) {
            shown.insert(hidden.into(), "***".into());
        }
    }
    let refusal = if tenant != TENANT_ID {
        Some((
            400,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ))
    } else if field("grant_type") != "client_credentials" {
        Some((
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.".to_string(),
        ))
    } else if field("client_id") != CLIENT_ID {
        Some((
            400,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{}' was not found in the directory.",
                field("client_id")
            ),
        ))
    } else if form.contains_key("client_assertion") || form.contains_key("client_assertion_type") {
        if field("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
            Some((400, "invalid_request", 90001, format!("The client_assertion_type '{}' is not supported.", field("client_assertion_type"))))
        } else if field("client_assertion") != FEDERATED_TOKEN {
            Some((400, "invalid_client", 700211, "No matching federated identity record found for presented assertion issuer.".to_string()))
        } else if form.contains_key("client_secret") {
            Some((400, "invalid_request", 700025, "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.".to_string()))
        } else {
            None
        }
        .or_else(|| scope_refusal(field("scope")))
    } else if field("client_secret") != CLIENT_SECRET {
        Some((401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.".to_string()))
    } else if field("scope") != SCOPE {
        Some((
            400,
            "invalid_scope",
            70011,
            format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid: {}",
                field("scope")
            ),
        ))
    } else {
        None
    };
    if let Some((status, error, code, description)) = refusal {
        shared.recorder.update(|s| {
            s.token_errors.push(error.to_string());
            s.last_token_form = shown;
        });
        return entra_error(status, error, code, &description);
    }
    let (access_token, lifetime) = issue_token(&shared);
    shared.recorder.update(|s| s.last_token_form = shown);
    json_response(
        200,
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token}),
        None,
    )
}

/// A new token valid for the configured lifetime, and that lifetime.
fn issue_token(shared: &Shared) -> (String, u64) {
    let lifetime = lock(&shared.options).token_lifetime;
    let access_token = format!("eyJ0eXAiOiJKV1QifQ.fake.{}", uuid_like());
    lock(&shared.tokens).insert(
        access_token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    shared.recorder.update(|s| s.tokens_issued += 1);
    (access_token, lifetime)
}

/// Entra's answer to a scope other than the documented one.
fn scope_refusal(scope: &str) -> Option<(u16, &'static str, u32, String)> {
    (scope != SCOPE).then(|| {
        (
            400,
            "invalid_scope",
            70011,
            format!("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid: {scope}"),
        )
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Managed identity checks shared by IMDS and App Service: the api-version, the resource and
/// the identity.
fn identity_refusal(query: &HashMap<String, String>, api_version: &str) -> Option<Response> {
    let field = |key: &str| query.get(key).map(String::as_str).unwrap_or("");
    let bad = |status: u16, error: &str, description: String| {
        Some(json_response(
            status,
            json!({"error": error, "error_description": description}),
            None,
        ))
    };
    if field("api-version") != api_version {
        return bad(
            400,
            "invalid_request",
            format!(
                "Required query variable 'api-version' is missing or not supported: {:?}",
                field("api-version")
            ),
        );
    }
    if field("resource") != RESOURCE {
        return bad(
            400,
            "invalid_resource",
            format!(
                "AADSTS500011: The resource principal named {} was not found in the tenant",
                field("resource")
            ),
        );
    }
    if let Some(id) = query.get("client_id")
        && id != USER_ASSIGNED_CLIENT_ID
    {
        return bad(400, "invalid_request", "Identity not found".to_string());
    }
    None
}

async fn imds_token(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = parse_form(query.unwrap_or_default().as_bytes());
    shared.recorder.update(|s| {
        s.identity_requests.push((
            "/metadata/identity/oauth2/token".into(),
            query.clone(),
            headers.clone(),
        ))
    });
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return json_response(
            400,
            json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
            None,
        );
    }
    if let Some(refusal) = identity_refusal(&query, "2018-02-01") {
        return refusal;
    }
    let (token, lifetime) = issue_token(&shared);
    let now = unix_now();
    json_response(
        200,
        json!({"access_token": token, "refresh_token": "", "expires_in": lifetime.to_string(), "expires_on": (now + lifetime).to_string(), "not_before": now.to_string(), "resource": RESOURCE, "token_type": "Bearer"}),
        None,
    )
}

async fn app_service_token(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = parse_form(query.unwrap_or_default().as_bytes());
    shared.recorder.update(|s| {
        s.identity_requests
            .push(("/msi/token".into(), query.clone(), headers.clone()))
    });
    if headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        != Some(IDENTITY_HEADER)
    {
        return json_response(
            401,
            json!({"statusCode": 401, "message": "Unauthorized request: X-IDENTITY-HEADER is missing or wrong"}),
            None,
        );
    }
    if let Some(refusal) = identity_refusal(&query, "2019-08-01") {
        return refusal;
    }
    let (token, lifetime) = issue_token(&shared);
    json_response(
        200,
        json!({"access_token": token, "expires_on": (unix_now() + lifetime).to_string(), "resource": RESOURCE, "token_type": "Bearer", "client_id": query.get("client_id").cloned().unwrap_or_else(|| "system-assigned".into())}),
        None,
    )
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}{n:08x}")
}

fn ingestion_error(status: u16, code: &str, message: &str, retry_after: Option<u64>) -> Response {
    json_response(
        status,
        json!({"error": {"code": code, "message": message}}),
        retry_after,
    )
}

async fn upload(
    State(shared): State<Arc<Shared>>,
    Path((dcr, stream)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, status, body_bytes, records) =
        judge_upload(&shared, &dcr, &stream, query.as_deref(), &headers, &body);
    let columns = lock(&shared.streams)
        .get(&stream)
        .cloned()
        .unwrap_or_default();
    let uri = format!(
        "/dataCollectionRules/{dcr}/streams/{stream}?{}",
        query.unwrap_or_default()
    );
    shared.recorder.update(|s| {
        let count = records.as_ref().map_or(0, Vec::len);
        if let Some(records) = records {
            for record in records {
                let (record, dropped) = take_declared(&stream, &columns, record);
                s.dropped.extend(dropped);
                let id = record_id(&record).map(str::to_string);
                s.records.add(id.as_deref(), log_analytics_time(record));
                s.record_streams.push(stream.clone());
            }
        }
        s.uploads.push(SeenUpload {
            uri,
            headers: headers.clone(),
            wire_bytes: body.len(),
            body_bytes,
            records: count,
            status,
        });
    });
    response
}

/// What Log Analytics stores for `TimeGenerated`: "If the value is more than 2 days old or
/// more than 1 day in the future, it is replaced with the ingestion time"
/// (learn.microsoft.com/azure/azure-monitor/logs/log-standard-columns#timegenerated, and the
/// Logs Ingestion API overview). The original value is kept under `_OriginalTimeGenerated` for
/// tests to see what was sent.
fn log_analytics_time(mut record: Value) -> Value {
    let now = unix_now() as i64;
    let sent = record
        .get("TimeGenerated")
        .and_then(Value::as_str)
        .and_then(unix_seconds);
    if let Some(sent) = sent
        && (sent < now - 2 * 86_400 || sent > now + 86_400)
        && let Some(object) = record.as_object_mut()
    {
        let original = object.insert(
            "TimeGenerated".into(),
            Value::String(super::cloudwatch::iso8601(std::time::SystemTime::now())),
        );
        if let Some(original) = original {
            object.insert("_OriginalTimeGenerated".into(), original);
        }
    }
    record
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS…Z`.
fn unix_seconds(text: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// (reply, status, decoded bytes, accepted records).
fn judge_upload(
    shared: &Shared,
    dcr: &str,
    stream: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, u16, usize, Option<Vec<Value>>) {
    let fail = |status: u16, code: &str, message: &str| {
        (
            ingestion_error(status, code, message, None),
            status,
            0,
            None,
        )
    };
    let api_version = query
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("api-version="));
    if !matches!(api_version, Some("2023-01-01") | Some("2021-11-01-preview")) {
        return fail(
            400,
            "InvalidApiVersion",
            "The api-version query parameter is missing or not supported. Supported versions: 2021-11-01-preview, 2023-01-01.",
        );
    }
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(bearer) = bearer else {
        return fail(
            401,
            "InvalidToken",
            "Authorization header is missing or does not carry a bearer token.",
        );
    };
    match lock(&shared.tokens).get(bearer) {
        None => {
            return fail(
                401,
                "InvalidToken",
                "The provided access token is invalid or has been revoked.",
            );
        }
        Some(expiry) if Instant::now() >= *expiry => {
            return fail(
                401,
                "InvalidToken",
                "The provided access token has expired.",
            );
        }
        Some(_) => {}
    }
    if dcr != DCR_ID {
        return fail(
            404,
            "NotFound",
            &format!("Data collection rule with immutable Id '{dcr}' not found."),
        );
    }
    if !lock(&shared.streams).contains_key(stream) {
        return fail(
            404,
            "InvalidStream",
            &format!(
                "Data collection rule with immutable Id '{dcr}' does not have a stream named '{stream}'."
            ),
        );
    }
    if *lock(&shared.forbidden) {
        return fail(
            403,
            "OperationFailed",
            &format!(
                "The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '{dcr}'."
            ),
        );
    }
    if let Some(scripted) = lock(&shared.script).pop_front() {
        let code = match scripted.status {
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            500 => "InternalServerError",
            _ => "Scripted",
        };
        return (
            ingestion_error(
                scripted.status,
                code,
                "scripted reply",
                scripted.retry_after,
            ),
            scripted.status,
            0,
            None,
        );
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return fail(
            415,
            "UnsupportedMediaType",
            "Content-Type must be application/json.",
        );
    }
    let decoded = match decode_body(headers, body) {
        Ok(decoded) => decoded,
        Err(e) => return fail(400, "InvalidContentEncoding", &e),
    };
    let max = lock(&shared.options).max_body;
    if decoded.len() > max {
        return (
            ingestion_error(
                413,
                "ContentLengthLimitExceeded",
                &format!(
                    "Maximum allowed content length: {max} bytes. Provided content length: {} bytes.",
                    decoded.len()
                ),
                None,
            ),
            413,
            decoded.len(),
            None,
        );
    }
    let records = match serde_json::from_slice::<Value>(&decoded) {
        Ok(Value::Array(records)) if records.iter().all(Value::is_object) => records,
        Ok(_) => {
            return fail(
                400,
                "InvalidPayload",
                "The payload must be a JSON array of objects.",
            );
        }
        Err(e) => {
            return fail(
                400,
                "InvalidPayload",
                &format!("The payload is not valid JSON: {e}"),
            );
        }
    };
    let len = decoded.len();
    (
        StatusCode::NO_CONTENT.into_response(),
        204,
        len,
        Some(records),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_analytics_replaces_old_time_generated() {
        assert_eq!(unix_seconds("1970-01-02T00:00:01.5Z"), Some(86_401));
        assert_eq!(unix_seconds("2000-03-01T00:00:00Z"), Some(951_868_800));
        let old = log_analytics_time(
            json!({"TimeGenerated": "2020-01-01T00:00:00Z", "EventTime": "2020-01-01T00:00:00Z"}),
        );
        assert_ne!(old["TimeGenerated"], "2020-01-01T00:00:00Z");
        assert_eq!(old["_OriginalTimeGenerated"], "2020-01-01T00:00:00Z");
        assert_eq!(old["EventTime"], "2020-01-01T00:00:00Z");
        let now = super::super::cloudwatch::iso8601(std::time::SystemTime::now());
        let fresh = log_analytics_time(json!({"TimeGenerated": now}));
        assert_eq!(fresh["TimeGenerated"], now);
    }

    #[test]
    fn form_decoding_handles_escapes() {
        let form = parse_form(b"scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default&a=b+c&e=");
        assert_eq!(form["scope"], SCOPE);
        assert_eq!(form["a"], "b c");
        assert_eq!(form["e"], "");
    }

    #[test]
    fn tokens_gate_uploads_and_errors_have_the_service_shapes() {
        let azure = FakeAzure::start();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let token_url = format!("{}/{TENANT_ID}/oauth2/v2.0/token", azure.url());
            let bad = client
                .post(&token_url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", CLIENT_ID),
                    ("client_secret", "wrong"),
                    ("scope", SCOPE),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(bad.status().as_u16(), 401);
            let body: Value = bad.json().await.unwrap();
            assert_eq!(body["error"], "invalid_client");
            let good: Value = client
                .post(&token_url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", CLIENT_ID),
                    ("client_secret", CLIENT_SECRET),
                    ("scope", SCOPE),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let token = good["access_token"].as_str().unwrap();
            let url = format!(
                "{}/dataCollectionRules/{DCR_ID}/streams/{STREAM}?api-version=2023-01-01",
                azure.url()
            );
            let post = |auth: Option<String>, body: &'static str| {
                let mut request = client.post(&url).header("content-type", "application/json");
                if let Some(auth) = auth {
                    request = request.header("authorization", auth);
                }
                request.body(body).send()
            };
            assert_eq!(post(None, "[]").await.unwrap().status().as_u16(), 401);
            let ok = post(Some(format!("Bearer {token}")), r#"[{"EventId":"a"}]"#)
                .await
                .unwrap();
            assert_eq!(ok.status().as_u16(), 204);
            let malformed = post(Some(format!("Bearer {token}")), r#"{"EventId":"a"}"#)
                .await
                .unwrap();
            assert_eq!(malformed.status().as_u16(), 400);
            let error: Value = malformed.json().await.unwrap();
            assert_eq!(error["error"]["code"], "InvalidPayload");
            azure.set_forbidden(true);
            let forbidden = post(Some(format!("Bearer {token}")), "[]").await.unwrap();
            assert_eq!(forbidden.status().as_u16(), 403);
        });
        assert_eq!(azure.distinct_events(), 1);
        azure.read(|s| {
            assert_eq!(s.token_errors, ["invalid_client"]);
            assert_eq!(s.last_token_form["client_secret"], "***");
        });
    }
}
