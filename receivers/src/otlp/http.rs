//! OTLP/HTTP: `POST /v1/logs` with protobuf or JSON bodies, optionally gzip-compressed.

use super::ingest::{Ingest, bearer_matches, retry_after};
use super::{NOT_SUPPORTED, Protocol, json};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;
use siemrelay_core::config_types::Secret;
use std::io::Read;
use std::sync::Arc;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// google.rpc.Code values used in error bodies.
mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
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
}

/// The HTTP router for one listener.
pub fn router(protocol: &Protocol, ingest: Ingest) -> Router {
    let handler = Arc::new(Handler {
        ingest,
        token: protocol.bearer_token.clone(),
        max_request_bytes: protocol.max_request_bytes,
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
    let limit = handler.max_request_bytes;
    let Ok(raw) = axum::body::to_bytes(body, limit).await else {
        return too_large(encoding, limit);
    };
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => raw,
        Some("gzip") => match gunzip(&raw, limit) {
            Ok(Some(body)) => body,
            Ok(None) => return too_large(encoding, limit),
            Err(e) => {
                return error(
                    encoding,
                    StatusCode::BAD_REQUEST,
                    code::INVALID_ARGUMENT,
                    &format!("request body is not valid gzip: {e}"),
                );
            }
        },
        Some(other) => {
            return error(
                encoding,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_ARGUMENT,
                &format!("Content-Encoding {other:?} is not supported; use gzip or none"),
            );
        }
    };
    let request = match decode(encoding, &body) {
        Ok(request) => request,
        Err(message) => {
            return error(
                encoding,
                StatusCode::BAD_REQUEST,
                code::INVALID_ARGUMENT,
                &message,
            );
        }
    };
    match handler.ingest.export(request).await {
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

fn decode(encoding: Encoding, body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body)
            .map_err(|e| format!("request body is not a valid ExportLogsServiceRequest: {e}")),
        Encoding::Json => json::decode_request(body).map_err(|e| {
            format!("request body is not a valid OTLP/JSON ExportLogsServiceRequest: {e}")
        }),
    }
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

/// Decompresses at most `limit` bytes; `Ok(None)` when the content is larger.
fn gunzip(compressed: &[u8], limit: usize) -> std::io::Result<Option<Bytes>> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    let read = flate2::read::MultiGzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)?;
    Ok((read <= limit).then(|| Bytes::from(out)))
}

fn too_large(encoding: Encoding, limit: usize) -> Response {
    error(
        encoding,
        StatusCode::PAYLOAD_TOO_LARGE,
        code::RESOURCE_EXHAUSTED,
        &format!("request body is larger than max_request_size ({limit} bytes)"),
    )
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
