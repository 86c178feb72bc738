//! OTLP/gRPC: `opentelemetry.proto.collector.logs.v1.LogsService/Export`.
//!
//! The service is wired by hand around tonic's `Grpc` so that its codec can look at a request's
//! bytes before decoding them: [`census`] counts the log records (RESOURCE_EXHAUSTED past
//! `max_events_per_request`) and sizes what decoding and mapping will allocate, which is
//! reserved from the admission budget first (UNAVAILABLE with `RetryInfo` when it has no room).

use super::census::{Census, CensusError, census};
use super::ingest::{Ingest, bearer_matches, retry_after};
use super::{NOT_SUPPORTED, Protocol};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Buf;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use siemrelay_core::Refusal;
use siemrelay_core::admission::{MemoryBudget, OverBudget, RETRY_AFTER, Reservation};
use siemrelay_core::config_types::Secret;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The gRPC path of the one method served.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// gRPC paths of the OTLP services siemrelay does not implement.
const UNSUPPORTED_PATHS: [&str; 3] = [
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
];

/// What the Export method of one listener shares.
struct Export {
    ingest: Ingest,
    token: Option<Secret>,
    max_request_bytes: usize,
    max_events: usize,
    budget: Arc<MemoryBudget>,
}

/// The gRPC router for one listener.
pub fn router(protocol: &Protocol, ingest: Ingest, budget: Arc<MemoryBudget>) -> Router {
    let export = Arc::new(Export {
        ingest,
        token: protocol.bearer_token.clone(),
        max_request_bytes: protocol.max_request_bytes,
        max_events: protocol.max_events,
        budget,
    });
    let mut router = Router::new().route(EXPORT_PATH, axum::routing::post(export_logs));
    for path in UNSUPPORTED_PATHS {
        router = router.route(path, axum::routing::any(unsupported));
    }
    router
        .fallback(unknown_method)
        .with_state(export)
        .layer(axum::middleware::map_response(request_errors_are_final))
}

/// The router serving clients outside `allowed_cidrs`: PERMISSION_DENIED to every call.
pub fn forbidden() -> Router {
    Router::new().fallback(|| async {
        status_response(Status::permission_denied(
            "the client's address is not in this listener's allowed_cidrs",
        ))
    })
}

/// The answer to a call over `max_concurrent_requests`: UNAVAILABLE with `RetryInfo`.
pub fn busy() -> Response {
    status_response(Status::with_error_details(
        Code::Unavailable,
        "too many requests in flight on this listener; retry later",
        ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
    ))
}

async fn export_logs(
    State(export): State<Arc<Export>>,
    request: axum::extract::Request,
) -> Response {
    if let Some(token) = &export.token {
        let header = request.headers().get("authorization").map(|v| v.as_bytes());
        if !bearer_matches(header, token.expose()) {
            return status_response(Status::unauthenticated(
                "missing or wrong bearer token in the authorization metadata",
            ));
        }
    }
    let reservation = Arc::new(export.budget.empty_reservation());
    let codec = AdmissionCodec {
        max_events: export.max_events,
        reservation: reservation.clone(),
    };
    let mut grpc = tonic::server::Grpc::new(codec)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(export.max_request_bytes)
        .max_encoding_message_size(usize::MAX);
    grpc.unary(ExportMethod(export.clone()), request)
        .await
        .into_response()
}

/// A request's protobuf bytes, counted and sized, with the memory reserved for them and their
/// events.
struct Admitted {
    body: Bytes,
    census: Census,
    reservation: Arc<Reservation>,
}

/// Hands over a request's bytes (no copy) after the census and the reservation; encodes
/// responses with prost.
struct AdmissionCodec {
    max_events: usize,
    reservation: Arc<Reservation>,
}

impl Codec for AdmissionCodec {
    type Encode = ExportLogsServiceResponse;
    type Decode = Admitted;
    type Encoder = <tonic_prost::ProstCodec<ExportLogsServiceResponse, ()> as Codec>::Encoder;
    type Decoder = AdmissionDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstCodec::<ExportLogsServiceResponse, ()>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        AdmissionDecoder {
            max_events: self.max_events,
            reservation: self.reservation.clone(),
        }
    }
}

struct AdmissionDecoder {
    max_events: usize,
    reservation: Arc<Reservation>,
}

impl Decoder for AdmissionDecoder {
    type Item = Admitted;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Admitted>, Status> {
        // The buffer holds exactly one whole message; taking it out of tonic's decode buffer
        // shares its memory, it does not copy it.
        let length = src.remaining();
        let body = src.copy_to_bytes(length);
        let census = census(&body, self.max_events).map_err(|e| match e {
            CensusError::TooManyRecords { .. } => Status::resource_exhausted(e.to_string()),
            CensusError::Malformed(_) => Status::invalid_argument(e.to_string()),
        })?;
        self.reservation
            .try_grow(length + census.event_bytes)
            .map_err(|over| over_budget_status(&over))?;
        Ok(Some(Admitted {
            body,
            census,
            reservation: self.reservation.clone(),
        }))
    }
}

/// UNAVAILABLE with `RetryInfo` when the budget is busy; RESOURCE_EXHAUSTED (final) when the
/// request alone is larger than the budget.
fn over_budget_status(over: &OverBudget) -> Status {
    if over.is_retryable() {
        Status::with_error_details(
            Code::Unavailable,
            over.to_string(),
            ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
        )
    } else {
        Status::resource_exhausted(over.to_string())
    }
}

/// The Export method: decodes the admitted request into events and answers once the pipeline
/// has them.
struct ExportMethod(Arc<Export>);

impl tonic::server::UnaryService<Admitted> for ExportMethod {
    type Response = ExportLogsServiceResponse;
    type Future = Pin<
        Box<dyn Future<Output = Result<tonic::Response<ExportLogsServiceResponse>, Status>> + Send>,
    >;

    fn call(&mut self, request: tonic::Request<Admitted>) -> Self::Future {
        let export = self.0.clone();
        Box::pin(async move {
            let Admitted {
                body,
                census,
                reservation,
            } = request.into_inner();
            let mapped = export.ingest.decode(&body, census.records).map_err(|e| {
                Status::invalid_argument(format!(
                    "request body is not a valid ExportLogsServiceRequest: {e}"
                ))
            })?;
            // The message bytes are gone; its events remain until queued.
            drop(body);
            reservation.shrink_to(census.event_bytes);
            match export.ingest.export(mapped).await {
                Ok(exported) => {
                    let partial_success =
                        (exported.rejected > 0).then(|| ExportLogsPartialSuccess {
                            rejected_log_records: i64::try_from(exported.rejected)
                                .unwrap_or(i64::MAX),
                            error_message: exported.error_message,
                        });
                    Ok(tonic::Response::new(ExportLogsServiceResponse {
                        partial_success,
                    }))
                }
                Err(refusal) => Err(refusal_status(&refusal)),
            }
        })
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

fn status_response(status: Status) -> Response {
    status.into_http::<axum::body::Body>().into_response()
}

/// tonic reports an oversized message as OUT_OF_RANGE, which OTLP clients retry; OTLP wants
/// RESOURCE_EXHAUSTED (final). It comes as a trailers-only response, so the status is in the
/// headers.
async fn request_errors_are_final(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if headers.get("grpc-status").map(|v| v.as_bytes()) != Some(b"11") {
        return response;
    }
    let oversized = headers.get("grpc-message").is_some_and(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .replace("%20", " ")
            .contains("message length too large")
    });
    if oversized {
        headers.insert(
            "grpc-status",
            axum::http::HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
    response
}

async fn unsupported() -> Response {
    status_response(Status::unimplemented(NOT_SUPPORTED))
}

async fn unknown_method(uri: axum::http::Uri) -> Response {
    status_response(Status::unimplemented(format!(
        "unknown gRPC method {}; siemrelay serves only \
         opentelemetry.proto.collector.logs.v1.LogsService/Export",
        uri.path()
    )))
}
