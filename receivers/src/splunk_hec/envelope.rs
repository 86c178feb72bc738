//! HEC bodies into events, without I/O: JSON envelopes written back to back (with or without
//! whitespace between them) for `/services/collector/event`, and one event per line for
//! `/services/collector/raw`. The mapping (also in `docs/receivers/splunk_hec.md`):
//!
//! | envelope | event |
//! |---|---|
//! | `event` (object) | its members through the shared ingest (well-known fields, `mapping`, `strict`, the duplicate rule); the rest under `attributes` |
//! | `event` (string) | `summary` |
//! | `event` (number, `true`, array) | `attributes.event`, typed |
//! | `time` | `timestamp` when the `event` object carries none (epoch seconds, fraction exact to the nanosecond, number or string); as sent under `resource."com.splunk.time"` |
//! | `host` | `resource."host.name"` |
//! | `source` | `source` when the object carries none; `resource."com.splunk.source"` |
//! | `sourcetype` | `resource."com.splunk.sourcetype"` |
//! | `index` | `resource."com.splunk.index"` (checked against the token's `allowed_indexes`) |
//! | `fields` | each key under `attributes` (a key the event already has keeps its value; the field's goes to `attributes._duplicate.<key>`) |
//! | any other key | `resource."com.splunk.<key>"` |
//!
//! The token's `index`, `source` and `sourcetype` stand in for missing ones. A key the event
//! already has with another value is kept under `_duplicate.<key>` of the same map. An `event`
//! object carrying a `signature` is kept exactly as signed (the envelope adds nothing to it:
//! any addition would break the signature).
//!
//! The first envelope at fault stops the parse: the events before it are returned to be queued
//! and the fault is answered with `invalid-event-number` naming it (what Splunk does: the
//! objects before it are indexed, the rest are not), so a sender resends only from there.

use super::auth::TokenDefaults;
use super::reply::{self, HecStatus};
use siemrelay_core::admission::OverBudget;
use siemrelay_core::event::{Event, EventFields, Map, Value};
use siemrelay_core::ingest::{
    BodyErrorKind, IngestOptions, Limits, Stop, event_from_object, keep_duplicate, parse_object,
};
use siemrelay_core::{Batch, Severity, Timestamp};
use uuid::Uuid;

/// Prefix of the resource keys that keep the envelope (OpenTelemetry's Splunk HEC convention).
pub const RESOURCE_PREFIX: &str = "com.splunk.";
/// The resource key of `host` (OpenTelemetry's semantic convention).
pub const HOST_KEY: &str = "host.name";

/// What every event of one request shares.
pub struct RequestContext<'a> {
    /// How `event` objects become events.
    pub options: &'a IngestOptions,
    /// The token's defaults and index allow list.
    pub token: &'a TokenDefaults,
    /// The request's arrival time.
    pub observed: Timestamp,
    /// Most events in the request.
    pub max_events: usize,
}

/// Metadata given in the query string (`/raw`: `host`, `source`, `sourcetype`, `index`).
#[derive(Clone, Debug, Default)]
pub struct QueryMetadata {
    /// `?host=`.
    pub host: Option<String>,
    /// `?source=`.
    pub source: Option<String>,
    /// `?sourcetype=`.
    pub sourcetype: Option<String>,
    /// `?index=`.
    pub index: Option<String>,
}

/// The first envelope (or line) a request could not take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Its 0-based position.
    pub event: usize,
    /// The HEC status answering it.
    pub status: HecStatus,
    /// What is wrong (for logs).
    pub detail: String,
}

/// A parsed request.
#[derive(Debug)]
pub struct Parsed {
    /// The events before the first fault (all of them without one), in order.
    pub batch: Batch,
    /// Fields that could not be mapped, over all events.
    pub mapping_errors: usize,
    /// Memory the batch holds.
    pub held_bytes: usize,
    /// The first envelope at fault.
    pub fault: Option<Fault>,
}

/// Why a whole request is refused (nothing of it queued).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WholeRequest {
    /// More events than `max_events_per_request`.
    TooManyEvents(usize),
    /// The admission budget has no room.
    Memory(OverBudget),
}

/// Parses a `/services/collector/event` body. An empty (or blank) body is a fault at 0 with
/// code 5.
pub fn parse_events(
    body: &[u8],
    ctx: &RequestContext<'_>,
    limits: &Limits<'_>,
) -> Result<Parsed, WholeRequest> {
    let mut parsed = Parsed {
        batch: Vec::new(),
        mapping_errors: 0,
        held_bytes: 0,
        fault: None,
    };
    let mut at = 0;
    loop {
        let index = parsed.batch.len();
        let slice = match next_object(body, at) {
            Split::Done if index == 0 => {
                parsed.fault = Some(fault(0, reply::NO_DATA, "the body is empty"));
                break;
            }
            Split::Done => break,
            Split::Bad(detail) => {
                parsed.fault = Some(fault(index, reply::INVALID_DATA_FORMAT, detail));
                break;
            }
            Split::Object(from, to) => {
                at = to;
                &body[from..to]
            }
        };
        if index >= ctx.max_events {
            return Err(WholeRequest::TooManyEvents(ctx.max_events));
        }
        let envelope = match parse_object(slice, limits) {
            Ok(members) => members,
            Err(e) => {
                if let BodyErrorKind::Memory(over) = e.kind {
                    return Err(WholeRequest::Memory(over));
                }
                parsed.fault = Some(fault(index, reply::INVALID_DATA_FORMAT, e.message));
                break;
            }
        };
        let mut envelope = Envelope::from_members(envelope.0, ctx.options.strict);
        match envelope.take_event(ctx, limits) {
            Ok((event, mapping_errors)) => {
                parsed.mapping_errors += mapping_errors;
                parsed.batch.push(event);
            }
            Err(Refused::Memory(over)) => return Err(WholeRequest::Memory(over)),
            Err(Refused::Status(status, detail)) => {
                parsed.fault = Some(fault(index, status, detail));
                break;
            }
        }
    }
    parsed.held_bytes = limits.charged();
    Ok(parsed)
}

/// Parses a `/services/collector/raw` body: each non-blank line (`\n` or `\r\n` ended) is one
/// event whose `summary` is the line; the metadata comes from the query string.
pub fn parse_raw(
    body: &[u8],
    ctx: &RequestContext<'_>,
    query: &QueryMetadata,
    limits: &Limits<'_>,
) -> Result<Parsed, WholeRequest> {
    let mut parsed = Parsed {
        batch: Vec::new(),
        mapping_errors: 0,
        held_bytes: 0,
        fault: None,
    };
    let index = query.index.clone().or_else(|| ctx.token.index.clone());
    if !ctx.token.allows(index.as_deref()) {
        parsed.fault = Some(fault(
            0,
            reply::INCORRECT_INDEX,
            "the index is not allowed for the token",
        ));
        return Ok(parsed);
    }
    let metadata = Metadata {
        host: query.host.clone().map(Value::String),
        source: query
            .source
            .clone()
            .or_else(|| ctx.token.source.clone())
            .map(Value::String),
        sourcetype: query
            .sourcetype
            .clone()
            .or_else(|| ctx.token.sourcetype.clone())
            .map(Value::String),
        index: index.map(Value::String),
        time: None,
        extras: Vec::new(),
        repeated: Vec::new(),
    };
    for line in body.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let position = parsed.batch.len();
        if position >= ctx.max_events {
            return Err(WholeRequest::TooManyEvents(ctx.max_events));
        }
        let Ok(text) = std::str::from_utf8(line) else {
            parsed.fault = Some(fault(
                position,
                reply::INVALID_DATA_FORMAT,
                "the line is not valid UTF-8",
            ));
            break;
        };
        limits
            .charge(line.len() + size_of::<Event>())
            .map_err(stop_to_whole)?;
        let mut event = plain_event(ctx.observed);
        event.summary = Some(text.to_string());
        metadata.apply(&mut event);
        parsed.batch.push(event.into());
    }
    if parsed.batch.is_empty() && parsed.fault.is_none() {
        parsed.fault = Some(fault(0, reply::NO_DATA, "the body is empty"));
    }
    parsed.held_bytes = limits.charged();
    Ok(parsed)
}

fn fault(event: usize, status: HecStatus, detail: impl Into<String>) -> Fault {
    Fault {
        event,
        status,
        detail: detail.into(),
    }
}

fn stop_to_whole(stop: Stop) -> WholeRequest {
    match stop {
        Stop::Memory(over) => WholeRequest::Memory(over),
        Stop::TooManyEvents { limit } => WholeRequest::TooManyEvents(limit),
        // Charging only ever stops for memory.
        Stop::Shape(_) | Stop::RepeatedKey(_) => {
            WholeRequest::Memory(OverBudget::Busy { limit: 0 })
        }
    }
}

/// Where the next envelope is.
enum Split {
    /// `body[from..to]` is one `{…}` (brackets balanced outside strings).
    Object(usize, usize),
    /// Only whitespace is left.
    Done,
    /// Something that is not an object, or an object that never closes.
    Bad(String),
}

/// Finds the next top-level object from `at`, tracking strings and escapes only: the JSON
/// inside is checked when the slice is parsed.
fn next_object(body: &[u8], at: usize) -> Split {
    let Some(start) = body[at.min(body.len())..]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|p| p + at)
    else {
        return Split::Done;
    };
    if body[start] != b'{' {
        return Split::Bad(format!(
            "expected a JSON object (an envelope) at byte {start}"
        ));
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (offset, &b) in body[start..].iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Split::Object(start, start + offset + 1);
                }
            }
            _ => {}
        }
    }
    Split::Bad(format!(
        "the envelope starting at byte {start} does not end"
    ))
}

/// Why one envelope was not taken.
enum Refused {
    Status(HecStatus, String),
    Memory(OverBudget),
}

/// One envelope's members, sorted.
struct Envelope {
    event: Option<Value>,
    fields: Option<Value>,
    metadata: Metadata,
    repeated_in_strict: Option<String>,
}

/// The envelope keys kept in the resource, as sent (after the token's defaults).
#[derive(Default)]
struct Metadata {
    host: Option<Value>,
    source: Option<Value>,
    sourcetype: Option<Value>,
    index: Option<Value>,
    time: Option<Value>,
    extras: Vec<(String, Value)>,
    repeated: Vec<(String, Value)>,
}

impl Envelope {
    fn from_members(members: Vec<(std::borrow::Cow<'_, str>, Value)>, strict: bool) -> Envelope {
        let mut envelope = Envelope {
            event: None,
            fields: None,
            metadata: Metadata::default(),
            repeated_in_strict: None,
        };
        for (key, value) in members {
            let slot = match key.as_ref() {
                "event" => &mut envelope.event,
                "fields" => &mut envelope.fields,
                "host" => &mut envelope.metadata.host,
                "source" => &mut envelope.metadata.source,
                "sourcetype" => &mut envelope.metadata.sourcetype,
                "index" => &mut envelope.metadata.index,
                "time" => &mut envelope.metadata.time,
                _ => {
                    envelope.metadata.extras.push((key.into_owned(), value));
                    continue;
                }
            };
            if slot.is_none() {
                *slot = Some(value);
            } else {
                if strict && envelope.repeated_in_strict.is_none() {
                    envelope.repeated_in_strict = Some(key.to_string());
                }
                envelope.metadata.repeated.push((key.into_owned(), value));
            }
        }
        envelope
    }

    /// The event, or why the envelope is refused.
    fn take_event(
        &mut self,
        ctx: &RequestContext<'_>,
        limits: &Limits<'_>,
    ) -> Result<(Event, usize), Refused> {
        let invalid = |detail: String| Refused::Status(reply::INVALID_DATA_FORMAT, detail);
        if let Some(key) = &self.repeated_in_strict {
            return Err(invalid(format!(
                "envelope key {key:?} repeats; strict mode refuses repeated keys"
            )));
        }
        let event = match self.event.take() {
            None => {
                return Err(Refused::Status(
                    reply::EVENT_REQUIRED,
                    "the envelope has no event".into(),
                ));
            }
            Some(Value::String(text)) if text.trim().is_empty() => {
                return Err(Refused::Status(
                    reply::EVENT_BLANK,
                    "the event is blank".into(),
                ));
            }
            Some(Value::Null | Value::Bool(false)) => {
                return Err(invalid("event is null or false".into()));
            }
            Some(event) => event,
        };
        let metadata = &mut self.metadata;
        for (key, value) in [
            ("host", &metadata.host),
            ("source", &metadata.source),
            ("sourcetype", &metadata.sourcetype),
            ("index", &metadata.index),
        ] {
            if !matches!(value, None | Some(Value::String(_) | Value::Null)) {
                return Err(invalid(format!("{key} must be a string")));
            }
        }
        for slot in [
            &mut metadata.host,
            &mut metadata.source,
            &mut metadata.sourcetype,
            &mut metadata.index,
        ] {
            if matches!(slot, Some(Value::Null)) {
                *slot = None;
            }
        }
        let fields = match self.fields.take() {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(fields)) if fields.values().all(is_indexed_field_value) => fields,
            Some(_) => {
                return Err(Refused::Status(
                    reply::INDEXED_FIELDS,
                    "fields must be a flat object of strings or arrays of strings".into(),
                ));
            }
        };
        let defaults = ctx.token;
        fill(&mut metadata.index, &defaults.index);
        fill(&mut metadata.source, &defaults.source);
        fill(&mut metadata.sourcetype, &defaults.sourcetype);
        if !defaults.allows(metadata.index.as_ref().and_then(Value::as_str)) {
            return Err(Refused::Status(
                reply::INCORRECT_INDEX,
                "the index is not allowed for the token".into(),
            ));
        }
        let time = match &metadata.time {
            None | Some(Value::Null) => None,
            Some(value) => match epoch_time(value) {
                Some(time) => Some(time),
                None if ctx.options.strict => {
                    return Err(invalid(
                        "time must be epoch seconds (a number or a numeric string)".into(),
                    ));
                }
                None => None,
            },
        };
        let mut mapping_errors = 0;
        let mut event: Event = match event {
            Value::Object(object) => {
                let ingested = event_from_object(object, ctx.options, ctx.observed)
                    .map_err(|e| invalid(format!("event: {e}")))?;
                mapping_errors = ingested.mapping_errors;
                ingested.event
            }
            Value::String(text) => {
                let mut fields = plain_event(ctx.observed);
                fields.summary = Some(text);
                fields.into()
            }
            other => {
                let mut fields = plain_event(ctx.observed);
                fields.attributes.insert("event".into(), other);
                fields.into()
            }
        };
        limits
            .charge(size_of::<Event>() + metadata.size())
            .map_err(|stop| match stop_to_whole(stop) {
                WholeRequest::Memory(over) => Refused::Memory(over),
                WholeRequest::TooManyEvents(_) => Refused::Memory(OverBudget::Busy { limit: 0 }),
            })?;
        if event.signature.is_some() {
            // Kept exactly as signed.
            return Ok((event, mapping_errors));
        }
        if time.is_none() && metadata.time.is_some() && !ctx.options.strict {
            mapping_errors += 1;
            keep(
                &mut event.attributes,
                siemrelay_core::ingest::MAPPING_ERROR_KEY,
                Value::String("envelope time is not epoch seconds; kept as sent".into()),
            );
        }
        let fields_event: &mut EventFields = &mut event;
        // The shared ingest sets the arrival time when the object carries no usable timestamp.
        if let Some(time) = time
            && fields_event.timestamp == ctx.observed
        {
            fields_event.timestamp = time;
        }
        metadata.apply(fields_event);
        for (key, value) in fields {
            keep(&mut fields_event.attributes, &key, value);
        }
        Ok((event, mapping_errors))
    }
}

impl Metadata {
    /// Memory the metadata adds to an event (for the admission budget).
    fn size(&self) -> usize {
        let text = |v: &Option<Value>| v.as_ref().and_then(Value::as_str).map_or(0, str::len);
        128 + text(&self.host)
            + text(&self.source)
            + text(&self.sourcetype)
            + text(&self.index)
            + self.extras.iter().map(|(k, _)| k.len() + 64).sum::<usize>()
    }

    /// Puts the envelope into the event's resource (and `source` when it has none).
    fn apply(&self, event: &mut EventFields) {
        if event.source.is_none()
            && let Some(Value::String(source)) = &self.source
        {
            event.source = Some(source.clone());
        }
        let resource = &mut event.resource;
        if let Some(host) = &self.host
            && resource
                .get("host")
                .and_then(|h| h.get("name"))
                .is_none_or(|nested| nested != host)
        {
            keep(resource, HOST_KEY, host.clone());
        }
        for (key, value) in [
            ("com.splunk.source", &self.source),
            ("com.splunk.sourcetype", &self.sourcetype),
            ("com.splunk.index", &self.index),
            ("com.splunk.time", &self.time),
        ] {
            if let Some(value) = value {
                keep(resource, key, value.clone());
            }
        }
        for (key, value) in self.extras.iter().chain(&self.repeated) {
            keep(resource, &format!("{RESOURCE_PREFIX}{key}"), value.clone());
        }
    }
}

/// Sets `key` when vacant; an equal value is already there; another value goes to
/// `_duplicate.<key>` of the same map.
fn keep(map: &mut Map, key: &str, value: Value) {
    match map.get(key) {
        None => {
            map.insert(key.to_string(), value);
        }
        Some(existing) if *existing == value => {}
        Some(_) => keep_duplicate(map, key.to_string(), value),
    }
}

fn fill(slot: &mut Option<Value>, default: &Option<String>) {
    if slot.is_none()
        && let Some(default) = default
    {
        *slot = Some(Value::String(default.clone()));
    }
}

/// Splunk's indexed fields are flat: a string or an array of strings.
fn is_indexed_field_value(value: &Value) -> bool {
    match value {
        Value::String(_) => true,
        Value::Array(items) => items.iter().all(Value::is_string),
        _ => false,
    }
}

/// An event with no fields yet, received now.
fn plain_event(observed: Timestamp) -> EventFields {
    EventFields {
        event_id: Uuid::now_v7(),
        timestamp: observed,
        observed_timestamp: observed,
        event_type: "unknown".into(),
        severity: Severity::default(),
        source: None,
        summary: None,
        attributes: Map::new().into(),
        resource: Map::new(),
        signature: None,
    }
}

/// HEC's `time`: epoch seconds with an optional fraction, as a number or a string. Decimal text
/// is read exactly (to the nanosecond); integers of 12 digits and more are read as
/// milliseconds, microseconds or nanoseconds by size, as Splunk does.
pub fn epoch_time(value: &Value) -> Option<Timestamp> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(int) => Timestamp::from_epoch_integer(int),
            // serde_json writes a float in its shortest round-trip form: the digits sent.
            None => decimal_seconds(&n.to_string()),
        },
        Value::String(text) => decimal_seconds(text.trim()),
        _ => None,
    }
}

fn decimal_seconds(text: &str) -> Option<Timestamp> {
    let (int, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(fraction) || int.len() > 11 {
        return text
            .parse::<f64>()
            .ok()
            .and_then(Timestamp::from_epoch_number);
    }
    let seconds: i64 = int.parse().ok()?;
    let mut nanos: i64 = 0;
    for i in 0..9 {
        let digit = fraction
            .as_bytes()
            .get(i)
            .map_or(0, |b| i64::from(b - b'0'));
        nanos = nanos * 10 + digit;
    }
    seconds
        .checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(nanos))
        .map(Timestamp)
}

#[cfg(test)]
mod tests;
