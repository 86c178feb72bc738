//! The `qradar` exporter: the [`syslog`](crate::syslog) exporter with IBM QRadar's defaults —
//! LEEF 2.0 over TCP to port 514 (`transport: tls` → 6514, QRadar's TLS Syslog log source) — plus
//! `transport: http` for QRadar's HTTP Receiver log source.
//!
//! With `transport: http`, `endpoint` is the receiver's URL (`https://qradar.example.com:12469`)
//! and each POST carries newline-separated event lines (LEEF by default, without a syslog header;
//! set the log source's Message Pattern to `^LEEF:`), `Content-Type: text/plain`. 2xx means
//! received; 408, 429 and 5xx are retried; 413 splits the batch; other statuses are permanent.
//! `tls` (CA, client certificate for mutual TLS) configures the HTTPS client.

pub mod factory;

use crate::delivery::endpoint::HttpEndpoint;
use crate::delivery::http::{
    Classified, Compression, HttpEncoder, HttpOptions, HttpSink, Reply, TlsConfig,
    classify_by_status,
};
use crate::delivery::pack::{EncodedRequest, Framing, LINES};
use crate::delivery::{Outcomes, RequestLimits, RequestRecord, Sink, default_hint};
use crate::syslog::message::MessageEncoder;
use crate::syslog::{Flavor, SyslogConfig, SyslogSink, Transport};
use async_trait::async_trait;
use serde::Deserialize;
use siemrelay_core::{ConfigIssue, Event};
use std::sync::Arc;
use std::time::Duration;

/// Largest POST body (before the 413 split): 5 MiB.
pub const HTTP_MAX_BODY: usize = 5 << 20;

/// `qradar:` settings: the same keys as `syslog`, with LEEF as the default format and
/// `transport: http` allowed.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct QradarConfig(pub SyslogConfig);

impl QradarConfig {
    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        self.0.validate_for(Flavor::Qradar)
    }
}

/// An HTTP Receiver `endpoint` (`transport: http`), for error messages.
pub const HTTP_ENDPOINT_EXAMPLE: &str = "https://qradar.example.com:12469";

/// Builds a `qradar` exporter's sink. `timeout` is `sending.timeout`.
pub fn build(id: &str, config: QradarConfig, timeout: Duration) -> anyhow::Result<Arc<dyn Sink>> {
    let config = config.0;
    if config.transport != Transport::Http {
        return Ok(Arc::new(SyslogSink::new(
            id,
            &config,
            Flavor::Qradar,
            timeout,
        )?));
    }
    let encoder = HttpReceiverEncoder::new(&config)?;
    let options = HttpOptions {
        tls: TlsConfig {
            ca_file: config.tls.ca_file.clone(),
            cert_file: config.tls.cert_file.clone(),
            key_file: config.tls.key_file.clone(),
            insecure_skip_verify: config.tls.insecure_skip_verify,
        },
        compression: None,
        signing: None,
        ..Default::default()
    };
    Ok(Arc::new(HttpSink::new(
        id,
        encoder,
        &options,
        timeout,
        Compression::None,
    )?))
}

/// Encodes events as newline-separated lines for QRadar's HTTP Receiver.
pub struct HttpReceiverEncoder {
    url: reqwest::Url,
    encoder: MessageEncoder,
    limits: RequestLimits,
    max_line: usize,
}

impl HttpReceiverEncoder {
    /// An encoder for a validated config with `transport: http`.
    pub fn new(config: &SyslogConfig) -> anyhow::Result<HttpReceiverEncoder> {
        let url = HttpEndpoint::exact(&config.endpoint, HTTP_ENDPOINT_EXAMPLE)
            .map_err(|e| anyhow::anyhow!("endpoint: {e}"))?
            .url()
            .clone();
        Ok(HttpReceiverEncoder {
            url,
            encoder: config.encoder(Flavor::Qradar)?,
            limits: RequestLimits {
                max_events: config.max_events.max(1),
                max_bytes: HTTP_MAX_BODY,
            },
            max_line: config.max_message_size.as_usize(),
        })
    }
}

#[async_trait]
impl HttpEncoder for HttpReceiverEncoder {
    fn limits(&self) -> RequestLimits {
        self.limits
    }

    fn framing(&self) -> Framing {
        LINES
    }

    fn write_event(
        &self,
        event: &Event,
        out: &mut Vec<u8>,
    ) -> Result<(), crate::delivery::pack::EncodeError> {
        let start = out.len();
        self.encoder.encode_body(event, out);
        let len = out.len() - start;
        if len > self.max_line {
            return Err(format!(
                "the event line is {len} bytes, more than max_message_size ({} bytes)",
                self.max_line
            )
            .into());
        }
        out.push(b'\n');
        Ok(())
    }

    fn content_type(&self) -> &'static str {
        "text/plain; charset=utf-8"
    }

    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        client.post(self.url.clone())
    }

    fn classify(&self, reply: &Reply<'_>, _request: &EncodedRequest) -> Classified {
        if reply.status == 413 {
            return Classified::Split;
        }
        Classified::Outcomes(Outcomes::Uniform(classify_by_status(
            reply,
            "the QRadar HTTP Receiver",
        )))
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        match record.http_status {
            None => Some(
                "the QRadar HTTP Receiver is unreachable: check the URL and port (default 12469), http vs https, and tls.ca_file / client certificate for mutual TLS".into(),
            ),
            _ => default_hint(record),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use siemrelay_e2e::fake::syslog_parse::parse_leef;

    fn config(value: serde_json::Value) -> QradarConfig {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn defaults_are_leef_over_tcp_514_and_http_needs_a_url() {
        let plain = config(json!({"endpoint": "qradar.example.com"}));
        assert!(plain.validate().is_empty());
        assert_eq!(plain.0.stream_endpoint().unwrap().port, 514);
        assert_eq!(
            plain.0.format_for(Flavor::Qradar),
            crate::syslog::message::MessageFormat::Leef
        );
        let tls = config(json!({"endpoint": "qradar.example.com", "transport": "tls"}));
        assert_eq!(tls.0.stream_endpoint().unwrap().port, 6514);
        let http = config(json!({"endpoint": "qradar.example.com:12469", "transport": "http"}));
        assert_eq!(http.validate()[0].key, "endpoint");
        let good =
            config(json!({"endpoint": "https://qradar.example.com:12469", "transport": "http"}));
        assert!(good.validate().is_empty());
    }

    #[test]
    fn http_bodies_are_leef_lines() {
        let encoder = HttpReceiverEncoder::new(
            &config(
                json!({"endpoint": "http://127.0.0.1:12469", "transport": "http", "max_events": 2}),
            )
            .0,
        )
        .unwrap();
        let events: Vec<Event> = (0..3).map(|i| Event::new(format!("t{i}"))).collect();
        let encoded = encoder.encode(&events);
        assert_eq!(encoded.requests.len(), 2);
        let body = String::from_utf8(encoded.requests[0].body.clone()).unwrap();
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 2);
        let leef = parse_leef(lines[1]).unwrap();
        assert_eq!(leef.event_id, "t1");
        assert_eq!(
            leef.get("event_id"),
            Some(events[1].event_id.to_string().as_str())
        );
    }
}
