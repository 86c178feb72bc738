//! The HTTP glue: routing, reserving memory and reading the body under the listener's limits,
//! handing the batch to the pipeline and answering only after the pipeline has accepted (or
//! refused) it.

use super::intake::{Intake, Rejection};
use super::telemetry::Telemetry;
use crate::body;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use siemrelay_core::admission::{ADMISSION_WAIT, MemoryBudget, RETRY_AFTER};
use siemrelay_core::{EventSink, Refusal, Timestamp};
use std::net::SocketAddr;
use std::sync::Arc;

/// What every request of one receiver shares.
pub struct Endpoint {
    /// The one path events are accepted on.
    pub path: String,
    /// Request checks and parsing.
    pub intake: Intake,
    /// Where accepted batches go.
    pub sink: Arc<dyn EventSink>,
    /// The admission budget requests reserve their memory from.
    pub budget: Arc<MemoryBudget>,
    /// Metrics and logs.
    pub telemetry: Telemetry,
}

/// The receiver's router: every request goes to [`serve_request`], which routes by itself so
/// that 404 and 405 answers are JSON too.
pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new().fallback(serve_request).with_state(endpoint)
}

async fn serve_request(
    State(endpoint): State<Arc<Endpoint>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if parts.uri.path() != endpoint.path {
        let message = format!(
            "no receiver at {}; post events to {}",
            parts.uri.path(),
            endpoint.path
        );
        return error(StatusCode::NOT_FOUND, &message);
    }
    if parts.method != Method::POST {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("method {} is not allowed; use POST", parts.method),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }

    let observed = Timestamp::now();
    let intake = &endpoint.intake;
    let admitted = async {
        let framing = intake.admit(&parts.headers)?;
        // Room for the body as declared, waiting briefly for other requests to finish.
        let reservation = endpoint
            .budget
            .reserve(framing.declared_length.unwrap_or(0), ADMISSION_WAIT)
            .await
            .map_err(Rejection::Memory)?;
        let raw = body::read(body, intake.size_limit(), &reservation).await?;
        let verified = intake.verify(&parts.headers, &raw, observed)?;
        // Parsing that runs out of memory is tried again as others give memory back (briefly).
        let admitted = endpoint
            .budget
            .retry_while_busy(
                ADMISSION_WAIT,
                || {
                    reservation.shrink_to(raw.len());
                    intake.parse(framing, &raw, verified, observed, &reservation)
                },
                |rejection| matches!(rejection, Rejection::Memory(over) if over.is_retryable()),
            )
            .await?;
        drop(raw);
        reservation.shrink_to(admitted.held_bytes);
        Ok::<_, Rejection>((admitted, reservation))
    }
    .await;
    let (admitted, _reservation) = match admitted {
        Ok(admitted) => admitted,
        Err(rejection) => {
            endpoint.telemetry.rejected(&rejection, peer);
            // The body may be unread (401, 413, 415): the connection cannot be reused, so say so
            // instead of letting a client send its next request into a closing socket.
            let mut response = rejection_response(&rejection);
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };

    let events = admitted.batch.len();
    endpoint.telemetry.received(events, admitted.mapping_errors);
    if events == 0 {
        return accepted(0, 0);
    }
    match endpoint.sink.accept(admitted.batch).await {
        Ok(done) => accepted(done.received, done.queued),
        Err(refusal) => {
            endpoint.telemetry.refused_by_pipeline(&refusal, events);
            refusal_response(&refusal)
        }
    }
}

fn accepted(received: usize, queued: usize) -> Response {
    let body = json!({"accepted": received, "queued": queued});
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

fn rejection_response(rejection: &Rejection) -> Response {
    let mut response = error(rejection.status(), &rejection.to_string());
    match rejection {
        Rejection::Unauthorized(_) => {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        Rejection::Memory(over) if over.is_retryable() => {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER.as_secs()),
            );
        }
        _ => {}
    }
    response
}

/// The router serving clients outside `allowed_cidrs`: 403 to every request, body unread.
pub fn forbidden() -> Router {
    Router::new().fallback(|| async {
        crate::listener::closing(error(
            StatusCode::FORBIDDEN,
            "the client's address is not in this receiver's allowed_cidrs",
        ))
    })
}

/// The answer to a request over the listener's `max_concurrent_requests`.
pub fn busy() -> Response {
    crate::listener::busy_closing(error(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many requests in flight on this receiver; retry later",
    ))
}

fn refusal_response(refusal: &Refusal) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, &refusal.to_string());
    if let Refusal::Full { retry_after } = refusal {
        let secs = retry_after
            .as_secs()
            .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
            .max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
