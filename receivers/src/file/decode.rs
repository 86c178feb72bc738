//! Turning lines into events: JSON objects through `core::ingest`, text lines into `summary`,
//! anything that cannot be parsed (or was cut) into an event with a `parse_error` attribute.

use super::batch::{LineRef, PendingBatch};
use siemrelay_core::ingest::{
    BodyErrorKind, IngestOptions, Limits, event_from_object, insert_stamp, parse_object,
};
use siemrelay_core::{Event, EventFields, Map, Severity, Timestamp, Value};
use uuid::Uuid;

/// Attribute holding the path of the file a line was read from.
pub const PATH_ATTRIBUTE: &str = "log.file.path";
/// Attribute holding the byte offset of the line's start in its file.
pub const OFFSET_ATTRIBUTE: &str = "log.file.offset";
/// Attribute explaining why a line could not be parsed (or was cut).
pub const PARSE_ERROR_ATTRIBUTE: &str = "parse_error";

/// How lines are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFormat {
    /// One JSON object per line.
    Json,
    /// Any text; each line becomes an event's `summary`.
    Text,
}

/// Events made from one batch of lines.
#[derive(Debug)]
pub struct Decoded {
    /// One event per line, in order.
    pub events: Vec<Event>,
    /// How many of them carry a `parse_error`.
    pub parse_errors: usize,
}

/// Turns lines into events.
#[derive(Clone, Debug)]
pub struct LineDecoder {
    /// Line format.
    pub format: LineFormat,
    /// Field mapping for JSON lines (never strict).
    pub ingest: IngestOptions,
    /// `event_type` of text lines and of lines that could not be parsed.
    pub event_type: String,
    /// `source` given to events that have none.
    pub source: Option<String>,
}

impl LineDecoder {
    /// One event per line of the batch.
    pub fn decode(&self, batch: &PendingBatch) -> Decoded {
        let observed = Timestamp::now();
        let mut events = Vec::with_capacity(batch.len());
        let mut parse_errors = 0;
        for (bytes, line) in batch.lines() {
            let (mut event, error) = match (line.cut_from, self.format) {
                (Some(full_len), _) => {
                    let reason = format!(
                        "line is {full_len} bytes, longer than max_line_size; only its first {} bytes are kept",
                        bytes.len()
                    );
                    (self.raw_event(bytes, observed), Some(reason))
                }
                (None, LineFormat::Text) => (self.raw_event(bytes, observed), None),
                (None, LineFormat::Json) => match self.json_event(bytes, observed) {
                    Ok(event) => (event, None),
                    Err(reason) => (self.raw_event(bytes, observed), Some(reason)),
                },
            };
            if let Some(reason) = error {
                parse_errors += 1;
                insert_attribute(
                    &mut event.attributes,
                    PARSE_ERROR_ATTRIBUTE,
                    Value::String(reason),
                );
            }
            if event.source.is_none() {
                event.source.clone_from(&self.source);
            }
            add_file_attributes(&mut event.attributes, batch.path(line), line);
            events.push(event);
        }
        Decoded {
            events,
            parse_errors,
        }
    }

    fn json_event(&self, bytes: &[u8], observed: Timestamp) -> Result<Event, String> {
        // Repeated keys lose nothing and integers wider than 64 bits are refused, as for
        // every receiver; a line is bounded by max_line_size, so no other limit applies.
        match parse_object(bytes, &Limits::unlimited()) {
            Ok(object) => event_from_object(object, &self.ingest, observed)
                .map(|ingested| ingested.event)
                .map_err(|e| e.to_string()),
            Err(e) => match e.kind {
                // The line is known: keep the column.
                BodyErrorKind::Malformed { column, reason, .. } => {
                    Err(format!("invalid JSON at column {column}: {reason}"))
                }
                _ => Err(e.message),
            },
        }
    }

    /// An event whose summary is the line itself.
    fn raw_event(&self, bytes: &[u8], observed: Timestamp) -> Event {
        Event::from(EventFields {
            event_id: Uuid::now_v7(),
            timestamp: observed,
            observed_timestamp: observed,
            event_type: self.event_type.clone(),
            severity: Severity::default(),
            source: None,
            summary: Some(String::from_utf8_lossy(bytes).into_owned()),
            attributes: Map::new().into(),
            resource: Map::new(),
            signature: None,
        })
    }
}

fn add_file_attributes(attributes: &mut Map, path: &str, line: &LineRef) {
    insert_attribute(attributes, PATH_ATTRIBUTE, Value::String(path.to_string()));
    insert_attribute(attributes, OFFSET_ATTRIBUTE, Value::from(line.offset));
}

/// Sets a receiver attribute; a value the line itself had under that key is kept under
/// `attributes._duplicate.<key>` (as `core::ingest` does for every clash), so nothing is lost.
fn insert_attribute(attributes: &mut Map, key: &str, value: Value) {
    insert_stamp(attributes, key, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;
    use serde_json::json;

    fn decoder(format: LineFormat) -> LineDecoder {
        LineDecoder {
            format,
            ingest: IngestOptions::default(),
            event_type: "file.line".into(),
            source: Some("gateway".into()),
        }
    }

    fn batch(lines: &[&[u8]]) -> PendingBatch {
        let mut batch = PendingBatch::default();
        let mut offset = 0;
        for line in lines {
            batch.push_line("/logs/a.log", line, offset);
            offset += line.len() as u64 + 1;
        }
        batch
    }

    #[test]
    fn json_lines_become_events_and_bad_lines_carry_parse_error() {
        let lines: [&[u8]; 3] = [
            br#"{"event_type":"login","source":"idp","user":"ann","log.file.path":"mine"}"#,
            b"{not json",
            b"[1,2]",
        ];
        let decoded = decoder(LineFormat::Json).decode(&batch(&lines));
        assert_eq!(decoded.parse_errors, 2);
        let [good, bad, array] = &decoded.events[..] else {
            panic!("expected 3 events")
        };
        assert_eq!(good.event_type, "login");
        assert_eq!(good.source.as_deref(), Some("idp"));
        assert_eq!(good.attributes["user"], json!("ann"));
        assert_eq!(
            good.attributes["_duplicate"]["log.file.path"],
            json!(["mine"])
        );
        assert_eq!(good.attributes[OFFSET_ATTRIBUTE], json!(0));
        assert_eq!(bad.summary.as_deref(), Some("{not json"));
        assert_eq!(bad.event_type, "file.line");
        assert_eq!(bad.source.as_deref(), Some("gateway"));
        assert_eq!(
            bad.attributes[PARSE_ERROR_ATTRIBUTE],
            json!("invalid JSON at column 2: key must be a string")
        );
        assert_eq!(bad.attributes[OFFSET_ATTRIBUTE], json!(lines[0].len() + 1));
        assert!(
            array.attributes[PARSE_ERROR_ATTRIBUTE]
                .as_str()
                .unwrap()
                .contains("an array")
        );
    }

    #[test]
    fn text_lines_and_cut_lines() {
        let mut lines = batch(&[b"plain \xff text"]);
        lines.push_cut("/logs/a.log", b"abcd", 20, 5000);
        let decoded = decoder(LineFormat::Text).decode(&lines);
        assert_eq!(decoded.parse_errors, 1);
        assert_eq!(
            decoded.events[0].summary.as_deref(),
            Some("plain \u{fffd} text")
        );
        assert_eq!(decoded.events[0].event_type, "file.line");
        assert!(
            !decoded.events[0]
                .attributes
                .contains_key(PARSE_ERROR_ATTRIBUTE)
        );
        let cut = &decoded.events[1];
        assert_eq!(cut.summary.as_deref(), Some("abcd"));
        assert!(
            cut.attributes[PARSE_ERROR_ATTRIBUTE]
                .as_str()
                .unwrap()
                .contains("5000 bytes")
        );
    }

    proptest::proptest! {
        /// Adversarial lines (§6 of issue 20): random bytes, JSON token soup, deep nesting,
        /// repeated keys, wide integers, hostile file names. Never a panic, one event per line,
        /// and a line that is not a clean JSON object is kept whole with a `parse_error`.
        #[test]
        fn any_line_becomes_exactly_one_event(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..120),
                    proptest::collection::vec(
                        proptest::sample::select(vec![
                            "{", "}", "[", "]", ",", ":", "\"event_id\"", "\"user\"", "\"x\"", "1",
                            "123456789012345678901234", "\"\\ud800\"", "null", " ", "\u{1b}[31m",
                        ]),
                        0..40,
                    )
                    .prop_map(|tokens| tokens.concat().into_bytes()),
                    (0usize..200).prop_map(|depth| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes()),
                ],
                1..20,
            ),
            path in "[a-z/\\n\\u{1b}.]{1,24}",
            json in proptest::arbitrary::any::<bool>(),
        ) {
            use proptest::prelude::*;
            let mut batch = PendingBatch::default();
            let mut offset = 0;
            for line in &lines {
                batch.push_line(&path, line, offset);
                offset += line.len() as u64 + 1;
            }
            let format = if json { LineFormat::Json } else { LineFormat::Text };
            let mut decoder = decoder(format);
            decoder.ingest = IngestOptions::for_receiver("file/prop", Default::default(), false);
            let decoded = decoder.decode(&batch);
            prop_assert_eq!(decoded.events.len(), lines.len());
            for (event, line) in decoded.events.iter().zip(&lines) {
                prop_assert_eq!(&event.attributes[PATH_ATTRIBUTE], &json!(path));
                if event.attributes.contains_key(PARSE_ERROR_ATTRIBUTE) {
                    // Kept whole, as text.
                    let text = String::from_utf8_lossy(line);
                    prop_assert_eq!(event.summary.as_deref(), Some(text.as_ref()));
                }
            }
        }
    }
}
