//! OTLP/HTTP: `POST /v1/logs` with protobuf or JSON bodies, optionally gzip-compressed.

use super::census::{Census, CensusError, census};
use super::ingest::{Ingest, bearer_matches, retry_after};
use super::mapping::MappedRequest;
use super::{NOT_SUPPORTED, Protocol, json};
use crate::body::{self, BodyError, SizeLimit};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use prost::Message;
use siemrelay_core::admission::{
    ADMISSION_WAIT, MemoryBudget, OverBudget, RETRY_AFTER, Reservation,
};
use siemrelay_core::config_types::Secret;
use siemrelay_core::ingest::{BodyErrorKind, Limits, parse_value};
use std::sync::Arc;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// google.rpc.Code values used in error bodies.
mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// `google.rpc.Status` without details, for protobuf error bodies.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The body encodings of OTLP/HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

struct Handler {
    ingest: Ingest,
    token: Option<Secret>,
    max_request_bytes: usize,
    max_events: usize,
    budget: Arc<MemoryBudget>,
}

/// The HTTP router for one listener.
pub fn router(protocol: &Protocol, ingest: Ingest, budget: Arc<MemoryBudget>) -> Router {
    let handler = Arc::new(Handler {
        ingest,
        token: protocol.bearer_token.clone(),
        max_request_bytes: protocol.max_request_bytes,
        max_events: protocol.max_events,
        budget,
    });
    Router::new()
        .route("/v1/logs", axum::routing::post(export_logs))
        .route("/v1/traces", axum::routing::any(unsupported))
        .route("/v1/metrics", axum::routing::any(unsupported))
        .fallback(not_found)
        .with_state(handler)
}

async fn export_logs(
    State(handler): State<Arc<Handler>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match content_type(&headers) {
        Some(encoding) => encoding,
        None => {
            return error(
                Encoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_ARGUMENT,
                "Content-Type must be application/x-protobuf or application/json",
            );
        }
    };
    if let Some(token) = &handler.token {
        let header = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if !bearer_matches(header, token.expose()) {
            let mut response = error(
                encoding,
                StatusCode::UNAUTHORIZED,
                code::UNAUTHENTICATED,
                "missing or wrong bearer token in the Authorization header",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    match admit(&handler, encoding, &headers, body).await {
        Ok((mapped, _reservation)) => export(&handler, encoding, mapped).await,
        Err(response) => response,
    }
}

/// Reads, decompresses, counts and decodes a request into events under the listener's limits
/// and the admission budget; the reservation holds the events until they are queued.
async fn admit(
    handler: &Handler,
    encoding: Encoding,
    headers: &HeaderMap,
    body: Body,
) -> Result<(MappedRequest, Reservation), Response> {
    let limit = SizeLimit {
        key: "max_request_size",
        bytes: handler.max_request_bytes,
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(error(
                encoding,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_ARGUMENT,
                &format!("Content-Encoding {other:?} is not supported; use gzip or none"),
            ));
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit.bytes) {
        return Err(body_error(
            encoding,
            BodyError::TooLarge {
                key: limit.key,
                limit: limit.bytes,
                decoded: false,
            },
        ));
    }
    let reservation = handler
        .budget
        .reserve(declared.unwrap_or(0), ADMISSION_WAIT)
        .await
        .map_err(|over| over_budget(encoding, &over))?;
    let raw = body::read(body, limit, &reservation)
        .await
        .map_err(|e| body_error(encoding, e))?;
    // Decoding that runs out of memory is tried again as others give memory back (briefly).
    let (mapped, census) = handler
        .budget
        .retry_while_busy(
            ADMISSION_WAIT,
            || {
                reservation.shrink_to(raw.len());
                decode(handler, encoding, gzip, &raw, limit, &reservation)
            },
            Refused::is_busy,
        )
        .await
        .map_err(|refused| refused.response(encoding))?;
    drop(raw);
    reservation.shrink_to(census.event_bytes);
    Ok((mapped, reservation))
}

/// Why a read body was not decoded.
enum Refused {
    Body(BodyError),
    Census(CensusError),
    Memory(OverBudget),
    Invalid(String),
}

impl Refused {
    fn is_busy(&self) -> bool {
        match self {
            Refused::Memory(over) | Refused::Body(BodyError::Memory(over)) => over.is_retryable(),
            _ => false,
        }
    }

    fn response(self, encoding: Encoding) -> Response {
        match self {
            Refused::Body(failure) => body_error(encoding, failure),
            Refused::Census(failure) => census_error(encoding, &failure),
            Refused::Memory(over) => over_budget(encoding, &over),
            Refused::Invalid(message) => invalid(encoding, message),
        }
    }
}

/// Decompresses, counts and decodes `raw` into events, growing `reservation` by what they
/// will hold first.
fn decode(
    handler: &Handler,
    encoding: Encoding,
    gzip: bool,
    raw: &[u8],
    limit: SizeLimit,
    reservation: &Reservation,
) -> Result<(MappedRequest, Census), Refused> {
    let decompressed;
    let body: &[u8] = if gzip {
        decompressed = body::gunzip(raw, limit, reservation, raw.len()).map_err(Refused::Body)?;
        &decompressed
    } else {
        raw
    };
    let held = raw.len() + if gzip { body.len() } else { 0 };
    match encoding {
        Encoding::Protobuf => {
            let census = census(body, handler.max_events).map_err(Refused::Census)?;
            reservation
                .try_grow_to(held + census.event_bytes)
                .map_err(Refused::Memory)?;
            let mapped = handler.ingest.decode(body, census.records).map_err(|e| {
                Refused::Invalid(format!(
                    "request body is not a valid ExportLogsServiceRequest: {e}"
                ))
            })?;
            Ok((mapped, census))
        }
        Encoding::Json => {
            // The JSON tree is charged while it is parsed and its log records counted.
            let limits = Limits::new(handler.max_events)
                .counting_arrays_under(&["logRecords", "log_records"])
                .charging(reservation);
            let value = parse_value(body, &limits).map_err(|e| match e.kind {
                BodyErrorKind::TooManyEvents { limit } => {
                    Refused::Census(CensusError::TooManyRecords { limit })
                }
                BodyErrorKind::Memory(over) => Refused::Memory(over),
                _ => Refused::Invalid(format!("request body is not valid JSON: {}", e.message)),
            })?;
            // Written as the protobuf bytes of the same request (no message structs), then
            // counted, sized and decoded as protobuf.
            let encoded = json::to_protobuf(value).map_err(|e| {
                Refused::Invalid(format!(
                    "request body is not a valid OTLP/JSON ExportLogsServiceRequest: {e}"
                ))
            })?;
            let census = census(&encoded, handler.max_events).map_err(Refused::Census)?;
            reservation
                .try_grow_to(held + limits.charged() + encoded.len() + census.event_bytes)
                .map_err(Refused::Memory)?;
            let mapped = handler
                .ingest
                .decode(&encoded, census.records)
                .map_err(|e| {
                    Refused::Invalid(format!(
                        "request body is not a valid ExportLogsServiceRequest: {e}"
                    ))
                })?;
            Ok((mapped, census))
        }
    }
}

async fn export(handler: &Handler, encoding: Encoding, mapped: MappedRequest) -> Response {
    match handler.ingest.export(mapped).await {
        Ok(exported) => {
            let body = match encoding {
                Encoding::Json => json::encode_response(exported.rejected, &exported.error_message),
                Encoding::Protobuf => ExportLogsServiceResponse {
                    partial_success: (exported.rejected > 0).then(|| ExportLogsPartialSuccess {
                        rejected_log_records: i64::try_from(exported.rejected).unwrap_or(i64::MAX),
                        error_message: exported.error_message,
                    }),
                }
                .encode_to_vec(),
            };
            reply(encoding, StatusCode::OK, body)
        }
        Err(refusal) => {
            let seconds = retry_after(&refusal).as_secs().max(1);
            let mut response = error(
                encoding,
                StatusCode::SERVICE_UNAVAILABLE,
                code::UNAVAILABLE,
                &refusal.to_string(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}

fn invalid(encoding: Encoding, message: String) -> Response {
    error(
        encoding,
        StatusCode::BAD_REQUEST,
        code::INVALID_ARGUMENT,
        &message,
    )
}

fn census_error(encoding: Encoding, error: &CensusError) -> Response {
    match error {
        CensusError::TooManyRecords { .. } => self::error(
            encoding,
            StatusCode::PAYLOAD_TOO_LARGE,
            code::RESOURCE_EXHAUSTED,
            &error.to_string(),
        ),
        CensusError::Malformed(_) => invalid(encoding, error.to_string()),
    }
}

fn over_budget(encoding: Encoding, over: &OverBudget) -> Response {
    if over.is_retryable() {
        let mut response = error(
            encoding,
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            &over.to_string(),
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(RETRY_AFTER.as_secs()),
        );
        response
    } else {
        error(
            encoding,
            StatusCode::PAYLOAD_TOO_LARGE,
            code::RESOURCE_EXHAUSTED,
            &over.to_string(),
        )
    }
}

fn body_error(encoding: Encoding, failure: BodyError) -> Response {
    match failure {
        BodyError::TooLarge { .. } => error(
            encoding,
            StatusCode::PAYLOAD_TOO_LARGE,
            code::RESOURCE_EXHAUSTED,
            &failure.to_string(),
        ),
        BodyError::Memory(over) => over_budget(encoding, &over),
        BodyError::TooSlow { .. } => {
            let mut response = error(
                encoding,
                StatusCode::REQUEST_TIMEOUT,
                code::UNAVAILABLE,
                &failure.to_string(),
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        BodyError::NotGzip(_) | BodyError::Broken(_) => invalid(encoding, failure.to_string()),
    }
}

/// The router serving clients outside `allowed_cidrs`: 403 to every request, body unread.
pub fn forbidden() -> Router {
    Router::new().fallback(|headers: HeaderMap| async move {
        crate::listener::closing(error(
            request_encoding(&headers),
            StatusCode::FORBIDDEN,
            code::PERMISSION_DENIED,
            "the client's address is not in this listener's allowed_cidrs",
        ))
    })
}

/// The answer to a request over `max_concurrent_requests`: 503 + `Retry-After`.
pub fn busy() -> Response {
    crate::listener::busy_closing(error(
        Encoding::Json,
        StatusCode::SERVICE_UNAVAILABLE,
        code::UNAVAILABLE,
        "too many requests in flight on this listener; retry later",
    ))
}

fn content_type(headers: &HeaderMap) -> Option<Encoding> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim();
    if essence.eq_ignore_ascii_case(PROTOBUF) {
        Some(Encoding::Protobuf)
    } else if essence.eq_ignore_ascii_case(JSON) {
        Some(Encoding::Json)
    } else {
        None
    }
}

fn reply(encoding: Encoding, status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

/// An error reply with a `google.rpc.Status` body in the request's encoding.
fn error(encoding: Encoding, status: StatusCode, rpc_code: i32, message: &str) -> Response {
    let body = match encoding {
        Encoding::Json => json::encode_status(rpc_code, message),
        Encoding::Protobuf => RpcStatus {
            code: rpc_code,
            message: message.to_string(),
        }
        .encode_to_vec(),
    };
    reply(encoding, status, body)
}

fn request_encoding(headers: &HeaderMap) -> Encoding {
    content_type(headers).unwrap_or(Encoding::Json)
}

async fn unsupported(headers: HeaderMap) -> Response {
    error(
        request_encoding(&headers),
        StatusCode::NOT_FOUND,
        code::UNIMPLEMENTED,
        NOT_SUPPORTED,
    )
}

async fn not_found(headers: HeaderMap, uri: axum::http::Uri) -> Response {
    error(
        request_encoding(&headers),
        StatusCode::NOT_FOUND,
        code::UNIMPLEMENTED,
        &format!(
            "no such endpoint {}; siemrelay accepts OTLP logs at POST /v1/logs",
            uri.path()
        ),
    )
}
