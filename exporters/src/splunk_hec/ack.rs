//! Indexer acknowledgement: with `acknowledgements: true`, HEC's 200 only means "queued"
//! (`{"code":0,"ackId":7}`). [`AckingSink`] sends through the shared [`HttpSink`], then polls
//! `POST /services/collector/ack?channel=<guid>` with `{"acks":[ids]}` every `ack_poll_interval`
//! until every id of the send reads `true`; only then are its events delivered.
//!
//! - Acks not all `true` within `ack_timeout`: the send's accepted events are retried (Splunk
//!   may have indexed some of them: duplicates are possible, losses are not).
//! - 5xx or a network error on `/ack`: keep polling until the timeout.
//! - 4xx on `/ack` (acks unusable, e.g. code 14): logged as an error; the events count as
//!   delivered on the 200 (resending would duplicate, and the same 4xx would repeat forever).
//! - A 200 without an `ackId` (the token has acknowledgement off): delivered, warned once.
//!
//! The ack id ↔ event mapping is per send: if a send needed several requests (413 splits), its
//! events are confirmed only when all of the send's ack ids are.

use super::HecEncoder;
use super::reply::HecReply;
use crate::delivery::http::{HttpSink, error_chain};
use crate::delivery::{Outcome, RequestLimits, RequestRecord, SendReport, Sink};
use async_trait::async_trait;
use reqwest::header::HeaderValue;
use siemrelay_core::Event;
use siemrelay_core::config_types::Secret;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The header carrying the channel GUID.
pub const CHANNEL_HEADER: &str = "X-Splunk-Request-Channel";

/// Polls the ack endpoint for one exporter's channel.
pub struct AckPoller {
    exporter: String,
    url: String,
    authorization: HeaderValue,
    channel: HeaderValue,
    interval: Duration,
    timeout: Duration,
    warned_no_ack_id: AtomicBool,
}

/// How waiting for acks ended.
#[derive(Debug, PartialEq)]
enum AckWait {
    /// Every id read `true`.
    Confirmed,
    /// `/ack` refused (4xx): acknowledgement cannot be used.
    Unavailable(String),
    /// Not all ids read `true` in time.
    TimedOut(String),
}

/// Why one poll failed.
enum PollError {
    /// 4xx: polling again will not help.
    Refused(String),
    /// 5xx, network, unreadable reply: poll again.
    Transient(String),
}

impl AckPoller {
    /// A poller for `channel` at `<base>/services/collector/ack`.
    pub fn new(
        exporter: &str,
        base: &str,
        channel: &str,
        token: &Secret,
        interval: Duration,
        timeout: Duration,
    ) -> anyhow::Result<AckPoller> {
        let mut authorization = HeaderValue::from_str(&format!("Splunk {}", token.expose()))
            .map_err(|_| {
                anyhow::anyhow!("token: contains characters not allowed in an HTTP header")
            })?;
        authorization.set_sensitive(true);
        Ok(AckPoller {
            exporter: exporter.to_string(),
            url: format!("{base}{}?channel={channel}", super::ACK_PATH),
            authorization,
            channel: HeaderValue::from_str(channel).map_err(|e| anyhow::anyhow!("channel: {e}"))?,
            interval,
            timeout,
            warned_no_ack_id: AtomicBool::new(false),
        })
    }

    /// Polls until every id in `ids` read `true`, `/ack` refuses, or the timeout passes.
    async fn wait(&self, client: &reqwest::Client, mut ids: Vec<u64>) -> AckWait {
        let deadline = Instant::now() + self.timeout;
        let total = ids.len();
        let mut last_problem = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return AckWait::TimedOut(format!(
                    "HEC did not acknowledge {} of {total} requests within {:?} (ack ids {ids:?}){last_problem}; resending their events",
                    ids.len(),
                    self.timeout
                ));
            }
            tokio::time::sleep(self.interval.min(left)).await;
            match self.poll(client, &ids).await {
                Ok(confirmed) => {
                    ids.retain(|id| !confirmed.contains(id));
                    if ids.is_empty() {
                        return AckWait::Confirmed;
                    }
                }
                Err(PollError::Refused(reason)) => return AckWait::Unavailable(reason),
                Err(PollError::Transient(reason)) => {
                    last_problem = format!("; last poll: {reason}")
                }
            }
        }
    }

    /// One `/ack` request; returns the ids that read `true`.
    async fn poll(&self, client: &reqwest::Client, ids: &[u64]) -> Result<Vec<u64>, PollError> {
        let body = serde_json::json!({ "acks": ids }).to_string();
        let response = client
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .header(CHANNEL_HEADER, self.channel.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| PollError::Transient(format!("ack poll failed: {}", error_chain(&e))))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| PollError::Transient(format!("reading the ack reply failed: {e}")))?;
        let text = || String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
        match status {
            200..=299 => {}
            400..=499 if status != 408 && status != 429 => {
                return Err(PollError::Refused(format!("HTTP {status}: {}", text())));
            }
            _ => return Err(PollError::Transient(format!("HTTP {status}: {}", text()))),
        }
        #[derive(serde::Deserialize)]
        struct AckReply {
            acks: HashMap<String, bool>,
        }
        let reply: AckReply = serde_json::from_slice(&bytes)
            .map_err(|e| PollError::Transient(format!("unreadable ack reply ({e}): {}", text())))?;
        Ok(reply
            .acks
            .into_iter()
            .filter(|(_, done)| *done)
            .filter_map(|(id, _)| id.parse().ok())
            .collect())
    }
}

/// The `splunk_hec` sink with indexer acknowledgement.
pub struct AckingSink {
    inner: HttpSink<HecEncoder>,
    poller: AckPoller,
}

impl AckingSink {
    /// Wraps the plain HEC sink.
    pub fn new(inner: HttpSink<HecEncoder>, poller: AckPoller) -> AckingSink {
        AckingSink { inner, poller }
    }
}

fn accepted(record: &RequestRecord) -> bool {
    record.http_status.is_some_and(|s| (200..300).contains(&s))
}

#[async_trait]
impl Sink for AckingSink {
    fn limits(&self) -> RequestLimits {
        self.inner.limits()
    }

    fn default_concurrency(&self) -> usize {
        self.inner.default_concurrency()
    }

    async fn probe(&self) -> Option<Result<(), crate::delivery::ProbeError>> {
        self.inner.probe().await
    }

    async fn send(&self, events: &[Event]) -> SendReport {
        let mut report = self.inner.send(events).await;
        let accepted_requests = report.requests.iter().filter(|r| accepted(r)).count();
        if accepted_requests == 0 {
            return report;
        }
        let ids: Vec<u64> = report
            .requests
            .iter()
            .filter(|r| accepted(r))
            .filter_map(|r| r.reply.as_deref())
            .filter_map(|text| HecReply::parse(text.as_bytes()).and_then(|r| r.ack_id))
            .collect();
        if ids.len() < accepted_requests
            && !self.poller.warned_no_ack_id.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                exporter = %self.poller.exporter,
                "HEC accepted a request without an ackId: indexer acknowledgement is off for this token; such requests count as delivered on HTTP 200"
            );
        }
        if ids.is_empty() {
            return report;
        }
        match self.poller.wait(self.inner.client(), ids).await {
            AckWait::Confirmed => {}
            AckWait::Unavailable(reason) => tracing::error!(
                exporter = %self.poller.exporter,
                reason = %reason,
                "HEC refused the acknowledgement poll: counting the accepted events as delivered without confirmation"
            ),
            AckWait::TimedOut(reason) => unconfirm(&mut report, reason.into()),
        }
        report
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        self.inner.hint(record)
    }
}

/// Turns the send's delivered events into retries and its accepted requests into `retry` records.
fn unconfirm(report: &mut SendReport, reason: Arc<str>) {
    report.revoke_delivered(Outcome::retry(reason), accepted);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{Outcomes, RequestOutcome};

    #[test]
    fn unconfirmed_sends_become_retries() {
        let mut report = SendReport {
            outcomes: Outcomes::PerEvent(vec![
                Outcome::Delivered,
                Outcome::permanent("bad"),
                Outcome::retry("later"),
            ]),
            requests: vec![
                RequestRecord {
                    http_status: Some(200),
                    outcome: Some(RequestOutcome::Delivered),
                    ..Default::default()
                },
                RequestRecord {
                    http_status: Some(400),
                    outcome: Some(RequestOutcome::Partial),
                    ..Default::default()
                },
            ],
        };
        unconfirm(&mut report, "no ack".into());
        assert!(
            matches!(report.outcomes.get(0).unwrap(), Outcome::Retry { reason, .. } if &**reason == "no ack")
        );
        assert_eq!(report.outcomes.get(1).unwrap(), &Outcome::permanent("bad"));
        assert_eq!(report.requests[0].outcome, Some(RequestOutcome::Retry));
        assert_eq!(report.requests[1].outcome, Some(RequestOutcome::Partial));
    }
}
