//! The `cloudwatch_logs` exporter: AWS CloudWatch Logs `PutLogEvents` (AWS JSON 1.1, SigV4).
//!
//! Each event becomes one log event whose `message` is the event's JSON form and whose
//! `timestamp` is the event time in epoch milliseconds. The log stream comes from a template
//! (`{host}`, `{source}`, `{event_type}` or literal text) resolved per event; events are grouped
//! by stream, sorted by time and cut into requests of at most 10,000 events, 1,048,576 bytes
//! (message bytes + 26 per event) and 24 hours from first to last. An event too large for any
//! request is dead-lettered.
//!
//! Credentials come from the exporter's `credentials:` block (a profile, a role assumed with STS
//! `AssumeRole`, a web identity token exchanged with `AssumeRoleWithWebIdentity`) or else the
//! standard AWS provider chain (environment, shared config and credentials files with profiles,
//! web identity, ECS container and EC2 instance metadata), cached until shortly before they
//! expire and refreshed when AWS answers `ExpiredTokenException`.
//! Requests go through siemrelay's own HTTP client and delivery layer (no AWS SDK retry stack).
//!
//! Replies: 200 delivered, except the events named by `rejectedLogEventsInfo` (dead-lettered);
//! `ResourceNotFoundException` creates the group and stream (with `create_missing`) and resends;
//! throttling, `ServiceUnavailableException` and 5xx are retried; `InvalidParameterException`
//! and authentication/authorization errors are permanent (the latter logged loudly).

mod api;
mod batch;
pub mod factory;
mod sink;

pub use batch::{EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_BATCH_SPAN_MS};
pub use batch::{StreamTemplate, TemplateError};
pub use sink::{CloudWatchLogsEncoder, CloudWatchLogsSink, cloudwatch_logs_sink};

use crate::delivery::Sink;
use crate::delivery::auth::aws_credentials::AwsCredentialsConfig;
use crate::delivery::endpoint::HttpEndpoint;
use crate::delivery::http::HttpOptions;
use aws_credential_types::provider::SharedCredentialsProvider;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use std::sync::Arc;
use std::time::Duration;

/// `cloudwatch_logs:` exporter settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchLogsConfig {
    /// AWS region of the log group, e.g. `eu-west-1`. Required.
    pub region: String,
    /// Log group name (1–512 of `A-Z a-z 0-9 . - _ / #`). Required.
    pub log_group: String,
    /// Log stream template: `{host}`, `{source}`, `{event_type}` and literal text
    /// (default `{host}`).
    #[serde(default = "default_log_stream")]
    pub log_stream: String,
    /// Create the log group and stream when AWS says they do not exist (default true).
    #[serde(default = "default_true")]
    pub create_missing: bool,
    /// Base URL replacing `https://logs.<region>.amazonaws.com` (VPC endpoints, tests).
    pub endpoint: Option<String>,
    /// Where this exporter's credentials come from (default: the standard AWS chain).
    #[serde(default)]
    pub credentials: AwsCredentialsConfig,
}

fn default_log_stream() -> String {
    "{host}".into()
}

fn default_true() -> bool {
    true
}

impl CloudWatchLogsConfig {
    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let region_ok = !self.region.is_empty()
            && self
                .region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !region_ok {
            issues.push(ConfigIssue::new(
                "region",
                format!(
                    "{:?} is not an AWS region name (like eu-west-1)",
                    self.region
                ),
            ));
        }
        if let Err(message) = check_log_group(&self.log_group) {
            issues.push(ConfigIssue::new("log_group", message));
        }
        if let Err(e) = StreamTemplate::parse(&self.log_stream) {
            issues.push(ConfigIssue::new("log_stream", e.to_string()));
        }
        if let Some(endpoint) = &self.endpoint
            && let Err(error) = HttpEndpoint::base(endpoint, "https://logs.eu-west-1.amazonaws.com")
        {
            issues.push(ConfigIssue::new("endpoint", error.to_string()));
        }
        issues.extend(self.credentials.validate());
        issues
    }

    /// The API URL: `endpoint`, or the region's public endpoint.
    pub fn api_url(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("{}/", endpoint.trim_end_matches('/')),
            None if self.region.starts_with("cn-") => {
                format!("https://logs.{}.amazonaws.com.cn/", self.region)
            }
            None => format!("https://logs.{}.amazonaws.com/", self.region),
        }
    }
}

/// Checks a log group name: 1–512 characters of `[.\-_/#A-Za-z0-9]`.
pub fn check_log_group(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 512 {
        return Err(format!(
            "must be 1 to 512 characters long (it is {})",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#')))
    {
        return Err(format!(
            "{name:?} contains {bad:?}; log group names may only use A-Z a-z 0-9 . - _ / #"
        ));
    }
    Ok(())
}

/// Builds the CloudWatch Logs sink; credentials come from the standard AWS provider chain,
/// loaded on first use.
pub fn build(
    id: &str,
    config: CloudWatchLogsConfig,
    http: &HttpOptions,
    timeout: Duration,
) -> anyhow::Result<Arc<dyn Sink>> {
    build_with_credentials(id, config, http, timeout, None)
}

/// Like [`build`] with a given credentials provider instead of the default chain (tests,
/// embedding).
pub fn build_with_credentials(
    id: &str,
    config: CloudWatchLogsConfig,
    http: &HttpOptions,
    timeout: Duration,
    provider: Option<SharedCredentialsProvider>,
) -> anyhow::Result<Arc<dyn Sink>> {
    if let Some(issue) = config.validate().first() {
        anyhow::bail!("exporter {id}: {issue}");
    }
    Ok(Arc::new(cloudwatch_logs_sink(
        id, &config, http, timeout, provider,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: serde_json::Value) -> CloudWatchLogsConfig {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn defaults_and_urls() {
        let c =
            config(serde_json::json!({"region": "eu-west-1", "log_group": "/security/siemrelay"}));
        assert!(c.validate().is_empty());
        assert_eq!(c.log_stream, "{host}");
        assert!(c.create_missing);
        assert_eq!(c.api_url(), "https://logs.eu-west-1.amazonaws.com/");
        let cn = config(serde_json::json!({"region": "cn-north-1", "log_group": "g"}));
        assert_eq!(cn.api_url(), "https://logs.cn-north-1.amazonaws.com.cn/");
        let local = config(
            serde_json::json!({"region": "us-east-1", "log_group": "g", "endpoint": "http://127.0.0.1:5000/"}),
        );
        assert_eq!(local.api_url(), "http://127.0.0.1:5000/");
    }

    #[test]
    fn bad_names_are_reported_at_their_keys() {
        let c = config(serde_json::json!({
            "region": "EU West", "log_group": "bad group!", "log_stream": "a:{nope}",
            "endpoint": "ftp://x",
        }));
        let keys: Vec<String> = c.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["region", "log_group", "log_stream", "endpoint"]);
        assert!(check_log_group(&"a".repeat(513)).is_err());
        assert!(check_log_group("/aws/lambda/x#1.y_z-").is_ok());
        let unknown = serde_json::from_value::<CloudWatchLogsConfig>(
            serde_json::json!({"region": "eu-west-1", "log_group": "g", "stream": "x"}),
        );
        assert!(unknown.is_err());
    }
}
