//! The `webhook` exporter: events POSTed to any HTTP endpoint (SOAR, ticketing, chat-ops).
//!
//! The URL is used exactly as given (no path appended). The body is a JSON array of events in
//! their JSON form (`format: json_array`, `application/json`) or one event per line
//! (`format: ndjson`, `application/x-ndjson`). Custom `headers` are sent with every request (their
//! values are treated as secrets: never logged). Replies: 2xx delivered; 408, 429 and 5xx retried
//! (honouring `Retry-After`); 413 splits the request; other 4xx are permanent.

pub mod factory;

use crate::delivery::endpoint::HttpEndpoint;
use crate::delivery::http::{
    Classified, Compression, HttpEncoder, HttpOptions, HttpSink, Reply, classify_by_status,
};
use crate::delivery::pack::{EncodedRequest, Framing, JSON_ARRAY, LINES};
use crate::delivery::{Outcomes, RequestLimits, RequestRecord, Schema, Sink, default_hint};
use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use siemrelay_core::config_types::{ConfigSize, Secret};
use siemrelay_core::{ConfigIssue, Event};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Default `max_request_size`: 5 MiB.
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 5 << 20;
/// Default `max_events`.
pub const DEFAULT_MAX_EVENTS: usize = 1000;

/// Headers the exporter sets itself, which `headers` may not override.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "host",
    "connection",
];

/// The body format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// A JSON array of events, `Content-Type: application/json` (default).
    #[default]
    JsonArray,
    /// One event per line, each ending with `\n`, `Content-Type: application/x-ndjson`.
    Ndjson,
}

/// `webhook/<name>:` settings (the delivery keys and `tls`/`compression`/`signing` are handled by
/// the delivery layer).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL to POST to, used exactly as given (required).
    pub endpoint: String,
    /// `json_array` (default) or `ndjson`.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Extra headers for every request (default none). Values may hold secrets
    /// (`${env:…}`) and are never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Largest request body before compression (default 5MiB).
    #[serde(default = "default_max_request_size")]
    pub max_request_size: ConfigSize,
    /// Most events per request (default 1000).
    #[serde(default = "default_max_events")]
    pub max_events: usize,
}

fn default_max_request_size() -> ConfigSize {
    ConfigSize(DEFAULT_MAX_REQUEST_SIZE)
}

fn default_max_events() -> usize {
    DEFAULT_MAX_EVENTS
}

/// An `endpoint` of the right shape, for error messages.
const ENDPOINT_EXAMPLE: &str = "https://soar.example.com/hooks/siem";

impl WebhookConfig {
    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if let Err(error) = HttpEndpoint::exact(&self.endpoint, ENDPOINT_EXAMPLE) {
            issues.push(ConfigIssue::new("endpoint", error.to_string()));
        }
        for (name, value) in &self.headers {
            let key = format!("headers.{name}");
            if let Err(message) = header(name, value) {
                issues.push(ConfigIssue::new(key, message));
            }
        }
        if self.max_request_size.0 < 1024 {
            issues.push(ConfigIssue::new(
                "max_request_size",
                "must be at least 1KiB",
            ));
        }
        if self.max_events == 0 || self.max_events > 100_000 {
            issues.push(ConfigIssue::new(
                "max_events",
                "must be between 1 and 100000",
            ));
        }
        issues
    }
}

/// Checks one configured header; the value never appears in the message.
fn header(name: &str, value: &Secret) -> Result<(HeaderName, HeaderValue), String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    if RESERVED_HEADERS.contains(&parsed.as_str()) {
        return Err(format!(
            "{name} is set by siemrelay (format and compression decide it) and cannot be overridden"
        ));
    }
    let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
        "the value has characters not allowed in a header (e.g. a newline)".to_string()
    })?;
    value.set_sensitive(true);
    Ok((parsed, value))
}

/// Builds the exporter's sink. `timeout` is `sending.timeout`.
pub fn build(
    id: &str,
    config: WebhookConfig,
    http: &HttpOptions,
    timeout: Duration,
) -> anyhow::Result<Arc<dyn Sink>> {
    let encoder = WebhookEncoder::new(&config)?.with_schema(http.schema);
    Ok(Arc::new(HttpSink::new(
        id,
        encoder,
        http,
        timeout,
        Compression::None,
    )?))
}

/// Encodes events as a JSON array or NDJSON and judges replies by status.
pub struct WebhookEncoder {
    url: reqwest::Url,
    format: WebhookFormat,
    headers: HeaderMap,
    limits: RequestLimits,
    schema: Schema,
}

impl WebhookEncoder {
    /// An encoder for a config (errors name the key).
    pub fn new(config: &WebhookConfig) -> anyhow::Result<WebhookEncoder> {
        let url = HttpEndpoint::exact(&config.endpoint, ENDPOINT_EXAMPLE)
            .map_err(|e| anyhow::anyhow!("endpoint: {e}"))?
            .url()
            .clone();
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let (name, value) =
                header(name, value).map_err(|e| anyhow::anyhow!("headers.{name}: {e}"))?;
            headers.insert(name, value);
        }
        Ok(WebhookEncoder {
            url,
            format: config.format,
            headers,
            limits: RequestLimits {
                max_events: config.max_events.max(1),
                max_bytes: config.max_request_size.as_usize(),
            },
            schema: Schema::Native,
        })
    }

    /// Writes each event in `schema` (the shared `schema` key).
    pub fn with_schema(self, schema: Schema) -> WebhookEncoder {
        WebhookEncoder { schema, ..self }
    }
}

#[async_trait]
impl HttpEncoder for WebhookEncoder {
    fn limits(&self) -> RequestLimits {
        self.limits
    }

    fn framing(&self) -> Framing {
        match self.format {
            WebhookFormat::JsonArray => JSON_ARRAY,
            WebhookFormat::Ndjson => LINES,
        }
    }

    fn write_event(
        &self,
        event: &Event,
        out: &mut Vec<u8>,
    ) -> Result<(), crate::delivery::pack::EncodeError> {
        self.schema.write_event(event, out);
        if self.format == WebhookFormat::Ndjson {
            out.push(b'\n');
        }
        Ok(())
    }

    fn content_type(&self) -> &'static str {
        match self.format {
            WebhookFormat::JsonArray => "application/json",
            WebhookFormat::Ndjson => "application/x-ndjson",
        }
    }

    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        client.post(self.url.clone()).headers(self.headers.clone())
    }

    fn classify(&self, reply: &Reply<'_>, _request: &EncodedRequest) -> Classified {
        if reply.status == 413 {
            return Classified::Split;
        }
        Classified::Outcomes(Outcomes::Uniform(classify_by_status(
            reply,
            "the webhook endpoint",
        )))
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        match record.http_status {
            Some(401 | 403) => Some(
                "authentication failed: check the Authorization (or API key) entry under `headers` and the signing secret"
                    .into(),
            ),
            Some(404 | 405) => Some(format!(
                "the receiver has no hook at {} (HTTP {}): `endpoint` is used exactly as given, check its path",
                self.url.path(),
                record.http_status.unwrap_or_default()
            )),
            Some(400 | 415 | 422) => Some(
                "the receiver refused the body: check `format` (json_array or ndjson) against what it expects"
                    .into(),
            ),
            _ => default_hint(record),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: serde_json::Value) -> WebhookConfig {
        serde_json::from_value(value).unwrap()
    }

    fn events(n: usize) -> Vec<Event> {
        (0..n).map(|i| Event::new(format!("t{i}"))).collect()
    }

    #[test]
    fn json_array_and_ndjson_bodies_parse_back_to_the_events() {
        let evs = events(5);
        let array =
            WebhookEncoder::new(&config(serde_json::json!({"endpoint": "http://h/x"}))).unwrap();
        let encoded = array.encode(&evs);
        assert_eq!(encoded.requests.len(), 1);
        let parsed: Vec<serde_json::Value> =
            serde_json::from_slice(&encoded.requests[0].body).unwrap();
        assert_eq!(parsed[4], evs[4].to_json_value());

        let lines = WebhookEncoder::new(&config(
            serde_json::json!({"endpoint": "http://h/x", "format": "ndjson", "max_events": 2}),
        ))
        .unwrap();
        let encoded = lines.encode(&evs);
        assert_eq!(encoded.requests.len(), 3);
        let body = String::from_utf8(encoded.requests[0].body.clone()).unwrap();
        assert!(body.ends_with('\n'));
        let first: serde_json::Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
        assert_eq!(first, evs[0].to_json_value());
        assert_eq!(lines.content_type(), "application/x-ndjson");
    }

    #[test]
    fn validate_checks_url_headers_and_limits_without_printing_values() {
        assert!(
            config(serde_json::json!({"endpoint": "https://soar.example.com/hooks/siem", "headers": {"X-Team": "sec"}}))
                .validate()
                .is_empty()
        );
        let bad = config(serde_json::json!({
            "endpoint": "ftp://x", "max_events": 0, "max_request_size": 10,
            "headers": {"Content-Type": "text/plain", "Bad Name": "v", "X-Key": "top\nsecret"}
        }));
        let issues = bad.validate();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "endpoint",
                "headers.Bad Name",
                "headers.Content-Type",
                "headers.X-Key",
                "max_request_size",
                "max_events"
            ]
        );
        assert!(issues.iter().all(|i| !i.message.contains("secret")));
        assert!(!format!("{bad:?}").contains("top"));
    }

    #[test]
    fn replies_are_classified_by_status() {
        let encoder =
            WebhookEncoder::new(&config(serde_json::json!({"endpoint": "http://h/x"}))).unwrap();
        let headers = HeaderMap::new();
        let judge = |status| {
            encoder.classify(
                &Reply {
                    status,
                    headers: &headers,
                    body: b"",
                },
                &EncodedRequest {
                    indices: vec![0, 1, 2],
                    ..Default::default()
                },
            )
        };
        assert_eq!(judge(413), Classified::Split);
        assert_eq!(
            judge(204),
            Classified::Outcomes(Outcomes::Uniform(crate::delivery::Outcome::Delivered))
        );
        assert!(matches!(
            judge(503),
            Classified::Outcomes(Outcomes::Uniform(crate::delivery::Outcome::Retry { .. }))
        ));
        assert!(matches!(
            judge(400),
            Classified::Outcomes(Outcomes::Uniform(
                crate::delivery::Outcome::Permanent { .. }
            ))
        ));
    }
}
