//! The CloudWatch Logs sink: plans `PutLogEvents` requests, sends them signed, creates missing
//! groups and streams, refreshes expired credentials and maps replies onto events.

use super::CloudWatchLogsConfig;
use super::api::{Api, ApiReply, Verdict, hint_for, judge};
use super::batch::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS, PutBatch, StreamTemplate, plan};
use super::credentials::CredentialCache;
use crate::delivery::{
    Outcome, Outcomes, RequestLimits, RequestRecord, SendReport, Sink, default_hint,
};
use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use bytes::Bytes;
use siemrelay_core::Event;
use std::time::Instant;

/// Sends events to one CloudWatch Logs log group.
pub struct CloudWatchLogsSink {
    exporter: String,
    group: String,
    template: StreamTemplate,
    create_missing: bool,
    api: Api,
    credentials: CredentialCache,
}

/// How one `PutLogEvents` request ended.
enum PutResult {
    /// Stored, except the events at these positions of the batch (with why).
    Stored(Vec<(usize, &'static str)>),
    /// Nothing stored.
    Failed(Outcome),
}

impl CloudWatchLogsSink {
    /// A sink for a validated config. `provider` replaces the default credential chain.
    pub fn new(
        exporter: &str,
        config: &CloudWatchLogsConfig,
        client: reqwest::Client,
        provider: Option<SharedCredentialsProvider>,
    ) -> anyhow::Result<CloudWatchLogsSink> {
        let template = StreamTemplate::parse(&config.log_stream)
            .map_err(|e| anyhow::anyhow!("exporter {exporter}: log_stream: {e}"))?;
        Ok(CloudWatchLogsSink {
            exporter: exporter.to_string(),
            group: config.log_group.clone(),
            template,
            create_missing: config.create_missing,
            api: Api::new(client.clone(), config.api_url(), &config.region),
            credentials: CredentialCache::new(&config.region, client, provider),
        })
    }

    /// Sends one batch: refreshes expired credentials once and creates a missing group or
    /// stream once, then resends.
    async fn put(&self, batch: &PutBatch) -> (PutResult, RequestRecord) {
        let started = Instant::now();
        let body = Bytes::from(batch.body.clone());
        let mut record = RequestRecord {
            events: batch.indices.len(),
            bytes: body.len(),
            ..Default::default()
        };
        let mut refreshed = false;
        let mut created = false;
        let result = loop {
            let credentials = match self.credentials.get().await {
                Ok(credentials) => credentials,
                Err(reason) => {
                    record.reply = Some(reason.clone());
                    break PutResult::Failed(Outcome::retry(reason));
                }
            };
            let reply = self
                .api
                .call(&credentials, "PutLogEvents", body.clone())
                .await;
            record.http_status = reply.status;
            record.reply = Some(reply.describe());
            if reply.ok() {
                break PutResult::Stored(rejected_positions(&reply, batch.indices.len()));
            }
            match judge(&reply) {
                Verdict::Expired if !refreshed => {
                    refreshed = true;
                    self.credentials.invalidate(&credentials).await;
                }
                Verdict::Missing if self.create_missing && !created => {
                    created = true;
                    if let Err(outcome) = self.create(&credentials, &batch.stream).await {
                        break PutResult::Failed(outcome);
                    }
                }
                Verdict::Missing => {
                    break PutResult::Failed(Outcome::permanent(format!(
                        "CloudWatch Logs: {} (log group {:?}, stream {:?}; create_missing is off)",
                        reply.describe(),
                        self.group,
                        batch.stream
                    )));
                }
                Verdict::AlreadyAccepted => break PutResult::Stored(Vec::new()),
                verdict => break PutResult::Failed(self.failure(verdict, &reply)),
            }
        };
        record.latency = started.elapsed();
        record.outcome = match &result {
            PutResult::Stored(rejected) if rejected.is_empty() => "delivered",
            PutResult::Stored(rejected) if rejected.len() < batch.indices.len() => "partial",
            PutResult::Stored(_) => "permanent",
            PutResult::Failed(Outcome::Retry { .. }) => "retry",
            PutResult::Failed(_) => "permanent",
        };
        (result, record)
    }

    /// The outcome of a failed call that is not fixed by creating or refreshing.
    fn failure(&self, verdict: Verdict, reply: &ApiReply) -> Outcome {
        let reason = format!("CloudWatch Logs answered {}", reply.describe());
        match verdict {
            Verdict::Retry | Verdict::Expired => Outcome::Retry {
                reason: reason.into(),
                after: reply.retry_after,
            },
            Verdict::Auth => {
                let hint = hint_for(reply.code(), self.api.url()).unwrap_or_default();
                tracing::error!(
                    exporter = %self.exporter,
                    group = %self.group,
                    error = %reply.describe(),
                    hint = %hint,
                    "CloudWatch Logs refused the credentials or permissions; events are dead-lettered until this is fixed"
                );
                Outcome::permanent(reason)
            }
            _ => Outcome::permanent(reason),
        }
    }

    /// CreateLogGroup then CreateLogStream; "already exists" is fine.
    async fn create(&self, credentials: &Credentials, stream: &str) -> Result<(), Outcome> {
        let group_body = serde_json::json!({ "logGroupName": self.group });
        let stream_body =
            serde_json::json!({ "logGroupName": self.group, "logStreamName": stream });
        for (operation, body) in [
            ("CreateLogGroup", group_body),
            ("CreateLogStream", stream_body),
        ] {
            let reply = self
                .api
                .call(credentials, operation, Bytes::from(body.to_string()))
                .await;
            if reply.ok() || reply.code() == "ResourceAlreadyExistsException" {
                if reply.ok() {
                    tracing::info!(exporter = %self.exporter, group = %self.group, stream = %stream, operation = %operation, "created in CloudWatch Logs");
                }
                continue;
            }
            let verdict = judge(&reply);
            if verdict == Verdict::Expired {
                self.credentials.invalidate(credentials).await;
            }
            let mut outcome = self.failure(verdict, &reply);
            if let Outcome::Retry { reason, .. } | Outcome::Permanent { reason } = &mut outcome {
                *reason = format!("{operation} failed: {reason}").into();
            }
            return Err(outcome);
        }
        Ok(())
    }
}

/// Positions of a batch that `rejectedLogEventsInfo` names: `0..=tooOldLogEventEndIndex`,
/// `0..=expiredLogEventEndIndex` and `tooNewLogEventStartIndex..`. The end indices are read as
/// inclusive: if AWS meant them exclusive, one stored event is also dead-lettered, never the
/// other way round (a rejected event counted as delivered).
fn rejected_positions(reply: &ApiReply, len: usize) -> Vec<(usize, &'static str)> {
    let Some(info) = reply
        .body
        .as_ref()
        .and_then(|b| b.get("rejectedLogEventsInfo"))
    else {
        return Vec::new();
    };
    let index = |name: &str| {
        info.get(name)
            .and_then(serde_json::Value::as_u64)
            .map(|i| usize::try_from(i).unwrap_or(usize::MAX))
    };
    let too_old = index("tooOldLogEventEndIndex");
    let expired = index("expiredLogEventEndIndex");
    let too_new = index("tooNewLogEventStartIndex");
    (0..len)
        .filter_map(|position| {
            if too_old.is_some_and(|end| position <= end) {
                Some((position, "CloudWatch Logs rejected the event as too old (more than 14 days before the request), per rejectedLogEventsInfo.tooOldLogEventEndIndex"))
            } else if expired.is_some_and(|end| position <= end) {
                Some((position, "CloudWatch Logs rejected the event as older than the log group's retention, per rejectedLogEventsInfo.expiredLogEventEndIndex"))
            } else if too_new.is_some_and(|start| position >= start) {
                Some((position, "CloudWatch Logs rejected the event as too new (more than 2 hours ahead), per rejectedLogEventsInfo.tooNewLogEventStartIndex"))
            } else {
                None
            }
        })
        .collect()
}

#[async_trait]
impl Sink for CloudWatchLogsSink {
    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_events: MAX_BATCH_EVENTS,
            max_bytes: MAX_BATCH_BYTES,
        }
    }

    async fn send(&self, events: &[Event]) -> SendReport {
        let plan = plan(events, &self.group, &self.template);
        let mut outcomes: Vec<Outcome> = Vec::new();
        let mut set = |index: usize, outcome: Outcome| {
            if outcomes.is_empty() {
                outcomes.resize(events.len(), Outcome::Delivered);
            }
            outcomes[index] = outcome;
        };
        for (index, reason) in plan.rejected {
            set(index, Outcome::permanent(reason));
        }
        let mut records = Vec::with_capacity(plan.batches.len());
        for batch in &plan.batches {
            let (result, record) = self.put(batch).await;
            records.push(record);
            match result {
                PutResult::Stored(rejected) => {
                    for (position, reason) in rejected {
                        set(batch.indices[position], Outcome::permanent(reason));
                    }
                }
                PutResult::Failed(outcome) => {
                    for index in &batch.indices {
                        set(*index, outcome.clone());
                    }
                }
            }
        }
        let outcomes = if outcomes.is_empty() {
            Outcomes::Uniform(Outcome::Delivered)
        } else {
            Outcomes::PerEvent(outcomes)
        };
        SendReport {
            outcomes,
            requests: records,
        }
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        let reply = record.reply.as_deref().unwrap_or("");
        if record.http_status.is_none() && reply.starts_with("cannot load AWS credentials") {
            return Some("no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity token, or run with an instance/task role".into());
        }
        if record.http_status.is_none() {
            return Some(format!(
                "cannot reach CloudWatch Logs at {}: check the region, endpoint, proxy and firewall",
                self.api.url()
            ));
        }
        // `HTTP 400 AccessDeniedException: …`
        let code = reply
            .split_whitespace()
            .nth(2)
            .map(|c| c.trim_end_matches(':'))
            .unwrap_or("");
        hint_for(code, self.api.url()).or_else(|| default_hint(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_indices_map_to_positions() {
        let body = serde_json::json!({"rejectedLogEventsInfo": {"tooOldLogEventEndIndex": 1, "expiredLogEventEndIndex": 2, "tooNewLogEventStartIndex": 8}});
        let reply = ApiReply {
            status: Some(200),
            text: String::new(),
            body: Some(body),
            error: None,
            retry_after: None,
        };
        let positions: Vec<usize> = rejected_positions(&reply, 10).iter().map(|p| p.0).collect();
        assert_eq!(positions, vec![0, 1, 2, 8, 9]);
        let reasons = rejected_positions(&reply, 10);
        assert!(reasons[0].1.contains("too old"));
        assert!(reasons[2].1.contains("retention"));
        assert!(reasons[3].1.contains("too new"));
    }
}
