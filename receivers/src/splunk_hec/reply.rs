//! HEC's answers, byte for byte: `{"text":"<text>","code":<n>}` (members in that order, no
//! spaces), plus `"ackId":N` on a success with acknowledgement and `"invalid-event-number":N`
//! (0-based) when one envelope is at fault. Status codes and texts are those of Splunk's
//! documentation ("Troubleshoot HTTP Event Collector", table of HEC status codes).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// One HEC status: its code, HTTP status and Splunk's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HecStatus {
    /// The `code` member.
    pub code: u16,
    /// The HTTP status.
    pub http: StatusCode,
    /// The `text` member, as Splunk writes it.
    pub text: &'static str,
}

const fn status(code: u16, http: StatusCode, text: &'static str) -> HecStatus {
    HecStatus { code, http, text }
}

/// 0: the request was accepted.
pub const SUCCESS: HecStatus = status(0, StatusCode::OK, "Success");
/// 2: no token anywhere in the request.
pub const TOKEN_REQUIRED: HecStatus = status(2, StatusCode::UNAUTHORIZED, "Token is required");
/// 3: an `Authorization` header that is neither `Splunk <token>` nor basic auth.
pub const INVALID_AUTHORIZATION: HecStatus =
    status(3, StatusCode::UNAUTHORIZED, "Invalid authorization");
/// 4: a token that is not configured.
pub const INVALID_TOKEN: HecStatus = status(4, StatusCode::FORBIDDEN, "Invalid token");
/// 5: an empty body.
pub const NO_DATA: HecStatus = status(5, StatusCode::BAD_REQUEST, "No data");
/// 6: a body or envelope that cannot be read.
pub const INVALID_DATA_FORMAT: HecStatus =
    status(6, StatusCode::BAD_REQUEST, "Invalid data format");
/// 7: an index the token may not write to.
pub const INCORRECT_INDEX: HecStatus = status(7, StatusCode::BAD_REQUEST, "Incorrect index");
/// 8: a queue failed to store the events (retryable).
pub const INTERNAL_ERROR: HecStatus = status(
    8,
    StatusCode::INTERNAL_SERVER_ERROR,
    "Internal server error",
);
/// 9: backpressure (a full queue, the memory budget, the request cap).
pub const SERVER_BUSY: HecStatus = status(9, StatusCode::SERVICE_UNAVAILABLE, "Server is busy");
/// 10: acknowledgement is on and the request names no channel.
pub const CHANNEL_MISSING: HecStatus =
    status(10, StatusCode::BAD_REQUEST, "Data channel is missing");
/// 11: the channel is not a GUID.
pub const INVALID_CHANNEL: HecStatus = status(11, StatusCode::BAD_REQUEST, "Invalid data channel");
/// 12: an envelope without `event`.
pub const EVENT_REQUIRED: HecStatus =
    status(12, StatusCode::BAD_REQUEST, "Event field is required");
/// 13: an envelope whose `event` is an empty or blank string.
pub const EVENT_BLANK: HecStatus =
    status(13, StatusCode::BAD_REQUEST, "Event field cannot be blank");
/// 14: an ack poll while acknowledgement is off.
pub const ACK_DISABLED: HecStatus = status(14, StatusCode::BAD_REQUEST, "ACK is disabled");
/// 15: `fields` that is not a flat object of strings or string arrays.
pub const INDEXED_FIELDS: HecStatus = status(
    15,
    StatusCode::BAD_REQUEST,
    "Error in handling indexed fields",
);
/// 16: `?token=` while `allow_query_token` is off.
pub const QUERY_TOKEN_DISABLED: HecStatus = status(
    16,
    StatusCode::BAD_REQUEST,
    "Query string authorization is not enabled",
);
/// 17: `GET /services/collector/health`, healthy.
pub const HEALTHY: HecStatus = status(17, StatusCode::OK, "HEC is healthy");
/// 18: health while the pipeline has recently refused events for a full queue.
pub const QUEUES_FULL: HecStatus = status(
    18,
    StatusCode::SERVICE_UNAVAILABLE,
    "HEC is unhealthy, queues are full",
);

/// The body of a reply: `{"text":…,"code":…}` and the optional trailing member.
pub fn body(status: HecStatus, extra: Option<(&str, u64)>) -> String {
    let mut out = String::with_capacity(64);
    out.push_str("{\"text\":");
    out.push_str(&serde_json::Value::from(status.text).to_string());
    out.push_str(",\"code\":");
    out.push_str(&status.code.to_string());
    if let Some((key, value)) = extra {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

/// A reply with `status`'s HTTP status and body.
pub fn reply(status: HecStatus) -> Response {
    json(status.http, body(status, None))
}

/// A success carrying an ack id.
pub fn success_with_ack(ack_id: u64) -> Response {
    json(StatusCode::OK, body(SUCCESS, Some(("ackId", ack_id))))
}

/// A refusal naming the 0-based envelope at fault.
pub fn at_event(status: HecStatus, event: usize) -> Response {
    json(
        status.http,
        body(status, Some(("invalid-event-number", event as u64))),
    )
}

/// A busy answer with `Retry-After` (whole seconds, at least 1).
pub fn busy(retry_after: Duration) -> Response {
    let mut response = reply(SERVER_BUSY);
    let secs = retry_after
        .as_secs()
        .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
        .max(1);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// An answer outside Splunk's table (size limits, slow bodies, unknown paths): the given HTTP
/// status with a `text` saying what is wrong and a non-zero `code`, so that a client that only
/// reads `code` (Splunk's own Node.js library does) sees a failure.
pub fn other(http: StatusCode, code: u16, text: &str) -> Response {
    let body = format!(
        "{{\"text\":{},\"code\":{code}}}",
        serde_json::Value::from(text)
    );
    json(http, body)
}

/// `{"acks":{"<id>":true|false,…}}` in the order asked.
pub fn acks(answers: &[(u64, bool)]) -> Response {
    let mut out = String::with_capacity(12 + answers.len() * 12);
    out.push_str("{\"acks\":{");
    for (i, (id, done)) in answers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(&id.to_string());
        out.push_str("\":");
        out.push_str(if *done { "true" } else { "false" });
    }
    out.push_str("}}");
    json(StatusCode::OK, out)
}

fn json(http: StatusCode, body: String) -> Response {
    (
        http,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_byte_exact() {
        assert_eq!(body(SUCCESS, None), r#"{"text":"Success","code":0}"#);
        assert_eq!(
            body(SUCCESS, Some(("ackId", 7))),
            r#"{"text":"Success","code":0,"ackId":7}"#
        );
        assert_eq!(
            body(INVALID_DATA_FORMAT, Some(("invalid-event-number", 2))),
            r#"{"text":"Invalid data format","code":6,"invalid-event-number":2}"#
        );
        assert_eq!(
            body(QUEUES_FULL, None),
            r#"{"text":"HEC is unhealthy, queues are full","code":18}"#
        );
    }
}
