//! `GET /api/v1/tap/{id}?sample=N&limit=N`: the events passing a component, streamed as NDJSON
//! (what `siemrelay tap` prints).
//!
//! Each line is an event in its JSON form, or a notice: an object whose only key is `tap`
//! (events never have a top-level `tap` key). The first line says what is tapped:
//! `{"tap":{"component":"filter/high","kind":"processor","sample":1,"limit":null}}`. Copies the
//! reader was too slow for are dropped, never waited for, and reported as
//! `{"tap":{"dropped":N,"message":"…"}}`; the stream ends with `{"tap":{"end":"…"}}` when
//! `limit` events were sent or siemrelay shuts down. While nothing passes, a bare newline every
//! few seconds keeps the connection checked (NDJSON readers skip empty lines).

use super::api::Shared;
use super::control::ApiFailure;
use crate::runtime::{Tap, TapRefused, Topology};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;

/// How long a quiet stream waits before a keep-alive newline (and a drop report, if any).
const IDLE: Duration = Duration::from_secs(2);

/// Query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TapParams {
    /// Keep one event in this many (default 1: every event).
    sample: Option<u64>,
    /// End the stream after this many events.
    limit: Option<u64>,
}

/// What kind of component `id` is, among the running ones.
fn kind_of(topology: &Topology, id: &str) -> Option<&'static str> {
    if topology.exporter(id).is_some() {
        return Some("exporter");
    }
    for pipeline in &topology.pipelines {
        if pipeline.receivers.iter().any(|r| r.id == id) {
            return Some("receiver");
        }
        if pipeline.processors.iter().any(|(p, _)| p == id) {
            return Some("processor");
        }
    }
    None
}

/// The running components' ids, for a 404.
fn running(topology: &Topology) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for pipeline in &topology.pipelines {
        ids.extend(pipeline.receivers.iter().map(|r| r.id.clone()));
        ids.extend(pipeline.processors.iter().map(|(p, _)| p.clone()));
    }
    ids.extend(topology.exporters.iter().map(|e| e.id.clone()));
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    ids
}

/// `GET /api/v1/tap/{id}`.
pub(super) async fn tap(
    axum::extract::State(control): Shared,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<TapParams>, QueryRejection>,
) -> Response {
    let id = match path {
        Ok(Path(id)) => id.trim_matches('/').to_string(),
        Err(e) => {
            return ApiFailure::new(400, format!("bad component id: {e}"), "id").into_response();
        }
    };
    let params = match query {
        Ok(Query(params)) => params,
        Err(e) => {
            return ApiFailure::new(400, format!("bad query: {}", e.body_text()), "query")
                .into_response();
        }
    };
    let sample = params.sample.unwrap_or(1);
    if sample == 0 {
        return ApiFailure::new(400, "sample must be at least 1", "sample").into_response();
    }
    if params.limit == Some(0) {
        return ApiFailure::new(400, "limit must be at least 1", "limit").into_response();
    }
    let topology = control.runtime().topology();
    let Some(kind) = kind_of(&topology, &id) else {
        return ApiFailure::new(
            404,
            format!(
                "no running component {id:?}; running: {}",
                running(&topology).join(", ")
            ),
            "id",
        )
        .into_response();
    };
    let tap = match control.runtime().taps().open(&id, sample) {
        Ok(tap) => tap,
        Err(TapRefused::TooMany) => {
            return ApiFailure::new(
                429,
                format!(
                    "{} taps are open already; close one first",
                    crate::runtime::MAX_TAPS
                ),
                "",
            )
            .into_response();
        }
    };
    tracing::info!(component = %id, kind = %kind, sample, "tap opened");
    let header =
        json!({"tap": {"component": id, "kind": kind, "sample": sample, "limit": params.limit}});
    let stream = TapStream {
        tap,
        header: Some(line(&header)),
        remaining: params.limit,
        sent: 0,
        done: false,
    };
    let body = Body::from_stream(futures::stream::unfold(stream, TapStream::next));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn line(value: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The state of one tap's response body.
struct TapStream {
    tap: Tap,
    header: Option<Vec<u8>>,
    remaining: Option<u64>,
    sent: u64,
    done: bool,
}

impl TapStream {
    /// A report of the copies dropped since the last one, if any.
    fn dropped_notice(&self, out: &mut Vec<u8>) {
        let dropped = self.tap.subscriber.take_dropped();
        if dropped > 0 {
            out.extend(line(&json!({"tap": {
                "dropped": dropped,
                "message": format!("{dropped} events were not copied: this tap reads slower than they pass (the pipeline was not slowed)"),
            }})));
        }
    }

    fn end(&mut self, out: &mut Vec<u8>, why: &str) {
        self.dropped_notice(out);
        out.extend(line(&json!({"tap": {"end": why, "events": self.sent}})));
        self.done = true;
    }

    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, TapStream)> {
        if let Some(header) = self.header.take() {
            return Some((Ok(Bytes::from(header)), self));
        }
        if self.done {
            return None;
        }
        let mut out = Vec::new();
        tokio::select! {
            _ = self.tap.closed.cancelled() => self.end(&mut out, "siemrelay is shutting down"),
            received = tokio::time::timeout(IDLE, self.tap.events.recv()) => match received {
                Ok(Some(events)) => {
                    self.dropped_notice(&mut out);
                    for event in &events {
                        if self.remaining == Some(0) {
                            break;
                        }
                        event.write_json(&mut out);
                        out.push(b'\n');
                        self.sent += 1;
                        if let Some(remaining) = &mut self.remaining {
                            *remaining -= 1;
                        }
                    }
                    if self.remaining == Some(0) {
                        self.end(&mut out, "limit reached");
                    }
                }
                Ok(None) => self.end(&mut out, "the tap was closed"),
                Err(_) => {
                    self.dropped_notice(&mut out);
                    if out.is_empty() {
                        out.push(b'\n');
                    }
                }
            },
        }
        Some((Ok(Bytes::from(out)), self))
    }
}
