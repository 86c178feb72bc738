//! HEC replies: `{"text":"…","code":N}` (+ `invalid-event-number`, + `ackId`), judged per the
//! retry table in the README:
//!
//! - 2xx → delivered; 413 → split the request.
//! - codes 8, 9, 18–20 and HTTP 408, 429, 5xx → retry (honouring `Retry-After`).
//! - codes 1–4, 21, 22 (token), 7 (index), 10, 11 (channel), 14 (acks off), 16 → permanent for the
//!   whole request, with a loud reason.
//! - 400 with `invalid-event-number: N` (codes 6, 12, 13, 15): objects `0..N-1` were indexed,
//!   object N is dead-lettered, `N+1..` are resent. Code 7 (reported one position late by Splunk)
//!   is not split this way when every envelope carries the same configured index (the whole
//!   request fails); with `index_from` (per-event indexes) object N-1 is the one refused.

use crate::delivery::http::{Classified, Reply};
use crate::delivery::{Outcome, Outcomes, RequestRecord, default_hint};
use serde::Deserialize;
use std::sync::Arc;

/// The JSON body of a HEC reply.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct HecReply {
    /// Human-readable status.
    #[serde(default)]
    pub text: Option<String>,
    /// HEC status code.
    #[serde(default)]
    pub code: Option<i64>,
    /// 0-based position of the first object that failed.
    #[serde(default, rename = "invalid-event-number")]
    pub invalid_event_number: Option<usize>,
    /// Acknowledgement id (indexer acknowledgement on).
    #[serde(default, rename = "ackId")]
    pub ack_id: Option<u64>,
}

impl HecReply {
    /// Parses a reply body; `None` when it is not a HEC JSON object (e.g. a proxy's HTML page).
    pub fn parse(body: &[u8]) -> Option<HecReply> {
        serde_json::from_slice(body).ok()
    }

    /// `code 4: Invalid token`.
    pub fn describe(&self) -> String {
        match (&self.code, &self.text) {
            (Some(code), Some(text)) => format!("code {code}: {text}"),
            (Some(code), None) => format!("code {code}"),
            (None, Some(text)) => text.clone(),
            (None, None) => "no HEC code".into(),
        }
    }
}

/// Judges a reply for a request carrying `events` envelopes; `index` is the configured index,
/// `routed` says whether envelopes carry per-event indexes (`index_from`).
pub fn classify(reply: &Reply<'_>, events: usize, index: Option<&str>, routed: bool) -> Classified {
    let status = reply.status;
    if (200..300).contains(&status) {
        return Classified::Outcomes(Outcomes::Uniform(Outcome::Delivered));
    }
    if status == 413 {
        return Classified::Split;
    }
    let parsed = HecReply::parse(reply.body);
    let code = parsed.as_ref().and_then(|p| p.code);
    let detail = match &parsed {
        Some(p) => format!("HTTP {status}, {}", p.describe()),
        None => format!("HTTP {status}: {}", reply.text()),
    };
    let permanent =
        |reason: String| Classified::Outcomes(Outcomes::Uniform(Outcome::permanent(reason)));
    match code {
        Some(8 | 9 | 18..=20) => {}
        _ if matches!(status, 408 | 429 | 500..=599) => {}
        Some(1..=4 | 21 | 22) => return permanent(format!("HEC rejected the token ({detail})")),
        Some(7) if routed => {
            // Splunk reports code 7 one position late: object N-1 named the index.
            let late = parsed.as_ref().and_then(|p| p.invalid_event_number);
            if let Some(bad) = late.and_then(|n| n.checked_sub(1)).filter(|b| *b < events) {
                return per_event(bad, events, &detail);
            }
            return permanent(format!(
                "HEC rejected an event's index ({detail}): the token may not write to it"
            ));
        }
        Some(7) => {
            return permanent(format!(
                "HEC rejected the index {} ({detail}): the token may not write to it",
                index.map_or_else(|| "(token default)".to_string(), |i| format!("{i:?}"))
            ));
        }
        Some(10 | 11) => return permanent(format!("HEC rejected the request channel ({detail})")),
        Some(14) => {
            return permanent(format!(
                "HEC indexer acknowledgement is disabled for this token ({detail}): set acknowledgements: false or enable it on the token"
            ));
        }
        Some(16) => return permanent(format!("HEC refused query-string authorization ({detail})")),
        _ => {
            let bad = parsed.as_ref().and_then(|p| p.invalid_event_number);
            return match bad {
                Some(bad) if bad < events => per_event(bad, events, &detail),
                _ => permanent(format!("HEC refused the request ({detail})")),
            };
        }
    }
    Classified::Outcomes(Outcomes::Uniform(Outcome::Retry {
        reason: format!("HEC is busy or failing ({detail})").into(),
        after: reply.retry_after(),
    }))
}

/// Objects before `bad` were indexed, `bad` is refused for good, the rest are resent.
fn per_event(bad: usize, events: usize, detail: &str) -> Classified {
    let refused: Arc<str> =
        format!("HEC rejected this event ({detail}, invalid-event-number {bad})").into();
    let resend: Arc<str> =
        format!("HEC stopped at the invalid event {bad} of the request ({detail}); resending the events after it")
            .into();
    let outcomes = (0..events)
        .map(|i| match i.cmp(&bad) {
            std::cmp::Ordering::Less => Outcome::Delivered,
            std::cmp::Ordering::Equal => Outcome::Permanent {
                reason: refused.clone(),
            },
            std::cmp::Ordering::Greater => Outcome::Retry {
                reason: resend.clone(),
                after: None,
            },
        })
        .collect();
    Classified::Outcomes(Outcomes::PerEvent(outcomes))
}

/// A hint for a failed `siemrelay test`, from the HEC code in the reply.
pub fn hint_for(record: &RequestRecord, index: Option<&str>) -> Option<String> {
    let Some(status) = record.http_status else {
        return Some(
            "the HEC endpoint is unreachable: check `endpoint` (host, port 8088, http vs https), TLS settings and firewalls"
                .into(),
        );
    };
    let code = record
        .reply
        .as_deref()
        .and_then(|r| HecReply::parse(r.as_bytes()))
        .and_then(|r| r.code);
    let hint = match code {
        Some(1) => "the HEC token is disabled: enable it in Splunk (Settings → Data inputs → HTTP Event Collector)".into(),
        Some(2..=4 | 21 | 22) => {
            "invalid token: check `token` (the HEC token GUID, sent as `Authorization: Splunk <token>`)".into()
        }
        Some(7) => format!(
            "incorrect index: the token may not write to index {}; add it to the token's allowed indexes or change `index`",
            index.unwrap_or("(token default)")
        ),
        Some(8 | 9 | 18..=20) => "HEC is busy or unhealthy: Splunk's queues are full or an indexer is down; deliveries are retried".into(),
        Some(10 | 11) => "the token requires a channel (indexer acknowledgement is on): set `acknowledgements: true`".into(),
        Some(14) => "indexer acknowledgement is disabled for this token: set `acknowledgements: false` or enable it on the token".into(),
        Some(5 | 6 | 12 | 13 | 15) => "HEC refused the event format: report this as a siemrelay bug with the reply".into(),
        _ if status == 404 => format!(
            "not found: `endpoint` must be the HEC base URL (e.g. https://splunk.example.com:8088); siemrelay appends {}; is HEC enabled?",
            super::EVENT_PATH
        ),
        _ => return default_hint(record),
    };
    Some(hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn judge(status: u16, body: &str, events: usize) -> Classified {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        let reply = Reply {
            status,
            headers: &headers,
            body: body.as_bytes(),
        };
        classify(&reply, events, Some("security"), false)
    }

    fn uniform(classified: Classified) -> Outcome {
        match classified {
            Classified::Outcomes(Outcomes::Uniform(outcome)) => outcome,
            other => panic!("expected one outcome, got {other:?}"),
        }
    }

    #[test]
    fn success_busy_and_server_errors() {
        assert_eq!(
            uniform(judge(200, r#"{"text":"Success","code":0}"#, 3)),
            Outcome::Delivered
        );
        for (status, body) in [
            (503, r#"{"text":"Server is busy","code":9}"#),
            (500, r#"{"text":"Internal server error","code":8}"#),
            (
                503,
                r#"{"text":"HEC is unhealthy, queues are full","code":18}"#,
            ),
            (429, "Too many requests"),
            (408, ""),
            (502, "<html>bad gateway</html>"),
        ] {
            match uniform(judge(status, body, 3)) {
                Outcome::Retry { after, reason } => {
                    assert_eq!(after, Some(Duration::from_secs(3)));
                    assert!(reason.contains(&format!("HTTP {status}")), "{reason}");
                }
                other => panic!("{status} {body}: {other:?}"),
            }
        }
        assert_eq!(judge(413, "too large", 3), Classified::Split);
    }

    #[test]
    fn auth_and_config_errors_are_permanent_and_loud() {
        let reason = |status, body| match uniform(judge(status, body, 2)) {
            Outcome::Permanent { reason } => reason.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(403, r#"{"text":"Invalid token","code":4}"#),
            "HEC rejected the token (HTTP 403, code 4: Invalid token)"
        );
        assert!(reason(401, r#"{"text":"Token is required","code":2}"#).contains("token"));
        assert!(
            reason(
                400,
                r#"{"text":"Incorrect index","code":7,"invalid-event-number":1}"#
            )
            .contains("index \"security\"")
        );
        assert!(reason(400, r#"{"text":"Data channel is missing","code":10}"#).contains("channel"));
        assert!(
            reason(400, r#"{"text":"ACK is disabled","code":14}"#)
                .contains("acknowledgements: false")
        );
        assert!(reason(400, r#"{"text":"No data","code":5}"#).contains("code 5"));
        // An out-of-range position cannot be trusted: the request fails as a whole.
        assert!(
            reason(
                400,
                r#"{"text":"Invalid data format","code":6,"invalid-event-number":9}"#
            )
            .contains("code 6")
        );
    }

    #[test]
    fn invalid_event_number_splits_delivered_refused_and_resent() {
        let Classified::Outcomes(Outcomes::PerEvent(outcomes)) = judge(
            400,
            r#"{"text":"Invalid data format","code":6,"invalid-event-number":2}"#,
            5,
        ) else {
            panic!("expected per-event outcomes");
        };
        assert_eq!(outcomes[..2], [Outcome::Delivered, Outcome::Delivered]);
        assert!(
            matches!(&outcomes[2], Outcome::Permanent { reason } if reason.contains("invalid-event-number 2"))
        );
        assert!(
            outcomes[3..]
                .iter()
                .all(|o| matches!(o, Outcome::Retry { .. }))
        );
    }

    #[test]
    fn hints_name_the_cause() {
        let record = |status: Option<u16>, reply: &str| RequestRecord {
            http_status: status,
            reply: Some(reply.into()),
            ..Default::default()
        };
        let hint = |r| hint_for(&r, Some("security")).unwrap();
        assert!(
            hint(record(Some(403), r#"{"text":"Invalid token","code":4}"#))
                .contains("invalid token")
        );
        assert!(
            hint(record(Some(400), r#"{"text":"Incorrect index","code":7}"#))
                .contains("incorrect index")
        );
        assert!(hint(record(None, "connection refused")).contains("unreachable"));
        assert!(hint(record(Some(404), "nope")).contains("base URL"));
    }
}
