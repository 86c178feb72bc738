//! The `datadog` exporter: Datadog Logs API v2 (`POST https://http-intake.logs.<site>/api/v2/logs`).
//!
//! Each event becomes one log in a JSON array body: the reserved keys `message`, `ddsource`,
//! `ddtags`, `service`, `hostname`, `status` and `timestamp` (epoch ms), then the event's own
//! fields as attributes under their JSON-form names (see README-datadog.md for the exact mapping).
//! Requests carry at most 1,000 logs and 5,000,000 uncompressed bytes; a log over 1,000,000
//! bytes is dead-lettered (Datadog would silently truncate it). Replies: 2xx (202) delivered,
//! 413 split and resent, 408/429/5xx retried (429 honours `Retry-After`), 400 and 401/403
//! permanent (401/403 also logged as an error naming the site).

pub mod factory;

use crate::delivery::auth::StaticHeader;
use crate::delivery::endpoint::HttpEndpoint;
use crate::delivery::http::{Classified, Compression, HttpEncoder, HttpOptions, HttpSink, Reply};
use crate::delivery::pack::{EncodedRequest, Framing, JSON_ARRAY};
use crate::delivery::{
    Outcome, Outcomes, RequestLimits, RequestRecord, Schema, Sink, default_hint,
};
use async_trait::async_trait;
use reqwest::header::HeaderName;
use serde::Deserialize;
use serde::ser::{Serialize, SerializeMap, Serializer};
use siemrelay_core::config_types::Secret;
use siemrelay_core::path::AttrPath;
use siemrelay_core::{ConfigIssue, Event, Value};
use std::sync::Arc;
use std::time::Duration;

/// Most logs Datadog takes in one request.
pub const MAX_LOGS_PER_REQUEST: usize = 1000;
/// Most uncompressed bytes Datadog takes in one request (5 MB).
pub const MAX_REQUEST_BYTES: usize = 5_000_000;
/// Largest single log Datadog keeps whole (1 MB); bigger logs are dead-lettered.
pub const MAX_LOG_BYTES: usize = 1_000_000;

/// Datadog sites, and the short names accepted for them.
const SITES: &[(&str, &[&str])] = &[
    ("datadoghq.com", &["us1", "us"]),
    ("us3.datadoghq.com", &["us3"]),
    ("us5.datadoghq.com", &["us5"]),
    ("datadoghq.eu", &["eu1", "eu"]),
    ("ap1.datadoghq.com", &["ap1"]),
    ("ap2.datadoghq.com", &["ap2"]),
    ("uk1.datadoghq.com", &["uk1"]),
    ("ddog-gov.com", &["us1-fed", "gov"]),
    ("us2.ddog-gov.com", &["us2-fed"]),
];

/// The full site name for a configured site (`datadoghq.eu`, or a short form such as `us3`).
pub fn resolve_site(site: &str) -> Option<&'static str> {
    let wanted = site.trim().to_ascii_lowercase();
    SITES
        .iter()
        .find(|(name, short)| *name == wanted || short.contains(&wanted.as_str()))
        .map(|(name, _)| *name)
}

/// `datadog:` exporter settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatadogConfig {
    /// The Datadog API key (sent as `DD-API-KEY`). Required.
    pub api_key: Secret,
    /// Datadog site (default `datadoghq.com`); short forms `us1`, `us3`, `us5`, `eu1`, `ap1`,
    /// `ap2`, `uk1`, `us1-fed`, `us2-fed` are accepted.
    #[serde(default = "default_site")]
    pub site: String,
    /// Base URL that replaces `https://http-intake.logs.<site>` (proxies, tests).
    pub endpoint: Option<String>,
    /// `ddsource` of every log (default `siemrelay`).
    #[serde(default = "default_ddsource")]
    pub ddsource: String,
    /// `service` of every log (default: the event's `source`).
    pub service: Option<String>,
    /// `hostname` of every log (default: the event's `resource."host.name"`).
    pub hostname: Option<String>,
    /// Extra tags for every log, comma-separated `key:value` (default none).
    #[serde(default)]
    pub ddtags: String,
    /// Attribute paths (inside `attributes`) whose values become tags `<last key>:<value>`.
    #[serde(default)]
    pub tag_attributes: Vec<AttrPath>,
}

fn default_site() -> String {
    "datadoghq.com".into()
}

fn default_ddsource() -> String {
    "siemrelay".into()
}

impl DatadogConfig {
    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if resolve_site(&self.site).is_none() {
            let known: Vec<&str> = SITES.iter().map(|(name, _)| *name).collect();
            issues.push(ConfigIssue::new(
                "site",
                format!(
                    "unknown Datadog site {:?}; use one of {}",
                    self.site,
                    known.join(", ")
                ),
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && let Err(error) =
                HttpEndpoint::base(endpoint, "https://http-intake.logs.datadoghq.eu")
        {
            issues.push(ConfigIssue::new("endpoint", error.to_string()));
        }
        if self.ddsource.trim().is_empty() {
            issues.push(ConfigIssue::new("ddsource", "must not be empty"));
        }
        for (key, value) in [("service", &self.service), ("hostname", &self.hostname)] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                issues.push(ConfigIssue::new(key, "must not be empty when set"));
            }
        }
        if reqwest::header::HeaderValue::from_str(self.api_key.expose()).is_err() {
            issues.push(ConfigIssue::new(
                "api_key",
                "contains characters that cannot be sent in an HTTP header",
            ));
        }
        issues
    }

    /// The intake URL: `<endpoint>/api/v2/logs`, or the site's intake.
    pub fn intake_url(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("{}/api/v2/logs", endpoint.trim_end_matches('/')),
            None => format!(
                "https://http-intake.logs.{}/api/v2/logs",
                resolve_site(&self.site).unwrap_or("datadoghq.com")
            ),
        }
    }
}

/// Builds the Datadog sink for a validated config.
pub fn build(
    id: &str,
    config: DatadogConfig,
    http: &HttpOptions,
    timeout: Duration,
) -> anyhow::Result<Arc<dyn Sink>> {
    let encoder = DatadogEncoder::new(id, &config)?.with_schema(http.schema);
    let api_key = StaticHeader::new(
        HeaderName::from_static("dd-api-key"),
        config.api_key.expose(),
    )
    .map_err(|_| anyhow::anyhow!("exporter {id}: api_key is not a valid header value"))?;
    Ok(Arc::new(
        HttpSink::new(id, encoder, http, timeout, Compression::Gzip)?.with_auth(api_key),
    ))
}

/// Encodes events as Datadog logs and judges the intake's replies.
pub struct DatadogEncoder {
    exporter: String,
    url: reqwest::Url,
    site: String,
    ddsource: String,
    service: Option<String>,
    hostname: Option<String>,
    /// Configured tags, normalized (trimmed, no empty parts), without a trailing comma.
    base_tags: String,
    tag_attributes: Vec<AttrPath>,
    schema: Schema,
}

impl DatadogEncoder {
    /// An encoder for `config`; fails on an unusable endpoint or API key.
    pub fn new(exporter: &str, config: &DatadogConfig) -> anyhow::Result<DatadogEncoder> {
        let issues = config.validate();
        if let Some(issue) = issues.first() {
            anyhow::bail!("exporter {exporter}: {issue}");
        }
        let url = reqwest::Url::parse(&config.intake_url())
            .map_err(|e| anyhow::anyhow!("exporter {exporter}: endpoint: {e}"))?;
        let base_tags = config
            .ddtags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        Ok(DatadogEncoder {
            exporter: exporter.to_string(),
            site: match &config.endpoint {
                Some(endpoint) => endpoint.clone(),
                None => resolve_site(&config.site)
                    .unwrap_or("datadoghq.com")
                    .to_string(),
            },
            url,
            ddsource: config.ddsource.clone(),
            service: config.service.clone(),
            hostname: config.hostname.clone(),
            base_tags,
            tag_attributes: config.tag_attributes.clone(),
            schema: Schema::Native,
        })
    }

    /// Writes each log's attributes in `schema` (the shared `schema` key): Datadog's reserved
    /// attributes first, then the shaped event's members except those names.
    pub fn with_schema(self, schema: Schema) -> DatadogEncoder {
        DatadogEncoder { schema, ..self }
    }

    /// `ddtags` of one event: configured tags, `event_type:<type>`, then the tag attributes.
    fn tags(&self, event: &Event) -> String {
        let mut tags = String::with_capacity(self.base_tags.len() + 64);
        tags.push_str(&self.base_tags);
        push_tag(&mut tags, "event_type", &event.event_type);
        for path in &self.tag_attributes {
            let Some(key) = path.segments().last() else {
                continue;
            };
            match path.get(&event.attributes) {
                Some(Value::Array(items)) => {
                    for item in items {
                        if let Some(text) = scalar_text(item) {
                            push_tag(&mut tags, key, &text);
                        }
                    }
                }
                Some(value) => {
                    if let Some(text) = scalar_text(value) {
                        push_tag(&mut tags, key, &text);
                    }
                }
                None => {}
            }
        }
        tags
    }
}

/// Appends `key:value` to a comma-separated tag list; commas in either become `_`.
fn push_tag(tags: &mut String, key: &str, value: &str) {
    let value = value.trim();
    if value.is_empty() {
        return;
    }
    if !tags.is_empty() {
        tags.push(',');
    }
    for part in [key, ":", value] {
        if part.contains(',') {
            tags.push_str(&part.replace(',', "_"));
        } else {
            tags.push_str(part);
        }
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Datadog `status` for an OpenTelemetry severity number.
pub fn status_for(number: u8) -> &'static str {
    match number {
        1..=8 => "debug",
        13..=16 => "warning",
        17..=20 => "error",
        21..=24 => "critical",
        // INFO 9–12 and unspecified.
        _ => "info",
    }
}

/// The attributes Datadog reserves, written by the exporter in every shape.
const DATADOG_RESERVED: &[&str] = &[
    "message",
    "ddsource",
    "ddtags",
    "service",
    "hostname",
    "status",
    "timestamp",
];

/// One event as a Datadog log.
struct DatadogLog<'a> {
    encoder: &'a DatadogEncoder,
    event: &'a Event,
    tags: String,
}

impl Serialize for DatadogLog<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.event;
        let enc = self.encoder;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("message", e.summary.as_deref().unwrap_or(&e.event_type))?;
        map.serialize_entry("ddsource", &enc.ddsource)?;
        map.serialize_entry("ddtags", &self.tags)?;
        if let Some(service) = enc.service.as_deref().or(e.source.as_deref()) {
            map.serialize_entry("service", service)?;
        }
        let host = enc
            .hostname
            .as_deref()
            .or_else(|| e.resource.get("host.name").and_then(Value::as_str));
        if let Some(host) = host {
            map.serialize_entry("hostname", host)?;
        }
        map.serialize_entry("status", status_for(e.severity.number))?;
        map.serialize_entry("timestamp", &e.timestamp.as_epoch_millis())?;
        if enc.schema != Schema::Native {
            enc.schema.write_members(e, &mut map, DATADOG_RESERVED)?;
            return map.end();
        }
        let mut id_buf = uuid::Uuid::encode_buffer();
        map.serialize_entry(
            "event_id",
            e.event_id.hyphenated().encode_lower(&mut id_buf),
        )?;
        map.serialize_entry("event_type", &e.event_type)?;
        map.serialize_entry("severity", &e.severity.text)?;
        map.serialize_entry("severity_number", &e.severity.number)?;
        if let Some(source) = &e.source {
            map.serialize_entry("source", source)?;
        }
        map.serialize_entry("observed_timestamp", &e.observed_timestamp.to_rfc3339())?;
        map.serialize_entry("attributes", &e.attributes)?;
        if !e.resource.is_empty() {
            map.serialize_entry("resource", &e.resource)?;
        }
        if let Some(signature) = &e.signature {
            map.serialize_entry("signature", signature)?;
        }
        map.end()
    }
}

#[async_trait]
impl HttpEncoder for DatadogEncoder {
    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_events: MAX_LOGS_PER_REQUEST,
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
        let start = out.len();
        let log = DatadogLog {
            encoder: self,
            event,
            tags: self.tags(event),
        };
        serde_json::to_writer(&mut *out, &log)
            .map_err(|e| format!("cannot encode the event as a Datadog log: {e}"))?;
        let len = out.len() - start;
        if len > MAX_LOG_BYTES {
            return Err(format!(
                "the Datadog log is {len} bytes, more than the {MAX_LOG_BYTES} bytes Datadog keeps per log (it would be truncated)"
            ).into());
        }
        Ok(())
    }

    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        client
            .post(self.url.clone())
            .header("DD-EVP-ORIGIN", "siemrelay")
            .header("DD-EVP-ORIGIN-VERSION", env!("CARGO_PKG_VERSION"))
    }

    fn classify(&self, reply: &Reply<'_>, _request: &EncodedRequest) -> Classified {
        let outcome = match reply.status {
            200..=299 => Outcome::Delivered,
            413 => return Classified::Split,
            408 | 429 | 500..=599 => Outcome::Retry {
                reason: format!("Datadog answered HTTP {}: {}", reply.status, reply.text()).into(),
                after: reply.retry_after(),
            },
            status @ (401 | 403) => {
                tracing::error!(
                    exporter = %self.exporter,
                    site = %self.site,
                    status = %status,
                    "Datadog refused the API key: check api_key and that it belongs to this site"
                );
                Outcome::permanent(format!(
                    "Datadog refused the API key (HTTP {status}) at {}: {}",
                    self.site,
                    reply.text()
                ))
            }
            400 => Outcome::permanent(format!(
                "Datadog rejected the payload (HTTP 400): {}",
                reply.text()
            )),
            status => {
                Outcome::permanent(format!("Datadog answered HTTP {status}: {}", reply.text()))
            }
        };
        Classified::Outcomes(Outcomes::Uniform(outcome))
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        match record.http_status {
            Some(401) => Some(format!(
                "Datadog says the API key is missing (HTTP 401): set api_key (site {})",
                self.site
            )),
            Some(403) => Some(format!(
                "Datadog refused the API key (HTTP 403): check api_key, and that the key belongs to site {} (keys are per site)",
                self.site
            )),
            Some(400) => {
                Some("Datadog rejected the payload as malformed (HTTP 400): see the reply".into())
            }
            None => Some(format!(
                "cannot reach the Datadog intake at {}: check site/endpoint, DNS, proxy and firewall",
                self.url
            )),
            _ => default_hint(record),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemrelay_core::Severity;

    fn config(yaml: serde_json::Value) -> DatadogConfig {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn sites_resolve_with_short_forms_and_unknown_sites_are_reported() {
        assert_eq!(resolve_site("datadoghq.eu"), Some("datadoghq.eu"));
        assert_eq!(resolve_site("US3"), Some("us3.datadoghq.com"));
        assert_eq!(resolve_site("ap1"), Some("ap1.datadoghq.com"));
        assert_eq!(resolve_site("us2-fed"), Some("us2.ddog-gov.com"));
        let bad = config(serde_json::json!({"api_key": "k", "site": "datadoghq.org"}));
        let issues = bad.validate();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "site");
        let eu = config(serde_json::json!({"api_key": "k", "site": "eu1"}));
        assert_eq!(
            eu.intake_url(),
            "https://http-intake.logs.datadoghq.eu/api/v2/logs"
        );
        let local = config(serde_json::json!({"api_key": "k", "endpoint": "http://127.0.0.1:9/"}));
        assert_eq!(local.intake_url(), "http://127.0.0.1:9/api/v2/logs");
        let ftp = config(serde_json::json!({"api_key": "k", "endpoint": "ftp://x"}));
        assert_eq!(ftp.validate()[0].key, "endpoint");
    }

    #[test]
    fn severities_map_to_datadog_statuses() {
        for (number, status) in [
            (0, "info"),
            (1, "debug"),
            (5, "debug"),
            (9, "info"),
            (12, "info"),
            (13, "warning"),
            (17, "error"),
            (20, "error"),
            (21, "critical"),
            (24, "critical"),
        ] {
            assert_eq!(status_for(number), status, "{number}");
        }
    }

    #[test]
    fn a_log_carries_reserved_keys_tags_and_the_event_fields() {
        let cfg = config(serde_json::json!({
            "api_key": "k", "ddtags": " env:prod, ,team:sec", "service": "gateway",
            "tag_attributes": ["tags.env", "labels", "missing.path"],
        }));
        let encoder = DatadogEncoder::new("datadog", &cfg).unwrap();
        let mut event = Event::new("lockout");
        event.severity = Severity::from_name("high").unwrap();
        event.source = Some("toktra".into());
        *event.attributes =
            serde_json::json!({"tags": {"env": "stage,eu"}, "labels": ["a", 2, {"x": 1}]})
                .as_object()
                .unwrap()
                .clone();
        event.resource.insert("host.name".into(), "sensor-1".into());
        let encoded = encoder.encode(std::slice::from_ref(&event));
        let logs: Vec<serde_json::Value> =
            serde_json::from_slice(&encoded.requests[0].body).unwrap();
        let log = &logs[0];
        assert_eq!(log["message"], "lockout");
        assert_eq!(log["ddsource"], "siemrelay");
        assert_eq!(
            log["ddtags"],
            "env:prod,team:sec,event_type:lockout,env:stage_eu,labels:a,labels:2"
        );
        assert_eq!(log["service"], "gateway");
        assert_eq!(log["hostname"], "sensor-1");
        assert_eq!(log["status"], "error");
        assert_eq!(log["timestamp"], event.timestamp.as_epoch_millis());
        assert_eq!(log["event_id"], event.event_id.to_string());
        assert_eq!(log["severity"], "high");
        assert_eq!(log["severity_number"], 17);
        assert_eq!(log["source"], "toktra");
        assert_eq!(log["attributes"]["labels"][1], 2);
        assert_eq!(log["resource"]["host.name"], "sensor-1");
        assert!(log.get("summary").is_none());
    }

    #[test]
    fn logs_over_one_megabyte_are_rejected_not_truncated() {
        let cfg = config(serde_json::json!({"api_key": "k"}));
        let encoder = DatadogEncoder::new("datadog", &cfg).unwrap();
        let mut big = Event::new("big");
        big.summary = Some("x".repeat(MAX_LOG_BYTES));
        let small = Event::new("small");
        let encoded = encoder.encode(&[small, big]);
        assert_eq!(encoded.rejected.len(), 1);
        assert_eq!(encoded.rejected[0].0, 1);
        assert!(
            encoded.rejected[0]
                .1
                .contains("1000000 bytes Datadog keeps per log")
        );
        assert_eq!(encoded.requests.len(), 1);
        assert_eq!(encoded.requests[0].indices, vec![0]);
    }
}
