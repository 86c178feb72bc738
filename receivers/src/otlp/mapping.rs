//! OTLP log records → siemrelay events (the mapping table is in `docs/receivers/otlp.md`):
//! what a record's decoded fields become. The decoders (`decode` for protobuf bytes) read the
//! wire and call these; one request becomes one batch.

#[cfg(test)]
pub(super) mod oracle;

use base64::Engine as _;
use siemrelay_core::ingest::keep_duplicate;
use siemrelay_core::severity::{name_for_number, number_for_name};
use siemrelay_core::{Batch, Event, EventFields, Map, Severity, Timestamp, Value};
use uuid::Uuid;

/// `event_type` of records that name none.
pub const DEFAULT_EVENT_TYPE: &str = "otlp.log";

/// The events of one request, and what could not be mapped.
#[derive(Debug, Default)]
pub struct MappedRequest {
    /// One event per mappable log record, in request order.
    pub events: Batch,
    /// Log records that could not be mapped (reported in `partial_success`).
    pub rejected: u64,
    /// Why the first rejected record was rejected, with its place in the request.
    pub first_rejection: Option<String>,
}

impl MappedRequest {
    /// The `partial_success.error_message` for this request ("" when nothing was rejected).
    pub fn rejection_message(&self) -> String {
        match &self.first_rejection {
            None => String::new(),
            Some(first) if self.rejected == 1 => format!("1 log record rejected: {first}"),
            Some(first) => format!("{} log records rejected; the first: {first}", self.rejected),
        }
    }
}

/// Why a record with these fields cannot become an event, if it cannot.
pub(super) fn check_record(record: &RecordFields) -> Result<(), String> {
    if !(0..=24).contains(&record.severity_number) {
        return Err(format!(
            "severity_number {} is outside 0-24",
            record.severity_number
        ));
    }
    for (field, nanos) in [
        ("time_unix_nano", record.time_unix_nano),
        ("observed_time_unix_nano", record.observed_time_unix_nano),
    ] {
        if i64::try_from(nanos).is_err() {
            return Err(format!(
                "{field} {nanos} is after 2262-04-11, the latest time siemrelay can represent"
            ));
        }
    }
    Ok(())
}

/// The instrumentation scope's fields, converted once per `ScopeLogs`.
#[derive(Debug, Default)]
pub(super) struct ScopeFields {
    /// `otel.scope.name` (absent when empty).
    pub name: Option<String>,
    /// `otel.scope.version` (absent when empty).
    pub version: Option<String>,
    /// `otel.scope.attributes` (absent when empty).
    pub attributes: Option<Map>,
}

/// A log record's fields besides its attributes and body, as the wire gives them.
#[derive(Debug, Default)]
pub(super) struct RecordFields<'a> {
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    pub severity_text: &'a str,
    pub event_name: &'a str,
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
}

/// What every event of one `ResourceLogs` carries.
#[derive(Debug, Default)]
pub(super) struct ResourceFields {
    /// The resource's attributes.
    pub attributes: Map,
    /// `service.name`, when a non-empty string.
    pub source: Option<String>,
}

impl ResourceFields {
    /// The resource with these attributes.
    pub fn new(attributes: Map) -> ResourceFields {
        let source = match attributes.get("service.name") {
            Some(Value::String(name)) if !name.is_empty() => Some(name.clone()),
            _ => None,
        };
        ResourceFields { attributes, source }
    }
}

/// The event of one checked record whose attributes (with its body merged) and summary are
/// mapped: adds what siemrelay derives and picks type, id, time and severity.
pub(super) fn finish_event(
    mut attributes: Map,
    summary: Option<String>,
    record: &RecordFields,
    scope: &ScopeFields,
    resource: &ResourceFields,
    now: Timestamp,
    ids: &mut EventIds,
) -> Event {
    if let Some(name) = &scope.name {
        insert_derived(
            &mut attributes,
            "otel.scope.name",
            Value::String(name.clone()),
        );
    }
    if let Some(version) = &scope.version {
        insert_derived(
            &mut attributes,
            "otel.scope.version",
            Value::String(version.clone()),
        );
    }
    if let Some(scope_attributes) = &scope.attributes {
        insert_derived(
            &mut attributes,
            "otel.scope.attributes",
            Value::Object(scope_attributes.clone()),
        );
    }
    if let Some(trace_id) = nonzero_hex(record.trace_id) {
        insert_derived(&mut attributes, "trace_id", Value::String(trace_id));
    }
    if let Some(span_id) = nonzero_hex(record.span_id) {
        insert_derived(&mut attributes, "span_id", Value::String(span_id));
    }
    if record.observed_time_unix_nano != 0
        && let Ok(nanos) = i64::try_from(record.observed_time_unix_nano)
    {
        // The sender's observed time; the event's own is when siemrelay received it.
        insert_derived(
            &mut attributes,
            "observed_timestamp",
            Value::String(Timestamp(nanos).to_rfc3339()),
        );
    }

    let event_type = if record.event_name.is_empty() {
        ["event.name", "event_type"]
            .iter()
            .find_map(|key| match attributes.get(*key) {
                Some(Value::String(name)) if !name.is_empty() => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_else(|| DEFAULT_EVENT_TYPE.to_string())
    } else {
        record.event_name.to_string()
    };
    let event_id = ["event.id", "event_id"]
        .iter()
        .find_map(|key| match attributes.get(*key) {
            Some(Value::String(id)) if !id.is_empty() => Some(ids.for_sender_id(id)),
            _ => None,
        })
        .unwrap_or_else(|| ids.next());
    // Unsigned nanoseconds were checked to fit i64 by `check_record`.
    let timestamp = [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|nanos| *nanos != 0)
        .and_then(|nanos| i64::try_from(nanos).ok())
        .map_or(now, Timestamp);

    Event::from(EventFields {
        event_id,
        timestamp,
        observed_timestamp: now,
        event_type,
        severity: map_severity(record.severity_number, record.severity_text),
        source: resource.source.clone(),
        summary,
        attributes: attributes.into(),
        resource: resource.attributes.clone(),
        signature: None,
    })
}

/// Severity from the record's number (0–24, checked) and text.
fn map_severity(number: i32, text: &str) -> Severity {
    let number = u8::try_from(number).unwrap_or(0);
    match (number, text.is_empty()) {
        (0, true) => Severity::default(),
        (0, false) => Severity {
            number: number_for_name(text).unwrap_or(0),
            text: text.to_string(),
        },
        (_, true) => Severity {
            number,
            text: name_for_number(number),
        },
        (_, false) => Severity {
            number,
            text: text.to_string(),
        },
    }
}

/// Inserts a value siemrelay derived (not an attribute the sender named) without replacing a
/// sender's attribute: on a clash the value goes to `otel.<key>` (then `otel.<key>.1`, …).
pub(super) fn insert_derived(attributes: &mut Map, key: &str, value: Value) {
    let value = match attributes.entry(key) {
        serde_json::map::Entry::Vacant(slot) => {
            slot.insert(value);
            return;
        }
        serde_json::map::Entry::Occupied(_) => value,
    };
    let base = if key.starts_with("otel.") {
        key.to_string()
    } else {
        format!("otel.{key}")
    };
    let mut candidate = base.clone();
    let mut n = 0u32;
    while attributes.contains_key(&candidate) {
        n += 1;
        candidate = format!("{base}.{n}");
    }
    attributes.insert(candidate, value);
}

/// Lowercase hex of a trace or span id, `None` when empty or all zero.
fn nonzero_hex(id: &[u8]) -> Option<String> {
    id.iter().any(|b| *b != 0).then(|| {
        // `hex::encode` goes through a char iterator; ids are encoded for every record.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(id.len() * 2);
        for byte in id {
            text.push(char::from(DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        text
    })
}

/// Inserts a sender's key-value pair; a repeated key loses nothing (see `keep_duplicate`).
pub(super) fn insert_first(map: &mut Map, key: String, value: Value) {
    match map.entry(key) {
        serde_json::map::Entry::Vacant(slot) => {
            slot.insert(value);
        }
        serde_json::map::Entry::Occupied(slot) => {
            let key = slot.key().clone();
            keep_duplicate(map, key, value);
        }
    }
}

/// OTLP bytes as JSON: base64 text.
pub(super) fn bytes_to_json(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A double as JSON; NaN and infinities (not JSON numbers) become the strings protobuf's JSON
/// mapping uses: `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub(super) fn double_to_json(d: f64) -> Value {
    match serde_json::Number::from_f64(d) {
        Some(n) => Value::Number(n),
        None if d.is_nan() => Value::String("NaN".into()),
        None if d > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// UUIDv7 ids for one batch without a syscall or lock per event: the batch's millisecond
/// timestamp plus 74 bits from a SplitMix64 sequence seeded once per batch.
pub(super) struct EventIds {
    millis: u64,
    state: u64,
    namespace: Uuid,
}

impl EventIds {
    pub(super) fn new(now: Timestamp, namespace: Uuid) -> EventIds {
        // One OS-random UUIDv7 per batch seeds the sequence.
        let seed = Uuid::now_v7().as_u128();
        EventIds {
            millis: u64::try_from(now.as_epoch_millis()).unwrap_or(0),
            state: (seed as u64) ^ ((seed >> 64) as u64),
            namespace,
        }
    }

    /// The sender's id when it is a UUID, else the UUIDv5 of its text in the namespace, so a
    /// retry keeps its `event_id`.
    fn for_sender_id(&self, id: &str) -> Uuid {
        Uuid::try_parse(id).unwrap_or_else(|_| Uuid::new_v5(&self.namespace, id.as_bytes()))
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next(&mut self) -> Uuid {
        let a = self.next_u64().to_le_bytes();
        let b = self.next_u64().to_le_bytes();
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&a);
        random[8..].copy_from_slice(&b[..2]);
        uuid::Builder::from_unix_timestamp_millis(self.millis, &random).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    use serde_json::json;

    const NAMESPACE: Uuid = Uuid::from_u128(0x5eed);

    /// The request's events as the receiver decodes them from its bytes, checked against the
    /// mapping of prost's decoded request (the oracle).
    fn map_request(
        request: ExportLogsServiceRequest,
        now: Timestamp,
        namespace: Uuid,
    ) -> MappedRequest {
        let direct =
            super::super::decode::decode_request(&request.encode_to_vec(), 0, now, namespace)
                .unwrap();
        oracle::assert_same(&direct, &oracle::map_request(request, now, namespace));
        direct
    }

    fn string(s: &str) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(AnyValueKind::StringValue(s.into())),
        })
    }

    fn kv(key: &str, value: AnyValueKind) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", AnyValueKind::StringValue("edr".into()))],
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "acme.exporter".into(),
                        version: "1.2".into(),
                        ..InstrumentationScope::default()
                    }),
                    log_records: records,
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
    }

    #[test]
    fn record_fields_map_to_event_fields() {
        let id = "0192f0c4-8a52-7c3e-9d4b-2f6a1b3c4d5e";
        let record = LogRecord {
            time_unix_nano: 1_718_000_000_123_000_000,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: string("malware blocked"),
            attributes: vec![
                kv("event.name", AnyValueKind::StringValue("malware".into())),
                kv("event.id", AnyValueKind::StringValue(id.into())),
                kv("count", AnyValueKind::IntValue(i64::MAX)),
                kv("ratio", AnyValueKind::DoubleValue(0.5)),
                kv("blob", AnyValueKind::BytesValue(vec![1, 2, 3])),
                kv(
                    "list",
                    AnyValueKind::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(AnyValueKind::BoolValue(true)),
                        }],
                    }),
                ),
            ],
            trace_id: hex::decode("5b8efff798038103d269b633813fc60c").unwrap(),
            span_id: vec![0; 8],
            ..LogRecord::default()
        };
        let now = Timestamp(1);
        let mapped = map_request(request(vec![record]), now, NAMESPACE);
        assert_eq!(mapped.rejected, 0);
        let event = &mapped.events[0];
        assert_eq!(event.timestamp, Timestamp(1_718_000_000_123_000_000));
        assert_eq!(event.observed_timestamp, now);
        assert_eq!(event.event_type, "malware");
        assert_eq!(event.event_id.to_string(), id);
        assert_eq!(
            event.severity,
            Severity {
                number: 17,
                text: "ERROR".into()
            }
        );
        assert_eq!(event.summary.as_deref(), Some("malware blocked"));
        assert_eq!(event.source.as_deref(), Some("edr"));
        assert_eq!(event.resource["service.name"], "edr");
        let attributes = Value::Object(event.attributes.clone().into());
        assert_eq!(attributes["count"], json!(i64::MAX));
        assert_eq!(attributes["ratio"], json!(0.5));
        assert_eq!(attributes["blob"], "AQID");
        assert_eq!(attributes["list"], json!([true]));
        assert_eq!(attributes["trace_id"], "5b8efff798038103d269b633813fc60c");
        assert!(
            attributes.get("span_id").is_none(),
            "all-zero span id is absent"
        );
        assert_eq!(attributes["otel.scope.name"], "acme.exporter");
        assert_eq!(attributes["otel.scope.version"], "1.2");
    }

    #[test]
    fn defaults_and_fallbacks() {
        let records = vec![
            LogRecord {
                observed_time_unix_nano: 42,
                severity_text: "warning".into(),
                attributes: vec![kv(
                    "event.id",
                    AnyValueKind::StringValue("not-a-uuid".into()),
                )],
                ..LogRecord::default()
            },
            LogRecord {
                severity_number: 10,
                event_name: "login".into(),
                attributes: vec![kv(
                    "event_type",
                    AnyValueKind::StringValue("ignored".into()),
                )],
                ..LogRecord::default()
            },
            LogRecord::default(),
        ];
        let mapped = map_request(request(records), Timestamp(7), NAMESPACE);
        let [a, b, c] = &mapped.events[..] else {
            panic!("3 events")
        };
        assert_eq!(a.timestamp, Timestamp(42));
        assert_eq!(
            a.severity,
            Severity {
                number: 13,
                text: "warning".into()
            }
        );
        assert_eq!(a.event_type, DEFAULT_EVENT_TYPE);
        assert_eq!(
            a.attributes["event.id"], "not-a-uuid",
            "kept as an attribute"
        );
        // A sender id that is not a UUID gives the same UUIDv5 on every retry.
        assert_eq!(a.event_id, Uuid::new_v5(&NAMESPACE, b"not-a-uuid"));
        assert_eq!(b.event_id.get_version_num(), 7);
        // The sender's observed time is kept; the event's own is the receive time.
        assert_eq!(a.observed_timestamp, Timestamp(7));
        assert_eq!(
            a.attributes["observed_timestamp"],
            Timestamp(42).to_rfc3339()
        );
        assert_eq!(b.event_type, "login");
        assert_eq!(
            b.severity,
            Severity {
                number: 10,
                text: "INFO2".into()
            }
        );
        assert_eq!(c.timestamp, Timestamp(7));
        assert_eq!(c.severity, Severity::default());
        assert_ne!(a.event_id, c.event_id);
    }

    #[test]
    fn repeated_attribute_keys_lose_nothing() {
        let record = LogRecord {
            attributes: vec![
                kv("user", AnyValueKind::StringValue("ann".into())),
                kv("user", AnyValueKind::StringValue("bob".into())),
                kv("user", AnyValueKind::IntValue(3)),
            ],
            ..LogRecord::default()
        };
        let mapped = map_request(request(vec![record]), Timestamp(7), NAMESPACE);
        let attributes = &mapped.events[0].attributes;
        assert_eq!(attributes["user"], "ann");
        assert_eq!(attributes["_duplicate"]["user"], json!(["bob", 3]));
    }

    #[test]
    fn structured_bodies_merge_without_losing_clashing_keys() {
        let body = AnyValue {
            value: Some(AnyValueKind::KvlistValue(KeyValueList {
                values: vec![
                    kv("user", AnyValueKind::StringValue("body-user".into())),
                    kv("action", AnyValueKind::StringValue("delete".into())),
                ],
            })),
        };
        let records = vec![
            LogRecord {
                body: Some(body),
                attributes: vec![kv("user", AnyValueKind::StringValue("attr-user".into()))],
                ..LogRecord::default()
            },
            LogRecord {
                body: Some(AnyValue {
                    value: Some(AnyValueKind::IntValue(5)),
                }),
                ..LogRecord::default()
            },
            LogRecord {
                body: Some(AnyValue {
                    value: Some(AnyValueKind::BytesValue(vec![255])),
                }),
                attributes: vec![kv("body", AnyValueKind::StringValue("taken".into()))],
                ..LogRecord::default()
            },
        ];
        let mapped = map_request(request(records), Timestamp(1), NAMESPACE);
        let attrs = Value::Object(mapped.events[0].attributes.clone().into());
        assert_eq!(attrs["user"], "attr-user");
        assert_eq!(attrs["action"], "delete");
        assert_eq!(attrs["body"], json!({"user": "body-user"}));
        assert_eq!(mapped.events[0].summary, None);
        assert_eq!(mapped.events[1].summary.as_deref(), Some("5"));
        let attrs = &mapped.events[2].attributes;
        assert_eq!(attrs["body"], "taken");
        assert_eq!(attrs["otel.body"], "/w==");
    }

    #[test]
    fn unmappable_records_are_counted_and_the_rest_kept() {
        let records = vec![
            LogRecord {
                severity_number: 30,
                ..LogRecord::default()
            },
            LogRecord::default(),
            LogRecord {
                time_unix_nano: u64::MAX,
                ..LogRecord::default()
            },
        ];
        let mapped = map_request(request(records), Timestamp(1), NAMESPACE);
        assert_eq!(mapped.events.len(), 1);
        assert_eq!(mapped.rejected, 2);
        let message = mapped.rejection_message();
        assert!(message.starts_with("2 log records rejected"), "{message}");
        assert!(
            message.contains("resource_logs[0].scope_logs[0].log_records[0]: severity_number 30"),
            "{message}"
        );
    }
}
