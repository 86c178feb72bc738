//! A fake AWS CloudWatch Logs endpoint that speaks the real AWS JSON 1.1 protocol, and a helper
//! that runs the real `moto` emulator.
//!
//! The fake answers `POST /` by `X-Amz-Target` (`Logs_20140328.PutLogEvents`, `CreateLogGroup`,
//! `CreateLogStream`; others → `UnknownOperationException`). It verifies SigV4 (service `logs`)
//! against configured access keys and secrets (missing → `MissingAuthenticationTokenException`,
//! unknown key or session token → `UnrecognizedClientException`, wrong signature →
//! `InvalidSignatureException`; keys marked expired → `ExpiredTokenException`), requires
//! `Content-Type: application/x-amz-json-1.1`, keeps groups and streams
//! (`ResourceNotFoundException` when missing, `ResourceAlreadyExistsException` on re-create),
//! and checks the batch rules like AWS (chronological order, 24 h span, ≤ 10,000 events,
//! Σ(message bytes + 26) ≤ 1,048,576 → `InvalidParameterException`). Events older than 14 days,
//! older than the group's retention, or more than 2 h ahead are rejected one by one through
//! `rejectedLogEventsInfo` as AWS documents it
//! (docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_RejectedLogEventsInfo.html):
//! `tooOldLogEventEndIndex` "The index of the last log event that is too old. This field is
//! exclusive." (so it is the count of too-old events at the start of the sorted batch),
//! `expiredLogEventEndIndex` likewise an end index, exclusive, and `tooNewLogEventStartIndex`
//! "This field is inclusive". moto (5.x) reports the too-old end index inclusive; this fake
//! does not copy that. Accepted events are recorded by the `event_id` inside their
//! message. Errors are `{"__type":"<Code>","message":".."}` with the AWS status codes.
//!
//! Controls: scripted errors for the next `PutLogEvents` calls (throttling, service unavailable,
//! access denied…), expired keys, a group's retention, operations the caller's IAM policy does
//! not allow (`AccessDeniedException` "… is not authorized to perform: logs:<Operation> …", as
//! IAM answers), and going down via [`FakeCloudWatch::server`].

use super::http_sink::{EventLog, FakeServer, Recorder, event_id_of, reply_with};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The access key the fake accepts unless told otherwise.
pub const ACCESS_KEY: &str = "AKIDSIEMRELAYTEST1";
/// Its secret.
pub const SECRET_KEY: &str = "siemrelay/test/secret/key/0123456789abcd";
/// The region the fake expects in the signature scope.
pub const REGION: &str = "eu-west-1";

/// Most events per request.
const MAX_EVENTS: usize = 10_000;
/// Most bytes per request, Σ(message + 26).
const MAX_BYTES: usize = 1_048_576;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// One accepted access key.
#[derive(Clone, Debug)]
pub struct AccessKey {
    /// Access key id.
    pub id: String,
    /// Secret access key.
    pub secret: String,
    /// Session token the requests must carry (temporary credentials).
    pub session_token: Option<String>,
}

/// A scripted error for one upcoming `PutLogEvents` call (before any other check).
#[derive(Clone, Debug)]
pub struct ScriptedError {
    /// HTTP status.
    pub status: u16,
    /// `__type`.
    pub code: String,
    /// `message`.
    pub message: String,
}

impl ScriptedError {
    /// `ThrottlingException` (400, "Rate exceeded").
    pub fn throttling() -> ScriptedError {
        ScriptedError {
            status: 400,
            code: "ThrottlingException".into(),
            message: "Rate exceeded".into(),
        }
    }

    /// `ServiceUnavailableException` (500).
    pub fn unavailable() -> ScriptedError {
        ScriptedError {
            status: 500,
            code: "ServiceUnavailableException".into(),
            message: "The service cannot complete the request.".into(),
        }
    }

    /// `AccessDeniedException` (400).
    pub fn access_denied() -> ScriptedError {
        ScriptedError {
            status: 400,
            code: "AccessDeniedException".into(),
            message: "User: arn:aws:iam::123456789012:user/siemrelay is not authorized to perform: logs:PutLogEvents".into(),
        }
    }
}

/// One call the fake saw.
#[derive(Clone, Debug)]
pub struct SeenCall {
    /// The operation (`PutLogEvents`).
    pub operation: String,
    /// The access key that signed it ("" when unsigned).
    pub access_key: String,
    /// The status answered.
    pub status: u16,
    /// The `__type` answered ("" on success).
    pub error: String,
    /// Events in the body (PutLogEvents).
    pub events: usize,
    /// Σ(message bytes + 26) of the body (PutLogEvents).
    pub batch_bytes: usize,
    /// Last minus first timestamp (PutLogEvents).
    pub span_ms: i64,
    /// The stream (PutLogEvents, CreateLogStream).
    pub stream: String,
}

/// What the fake recorded.
#[derive(Debug, Default)]
pub struct CloudWatchState {
    /// Accepted events (the parsed message), counted by `event_id`.
    pub events: EventLog,
    /// Stream of each accepted event id.
    pub stream_of: BTreeMap<String, String>,
    /// Every call, in arrival order.
    pub calls: Vec<SeenCall>,
    /// Existing groups.
    pub groups: BTreeSet<String>,
    /// Existing streams as (group, stream).
    pub streams: BTreeSet<(String, String)>,
    /// Event ids rejected through `rejectedLogEventsInfo`.
    pub rejected: Vec<String>,
}

impl CloudWatchState {
    /// Calls of `operation` answered with `error` ("" = success).
    pub fn calls_with(&self, operation: &str, error: &str) -> usize {
        self.calls
            .iter()
            .filter(|c| c.operation == operation && c.error == error)
            .count()
    }
}

struct Shared {
    keys: Mutex<Vec<AccessKey>>,
    expired: Mutex<HashSet<String>>,
    script: Mutex<VecDeque<ScriptedError>>,
    /// Operations the caller is not allowed (`CreateLogGroup`).
    denied: Mutex<HashSet<String>>,
    /// Retention in days per group.
    retention: Mutex<std::collections::HashMap<String, i64>>,
    /// When keys issued by [`FakeSts`] expire.
    key_expiry: Mutex<std::collections::HashMap<String, std::time::SystemTime>>,
    recorder: Recorder<CloudWatchState>,
}

/// A running fake CloudWatch Logs endpoint.
pub struct FakeCloudWatch {
    server: FakeServer,
    shared: Arc<Shared>,
}

fake_accessors!(FakeCloudWatch, CloudWatchState, |s| &s.events.counts);

impl FakeCloudWatch {
    /// Starts an endpoint accepting [`ACCESS_KEY`] / [`SECRET_KEY`].
    pub fn start() -> FakeCloudWatch {
        FakeCloudWatch::start_with(vec![AccessKey {
            id: ACCESS_KEY.into(),
            secret: SECRET_KEY.into(),
            session_token: None,
        }])
    }

    /// Starts an endpoint accepting these keys.
    pub fn start_with(keys: Vec<AccessKey>) -> FakeCloudWatch {
        let shared = Arc::new(Shared {
            keys: Mutex::new(keys),
            expired: Mutex::new(HashSet::new()),
            script: Mutex::new(VecDeque::new()),
            denied: Mutex::new(HashSet::new()),
            retention: Mutex::new(std::collections::HashMap::new()),
            key_expiry: Mutex::new(std::collections::HashMap::new()),
            recorder: Recorder::new(CloudWatchState::default()),
        });
        let router = Router::new()
            .route("/", post(handle))
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        FakeCloudWatch {
            server: FakeServer::start(router),
            shared,
        }
    }

    /// Accepts another key.
    pub fn add_key(&self, key: AccessKey) {
        lock(&self.shared.keys).push(key);
    }

    /// From now on, requests signed with `access_key` get `ExpiredTokenException`.
    pub fn expire_key(&self, access_key: &str) {
        lock(&self.shared.expired).insert(access_key.to_string());
    }

    /// Errors for the next `PutLogEvents` calls, in order.
    pub fn script(&self, errors: impl IntoIterator<Item = ScriptedError>) {
        lock(&self.shared.script).extend(errors);
    }

    /// From now on `operation` (`CreateLogGroup`) is refused with `AccessDeniedException`, as
    /// IAM refuses an action no policy allows.
    pub fn deny(&self, operation: &str) {
        lock(&self.shared.denied).insert(operation.to_string());
    }

    /// Sets a group's retention (`PutRetentionPolicy`): older events are rejected as expired.
    pub fn set_retention(&self, group: &str, days: i64) {
        lock(&self.shared.retention).insert(group.to_string(), days);
    }

    /// Creates a group (and optionally a stream) up front.
    pub fn create(&self, group: &str, stream: Option<&str>) {
        self.shared.recorder.update(|s| {
            s.groups.insert(group.to_string());
            if let Some(stream) = stream {
                s.streams.insert((group.to_string(), stream.to_string()));
            }
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// An AWS error: status, `__type`, message.
struct AwsError(u16, String, String);

impl AwsError {
    fn bad(code: &str, message: impl Into<String>) -> AwsError {
        AwsError(400, code.to_string(), message.into())
    }
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("Logs_20140328."))
        .unwrap_or("")
        .to_string();
    let mut call = SeenCall {
        operation: operation.clone(),
        access_key: String::new(),
        status: 200,
        error: String::new(),
        events: 0,
        batch_bytes: 0,
        span_ms: 0,
        stream: String::new(),
    };
    let result = serve(&shared, &operation, &headers, &body, &mut call);
    let (status, reply) = match result {
        Ok(reply) => (200, reply),
        Err(AwsError(status, code, message)) => {
            call.error = code.clone();
            (status, json!({"__type": code, "message": message}))
        }
    };
    call.status = status;
    shared.recorder.update(|s| s.calls.push(call));
    let mut response = reply_with(
        status,
        "application/x-amz-json-1.1",
        reply.to_string(),
        None,
    );
    response.headers_mut().insert(
        "x-amzn-requestid",
        HeaderValue::from_static("00000000-0000-4000-8000-000000000000"),
    );
    response
}

fn serve(
    shared: &Shared,
    operation: &str,
    headers: &HeaderMap,
    body: &[u8],
    call: &mut SeenCall,
) -> Result<Value, AwsError> {
    call.access_key = verify_signature(shared, headers, body)?;
    let past_expiry = lock(&shared.key_expiry)
        .get(&call.access_key)
        .is_some_and(|at| std::time::SystemTime::now() >= *at);
    if past_expiry || lock(&shared.expired).contains(&call.access_key) {
        return Err(AwsError::bad(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ));
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/x-amz-json-1.1" {
        return Err(AwsError::bad(
            "SerializationException",
            format!("unexpected Content-Type {content_type:?}"),
        ));
    }
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| AwsError::bad("SerializationException", format!("malformed JSON: {e}")))?;
    let text = |key: &str| request.get(key).and_then(Value::as_str).map(str::to_string);
    let group = text("logGroupName").ok_or_else(|| {
        AwsError::bad(
            "InvalidParameterException",
            "1 validation error detected: Value null at 'logGroupName' failed to satisfy constraint: Member must not be null",
        )
    })?;
    if lock(&shared.denied).contains(operation) {
        return Err(AwsError::bad(
            "AccessDeniedException",
            format!(
                "User: arn:aws:sts::123456789012:assumed-role/siemrelay/siemrelay is not authorized to perform: logs:{operation} on resource: arn:aws:logs:{REGION}:123456789012:log-group:{group}:log-stream: because no identity-based policy allows the logs:{operation} action"
            ),
        ));
    }
    match operation {
        "CreateLogGroup" => shared.recorder.update(|s| {
            if s.groups.insert(group.clone()) {
                Ok(json!({}))
            } else {
                Err(AwsError::bad(
                    "ResourceAlreadyExistsException",
                    "The specified log group already exists",
                ))
            }
        }),
        "CreateLogStream" => {
            let stream = text("logStreamName").unwrap_or_default();
            call.stream = stream.clone();
            shared.recorder.update(|s| {
                if !s.groups.contains(&group) {
                    return Err(AwsError::bad(
                        "ResourceNotFoundException",
                        "The specified log group does not exist.",
                    ));
                }
                if s.streams.insert((group.clone(), stream)) {
                    Ok(json!({}))
                } else {
                    Err(AwsError::bad(
                        "ResourceAlreadyExistsException",
                        "The specified log stream already exists",
                    ))
                }
            })
        }
        "PutLogEvents" => {
            if let Some(error) = lock(&shared.script).pop_front() {
                return Err(AwsError(error.status, error.code, error.message));
            }
            put_log_events(shared, &group, &request, call)
        }
        other => Err(AwsError::bad(
            "UnknownOperationException",
            format!("unknown operation {other:?}"),
        )),
    }
}

fn put_log_events(
    shared: &Shared,
    group: &str,
    request: &Value,
    call: &mut SeenCall,
) -> Result<Value, AwsError> {
    let stream = request
        .get("logStreamName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    call.stream = stream.clone();
    let events = request
        .get("logEvents")
        .and_then(Value::as_array)
        .ok_or_else(|| AwsError::bad("InvalidParameterException", "logEvents is required"))?;
    let mut parsed = Vec::with_capacity(events.len());
    for event in events {
        let timestamp = event.get("timestamp").and_then(Value::as_i64);
        let message = event.get("message").and_then(Value::as_str);
        let (Some(timestamp), Some(message)) = (timestamp, message) else {
            return Err(AwsError::bad(
                "InvalidParameterException",
                "each log event needs a numeric timestamp and a string message",
            ));
        };
        parsed.push((timestamp, message));
    }
    call.events = parsed.len();
    call.batch_bytes = parsed.iter().map(|(_, m)| m.len() + 26).sum();
    call.span_ms = match (parsed.first(), parsed.last()) {
        (Some(first), Some(last)) => last.0 - first.0,
        _ => 0,
    };
    if parsed.is_empty() || parsed.len() > MAX_EVENTS {
        return Err(AwsError::bad(
            "InvalidParameterException",
            format!(
                "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length between 1 and 10000 (got {})",
                parsed.len()
            ),
        ));
    }
    if call.batch_bytes > MAX_BYTES {
        return Err(AwsError::bad(
            "InvalidParameterException",
            format!(
                "Upload too large: {} bytes exceeds limit of {MAX_BYTES}",
                call.batch_bytes
            ),
        ));
    }
    if parsed.windows(2).any(|w| w[1].0 < w[0].0) {
        return Err(AwsError::bad(
            "InvalidParameterException",
            "Log events in a single PutLogEvents request must be in chronological order.",
        ));
    }
    if call.span_ms >= DAY_MS {
        return Err(AwsError::bad(
            "InvalidParameterException",
            "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
        ));
    }
    let now = now_millis();
    shared.recorder.update(|s| {
        if !s.groups.contains(group) {
            return Err(AwsError::bad(
                "ResourceNotFoundException",
                "The specified log group does not exist.",
            ));
        }
        if !s.streams.contains(&(group.to_string(), stream.clone())) {
            return Err(AwsError::bad(
                "ResourceNotFoundException",
                "The specified log stream does not exist.",
            ));
        }
        let mut info = serde_json::Map::new();
        let retention = lock(&shared.retention).get(group).copied();
        for (index, (timestamp, message)) in parsed.iter().enumerate() {
            let item: Value = serde_json::from_str(message).unwrap_or(Value::Null);
            let id = event_id_of(&item).map(str::to_string);
            if *timestamp < now - 14 * DAY_MS {
                // Exclusive end index: one past the last too-old event.
                info.insert("tooOldLogEventEndIndex".into(), (index + 1).into());
                s.rejected.extend(id);
            } else if retention.is_some_and(|days| *timestamp < now - days * DAY_MS) {
                info.insert("expiredLogEventEndIndex".into(), (index + 1).into());
                s.rejected.extend(id);
            } else if *timestamp > now + 2 * 3600 * 1000 {
                info.entry("tooNewLogEventStartIndex")
                    .or_insert_with(|| index.into());
                s.rejected.extend(id);
            } else {
                if let Some(id) = &id {
                    s.stream_of.insert(id.clone(), stream.clone());
                }
                s.events.add(id.as_deref(), item);
            }
        }
        let mut reply = json!({"nextSequenceToken": "49039859613988925532818920396532432525925768596312227634"});
        if !info.is_empty() {
            reply["rejectedLogEventsInfo"] = Value::Object(info);
        }
        Ok(reply)
    })
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Checks the SigV4 `Authorization` header; returns the access key.
fn verify_signature(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<String, AwsError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization") else {
        return Err(AwsError::bad(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let incomplete = || {
        AwsError::bad(
            "IncompleteSignatureException",
            format!(
                "Authorization header requires Credential, SignedHeaders and Signature: {auth}"
            ),
        )
    };
    let fields = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(incomplete)?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in fields.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(incomplete());
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = scope[..] else {
        return Err(incomplete());
    };
    let key = lock(&shared.keys)
        .iter()
        .find(|k| k.id == access_key)
        .cloned()
        .ok_or_else(|| {
            AwsError::bad(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        })?;
    if key.session_token.as_deref() != header("x-amz-security-token") {
        return Err(AwsError::bad(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    if region != REGION || service != "logs" {
        return Err(AwsError::bad(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region and service: {region}/{service}"
            ),
        ));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    for required in ["host", "x-amz-date", "x-amz-target"] {
        if !names.contains(&required) {
            return Err(AwsError::bad(
                "InvalidSignatureException",
                format!("'{required}' must be a signed header"),
            ));
        }
    }
    let amz_date = header("x-amz-date").unwrap_or("");
    let mut canonical = String::from("POST\n/\n\n");
    for name in &names {
        let value = header(name).unwrap_or("");
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&value.split_whitespace().collect::<Vec<_>>().join(" "));
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(signed_headers);
    canonical.push('\n');
    canonical.push_str(&hex::encode(Sha256::digest(body)));
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut signing_key = format!("AWS4{}", key.secret).into_bytes();
    for part in [date, region, service, "aws4_request"] {
        signing_key = hmac(&signing_key, part.as_bytes());
    }
    let expected = hex::encode(hmac(&signing_key, string_to_sign.as_bytes()));
    if expected != signature {
        return Err(AwsError::bad(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(access_key.to_string())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

// ---------------------------------------------------------------------------------------------
// moto: the real AWS emulator
// ---------------------------------------------------------------------------------------------

/// A `moto` server (`python -m moto.server`) on a free port of 127.0.0.1, killed on drop.
pub struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    /// Starts moto and waits until it listens. Panics with setup instructions when moto is
    /// missing.
    pub fn start() -> Moto {
        let python = crate::python();
        let check = std::process::Command::new(&python)
            .args(["-c", "import moto.server, boto3"])
            .output();
        match check {
            Ok(out) if out.status.success() => {}
            other => panic!(
                "moto is not installed for {} ({other:?}): run `bash scripts/setup-test-env.sh` (installs tests/python/requirements.txt into target/py-venv) or set SIEMRELAY_PYTHON",
                python.display()
            ),
        }
        let port = crate::free_port();
        let child = std::process::Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto");
        let moto = Moto { child, port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(
            crate::wait_for_port(addr, Duration::from_secs(30)),
            "moto did not listen on {addr}"
        );
        moto
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every event in `group` as `(stream, timestamp ms, message)`, read with boto3
    /// FilterLogEvents (all pages); none while the group does not exist yet.
    pub fn read_events(&self, group: &str) -> Vec<(String, i64, String)> {
        const SCRIPT: &str = r#"
import json, sys, boto3
logs = boto3.client("logs", endpoint_url=sys.argv[1], region_name=sys.argv[3],
                    aws_access_key_id="testing", aws_secret_access_key="testing")
kwargs = {"logGroupName": sys.argv[2]}
while True:
    try:
        page = logs.filter_log_events(**kwargs)
    except logs.exceptions.ResourceNotFoundException:
        break  # the exporter has not created the group yet: no events so far
    for e in page["events"]:
        print(json.dumps([e["logStreamName"], e["timestamp"], e["message"]]))
    token = page.get("nextToken")
    if not token:
        break
    kwargs["nextToken"] = token
"#;
        let out = std::process::Command::new(crate::python())
            .args(["-c", SCRIPT, &self.url(), group, REGION])
            .output()
            .expect("run the boto3 reader");
        assert!(
            out.status.success(),
            "boto3 FilterLogEvents failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("reader line"))
            .collect()
    }

    /// The log streams of `group`, read with boto3 DescribeLogStreams.
    pub fn streams(&self, group: &str) -> Vec<String> {
        const SCRIPT: &str = r#"
import json, sys, boto3
logs = boto3.client("logs", endpoint_url=sys.argv[1], region_name=sys.argv[3],
                    aws_access_key_id="testing", aws_secret_access_key="testing")
names = []
for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=sys.argv[2]):
    names += [s["logStreamName"] for s in page["logStreams"]]
print(json.dumps(names))
"#;
        let out = std::process::Command::new(crate::python())
            .args(["-c", SCRIPT, &self.url(), group, REGION])
            .output()
            .expect("run the boto3 reader");
        assert!(
            out.status.success(),
            "boto3 DescribeLogStreams failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("stream names")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_and_unknown_key_requests_get_aws_errors() {
        let fake = FakeCloudWatch::start();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (unsigned, forged) = runtime.block_on(async {
            let client = reqwest::Client::new();
            let post = |auth: Option<&str>| {
                let mut request = client
                    .post(fake.url())
                    .header("content-type", "application/x-amz-json-1.1")
                    .header("x-amz-target", "Logs_20140328.CreateLogGroup");
                if let Some(auth) = auth {
                    request = request.header("authorization", auth);
                }
                request.body(r#"{"logGroupName":"g"}"#).send()
            };
            let unsigned = post(None).await.unwrap();
            let forged = post(Some("AWS4-HMAC-SHA256 Credential=AKIDNOPE/20240101/eu-west-1/logs/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=00"))
                .await
                .unwrap();
            (
                (unsigned.status().as_u16(), unsigned.text().await.unwrap()),
                (forged.status().as_u16(), forged.text().await.unwrap()),
            )
        });
        assert_eq!(unsigned.0, 400);
        assert!(unsigned.1.contains("MissingAuthenticationTokenException"));
        assert_eq!(forged.0, 400);
        assert!(forged.1.contains("UnrecognizedClientException"));
        assert!(fake.read(|s| s.groups.is_empty()));
    }
}

// ---------------------------------------------------------------------------------------------
// STS: AssumeRole and AssumeRoleWithWebIdentity, as AWS documents them
// ---------------------------------------------------------------------------------------------

/// One call the fake STS answered.
#[derive(Clone, Debug)]
pub struct StsCall {
    /// `AssumeRole` or `AssumeRoleWithWebIdentity`.
    pub action: String,
    /// The form parameters (`RoleArn`, `RoleSessionName`, `ExternalId`, `WebIdentityToken`…).
    pub params: BTreeMap<String, String>,
    /// The access key in the SigV4 `Authorization` header (service `sts`), "" when unsigned.
    pub signed_by: String,
    /// The access key issued ("" when refused).
    pub issued: String,
    /// The status answered.
    pub status: u16,
}

struct StsShared {
    /// Keys allowed to call `AssumeRole`.
    callers: Vec<String>,
    /// The web identity token `AssumeRoleWithWebIdentity` accepts.
    web_identity_token: String,
    /// Life of issued credentials.
    life: Duration,
    calls: Mutex<Vec<StsCall>>,
    /// The CloudWatch fake that learns the issued keys (valid until their expiry).
    logs: Arc<Shared>,
}

/// A fake AWS STS (`POST /`, AWS Query protocol: form-encoded `Action=…&Version=2011-06-15`),
/// answering like the STS API reference's AssumeRole and AssumeRoleWithWebIdentity pages
/// (docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html,
/// …/API_AssumeRoleWithWebIdentity.html): an `<AssumeRoleResponse>` /
/// `<AssumeRoleWithWebIdentityResponse>` XML document with `AssumedRoleUser` and `Credentials`
/// (`AccessKeyId`, `SecretAccessKey`, `SessionToken`, `Expiration` in ISO 8601 UTC), and
/// `<ErrorResponse><Error><Type>Sender</Type><Code>…` errors: `AccessDenied` (403) for an
/// `AssumeRole` not signed by an allowed key, `InvalidIdentityToken` (400) for a wrong token,
/// `ValidationError` (400) for a missing `RoleArn`/`RoleSessionName`. Issued keys are added to
/// the CloudWatch Logs fake and answer `ExpiredTokenException` there after their `Expiration`.
/// The one liberty: credentials live `life` (seconds) rather than STS's 15-minute minimum, so a
/// test sees a refresh.
pub struct FakeSts {
    server: FakeServer,
    shared: Arc<StsShared>,
}

impl FakeSts {
    /// Starts STS issuing keys valid for `life` to `logs`; `AssumeRole` must be signed by one of
    /// `callers`, `AssumeRoleWithWebIdentity` must carry `web_identity_token`.
    pub fn start(
        logs: &FakeCloudWatch,
        callers: &[&str],
        web_identity_token: &str,
        life: Duration,
    ) -> FakeSts {
        let shared = Arc::new(StsShared {
            callers: callers.iter().map(|c| c.to_string()).collect(),
            web_identity_token: web_identity_token.to_string(),
            life,
            calls: Mutex::new(Vec::new()),
            logs: logs.shared.clone(),
        });
        let router = Router::new()
            .route("/", post(sts_handle))
            .with_state(shared.clone());
        FakeSts {
            server: FakeServer::start(router),
            shared,
        }
    }

    /// Base URL (`AWS_ENDPOINT_URL_STS`).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<StsCall> {
        lock(&self.shared.calls).clone()
    }
}

async fn sts_handle(
    State(shared): State<Arc<StsShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: BTreeMap<String, String> = String::from_utf8_lossy(&body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (form_decode(k), form_decode(v)))
        .collect();
    let signed_by = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|credential| {
            let scope: Vec<&str> = credential.split(',').next()?.split('/').collect();
            (scope.get(3) == Some(&"sts")).then(|| scope[0].to_string())
        })
        .unwrap_or_default();
    let action = params.get("Action").cloned().unwrap_or_default();
    let mut call = StsCall {
        action: action.clone(),
        params: params.clone(),
        signed_by: signed_by.clone(),
        issued: String::new(),
        status: 200,
    };
    let result = sts_answer(&shared, &action, &params, &signed_by);
    let (status, xml) = match result {
        Ok((key, xml)) => {
            call.issued = key;
            (200, xml)
        }
        Err((status, code, message)) => (
            status,
            format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
            ),
        ),
    };
    call.status = status;
    lock(&shared.calls).push(call);
    reply_with(status, "text/xml", xml, None)
}

type StsError = (u16, &'static str, String);

fn sts_answer(
    shared: &StsShared,
    action: &str,
    params: &BTreeMap<String, String>,
    signed_by: &str,
) -> Result<(String, String), StsError> {
    let (Some(role), Some(session)) = (params.get("RoleArn"), params.get("RoleSessionName")) else {
        return Err((
            400,
            "ValidationError",
            "RoleArn and RoleSessionName are required".into(),
        ));
    };
    let extra = match action {
        "AssumeRole" => {
            if !shared.callers.iter().any(|c| c == signed_by) {
                return Err((
                    403,
                    "AccessDenied",
                    format!(
                        "User: {signed_by} is not authorized to perform: sts:AssumeRole on resource: {role}"
                    ),
                ));
            }
            String::new()
        }
        "AssumeRoleWithWebIdentity" => {
            if params.get("WebIdentityToken") != Some(&shared.web_identity_token) {
                return Err((
                    400,
                    "InvalidIdentityToken",
                    "The ID Token provided is not a valid JWT.".into(),
                ));
            }
            "<SubjectFromWebIdentityToken>system:serviceaccount:security:siemrelay</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience><Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE</Provider>".to_string()
        }
        other => {
            return Err((
                400,
                "InvalidAction",
                format!("Could not find operation {other}"),
            ));
        }
    };
    let n = lock(&shared.calls).len() + 1;
    let key = AccessKey {
        id: format!("ASIASTSFAKE{n:09}"),
        secret: format!("sts/fake/secret/{n:04}/wJalrXUtnFEMI/K7MDENG"),
        session_token: Some(format!("FwoGZXIvYXdzEFAKE//session-token-{n}")),
    };
    let expires = std::time::SystemTime::now() + shared.life;
    lock(&shared.logs.keys).push(key.clone());
    lock(&shared.logs.key_expiry).insert(key.id.clone(), expires);
    let role_name = role.rsplit('/').next().unwrap_or(role);
    let xml = format!(
        "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>{extra}<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/{role_name}/{session}</Arn><AssumedRoleId>AROA3XFRBF535PLBIFPI4:{session}</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials><PackedPolicySize>6</PackedPolicySize></{action}Result><ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata></{action}Response>",
        key.id,
        key.secret,
        key.session_token.as_deref().unwrap_or_default(),
        iso8601(expires),
    );
    Ok((key.id, xml))
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX` a byte).
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && text.is_char_boundary(i + 3) => {
                match u8::from_str_radix(&text[i + 1..i + 3], 16) {
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

/// `2026-12-05T01:02:03Z`: a time as ISO 8601 UTC, to the second (STS `Expiration`).
pub fn iso8601(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
