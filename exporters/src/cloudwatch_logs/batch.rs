//! Cutting events into `PutLogEvents` requests that obey CloudWatch Logs' batch rules, and the
//! log stream template.

use crate::delivery::Schema;
use siemrelay_core::{Event, Value};
use std::collections::HashMap;

/// Most log events in one `PutLogEvents` request.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Most bytes in one request, counted as Σ(UTF-8 message bytes + 26).
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Bytes CloudWatch Logs adds to each message when counting a batch.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Longest span from the first to the last event of one request (24 h), exclusive.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000;
/// Longest log stream name.
const MAX_STREAM_NAME: usize = 512;

/// One part of a log stream template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Host,
    Source,
    EventType,
}

/// A parsed `log_stream` template: literal text and `{host}`, `{source}`, `{event_type}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamTemplate {
    parts: Vec<Part>,
}

/// Why a `log_stream` template is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{name}` that is not a known placeholder.
    #[error("unknown placeholder {{{0}}}; use {{host}}, {{source}} or {{event_type}}")]
    UnknownPlaceholder(String),
    /// A `{` without its `}`.
    #[error("unclosed {{ in {0:?}")]
    Unclosed(String),
    /// Literal text with `:` or `*`, which stream names may not contain.
    #[error("{0:?} contains ':' or '*', which log stream names may not contain")]
    BadCharacter(String),
    /// Empty template, or literal text longer than a stream name may be.
    #[error("must be 1 to 512 characters long")]
    BadLength,
}

impl StreamTemplate {
    /// Parses a template.
    pub fn parse(text: &str) -> Result<StreamTemplate, TemplateError> {
        if text.is_empty() || text.len() > MAX_STREAM_NAME {
            return Err(TemplateError::BadLength);
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(text.to_string()))?;
            parts.push(match &after[..close] {
                "host" => Part::Host,
                "source" => Part::Source,
                "event_type" => Part::EventType,
                other => return Err(TemplateError::UnknownPlaceholder(other.to_string())),
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        for part in &parts {
            if let Part::Literal(literal) = part
                && literal.contains([':', '*'])
            {
                return Err(TemplateError::BadCharacter(literal.clone()));
            }
        }
        Ok(StreamTemplate { parts })
    }

    /// The stream name for one event. Missing values read `unknown`; `:` and `*` from event
    /// values become `_`; the name is cut to 512 bytes.
    pub fn render(&self, event: &Event) -> String {
        let mut name = String::with_capacity(64);
        for part in &self.parts {
            match part {
                Part::Literal(text) => name.push_str(text),
                Part::Host => push_value(&mut name, host_of(event)),
                Part::Source => push_value(&mut name, event.source.as_deref()),
                Part::EventType => push_value(&mut name, Some(&event.event_type)),
            }
        }
        if name.len() > MAX_STREAM_NAME {
            let mut cut = MAX_STREAM_NAME;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
        }
        name
    }
}

/// The event's host: resource `host.name`, else attribute `host.name`, `host` or `hostname`.
fn host_of(event: &Event) -> Option<&str> {
    event
        .resource
        .get("host.name")
        .or_else(|| event.attributes.get("host.name"))
        .or_else(|| event.attributes.get("host"))
        .or_else(|| event.attributes.get("hostname"))
        .and_then(Value::as_str)
}

fn push_value(name: &mut String, value: Option<&str>) {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => name.extend(value.chars().map(|c| match c {
            ':' | '*' => '_',
            c => c,
        })),
        None => name.push_str("unknown"),
    }
}

/// One `PutLogEvents` request: a stream, the events (indices into the input, in time order) and
/// the body.
#[derive(Clone, Debug, PartialEq)]
pub struct PutBatch {
    /// The log stream.
    pub stream: String,
    /// Event indices in body order (sorted by timestamp).
    pub indices: Vec<usize>,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// The requests for a slice of events, and the events that cannot be sent at all.
#[derive(Debug, Default)]
pub struct Plan {
    /// Requests, each within the batch rules.
    pub batches: Vec<PutBatch>,
    /// Events too large for any request, with why.
    pub rejected: Vec<(usize, String)>,
}

/// Groups `events` by stream, sorts each group by time and cuts it into requests within the
/// batch rules. Each event is encoded once.
pub fn plan(events: &[Event], group: &str, template: &StreamTemplate, schema: Schema) -> Plan {
    let mut out = Plan::default();
    let mut messages: Vec<Option<String>> = Vec::with_capacity(events.len());
    // Streams in first-seen order, each with its (timestamp ms, index) list.
    let mut streams: Vec<(String, Vec<(i64, usize)>)> = Vec::new();
    let mut stream_index: HashMap<String, usize> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        let mut json = Vec::with_capacity(512);
        schema.write_event(event, &mut json);
        let message = String::from_utf8(json).unwrap_or_default();
        if message.len() + EVENT_OVERHEAD_BYTES > MAX_BATCH_BYTES {
            out.rejected.push((
                index,
                format!(
                    "event is {} bytes as a CloudWatch Logs message; PutLogEvents takes at most {} bytes per event",
                    message.len(),
                    MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES
                ),
            ));
            messages.push(None);
            continue;
        }
        messages.push(Some(message));
        let stream = template.render(event);
        let millis = event.timestamp.as_epoch_millis();
        match stream_index.get(&stream) {
            Some(&slot) => streams[slot].1.push((millis, index)),
            None => {
                stream_index.insert(stream.clone(), streams.len());
                streams.push((stream, vec![(millis, index)]));
            }
        }
    }
    for (stream, mut list) in streams {
        list.sort_by_key(|(millis, _)| *millis);
        let mut current: Vec<(i64, usize)> = Vec::new();
        let mut bytes = 0usize;
        for (millis, index) in list {
            let size = messages[index].as_ref().map_or(0, String::len) + EVENT_OVERHEAD_BYTES;
            let full = current.len() >= MAX_BATCH_EVENTS
                || bytes + size > MAX_BATCH_BYTES
                || current
                    .first()
                    .is_some_and(|(first, _)| millis - first >= MAX_BATCH_SPAN_MS);
            if full && !current.is_empty() {
                out.batches.push(encode(
                    group,
                    &stream,
                    &std::mem::take(&mut current),
                    &messages,
                ));
                bytes = 0;
            }
            current.push((millis, index));
            bytes += size;
        }
        if !current.is_empty() {
            out.batches
                .push(encode(group, &stream, &current, &messages));
        }
    }
    out
}

/// `{"logGroupName":…,"logStreamName":…,"logEvents":[{"timestamp":…,"message":…},…]}`.
fn encode(
    group: &str,
    stream: &str,
    items: &[(i64, usize)],
    messages: &[Option<String>],
) -> PutBatch {
    let payload: usize = items
        .iter()
        .map(|(_, i)| messages[*i].as_ref().map_or(0, String::len) + 40)
        .sum();
    let mut body = Vec::with_capacity(payload + group.len() + stream.len() + 64);
    body.extend_from_slice(b"{\"logGroupName\":");
    write_json_string(&mut body, group);
    body.extend_from_slice(b",\"logStreamName\":");
    write_json_string(&mut body, stream);
    body.extend_from_slice(b",\"logEvents\":[");
    for (position, (millis, index)) in items.iter().enumerate() {
        if position > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"timestamp\":");
        body.extend_from_slice(millis.to_string().as_bytes());
        body.extend_from_slice(b",\"message\":");
        write_json_string(&mut body, messages[*index].as_deref().unwrap_or(""));
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    PutBatch {
        stream: stream.to_string(),
        indices: items.iter().map(|(_, i)| *i).collect(),
        body,
    }
}

fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemrelay_core::Timestamp;

    fn event_at(millis: i64, host: &str) -> Event {
        let mut event = Event::new("lockout");
        event.timestamp = Timestamp(millis * 1_000_000);
        event.resource.insert("host.name".into(), host.into());
        event
    }

    #[test]
    fn templates_parse_and_render() {
        let t = StreamTemplate::parse("edr-{host}/{event_type}").unwrap();
        let mut e = event_at(0, "sensor:1*");
        assert_eq!(t.render(&e), "edr-sensor_1_/lockout");
        e.resource.clear();
        assert_eq!(t.render(&e), "edr-unknown/lockout");
        assert_eq!(
            StreamTemplate::parse("{src}").unwrap_err(),
            TemplateError::UnknownPlaceholder("src".into())
        );
        assert!(matches!(
            StreamTemplate::parse("a{host"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            StreamTemplate::parse("a:b"),
            Err(TemplateError::BadCharacter(_))
        ));
        assert_eq!(StreamTemplate::parse(""), Err(TemplateError::BadLength));
        let literal = StreamTemplate::parse("fixed").unwrap();
        assert_eq!(literal.render(&e), "fixed");
        e.source = Some("é".repeat(300));
        let long = StreamTemplate::parse("{source}").unwrap().render(&e);
        assert!(long.len() <= 512 && long.len() >= 510);
    }

    #[test]
    fn batches_are_per_stream_sorted_and_split_by_span_count_and_size() {
        let hour = 3_600_000;
        let base = 1_700_000_000_000;
        // Out of order, two hosts, over 50 hours.
        let events: Vec<Event> = (0..100)
            .map(|i| event_at(base + ((i * 37) % 100) as i64 * hour / 2, ["a", "b"][i % 2]))
            .collect();
        let template = StreamTemplate::parse("{host}").unwrap();
        let plan = plan(&events, "/g", &template, Schema::Native);
        assert!(plan.rejected.is_empty());
        let mut seen: Vec<usize> = Vec::new();
        for batch in &plan.batches {
            let body: serde_json::Value = serde_json::from_slice(&batch.body).unwrap();
            assert_eq!(body["logGroupName"], "/g");
            assert_eq!(body["logStreamName"], batch.stream.as_str());
            let stamps: Vec<i64> = body["logEvents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["timestamp"].as_i64().unwrap())
                .collect();
            assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
            assert!(stamps.last().unwrap() - stamps[0] < MAX_BATCH_SPAN_MS);
            for (position, index) in batch.indices.iter().enumerate() {
                let event = &events[*index];
                assert_eq!(stamps[position], event.timestamp.as_epoch_millis());
                let message = body["logEvents"][position]["message"].as_str().unwrap();
                let parsed: serde_json::Value = serde_json::from_str(message).unwrap();
                assert_eq!(parsed, event.to_json_value());
                assert_eq!(template.render(event), batch.stream);
            }
            seen.extend(&batch.indices);
        }
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        // 50 h per host → at least three 24 h windows each.
        assert!(plan.batches.len() >= 6, "{}", plan.batches.len());
    }

    #[test]
    fn byte_and_count_limits_hold_and_oversize_events_are_rejected() {
        let mut events: Vec<Event> = (0..12_000)
            .map(|i| event_at(1_700_000_000_000 + i, "h"))
            .collect();
        events[5].summary = Some("x".repeat(MAX_BATCH_BYTES));
        for e in events.iter_mut().skip(100).take(5) {
            e.summary = Some("y".repeat(400_000));
        }
        let plan = plan(
            &events,
            "g",
            &StreamTemplate::parse("s").unwrap(),
            Schema::Native,
        );
        assert_eq!(plan.rejected.len(), 1);
        assert_eq!(plan.rejected[0].0, 5);
        assert!(plan.rejected[0].1.contains("at most 1048550 bytes"));
        let mut total = 0;
        for batch in &plan.batches {
            assert!(batch.indices.len() <= MAX_BATCH_EVENTS);
            let bytes: usize = batch
                .indices
                .iter()
                .map(|i| events[*i].to_json_bytes().len() + EVENT_OVERHEAD_BYTES)
                .sum();
            assert!(bytes <= MAX_BATCH_BYTES, "{bytes}");
            total += batch.indices.len();
        }
        assert_eq!(total, 11_999);
    }
}
