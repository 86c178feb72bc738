//! The routes of the admin listener.
//!
//! Exporter ids contain `/` (`splunk_hec/prod`): `/api/v1/exporters/{id}` takes the id
//! percent-encoded (`splunk_hec%2Fprod`) or plain; the rest of the path after `exporters/` is
//! decoded and matched against the running exporters' ids first, then as `<id>/<action>`.

use super::auth::{self, Denied};
use super::control::{ApiFailure, Control};
use super::model::{
    DeadLetterItem, DeadLetterList, Exporter, ExporterChange, ExporterList, Pipeline,
    PipelineCounts, PipelineList,
};
use crate::commands::dlq::DeadLetters;
use crate::commands::test::test_exporter;
use crate::config::expand::scrub;
use crate::runtime::{ExporterView, Topology};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

pub(super) type Shared = State<Arc<Control>>;

/// Every route of the admin listener.
pub(super) fn router(control: Arc<Control>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/exporters", get(list_exporters))
        .route("/api/v1/exporters/{*rest}", any(exporter_route))
        .route("/api/v1/pipelines", get(list_pipelines))
        .route("/api/v1/info", get(info))
        .route("/api/v1/metrics/history", get(metrics_history))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/tap/{*id}", get(super::tap::tap))
        .route_layer(middleware::from_fn_with_state(
            control.clone(),
            require_token,
        ));
    Router::new()
        .merge(protected)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(crate::admin_page::router())
        .fallback(not_found)
        .layer(middleware::from_fn(scrub_response))
        .layer(middleware::from_fn_with_state(
            control.clone(),
            super::guard::guard,
        ))
        .with_state(control)
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body)).into_response()
    }
}

fn failure(status: u16, error: impl Into<String>, key: &str) -> Response {
    ApiFailure::new(status, error, key).into_response()
}

async fn require_token(State(control): Shared, request: Request, next: Next) -> Response {
    match auth::check(request.headers(), control.token()) {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            let message = match denied {
                Denied::Missing => "missing `Authorization: Bearer <token>`",
                Denied::Wrong => "wrong bearer token",
            };
            let mut response = failure(401, message, "Authorization");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"siemrelay\""),
            );
            response
        }
    }
}

/// Every answer of the API passes through the secret scrubber (buffered answers whole, streamed
/// ones chunk by chunk). Static documents (the OpenAPI document, the status page and its assets)
/// hold no secret and are served as they are; `/metrics` scrubs its label values itself (see
/// [`telemetry::scrub_label_values`](super::telemetry::scrub_label_values)).
async fn scrub_response(request: Request, next: Next) -> Response {
    use futures::StreamExt;
    let path = request.uri().path();
    let dynamic = path.starts_with("/api/") && path != "/api/v1/openapi.json";
    if !dynamic {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    let exact = axum::body::HttpBody::size_hint(&body).exact();
    match exact {
        Some(length) => {
            match axum::body::to_bytes(body, usize::try_from(length).unwrap_or(usize::MAX)).await {
                Ok(bytes) => {
                    let bytes = scrub_bytes(bytes);
                    parts.headers.remove(header::CONTENT_LENGTH);
                    Response::from_parts(parts, axum::body::Body::from(bytes))
                }
                Err(_) => failure(500, "cannot read the answer", ""),
            }
        }
        None => {
            parts.headers.remove(header::CONTENT_LENGTH);
            let stream = body.into_data_stream().map(|chunk| chunk.map(scrub_bytes));
            Response::from_parts(parts, axum::body::Body::from_stream(stream))
        }
    }
}

fn scrub_bytes(bytes: Bytes) -> Bytes {
    match std::str::from_utf8(&bytes).map(siemrelay_core::scrub::scrub) {
        Ok(std::borrow::Cow::Owned(text)) => Bytes::from(text),
        _ => bytes,
    }
}

async fn not_found() -> Response {
    failure(404, "no such endpoint; see /api/v1/openapi.json", "")
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(control): Shared) -> Response {
    if control.runtime().is_ready() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready"})),
        )
            .into_response()
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn metrics(State(control): Shared) -> Response {
    match control.metrics() {
        Some(metrics) => {
            let text = metrics.render(&control.runtime().topology());
            let text = super::telemetry::scrub_label_values(&text);
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
                .into_response()
        }
        None => failure(503, "the metrics recorder is not installed", ""),
    }
}

async fn list_exporters(State(control): Shared) -> Response {
    let topology = control.runtime().topology();
    let exporters = topology
        .exporters
        .iter()
        .map(|e| Exporter::of(e, &topology.secrets))
        .collect();
    Json(ExporterList { exporters }).into_response()
}

async fn info(State(control): Shared) -> Response {
    Json(control.info()).into_response()
}

async fn metrics_history(State(control): Shared) -> Response {
    Json(control.runtime().metrics_history()).into_response()
}

async fn list_pipelines(State(control): Shared) -> Response {
    let topology = control.runtime().topology();
    let counts = control
        .metrics()
        .map_or_else(PipelineCounts::default, |m| PipelineCounts {
            refusals: m.refusals(),
            drops: m.drops(),
        });
    let pipelines = topology
        .pipelines
        .iter()
        .map(|p| Pipeline::of(p, &topology, &counts))
        .collect();
    Json(PipelineList { pipelines }).into_response()
}

async fn reload(State(control): Shared) -> Response {
    match control.reload("api").await {
        Ok(summary) => Json(json!({"ok": true, "summary": summary})).into_response(),
        Err(failure) => {
            let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_REQUEST);
            let errors: Vec<_> = failure
                .body
                .errors
                .iter()
                .map(|e| json!({"path": e.path, "message": e.message}))
                .collect();
            (status, Json(json!({"ok": false, "error": failure.body.error, "key": failure.body.key, "errors": errors}))).into_response()
        }
    }
}

/// The decoded rest of the path after `/api/v1/exporters/`.
fn rest_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiFailure> {
    match path {
        Ok(Path(rest)) => Ok(rest.trim_matches('/').to_string()),
        Err(e) => Err(ApiFailure::new(
            400,
            format!("bad exporter id in the path: {e}"),
            "id",
        )),
    }
}

fn lookup<'a>(topology: &'a Topology, id: &str) -> Result<&'a ExporterView, ApiFailure> {
    topology
        .exporter(id)
        .ok_or_else(|| ApiFailure::new(404, format!("no running exporter {id:?}"), "id"))
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = failure(405, "method not allowed here", "");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Actions under `/api/v1/exporters/{id}/`: the last path segments, and the one method each
/// takes (longer suffixes first).
const ACTIONS: &[(&str, Method)] = &[
    ("dead_letters/replay", Method::POST),
    ("dead_letters", Method::GET),
    ("deliveries", Method::GET),
    ("test", Method::POST),
    ("enable", Method::POST),
    ("disable", Method::POST),
    ("acknowledge-losses", Method::POST),
];

/// The exporter id and action of `rest` when it ends in an action.
fn split_action(rest: &str) -> Option<(&str, &'static str, &'static Method)> {
    ACTIONS.iter().find_map(|(name, method)| {
        rest.strip_suffix(name)
            .and_then(|id| id.strip_suffix('/'))
            .filter(|id| !id.is_empty())
            .map(|id| (id, *name, method))
    })
}

/// Everything under `/api/v1/exporters/`: the resource is told from the decoded path, then the
/// method is checked against what that resource takes (405 with `Allow` otherwise).
async fn exporter_route(
    State(control): Shared,
    method: Method,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rest = match rest_of(path) {
        Ok(rest) => rest,
        Err(failure) => return failure.into_response(),
    };
    let topology = control.runtime().topology();
    let action = match topology.exporter(&rest) {
        Some(_) => None,
        None => split_action(&rest),
    };
    match action {
        None => match method {
            Method::GET => get_exporter(&topology, &rest),
            Method::PUT => put_exporter(&control, &rest, &headers, &body).await,
            Method::DELETE => delete_exporter(&control, &rest).await,
            _ => method_not_allowed("GET, PUT, DELETE"),
        },
        Some((id, name, allowed)) if method == *allowed => {
            let view = match lookup(&topology, id) {
                Ok(view) => view,
                Err(failure) => return failure.into_response(),
            };
            match name {
                "deliveries" => deliveries(view, &topology),
                "dead_letters" => dead_letters(&control, view, &topology, query.as_deref()),
                "dead_letters/replay" => {
                    let files = dead_letters_of(view);
                    match control.replay_dead_letters(&view.id, files).await {
                        Ok(status) => {
                            let code = if status.state == "running" {
                                StatusCode::ACCEPTED
                            } else {
                                StatusCode::OK
                            };
                            (code, Json(status)).into_response()
                        }
                        Err(failure) => failure.into_response(),
                    }
                }
                "test" => test(view, &topology).await,
                "acknowledge-losses" => acknowledge_losses(view, &topology),
                _ => {
                    let saved = control
                        .runtime()
                        .set_exporter_enabled(&view.handle, name == "enable")
                        .await;
                    tracing::info!(exporter = %id, "exporter {name}d through the admin API");
                    match saved {
                        Ok(()) => Json(Exporter::of(view, &topology.secrets)).into_response(),
                        Err(e) => failure(
                            500,
                            format!("{id} is {name}d, but only until a restart: {e}"),
                            "",
                        ),
                    }
                }
            }
        }
        Some((_, _, allowed)) => method_not_allowed(if *allowed == Method::GET {
            "GET"
        } else {
            "POST"
        }),
    }
}

/// An operator has seen the losses the disk queue found at open: they leave the status.
fn acknowledge_losses(view: &ExporterView, topology: &Topology) -> Response {
    match view.handle.acknowledge_losses() {
        Ok(count) => {
            tracing::info!(exporter = %view.id, losses = count, "queue losses acknowledged through the admin API");
            Json(json!({"acknowledged": count, "exporter": Exporter::of(view, &topology.secrets)}))
                .into_response()
        }
        Err(e) => failure(500, scrub(&e.to_string(), &topology.secrets), "id"),
    }
}

/// The dead-letter files of a running exporter (in the directory its dead-letter file is in).
fn dead_letters_of(view: &ExporterView) -> DeadLetters {
    let live = view.handle.dead_letter().path();
    let dir = live.parent().unwrap_or(std::path::Path::new("."));
    DeadLetters::new(dir, &view.id)
}

/// Entries listed by default, and at most.
const DEAD_LETTERS_SHOWN: usize = 100;
const DEAD_LETTERS_MAX: usize = 1_000;

fn dead_letters(
    control: &Control,
    view: &ExporterView,
    topology: &Topology,
    query: Option<&str>,
) -> Response {
    let mut limit = DEAD_LETTERS_SHOWN;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("limit", value)) => match value.parse::<usize>() {
                Ok(n) if (1..=DEAD_LETTERS_MAX).contains(&n) => limit = n,
                _ => {
                    return failure(
                        400,
                        format!("limit must be a number from 1 to {DEAD_LETTERS_MAX}"),
                        "limit",
                    );
                }
            },
            _ => return failure(400, format!("unknown query parameter {pair:?}"), "query"),
        }
    }
    let files = dead_letters_of(view);
    let (total, entries, problems) = files.newest(limit);
    let text = |value: &serde_json::Value| value.as_str().map(str::to_string);
    let entries = entries
        .into_iter()
        .map(|entry| DeadLetterItem {
            time: entry.time,
            attempts: entry.attempts,
            error: scrub(&entry.error, &topology.secrets),
            event_id: text(&entry.event["event_id"]),
            event_type: text(&entry.event["event_type"]),
            severity: text(&entry.event["severity"]),
            summary: text(&entry.event["summary"]),
        })
        .collect();
    Json(DeadLetterList {
        exporter: view.id.clone(),
        file: files.live().display().to_string(),
        total,
        entries,
        problems,
        replay: control.replay_status(&view.id),
    })
    .into_response()
}

fn get_exporter(topology: &Topology, id: &str) -> Response {
    match lookup(topology, id) {
        Ok(view) => Json(Exporter::of(view, &topology.secrets)).into_response(),
        Err(failure) => failure.into_response(),
    }
}

fn deliveries(view: &ExporterView, topology: &Topology) -> Response {
    let deliveries: Vec<_> = view
        .handle
        .status()
        .history()
        .into_iter()
        .map(|mut record| {
            record.error = record.error.map(|e| scrub(&e, &topology.secrets));
            record
        })
        .collect();
    Json(json!({"deliveries": deliveries})).into_response()
}

async fn test(view: &ExporterView, topology: &Topology) -> Response {
    let sink = view.handle.sink().clone();
    let signing: Vec<String> = topology
        .pipelines
        .iter()
        .filter(|p| p.exporters.contains(&view.id))
        .filter(|p| p.processors.iter().any(|(_, kind)| kind == "sign"))
        .map(|p| p.name.clone())
        .collect();
    let mut report = test_exporter(sink.as_ref(), view.timeout, view.file.as_ref(), &signing).await;
    report.reply = report.reply.map(|r| scrub(&r, &topology.secrets));
    report.hint = report.hint.map(|h| scrub(&h, &topology.secrets));
    Json(report).into_response()
}

async fn put_exporter(control: &Control, id: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json_body {
        return failure(
            400,
            "send the body as JSON with `Content-Type: application/json`",
            "Content-Type",
        );
    }
    let change: ExporterChange = match serde_json::from_slice(body) {
        Ok(change) => change,
        Err(e) => {
            return failure(
                400,
                format!("the body is not a valid exporter change: {e}"),
                "body",
            );
        }
    };
    match control.put_exporter(id, change).await {
        Ok(created) => {
            let topology = control.runtime().topology();
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            match topology.exporter(id) {
                Some(view) => (status, Json(Exporter::of(view, &topology.secrets))).into_response(),
                None => failure(
                    500,
                    "the exporter was saved but is not running; see the logs",
                    "id",
                ),
            }
        }
        Err(failure) => failure.into_response(),
    }
}

async fn delete_exporter(control: &Control, id: &str) -> Response {
    match control.delete_exporter(id).await {
        Ok(()) => Json(json!({"deleted": id})).into_response(),
        Err(failure) => failure.into_response(),
    }
}
