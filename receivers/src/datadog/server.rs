//! The HTTP glue: routing Datadog's intake paths, reserving memory and reading the body under
//! the listener's limits, handing the batch to the pipeline and answering — in Datadog's
//! documented shapes — only after the pipeline has queued (or refused) it.

use super::intake::{Api, Intake, Rejection};
use crate::body;
use crate::webhook::telemetry::Telemetry;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use siemrelay_core::admission::{ADMISSION_WAIT, MemoryBudget, RETRY_AFTER};
use siemrelay_core::{EventSink, Refusal, Timestamp};
use std::net::SocketAddr;
use std::sync::Arc;

/// The v2 logs path.
pub const V2_PATH: &str = "/api/v2/logs";
/// The v1 input path (`/v1/input` or `/v1/input/<api key>`).
pub const V1_PATH: &str = "/v1/input";

/// What every request of one receiver shares.
pub struct Endpoint {
    /// Request checks and parsing.
    pub intake: Intake,
    /// Where accepted batches go.
    pub sink: Arc<dyn EventSink>,
    /// The admission budget requests reserve their memory from.
    pub budget: Arc<MemoryBudget>,
    /// Metrics and logs (the receivers' shared metric names).
    pub telemetry: Telemetry,
}

/// The receiver's router: every request goes to [`serve_request`], which routes by itself so
/// that every answer has Datadog's error shape.
pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new().fallback(serve_request).with_state(endpoint)
}

/// The API and the v1 path key of a request path, or `None` for a path Datadog does not serve.
fn route(path: &str) -> Option<(Api, Option<&str>)> {
    if path == V2_PATH || path == "/api/v2/logs/" {
        return Some((Api::V2, None));
    }
    let rest = path.strip_prefix(V1_PATH)?;
    match rest {
        "" | "/" => Some((Api::V1, None)),
        key => {
            let key = key.strip_prefix('/')?.trim_end_matches('/');
            (!key.contains('/')).then_some((Api::V1, Some(key)))
        }
    }
}

async fn serve_request(
    State(endpoint): State<Arc<Endpoint>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Some((api, path_key)) = route(parts.uri.path()) else {
        let message = format!(
            "no Datadog intake at {}; post logs to {V2_PATH} or {V1_PATH}",
            parts.uri.path()
        );
        return error(Api::V2, StatusCode::NOT_FOUND, &message);
    };
    if parts.method != Method::POST {
        let mut response = error(
            api,
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
        let framing = intake.admit(api, &parts.headers, path_key, parts.uri.query())?;
        let reservation = endpoint
            .budget
            .reserve(framing.declared_length.unwrap_or(0), ADMISSION_WAIT)
            .await
            .map_err(Rejection::Memory)?;
        let raw = body::read(body, intake.size_limit(), &reservation).await?;
        let admitted = endpoint
            .budget
            .retry_while_busy(
                ADMISSION_WAIT,
                || {
                    reservation.shrink_to(raw.len());
                    intake.parse(&framing, &raw, observed, &reservation)
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
            endpoint.telemetry.refused(rejection.reason(), 1);
            match &rejection {
                Rejection::MissingKey | Rejection::InvalidKey => {
                    tracing::warn!(receiver = %endpoint.telemetry.receiver(), %peer, "datadog request refused: {rejection}");
                }
                other => {
                    tracing::debug!(receiver = %endpoint.telemetry.receiver(), %peer, reason = %other.reason(), "datadog request refused: {other}");
                }
            }
            let mut response = error(api, rejection.status(api), &rejection.to_string());
            if matches!(&rejection, Rejection::Memory(over) if over.is_retryable()) {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(RETRY_AFTER.as_secs()),
                );
            }
            // The body may be unread: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };

    let events = admitted.batch.len();
    endpoint.telemetry.received(events, admitted.mapping_errors);
    if events == 0 {
        return accepted(api);
    }
    match endpoint.sink.accept(admitted.batch).await {
        Ok(_) => accepted(api),
        Err(refusal) => {
            endpoint.telemetry.refused_by_pipeline(&refusal, events);
            refusal_response(api, &refusal)
        }
    }
}

/// Datadog's success answer: v2 `202 {}`, v1 `200 {}`.
fn accepted(api: Api) -> Response {
    let status = match api {
        Api::V2 => StatusCode::ACCEPTED,
        Api::V1 => StatusCode::OK,
    };
    (status, axum::Json(json!({}))).into_response()
}

/// An error in the shape of `api`: v2 `{"errors":[{"status","title","detail"}]}`
/// (`HTTPLogErrors`), v1 `{"code","message"}` (`HTTPLogError`).
pub fn error(api: Api, status: StatusCode, detail: &str) -> Response {
    let body = match api {
        Api::V2 => json!({"errors": [{
            "status": status.as_u16().to_string(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "detail": detail,
        }]}),
        Api::V1 => json!({"code": status.as_u16(), "message": detail}),
    };
    (status, axum::Json(body)).into_response()
}

/// The router serving clients outside `allowed_cidrs`: 403 to every request, body unread.
pub fn forbidden() -> Router {
    Router::new().fallback(|| async {
        crate::listener::closing(error(
            Api::V2,
            StatusCode::FORBIDDEN,
            "the client's address is not in this receiver's allowed_cidrs",
        ))
    })
}

/// The answer to a request over the listener's `max_concurrent_requests`: 503, which
/// Datadog's clients retry.
pub fn busy() -> Response {
    crate::listener::busy_closing(error(
        Api::V2,
        StatusCode::SERVICE_UNAVAILABLE,
        "too many requests in flight on this receiver; retry later",
    ))
}

/// A pipeline refusal: 503 + `Retry-After` for a full queue or a shutdown (Datadog's clients
/// retry 503), 500 when a queue failed to store the batch.
fn refusal_response(api: Api, refusal: &Refusal) -> Response {
    let status = match refusal {
        Refusal::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Refusal::Full { .. } | Refusal::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut response = error(api, status, &refusal.to_string());
    let retry_after = match refusal {
        Refusal::Full { retry_after } => *retry_after,
        _ => RETRY_AFTER,
    };
    let secs = retry_after
        .as_secs()
        .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
        .max(1);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_to_their_api() {
        assert_eq!(route("/api/v2/logs"), Some((Api::V2, None)));
        assert_eq!(route("/v1/input"), Some((Api::V1, None)));
        assert_eq!(route("/v1/input/abc123"), Some((Api::V1, Some("abc123"))));
        assert_eq!(route("/v1/input/a/b"), None);
        assert_eq!(route("/v1/inputs"), None);
        assert_eq!(route("/api/v1/logs"), None);
    }
}
