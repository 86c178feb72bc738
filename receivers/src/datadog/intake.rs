//! Request processing without I/O: the route, headers, query and raw body in, a batch of events
//! or a rejection out. Checks run in a fixed order: API key, content type and encoding, size,
//! decoding, parsing (under the events limit and the admission budget), mapping. A request is
//! accepted whole or rejected whole.

use super::config::DatadogConfig;
use super::mapping::{self, RequestDefaults};
use crate::body::{self, BodyError, SizeLimit};
use crate::credentials::KeySet;
use axum::http::{HeaderMap, StatusCode, header};
use siemrelay_core::admission::{MemoryBudget, OverBudget, Reservation};
use siemrelay_core::ingest::{
    BodyErrorKind, BodyFormat, IngestOptions, Limits, Members, parse_body,
};
use siemrelay_core::{Batch, ConfigIssue, Event, Timestamp};
use std::borrow::Cow;

/// The header Datadog's clients send the API key in.
pub const API_KEY_HEADER: &str = "dd-api-key";

/// Which of Datadog's log intake APIs a request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `POST /api/v2/logs`: answers 202 `{}`, errors as `{"errors":[{status,title,detail}]}`.
    V2,
    /// `POST /v1/input[/<key>]` (deprecated by Datadog, still used by old forwarders): answers
    /// 200 `{}`, errors as `{"code":…,"message":…}`.
    V1,
}

/// Why a request was refused before reaching the pipeline. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// No API key in the header (or the v1 path).
    #[error("API key is missing: send it in the DD-API-KEY header")]
    MissingKey,
    /// The key presented is not one of `api_keys`.
    #[error("API key is not valid")]
    InvalidKey,
    /// Content type or encoding the intake does not read.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// The body (as received, or decoded) exceeds `max_body_size`.
    #[error("{} is larger than max_body_size ({limit} bytes)", if *.decoded { "the decoded body" } else { "the body" })]
    TooLarge {
        /// The configured limit in bytes.
        limit: usize,
        /// True when the decoded body was too large.
        decoded: bool,
    },
    /// More logs than `max_events_per_request`.
    #[error("the request holds more than max_events_per_request ({limit}) logs")]
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
    /// Not valid gzip/deflate, not JSON of a log shape.
    #[error("{0}")]
    Malformed(String),
    /// In strict mode, a log's field did not fit.
    #[error("log {index} (0-based) rejected: {reason}")]
    Invalid {
        /// Position of the log in the request.
        index: usize,
        /// The field and what is wrong with it.
        reason: String,
    },
}

impl Rejection {
    /// The HTTP status answering this rejection on `api` (Datadog's documented codes: 400, 401
    /// for a missing key on v2, 403, 408, 413, 503).
    pub fn status(&self, api: Api) -> StatusCode {
        match self {
            Rejection::MissingKey if api == Api::V2 => StatusCode::UNAUTHORIZED,
            Rejection::MissingKey | Rejection::InvalidKey => StatusCode::FORBIDDEN,
            Rejection::TooLarge { .. } | Rejection::TooManyEvents { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Rejection::Memory(over) if over.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Memory(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            Rejection::UnsupportedMedia(_)
            | Rejection::Malformed(_)
            | Rejection::Invalid { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// The `reason` label of `siemrelay_receiver_events_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::MissingKey | Rejection::InvalidKey => "auth",
            Rejection::UnsupportedMedia(_) => "content_type",
            Rejection::TooLarge { .. } => "too_large",
            Rejection::TooManyEvents { .. } => "too_many_events",
            Rejection::Memory(_) => "memory_limit",
            Rejection::TooSlow(_) => "too_slow",
            Rejection::Malformed(_) | Rejection::Invalid { .. } => "malformed",
        }
    }

    fn from_body(error: BodyError, encoding: Encoding) -> Rejection {
        match error {
            BodyError::TooLarge { limit, decoded, .. } => Rejection::TooLarge { limit, decoded },
            BodyError::TooSlow { rate } => Rejection::TooSlow(rate),
            BodyError::Memory(over) => Rejection::Memory(over),
            BodyError::NotGzip(e) => {
                Rejection::Malformed(format!("the body is not valid {}: {e}", encoding.name()))
            }
            BodyError::Broken(message) => Rejection::Malformed(message),
        }
    }
}

impl From<BodyError> for Rejection {
    fn from(error: BodyError) -> Rejection {
        Rejection::from_body(error, Encoding::Identity)
    }
}

/// The body's content encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Not encoded.
    Identity,
    /// `gzip` (Datadog's recommended encoding).
    Gzip,
    /// `deflate` (zlib, or raw deflate).
    Deflate,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
        }
    }
}

/// How the body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// `application/json`: one log object or an array of them.
    Json,
    /// `text/plain` or `application/logplex-1`: one log per line.
    Lines,
    /// No `Content-Type`: JSON when the body starts with `{` or `[`, else lines.
    Sniff,
}

/// What the checks before the body learned about it.
#[derive(Clone, Debug)]
pub struct Framing {
    /// The API (reply shape).
    pub api: Api,
    /// Body framing.
    pub payload: Payload,
    /// Content encoding.
    pub encoding: Encoding,
    /// The declared `Content-Length`, if any (already checked against the limit).
    pub declared_length: Option<usize>,
    /// Request-wide attributes from the query string.
    pub defaults: RequestDefaults,
}

/// A request turned into events, ready for the pipeline.
#[derive(Debug)]
pub struct Admitted {
    /// The request's events, in order.
    pub batch: Batch,
    /// Fields that could not be mapped, over all logs (0 in strict mode).
    pub mapping_errors: usize,
    /// Memory the batch holds.
    pub held_bytes: usize,
}

/// Everything request processing needs, prepared once from the config.
#[derive(Debug)]
pub struct Intake {
    keys: KeySet,
    max_body: usize,
    max_events: usize,
    options: IngestOptions,
}

impl Intake {
    /// Prepares request processing for the receiver `id`, or returns the config's issues.
    pub fn new(id: &str, config: &DatadogConfig) -> Result<Intake, Vec<ConfigIssue>> {
        let issues = config.validate();
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Intake {
            keys: KeySet::of(&config.api_keys),
            max_body: config.max_body_size.as_usize(),
            max_events: config.max_events_per_request,
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

    /// Checks made before the body is read: the API key (`DD-API-KEY`, else the key in a v1
    /// path), content type and encoding, and a declared `Content-Length` over the limit.
    pub fn admit(
        &self,
        api: Api,
        headers: &HeaderMap,
        path_key: Option<&str>,
        query: Option<&str>,
    ) -> Result<Framing, Rejection> {
        let presented = headers
            .get(API_KEY_HEADER)
            .map(|value| value.as_bytes())
            .filter(|key| !key.is_empty())
            .or(path_key.map(str::as_bytes).filter(|key| !key.is_empty()))
            .ok_or(Rejection::MissingKey)?;
        if !self.keys.contains(presented) {
            return Err(Rejection::InvalidKey);
        }
        let payload = payload(headers)?;
        let encoding = encoding(headers)?;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body as u64) {
            return Err(Rejection::TooLarge {
                limit: self.max_body,
                decoded: false,
            });
        }
        Ok(Framing {
            api,
            payload,
            encoding,
            declared_length: declared.and_then(|length| usize::try_from(length).ok()),
            defaults: RequestDefaults::from_query(query.unwrap_or("")),
        })
    }

    /// Decodes and parses a read body into events, holding what it allocates in
    /// `reservation` (which already holds the raw body); may be run again after a
    /// [`Rejection::Memory`].
    pub fn parse(
        &self,
        framing: &Framing,
        raw: &[u8],
        observed: Timestamp,
        reservation: &Reservation,
    ) -> Result<Admitted, Rejection> {
        if raw.len() > self.max_body {
            return Err(Rejection::TooLarge {
                limit: self.max_body,
                decoded: false,
            });
        }
        let limit = self.size_limit();
        let decode = |error| Rejection::from_body(error, framing.encoding);
        let decoded = match framing.encoding {
            Encoding::Identity => Cow::Borrowed(raw),
            Encoding::Gzip => {
                Cow::Owned(body::gunzip(raw, limit, reservation, raw.len()).map_err(decode)?)
            }
            Encoding::Deflate => {
                Cow::Owned(body::inflate(raw, limit, reservation, raw.len()).map_err(decode)?)
            }
        };
        let limits = Limits::new(self.max_events)
            .strict(self.options.strict)
            .charging(reservation);
        let json = match framing.payload {
            Payload::Json => true,
            Payload::Lines => false,
            Payload::Sniff => matches!(
                decoded.iter().find(|b| !b.is_ascii_whitespace()),
                Some(b'{' | b'[')
            ),
        };
        let logs = if json {
            parse_body(&decoded, BodyFormat::Json, &limits).map_err(|e| match e.kind {
                BodyErrorKind::TooManyEvents { limit } => Rejection::TooManyEvents { limit },
                BodyErrorKind::Memory(over) => Rejection::Memory(over),
                _ => Rejection::Malformed(e.message),
            })?
        } else {
            lines(&decoded, self.max_events, &limits)?
        };
        limits
            .charge(logs.len() * size_of::<Event>())
            .map_err(stop_rejection)?;
        let mut batch = Vec::with_capacity(logs.len());
        let mut mapping_errors = 0;
        for (index, log) in logs.into_iter().enumerate() {
            let mapped = mapping::log_to_event(log, &framing.defaults, &self.options, observed)
                .map_err(|reason| Rejection::Invalid { index, reason })?;
            mapping_errors += mapped.mapping_errors;
            batch.push(mapped.event);
        }
        Ok(Admitted {
            batch,
            mapping_errors,
            held_bytes: limits.charged(),
        })
    }

    /// [`Intake::admit`] then [`Intake::parse`] with no memory limit: the whole request in one
    /// call (tests and tools).
    pub fn handle(
        &self,
        api: Api,
        headers: &HeaderMap,
        path_key: Option<&str>,
        query: Option<&str>,
        body: &[u8],
        observed: Timestamp,
    ) -> Result<Admitted, Rejection> {
        let framing = self.admit(api, headers, path_key, query)?;
        let reservation = MemoryBudget::unlimited().empty_reservation();
        self.parse(&framing, body, observed, &reservation)
    }
}

fn stop_rejection(stop: siemrelay_core::ingest::Stop) -> Rejection {
    match stop {
        siemrelay_core::ingest::Stop::Memory(over) => Rejection::Memory(over),
        siemrelay_core::ingest::Stop::TooManyEvents { limit } => Rejection::TooManyEvents { limit },
        other => Rejection::Malformed(other.to_string()),
    }
}

/// A plain-text body: each non-blank line is one log whose `message` is the line.
fn lines<'b>(
    body: &'b [u8],
    max_events: usize,
    limits: &Limits<'_>,
) -> Result<Vec<Members<'b>>, Rejection> {
    let text = std::str::from_utf8(body)
        .map_err(|e| Rejection::Malformed(format!("the text body is not UTF-8: {e}")))?;
    let mut logs = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        if logs.len() == max_events {
            return Err(Rejection::TooManyEvents { limit: max_events });
        }
        limits.charge(line.len() + 64).map_err(stop_rejection)?;
        logs.push(Members(vec![(
            Cow::Borrowed("message"),
            serde_json::Value::String(line.to_string()),
        )]));
    }
    Ok(logs)
}

const ACCEPTED_TYPES: &str = "application/json, text/plain or application/logplex-1";

fn payload(headers: &HeaderMap) -> Result<Payload, Rejection> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Payload::Sniff);
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(Payload::Json)
    } else if essence.eq_ignore_ascii_case("text/plain")
        || essence.eq_ignore_ascii_case("application/logplex-1")
    {
        Ok(Payload::Lines)
    } else {
        Err(Rejection::UnsupportedMedia(format!(
            "unsupported Content-Type {:?}; send {ACCEPTED_TYPES}",
            String::from_utf8_lossy(value.as_bytes())
        )))
    }
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, Rejection> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
        Ok(Encoding::Gzip)
    } else if text.eq_ignore_ascii_case("deflate") {
        Ok(Encoding::Deflate)
    } else if text.is_empty() || text.eq_ignore_ascii_case("identity") {
        Ok(Encoding::Identity)
    } else {
        Err(Rejection::UnsupportedMedia(format!(
            "unsupported Content-Encoding {:?}; send gzip, deflate or identity",
            String::from_utf8_lossy(value.as_bytes())
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use flate2::Compression;
    use std::io::Write;

    fn intake(more: serde_json::Value) -> Intake {
        let mut config =
            serde_json::json!({"endpoint": "127.0.0.1:8282", "api_keys": ["key-one", "key-two"]});
        if let (serde_json::Value::Object(c), serde_json::Value::Object(m)) = (&mut config, more) {
            c.extend(m);
        }
        Intake::new("datadog", &serde_json::from_value(config).unwrap()).unwrap()
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
    fn keys_are_checked_from_the_header_or_the_v1_path() {
        let i = intake(serde_json::json!({}));
        let json = ("content-type", "application/json");
        let e = i
            .handle(Api::V2, &headers(&[json]), None, None, b"{}", NOW)
            .unwrap_err();
        assert_eq!(
            (e.status(Api::V2), e.status(Api::V1)),
            (StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN)
        );
        let e = i
            .handle(
                Api::V2,
                &headers(&[json, ("dd-api-key", "key-three")]),
                None,
                None,
                b"{}",
                NOW,
            )
            .unwrap_err();
        assert_eq!(e.status(Api::V2), StatusCode::FORBIDDEN);
        assert!(!e.to_string().contains("key-three"));
        assert!(
            i.handle(
                Api::V2,
                &headers(&[json, ("dd-api-key", "key-two")]),
                None,
                None,
                b"{}",
                NOW
            )
            .is_ok()
        );
        assert!(
            i.handle(
                Api::V1,
                &headers(&[json]),
                Some("key-one"),
                None,
                b"{}",
                NOW
            )
            .is_ok()
        );
    }

    #[test]
    fn bodies_in_every_framing_and_encoding() {
        let i = intake(serde_json::json!({}));
        let key = ("dd-api-key", "key-one");
        let array = br#"[{"message":"a"},{"message":"b","status":"warn"}]"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(array).unwrap();
        let gz = gz.finish().unwrap();
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), Compression::fast());
        zlib.write_all(array).unwrap();
        let zlib = zlib.finish().unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), Compression::fast());
        raw.write_all(array).unwrap();
        let raw = raw.finish().unwrap();
        for (encoding, body) in [
            ("identity", array.to_vec()),
            ("gzip", gz),
            ("deflate", zlib),
            ("deflate", raw),
        ] {
            let h = headers(&[
                key,
                ("content-type", "application/json"),
                ("content-encoding", encoding),
            ]);
            let admitted = i.handle(Api::V2, &h, None, None, &body, NOW).unwrap();
            assert_eq!(admitted.batch.len(), 2, "{encoding}");
            assert_eq!(admitted.batch[1].severity.text, "warn");
        }
        let h = headers(&[key, ("content-type", "text/plain")]);
        let admitted = i
            .handle(
                Api::V1,
                &h,
                None,
                Some("ddsource=nginx&ddtags=env:prod"),
                b"hello\r\n\nworld\n",
                NOW,
            )
            .unwrap();
        let summaries: Vec<_> = admitted
            .batch
            .iter()
            .map(|e| e.summary.clone().unwrap())
            .collect();
        assert_eq!(summaries, ["hello", "world"]);
        assert_eq!(admitted.batch[0].source.as_deref(), Some("nginx"));
        assert_eq!(
            admitted.batch[0].attributes["ddtags"],
            serde_json::json!("env:prod")
        );
        // No content type: JSON when it looks like JSON.
        let admitted = i
            .handle(
                Api::V2,
                &headers(&[key]),
                None,
                None,
                br#"{"message":"m"}"#,
                NOW,
            )
            .unwrap();
        assert_eq!(admitted.batch[0].summary.as_deref(), Some("m"));
    }

    #[test]
    fn limits_and_bad_bodies_have_datadogs_codes() {
        let i = intake(serde_json::json!({"max_body_size": 64, "max_events_per_request": 2}));
        let key = ("dd-api-key", "key-one");
        let json = ("content-type", "application/json");
        let status = |r: Result<Admitted, Rejection>| r.unwrap_err().status(Api::V2);
        assert_eq!(
            status(i.handle(
                Api::V2,
                &headers(&[key, json]),
                None,
                None,
                &[b' '; 65],
                NOW
            )),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status(i.handle(
                Api::V2,
                &headers(&[key, json]),
                None,
                None,
                b"[{},{},{}]",
                NOW
            )),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status(i.handle(
                Api::V2,
                &headers(&[key, ("content-type", "text/plain")]),
                None,
                None,
                b"a\nb\nc\n",
                NOW
            )),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status(i.handle(Api::V2, &headers(&[key, json]), None, None, b"[1]", NOW)),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(i.handle(
                Api::V2,
                &headers(&[key, json, ("content-encoding", "gzip")]),
                None,
                None,
                b"nope",
                NOW
            )),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(i.handle(
                Api::V2,
                &headers(&[key, ("content-type", "image/png")]),
                None,
                None,
                b"{}",
                NOW
            )),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(i.handle(
                Api::V2,
                &headers(&[key, json, ("content-encoding", "br")]),
                None,
                None,
                b"{}",
                NOW
            )),
            StatusCode::BAD_REQUEST
        );
    }
}
