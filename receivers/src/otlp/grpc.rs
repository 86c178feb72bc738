//! OTLP/gRPC: `opentelemetry.proto.collector.logs.v1.LogsService/Export`.

use super::ingest::{Ingest, bearer_matches, retry_after};
use super::{NOT_SUPPORTED, Protocol};
use axum::Router;
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use siemrelay_core::Refusal;
use siemrelay_core::config_types::Secret;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// gRPC paths of the OTLP services siemrelay does not implement.
const UNSUPPORTED_PATHS: [&str; 3] = [
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
];

/// The `LogsService` implementation.
struct Logs {
    ingest: Ingest,
}

#[async_trait::async_trait]
impl LogsService for Logs {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, Status> {
        match self.ingest.export(request.into_inner()).await {
            Ok(exported) => {
                let partial_success = (exported.rejected > 0).then(|| ExportLogsPartialSuccess {
                    rejected_log_records: i64::try_from(exported.rejected).unwrap_or(i64::MAX),
                    error_message: exported.error_message,
                });
                Ok(tonic::Response::new(ExportLogsServiceResponse {
                    partial_success,
                }))
            }
            Err(refusal) => Err(refusal_status(&refusal)),
        }
    }
}

/// UNAVAILABLE (retryable by OTLP clients) with a `RetryInfo` detail.
fn refusal_status(refusal: &Refusal) -> Status {
    Status::with_error_details(
        Code::Unavailable,
        refusal.to_string(),
        ErrorDetails::with_retry_info(Some(retry_after(refusal))),
    )
}

/// The gRPC router for one listener.
pub fn router(protocol: &Protocol, ingest: Ingest) -> Router {
    let service = LogsServiceServer::new(Logs { ingest })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(protocol.max_request_bytes)
        .max_encoding_message_size(usize::MAX);
    let token = protocol.bearer_token.clone();
    let service = InterceptedService::new(service, move |request: Request<()>| {
        check_token(token.as_ref(), &request)?;
        Ok(request)
    });
    let mut router = tonic::service::Routes::new(service).into_axum_router();
    for path in UNSUPPORTED_PATHS {
        router = router.route(path, axum::routing::any(unsupported));
    }
    router
        .fallback(unknown_method)
        .layer(axum::middleware::map_response(request_errors_are_final))
}

/// tonic reports a request that is not valid protobuf as INTERNAL and an oversized one as
/// OUT_OF_RANGE, which OTLP clients retry; OTLP wants INVALID_ARGUMENT and RESOURCE_EXHAUSTED
/// (final). Both come as trailers-only responses, so the status is in the headers.
async fn request_errors_are_final(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let code = match headers.get("grpc-status").map(|v| v.as_bytes()) {
        Some(b"13") => Code::InvalidArgument,
        Some(b"11") => Code::ResourceExhausted,
        _ => return response,
    };
    let message = headers
        .get("grpc-message")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).replace("%20", " "))
        .unwrap_or_default();
    let ours = match code {
        Code::InvalidArgument => message.starts_with("failed to decode Protobuf message"),
        _ => message.contains("decoded message length too large"),
    };
    if ours {
        headers.insert("grpc-status", axum::http::HeaderValue::from(code as i32));
    }
    response
}

fn check_token(token: Option<&Secret>, request: &Request<()>) -> Result<(), Status> {
    let Some(token) = token else { return Ok(()) };
    let header = request
        .metadata()
        .get("authorization")
        .map(|v| v.as_bytes());
    if bearer_matches(header, token.expose()) {
        Ok(())
    } else {
        Err(Status::unauthenticated(
            "missing or wrong bearer token in the authorization metadata",
        ))
    }
}

async fn unsupported() -> Response {
    Status::unimplemented(NOT_SUPPORTED)
        .into_http::<axum::body::Body>()
        .into_response()
}

async fn unknown_method(uri: axum::http::Uri) -> Response {
    Status::unimplemented(format!(
        "unknown gRPC method {}; siemrelay serves only \
         opentelemetry.proto.collector.logs.v1.LogsService/Export",
        uri.path()
    ))
    .into_http::<axum::body::Body>()
    .into_response()
}
