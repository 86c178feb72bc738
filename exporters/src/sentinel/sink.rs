//! The Logs Ingestion encoder (records in JSON array bodies, reply classification) and the sink:
//! [`HttpSink`] with the Entra ID token as its authenticator (a 401 drops the token and the
//! request is resent once with a fresh one).

use super::{MAX_RECORDS_PER_REQUEST, MAX_REQUEST_BYTES, RecordShape, SentinelConfig};
use crate::delivery::auth::entra_id::TokenCache;
use crate::delivery::http::{Classified, Compression, HttpEncoder, HttpOptions, HttpSink, Reply};
use crate::delivery::pack::{EncodedRequest, Framing, JSON_ARRAY};
use crate::delivery::{Outcome, Outcomes, RequestLimits, RequestRecord, default_hint};
use async_trait::async_trait;
use siemrelay_core::Event;
use std::time::Duration;

/// Encodes records and judges the Logs Ingestion API's replies.
pub struct SentinelEncoder {
    exporter: String,
    url: String,
    records: RecordShape,
    token_url: String,
}

impl SentinelEncoder {
    /// The upload URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// `{"error":{"code":..,"message":..}}` as `code: message`, else the body text.
fn service_error(reply: &Reply<'_>) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(reply.body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |key: &str| {
        error
            .and_then(|e| e.get(key))
            .and_then(serde_json::Value::as_str)
    };
    match (field("code"), field("message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        (None, Some(message)) => message.to_string(),
        (None, None) => reply.text(),
    }
}

#[async_trait]
impl HttpEncoder for SentinelEncoder {
    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_events: MAX_RECORDS_PER_REQUEST,
            max_bytes: MAX_REQUEST_BYTES,
        }
    }

    fn framing(&self) -> Framing {
        JSON_ARRAY
    }

    fn write_event(
        &self,
        event: &Event,
        out: &mut Vec<u8>,
    ) -> Result<(), crate::delivery::pack::EncodeError> {
        Ok(self.records.write_record(event, out)?)
    }

    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        client
            .post(&self.url)
            .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string())
    }

    fn classify(&self, reply: &Reply<'_>, _request: &EncodedRequest) -> Classified {
        let status = reply.status;
        let outcome = match status {
            200..=299 => Outcome::Delivered,
            413 => return Classified::Split,
            401 => {
                return Classified::Reauthenticate(Outcome::permanent(format!(
                    "Azure Monitor refused the access token (HTTP 401): {}",
                    service_error(reply)
                )));
            }
            408 | 429 | 500..=599 => Outcome::Retry {
                reason: format!(
                    "Azure Monitor answered HTTP {status}: {}",
                    service_error(reply)
                )
                .into(),
                after: reply.retry_after(),
            },
            _ => {
                let message = service_error(reply);
                if status == 403 || status == 404 {
                    tracing::error!(
                        exporter = %self.exporter,
                        status = %status,
                        error = %message,
                        hint = %self.hint_for(status).unwrap_or_default(),
                        "Azure Monitor refused the upload; events are dead-lettered until this is fixed"
                    );
                }
                Outcome::permanent(format!("Azure Monitor answered HTTP {status}: {message}"))
            }
        };
        Classified::Outcomes(Outcomes::Uniform(outcome))
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        match record.http_status {
            None if record
                .reply
                .as_deref()
                .is_some_and(|r| r.contains("token request") && r.contains("failed: HTTP")) =>
            {
                Some(format!(
                    "the identity provider refused the credentials at {}: check identity, tenant_id, client_id, client_secret (or the federated token file / managed identity assignment) and cloud",
                    self.token_url
                ))
            }
            None => Some(format!(
                "cannot reach {} or the Entra ID token endpoint: check endpoint, authority, proxy and firewall",
                self.url
            )),
            Some(status) => self.hint_for(status).or_else(|| default_hint(record)),
        }
    }
}

impl SentinelEncoder {
    fn hint_for(&self, status: u16) -> Option<String> {
        Some(match status {
            401 => "the access token was refused: check tenant_id and cloud (the token's audience must be Azure Monitor)".to_string(),
            403 => "the app lacks the \"Monitoring Metrics Publisher\" role on the data collection rule (role assignments can take up to 30 minutes to apply)".to_string(),
            404 => format!("not found: check endpoint, dcr_immutable_id and stream_name ({})", self.url),
            400 => "Azure Monitor rejected the records: check that the DCR stream declaration matches the columns of the exporter's schema (examples/sentinel/azuredeploy.json declares each shape's stream)".to_string(),
            _ => return None,
        })
    }
}

/// The Sentinel sink: [`HttpSink`] around [`SentinelEncoder`], authorized by an Entra ID token.
pub type SentinelSink = HttpSink<SentinelEncoder>;

/// A Sentinel sink for a validated config.
pub fn sentinel_sink(
    exporter: &str,
    config: &SentinelConfig,
    http: &HttpOptions,
    timeout: Duration,
) -> anyhow::Result<SentinelSink> {
    if let Some(issue) = config.validate().first() {
        anyhow::bail!("exporter {exporter}: {issue}");
    }
    if let Some(issue) = config.schema_issues(http.schema).first() {
        anyhow::bail!("exporter {exporter}: {issue}");
    }
    let columns = config
        .columns()
        .map_err(|e| anyhow::anyhow!("exporter {exporter}: {e}"))?;
    let sink = HttpSink::new(
        exporter,
        SentinelEncoder {
            exporter: exporter.to_string(),
            url: config.upload_url(http.schema),
            records: RecordShape::new(http.schema, columns),
            token_url: config
                .token_source(|name| std::env::var(name).ok())
                .map(|source| source.url().to_string())
                .unwrap_or_else(|_| config.token_url()),
        },
        http,
        timeout,
        Compression::Gzip,
    )?;
    let source = config
        .token_source(|name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!("exporter {exporter}: {e}"))?;
    let tokens = TokenCache::from_source(sink.client().clone(), source, config.cloud.scope());
    Ok(sink.with_auth(tokens))
}
