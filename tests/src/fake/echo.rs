//! A hostile SIEM: it answers every request with an error that echoes every request header back
//! (as several real SIEMs do in their error bodies), alternating `503` (retryable) and `400`
//! (permanent). Each header value is echoed raw (`Name: value` lines), inside a JSON object
//! (JSON-escaped), percent-encoded (as a query string would be) and base64-encoded; the body also
//! carries text that tries to forge a log line (a newline, a fake timestamp and an ANSI escape).

use super::http_sink::FakeServer;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The text the echo body carries to try to forge a log line.
pub const FORGED_LINE: &str =
    "\n2026-01-01T00:00:00.000000Z  INFO siemrelay: forged by the SIEM\u{1b}[31m";

/// The echoing SIEM.
pub struct EchoSiem {
    server: FakeServer,
    requests: Arc<AtomicUsize>,
}

impl EchoSiem {
    /// Starts it on a free port of 127.0.0.1.
    pub fn start() -> EchoSiem {
        let requests = Arc::new(AtomicUsize::new(0));
        let router = Router::new().fallback(echo).with_state(requests.clone());
        EchoSiem {
            server: FakeServer::start(router),
            requests,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn echo(State(requests): State<Arc<AtomicUsize>>, headers: HeaderMap) -> Response {
    let n = requests.fetch_add(1, Ordering::SeqCst);
    let status = if n % 2 == 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut raw = String::new();
    let mut json = serde_json::Map::new();
    let mut encoded = Vec::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        raw.push_str(&format!("{name}: {value}\r\n"));
        encoded.push(format!(
            "{name}={}&{name}_b64={}",
            percent(&value),
            base64::engine::general_purpose::STANDARD.encode(&value)
        ));
        json.insert(name.to_string(), serde_json::Value::String(value));
    }
    let body = format!(
        "{{\"error\":\"request refused\",\"headers\":{}}}\nquery: ?{}\n{raw}{FORGED_LINE}",
        serde_json::Value::Object(json),
        encoded.join("&")
    );
    (status, body).into_response()
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
