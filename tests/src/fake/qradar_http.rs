//! A fake QRadar HTTP Receiver log source: accepts `POST` bodies of newline-separated event lines
//! (LEEF, CEF or JSON), answers 200 and records every non-empty line. Replies can be scripted
//! (`503` then `200`, …). Plain HTTP on 127.0.0.1 (the exporter's HTTPS options are the shared
//! HTTP client's, tested elsewhere).

use super::http_sink::{FakeServer, Recorder};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver recorded.
#[derive(Debug, Default)]
pub struct QradarHttpState {
    /// Every accepted line, in arrival order.
    pub lines: Vec<String>,
    /// Requests seen (accepted or not).
    pub requests: usize,
    /// `Content-Type` of the last request.
    pub content_type: Option<String>,
}

struct Shared {
    script: Mutex<VecDeque<u16>>,
    recorder: Recorder<QradarHttpState>,
}

/// A running fake HTTP Receiver.
pub struct FakeQradarHttp {
    server: FakeServer,
    shared: Arc<Shared>,
}

impl FakeQradarHttp {
    /// Starts the receiver on a free port.
    pub fn start() -> FakeQradarHttp {
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            recorder: Recorder::new(QradarHttpState::default()),
        });
        let router = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        FakeQradarHttp {
            server: FakeServer::start(router),
            shared,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Statuses for the next requests, in order (their bodies are not recorded).
    pub fn script(&self, statuses: impl IntoIterator<Item = u16>) {
        self.shared
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(statuses);
    }

    /// Reads the recorded state.
    pub fn read<R>(&self, f: impl FnOnce(&QradarHttpState) -> R) -> R {
        self.shared.recorder.read(f)
    }

    /// Waits (async) until at least `n` lines were accepted.
    pub async fn lines_reached(&self, n: usize, timeout: Duration) -> bool {
        self.shared
            .recorder
            .wait_until_async(timeout, |s| s.lines.len() >= n)
            .await
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let scripted = shared
        .script
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop_front();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = if method != Method::POST {
        405
    } else {
        scripted.unwrap_or(200)
    };
    shared.recorder.update(|state| {
        state.requests += 1;
        state.content_type = content_type;
        if status == 200 {
            let text = String::from_utf8_lossy(&body);
            state.lines.extend(
                text.split('\n')
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
        }
    });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "",
    )
        .into_response()
}
