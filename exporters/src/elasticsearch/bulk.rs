//! Bulk API bodies (`create` action line + document line per event) and per-item reply results.

use crate::delivery::{Outcome, Schema};
use serde::Deserialize;
use serde::ser::{Serialize, SerializeMap, Serializer};
use siemrelay_core::Event;

/// Appends `{"create":{"_index":<index>,"_id":<event_id>}}\n<document>\n` to `out`.
pub fn write_create(
    event: &Event,
    index: &str,
    schema: Schema,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut id_buf = uuid::Uuid::encode_buffer();
    let id = event.event_id.hyphenated().encode_lower(&mut id_buf);
    out.extend_from_slice(b"{\"create\":{\"_index\":");
    serde_json::to_writer(&mut *out, index).map_err(|e| e.to_string())?;
    out.extend_from_slice(b",\"_id\":\"");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\"}}\n");
    match schema {
        Schema::Native => serde_json::to_writer(&mut *out, &Document(event)),
        _ => serde_json::to_writer(&mut *out, &ShapedDocument(event, schema)),
    }
    .map_err(|e| format!("cannot encode the event as a document: {e}"))?;
    out.push(b'\n');
    Ok(())
}

/// The document of an event: its JSON form with `timestamp` written as `@timestamp`.
pub struct Document<'a>(pub &'a Event);

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("@timestamp", &e.timestamp.to_rfc3339())?;
        let mut id_buf = uuid::Uuid::encode_buffer();
        map.serialize_entry(
            "event_id",
            e.event_id.hyphenated().encode_lower(&mut id_buf),
        )?;
        map.serialize_entry("observed_timestamp", &e.observed_timestamp.to_rfc3339())?;
        map.serialize_entry("event_type", &e.event_type)?;
        map.serialize_entry("severity", &e.severity.text)?;
        map.serialize_entry("severity_number", &e.severity.number)?;
        if let Some(source) = &e.source {
            map.serialize_entry("source", source)?;
        }
        if let Some(summary) = &e.summary {
            map.serialize_entry("summary", summary)?;
        }
        map.serialize_entry("attributes", &e.attributes)?;
        if !e.resource.is_empty() {
            map.serialize_entry("resource", &e.resource)?;
        }
        if let Some(signature) = &e.signature {
            map.serialize_entry("signature", signature)?;
        }
        map.end()
    }
}

/// The document of an event in a `schema` other than `native`: the shaped event, with
/// `@timestamp` first when the shape has none (`flat`, `ocsf`).
pub struct ShapedDocument<'a>(pub &'a Event, pub Schema);

impl Serialize for ShapedDocument<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.1 != Schema::Ecs {
            map.serialize_entry("@timestamp", &self.0.timestamp.to_rfc3339())?;
        }
        self.1.write_members(self.0, &mut map, &[])?;
        map.end()
    }
}

/// The top of a bulk reply, read first so an error-free reply is not parsed item by item.
#[derive(Deserialize)]
pub struct BulkHead {
    /// True when at least one item failed.
    pub errors: bool,
}

/// A bulk reply with its items.
#[derive(Deserialize)]
pub struct BulkReply {
    /// One result per action, in request order.
    #[serde(default)]
    pub items: Vec<BulkItem>,
}

/// One item of a bulk reply, keyed by its action.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkItem {
    /// Result of a `create`.
    Create(ItemResult),
    /// Result of an `index`.
    Index(ItemResult),
    /// Result of an `update`.
    Update(ItemResult),
    /// Result of a `delete`.
    Delete(ItemResult),
}

impl BulkItem {
    /// The result, whatever the action.
    pub fn result(&self) -> &ItemResult {
        match self {
            BulkItem::Create(r)
            | BulkItem::Index(r)
            | BulkItem::Update(r)
            | BulkItem::Delete(r) => r,
        }
    }
}

/// Status and error of one item.
#[derive(Deserialize)]
pub struct ItemResult {
    /// HTTP-like status of the item.
    pub status: u16,
    /// The error, when it failed.
    pub error: Option<ItemError>,
}

/// An item's error.
#[derive(Deserialize)]
pub struct ItemError {
    /// e.g. `mapper_parsing_exception`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Human-readable reason.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The outcome of one item: 2xx and 409 (the `_id` already exists: a retried event) are
/// delivered, 429 and 5xx retried, everything else permanent.
pub fn item_outcome(item: &ItemResult) -> Outcome {
    let describe = || match &item.error {
        Some(error) => {
            let reason = error.reason.as_deref().unwrap_or("");
            let cut = reason
                .char_indices()
                .nth(300)
                .map_or(reason, |(at, _)| &reason[..at]);
            format!("item status {}, {}: {cut}", item.status, error.kind)
        }
        None => format!("item status {}", item.status),
    };
    match item.status {
        200..=299 | 409 => Outcome::Delivered,
        429 | 500..=599 => Outcome::retry(format!(
            "Elasticsearch could not take the document yet ({})",
            describe()
        )),
        _ => Outcome::permanent(format!(
            "Elasticsearch rejected the document ({})",
            describe()
        )),
    }
}

/// `error.type: error.reason` of a whole-request error reply, or the text.
pub fn request_error(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Reply {
        error: ReplyError,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ReplyError {
        Object(ItemError),
        Text(String),
    }
    match serde_json::from_slice::<Reply>(body) {
        Ok(Reply {
            error: ReplyError::Object(error),
        }) => format!("{}: {}", error.kind, error.reason.unwrap_or_default()),
        Ok(Reply {
            error: ReplyError::Text(text),
        }) => text,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_lines_end_with_newlines_and_carry_the_id() {
        let mut event = Event::new("lockout");
        event.summary = Some("alice locked out".into());
        let mut out = Vec::new();
        write_create(
            &event,
            "siemrelay-events-2024.06.10",
            Schema::Native,
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let action: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(action["create"]["_index"], "siemrelay-events-2024.06.10");
        assert_eq!(action["create"]["_id"], event.event_id.to_string());
        let doc: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(doc["@timestamp"], event.timestamp.to_rfc3339());
        assert_eq!(doc["summary"], "alice locked out");
        assert!(doc.get("timestamp").is_none());
    }

    #[test]
    fn items_are_judged_by_status() {
        let reply: BulkReply = serde_json::from_str(
            r#"{"items":[{"create":{"status":201}},{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [x]"}}},
            {"index":{"status":503}}]}"#,
        )
        .unwrap();
        let outcomes: Vec<Outcome> = reply
            .items
            .iter()
            .map(|i| item_outcome(i.result()))
            .collect();
        assert_eq!(outcomes[0], Outcome::Delivered);
        assert_eq!(outcomes[1], Outcome::Delivered);
        assert!(
            matches!(&outcomes[2], Outcome::Retry { reason, .. } if reason.contains("es_rejected_execution_exception"))
        );
        assert!(
            matches!(&outcomes[3], Outcome::Permanent { reason } if reason.contains("mapper_parsing_exception: failed to parse field [x]"))
        );
        assert!(matches!(&outcomes[4], Outcome::Retry { .. }));
        assert_eq!(
            request_error(br#"{"error":{"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\\n]"},"status":400}"#),
            "illegal_argument_exception: The bulk request must be terminated by a newline [\\n]"
        );
    }
}
