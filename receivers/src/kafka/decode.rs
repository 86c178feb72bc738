//! Kafka messages to events. A message holding one JSON object (siemrelay's JSON form, or a
//! foreign producer's object through `mapping`) becomes that event; anything else becomes a
//! `malformed_message` event carrying the raw payload in `summary` and the reason in the
//! `parse_error` attribute, so a bad message never blocks its partition.
//!
//! Events whose message gave no `event_id` get one derived from the message's place
//! (topic, partition, offset), so a redelivered message keeps its id and SIEMs can de-duplicate.

use siemrelay_core::ingest::{IngestOptions, event_from_object, json_type_name};
use siemrelay_core::{Event, Map, Severity, Timestamp, Value};
use uuid::Uuid;

/// Event type of a message that is not a JSON object.
pub const MALFORMED_EVENT_TYPE: &str = "malformed_message";
/// Attribute holding why a message could not be parsed.
pub const PARSE_ERROR_KEY: &str = "parse_error";
/// Attribute holding where a malformed message came from (`topic`, `partition`, `offset`).
pub const ORIGIN_KEY: &str = "kafka";
/// Longest raw payload kept in a malformed event's `summary` (longer ones are cut, noted).
pub const MAX_RAW_SUMMARY: usize = 64 * 1024;

/// Namespace of the UUIDv5 ids derived from a message's topic, partition and offset.
const MESSAGE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d1e_2a8f_4b3c_5d7e_8f90_a1b2_c3d4_e5f6);

/// Where a message sits in Kafka.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

impl Origin<'_> {
    /// A stable id for the message at this place.
    pub fn event_id(&self) -> Uuid {
        let name = format!("{}/{}/{}", self.topic, self.partition, self.offset);
        Uuid::new_v5(&MESSAGE_ID_NAMESPACE, name.as_bytes())
    }
}

/// One decoded message.
#[derive(Debug)]
pub struct Decoded {
    /// The event.
    pub event: Event,
    /// True when the message was not a JSON object (the event carries `parse_error`).
    pub malformed: bool,
    /// Fields that did not fit their well-known slot (kept under attributes).
    pub mapping_errors: usize,
}

/// Turns one message payload into an event; never fails.
pub fn decode(
    payload: Option<&[u8]>,
    origin: Origin<'_>,
    options: &IngestOptions,
    observed: Timestamp,
) -> Decoded {
    let Some(payload) = payload.filter(|p| !p.is_empty()) else {
        return malformed(b"", "the message has no payload".into(), origin, observed);
    };
    let object: Map = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(object)) => object,
        Ok(other) => {
            let reason = format!(
                "the message is {}, expected a JSON object",
                json_type_name(&other)
            );
            return malformed(payload, reason, origin, observed);
        }
        Err(e) => {
            let reason = format!(
                "malformed JSON at line {}, column {}: {e}",
                e.line(),
                e.column()
            );
            return malformed(payload, reason, origin, observed);
        }
    };
    let has_id = options.mapping.event_id.is_some() || object.contains_key("event_id");
    match event_from_object(object, options, observed) {
        Ok(mut ingested) => {
            if !has_id {
                ingested.event.event_id = origin.event_id();
            }
            Decoded {
                event: ingested.event,
                malformed: false,
                mapping_errors: ingested.mapping_errors,
            }
        }
        // Only strict ingest fails, and the receiver never ingests strictly; kept total anyway.
        Err(e) => malformed(payload, e.to_string(), origin, observed),
    }
}

fn malformed(payload: &[u8], reason: String, origin: Origin<'_>, observed: Timestamp) -> Decoded {
    let mut event = Event::new(MALFORMED_EVENT_TYPE);
    event.event_id = origin.event_id();
    event.timestamp = observed;
    event.observed_timestamp = observed;
    event.severity = Severity::from_name("warn").unwrap_or_default();
    event.source = Some("kafka".into());
    let cut = payload.len() > MAX_RAW_SUMMARY;
    let raw = String::from_utf8_lossy(&payload[..payload.len().min(MAX_RAW_SUMMARY)]).into_owned();
    event.summary = Some(raw);
    event
        .attributes
        .insert(PARSE_ERROR_KEY.into(), Value::String(reason));
    let mut place = Map::new();
    place.insert("topic".into(), Value::String(origin.topic.to_string()));
    place.insert("partition".into(), Value::from(origin.partition));
    place.insert("offset".into(), Value::from(origin.offset));
    place.insert("payload_bytes".into(), Value::from(payload.len()));
    if cut {
        place.insert("summary_truncated".into(), Value::Bool(true));
    }
    event
        .attributes
        .insert(ORIGIN_KEY.into(), Value::Object(place));
    Decoded {
        event,
        malformed: true,
        mapping_errors: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        topic: "security-events",
        partition: 3,
        offset: 42,
    };

    fn run(payload: &[u8]) -> Decoded {
        decode(
            Some(payload),
            ORIGIN,
            &IngestOptions::default(),
            Timestamp(7),
        )
    }

    #[test]
    fn our_json_form_round_trips_with_its_signature() {
        let mut event = Event::new("policy_violation");
        event.summary = Some("s".into());
        event.signature = Some(Box::new(siemrelay_core::Signature {
            alg: "HMAC-SHA256".into(),
            kid: "k1".into(),
            value: "ab".repeat(32).into(),
            prev: None,
        }));
        event.attributes.insert("user".into(), Value::from("u@x"));
        let decoded = run(&event.to_json_bytes());
        assert!(!decoded.malformed);
        assert_eq!(decoded.mapping_errors, 0);
        assert_eq!(decoded.event, event);
    }

    #[test]
    fn malformed_messages_become_parse_error_events_with_stable_ids() {
        for (payload, needle) in [
            (&b"{not json"[..], "malformed JSON"),
            (b"[1,2]", "an array"),
            (b"\xff\xfe binary", "malformed JSON"),
            (b"", "no payload"),
        ] {
            let decoded = run(payload);
            assert!(decoded.malformed, "{payload:?}");
            let e = &decoded.event;
            assert_eq!(e.event_type, MALFORMED_EVENT_TYPE);
            let reason = e.attributes[PARSE_ERROR_KEY].as_str().unwrap();
            assert!(reason.contains(needle), "{reason}");
            assert_eq!(
                e.summary.as_deref(),
                Some(String::from_utf8_lossy(payload).as_ref())
            );
            assert_eq!(e.attributes[ORIGIN_KEY]["offset"], Value::from(42));
            assert_eq!(e.event_id, run(payload).event.event_id, "id must be stable");
        }
        assert_ne!(
            run(b"x").event.event_id,
            decode(
                Some(b"x"),
                Origin {
                    offset: 43,
                    ..ORIGIN
                },
                &IngestOptions::default(),
                Timestamp(7)
            )
            .event
            .event_id
        );
        let none = decode(None, ORIGIN, &IngestOptions::default(), Timestamp(7));
        assert!(none.malformed);
    }

    #[test]
    fn foreign_objects_are_ingested_and_get_a_stable_id() {
        let decoded = run(br#"{"type":"login","user":"bob"}"#);
        assert!(!decoded.malformed);
        assert_eq!(decoded.event.event_id, ORIGIN.event_id());
        assert_eq!(decoded.event.attributes["user"], Value::from("bob"));
        let huge = vec![b'x'; MAX_RAW_SUMMARY + 10];
        let decoded = run(&huge);
        assert_eq!(
            decoded.event.summary.as_ref().unwrap().len(),
            MAX_RAW_SUMMARY
        );
        assert_eq!(
            decoded.event.attributes[ORIGIN_KEY]["summary_truncated"],
            Value::Bool(true)
        );
    }
}
