//! What every HTTP exporter shares: the client (TLS, timeouts, no redirects), compression,
//! payload signing, splitting on 413, and mapping replies back onto events. An HTTP exporter
//! implements [`HttpEncoder`] (encode + classify) and is wrapped in [`HttpSink`].

use super::auth::{AuthError, Authenticator, Generation, NoAuth};
use super::pack::{CONCATENATED, EncodeError, Encoded, EncodedRequest, Framing, pack};
use super::retry::parse_retry_after;
use super::signing::SigningScheme;
use super::{
    Outcome, OutcomeSheet, Outcomes, ProbeError, RequestLimits, RequestOutcome, RequestRecord,
    SendReport, Sink, default_hint,
};
use async_trait::async_trait;
use serde::Deserialize;
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

/// `signing:` — HMAC-SHA256 of the exact body bytes sent (and, by `scheme`, a timestamp and
/// message id), for the receiving side to verify. See [`super::signing`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// The shared secret (`standard_webhooks`: `whsec_<base64>`).
    pub secret: Secret,
    /// What the HMAC covers and which headers carry it: `body` (default), `timestamped`,
    /// `standard_webhooks`.
    #[serde(default)]
    pub scheme: SigningScheme,
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
    /// The shared `schema` key (read with the delivery keys, copied here by the registry so an
    /// HTTP exporter's build has it with its other shared settings).
    #[serde(skip)]
    pub schema: super::schema::Schema,
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
        if let Some(signing) = &self.signing {
            if reqwest::header::HeaderName::from_bytes(signing.header.as_bytes()).is_err() {
                issues.push(ConfigIssue::new(
                    "signing.header",
                    format!("{:?} is not a valid header name", signing.header),
                ));
            }
            issues.extend(super::signing::validate(
                signing.scheme,
                signing.secret.expose(),
                &signing.header,
                &signing.timestamp_header,
                (&default_signature_header(), &default_timestamp_header()),
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
    /// Outcomes for the request's events (in body order): delivered, `Retry { after }` or
    /// `Permanent { reason }`.
    Outcomes(Outcomes),
    /// The request was too large (413): split it in two and resend the halves.
    Split,
    /// The SIEM refused the credentials (401, an expired token): the sink drops them, fetches
    /// fresh ones and resends once. If the fresh ones are refused too, the events get this
    /// outcome.
    Reauthenticate(Outcome),
    /// Where the events go does not exist yet (a CloudWatch log group or stream): the sink runs
    /// the encoder's [`HttpEncoder::setup`] for the request and resends once. If it is still
    /// missing, the events get this outcome.
    Setup(Outcome),
}

impl Classified {
    /// One outcome for every event of the request.
    pub fn uniform(outcome: Outcome) -> Classified {
        Classified::Outcomes(Outcomes::Uniform(outcome))
    }
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

/// A whole reply, owned.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Response body.
    pub body: bytes::Bytes,
}

impl Response {
    /// The reply as a classifier sees it.
    pub fn reply(&self) -> Reply<'_> {
        Reply {
            status: self.status,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// Which of the shared HTTP keys (`compression`, `signing`) an exporter honours. An exporter
/// declares it as [`HttpEncoder::HONOURS`]; a key it cannot honour is refused, never ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedHttpKeys {
    /// `compression: gzip` can be sent (the SIEM takes `Content-Encoding: gzip`).
    pub compression: bool,
    /// `signing` can be added (the SIEM or a receiver in front of it may check it).
    pub signing: bool,
}

impl SharedHttpKeys {
    /// Every shared key.
    pub const ALL: SharedHttpKeys = SharedHttpKeys {
        compression: true,
        signing: true,
    };

    /// The keys of `options` set to something this exporter cannot honour (keys relative to
    /// the exporter block), with why.
    pub fn refused(self, options: &HttpOptions, why: &str) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if !self.compression && options.compression == Some(Compression::Gzip) {
            issues.push(ConfigIssue::new(
                "compression",
                format!("this exporter cannot send compressed bodies: {why}"),
            ));
        }
        if !self.signing && options.signing.is_some() {
            issues.push(ConfigIssue::new(
                "signing",
                format!("this exporter cannot add a payload signature: {why}"),
            ));
        }
        issues
    }
}

/// The exporter-specific half of an HTTP exporter: encode events, name the URL and the
/// exporter's own headers, judge replies, and any one-time work. Authentication is the
/// [`Authenticator`]'s; compression, signing, splitting and retries are [`HttpSink`]'s.
#[async_trait]
pub trait HttpEncoder: Send + Sync + 'static {
    /// The shared keys this exporter honours.
    const HONOURS: SharedHttpKeys = SharedHttpKeys::ALL;
    /// Why a shared key is not honoured, for the error that refuses it.
    const REFUSAL: &'static str = "";
    /// False when a `HEAD` to the request URL says nothing about the SIEM's health (the
    /// exporter then has no probe: a failed exporter recovers on its next delivery).
    const PROBE: bool = true;
    /// Per-request limits.
    fn limits(&self) -> RequestLimits;
    /// How a body joins events (for the default [`HttpEncoder::encode`]).
    fn framing(&self) -> Framing {
        CONCATENATED
    }
    /// Appends the wire form of one event (for the default [`HttpEncoder::encode`]); an `Err`
    /// says why the event cannot be sent (it is dead-lettered with that reason).
    fn write_event(&self, _event: &Event, _out: &mut Vec<u8>) -> Result<(), EncodeError> {
        Err("this exporter encodes whole batches".into())
    }
    /// Encodes events (indices refer to `events`) into bodies within the limits: by default
    /// each event with [`HttpEncoder::write_event`], packed with [`HttpEncoder::framing`].
    fn encode(&self, events: &[Event]) -> Encoded {
        pack(
            events.iter().enumerate(),
            self.limits(),
            self.framing(),
            |event, out| self.write_event(event, out),
        )
    }
    /// `Content-Type` of the bodies.
    fn content_type(&self) -> &'static str;
    /// The request for a body: method, URL and the exporter's own headers. Credentials,
    /// `Content-Type`, compression, signing and the body are added by the sink.
    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder;
    /// Judges the reply to `request`.
    fn classify(&self, reply: &Reply<'_>, request: &EncodedRequest) -> Classified;
    /// The reply as kept in the delivery history and shown by `siemrelay test`.
    fn describe(&self, reply: &Reply<'_>) -> String {
        reply.text()
    }
    /// The SIEM's error code in a reply, if it names one (for hints).
    fn error_code(&self, _reply: &Reply<'_>) -> Option<String> {
        None
    }
    /// One-time work before the first request (an index template). Runs again on the next
    /// send until it succeeds; an `Err` is the outcome of that send's events.
    async fn start(&self, _calls: &HttpCalls<'_>) -> Result<(), Outcome> {
        Ok(())
    }
    /// Creates what a request's destination needs (a log group and stream) after the reply
    /// to it was classified [`Classified::Setup`]; an `Err` is the outcome of its events.
    async fn setup(
        &self,
        _calls: &HttpCalls<'_>,
        _request: &EncodedRequest,
    ) -> Result<(), Outcome> {
        Ok(())
    }
    /// A hint for `siemrelay test` when a request failed.
    fn hint(&self, record: &RequestRecord) -> Option<String> {
        default_hint(record)
    }
    /// What the one-time work left for an operator to know ([`Sink::notice`]).
    fn notice(&self) -> Option<String> {
        None
    }
}

/// Why a call made through [`HttpCalls`] got no reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No credentials could be had.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The request could not be built or sent, or its reply not read.
    #[error("{message}")]
    Transport {
        /// The status, when the reply's body could not be read.
        status: Option<u16>,
        /// What failed, with its causes.
        message: String,
    },
}

impl CallError {
    /// The outcome of events whose request failed this way: refused credentials are
    /// permanent, anything else is retried.
    pub fn outcome(&self) -> Outcome {
        match self {
            CallError::Auth(error) if error.refused => Outcome::permanent(error.message.clone()),
            other => Outcome::retry(other.to_string()),
        }
    }
}

/// Sends requests the way the exporter's event requests go: with its client, credentials and
/// payload signature. Given to [`HttpEncoder::start`] and [`HttpEncoder::setup`].
pub struct HttpCalls<'a> {
    client: &'a reqwest::Client,
    auth: &'a dyn Authenticator,
    signing: Option<&'a SigningConfig>,
}

impl HttpCalls<'_> {
    /// The exporter's HTTP client.
    pub fn client(&self) -> &reqwest::Client {
        self.client
    }

    /// Sends `request` with `body` (signed and authorized) and reads the whole reply; also says
    /// which credentials were used.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        body: bytes::Bytes,
    ) -> Result<(Response, Generation), CallError> {
        let transport = |message: String| CallError::Transport {
            status: None,
            message,
        };
        let signature = match self.signing {
            Some(signing) => super::signing::signature_headers(
                signing.scheme,
                signing.secret.expose(),
                &signing.header,
                &signing.timestamp_header,
                &body,
                unix_now(),
            )
            .map_err(transport)?,
            None => Vec::new(),
        };
        let mut request = request
            .body(body)
            .build()
            .map_err(|e| transport(format!("cannot build the request: {e}")))?;
        let headers = request.headers_mut();
        for (name, value) in signature {
            headers.insert(name, value);
        }
        let generation = self.auth.authorize(&mut request).await?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| transport(format!("request failed: {}", error_chain(&e))))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| CallError::Transport {
            status: Some(status),
            message: format!("reading the reply failed: {}", error_chain(&e)),
        })?;
        Ok((
            Response {
                status,
                headers,
                body,
            },
            generation,
        ))
    }

    /// The SIEM refused the credentials of `generation`: fetch fresh ones next time.
    pub async fn invalidate(&self, generation: Generation) {
        self.auth.invalidate(generation).await;
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

/// An HTTP exporter: the shared sending logic around an [`HttpEncoder`] and an
/// [`Authenticator`].
///
/// # Splitting on 413
/// A request refused as too large is split in two halves, recursively, down to single events;
/// a single event refused as too large is dead-lettered with the reason "too large". The
/// smallest body refused with 413 is remembered (for [`TOO_LARGE_MEMORY`]): a body at least that
/// large is split (or, for a single event, dead-lettered) without being sent. So a SIEM that
/// refuses every size costs about two requests per halving level (log2 of the batch), not one
/// per event, and each request has its own `sending.timeout`.
///
/// # Credentials and setup
/// Before a send, the authenticator makes sure credentials are at hand (a send whose
/// credentials cannot be had fails as a whole) and the encoder's [`HttpEncoder::start`] work
/// is done. A reply classified [`Classified::Reauthenticate`] or [`Classified::Setup`] is
/// followed by one resend with fresh credentials, or after the encoder's setup.
pub struct HttpSink<E> {
    exporter: String,
    encoder: E,
    client: reqwest::Client,
    auth: Arc<dyn Authenticator>,
    compression: Compression,
    signing: Option<SigningConfig>,
    started: tokio::sync::OnceCell<()>,
    /// The smallest uncompressed body the SIEM refused with 413, and when.
    too_large: std::sync::Mutex<Option<(usize, Instant)>>,
}

impl<E: HttpEncoder> HttpSink<E> {
    /// Wraps an encoder, without credentials (see [`HttpSink::with_auth`]).
    /// `default_compression` applies when the config does not say. Fails when `options` set a
    /// shared key the encoder cannot honour ([`HttpEncoder::HONOURS`]).
    pub fn new(
        exporter: &str,
        encoder: E,
        options: &HttpOptions,
        timeout: Duration,
        default_compression: Compression,
    ) -> anyhow::Result<HttpSink<E>> {
        if let Some(issue) = E::HONOURS.refused(options, E::REFUSAL).first() {
            anyhow::bail!("exporter {exporter}: {issue}");
        }
        Ok(HttpSink {
            exporter: exporter.to_string(),
            encoder,
            client: options.build_client(exporter, timeout)?,
            auth: Arc::new(NoAuth),
            compression: options.compression.unwrap_or(default_compression),
            signing: options.signing.clone(),
            started: tokio::sync::OnceCell::new(),
            too_large: std::sync::Mutex::new(None),
        })
    }

    /// Authorizes every request with `auth`.
    pub fn with_auth(mut self, auth: impl Authenticator) -> HttpSink<E> {
        self.auth = Arc::new(auth);
        self
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

    /// The HTTP client (for exporters that make extra calls, e.g. acknowledgement polls, and
    /// for authenticators that fetch tokens).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends requests like the event requests (credentials, signature).
    pub fn calls(&self) -> HttpCalls<'_> {
        HttpCalls {
            client: &self.client,
            auth: &*self.auth,
            signing: self.signing.as_ref(),
        }
    }

    /// Credentials at hand and the start work done, or the outcome of every event of the send.
    async fn prepare(&self) -> Result<(), (Outcome, String)> {
        if let Err(error) = self.auth.ready().await {
            if error.refused {
                tracing::error!(exporter = %self.exporter, error = %error.message, "the identity provider refused the client credentials");
            }
            let outcome = CallError::Auth(error.clone()).outcome();
            return Err((outcome, error.message));
        }
        let calls = self.calls();
        self.started
            .get_or_try_init(|| self.encoder.start(&calls))
            .await
            .map(|_| ())
            .map_err(|outcome| {
                let reason = outcome.reason().unwrap_or_default().to_string();
                (outcome, reason)
            })
    }

    /// Sends one body until it has a classification: once more with fresh credentials after
    /// [`Classified::Reauthenticate`], once more after the encoder's setup after
    /// [`Classified::Setup`]. The record is the last attempt's. The body is moved out of
    /// `request` (not copied): only its indices and target are read after sending.
    async fn send_body(&self, request: &mut EncodedRequest) -> (Classified, RequestRecord) {
        let events = request.indices.len();
        let started = Instant::now();
        let mut record = RequestRecord {
            events,
            ..Default::default()
        };
        let wire = match self.compression {
            Compression::Gzip => match gzip(&request.body) {
                Ok(compressed) => compressed,
                Err(e) => {
                    return (
                        Classified::uniform(Outcome::retry(format!("gzip failed: {e}"))),
                        record,
                    );
                }
            },
            Compression::None => std::mem::take(&mut request.body),
        };
        let wire = bytes::Bytes::from(wire);
        record.bytes = wire.len();
        let (mut reauthenticated, mut set_up) = (false, false);
        loop {
            let mut builder = self
                .encoder
                .request(&self.client)
                .header(reqwest::header::CONTENT_TYPE, self.encoder.content_type());
            if self.compression == Compression::Gzip {
                builder = builder.header(reqwest::header::CONTENT_ENCODING, "gzip");
            }
            let sent = self.calls().send(builder, wire.clone()).await;
            record.latency = started.elapsed();
            let (response, generation) = match sent {
                Ok(sent) => sent,
                Err(error) => {
                    if let CallError::Transport { status, .. } = &error {
                        record.http_status = *status;
                    }
                    record.reply = Some(error.to_string());
                    return (Classified::uniform(error.outcome()), record);
                }
            };
            let reply = response.reply();
            record.http_status = Some(reply.status);
            record.reply = Some(self.encoder.describe(&reply));
            record.error_code = self.encoder.error_code(&reply);
            match self.encoder.classify(&reply, request) {
                Classified::Reauthenticate(_) if !reauthenticated => {
                    reauthenticated = true;
                    self.auth.invalidate(generation).await;
                }
                Classified::Reauthenticate(outcome) => {
                    tracing::error!(exporter = %self.exporter, reply = %record.reply.as_deref().unwrap_or(""), "the SIEM refused freshly fetched credentials");
                    return (Classified::uniform(outcome), record);
                }
                Classified::Setup(_) if !set_up => {
                    set_up = true;
                    if let Err(outcome) = self.encoder.setup(&self.calls(), request).await {
                        return (Classified::uniform(outcome), record);
                    }
                }
                Classified::Setup(outcome) => return (Classified::uniform(outcome), record),
                classified => return (classified, record),
            }
        }
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

    /// A `HEAD` request to the URL events go to, with the exporter's headers and credentials:
    /// any reply but 408, 429 or 5xx means the SIEM is reachable and serving again.
    async fn probe(&self) -> Option<Result<(), ProbeError>> {
        if !E::PROBE {
            return None;
        }
        let request = match self.encoder.request(&self.client).build() {
            Ok(request) => request,
            Err(e) => {
                return Some(Err(ProbeError::Failed(format!(
                    "cannot build the probe request: {e}"
                ))));
            }
        };
        let mut head = reqwest::Request::new(reqwest::Method::HEAD, request.url().clone());
        *head.headers_mut() = request.headers().clone();
        *head.timeout_mut() = request.timeout().copied();
        if let Err(error) = self.auth.authorize(&mut head).await {
            return Some(Err(ProbeError::Failed(error.message)));
        }
        Some(match self.client.execute(head).await {
            Ok(response) => match response.status().as_u16() {
                status @ (408 | 429 | 500..=599) => Err(ProbeError::Status(status)),
                _ => Ok(()),
            },
            Err(e) => Err(ProbeError::Failed(error_chain(&e))),
        })
    }

    async fn send(&self, events: &[Event]) -> SendReport {
        if let Err((outcome, reason)) = self.prepare().await {
            let record = RequestRecord {
                events: events.len(),
                reply: Some(reason),
                outcome: Some(RequestOutcome::of([&outcome])),
                ..Default::default()
            };
            return SendReport::uniform(outcome, vec![record]);
        }
        let encoded = self.encoder.encode(events);
        let mut sheet = OutcomeSheet::new(events.len());
        for (index, reason) in encoded.rejected {
            sheet.set(index, Outcome::permanent(reason));
        }
        let mut records = Vec::with_capacity(encoded.requests.len());
        let mut work: Vec<EncodedRequest> = encoded.requests.into_iter().rev().collect();
        while let Some(mut request) = work.pop() {
            let size = request.body.len();
            let known = self.known_too_large().is_some_and(|limit| size >= limit);
            let (classified, mut record) = if known {
                // Known to be refused: split (or give up on a single event) without sending.
                (Classified::Split, RequestRecord::default())
            } else {
                self.send_body(&mut request).await
            };
            if matches!(classified, Classified::Split) && !known {
                self.learn_too_large(size);
            }
            let indices = request.indices;
            match classified {
                Classified::Split if indices.len() > 1 => {
                    if !known {
                        record.outcome = Some(RequestOutcome::Retry);
                        records.push(record);
                    }
                    let half = indices.len() / 2;
                    for part in [&indices[half..], &indices[..half]] {
                        let local: Vec<Event> = part.iter().map(|i| events[*i].clone()).collect();
                        let re = self.encoder.encode(&local);
                        for (local_index, reason) in re.rejected {
                            sheet.set(part[local_index], Outcome::permanent(reason));
                        }
                        for mut request in re.requests.into_iter().rev() {
                            request.indices = request.indices.iter().map(|i| part[*i]).collect();
                            work.push(request);
                        }
                    }
                }
                Classified::Split => {
                    let reason = if known {
                        format!(
                            "too large: the SIEM refused a request of {} bytes with HTTP 413, and this single event makes {size} bytes",
                            self.known_too_large().unwrap_or(size)
                        )
                    } else {
                        record.outcome = Some(RequestOutcome::Permanent);
                        records.push(record);
                        format!(
                            "too large: the SIEM refused this single event ({size} bytes) with HTTP 413"
                        )
                    };
                    sheet.set(indices[0], Outcome::permanent(reason));
                }
                Classified::Outcomes(outcomes) => {
                    let missing = outcomes.check(indices.len()).err().map(|problem| {
                        tracing::error!(exporter = %self.exporter, error = %problem, "an exporter judged a reply with too few or too many outcomes");
                        Outcome::retry(problem.to_string())
                    });
                    for (position, index) in indices.iter().enumerate() {
                        let outcome = outcomes.get(position).or(missing.as_ref());
                        sheet.set(*index, outcome.cloned().unwrap_or(Outcome::Delivered));
                    }
                    record.outcome =
                        Some(RequestOutcome::of(indices.iter().map(|i| sheet.get(*i))));
                    records.push(record);
                }
                // `send_body` resolves these into outcomes.
                Classified::Reauthenticate(outcome) | Classified::Setup(outcome) => {
                    sheet.set_all(&indices, &outcome);
                    record.outcome = Some(RequestOutcome::of([&outcome]));
                    records.push(record);
                }
            }
        }
        SendReport {
            outcomes: sheet.finish(),
            requests: records,
        }
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        self.encoder.hint(record)
    }

    fn notice(&self) -> Option<String> {
        self.encoder.notice()
    }
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
