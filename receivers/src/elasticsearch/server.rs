//! The HTTP glue: Elasticsearch's routes (`GET /`, `HEAD /`, `POST|PUT /_bulk` and
//! `/<index>/_bulk`), authentication, reading the body under the listener's limits and the
//! admission budget, and answering in Elasticsearch's shapes — after the pipeline queued (or
//! refused) the batch. Every answer carries `X-Elastic-Product: Elasticsearch`.

use super::bulk::{BulkError, BulkParser, Defaults, ItemOutcome, Planned, item_json};
use crate::body::{self, BodyError, SizeLimit};
use crate::credentials::{KeySet, basic_credentials, scheme_credential};
use crate::webhook::telemetry::Telemetry;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use siemrelay_core::admission::{ADMISSION_WAIT, MemoryBudget, OverBudget, RETRY_AFTER};
use siemrelay_core::{EventSink, Refusal, Timestamp};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The product header Elastic's official clients check on every 2xx answer.
pub const PRODUCT_HEADER: &str = "x-elastic-product";

/// The accepted credentials.
#[derive(Debug, Default)]
pub struct Credentials {
    /// `user:password` of each basic user.
    pub basic: KeySet,
    /// Encoded API keys.
    pub api_keys: KeySet,
    /// False when no `auth` is configured (anyone may send).
    pub required: bool,
}

/// What every request of one receiver shares.
pub struct Endpoint {
    /// Bulk parsing and mapping.
    pub parser: BulkParser,
    /// Who may send.
    pub credentials: Credentials,
    /// Largest body, as received and decoded.
    pub max_body: usize,
    /// The `GET /` document.
    pub info: Value,
    /// Where accepted batches go.
    pub sink: Arc<dyn EventSink>,
    /// The admission budget.
    pub budget: Arc<MemoryBudget>,
    /// Metrics and logs (the receivers' shared metric names).
    pub telemetry: Telemetry,
    /// The next `_seq_no` answered.
    pub seq_no: AtomicU64,
}

/// The `GET /` document of a cluster named after the receiver, announcing `version`.
pub fn cluster_info(receiver: &str, version: &str) -> Value {
    let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, receiver.as_bytes());
    json!({
        "name": receiver,
        "cluster_name": "siemrelay",
        "cluster_uuid": uuid.simple().to_string(),
        "version": {
            "number": version,
            "build_flavor": "default",
            "build_type": "siemrelay",
            "build_hash": env!("CARGO_PKG_VERSION"),
            "build_date": "1970-01-01T00:00:00.000Z",
            "build_snapshot": false,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    })
}

/// The receiver's router: every request goes to [`serve_request`].
pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new().fallback(serve_request).with_state(endpoint)
}

/// Why a whole request was refused.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// No credentials, or wrong ones (401 `security_exception`).
    #[error("{0}")]
    Unauthorized(String),
    /// A content type Elasticsearch does not read (406).
    #[error("Content-Type header [{0}] is not supported")]
    ContentType(String),
    /// A content encoding it does not read (400).
    #[error("unsupported Content-Encoding [{0}]; send gzip, deflate or identity")]
    Encoding(String),
    /// Over `max_body_size` (413, empty body as Elasticsearch answers it).
    #[error("the body is larger than max_body_size ({0} bytes)")]
    TooLarge(usize),
    /// Not valid gzip/deflate (400).
    #[error("{0}")]
    Undecodable(String),
    /// The body arrived too slowly (408).
    #[error("the body arrived slower than min_body_rate ({0} bytes/s)")]
    TooSlow(u64),
    /// The admission budget: 429 when others hold it, 413 when the request alone exceeds it.
    #[error("{0}")]
    Memory(OverBudget),
    /// A whole-request bulk error (400, or 413 for too many documents).
    #[error("{0}")]
    Bulk(BulkError),
}

impl Rejection {
    fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Rejection::ContentType(_) => StatusCode::NOT_ACCEPTABLE,
            Rejection::TooLarge(_) | Rejection::Bulk(BulkError::TooManyEvents { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Rejection::Memory(over) | Rejection::Bulk(BulkError::Memory(over)) => {
                if over.is_retryable() {
                    StatusCode::TOO_MANY_REQUESTS
                } else {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
            }
            Rejection::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            Rejection::Encoding(_) | Rejection::Undecodable(_) | Rejection::Bulk(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Rejection::Unauthorized(_) => "auth",
            Rejection::ContentType(_) | Rejection::Encoding(_) => "content_type",
            Rejection::TooLarge(_) => "too_large",
            Rejection::Bulk(BulkError::TooManyEvents { .. }) => "too_many_events",
            Rejection::Memory(_) | Rejection::Bulk(BulkError::Memory(_)) => "memory_limit",
            Rejection::TooSlow(_) => "too_slow",
            Rejection::Undecodable(_) | Rejection::Bulk(BulkError::Invalid { .. }) => "malformed",
        }
    }

    fn from_body(error: BodyError) -> Rejection {
        match error {
            BodyError::TooLarge { limit, .. } => Rejection::TooLarge(limit),
            BodyError::TooSlow { rate } => Rejection::TooSlow(rate),
            BodyError::Memory(over) => Rejection::Memory(over),
            BodyError::NotGzip(e) => {
                Rejection::Undecodable(format!("the body cannot be decoded: {e}"))
            }
            BodyError::Broken(message) => Rejection::Undecodable(message),
        }
    }

    /// Elasticsearch's answer to this rejection.
    fn response(&self, path: &str) -> Response {
        let status = self.status();
        let mut response = match self {
            Rejection::TooLarge(_) => status.into_response(),
            Rejection::ContentType(_) => (
                status,
                axum::Json(json!({"error": self.to_string(), "status": status.as_u16()})),
            )
                .into_response(),
            Rejection::Unauthorized(reason) => {
                let challenges = ["Basic realm=\"security\", charset=\"UTF-8\"", "ApiKey"];
                let cause = json!({"type": "security_exception", "reason": reason,
                    "header": {"WWW-Authenticate": challenges}});
                let body = json!({"error": {"root_cause": [cause.clone()], "type": "security_exception",
                    "reason": reason, "header": {"WWW-Authenticate": challenges}}, "status": 401});
                let mut response = (status, axum::Json(body)).into_response();
                for challenge in challenges {
                    response.headers_mut().append(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(challenge),
                    );
                }
                response
            }
            other => {
                let error_type = match other {
                    Rejection::Memory(_) | Rejection::Bulk(BulkError::Memory(_)) => {
                        "es_rejected_execution_exception"
                    }
                    Rejection::Bulk(BulkError::Invalid { error_type, .. }) => error_type,
                    Rejection::TooSlow(_) => "timeout_exception",
                    _ => "illegal_argument_exception",
                };
                let _ = path;
                error_body(status, error_type, &other.to_string())
            }
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER.as_secs()),
            );
        }
        response
    }
}

/// `{"error":{"root_cause":[{type,reason}],"type","reason"},"status"}`.
pub fn error_body(status: StatusCode, error_type: &str, reason: &str) -> Response {
    let cause = json!({"type": error_type, "reason": reason});
    let body = json!({"error": {"root_cause": [cause], "type": error_type, "reason": reason},
        "status": status.as_u16()});
    (status, axum::Json(body)).into_response()
}

/// Adds the product header to an answer.
fn product(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(PRODUCT_HEADER, HeaderValue::from_static("Elasticsearch"));
    response
}

/// The index of `/<index>/_bulk` (`Some(None)` for `/_bulk`), or `None` for another path.
fn bulk_index(path: &str) -> Option<Option<String>> {
    let trimmed = path.trim_end_matches('/');
    if trimmed == "/_bulk" {
        return Some(None);
    }
    let index = trimmed.strip_prefix('/')?.strip_suffix("/_bulk")?;
    if index.is_empty() || index.contains('/') {
        return None;
    }
    let decoded = percent_decode(index)?;
    Some(Some(decoded))
}

fn percent_decode(text: &str) -> Option<String> {
    let uri = format!("/?i={text}");
    let uri: axum::http::Uri = uri.parse().ok()?;
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .ok()?
        .0;
    pairs.into_iter().next().map(|(_, value)| value)
}

async fn serve_request(
    State(endpoint): State<Arc<Endpoint>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    product(route(&endpoint, peer, request).await)
}

async fn route(endpoint: &Endpoint, peer: SocketAddr, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let known = path == "/" || bulk_index(&path).is_some();
    if !known {
        return error_body(
            StatusCode::NOT_FOUND,
            "illegal_argument_exception",
            &format!(
                "no handler found for uri [{path}] and method [{}]",
                parts.method
            ),
        );
    }
    if let Err(rejection) = authenticate(&endpoint.credentials, &parts.headers, &path) {
        endpoint.telemetry.refused(rejection.reason(), 1);
        tracing::warn!(receiver = %endpoint.telemetry.receiver(), %peer, "elasticsearch request refused: {rejection}");
        let mut response = rejection.response(&path);
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    match (path.as_str(), &parts.method) {
        ("/", &Method::GET) => axum::Json(endpoint.info.clone()).into_response(),
        ("/", &Method::HEAD) => StatusCode::OK.into_response(),
        ("/", method) => method_not_allowed(&path, method, "GET,HEAD"),
        (_, &Method::POST | &Method::PUT) => {
            let index = bulk_index(&path).flatten();
            bulk(
                endpoint,
                peer,
                &parts.headers,
                parts.uri.query(),
                index,
                body,
            )
            .await
        }
        (_, method) => method_not_allowed(&path, method, "POST,PUT"),
    }
}

fn method_not_allowed(path: &str, method: &Method, allowed: &'static str) -> Response {
    let body = json!({"error": format!("Incorrect HTTP method for uri [{path}] and method [{method}], allowed: [{allowed}]"),
        "status": 405});
    let mut response = (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

fn authenticate(
    credentials: &Credentials,
    headers: &HeaderMap,
    path: &str,
) -> Result<(), Rejection> {
    if !credentials.required {
        return Ok(());
    }
    let Some(authorization) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(Rejection::Unauthorized(format!(
            "missing authentication credentials for REST request [{path}]"
        )));
    };
    if let Some((user, password)) = basic_credentials(authorization) {
        let pair = format!("{user}:{password}");
        if credentials.basic.contains(pair.as_bytes()) {
            return Ok(());
        }
        return Err(Rejection::Unauthorized(format!(
            "unable to authenticate user [{user}] for REST request [{path}]"
        )));
    }
    if let Some(key) = scheme_credential(authorization, "ApiKey")
        && credentials.api_keys.contains(key.as_bytes())
    {
        return Ok(());
    }
    Err(Rejection::Unauthorized(
        "unable to authenticate with provided credentials and anonymous access is not allowed for this request".into(),
    ))
}

/// The body's encoding: `None` = identity, `Some(true)` = gzip, `Some(false)` = deflate.
fn check_headers(
    headers: &HeaderMap,
    max_body: usize,
) -> Result<(Option<bool>, Option<usize>), Rejection> {
    if let Some(value) = headers.get(header::CONTENT_TYPE) {
        let text = String::from_utf8_lossy(value.as_bytes()).to_string();
        let essence = text
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let accepted = [
            "application/json",
            "application/x-ndjson",
            "application/vnd.elasticsearch+json",
            "application/vnd.elasticsearch+x-ndjson",
        ];
        if !accepted.contains(&essence.as_str()) {
            return Err(Rejection::ContentType(text));
        }
    }
    let encoding = match headers.get(header::CONTENT_ENCODING) {
        None => None,
        Some(value) => {
            let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
            match text.as_str() {
                "" | "identity" => None,
                "gzip" | "x-gzip" => Some(true),
                "deflate" => Some(false),
                _ => {
                    return Err(Rejection::Encoding(
                        String::from_utf8_lossy(value.as_bytes()).into(),
                    ));
                }
            }
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body as u64) {
        return Err(Rejection::TooLarge(max_body));
    }
    Ok((
        encoding,
        declared.and_then(|length| usize::try_from(length).ok()),
    ))
}

fn defaults(query: Option<&str>, index: Option<String>) -> Defaults {
    let uri = format!("/?{}", query.unwrap_or(""));
    let pairs = uri
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|uri| axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri).ok())
        .map(|q| q.0)
        .unwrap_or_default();
    let mut defaults = Defaults {
        index,
        ..Defaults::default()
    };
    for (key, value) in pairs {
        match key.as_str() {
            "pipeline" if !value.is_empty() => defaults.pipeline = Some(value),
            "routing" if !value.is_empty() => defaults.routing = Some(value),
            _ => {}
        }
    }
    defaults
}

async fn bulk(
    endpoint: &Endpoint,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: Option<&str>,
    index: Option<String>,
    body: Body,
) -> Response {
    let started = Instant::now();
    let observed = Timestamp::now();
    let defaults = defaults(query, index);
    let limit = SizeLimit {
        key: "max_body_size",
        bytes: endpoint.max_body,
    };
    let parsed = async {
        let (encoding, declared) = check_headers(headers, endpoint.max_body)?;
        let reservation = endpoint
            .budget
            .reserve(declared.unwrap_or(0), ADMISSION_WAIT)
            .await
            .map_err(Rejection::Memory)?;
        let raw = body::read(body, limit, &reservation)
            .await
            .map_err(Rejection::from_body)?;
        let parsed = endpoint
            .budget
            .retry_while_busy(
                ADMISSION_WAIT,
                || {
                    reservation.shrink_to(raw.len());
                    let decoded = match encoding {
                        None => std::borrow::Cow::Borrowed(raw.as_slice()),
                        Some(true) => std::borrow::Cow::Owned(
                            body::gunzip(&raw, limit, &reservation, raw.len())
                                .map_err(Rejection::from_body)?,
                        ),
                        Some(false) => std::borrow::Cow::Owned(
                            body::inflate(&raw, limit, &reservation, raw.len())
                                .map_err(Rejection::from_body)?,
                        ),
                    };
                    endpoint
                        .parser
                        .parse(&decoded, &defaults, observed, &reservation)
                        .map_err(Rejection::Bulk)
                },
                |rejection| matches!(rejection, Rejection::Memory(over) | Rejection::Bulk(BulkError::Memory(over)) if over.is_retryable()),
            )
            .await?;
        drop(raw);
        reservation.shrink_to(parsed.held_bytes);
        Ok::<_, Rejection>((parsed, reservation))
    }
    .await;
    let (parsed, _reservation) = match parsed {
        Ok(parsed) => parsed,
        Err(rejection) => {
            endpoint.telemetry.refused(rejection.reason(), 1);
            tracing::debug!(receiver = %endpoint.telemetry.receiver(), %peer, reason = %rejection.reason(), "elasticsearch bulk request refused: {rejection}");
            let mut response = rejection.response("/_bulk");
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };

    let events = parsed.batch.len();
    endpoint.telemetry.received(events, parsed.mapping_errors);
    for (reason, count) in failed_item_reasons(&parsed.items) {
        endpoint.telemetry.refused(reason, count);
    }
    let ids: Vec<String> = parsed
        .batch
        .iter()
        .map(|e| e.event_id.to_string())
        .collect();
    let refusal = if events == 0 {
        None
    } else {
        endpoint.sink.accept(parsed.batch).await.err()
    };
    if let Some(refusal) = &refusal {
        endpoint.telemetry.refused_by_pipeline(refusal, events);
    }
    let mut errors = false;
    let items: Vec<Value> = parsed
        .items
        .iter()
        .map(|item| {
            let (event_id, outcome) = match &item.planned {
                Planned::Event(at) => {
                    let outcome = match &refusal {
                        None => ItemOutcome::Created,
                        Some(Refusal::Failed(reason)) => ItemOutcome::Failed {
                            status: 500,
                            error_type: "exception",
                            reason: reason.clone(),
                        },
                        Some(other) => ItemOutcome::Failed {
                            status: 429,
                            error_type: "es_rejected_execution_exception",
                            reason: format!("rejected execution: {other}"),
                        },
                    };
                    (ids.get(*at).map(String::as_str), outcome)
                }
                Planned::Failed {
                    status,
                    error_type,
                    reason,
                } => (
                    None,
                    ItemOutcome::Failed {
                        status: *status,
                        error_type,
                        reason: reason.clone(),
                    },
                ),
            };
            errors |= !matches!(outcome, ItemOutcome::Created);
            item_json(
                item,
                event_id,
                outcome,
                endpoint.seq_no.fetch_add(1, Ordering::Relaxed),
            )
        })
        .collect();
    let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    axum::Json(json!({"took": took, "errors": errors, "items": items})).into_response()
}

/// Items that failed before the pipeline, counted by refusal reason: `unsupported_action`
/// (`update`, `delete`) and `malformed` (a document that is not a JSON object, or does not fit
/// in strict mode).
fn failed_item_reasons(items: &[super::bulk::Item]) -> Vec<(&'static str, u64)> {
    let (mut unsupported, mut malformed) = (0, 0);
    for item in items {
        match (&item.planned, item.action) {
            (Planned::Event(_), _) => {}
            (_, super::bulk::Action::Update | super::bulk::Action::Delete) => unsupported += 1,
            _ => malformed += 1,
        }
    }
    [
        ("unsupported_action", unsupported),
        ("malformed", malformed),
    ]
    .into_iter()
    .filter(|(_, count)| *count > 0)
    .collect()
}

/// The router serving clients outside `allowed_cidrs`: 403 to every request, body unread.
pub fn forbidden() -> Router {
    Router::new().fallback(|| async {
        crate::listener::closing(product(error_body(
            StatusCode::FORBIDDEN,
            "security_exception",
            "the client's address is not in this receiver's allowed_cidrs",
        )))
    })
}

/// The answer to a request over `max_concurrent_requests`: 429, which Elastic's clients retry.
pub fn busy() -> Response {
    crate::listener::busy_closing(product(error_body(
        StatusCode::TOO_MANY_REQUESTS,
        "es_rejected_execution_exception",
        "too many requests in flight on this receiver; retry later",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_paths_name_their_index() {
        assert_eq!(bulk_index("/_bulk"), Some(None));
        assert_eq!(bulk_index("/logs-a/_bulk"), Some(Some("logs-a".into())));
        assert_eq!(bulk_index("/logs%2Da/_bulk/"), Some(Some("logs-a".into())));
        assert_eq!(bulk_index("/a/b/_bulk"), None);
        assert_eq!(bulk_index("/_search"), None);
    }
}
