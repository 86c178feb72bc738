//! A batch as the plugin receives it: NDJSON in siemrelay's event JSON form.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;

/// One event in siemrelay's JSON form (see the README's "Event JSON form").
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Event {
    /// Unique id (UUID text); SIEMs de-duplicate on it.
    pub event_id: String,
    /// When the event happened: RFC 3339 in UTC (`2026-11-20T09:00:00.123Z`).
    pub timestamp: String,
    /// When siemrelay received it (RFC 3339).
    #[serde(default)]
    pub observed_timestamp: Option<String>,
    /// Kind of event (`policy_violation`, `lockout`, `test_connection` …).
    pub event_type: String,
    /// Severity text as the sender wrote it (`high`, `WARN`) or derived from the number.
    #[serde(default)]
    pub severity: Option<String>,
    /// OpenTelemetry severity number: 0 unspecified, TRACE 1–4, DEBUG 5–8, INFO 9–12,
    /// WARN 13–16, ERROR 17–20, FATAL 21–24.
    #[serde(default)]
    pub severity_number: u8,
    /// The product or system that produced the event.
    #[serde(default)]
    pub source: Option<String>,
    /// Human-readable text.
    #[serde(default)]
    pub summary: Option<String>,
    /// Everything else the sender said.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Attributes of the sender (OpenTelemetry resource).
    #[serde(default)]
    pub resource: Map<String, Value>,
    /// A signature added by siemrelay's `sign` processor.
    #[serde(default)]
    pub signature: Option<Value>,
}

/// A line of a batch that is not an event in the JSON form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// Index of the event (line) in the batch, from 0.
    pub index: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event {}: {}", self.index, self.message)
    }
}

impl std::error::Error for BatchError {}

/// The events of one `deliver` call: NDJSON, one event per line, each line ending in `\n`.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Batch<'a> {
    /// A batch over NDJSON bytes holding `count` events (as siemrelay passes it).
    pub fn new(bytes: &'a [u8], count: usize) -> Batch<'a> {
        Batch { bytes, count }
    }

    /// A batch over NDJSON bytes, counting the lines (for tests).
    pub fn from_ndjson(bytes: &'a [u8]) -> Batch<'a> {
        let count = bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .count();
        Batch { bytes, count }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The raw NDJSON bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Each event's JSON bytes (without the newline), in order.
    pub fn lines(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
    }

    /// Each event parsed, in order.
    pub fn events(&self) -> impl Iterator<Item = Result<Event, BatchError>> + 'a {
        self.lines().enumerate().map(|(index, line)| {
            serde_json::from_slice(line).map_err(|e| BatchError {
                index,
                message: e.to_string(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_event_json_form() {
        let ndjson = concat!(
            r#"{"event_id":"0192","timestamp":"2026-11-20T09:00:00.123Z","observed_timestamp":"2026-11-20T09:00:01Z","event_type":"lockout","severity":"high","severity_number":17,"source":"idp","summary":"locked","attributes":{"user":{"name":"ann"}}}"#,
            "\n",
            r#"{"event_id":"0193","timestamp":"2026-11-20T09:00:00Z","event_type":"t","severity":"unspecified","severity_number":0,"attributes":{}}"#,
            "\n"
        );
        let batch = Batch::from_ndjson(ndjson.as_bytes());
        assert_eq!(batch.len(), 2);
        let events: Vec<Event> = batch.events().collect::<Result<_, _>>().unwrap();
        assert_eq!(events[0].severity_number, 17);
        assert_eq!(events[0].attributes["user"]["name"], "ann");
        assert_eq!(events[1].summary, None);
        assert_eq!(events[1].source, None);
    }

    #[test]
    fn a_bad_line_names_its_index() {
        let batch = Batch::from_ndjson(
            b"{\"event_id\":\"a\",\"timestamp\":\"x\",\"event_type\":\"t\"}\n{oops\n",
        );
        let results: Vec<_> = batch.events().collect();
        assert!(results[0].is_ok());
        assert_eq!(results[1].as_ref().unwrap_err().index, 1);
    }
}
