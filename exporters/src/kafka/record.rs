//! What one event becomes on Kafka: the topic (from a template), the partition key, and the
//! headers that go with the event's JSON form.

use siemrelay_core::path::AttrPath;
use siemrelay_core::{Event, Value};
use std::borrow::Cow;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_LEN: usize = 249;
/// What a template field renders as when the event does not have it.
pub const MISSING_FIELD: &str = "unknown";
/// Header carrying the event id.
pub const HEADER_EVENT_ID: &str = "event_id";
/// Header carrying the event type.
pub const HEADER_EVENT_TYPE: &str = "event_type";

/// An event field a topic template or a partition key can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventField {
    /// `event_id`.
    EventId,
    /// `event_type`.
    EventType,
    /// `source`.
    Source,
    /// `severity` (its text).
    Severity,
    /// A path inside `attributes`.
    Attribute(AttrPath),
}

impl EventField {
    /// Parses `event_type`, `source`, `severity`, `event_id`, `attributes.<path>` or a bare
    /// attribute path.
    pub fn parse(text: &str) -> Result<EventField, String> {
        Ok(match text.trim() {
            "event_id" => EventField::EventId,
            "event_type" => EventField::EventType,
            "source" => EventField::Source,
            "severity" => EventField::Severity,
            other => {
                let path = other.strip_prefix("attributes.").unwrap_or(other);
                EventField::Attribute(AttrPath::parse(path).map_err(|e| e.to_string())?)
            }
        })
    }

    /// The field's value as text, if the event has it (numbers and booleans as JSON text).
    pub fn value<'a>(&self, event: &'a Event) -> Option<Cow<'a, str>> {
        match self {
            EventField::EventId => Some(Cow::Owned(event.event_id.hyphenated().to_string())),
            EventField::EventType => Some(Cow::Borrowed(event.event_type.as_str())),
            EventField::Source => event.source.as_deref().map(Cow::Borrowed),
            EventField::Severity => Some(Cow::Borrowed(event.severity.text.as_str())),
            EventField::Attribute(path) => match path.get(&event.attributes)? {
                Value::String(text) => Some(Cow::Borrowed(text.as_str())),
                Value::Null | Value::Array(_) | Value::Object(_) => None,
                other => Some(Cow::Owned(other.to_string())),
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(EventField),
}

/// A topic name, fixed or made from event fields (`security-{event_type}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicTemplate {
    parts: Vec<Part>,
}

impl TopicTemplate {
    /// Parses a template; literal parts must be valid topic characters.
    pub fn parse(text: &str) -> Result<TopicTemplate, String> {
        if text.trim().is_empty() {
            return Err("must not be empty".into());
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("{text:?}: unclosed {{ in the template"))?;
                    let name = &rest[1..end];
                    let field = match name {
                        "event_id" => {
                            return Err(format!(
                                "{text:?}: {{event_id}} would make a topic per event"
                            ));
                        }
                        "event_type" | "source" | "severity" => EventField::parse(name)?,
                        other if other.starts_with("attributes.") => {
                            EventField::parse(other).map_err(|e| format!("{text:?}: {e}"))?
                        }
                        other => {
                            return Err(format!(
                                "{text:?}: unknown field {{{other}}}; use event_type, source, severity or attributes.<path>"
                            ));
                        }
                    };
                    parts.push(Part::Field(field));
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let literal = &rest[..end];
                    if let Some(bad) = literal.chars().find(|c| !is_topic_char(*c)) {
                        return Err(format!(
                            "{text:?}: {bad:?} is not allowed in a topic name (letters, digits, '.', '_', '-')"
                        ));
                    }
                    parts.push(Part::Literal(literal.to_string()));
                    rest = &rest[end..];
                }
            }
        }
        if let [Part::Literal(name)] = parts.as_slice()
            && (name == "." || name == ".." || name.len() > MAX_TOPIC_LEN)
        {
            return Err(format!(
                "{text:?} is not a valid topic name (at most {MAX_TOPIC_LEN} characters, not . or ..)"
            ));
        }
        Ok(TopicTemplate { parts })
    }

    /// The topic when it does not depend on the event.
    pub fn fixed(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Literal(name)] => Some(name),
            _ => None,
        }
    }

    /// The topic for `event`: fields filled in (`unknown` when missing), characters Kafka does
    /// not allow replaced by `_`, cut to 249 characters.
    pub fn render(&self, event: &Event) -> String {
        let mut topic = String::with_capacity(64);
        for part in &self.parts {
            match part {
                Part::Literal(text) => topic.push_str(text),
                Part::Field(field) => {
                    let value = field.value(event);
                    let value = value
                        .as_deref()
                        .filter(|v| !v.is_empty())
                        .unwrap_or(MISSING_FIELD);
                    topic.extend(
                        value
                            .chars()
                            .map(|c| if is_topic_char(c) { c } else { '_' }),
                    );
                }
            }
        }
        if topic.len() > MAX_TOPIC_LEN {
            topic.truncate(MAX_TOPIC_LEN);
        }
        if topic == "." || topic == ".." {
            topic = MISSING_FIELD.to_string();
        }
        topic
    }
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Which field becomes the message key (Kafka's partitioner hashes it, so events with the same
/// key stay in order on one partition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionKey {
    /// No key: the producer spreads events over partitions.
    None,
    /// This field; events without it use their `event_id`.
    Field(EventField),
}

impl PartitionKey {
    /// Parses `event_id`, `source`, `event_type`, `severity`, `none` or an attribute path.
    pub fn parse(text: &str) -> Result<PartitionKey, String> {
        match text.trim() {
            "none" => Ok(PartitionKey::None),
            "" => Err(
                "must not be empty; use event_id, source, event_type, none or an attribute path"
                    .into(),
            ),
            other => EventField::parse(other).map(PartitionKey::Field),
        }
    }

    /// Appends the key of `event` to `out`; false when the message has no key.
    pub fn write(&self, event: &Event, out: &mut Vec<u8>) -> bool {
        match self {
            PartitionKey::None => false,
            PartitionKey::Field(EventField::EventId) => {
                write_event_id(event, out);
                true
            }
            PartitionKey::Field(field) => {
                match field.value(event) {
                    Some(value) if !value.is_empty() => out.extend_from_slice(value.as_bytes()),
                    _ => write_event_id(event, out),
                }
                true
            }
        }
    }
}

/// Appends the hyphenated lowercase event id.
pub fn write_event_id(event: &Event, out: &mut Vec<u8>) {
    let mut buf = uuid::Uuid::encode_buffer();
    out.extend_from_slice(
        event
            .event_id
            .hyphenated()
            .encode_lower(&mut buf)
            .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Event {
        let mut event = Event::new("policy violation");
        event.source = Some("toktra".into());
        let serde_json::Value::Object(attributes) =
            json!({"user": {"email": "u@x.example", "id": 42}, "empty": ""})
        else {
            unreachable!()
        };
        *event.attributes = attributes;
        event
    }

    #[test]
    fn templates_render_fields_and_sanitize() {
        let template = TopicTemplate::parse("security-{event_type}").unwrap();
        assert_eq!(template.fixed(), None);
        assert_eq!(template.render(&event()), "security-policy_violation");
        let template =
            TopicTemplate::parse("sec.{source}.{attributes.user.id}.{attributes.nope}").unwrap();
        assert_eq!(template.render(&event()), "sec.toktra.42.unknown");
        let fixed = TopicTemplate::parse("security-events").unwrap();
        assert_eq!(fixed.fixed(), Some("security-events"));
        let long = TopicTemplate::parse("{event_type}").unwrap();
        let mut e = event();
        e.event_type = "x".repeat(400);
        assert_eq!(long.render(&e).len(), MAX_TOPIC_LEN);
    }

    #[test]
    fn bad_templates_say_why() {
        for (text, needle) in [
            ("", "empty"),
            ("security events", "not allowed"),
            ("security-{event_type", "unclosed"),
            ("security-{user}", "unknown field"),
            ("security-{event_id}", "per event"),
            ("..", "not a valid topic"),
        ] {
            let error = TopicTemplate::parse(text).unwrap_err();
            assert!(error.contains(needle), "{text:?}: {error}");
        }
    }

    #[test]
    fn keys_use_the_field_or_fall_back_to_the_event_id() {
        let e = event();
        let mut out = Vec::new();
        assert!(PartitionKey::parse("event_id").unwrap().write(&e, &mut out));
        assert_eq!(out, e.event_id.to_string().into_bytes());
        out.clear();
        assert!(
            PartitionKey::parse("attributes.user.email")
                .unwrap()
                .write(&e, &mut out)
        );
        assert_eq!(out, b"u@x.example");
        out.clear();
        assert!(PartitionKey::parse("user.id").unwrap().write(&e, &mut out));
        assert_eq!(out, b"42");
        out.clear();
        assert!(PartitionKey::parse("empty").unwrap().write(&e, &mut out));
        assert_eq!(out, e.event_id.to_string().into_bytes());
        out.clear();
        assert!(!PartitionKey::parse("none").unwrap().write(&e, &mut out));
        assert!(PartitionKey::parse("attributes.").is_err());
    }
}
