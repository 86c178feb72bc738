//! A fake Graylog GELF HTTP input: `POST /gelf` with one GELF 1.1 message (a JSON object), or
//! several newline-separated ones (Graylog's "bulk receiving"), answered `202 Accepted`.
//!
//! Like Graylog it checks the message (version `1.1`, non-empty `host` and `short_message`, no
//! `_id` field, additional fields `_[\w.-]+`) and answers `400` otherwise. Messages are recorded by
//! their `_event_id`. It can answer `503` to every request while "unavailable".

use super::http_sink::{EventLog, FakeServer, Recorder};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What the fake recorded.
#[derive(Debug, Default)]
pub struct GelfState {
    /// Accepted messages by `_event_id`.
    pub messages: EventLog,
    /// Requests answered 202.
    pub accepted_requests: usize,
    /// Requests answered 503 while unavailable.
    pub unavailable_replies: usize,
    /// Requests refused as malformed (400), with the reason.
    pub rejected: Vec<String>,
    /// `Content-Type` headers seen.
    pub content_types: Vec<String>,
}

struct Shared {
    unavailable: AtomicBool,
    /// `_event_id` → (status to answer a request carrying it, times left; `usize::MAX`: always).
    failing: std::sync::Mutex<std::collections::HashMap<String, (StatusCode, usize)>>,
    recorder: Recorder<GelfState>,
}

/// A running fake GELF HTTP input.
pub struct FakeGelf {
    server: FakeServer,
    shared: Arc<Shared>,
}

fake_accessors!(FakeGelf, GelfState, |s| &s.messages.counts);

impl FakeGelf {
    /// Starts the input on a free port.
    pub fn start() -> FakeGelf {
        let shared = Arc::new(Shared {
            unavailable: AtomicBool::new(false),
            failing: Default::default(),
            recorder: Recorder::new(GelfState::default()),
        });
        let router = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        FakeGelf {
            server: FakeServer::start(router),
            shared,
        }
    }

    /// `http://127.0.0.1:<port>/gelf`.
    pub fn endpoint(&self) -> String {
        format!("{}/gelf", self.server.url())
    }

    /// A request carrying one of `ids` is answered `503` once per id (then accepted).
    pub fn fail_once(&self, ids: &[String]) {
        self.fail(ids, StatusCode::SERVICE_UNAVAILABLE, 1);
    }

    /// A request carrying one of `ids` is refused `400`, every time (as Graylog refuses a
    /// message it cannot process).
    pub fn refuse(&self, ids: &[String]) {
        self.fail(ids, StatusCode::BAD_REQUEST, usize::MAX);
    }

    fn fail(&self, ids: &[String], status: StatusCode, times: usize) {
        let mut failing = self
            .shared
            .failing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for id in ids {
            failing.insert(id.clone(), (status, times));
        }
    }

    /// While true, every request is answered `503 Service Unavailable`.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.shared.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Blocks until `n` requests were answered 503 (or `timeout`).
    pub fn wait_for_unavailable_replies(&self, n: usize, timeout: Duration) -> bool {
        self.shared
            .recorder
            .wait_until(timeout, |s| s.unavailable_replies >= n)
    }
}

/// Checks one GELF message like Graylog's GELF input does.
pub fn check_message(message: &Value) -> Result<(), String> {
    let Some(object) = message.as_object() else {
        return Err("a GELF message must be a JSON object".into());
    };
    if object.get("version").and_then(Value::as_str) != Some("1.1") {
        return Err("version must be \"1.1\"".into());
    }
    for field in ["host", "short_message"] {
        if object
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            return Err(format!("{field} must be a non-empty string"));
        }
    }
    for (key, value) in object {
        if !key.starts_with('_') {
            continue;
        }
        if key == "_id" {
            return Err("the additional field _id is not allowed".into());
        }
        if !key[1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            || key.len() == 1
        {
            return Err(format!("invalid additional field name {key:?}"));
        }
        if !(value.is_string() || value.is_number()) {
            return Err(format!(
                "additional field {key} must be a string or a number"
            ));
        }
    }
    Ok(())
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if uri.path() != "/gelf" {
        return (StatusCode::NOT_FOUND, format!("no input at {}", uri.path()));
    }
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "POST GELF messages".into());
    }
    if shared.unavailable.load(Ordering::SeqCst) {
        shared.recorder.update(|s| s.unavailable_replies += 1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "Graylog is unavailable".into(),
        );
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let parsed: Result<Vec<Value>, String> = body
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| {
            let message: Value =
                serde_json::from_slice(line).map_err(|e| format!("malformed JSON: {e}"))?;
            check_message(&message)?;
            Ok(message)
        })
        .collect();
    if let Ok(messages) = &parsed
        && let Some(status) = scripted_failure(&shared, messages)
    {
        return (status, "refused by the test".into());
    }
    match parsed {
        Ok(messages) if !messages.is_empty() => {
            shared.recorder.update(|s| {
                s.accepted_requests += 1;
                s.content_types.push(content_type);
                for message in messages {
                    let id = message
                        .get("_event_id")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    s.messages.add(id.as_deref(), message);
                }
            });
            (StatusCode::ACCEPTED, String::new())
        }
        Ok(_) => (StatusCode::BAD_REQUEST, "empty body".into()),
        Err(reason) => {
            shared.recorder.update(|s| s.rejected.push(reason.clone()));
            (StatusCode::BAD_REQUEST, reason)
        }
    }
}

/// The scripted failure for a request carrying these messages, if any (counting it down).
fn scripted_failure(shared: &Shared, messages: &[Value]) -> Option<StatusCode> {
    let mut failing = shared.failing.lock().unwrap_or_else(|p| p.into_inner());
    let id = messages
        .iter()
        .filter_map(|m| m.get("_event_id").and_then(Value::as_str))
        .find(|id| failing.get(*id).is_some_and(|(_, left)| *left > 0))?;
    let (status, left) = failing.get_mut(id)?;
    if *left != usize::MAX {
        *left -= 1;
    }
    Some(*status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_messages_like_graylog() {
        assert!(
            check_message(&json!({"version":"1.1","host":"h","short_message":"m","_a":1})).is_ok()
        );
        assert!(check_message(&json!({"version":"1.0","host":"h","short_message":"m"})).is_err());
        assert!(check_message(&json!({"version":"1.1","host":"","short_message":"m"})).is_err());
        assert!(
            check_message(&json!({"version":"1.1","host":"h","short_message":"m","_id":"x"}))
                .is_err()
        );
        assert!(
            check_message(&json!({"version":"1.1","host":"h","short_message":"m","_b":true}))
                .is_err()
        );
        assert!(
            check_message(&json!({"version":"1.1","host":"h","short_message":"m","_a b":1}))
                .is_err()
        );
    }

    #[test]
    fn accepts_posts_and_answers_503_while_unavailable() {
        let fake = FakeGelf::start();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let statuses = runtime.block_on(async {
            let client = reqwest::Client::new();
            let post = |body: &'static str| client.post(fake.endpoint()).body(body).send();
            let ok = post(r#"{"version":"1.1","host":"h","short_message":"m","_event_id":"a"}"#).await.unwrap().status();
            let bulk = post("{\"version\":\"1.1\",\"host\":\"h\",\"short_message\":\"m\",\"_event_id\":\"b\"}\n{\"version\":\"1.1\",\"host\":\"h\",\"short_message\":\"m\",\"_event_id\":\"c\"}\n").await.unwrap().status();
            let bad = post(r#"{"version":"1.1"}"#).await.unwrap().status();
            fake.set_unavailable(true);
            let down = post(r#"{"version":"1.1","host":"h","short_message":"m","_event_id":"d"}"#).await.unwrap().status();
            [ok.as_u16(), bulk.as_u16(), bad.as_u16(), down.as_u16()]
        });
        assert_eq!(statuses, [202, 202, 400, 503]);
        assert_eq!(fake.read(|s| s.messages.distinct()), 3);
        assert_eq!(
            fake.read(|s| (s.unavailable_replies, s.rejected.len())),
            (1, 1)
        );
    }
}
