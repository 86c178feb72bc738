//! What every HTTP exporter shares: the client (TLS, timeouts, no redirects), compression,
//! payload signing, splitting on 413, and mapping replies back onto events. An HTTP exporter
//! implements [`HttpEncoder`] (encode + classify) and is wrapped in [`HttpSink`].

use super::pack::Encoded;
use super::retry::parse_retry_after;
use super::{Outcome, Outcomes, RequestLimits, RequestRecord, SendReport, Sink, default_hint};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use siemrelay_core::config_types::Secret;
use siemrelay_core::{ConfigIssue, Event};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `tls:` on an HTTP exporter.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra CA certificate(s) (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. Insecure: logged loudly at start.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `compression:` on an HTTP exporter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip the body (`Content-Encoding: gzip`).
    Gzip,
    /// Send as is.
    #[default]
    None,
}

/// `signing:` — HMAC-SHA256 of the exact body bytes sent, for the receiving side to verify.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// The shared secret.
    pub secret: Secret,
    /// Header carrying `sha256=<hex>` (default `X-Siemrelay-Signature`).
    #[serde(default = "default_signature_header")]
    pub header: String,
    /// Header carrying the Unix time of sending (default `X-Siemrelay-Timestamp`).
    #[serde(default = "default_timestamp_header")]
    pub timestamp_header: String,
}

fn default_signature_header() -> String {
    "X-Siemrelay-Signature".into()
}

fn default_timestamp_header() -> String {
    "X-Siemrelay-Timestamp".into()
}

/// The HTTP keys shared by every HTTP exporter: `tls`, `compression`, `signing`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Body compression (the exporter picks the default).
    pub compression: Option<Compression>,
    /// Payload signing.
    pub signing: Option<SigningConfig>,
}

impl HttpOptions {
    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            issues.push(ConfigIssue::new(
                "tls",
                "cert_file and key_file must be given together",
            ));
        }
        for (key, path) in [
            ("tls.ca_file", &self.tls.ca_file),
            ("tls.cert_file", &self.tls.cert_file),
            ("tls.key_file", &self.tls.key_file),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                issues.push(ConfigIssue::new(
                    key,
                    format!("file {} does not exist", path.display()),
                ));
            }
        }
        if let Some(signing) = &self.signing
            && reqwest::header::HeaderName::from_bytes(signing.header.as_bytes()).is_err()
        {
            issues.push(ConfigIssue::new(
                "signing.header",
                format!("{:?} is not a valid header name", signing.header),
            ));
        }
        issues
    }

    /// Builds the HTTP client for an exporter.
    pub fn build_client(
        &self,
        exporter: &str,
        timeout: Duration,
    ) -> anyhow::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .user_agent(concat!("siemrelay/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &self.tls.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| anyhow::anyhow!("tls.ca_file {}: {e}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                anyhow::anyhow!("tls.ca_file {}: not PEM certificates: {e}", ca.display())
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&self.tls.cert_file, &self.tls.key_file) {
            let mut pem = std::fs::read(cert)
                .map_err(|e| anyhow::anyhow!("tls.cert_file {}: {e}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(key)
                    .map_err(|e| anyhow::anyhow!("tls.key_file {}: {e}", key.display()))?,
            );
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                anyhow::anyhow!("tls.cert_file/key_file: not a PEM certificate and key: {e}")
            })?;
            builder = builder.identity(identity);
        }
        if self.tls.insecure_skip_verify {
            tracing::warn!(
                exporter,
                "tls.insecure_skip_verify is on: the SIEM's certificate is NOT checked; anyone on the path can read and alter events"
            );
            builder = builder.danger_accept_invalid_certs(true);
        }
        builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))
    }
}

/// How an HTTP exporter judged one reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Classified {
    /// Outcomes for the request's events (in body order).
    Outcomes(Outcomes),
    /// The request was too large (413): split it in two and resend the halves.
    Split,
}

/// A reply as the classifier sees it.
pub struct Reply<'a> {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: &'a reqwest::header::HeaderMap,
    /// Response body.
    pub body: &'a [u8],
}

impl Reply<'_> {
    /// The `Retry-After` header in seconds, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after)
    }

    /// The body as text, cut to 512 bytes, for errors and history.
    pub fn text(&self) -> String {
        let cut = &self.body[..self.body.len().min(512)];
        String::from_utf8_lossy(cut).into_owned()
    }
}

/// The exporter-specific half of an HTTP exporter.
#[async_trait]
pub trait HttpEncoder: Send + Sync + 'static {
    /// Per-request limits.
    fn limits(&self) -> RequestLimits;
    /// Encodes events (indices refer to `events`) into bodies within the limits.
    fn encode(&self, events: &[Event]) -> Encoded;
    /// `Content-Type` of the bodies.
    fn content_type(&self) -> &'static str;
    /// The request for one body: URL, auth and exporter headers (the body is set by the caller).
    async fn request(
        &self,
        client: &reqwest::Client,
        events: usize,
    ) -> Result<reqwest::RequestBuilder, String>;
    /// Judges a reply for a request carrying `events` events.
    fn classify(&self, reply: &Reply<'_>, events: usize) -> Classified;
    /// A hint for `siemrelay test` when a request failed.
    fn hint(&self, record: &RequestRecord) -> Option<String> {
        default_hint(record)
    }
}

/// Retry or not, by HTTP status, for SIEMs without finer rules: 408, 429 and 5xx retry.
pub fn classify_by_status(reply: &Reply<'_>, what: &str) -> Outcome {
    match reply.status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry {
            reason: format!("{what} answered HTTP {}: {}", reply.status, reply.text()).into(),
            after: reply.retry_after(),
        },
        status => Outcome::permanent(format!("{what} answered HTTP {status}: {}", reply.text())),
    }
}

/// How long a body size learned from a 413 is trusted (then larger requests are tried again,
/// in case the SIEM's limit was raised).
const TOO_LARGE_MEMORY: Duration = Duration::from_secs(600);

/// An HTTP exporter: the shared sending logic around an [`HttpEncoder`].
///
/// # Splitting on 413
/// A request refused as too large is split in two halves, recursively, down to single events;
/// a single event refused as too large is dead-lettered with the reason "too large". The
/// smallest body refused with 413 is remembered (for [`TOO_LARGE_MEMORY`]): a body at least that
/// large is split (or, for a single event, dead-lettered) without being sent. So a SIEM that
/// refuses every size costs about two requests per halving level (log2 of the batch), not one
/// per event, and each request has its own `sending.timeout`.
pub struct HttpSink<E> {
    encoder: E,
    client: reqwest::Client,
    compression: Compression,
    signing: Option<SigningConfig>,
    /// The smallest uncompressed body the SIEM refused with 413, and when.
    too_large: std::sync::Mutex<Option<(usize, Instant)>>,
}

impl<E: HttpEncoder> HttpSink<E> {
    /// Wraps an encoder. `default_compression` applies when the config does not say.
    pub fn new(
        exporter: &str,
        encoder: E,
        options: &HttpOptions,
        timeout: Duration,
        default_compression: Compression,
    ) -> anyhow::Result<HttpSink<E>> {
        Ok(HttpSink {
            encoder,
            client: options.build_client(exporter, timeout)?,
            compression: options.compression.unwrap_or(default_compression),
            signing: options.signing.clone(),
            too_large: std::sync::Mutex::new(None),
        })
    }

    /// The smallest body size known to be refused with 413, if learned recently.
    fn known_too_large(&self) -> Option<usize> {
        let mut guard = self.too_large.lock().unwrap_or_else(|p| p.into_inner());
        match *guard {
            Some((size, at)) if at.elapsed() < TOO_LARGE_MEMORY => Some(size),
            Some(_) => {
                *guard = None;
                None
            }
            None => None,
        }
    }

    fn learn_too_large(&self, size: usize) {
        let mut guard = self.too_large.lock().unwrap_or_else(|p| p.into_inner());
        let smaller =
            guard.is_none_or(|(known, at)| size < known || at.elapsed() >= TOO_LARGE_MEMORY);
        if smaller {
            *guard = Some((size, Instant::now()));
        }
    }

    /// The encoder.
    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    /// The HTTP client (for exporters that make extra calls, e.g. acknowledgement polls).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends one body; returns the classification and the request record.
    async fn send_body(&self, body: Vec<u8>, events: usize) -> (Classified, RequestRecord) {
        let started = Instant::now();
        let mut record = RequestRecord {
            events,
            ..Default::default()
        };
        let wire = match self.compression {
            Compression::Gzip => match gzip(&body) {
                Ok(compressed) => compressed,
                Err(e) => {
                    return (
                        Classified::Outcomes(Outcomes::Uniform(Outcome::retry(format!(
                            "gzip failed: {e}"
                        )))),
                        record,
                    );
                }
            },
            Compression::None => body,
        };
        record.bytes = wire.len();
        let mut request = match self.encoder.request(&self.client, events).await {
            Ok(request) => request,
            Err(reason) => {
                record.reply = Some(reason.clone());
                return (
                    Classified::Outcomes(Outcomes::Uniform(Outcome::retry(reason))),
                    record,
                );
            }
        };
        request = request.header(reqwest::header::CONTENT_TYPE, self.encoder.content_type());
        if self.compression == Compression::Gzip {
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
        }
        if let Some(signing) = &self.signing {
            request = request
                .header(
                    signing.header.as_str(),
                    sign_body(signing.secret.expose(), &wire),
                )
                .header(signing.timestamp_header.as_str(), unix_now().to_string());
        }
        let response = request.body(wire).send().await;
        let (status, headers, body) = match response {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) => (status, headers, body),
                    Err(e) => {
                        record.latency = started.elapsed();
                        record.http_status = Some(status);
                        record.reply = Some(format!("reading the reply failed: {e}"));
                        let outcome = Outcome::retry(format!(
                            "reading the reply failed: {}",
                            error_chain(&e)
                        ));
                        return (Classified::Outcomes(Outcomes::Uniform(outcome)), record);
                    }
                }
            }
            Err(e) => {
                record.latency = started.elapsed();
                let reason = format!("request failed: {}", error_chain(&e));
                record.reply = Some(reason.clone());
                return (
                    Classified::Outcomes(Outcomes::Uniform(Outcome::retry(reason))),
                    record,
                );
            }
        };
        record.latency = started.elapsed();
        record.http_status = Some(status);
        let reply = Reply {
            status,
            headers: &headers,
            body: &body,
        };
        record.reply = Some(reply.text());
        (self.encoder.classify(&reply, events), record)
    }
}

#[async_trait]
impl<E: HttpEncoder> Sink for HttpSink<E> {
    fn limits(&self) -> RequestLimits {
        self.encoder.limits()
    }

    fn times_out_requests(&self) -> bool {
        // The client times out every request (`sending.timeout`).
        true
    }

    /// A `HEAD` request to the URL events go to, with the exporter's headers: any reply but
    /// 408, 429 or 5xx means the SIEM is reachable and serving again.
    async fn probe(&self) -> Option<Result<(), String>> {
        let request = match self.encoder.request(&self.client, 0).await {
            Ok(request) => request,
            Err(reason) => return Some(Err(reason)),
        };
        let request = match request.build() {
            Ok(request) => request,
            Err(e) => return Some(Err(format!("cannot build the probe request: {e}"))),
        };
        let mut head = reqwest::Request::new(reqwest::Method::HEAD, request.url().clone());
        *head.headers_mut() = request.headers().clone();
        *head.timeout_mut() = request.timeout().copied();
        Some(match self.client.execute(head).await {
            Ok(response) => match response.status().as_u16() {
                408 | 429 | 500..=599 => Err(format!(
                    "the SIEM answered HTTP {} to a probe",
                    response.status().as_u16()
                )),
                _ => Ok(()),
            },
            Err(e) => Err(format!("probe failed: {}", error_chain(&e))),
        })
    }

    async fn send(&self, events: &[Event]) -> SendReport {
        let encoded = self.encoder.encode(events);
        let mut outcomes: Vec<Outcome> = Vec::new();
        let set = |outcomes: &mut Vec<Outcome>, index: usize, outcome: Outcome| {
            if outcomes.is_empty() {
                outcomes.resize(events.len(), Outcome::Delivered);
            }
            outcomes[index] = outcome;
        };
        for (index, reason) in encoded.rejected {
            set(&mut outcomes, index, Outcome::permanent(reason));
        }
        let mut records = Vec::with_capacity(encoded.requests.len());
        let mut work: Vec<(Vec<usize>, Vec<u8>)> = encoded
            .requests
            .into_iter()
            .rev()
            .map(|r| (r.indices, r.body))
            .collect();
        while let Some((indices, body)) = work.pop() {
            let size = body.len();
            let known = self.known_too_large().is_some_and(|limit| size >= limit);
            let (classified, mut record) = if known {
                // Known to be refused: split (or give up on a single event) without sending.
                (Classified::Split, RequestRecord::default())
            } else {
                self.send_body(body, indices.len()).await
            };
            if matches!(classified, Classified::Split) && !known {
                self.learn_too_large(size);
            }
            match classified {
                Classified::Split if indices.len() > 1 => {
                    if !known {
                        record.outcome = "retry";
                        records.push(record);
                    }
                    let subset: Vec<Event> = indices.iter().map(|i| events[*i].clone()).collect();
                    let half = subset.len() / 2;
                    for part in [&indices[half..], &indices[..half]] {
                        let local: Vec<Event> = part.iter().map(|i| events[*i].clone()).collect();
                        let re = self.encoder.encode(&local);
                        for (local_index, reason) in re.rejected {
                            set(&mut outcomes, part[local_index], Outcome::permanent(reason));
                        }
                        for request in re.requests.into_iter().rev() {
                            work.push((
                                request.indices.iter().map(|i| part[*i]).collect(),
                                request.body,
                            ));
                        }
                    }
                    drop(subset);
                }
                Classified::Split => {
                    let reason = if known {
                        format!(
                            "too large: the SIEM refused a request of {} bytes with HTTP 413, and this single event makes {size} bytes",
                            self.known_too_large().unwrap_or(size)
                        )
                    } else {
                        record.outcome = "permanent";
                        records.push(record);
                        format!(
                            "too large: the SIEM refused this single event ({size} bytes) with HTTP 413"
                        )
                    };
                    set(&mut outcomes, indices[0], Outcome::permanent(reason));
                }
                Classified::Outcomes(Outcomes::Uniform(Outcome::Delivered)) => {
                    record.outcome = "delivered";
                    records.push(record);
                }
                Classified::Outcomes(request_outcomes) => {
                    let mut any_ok = false;
                    let mut any_retry = false;
                    for (position, index) in indices.iter().enumerate() {
                        let outcome = request_outcomes.get(position).clone();
                        match outcome {
                            Outcome::Delivered => any_ok = true,
                            Outcome::Retry { .. } => any_retry = true,
                            Outcome::Permanent { .. } => {}
                        }
                        set(&mut outcomes, *index, outcome);
                    }
                    record.outcome = if any_ok {
                        "partial"
                    } else if any_retry {
                        "retry"
                    } else {
                        "permanent"
                    };
                    records.push(record);
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
        self.encoder.hint(record)
    }
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn sign_body(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A transport error with its causes (`connection refused`, `dns error`, …).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A shared reference to an exporter's sink, as the runtime holds it.
pub type SharedSink = Arc<dyn Sink>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let sig = sign_body("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
