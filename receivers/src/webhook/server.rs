//! The HTTP glue: routing, reading the body under the size limit, handing the batch to the
//! pipeline and answering only after the pipeline has accepted (or refused) it.

use super::intake::{Intake, Rejection};
use super::telemetry::Telemetry;
use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use siemrelay_core::{EventSink, Refusal, Timestamp};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

/// What every request of one receiver shares.
pub struct Endpoint {
    /// The one path events are accepted on.
    pub path: String,
    /// Request checks and parsing.
    pub intake: Intake,
    /// Where accepted batches go.
    pub sink: Arc<dyn EventSink>,
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
    let admitted = match intake.admit(&parts.headers) {
        Ok(framing) => match read_body(body, intake.max_body()).await {
            Ok(raw) => intake.process(framing, &parts.headers, &raw, observed),
            Err(rejection) => Err(rejection),
        },
        Err(rejection) => Err(rejection),
    };
    let admitted = match admitted {
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

/// Reads the body, stopping with 413 as soon as it grows past `limit`.
async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, Rejection> {
    let hint = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    let mut raw = Vec::with_capacity(hint.min(limit));
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame
            .map_err(|e| Rejection::Malformed(format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if raw.len() + data.len() > limit {
                return Err(Rejection::TooLarge {
                    limit,
                    decoded: false,
                });
            }
            raw.extend_from_slice(&data);
        }
    }
    Ok(raw)
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
    if let Rejection::Unauthorized(_) = rejection {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
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
