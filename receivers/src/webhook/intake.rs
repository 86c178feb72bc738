//! Request processing without I/O: headers and the raw body in, a batch of events or a
//! rejection out. The checks run in a fixed order: bearer auth, content type and encoding,
//! size, signature (over the body exactly as received), gzip decoding, parsing (under the
//! events limit and the admission budget), ingest. A request is accepted whole or rejected
//! whole.

use super::config::WebhookConfig;
use super::verify::{Verified, Verifier, VerifyFailure};
use crate::body::{self, BodyError, SizeLimit};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::json;
use sha2::{Digest, Sha256};
use siemrelay_core::admission::{MemoryBudget, OverBudget, Reservation};
use siemrelay_core::ingest::{
    BodyErrorKind, BodyFormat, IngestError, IngestOptions, Limits, event_from_received,
    insert_stamp, parse_body_raw,
};
use siemrelay_core::{Batch, ConfigIssue, Event, Timestamp};
use std::borrow::Cow;
use subtle::ConstantTimeEq;

/// Attribute added to events of a verified request: `{"scheme": …, "secret_index": …}`.
pub const VERIFIED_BY_KEY: &str = "verified_by";

const ACCEPTED_TYPES: &str = "application/json (one object or an array of objects) or \
     application/x-ndjson (also application/jsonl, application/x-jsonlines)";

/// Why a request was refused before reaching the pipeline. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// Bearer authentication failed.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Content type or content encoding is not one the receiver reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body (as received, or after gzip decoding) exceeds `max_body_size`.
    #[error("{} is larger than max_body_size ({limit} bytes)", if *.decoded { "gzip-decoded body" } else { "body" })]
    TooLarge {
        /// The configured limit in bytes.
        limit: usize,
        /// True when the decoded body was too large.
        decoded: bool,
    },
    /// The request holds more events than `max_events_per_request`.
    #[error("the request holds more than max_events_per_request ({limit}) events")]
    TooManyEvents {
        /// The configured limit.
        limit: usize,
    },
    /// The admission budget (`service.memory_limit`) has no room for the request.
    #[error("{0}")]
    Memory(OverBudget),
    /// The body arrived slower than the listener's `min_body_rate`.
    #[error("the body arrived slower than min_body_rate ({0} bytes/s)")]
    TooSlow(u64),
    /// The body's signature did not verify.
    #[error("signature verification failed: {0}")]
    Signature(VerifyFailure),
    /// The body is not gzip or not JSON of an accepted shape.
    #[error("{0}")]
    Malformed(String),
    /// In strict mode, an event's field did not fit.
    #[error("event {index} (0-based) rejected: {error}")]
    Invalid {
        /// Position of the event in the request.
        index: usize,
        /// The field and what is wrong with it.
        error: IngestError,
    },
}

impl Rejection {
    /// The HTTP status answering this rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthorized(_) | Rejection::Signature(_) => StatusCode::UNAUTHORIZED,
            Rejection::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::TooLarge { .. } | Rejection::TooManyEvents { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Rejection::Memory(over) if over.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Memory(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            Rejection::Malformed(_) | Rejection::Invalid { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// The `reason` label of `siemrelay_receiver_events_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Unauthorized(_) => "auth",
            Rejection::UnsupportedMediaType(_) => "content_type",
            Rejection::TooLarge { .. } => "too_large",
            Rejection::TooManyEvents { .. } => "too_many_events",
            Rejection::Memory(_) => "memory_limit",
            Rejection::TooSlow(_) => "too_slow",
            Rejection::Signature(_) => "signature",
            Rejection::Malformed(_) | Rejection::Invalid { .. } => "malformed",
        }
    }
}

impl From<BodyError> for Rejection {
    fn from(error: BodyError) -> Rejection {
        match error {
            BodyError::TooLarge { limit, decoded, .. } => Rejection::TooLarge { limit, decoded },
            BodyError::TooSlow { rate } => Rejection::TooSlow(rate),
            BodyError::Memory(over) => Rejection::Memory(over),
            BodyError::NotGzip(e) => Rejection::Malformed(format!("body is not valid gzip: {e}")),
            BodyError::Broken(message) => Rejection::Malformed(message),
        }
    }
}

/// How the body of an admitted request is framed and encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    /// One object / array, or NDJSON.
    pub format: BodyFormat,
    /// `Content-Encoding: gzip`.
    pub gzip: bool,
    /// The declared `Content-Length`, if any (already checked against the limit).
    pub declared_length: Option<usize>,
}

/// A request turned into events, ready for the pipeline.
#[derive(Debug)]
pub struct Admitted {
    /// The request's events, in order.
    pub batch: Batch,
    /// Fields that could not be mapped, over all events (0 in strict mode).
    pub mapping_errors: usize,
    /// The signature check that passed, if one is configured.
    pub verified: Option<Verified>,
    /// Memory the batch holds (what its reservation may shrink to once the body is freed).
    pub held_bytes: usize,
}

/// Everything request processing needs, prepared once from the config.
#[derive(Debug)]
pub struct Intake {
    bearer_digest: Option<[u8; 32]>,
    max_body: usize,
    max_events: usize,
    verifier: Option<Verifier>,
    options: IngestOptions,
}

impl Intake {
    /// Prepares request processing for the receiver `id` from its config, or returns the
    /// config's issues.
    pub fn new(id: &str, config: &WebhookConfig) -> Result<Intake, Vec<ConfigIssue>> {
        let issues = config.validate();
        if !issues.is_empty() {
            return Err(issues);
        }
        let verifier = config.checked_verifier()?;
        Ok(Intake {
            bearer_digest: config
                .auth
                .as_ref()
                .map(|auth| Sha256::digest(auth.bearer_token.expose().as_bytes()).into()),
            max_body: config.max_body_size.as_usize(),
            max_events: config.max_events_per_request,
            verifier,
            options: config.ingest_options(id),
        })
    }

    /// The size limit of bodies, as received and decoded.
    pub fn size_limit(&self) -> SizeLimit {
        SizeLimit {
            key: "max_body_size",
            bytes: self.max_body,
        }
    }

    /// Checks made before the body is read: bearer token, content type and encoding, and a
    /// declared `Content-Length` over the limit.
    pub fn admit(&self, headers: &HeaderMap) -> Result<Framing, Rejection> {
        self.check_bearer(headers)?;
        let format = body_format(headers)?;
        let gzip = is_gzip(headers)?;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body as u64) {
            return Err(self.too_large(false));
        }
        Ok(Framing {
            format,
            gzip,
            declared_length: declared.and_then(|length| usize::try_from(length).ok()),
        })
    }

    /// Checks made on the raw body, then decoding, parsing and ingest, holding what it
    /// allocates in `reservation` (which already holds the raw body). `observed` is the
    /// request's arrival time (every event's `observed_timestamp`, and "now" for replay checks).
    pub fn process(
        &self,
        framing: Framing,
        headers: &HeaderMap,
        raw: &[u8],
        observed: Timestamp,
        reservation: &Reservation,
    ) -> Result<Admitted, Rejection> {
        let verified = self.verify(headers, raw, observed)?;
        self.parse(framing, raw, verified, observed, reservation)
    }

    /// Checks the raw body's size and signature (once per request: a verified signature is
    /// remembered for replay checks).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        raw: &[u8],
        observed: Timestamp,
    ) -> Result<Option<Verified>, Rejection> {
        if raw.len() > self.max_body {
            return Err(self.too_large(false));
        }
        match &self.verifier {
            Some(verifier) => verifier
                .verify(headers, raw, observed.0.div_euclid(1_000_000_000))
                .map(Some)
                .map_err(Rejection::Signature),
            None => Ok(None),
        }
    }

    /// Decodes and parses a checked body into events, holding what it allocates in
    /// `reservation`; may be run again after a [`Rejection::Memory`].
    pub fn parse(
        &self,
        framing: Framing,
        raw: &[u8],
        verified: Option<Verified>,
        observed: Timestamp,
        reservation: &Reservation,
    ) -> Result<Admitted, Rejection> {
        let decoded = if framing.gzip {
            Cow::Owned(body::gunzip(
                raw,
                self.size_limit(),
                reservation,
                raw.len(),
            )?)
        } else {
            Cow::Borrowed(raw)
        };
        let limits = Limits::new(self.max_events)
            .strict(self.options.strict)
            .charging(reservation);
        let objects = parse_body_raw(&decoded, framing.format, &limits, &self.options.mapping)
            .map_err(|e| match e.kind {
                BodyErrorKind::TooManyEvents { limit } => Rejection::TooManyEvents { limit },
                BodyErrorKind::Memory(over) => Rejection::Memory(over),
                _ => Rejection::Malformed(e.message),
            })?;
        limits
            .charge(objects.len() * size_of::<Event>())
            .map_err(|stop| match stop {
                siemrelay_core::ingest::Stop::Memory(over) => Rejection::Memory(over),
                other => Rejection::Malformed(other.to_string()),
            })?;

        let verified_by =
            verified.map(|v| json!({"scheme": v.scheme.name(), "secret_index": v.secret_index}));
        let mut batch = Vec::with_capacity(objects.len());
        let mut mapping_errors = 0;
        for (index, object) in objects.into_iter().enumerate() {
            let mut ingested = event_from_received(object, &self.options, observed)
                .map_err(|error| Rejection::Invalid { index, error })?;
            mapping_errors += ingested.mapping_errors;
            if let Some(stamp) = &verified_by {
                // Raw attributes without the key stay raw.
                let attributes = &mut ingested.event.attributes;
                if !attributes.insert_raw_if_absent(VERIFIED_BY_KEY, stamp) {
                    insert_stamp(attributes, VERIFIED_BY_KEY, stamp.clone());
                }
            }
            batch.push(ingested.event);
        }
        Ok(Admitted {
            batch,
            mapping_errors,
            verified,
            held_bytes: limits.charged(),
        })
    }

    /// [`Intake::admit`] then [`Intake::process`] with no memory limit: the whole request in
    /// one call (tests and tools).
    pub fn handle(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        observed: Timestamp,
    ) -> Result<Admitted, Rejection> {
        let framing = self.admit(headers)?;
        let reservation = MemoryBudget::unlimited().empty_reservation();
        self.process(framing, headers, body, observed, &reservation)
    }

    fn check_bearer(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        let Some(expected) = &self.bearer_digest else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(Rejection::Unauthorized(
                "Authorization: Bearer <token> header is missing",
            ))?;
        // Comparing digests keeps the comparison constant-time and hides the token's length.
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if bool::from(digest.ct_eq(expected)) {
            Ok(())
        } else {
            Err(Rejection::Unauthorized("bearer token is not valid"))
        }
    }

    fn too_large(&self, decoded: bool) -> Rejection {
        Rejection::TooLarge {
            limit: self.max_body,
            decoded,
        }
    }
}

/// The body framing named by `Content-Type` (parameters such as `charset` are ignored).
fn body_format(headers: &HeaderMap) -> Result<BodyFormat, Rejection> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(Rejection::UnsupportedMediaType(format!(
            "Content-Type is missing; send {ACCEPTED_TYPES}"
        )));
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(BodyFormat::Json);
    }
    let ndjson = [
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
    ];
    if ndjson.iter().any(|t| essence.eq_ignore_ascii_case(t)) {
        return Ok(BodyFormat::Ndjson);
    }
    Err(Rejection::UnsupportedMediaType(format!(
        "unsupported Content-Type {:?}; send {ACCEPTED_TYPES}",
        String::from_utf8_lossy(value.as_bytes())
    )))
}

/// True for `Content-Encoding: gzip`; `identity` or none is plain.
fn is_gzip(headers: &HeaderMap) -> Result<bool, Rejection> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(false);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
        Ok(true)
    } else if text.is_empty() || text.eq_ignore_ascii_case("identity") {
        Ok(false)
    } else {
        Err(Rejection::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {:?}; send gzip or identity",
            String::from_utf8_lossy(value.as_bytes())
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;
    use std::io::Write;

    fn intake(config: serde_json::Value) -> Intake {
        Intake::new("webhook", &serde_json::from_value(config).unwrap()).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    axum::http::HeaderName::from_static(k),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    const NOW: Timestamp = Timestamp(1_763_629_200_000_000_000);

    #[test]
    fn checks_run_in_order() {
        let i = intake(serde_json::json!({
            "auth": {"bearer_token": "tok"}, "max_body_size": 16,
            "verify": {"scheme": "github", "secrets": ["s"]}}));
        let big = [b'x'; 32];
        // No token beats a wrong content type and an oversize body.
        let e = i.handle(&headers(&[("content-type", "text/plain")]), &big, NOW);
        assert_eq!(e.unwrap_err().reason(), "auth");
        let auth = ("authorization", "Bearer tok");
        let e = i.handle(&headers(&[auth, ("content-type", "text/plain")]), &big, NOW);
        assert_eq!(e.unwrap_err().reason(), "content_type");
        let e = i.handle(
            &headers(&[auth, ("content-type", "application/json")]),
            &big,
            NOW,
        );
        assert_eq!(e.unwrap_err().reason(), "too_large");
        let e = i.handle(
            &headers(&[auth, ("content-type", "application/json")]),
            b"{",
            NOW,
        );
        assert_eq!(e.unwrap_err().reason(), "signature");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_token_exact() {
        let i = intake(serde_json::json!({"auth": {"bearer_token": "tok"}}));
        let ct = ("content-type", "application/json; charset=utf-8");
        assert!(
            i.handle(&headers(&[("authorization", "bearer tok"), ct]), b"{}", NOW)
                .is_ok()
        );
        let e = i.handle(
            &headers(&[("authorization", "Bearer tok2"), ct]),
            b"{}",
            NOW,
        );
        assert_eq!(e.unwrap_err().to_string(), "bearer token is not valid");
        let e = i.handle(&headers(&[("authorization", "Basic dG9r"), ct]), b"{}", NOW);
        assert!(e.unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn gzip_bomb_is_too_large_after_decoding() {
        let i = intake(serde_json::json!({"max_body_size": 1024}));
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![b' '; 100_000]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 1024);
        let h = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]);
        let e = i.handle(&h, &bomb, NOW).unwrap_err();
        assert!(
            matches!(e, Rejection::TooLarge { decoded: true, .. }),
            "{e}"
        );
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let e = i.handle(&h, b"not gzip", NOW).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn strict_mode_rejects_the_whole_request_naming_the_event() {
        let i = intake(serde_json::json!({"strict": true}));
        let h = headers(&[("content-type", "application/x-ndjson")]);
        let body = b"{\"severity\":\"info\"}\n{\"severity\":\"severe\"}\n";
        let e = i.handle(&h, body, NOW).unwrap_err();
        let message = e.to_string();
        assert!(
            message.contains("event 1") && message.contains("severity"),
            "{message}"
        );
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn verified_events_are_stamped_and_sender_values_kept() {
        let i = intake(
            serde_json::json!({"verify": {"scheme": "hmac_sha256", "header": "x-sig", "secrets": ["a", "b"]}}),
        );
        let body = br#"{"verified_by": "me"}"#;
        let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(b"b").unwrap();
        hmac::Mac::update(&mut mac, body);
        let sig = hex::encode(hmac::Mac::finalize(mac).into_bytes());
        let h = headers(&[("content-type", "application/json"), ("x-sig", &sig)]);
        let admitted = i.handle(&h, body, NOW).unwrap();
        let attributes = &admitted.batch[0].attributes;
        assert_eq!(
            attributes[VERIFIED_BY_KEY],
            serde_json::json!({"scheme": "hmac_sha256", "secret_index": 1})
        );
        assert_eq!(attributes["_duplicate"][VERIFIED_BY_KEY], json!(["me"]));
    }

    proptest! {
        #[test]
        fn arbitrary_requests_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            json_body in "[\\[\\]{}\",:0-9a-z \\n\\r\\t.eE+-]{0,200}",
            content_type in "\\PC{0,40}",
            encoding in prop_oneof![Just("gzip".to_string()), Just("identity".to_string()), "\\PC{0,12}"],
            authorization in "\\PC{0,40}",
            signature in "\\PC{0,80}",
            length in "[0-9]{0,22}",
        ) {
            let plain = intake(serde_json::json!({"max_body_size": 300}));
            let guarded = intake(serde_json::json!({
                "auth": {"bearer_token": "tok"}, "strict": true,
                "mapping": {"event_id": "id", "severity": "a.b"},
                "verify": {"scheme": "stripe", "secrets": ["s"]}}));
            let mut h = HeaderMap::new();
            for (name, value) in [("content-type", &content_type), ("content-encoding", &encoding),
                                  ("authorization", &authorization), ("stripe-signature", &signature),
                                  ("content-length", &length)] {
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(name, v);
                }
            }
            for payload in [&body[..], json_body.as_bytes()] {
                for intake in [&plain, &guarded] {
                    match intake.handle(&h, payload, NOW) {
                        Ok(admitted) => prop_assert!(admitted.batch.len() <= payload.len()),
                        Err(rejection) => prop_assert!(rejection.status().is_client_error()),
                    }
                }
                // The same body framed as each accepted type.
                let mut typed = h.clone();
                typed.remove("content-encoding");
                for ct in ["application/json", "application/x-ndjson"] {
                    typed.insert("content-type", HeaderValue::from_static(ct));
                    let _ = plain.handle(&typed, payload, NOW);
                }
            }
        }
    }
}
