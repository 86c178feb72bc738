//! The Bulk API without I/O: an NDJSON body of action lines (`index`, `create`, `update`,
//! `delete`) and document lines in, events and one planned result per action out.
//!
//! - `index` / `create` with a JSON-object document become events (see [`document_to_event`]).
//! - `update` and `delete` get an item 400 (`illegal_argument_exception`): siemrelay forwards
//!   events, it keeps no documents to change; the rest of the bulk goes on. An `update`'s body
//!   line is skipped, a `delete` has none.
//! - A document line that is not a JSON object gets an item 400 (`document_parsing_exception`).
//! - A malformed action line, a body that does not end with a newline, an empty body or an
//!   action with no index fail the whole request with 400, as in Elasticsearch.

use crate::elasticsearch::config::ElasticsearchConfig;
use serde_json::{Map, Value, json};
use siemrelay_core::admission::{MemoryBudget, OverBudget, Reservation};
use siemrelay_core::ingest::{
    BodyErrorKind, IngestOptions, Limits, Members, event_from_object, insert_stamp, parse_object,
    parse_value, receiver_namespace,
};
use siemrelay_core::{Batch, Event, Timestamp};
use std::borrow::Cow;
use uuid::Uuid;

/// The four bulk actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Index a document (create or replace).
    Index,
    /// Create a document (fails if it exists).
    Create,
    /// Update a document: refused per item.
    Update,
    /// Delete a document: refused per item.
    Delete,
}

impl Action {
    /// The action's name, the key of its item in the response.
    pub fn name(self) -> &'static str {
        match self {
            Action::Index => "index",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "index" => Action::Index,
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            _ => return None,
        })
    }
}

/// What became of one action before the pipeline saw the batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Planned {
    /// Its document is the batch's event at this position.
    Event(usize),
    /// It failed: item status, Elasticsearch error type and reason.
    Failed {
        /// The item's HTTP status.
        status: u16,
        /// Elasticsearch's error `type`.
        error_type: &'static str,
        /// The error's `reason`.
        reason: String,
    },
}

/// One action of a bulk request and its planned result.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The action.
    pub action: Action,
    /// Its target index.
    pub index: String,
    /// The document id answered: the action's `_id`, else the event id.
    pub id: Option<String>,
    /// What became of it.
    pub planned: Planned,
}

/// A bulk request turned into a batch and its items.
#[derive(Debug)]
pub struct Parsed {
    /// The events of the `index`/`create` actions whose documents were accepted, in order.
    pub batch: Batch,
    /// One entry per action, in request order.
    pub items: Vec<Item>,
    /// Fields that could not be mapped, over all documents.
    pub mapping_errors: usize,
    /// Memory the batch holds.
    pub held_bytes: usize,
}

/// Why a whole bulk request was refused (Elasticsearch's whole-request errors).
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// Malformed NDJSON, no final newline, empty body, no index: 400.
    #[error("{reason}")]
    Invalid {
        /// Elasticsearch's error `type`.
        error_type: &'static str,
        /// The reason.
        reason: String,
    },
    /// More actions than `max_events_per_request`: 413.
    #[error("the bulk request holds more than max_events_per_request ({limit}) documents")]
    TooManyEvents {
        /// The configured limit.
        limit: usize,
    },
    /// The admission budget has no room.
    #[error("{0}")]
    Memory(OverBudget),
}

/// Request-wide parameters: the index of `/<index>/_bulk` and the query string's `pipeline`
/// and `routing`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    /// `/<index>/_bulk`.
    pub index: Option<String>,
    /// `?pipeline=`.
    pub pipeline: Option<String>,
    /// `?routing=`.
    pub routing: Option<String>,
}

/// Turns bulk bodies into events for one receiver.
#[derive(Debug)]
pub struct BulkParser {
    options: IngestOptions,
    namespace: Uuid,
    max_events: usize,
}

impl BulkParser {
    /// The parser of the receiver `id`.
    pub fn new(id: &str, config: &ElasticsearchConfig) -> BulkParser {
        BulkParser {
            options: config.ingest_options(id),
            namespace: receiver_namespace(id),
            max_events: config.max_events_per_request,
        }
    }

    /// Parses a decoded bulk body, charging what it holds to `reservation`.
    pub fn parse(
        &self,
        body: &[u8],
        defaults: &Defaults,
        observed: Timestamp,
        reservation: &Reservation,
    ) -> Result<Parsed, BulkError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(invalid(
                "action_request_validation_exception",
                "Validation Failed: 1: no requests added;".into(),
            ));
        }
        if body.last() != Some(&b'\n') {
            return Err(invalid(
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]".into(),
            ));
        }
        let limits = Limits::unlimited()
            .strict(self.options.strict)
            .charging(reservation);
        let mut lines = body
            .split(|b| *b == b'\n')
            .enumerate()
            .map(|(at, line)| (at + 1, line.strip_suffix(b"\r").unwrap_or(line)))
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace));
        let (mut batch, mut items, mut mapping_errors, mut documents) =
            (Vec::new(), Vec::new(), 0, 0);
        while let Some((number, line)) = lines.next() {
            let (action, meta) = self.action(number, line, &limits)?;
            let index = meta
                .get("_index")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| defaults.index.clone())
                .ok_or_else(|| {
                    invalid(
                        "action_request_validation_exception",
                        format!("Validation Failed: 1: index is missing for the action on line {number};"),
                    )
                })?;
            let id = meta.get("_id").and_then(id_text);
            let source = match action {
                Action::Delete => None,
                _ => Some(lines.next().ok_or_else(|| {
                    invalid(
                        "illegal_argument_exception",
                        format!(
                            "The bulk request's {} action on line {number} has no document line",
                            action.name()
                        ),
                    )
                })?),
            };
            let planned = match (action, source) {
                (Action::Index | Action::Create, Some((doc_line, text))) => {
                    documents += 1;
                    if documents > self.max_events {
                        return Err(BulkError::TooManyEvents {
                            limit: self.max_events,
                        });
                    }
                    let stamps = Stamps {
                        action,
                        index: &index,
                        meta: &meta,
                        defaults,
                    };
                    match self.document(
                        doc_line,
                        text,
                        id.as_deref(),
                        &stamps,
                        observed,
                        &limits,
                    )? {
                        Ok((event, errors)) => {
                            mapping_errors += errors;
                            batch.push(event);
                            Planned::Event(batch.len() - 1)
                        }
                        Err(failed) => failed,
                    }
                }
                _ => Planned::Failed {
                    status: 400,
                    error_type: "illegal_argument_exception",
                    reason: format!(
                        "siemrelay forwards events and keeps no documents: the {} action is not supported; use index or create",
                        action.name()
                    ),
                },
            };
            items.push(Item {
                action,
                index,
                id,
                planned,
            });
        }
        limits
            .charge(batch.len() * size_of::<Event>() + items.len() * size_of::<Item>())
            .map_err(|stop| match stop {
                siemrelay_core::ingest::Stop::Memory(over) => BulkError::Memory(over),
                other => invalid("illegal_argument_exception", other.to_string()),
            })?;
        Ok(Parsed {
            batch,
            items,
            mapping_errors,
            held_bytes: limits.charged(),
        })
    }

    /// [`BulkParser::parse`] with no memory limit (tests and tools).
    pub fn parse_unlimited(&self, body: &[u8], defaults: &Defaults) -> Result<Parsed, BulkError> {
        let reservation = MemoryBudget::unlimited().empty_reservation();
        self.parse(body, defaults, Timestamp::now(), &reservation)
    }

    /// Parses and maps one document line: the event, or the item's failure (the outer error
    /// fails the whole request: the memory budget).
    fn document(
        &self,
        doc_line: usize,
        text: &[u8],
        id: Option<&str>,
        stamps: &Stamps<'_>,
        observed: Timestamp,
        limits: &Limits<'_>,
    ) -> Result<Result<(Event, usize), Planned>, BulkError> {
        let failed = |reason: String| Planned::Failed {
            status: 400,
            error_type: "document_parsing_exception",
            reason: format!("[{doc_line}:1] failed to parse: {reason}"),
        };
        let document = match parse_object(text, limits) {
            Ok(document) => document,
            Err(error) => {
                return match error.kind {
                    BodyErrorKind::Memory(over) => Err(BulkError::Memory(over)),
                    _ => Ok(Err(failed(error.message))),
                };
            }
        };
        Ok(self
            .document_to_event(document, id, stamps, observed)
            .map_err(failed))
    }

    /// Reads one action line: `{"<action>": {metadata}}`.
    fn action(
        &self,
        number: usize,
        line: &[u8],
        limits: &Limits<'_>,
    ) -> Result<(Action, Map<String, Value>), BulkError> {
        let malformed = |what: String| {
            invalid(
                "illegal_argument_exception",
                format!("Malformed action/metadata line [{number}], {what}"),
            )
        };
        let value = parse_value(line, limits).map_err(|error| match error.kind {
            BodyErrorKind::Memory(over) => BulkError::Memory(over),
            _ => malformed(format!("expected a JSON object: {}", error.message)),
        })?;
        let Value::Object(object) = value else {
            return Err(malformed("expected START_OBJECT".into()));
        };
        let mut entries = object.into_iter();
        let (Some((name, meta)), None) = (entries.next(), entries.next()) else {
            return Err(malformed(
                "expected one action, found none or several".into(),
            ));
        };
        let action = Action::parse(&name).ok_or_else(|| {
            malformed(format!(
                "expected one of [create, delete, index, update] but found [{name}]"
            ))
        })?;
        match meta {
            Value::Object(meta) => Ok((action, meta)),
            _ => Err(malformed(format!("expected an object under [{name}]"))),
        }
    }

    /// One document → one event (the table in `docs/receivers/elasticsearch.md`):
    /// `@timestamp` → `timestamp` and `message` → `summary` when the document does not set
    /// those fields itself; every other field through the shared ingest; the `_id` is the event
    /// id (a UUID as is, other text as the receiver's UUIDv5 of it); `_index`, `_id`, the action
    /// (`_op_type`) and the action's other metadata (`_<key>`: `_pipeline`, `_routing`, …) are
    /// kept under `attributes`.
    pub fn document_to_event(
        &self,
        document: Members<'_>,
        id: Option<&str>,
        stamps: &Stamps<'_>,
        observed: Timestamp,
    ) -> Result<(Event, usize), String> {
        let roots = self.options.mapping.source_roots();
        let has = |key: &str| document.0.iter().any(|(k, _)| k == key);
        let timestamp_free = !has("timestamp") && !roots.contains(&"@timestamp");
        let summary_free = !has("summary") && !roots.contains(&"message");
        let sender_id = document
            .0
            .iter()
            .find(|(k, _)| k == "event_id")
            .map(|(_, v)| v.clone());
        let members: Vec<(Cow<'_, str>, Value)> = document
            .0
            .into_iter()
            .map(|(key, value)| match (key.as_ref(), &value) {
                ("@timestamp", _) if timestamp_free => (Cow::Borrowed("timestamp"), value),
                ("message", Value::String(_)) if summary_free => (Cow::Borrowed("summary"), value),
                _ => (key, value),
            })
            .collect();
        let ingested = event_from_object(Members(members), &self.options, observed)
            .map_err(|error| error.to_string())?;
        let mut event = ingested.event;
        let fields = &mut *event;
        if let Some(id) = id {
            let from_id = Uuid::parse_str(id)
                .unwrap_or_else(|_| Uuid::new_v5(&self.namespace, id.as_bytes()));
            if let Some(sender) = sender_id
                && fields.event_id != from_id
                && !fields.attributes.contains_key("event_id")
            {
                // The document's own id differs from its `_id`: the `_id` is the event id, the
                // document's stays an attribute.
                fields.attributes.insert("event_id".into(), sender);
            }
            fields.event_id = from_id;
        }
        stamps.apply(&mut fields.attributes, id);
        Ok((event, ingested.mapping_errors))
    }
}

/// The bulk metadata of one document, kept under its event's attributes.
pub struct Stamps<'a> {
    /// `index` or `create`.
    pub action: Action,
    /// The target index.
    pub index: &'a str,
    /// The action line's metadata.
    pub meta: &'a Map<String, Value>,
    /// The request's defaults.
    pub defaults: &'a Defaults,
}

impl Stamps<'_> {
    fn apply(&self, attributes: &mut Map<String, Value>, id: Option<&str>) {
        insert_stamp(attributes, "_index", Value::String(self.index.to_string()));
        if let Some(id) = id {
            insert_stamp(attributes, "_id", Value::String(id.to_string()));
        }
        insert_stamp(
            attributes,
            "_op_type",
            Value::String(self.action.name().into()),
        );
        for (key, value) in self.meta {
            if key == "_index" || key == "_id" {
                continue;
            }
            let name = if key.starts_with('_') {
                key.clone()
            } else {
                format!("_{key}")
            };
            insert_stamp(attributes, &name, value.clone());
        }
        for (key, value) in [
            ("_pipeline", &self.defaults.pipeline),
            ("_routing", &self.defaults.routing),
        ] {
            if let Some(value) = value
                && !attributes.contains_key(key)
            {
                attributes.insert(key.to_string(), Value::String(value.clone()));
            }
        }
    }
}

/// The text of an `_id`: a string, or a number as written.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn invalid(error_type: &'static str, reason: String) -> BulkError {
    BulkError::Invalid { error_type, reason }
}

/// A per-item result of the response (`{"<action>": {…}}`) for an action accepted into the
/// pipeline (`status` 201), refused by it (429 / 500), or failed before it.
pub fn item_json(item: &Item, event_id: Option<&str>, outcome: ItemOutcome, seq_no: u64) -> Value {
    let id = item.id.as_deref().or(event_id);
    let body = match outcome {
        ItemOutcome::Created => json!({
            "_index": item.index, "_id": id, "_version": 1, "result": "created",
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": seq_no, "_primary_term": 1, "status": 201,
        }),
        ItemOutcome::Failed {
            status,
            error_type,
            reason,
        } => json!({
            "_index": item.index, "_id": id, "status": status,
            "error": {"type": error_type, "reason": reason},
        }),
    };
    json!({ item.action.name(): body })
}

/// What the response says about one item.
#[derive(Clone, Debug)]
pub enum ItemOutcome {
    /// Queued: 201 `created`.
    Created,
    /// Not queued.
    Failed {
        /// The item's status.
        status: u16,
        /// Elasticsearch's error type.
        error_type: &'static str,
        /// The reason.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(config: serde_json::Value) -> BulkParser {
        let mut base = json!({"endpoint": "127.0.0.1:9200"});
        if let (Value::Object(base), Value::Object(more)) = (&mut base, config) {
            base.extend(more);
        }
        BulkParser::new("elasticsearch/t", &serde_json::from_value(base).unwrap())
    }

    #[test]
    fn index_and_create_become_events_update_and_delete_fail_per_item() {
        let body = concat!(
            "{\"index\":{\"_index\":\"logs-a\",\"_id\":\"9b2c7c3e-53f0-4c64-9f63-2c2f6f0d1a11\"}}\n",
            "{\"@timestamp\":\"2024-06-10T06:13:20.123Z\",\"message\":\"malware blocked\",\"rule\":{\"id\":\"R12\"}}\n",
            "{\"update\":{\"_id\":\"1\"}}\n",
            "{\"doc\":{\"a\":1}}\n",
            "{\"delete\":{\"_index\":\"x\",\"_id\":\"2\"}}\n",
            "{\"create\":{\"_id\":\"doc-7\",\"routing\":\"r1\"}}\n",
            "{\"event_type\":\"login\",\"severity\":\"high\"}\n",
            "{\"create\":{}}\n",
            "[1,2]\n",
        );
        let defaults = Defaults {
            index: Some("url-index".into()),
            pipeline: Some("p1".into()),
            routing: None,
        };
        let parsed = parser(json!({}))
            .parse_unlimited(body.as_bytes(), &defaults)
            .unwrap();
        assert_eq!(parsed.items.len(), 5);
        assert_eq!(parsed.batch.len(), 2);
        let first = &parsed.batch[0];
        assert_eq!(
            first.event_id.to_string(),
            "9b2c7c3e-53f0-4c64-9f63-2c2f6f0d1a11"
        );
        assert_eq!(first.summary.as_deref(), Some("malware blocked"));
        assert_eq!(first.timestamp.to_rfc3339(), "2024-06-10T06:13:20.123Z");
        assert_eq!(first.attributes["_index"], json!("logs-a"));
        assert_eq!(first.attributes["_op_type"], json!("index"));
        assert_eq!(first.attributes["_pipeline"], json!("p1"));
        assert_eq!(first.attributes["rule"], json!({"id": "R12"}));
        let second = &parsed.batch[1];
        // A non-UUID `_id` gives the receiver's UUIDv5 of it, and is kept.
        assert_eq!(
            second.event_id,
            Uuid::new_v5(&receiver_namespace("elasticsearch/t"), b"doc-7")
        );
        assert_eq!(second.attributes["_id"], json!("doc-7"));
        assert_eq!(second.attributes["_index"], json!("url-index"));
        assert_eq!(second.attributes["_routing"], json!("r1"));
        assert_eq!(second.event_type, "login");
        assert_eq!(parsed.items[0].planned, Planned::Event(0));
        assert!(matches!(
            parsed.items[1].planned,
            Planned::Failed {
                status: 400,
                error_type: "illegal_argument_exception",
                ..
            }
        ));
        assert_eq!(parsed.items[2].action, Action::Delete);
        assert!(matches!(
            parsed.items[2].planned,
            Planned::Failed { status: 400, .. }
        ));
        assert_eq!(parsed.items[3].planned, Planned::Event(1));
        assert!(matches!(
            parsed.items[4].planned,
            Planned::Failed {
                status: 400,
                error_type: "document_parsing_exception",
                ..
            }
        ));
    }

    #[test]
    fn whole_request_errors_follow_elasticsearch() {
        let p = parser(json!({"max_events_per_request": 1}));
        let d = Defaults::default();
        let reason = |body: &str| match p.parse_unlimited(body.as_bytes(), &d) {
            Err(BulkError::Invalid { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason("{\"index\":{\"_index\":\"a\"}}\n{}").contains("terminated by a newline"));
        assert!(reason("\n").contains("no requests added"));
        assert!(reason("{\"index\":{}}\n{}\n").contains("index is missing"));
        assert!(reason("{\"upsert\":{\"_index\":\"a\"}}\n{}\n").contains("[upsert]"));
        assert!(reason("not json\n").contains("Malformed action/metadata line [1]"));
        assert!(reason("{\"index\":{\"_index\":\"a\"}}\n").contains("no document line"));
        let two = "{\"index\":{\"_index\":\"a\"}}\n{}\n{\"index\":{\"_index\":\"a\"}}\n{}\n";
        assert!(matches!(
            p.parse_unlimited(two.as_bytes(), &d),
            Err(BulkError::TooManyEvents { limit: 1 })
        ));
    }

    #[test]
    fn a_document_id_other_than_the_action_id_is_kept() {
        let body = "{\"index\":{\"_index\":\"a\",\"_id\":\"9b2c7c3e-53f0-4c64-9f63-2c2f6f0d1a11\"}}\n{\"event_id\":\"0192f0c1-0000-7000-8000-000000000001\"}\n";
        let parsed = parser(json!({}))
            .parse_unlimited(body.as_bytes(), &Defaults::default())
            .unwrap();
        let event = &parsed.batch[0];
        assert_eq!(
            event.event_id.to_string(),
            "9b2c7c3e-53f0-4c64-9f63-2c2f6f0d1a11"
        );
        assert_eq!(
            event.attributes["event_id"],
            json!("0192f0c1-0000-7000-8000-000000000001")
        );
    }

    #[test]
    fn items_have_the_bulk_response_shape() {
        let item = Item {
            action: Action::Create,
            index: "a".into(),
            id: None,
            planned: Planned::Event(0),
        };
        let created = item_json(&item, Some("e1"), ItemOutcome::Created, 4);
        assert_eq!(
            created,
            json!({"create": {"_index": "a", "_id": "e1", "_version": 1, "result": "created",
                "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": 4, "_primary_term": 1, "status": 201}})
        );
        let busy = item_json(
            &item,
            Some("e1"),
            ItemOutcome::Failed {
                status: 429,
                error_type: "es_rejected_execution_exception",
                reason: "full".into(),
            },
            0,
        );
        assert_eq!(busy["create"]["status"], json!(429));
        assert_eq!(
            busy["create"]["error"]["type"],
            json!("es_rejected_execution_exception")
        );
    }

    #[test]
    fn a_siemrelay_exporter_document_comes_back_as_the_same_event() {
        // The document the elasticsearch exporter writes (docs/exporters/elasticsearch.md).
        let body = concat!(
            "{\"create\":{\"_index\":\"siemrelay-events-2024.06.10\",\"_id\":\"0192f0c1-0000-7000-8000-000000000001\"}}\n",
            "{\"@timestamp\":\"2024-06-10T06:13:20.123Z\",\"event_id\":\"0192f0c1-0000-7000-8000-000000000001\",",
            "\"observed_timestamp\":\"2024-06-10T06:13:20.200Z\",\"event_type\":\"malware\",\"severity\":\"high\",",
            "\"severity_number\":17,\"source\":\"acme-edr\",\"summary\":\"malware blocked\",\"attributes\":{\"rule\":{\"id\":\"R12\"}}}\n",
        );
        let parsed = parser(json!({}))
            .parse_unlimited(body.as_bytes(), &Defaults::default())
            .unwrap();
        let e = &parsed.batch[0];
        assert_eq!(e.event_type, "malware");
        assert_eq!(e.severity.number, 17);
        assert_eq!(e.source.as_deref(), Some("acme-edr"));
        assert_eq!(e.summary.as_deref(), Some("malware blocked"));
        assert_eq!(e.timestamp.to_rfc3339(), "2024-06-10T06:13:20.123Z");
        assert_eq!(e.attributes["rule"], json!({"id": "R12"}));
        // The sender's observed_timestamp is kept (siemrelay's own receive time is the field).
        assert_eq!(
            e.attributes["observed_timestamp"],
            json!("2024-06-10T06:13:20.200Z")
        );
    }
}
