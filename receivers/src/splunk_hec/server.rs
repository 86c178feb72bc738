//! The HTTP glue: routing HEC's paths, authenticating, reserving memory and reading the body
//! under the listener's limits, handing the events to the pipeline and answering only after the
//! pipeline has queued (or refused) them.

use super::acks::{Acks, Slot};
use super::auth::Tokens;
use super::envelope::{self, Parsed, QueryMetadata, RequestContext, WholeRequest};
use super::reply::{self, HecStatus};
use super::telemetry::Telemetry;
use crate::body::{self, BodyError, SizeLimit};
use crate::listener::closing;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use siemrelay_core::admission::{ADMISSION_WAIT, MemoryBudget, OverBudget, RETRY_AFTER};
use siemrelay_core::ingest::{IngestOptions, Limits};
use siemrelay_core::{EventSink, Refusal, Timestamp};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The header naming a request's channel.
pub const CHANNEL_HEADER: &str = "x-splunk-request-channel";
/// Largest ack poll body (`{"acks":[…]}`).
const MAX_ACK_BODY: usize = 1024 * 1024;

/// What every request of one receiver shares.
pub struct Endpoint {
    /// The configured tokens.
    pub tokens: Tokens,
    /// Ack state, when `acknowledgements` is on.
    pub acks: Option<Arc<Acks>>,
    /// How `event` objects become events.
    pub options: IngestOptions,
    /// `max_body_size`.
    pub max_body: usize,
    /// `max_events_per_request`.
    pub max_events: usize,
    /// Where accepted batches go.
    pub sink: Arc<dyn EventSink>,
    /// The admission budget requests reserve their memory from.
    pub budget: Arc<MemoryBudget>,
    /// Metrics and logs.
    pub telemetry: Telemetry,
    /// Until when health answers "queues are full" (milliseconds after `started`).
    pub full_until: AtomicU64,
    /// When the receiver started (the clock of `full_until`).
    pub started: Instant,
}

/// Which HEC endpoint a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Event,
    Raw,
    Ack,
    Health,
}

fn route(path: &str) -> Option<Route> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let path = path.strip_suffix("/1.0").unwrap_or(path);
    match path {
        "/services/collector" | "/services/collector/event" => Some(Route::Event),
        "/services/collector/raw" => Some(Route::Raw),
        "/services/collector/ack" => Some(Route::Ack),
        "/services/collector/health" => Some(Route::Health),
        _ => None,
    }
}

/// The receiver's router: every request goes to [`serve_request`], which routes by itself so
/// that every answer has HEC's shape.
pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new().fallback(serve_request).with_state(endpoint)
}

async fn serve_request(
    State(endpoint): State<Arc<Endpoint>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Some(route) = route(parts.uri.path()) else {
        return closing(reply::other(
            StatusCode::NOT_FOUND,
            404,
            "The requested URL was not found on this server.",
        ));
    };
    if route == Route::Health {
        return endpoint.health();
    }
    if parts.method != Method::POST {
        let mut response = reply::other(
            StatusCode::METHOD_NOT_ALLOWED,
            405,
            &format!("Method {} is not allowed; use POST", parts.method),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return closing(response);
    }
    let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let token = match endpoint
        .tokens
        .authenticate(&parts.headers, query.get("token").map(String::as_str))
    {
        Ok(token) => token.clone(),
        Err(status) => {
            endpoint.telemetry.refused("auth", peer, status.text);
            return closing(reply::reply(status));
        }
    };
    let channel = match channel(&parts.headers, &query, endpoint.acks.is_some()) {
        Ok(channel) => channel,
        Err(status) => {
            endpoint.telemetry.refused("channel", peer, status.text);
            return closing(reply::reply(status));
        }
    };
    if route == Route::Ack {
        return endpoint.ack_poll(channel, body, peer).await;
    }
    let slot = match (&endpoint.acks, channel) {
        (Some(acks), Some(channel)) => match acks.reserve(channel) {
            Ok(slot) => Some(slot),
            Err(full) => {
                endpoint
                    .telemetry
                    .refused("ack_capacity", peer, &full.to_string());
                return closing(reply::busy(RETRY_AFTER));
            }
        },
        _ => None,
    };
    let raw_metadata = (route == Route::Raw).then(|| QueryMetadata {
        host: query.get("host").cloned(),
        source: query.get("source").cloned(),
        sourcetype: query.get("sourcetype").cloned(),
        index: query.get("index").cloned(),
    });
    let request = Ingest {
        endpoint: &endpoint,
        token: &token,
        raw: raw_metadata.as_ref(),
        peer,
    };
    request.run(&parts.headers, body, slot).await
}

/// The channel of a request (header first, then `?channel=`): required and a GUID with
/// acknowledgement on, ignored without.
fn channel(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    acks: bool,
) -> Result<Option<Uuid>, HecStatus> {
    let text = headers
        .get(CHANNEL_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| query.get("channel").cloned());
    match text {
        _ if !acks => Ok(None),
        None => Err(reply::CHANNEL_MISSING),
        Some(text) => Uuid::try_parse(text.trim())
            .map(Some)
            .map_err(|_| reply::INVALID_CHANNEL),
    }
}

/// One `/event` or `/raw` request being taken in.
struct Ingest<'a> {
    endpoint: &'a Endpoint,
    token: &'a super::auth::TokenDefaults,
    /// The query metadata of a `/raw` request; `None` for `/event`.
    raw: Option<&'a QueryMetadata>,
    peer: SocketAddr,
}

/// Why a request was refused before anything of it was queued.
struct Refused {
    reason: &'static str,
    answer: Answer,
    detail: String,
}

/// How a refusal is answered (built when sent: a `Response` cannot be shared between threads).
enum Answer {
    /// 503 code 9 with `Retry-After`.
    Busy,
    /// A status of Splunk's table.
    Status(HecStatus),
    /// An answer outside the table: HTTP status and text (code 6).
    Other(StatusCode, String),
}

impl Answer {
    fn response(&self) -> Response {
        match self {
            Answer::Busy => reply::busy(RETRY_AFTER),
            Answer::Status(status) => reply::reply(*status),
            Answer::Other(http, text) => reply::other(*http, reply::INVALID_DATA_FORMAT.code, text),
        }
    }
}

impl Ingest<'_> {
    async fn run(self, headers: &HeaderMap, body: Body, slot: Option<Slot>) -> Response {
        let observed = Timestamp::now();
        let parsed = match self.read_and_parse(headers, body, observed).await {
            Ok(parsed) => parsed,
            Err(refused) => {
                // A busy budget is retried while parsing under its own name; counted as one.
                let reason = match refused.reason {
                    "memory_limit_busy" => "memory_limit",
                    other => other,
                };
                self.endpoint
                    .telemetry
                    .refused(reason, self.peer, &refused.detail);
                return closing(refused.answer.response());
            }
        };
        let (parsed, _reservation) = parsed;
        let Parsed {
            batch,
            mapping_errors,
            fault,
            ..
        } = parsed;
        let events = batch.len();
        let telemetry = &self.endpoint.telemetry;
        telemetry.received(events, mapping_errors);
        if let Some(fault) = &fault {
            let reason = if fault.status == reply::INCORRECT_INDEX {
                "index"
            } else {
                "malformed"
            };
            telemetry.refused(
                reason,
                self.peer,
                &format!("event {}: {}", fault.event, fault.detail),
            );
        }
        if events > 0
            && let Err(refusal) = self.endpoint.sink.accept(batch).await
        {
            telemetry.refused_by_pipeline(&refusal, events);
            return self.endpoint.refusal_reply(&refusal);
        }
        match (fault, slot) {
            (Some(fault), _) if fault.status == reply::NO_DATA => reply::reply(fault.status),
            (Some(fault), _) => reply::at_event(fault.status, fault.event),
            (None, Some(slot)) => reply::success_with_ack(slot.issue()),
            (None, None) => reply::reply(reply::SUCCESS),
        }
    }

    /// Reads, decodes and parses the body under the size limit and the admission budget.
    async fn read_and_parse(
        &self,
        headers: &HeaderMap,
        body: Body,
        observed: Timestamp,
    ) -> Result<(Parsed, siemrelay_core::admission::Reservation), Refused> {
        let endpoint = self.endpoint;
        let gzip = gzip(headers)?;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > endpoint.max_body as u64) {
            return Err(too_large(endpoint.max_body, false));
        }
        let declared = declared.and_then(|l| usize::try_from(l).ok()).unwrap_or(0);
        let reservation = endpoint
            .budget
            .reserve(declared, ADMISSION_WAIT)
            .await
            .map_err(over_budget)?;
        let limit = SizeLimit {
            key: "max_body_size",
            bytes: endpoint.max_body,
        };
        let raw = body::read(body, limit, &reservation)
            .await
            .map_err(body_error)?;
        let ctx = RequestContext {
            options: &endpoint.options,
            token: self.token,
            observed,
            max_events: endpoint.max_events,
        };
        let parsed = endpoint
            .budget
            .retry_while_busy(
                ADMISSION_WAIT,
                || {
                    reservation.shrink_to(raw.len());
                    let decoded = if gzip {
                        std::borrow::Cow::Owned(
                            body::gunzip(&raw, limit, &reservation, raw.len())
                                .map_err(body_error)?,
                        )
                    } else {
                        std::borrow::Cow::Borrowed(&raw[..])
                    };
                    let limits = Limits::new(endpoint.max_events)
                        .strict(endpoint.options.strict)
                        .charging(&reservation);
                    let parsed = match self.raw {
                        Some(query) => envelope::parse_raw(&decoded, &ctx, query, &limits),
                        None => envelope::parse_events(&decoded, &ctx, &limits),
                    };
                    parsed.map_err(|whole| match whole {
                        WholeRequest::TooManyEvents(limit) => Refused {
                            reason: "too_many_events",
                            answer: Answer::Other(StatusCode::PAYLOAD_TOO_LARGE, format!(
                                    "The request holds more than max_events_per_request ({limit}) events"
                                )),
                            detail: format!("more than {limit} events"),
                        },
                        WholeRequest::Memory(over) => over_budget(over),
                    })
                },
                |refused| refused.reason == "memory_limit_busy",
            )
            .await?;
        drop(raw);
        reservation.shrink_to(parsed.held_bytes);
        Ok((parsed, reservation))
    }
}

impl Endpoint {
    /// `GET /services/collector/health`: code 17, or 18 while the pipeline has recently
    /// refused events for a full queue.
    fn health(&self) -> Response {
        let now = self.started.elapsed().as_millis() as u64;
        if now < self.full_until.load(Ordering::Relaxed) {
            reply::reply(reply::QUEUES_FULL)
        } else {
            reply::reply(reply::HEALTHY)
        }
    }

    /// The answer to a batch the pipeline refused (nothing of it kept).
    fn refusal_reply(&self, refusal: &Refusal) -> Response {
        match refusal {
            Refusal::Full { retry_after } => {
                let until = self.started.elapsed() + (*retry_after).max(Duration::from_secs(1));
                self.full_until
                    .store(until.as_millis() as u64, Ordering::Relaxed);
                reply::busy(*retry_after)
            }
            Refusal::ShuttingDown => reply::busy(RETRY_AFTER),
            Refusal::Failed(_) => reply::reply(reply::INTERNAL_ERROR),
        }
    }

    /// `POST /services/collector/ack`: `{"acks":[ids]}` → `{"acks":{"id":bool}}`.
    async fn ack_poll(&self, channel: Option<Uuid>, body: Body, peer: SocketAddr) -> Response {
        let (Some(acks), Some(channel)) = (&self.acks, channel) else {
            self.telemetry
                .refused("channel", peer, "ack poll with acknowledgements off");
            return closing(reply::reply(reply::ACK_DISABLED));
        };
        let limit = SizeLimit {
            key: "max_body_size",
            bytes: MAX_ACK_BODY.min(self.max_body),
        };
        let Ok(reservation) = self.budget.try_reserve(0) else {
            return closing(reply::busy(RETRY_AFTER));
        };
        let raw = match body::read(body, limit, &reservation).await {
            Ok(raw) => raw,
            Err(error) => {
                let refused = body_error(error);
                self.telemetry
                    .refused(refused.reason, peer, &refused.detail);
                return closing(refused.answer.response());
            }
        };
        #[derive(serde::Deserialize)]
        struct Poll {
            acks: Vec<u64>,
        }
        match serde_json::from_slice::<Poll>(&raw) {
            Ok(poll) => reply::acks(&acks.query(channel, &poll.acks)),
            Err(e) => {
                self.telemetry.refused("malformed", peer, &e.to_string());
                reply::reply(reply::INVALID_DATA_FORMAT)
            }
        }
    }
}

/// True for `Content-Encoding: gzip`; none or `identity` is plain; anything else is refused.
fn gzip(headers: &HeaderMap) -> Result<bool, Refused> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(false);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
        Ok(true)
    } else if text.is_empty() || text.eq_ignore_ascii_case("identity") {
        Ok(false)
    } else {
        Err(Refused {
            reason: "content_type",
            answer: Answer::Other(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                String::from("Unsupported content encoding; send gzip or identity"),
            ),
            detail: format!(
                "Content-Encoding {:?}",
                String::from_utf8_lossy(value.as_bytes())
            ),
        })
    }
}

fn too_large(limit: usize, decoded: bool) -> Refused {
    let what = if decoded {
        "The gzip-decoded body"
    } else {
        "The body"
    };
    Refused {
        reason: "too_large",
        answer: Answer::Other(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} is larger than max_body_size ({limit} bytes)"),
        ),
        detail: format!("{what} is larger than {limit} bytes"),
    }
}

/// The admission budget said no: busy (503 code 9, retried while parsing) or never (413).
fn over_budget(over: OverBudget) -> Refused {
    if over.is_retryable() {
        Refused {
            reason: "memory_limit_busy",
            answer: Answer::Busy,
            detail: over.to_string(),
        }
    } else {
        Refused {
            reason: "memory_limit",
            answer: Answer::Other(
                StatusCode::PAYLOAD_TOO_LARGE,
                String::from("The request needs more memory than service.memory_limit"),
            ),
            detail: over.to_string(),
        }
    }
}

fn body_error(error: BodyError) -> Refused {
    match error {
        BodyError::TooLarge { limit, decoded, .. } => too_large(limit, decoded),
        BodyError::Memory(over) => over_budget(over),
        BodyError::TooSlow { rate } => Refused {
            reason: "too_slow",
            answer: Answer::Other(
                StatusCode::REQUEST_TIMEOUT,
                String::from("The body arrived slower than min_body_rate"),
            ),
            detail: format!("slower than {rate} bytes/s"),
        },
        BodyError::NotGzip(e) => Refused {
            reason: "malformed",
            answer: Answer::Status(reply::INVALID_DATA_FORMAT),
            detail: format!("not valid gzip: {e}"),
        },
        BodyError::Broken(message) => Refused {
            reason: "malformed",
            answer: Answer::Status(reply::INVALID_DATA_FORMAT),
            detail: message,
        },
    }
}

/// The router serving clients outside `allowed_cidrs`: 403 to every request, body unread.
pub fn forbidden() -> Router {
    Router::new().fallback(|| async {
        closing(reply::other(
            StatusCode::FORBIDDEN,
            reply::INVALID_TOKEN.code,
            "Forbidden: the client's address is not in this receiver's allowed_cidrs",
        ))
    })
}

/// The answer to a request over the listener's `max_concurrent_requests`: 503 code 9.
pub fn busy() -> Response {
    closing(reply::busy(RETRY_AFTER))
}
