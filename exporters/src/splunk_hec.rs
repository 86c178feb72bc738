//! The `splunk_hec` exporter: events to a Splunk HTTP Event Collector.
//!
//! `POST <endpoint>/services/collector/event` with `Authorization: Splunk <token>` and a body of
//! JSON envelopes back to back, one per event:
//! `{"time":1718000000.123456,"host":"…","source":"…","sourcetype":"siemrelay:security","index":"…","event":{…}}`.
//! Only those keys (and `fields`, with `indexed_fields`) are sent (an unknown top-level key can
//! make Splunk drop the rest of a batch). `index_from` / `sourcetype_from` take an envelope's
//! `index` / `sourcetype` from an attribute of its event, the static `index` / `sourcetype`
//! being the fallback.
//!
//! With `endpoint_kind: raw` the exporter posts to `<endpoint>/services/collector/raw` instead:
//! one line per event (its `summary`, else its JSON form), the metadata as query parameters
//! (`sourcetype`, `index`, `source`, `host`) and the `X-Splunk-Request-Channel` header.
//! Replies are judged in [`reply`]; with `acknowledgements: true` a request counts as delivered
//! only once its ack id reads `true` ([`ack`]).

mod ack;
pub mod factory;
mod reply;

pub use reply::{HecReply, hint_for};

use crate::delivery::auth::StaticHeader;
use crate::delivery::endpoint::HttpEndpoint;
use crate::delivery::http::{Classified, Compression, HttpEncoder, HttpOptions, HttpSink, Reply};
use crate::delivery::pack::EncodedRequest;
use crate::delivery::{RequestLimits, RequestRecord, Schema, Sink};
use async_trait::async_trait;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use siemrelay_core::config_types::{ConfigDuration, ConfigSize, Secret};
use siemrelay_core::path::AttrPath;
use siemrelay_core::{ConfigIssue, Event, Value};
use std::sync::Arc;
use std::time::Duration;

/// The API path appended to `endpoint`.
pub const EVENT_PATH: &str = "/services/collector/event";
/// The raw-endpoint path appended to `endpoint` (`endpoint_kind: raw`).
pub const RAW_PATH: &str = "/services/collector/raw";
/// The acknowledgement poll path appended to `endpoint`.
pub const ACK_PATH: &str = "/services/collector/ack";
/// Default `sourcetype`.
pub const DEFAULT_SOURCETYPE: &str = "siemrelay:security";
/// Default `max_request_size` (Splunk Cloud's limit; Vector's batch cap).
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 1_000_000;
/// Default `max_events` (HEC has no count limit; this keeps requests and retries bounded).
pub const DEFAULT_MAX_EVENTS: usize = 10_000;

/// `splunk_hec/<name>:` settings (the delivery keys and `tls`/`compression`/`signing` are
/// handled by the delivery layer).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Base URL of the collector, e.g. `https://splunk.example.com:8088` (required);
    /// `/services/collector/event` is appended.
    pub endpoint: String,
    /// The HEC token (a GUID; required). Sent as `Authorization: Splunk <token>`.
    pub token: Secret,
    /// Index to write to (default: the token's default index).
    #[serde(default)]
    pub index: Option<String>,
    /// `sourcetype` of every event (default `siemrelay:security`).
    #[serde(default = "default_sourcetype")]
    pub sourcetype: String,
    /// `source` of every event (default: the event's `source`, omitted when it has none).
    #[serde(default)]
    pub source: Option<String>,
    /// `host` of every event (default: the event's resource `host.name`, else its attribute
    /// `host`, else omitted so Splunk uses the sender's address).
    #[serde(default)]
    pub host: Option<String>,
    /// Count events as delivered only once Splunk confirms they were indexed (indexer
    /// acknowledgement; the token needs "Enable indexer acknowledgement"). Default false.
    #[serde(default)]
    pub acknowledgements: bool,
    /// How often to poll `/services/collector/ack` (default 1s).
    #[serde(default = "default_ack_poll_interval")]
    pub ack_poll_interval: ConfigDuration,
    /// How long to wait for acks before the request's events are resent (default 20s; kept below
    /// `sending.timeout`).
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: ConfigDuration,
    /// Largest request body before compression (default 1MB = 1,000,000 bytes).
    #[serde(default = "default_max_request_size")]
    pub max_request_size: ConfigSize,
    /// Most events per request (default 10,000).
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Attribute paths sent as index-time fields in the envelope's `fields` (default none).
    #[serde(default)]
    pub indexed_fields: Vec<AttrPath>,
    /// Attribute path whose value is the event's `index` (fallback: `index`).
    #[serde(default)]
    pub index_from: Option<AttrPath>,
    /// Attribute path whose value is the event's `sourcetype` (fallback: `sourcetype`).
    #[serde(default)]
    pub sourcetype_from: Option<AttrPath>,
    /// `event` (default: JSON envelopes to `/services/collector/event`) or `raw` (lines to
    /// `/services/collector/raw`, for line-oriented sources).
    #[serde(default)]
    pub endpoint_kind: EndpointKind,
}

/// Which HEC endpoint the exporter posts to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// `/services/collector/event`: JSON envelopes.
    #[default]
    Event,
    /// `/services/collector/raw`: one line per event, metadata as query parameters.
    Raw,
}

/// Whether `index` is a Splunk index name (lowercase letters, digits, `_` and `-`).
pub fn is_index_name(index: &str) -> bool {
    !index.is_empty()
        && index
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn default_sourcetype() -> String {
    DEFAULT_SOURCETYPE.into()
}

fn default_ack_poll_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}

fn default_ack_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(20))
}

fn default_max_request_size() -> ConfigSize {
    ConfigSize(DEFAULT_MAX_REQUEST_SIZE)
}

fn default_max_events() -> usize {
    DEFAULT_MAX_EVENTS
}

impl SplunkHecConfig {
    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if let Err(message) = base_url(&self.endpoint) {
            issues.push(ConfigIssue::new("endpoint", message));
        }
        if self.token.expose().trim().is_empty() {
            issues.push(ConfigIssue::new("token", "must not be blank"));
        } else if HeaderValue::from_str(&format!("Splunk {}", self.token.expose())).is_err() {
            issues.push(ConfigIssue::new(
                "token",
                "contains characters not allowed in an HTTP header",
            ));
        }
        if self.endpoint_kind == EndpointKind::Raw {
            for (key, set) in [
                ("indexed_fields", !self.indexed_fields.is_empty()),
                ("index_from", self.index_from.is_some()),
                ("sourcetype_from", self.sourcetype_from.is_some()),
            ] {
                if set {
                    issues.push(ConfigIssue::new(
                        key,
                        "not available with endpoint_kind: raw (its metadata is one set of query \
                         parameters per request)",
                    ));
                }
            }
        }
        if let Some(index) = &self.index
            && !is_index_name(index)
        {
            issues.push(ConfigIssue::new(
                "index",
                format!(
                    "{index:?} is not a Splunk index name (lowercase letters, digits, _ and -)"
                ),
            ));
        }
        for (key, value) in [
            ("sourcetype", Some(&self.sourcetype)),
            ("source", self.source.as_ref()),
            ("host", self.host.as_ref()),
        ] {
            if value.is_some_and(|v| v.trim().is_empty()) {
                issues.push(ConfigIssue::new(
                    key,
                    "must not be blank (leave it out instead)",
                ));
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
        if self.acknowledgements {
            if self.ack_poll_interval.0.is_zero() {
                issues.push(ConfigIssue::new(
                    "ack_poll_interval",
                    "must be more than 0s",
                ));
            }
            if self.ack_timeout <= self.ack_poll_interval {
                issues.push(ConfigIssue::new(
                    "ack_timeout",
                    "must be longer than ack_poll_interval",
                ));
            }
        }
        issues
    }
}

/// The endpoint without a trailing slash, checked: http(s), a host, no query, and not already the
/// API path.
fn base_url(endpoint: &str) -> Result<String, String> {
    let url = HttpEndpoint::base(endpoint, "https://splunk.example.com:8088")
        .map_err(|e| e.to_string())?;
    if url.url().path().contains("/services/collector") {
        return Err(format!(
            "{endpoint:?}: give the base URL (e.g. https://splunk.example.com:8088); siemrelay appends {EVENT_PATH}"
        ));
    }
    Ok(url.trimmed().to_string())
}

/// Builds the exporter's sink. `timeout` is `sending.timeout`: it bounds each request and, with
/// acknowledgements, the ack wait (kept to at most three quarters of it).
pub fn build(
    id: &str,
    config: SplunkHecConfig,
    http: &HttpOptions,
    timeout: Duration,
) -> anyhow::Result<Arc<dyn Sink>> {
    let base = base_url(&config.endpoint).map_err(|e| anyhow::anyhow!("endpoint: {e}"))?;
    let channel = (config.acknowledgements || config.endpoint_kind == EndpointKind::Raw)
        .then(|| uuid::Uuid::now_v7().hyphenated().to_string());
    let encoder = HecEncoder::new(&base, &config, channel.clone())?.with_schema(http.schema);
    let token = StaticHeader::authorization("Splunk", &config.token)
        .map_err(|_| anyhow::anyhow!("token: contains characters not allowed in an HTTP header"))?;
    let sink = HttpSink::new(id, encoder, http, timeout, Compression::None)?.with_auth(token);
    let Some(channel) = channel.filter(|_| config.acknowledgements) else {
        return Ok(Arc::new(sink));
    };
    let limit = timeout.mul_f64(0.75);
    let wait = if config.ack_timeout.0 > limit {
        tracing::warn!(
            exporter = %id,
            ack_timeout = ?config.ack_timeout.0,
            sending_timeout = ?timeout,
            "ack_timeout is not below sending.timeout; waiting at most {limit:?} for acknowledgements"
        );
        limit
    } else {
        config.ack_timeout.0
    };
    let poller = ack::AckPoller::new(
        id,
        &base,
        &channel,
        &config.token,
        config.ack_poll_interval.0,
        wait,
    )?;
    Ok(Arc::new(ack::AckingSink::new(sink, poller)))
}

/// Encodes events as HEC envelopes and judges HEC replies.
pub struct HecEncoder {
    url: String,
    channel: Option<HeaderValue>,
    /// `,"host":"…"` when configured.
    host: Option<Vec<u8>>,
    /// `,"source":"…"` when configured.
    source: Option<Vec<u8>>,
    /// `,"sourcetype":"…"` and `,"index":"…"`.
    tail: Vec<u8>,
    index: Option<String>,
    sourcetype: String,
    limits: RequestLimits,
    schema: Schema,
    indexed_fields: Vec<(String, AttrPath)>,
    index_from: Option<AttrPath>,
    sourcetype_from: Option<AttrPath>,
    kind: EndpointKind,
}

impl HecEncoder {
    /// An encoder posting to `<base>/services/collector/event` (with the channel header when
    /// acknowledgements are on).
    pub fn new(
        base: &str,
        config: &SplunkHecConfig,
        channel: Option<String>,
    ) -> anyhow::Result<HecEncoder> {
        let channel = channel
            .map(|c| HeaderValue::from_str(&c))
            .transpose()
            .map_err(|e| anyhow::anyhow!("channel: {e}"))?;
        let field = |key: &str, value: &str| {
            let mut out = format!(",\"{key}\":").into_bytes();
            json_string(value, &mut out);
            out
        };
        let mut tail = field("sourcetype", &config.sourcetype);
        if let Some(index) = &config.index {
            tail.extend(field("index", index));
        }
        let url = match config.endpoint_kind {
            EndpointKind::Event => format!("{base}{EVENT_PATH}"),
            EndpointKind::Raw => {
                let mut url = reqwest::Url::parse(&format!("{base}{RAW_PATH}"))
                    .map_err(|e| anyhow::anyhow!("endpoint: {e}"))?;
                {
                    let mut query = url.query_pairs_mut();
                    query.append_pair("sourcetype", &config.sourcetype);
                    for (key, value) in [
                        ("index", &config.index),
                        ("source", &config.source),
                        ("host", &config.host),
                    ] {
                        if let Some(value) = value {
                            query.append_pair(key, value);
                        }
                    }
                }
                url.to_string()
            }
        };
        Ok(HecEncoder {
            url,
            channel,
            host: config.host.as_deref().map(|h| field("host", h)),
            source: config.source.as_deref().map(|s| field("source", s)),
            tail,
            index: config.index.clone(),
            sourcetype: config.sourcetype.clone(),
            limits: RequestLimits {
                max_events: config.max_events.max(1),
                max_bytes: config.max_request_size.as_usize(),
            },
            indexed_fields: config
                .indexed_fields
                .iter()
                .map(|path| (path.segments().join("."), path.clone()))
                .collect(),
            index_from: config.index_from.clone(),
            sourcetype_from: config.sourcetype_from.clone(),
            kind: config.endpoint_kind,
            schema: Schema::Native,
        })
    }

    /// Writes each `event` in `schema` (the shared `schema` key).
    pub fn with_schema(self, schema: Schema) -> HecEncoder {
        HecEncoder { schema, ..self }
    }

    /// Whether events carry their own index (then a code 7 names one event).
    fn routes_index(&self) -> bool {
        self.index_from.is_some()
    }

    /// Writes `,"sourcetype":…` and `,"index":…` for `event`: its routed values, else the
    /// static ones.
    fn write_routing(&self, event: &Event, out: &mut Vec<u8>) {
        if self.index_from.is_none() && self.sourcetype_from.is_none() {
            out.extend_from_slice(&self.tail);
            return;
        }
        let routed = |path: &Option<AttrPath>| {
            path.as_ref()
                .and_then(|p| p.get(&event.attributes))
                .and_then(Value::as_str)
                .filter(|text| !text.trim().is_empty())
        };
        let sourcetype = routed(&self.sourcetype_from).unwrap_or(&self.sourcetype);
        out.extend_from_slice(b",\"sourcetype\":");
        json_string(sourcetype, out);
        let index = routed(&self.index_from)
            .filter(|index| is_index_name(index))
            .or(self.index.as_deref());
        if let Some(index) = index {
            out.extend_from_slice(b",\"index\":");
            json_string(index, out);
        }
    }

    /// Writes `,"fields":{…}` with the configured attributes present in `event`: strings as
    /// they are, numbers and booleans as their JSON text, arrays as arrays of those; maps and
    /// null are left out (HEC takes flat string values only).
    fn write_fields(&self, event: &Event, out: &mut Vec<u8>) {
        let mut first = true;
        for (name, path) in &self.indexed_fields {
            let Some(value) = path.get(&event.attributes) else {
                continue;
            };
            let start = out.len();
            out.extend_from_slice(if first { b",\"fields\":{" } else { b"," });
            json_string(name, out);
            out.push(b':');
            let written = match value {
                Value::Array(items) => {
                    out.push(b'[');
                    let mut any = false;
                    for item in items {
                        if let Some(text) = scalar_text(item) {
                            if any {
                                out.push(b',');
                            }
                            json_string(&text, out);
                            any = true;
                        }
                    }
                    out.push(b']');
                    true
                }
                other => match scalar_text(other) {
                    Some(text) => {
                        json_string(&text, out);
                        true
                    }
                    None => false,
                },
            };
            if written {
                first = false;
            } else {
                out.truncate(start);
            }
        }
        if !first {
            out.push(b'}');
        }
    }

    /// Appends one `/raw` line for `event`: its summary (CR and LF → space), else its JSON form.
    pub fn write_raw_line(&self, event: &Event, out: &mut Vec<u8>) {
        match &event.summary {
            Some(summary) => out.extend(summary.bytes().map(|b| match b {
                b'\r' | b'\n' => b' ',
                other => other,
            })),
            None => event.write_json(out),
        }
        out.push(b'\n');
    }

    /// Appends one envelope for `event`.
    pub fn write_envelope(&self, event: &Event, out: &mut Vec<u8>) {
        let head = event.head();
        out.extend_from_slice(b"{\"time\":");
        write_epoch_seconds(head.timestamp.0, out);
        match &self.host {
            Some(host) => out.extend_from_slice(host),
            None => {
                if let Some(host) = event.host() {
                    out.extend_from_slice(b",\"host\":");
                    json_string(host, out);
                }
            }
        }
        match &self.source {
            Some(source) => out.extend_from_slice(source),
            None => {
                if let Some(source) = head.source {
                    out.extend_from_slice(b",\"source\":");
                    json_string(source, out);
                }
            }
        }
        self.write_routing(event, out);
        out.extend_from_slice(b",\"event\":");
        self.schema.write_event(event, out);
        self.write_fields(event, out);
        out.push(b'}');
    }
}

#[async_trait]
impl HttpEncoder for HecEncoder {
    fn limits(&self) -> RequestLimits {
        self.limits
    }

    fn write_event(
        &self,
        event: &Event,
        out: &mut Vec<u8>,
    ) -> Result<(), crate::delivery::pack::EncodeError> {
        match self.kind {
            EndpointKind::Event => self.write_envelope(event, out),
            EndpointKind::Raw => self.write_raw_line(event, out),
        }
        Ok(())
    }

    fn content_type(&self) -> &'static str {
        match self.kind {
            EndpointKind::Event => "application/json",
            EndpointKind::Raw => "text/plain; charset=utf-8",
        }
    }

    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        let request = client.post(&self.url);
        match &self.channel {
            Some(channel) => request.header(ack::CHANNEL_HEADER, channel.clone()),
            None => request,
        }
    }

    fn classify(&self, reply: &Reply<'_>, request: &EncodedRequest) -> Classified {
        let events = request.indices.len();
        reply::classify(reply, events, self.index.as_deref(), self.routes_index())
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        hint_for(record, self.index.as_deref())
    }
}

/// Writes epoch seconds with a 6-digit microsecond fraction (`1718000000.123456`), exactly.
/// Digits written by hand: this runs once per delivered event, and `write!` costs several times
/// more.
pub fn write_epoch_seconds(nanos: i64, out: &mut Vec<u8>) {
    let micros = nanos.div_euclid(1_000);
    if micros < 0 {
        out.push(b'-');
    }
    let abs = micros.unsigned_abs();
    // u64::MAX / 10^6 has 14 digits; the fraction is always 6.
    let mut digits = [0u8; 21];
    let mut at = digits.len();
    let mut rest = abs;
    for place in 0..6 {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if place == 5 {
            at -= 1;
            digits[at] = b'.';
        }
    }
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A scalar's text for an indexed field; `None` for maps and null.
fn scalar_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(text) => Some(std::borrow::Cow::Borrowed(text)),
        Value::Number(number) => Some(std::borrow::Cow::Owned(number.to_string())),
        Value::Bool(flag) => Some(std::borrow::Cow::Borrowed(if *flag {
            "true"
        } else {
            "false"
        })),
        _ => None,
    }
}

fn json_string(value: &str, out: &mut Vec<u8>) {
    // Serializing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemrelay_core::Timestamp;

    fn config(yaml: serde_json::Value) -> SplunkHecConfig {
        serde_json::from_value(yaml).unwrap()
    }

    fn minimal() -> SplunkHecConfig {
        config(serde_json::json!({"endpoint": "https://splunk.example.com:8088/", "token": "abc"}))
    }

    #[test]
    fn time_is_epoch_seconds_with_microseconds() {
        let mut out = Vec::new();
        write_epoch_seconds(1_718_000_000_123_456_789, &mut out);
        assert_eq!(out, b"1718000000.123456");
        out.clear();
        write_epoch_seconds(1_718_000_000_000_000_000, &mut out);
        assert_eq!(out, b"1718000000.000000");
        out.clear();
        write_epoch_seconds(-1_500_000_000, &mut out);
        assert_eq!(out, b"-1.500000");
        for nanos in [
            0,
            999,
            1_000,
            999_999_999,
            -1,
            -999,
            i64::MAX,
            i64::MIN,
            1_234_567,
        ] {
            out.clear();
            write_epoch_seconds(nanos, &mut out);
            let micros = i128::from(nanos).div_euclid(1_000);
            let (sign, abs) = (if micros < 0 { "-" } else { "" }, micros.unsigned_abs());
            let expected = format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000);
            assert_eq!(String::from_utf8_lossy(&out), expected, "{nanos}");
        }
    }

    #[test]
    fn envelope_has_only_the_hec_keys_and_the_event_json_form() {
        let encoder = HecEncoder::new("https://s:8088", &minimal(), None).unwrap();
        let mut event = Event::new("login_failed");
        event.timestamp = Timestamp::parse_rfc3339("2026-11-20T09:00:00.123456Z").unwrap();
        event.source = Some("toktra".into());
        event.resource.insert("host.name".into(), "sensor-1".into());
        event.attributes.insert("host".into(), "other".into());
        let mut out = Vec::new();
        encoder.write_envelope(&event, &mut out);
        let envelope: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let keys = siemrelay_e2e::json_keys_in_order(&out);
        assert_eq!(keys, ["time", "host", "source", "sourcetype", "event"]);
        assert_eq!(envelope["time"].as_f64().unwrap(), 1_795_165_200.123456);
        assert!(String::from_utf8_lossy(&out).starts_with("{\"time\":1795165200.123456,"));
        assert_eq!(envelope["host"], "sensor-1");
        assert_eq!(envelope["source"], "toktra");
        assert_eq!(envelope["sourcetype"], DEFAULT_SOURCETYPE);
        assert_eq!(envelope["event"], event.to_json_value());
    }

    #[test]
    fn configured_metadata_wins_and_missing_host_is_omitted() {
        let cfg = config(serde_json::json!({
            "endpoint": "https://s:8088", "token": "abc", "index": "security",
            "sourcetype": "acme:alert", "source": "relay", "host": "relay-1"
        }));
        let encoder = HecEncoder::new("https://s:8088", &cfg, None).unwrap();
        let mut event = Event::new("x");
        event.source = Some("toktra".into());
        event.resource.insert("host.name".into(), "sensor-1".into());
        let mut out = Vec::new();
        encoder.write_envelope(&event, &mut out);
        let envelope: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (
                &envelope["host"],
                &envelope["source"],
                &envelope["sourcetype"],
                &envelope["index"]
            ),
            (
                &"relay-1".into(),
                &"relay".into(),
                &"acme:alert".into(),
                &"security".into()
            )
        );

        let plain = HecEncoder::new("https://s:8088", &minimal(), None).unwrap();
        let mut bare = Event::new("x");
        out.clear();
        plain.write_envelope(&bare, &mut out);
        let envelope: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(envelope.get("host").is_none() && envelope.get("source").is_none());
        bare.attributes
            .insert("host".into(), serde_json::json!({"name": "db-7"}));
        assert_eq!(bare.host(), Some("db-7"));
        // A queued (compact) event has no attribute tree, and still names its host.
        bare.compact();
        assert_eq!(bare.host(), Some("db-7"));
        out.clear();
        plain.write_envelope(&bare, &mut out);
        let envelope: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(envelope["host"], "db-7");
    }

    #[test]
    fn validate_names_the_bad_keys() {
        assert!(minimal().validate().is_empty());
        let cfg = config(serde_json::json!({
            "endpoint": "https://s:8088/services/collector/event", "token": "abc",
            "index": "Security!", "sourcetype": " ", "max_request_size": 10, "max_events": 0,
            "acknowledgements": true, "ack_poll_interval": "5s", "ack_timeout": "1s"
        }));
        let keys: Vec<String> = cfg.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "endpoint",
                "index",
                "sourcetype",
                "max_request_size",
                "max_events",
                "ack_timeout"
            ]
        );
        let err = serde_json::from_value::<SplunkHecConfig>(
            serde_json::json!({"endpoint": "https://s", "token": "t", "tokne": "x"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("tokne"));
        assert!(
            !format!("{:?}", minimal()).contains("abc"),
            "the token never prints"
        );
    }

    #[test]
    fn raw_refuses_per_event_metadata_and_posts_to_the_raw_path() {
        let cfg = config(serde_json::json!({
            "endpoint": "https://s:8088", "token": "abc", "endpoint_kind": "raw",
            "indexed_fields": ["a"], "index_from": "b", "sourcetype_from": "c"
        }));
        let keys: Vec<String> = cfg.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["indexed_fields", "index_from", "sourcetype_from"]);
        let cfg = config(serde_json::json!({
            "endpoint": "https://s:8088", "token": "abc", "endpoint_kind": "raw",
            "index": "security", "host": "a b"
        }));
        let encoder = HecEncoder::new("https://s:8088", &cfg, None).unwrap();
        assert_eq!(
            encoder.url,
            "https://s:8088/services/collector/raw?sourcetype=siemrelay%3Asecurity&index=security&host=a+b"
        );
    }

    #[test]
    fn batches_respect_the_byte_limit() {
        let cfg = config(serde_json::json!({
            "endpoint": "https://s:8088", "token": "abc", "max_request_size": 4096
        }));
        let encoder = HecEncoder::new("https://s:8088", &cfg, None).unwrap();
        let events: Vec<Event> = (0..100).map(|i| Event::new(format!("t{i}"))).collect();
        let encoded = encoder.encode(&events);
        assert!(encoded.rejected.is_empty());
        assert!(encoded.requests.len() > 1);
        let mut count = 0;
        for request in &encoded.requests {
            assert!(request.body.len() <= 4096);
            count += serde_json::Deserializer::from_slice(&request.body)
                .into_iter::<serde_json::Value>()
                .map(Result::unwrap)
                .count();
        }
        assert_eq!(count, 100);
    }
}
