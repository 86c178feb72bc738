//! The CloudWatch Logs encoder: `PutLogEvents` bodies per log stream, replies mapped onto events
//! (`rejectedLogEventsInfo`), and the log group and stream created when AWS says they are
//! missing. Requests go through [`HttpSink`] signed by [`SigV4`].

use super::CloudWatchLogsConfig;
use super::api::{self, ApiReply, Verdict, hint_for, judge};
use super::batch::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS, StreamTemplate, plan};
use crate::delivery::auth::SigV4;
use crate::delivery::http::{
    Classified, Compression, HttpCalls, HttpEncoder, HttpOptions, HttpSink, Reply, SharedHttpKeys,
};
use crate::delivery::pack::{Encoded, EncodedRequest};
use crate::delivery::{Outcome, Outcomes, RequestLimits, RequestRecord, Schema, default_hint};
use async_trait::async_trait;
use aws_credential_types::provider::SharedCredentialsProvider;
use siemrelay_core::Event;
use std::time::Duration;

/// The CloudWatch Logs sink: [`HttpSink`] around [`CloudWatchLogsEncoder`], signed with SigV4.
pub type CloudWatchLogsSink = HttpSink<CloudWatchLogsEncoder>;

/// A sink for a validated config. `provider` replaces the default credential chain.
pub fn cloudwatch_logs_sink(
    exporter: &str,
    config: &CloudWatchLogsConfig,
    http: &HttpOptions,
    timeout: Duration,
    provider: Option<SharedCredentialsProvider>,
) -> anyhow::Result<CloudWatchLogsSink> {
    let template = StreamTemplate::parse(&config.log_stream)
        .map_err(|e| anyhow::anyhow!("exporter {exporter}: log_stream: {e}"))?;
    let encoder = CloudWatchLogsEncoder {
        exporter: exporter.to_string(),
        group: config.log_group.clone(),
        template,
        create_missing: config.create_missing,
        url: config.api_url(),
        schema: http.schema,
    };
    let sink = HttpSink::new(exporter, encoder, http, timeout, Compression::None)?;
    let signer = SigV4::new(&config.region, "logs", sink.client().clone(), provider)
        .with_credentials(config.credentials.clone(), exporter);
    Ok(sink.with_auth(signer))
}

/// The reply to a create call and the credentials' generation that signed it.
struct CreateReply {
    reply: ApiReply,
    generation: crate::delivery::auth::Generation,
}

impl std::ops::Deref for CreateReply {
    type Target = ApiReply;
    fn deref(&self) -> &ApiReply {
        &self.reply
    }
}

/// Encodes `PutLogEvents` requests for one log group and judges CloudWatch Logs' replies.
pub struct CloudWatchLogsEncoder {
    exporter: String,
    group: String,
    template: StreamTemplate,
    create_missing: bool,
    url: String,
    schema: Schema,
}

impl CloudWatchLogsEncoder {
    /// Sends one create call; a reply that is not an error is logged as created.
    async fn create(
        &self,
        calls: &HttpCalls<'_>,
        operation: &str,
        body: &serde_json::Value,
        stream: &str,
    ) -> Result<CreateReply, Outcome> {
        let call = api::request(calls.client(), &self.url, operation)
            .header(reqwest::header::CONTENT_TYPE, api::CONTENT_TYPE);
        let (response, generation) = calls
            .send(call, body.to_string().into())
            .await
            .map_err(|e| e.outcome())?;
        let reply = ApiReply::read(&response.reply());
        if reply.ok() {
            tracing::info!(exporter = %self.exporter, group = %self.group, stream = %stream, operation = %operation, "created in CloudWatch Logs");
        }
        Ok(CreateReply { reply, generation })
    }

    /// The outcome of a create call that failed (credentials dropped when expired).
    async fn create_failed(
        &self,
        calls: &HttpCalls<'_>,
        operation: &str,
        created: &CreateReply,
    ) -> Outcome {
        let verdict = judge(&created.reply);
        if verdict == Verdict::Expired {
            calls.invalidate(created.generation).await;
        }
        let mut outcome = self.failure(verdict, &created.reply);
        if let Outcome::Retry { reason, .. } | Outcome::Permanent { reason } = &mut outcome {
            *reason = format!("{operation} failed: {reason}").into();
        }
        outcome
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
                let hint = hint_for(reply.code(), &self.url).unwrap_or_default();
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
}

#[async_trait]
impl HttpEncoder for CloudWatchLogsEncoder {
    /// `PutLogEvents` takes uncompressed bodies, and requests are signed with SigV4.
    const HONOURS: SharedHttpKeys = SharedHttpKeys {
        compression: false,
        signing: false,
    };
    const REFUSAL: &'static str =
        "CloudWatch Logs PutLogEvents takes uncompressed bodies signed with AWS SigV4 only";
    /// The API answers any `HEAD` alike: a failed exporter recovers on its next delivery.
    const PROBE: bool = false;

    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_events: MAX_BATCH_EVENTS,
            max_bytes: MAX_BATCH_BYTES,
        }
    }

    fn encode(&self, events: &[Event]) -> Encoded {
        let plan = plan(events, &self.group, &self.template, self.schema);
        Encoded {
            requests: plan
                .batches
                .into_iter()
                .map(|batch| EncodedRequest {
                    indices: batch.indices,
                    body: batch.body,
                    target: Some(batch.stream),
                })
                .collect(),
            rejected: plan.rejected,
        }
    }

    fn content_type(&self) -> &'static str {
        api::CONTENT_TYPE
    }

    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        api::request(client, &self.url, "PutLogEvents")
    }

    fn classify(&self, reply: &Reply<'_>, request: &EncodedRequest) -> Classified {
        let events = request.indices.len();
        let reply = ApiReply::read(reply);
        if reply.ok() {
            let rejected = rejected_positions(&reply, events);
            if rejected.is_empty() {
                return Classified::uniform(Outcome::Delivered);
            }
            let mut outcomes = vec![Outcome::Delivered; events];
            for (position, reason) in rejected {
                outcomes[position] = Outcome::permanent(reason);
            }
            return Classified::Outcomes(Outcomes::PerEvent(outcomes));
        }
        match judge(&reply) {
            Verdict::Expired => Classified::Reauthenticate(self.failure(Verdict::Expired, &reply)),
            Verdict::Missing if self.create_missing => {
                Classified::Setup(self.failure(Verdict::Missing, &reply))
            }
            Verdict::Missing => Classified::uniform(Outcome::permanent(format!(
                "CloudWatch Logs: {} (log group {:?}, stream {:?}; create_missing is off)",
                reply.describe(),
                self.group,
                request.target.as_deref().unwrap_or_default()
            ))),
            Verdict::AlreadyAccepted => Classified::uniform(Outcome::Delivered),
            verdict => Classified::uniform(self.failure(verdict, &reply)),
        }
    }

    fn describe(&self, reply: &Reply<'_>) -> String {
        ApiReply::read(reply).describe()
    }

    fn error_code(&self, reply: &Reply<'_>) -> Option<String> {
        ApiReply::read(reply).error.map(|e| e.code)
    }

    /// Creates the request's stream: `CreateLogStream` first, and `CreateLogGroup` only when
    /// AWS answers that the group does not exist (then the stream again), so a role allowed
    /// only `logs:CreateLogStream` and `logs:PutLogEvents` works when the group exists.
    /// "Already exists" is fine.
    async fn setup(&self, calls: &HttpCalls<'_>, request: &EncodedRequest) -> Result<(), Outcome> {
        let stream = request.target.as_deref().unwrap_or_default();
        let stream_body =
            serde_json::json!({ "logGroupName": self.group, "logStreamName": stream });
        let reply = self
            .create(calls, "CreateLogStream", &stream_body, stream)
            .await?;
        if reply.ok() || reply.code() == "ResourceAlreadyExistsException" {
            return Ok(());
        }
        if reply.code() != "ResourceNotFoundException" {
            return Err(self.create_failed(calls, "CreateLogStream", &reply).await);
        }
        let group_body = serde_json::json!({ "logGroupName": self.group });
        let reply = self
            .create(calls, "CreateLogGroup", &group_body, stream)
            .await?;
        if !(reply.ok() || reply.code() == "ResourceAlreadyExistsException") {
            return Err(self.create_failed(calls, "CreateLogGroup", &reply).await);
        }
        let reply = self
            .create(calls, "CreateLogStream", &stream_body, stream)
            .await?;
        if reply.ok() || reply.code() == "ResourceAlreadyExistsException" {
            return Ok(());
        }
        Err(self.create_failed(calls, "CreateLogStream", &reply).await)
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        let reply = record.reply.as_deref().unwrap_or("");
        if record.http_status.is_none() && reply.starts_with("cannot load AWS credentials") {
            return Some("no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity token, or run with an instance/task role".into());
        }
        if record.http_status.is_none() {
            return Some(format!(
                "cannot reach CloudWatch Logs at {}: check the region, endpoint, proxy and firewall",
                self.url
            ));
        }
        let code = record.error_code.as_deref().unwrap_or("");
        hint_for(code, &self.url).or_else(|| default_hint(record))
    }
}

/// Positions of a batch that `rejectedLogEventsInfo` names: `0..tooOldLogEventEndIndex`,
/// `0..expiredLogEventEndIndex` and `tooNewLogEventStartIndex..`. AWS documents the too-old
/// end index as exclusive and the too-new start index as inclusive
/// (docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_RejectedLogEventsInfo.html);
/// the expired end index is an end index of the same kind, read the same way. Reading an
/// exclusive end as inclusive dead-lettered one stored event per batch, and a `dlq replay`
/// then stored it twice.
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
            if too_old.is_some_and(|end| position < end) {
                Some((position, "CloudWatch Logs rejected the event as too old (more than 14 days before the request), per rejectedLogEventsInfo.tooOldLogEventEndIndex"))
            } else if expired.is_some_and(|end| position < end) {
                Some((position, "CloudWatch Logs rejected the event as older than the log group's retention, per rejectedLogEventsInfo.expiredLogEventEndIndex"))
            } else if too_new.is_some_and(|start| position >= start) {
                Some((position, "CloudWatch Logs rejected the event as too new (more than 2 hours ahead), per rejectedLogEventsInfo.tooNewLogEventStartIndex"))
            } else {
                None
            }
        })
        .collect()
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
        // tooOld 1 (exclusive): position 0; expired 2 (exclusive): position 1; tooNew 8
        // (inclusive): 8 and 9.
        let positions: Vec<usize> = rejected_positions(&reply, 10).iter().map(|p| p.0).collect();
        assert_eq!(positions, vec![0, 1, 8, 9]);
        let reasons = rejected_positions(&reply, 10);
        assert!(reasons[0].1.contains("too old"));
        assert!(reasons[1].1.contains("retention"));
        assert!(reasons[2].1.contains("too new"));
    }
}
