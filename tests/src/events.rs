//! The events the end-to-end tests send and how they send them: the standard NDJSON event line,
//! bodies of fresh event ids, posting them to the webhook receiver, and starting a relay that
//! listens. One copy for every e2e file.

use crate::Siemrelay;
use std::net::SocketAddr;

/// One standard NDJSON event (`policy_violation`, `high`, source `toktra`, a timestamp on
/// 2026-11-20 09:00 UTC, a `user_email` attribute), newline included.
pub fn event_line(id: &str, request: usize, i: usize) -> String {
    format!(
        "{{\"event_id\":\"{id}\",\"timestamp\":\"2026-11-20T09:00:00.{i:06}Z\",\"event_type\":\"policy_violation\",\"severity\":\"high\",\"source\":\"toktra\",\"summary\":\"request {request} event {i}\",\"user_email\":\"u{i}@acme.example\"}}\n"
    )
}

/// A body of `per_request` events with fresh ids, each line made by `line(id, i)`; returns the
/// body and the ids in order.
pub fn ndjson_body_with(
    per_request: usize,
    line: impl Fn(&str, usize) -> String,
) -> (String, Vec<String>) {
    let mut ids = Vec::with_capacity(per_request);
    let mut body = String::new();
    for i in 0..per_request {
        let id = uuid::Uuid::new_v4().to_string();
        body.push_str(&line(&id, i));
        ids.push(id);
    }
    (body, ids)
}

/// A body of `per_request` standard events ([`event_line`]) for request number `request`.
pub fn ndjson_body(request: usize, per_request: usize) -> (String, Vec<String>) {
    ndjson_body_with(per_request, |id, i| event_line(id, request, i))
}

/// Posts `requests` bodies of `per_request` standard events concurrently to the webhook
/// receiver on `port`; asserts each is accepted and returns every id sent.
pub async fn post_events(port: u16, requests: usize, per_request: usize) -> Vec<String> {
    crate::post_ndjson_requests(port, requests, |request| ndjson_body(request, per_request)).await
}

/// Starts siemrelay on `config` with `env` and waits until the receiver on `port` listens.
pub fn start_listening(config: &str, env: &[(&str, &str)], port: u16) -> Siemrelay {
    let mut relay = Siemrelay::start_with(config, &[], env);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    relay
}
