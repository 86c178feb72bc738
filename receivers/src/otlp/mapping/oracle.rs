//! The mapping over prost's decoded `ExportLogsServiceRequest`, as the receiver did it before
//! it decoded the wire directly: kept only for tests, as the oracle the direct decoder is
//! checked against (`decode::tests`).

use super::{
    EventIds, MappedRequest, RecordFields, ResourceFields, ScopeFields, bytes_to_json,
    check_record, double_to_json, finish_event, insert_derived, insert_first,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use siemrelay_core::{Map, Timestamp, Value};
use uuid::Uuid;

/// Maps every log record of the decoded `request` to an event observed at `now`.
pub fn map_request(
    request: ExportLogsServiceRequest,
    now: Timestamp,
    namespace: Uuid,
) -> MappedRequest {
    let mut mapped = MappedRequest::default();
    let mut ids = EventIds::new(now, namespace);
    for (r, resource_logs) in request.resource_logs.into_iter().enumerate() {
        let resource = ResourceFields::new(
            resource_logs
                .resource
                .map(|res| key_values_to_map(res.attributes))
                .unwrap_or_default(),
        );
        for (s, scope_logs) in resource_logs.scope_logs.into_iter().enumerate() {
            let scope = scope_fields(scope_logs.scope);
            for (l, record) in scope_logs.log_records.into_iter().enumerate() {
                let fields = RecordFields {
                    time_unix_nano: record.time_unix_nano,
                    observed_time_unix_nano: record.observed_time_unix_nano,
                    severity_number: record.severity_number,
                    severity_text: &record.severity_text,
                    event_name: &record.event_name,
                    trace_id: &record.trace_id,
                    span_id: &record.span_id,
                };
                if let Err(reason) = check_record(&fields) {
                    mapped.rejected += 1;
                    if mapped.first_rejection.is_none() {
                        mapped.first_rejection = Some(format!(
                            "resource_logs[{r}].scope_logs[{s}].log_records[{l}]: {reason}"
                        ));
                    }
                    continue;
                }
                let (attributes, summary) = map_attributes_and_body(&record);
                let event = finish_event(
                    attributes, summary, &fields, &scope, &resource, now, &mut ids,
                );
                mapped.events.push(event);
            }
        }
    }
    mapped
}

fn scope_fields(scope: Option<InstrumentationScope>) -> ScopeFields {
    let Some(scope) = scope else {
        return ScopeFields::default();
    };
    ScopeFields {
        name: Some(scope.name).filter(|n| !n.is_empty()),
        version: Some(scope.version).filter(|v| !v.is_empty()),
        attributes: Some(key_values_to_map(scope.attributes)).filter(|a| !a.is_empty()),
    }
}

fn map_attributes_and_body(record: &LogRecord) -> (Map, Option<String>) {
    let mut attributes = Map::with_capacity(record.attributes.len() + 4);
    for KeyValue { key, value, .. } in record.attributes.clone() {
        insert_first(&mut attributes, key, any_value_to_json(value));
    }
    let summary = record
        .body
        .clone()
        .and_then(|body| map_body(body, &mut attributes));
    (attributes, summary)
}

fn map_body(body: AnyValue, attributes: &mut Map) -> Option<String> {
    match body.value? {
        AnyValueKind::StringValue(text) => Some(text),
        AnyValueKind::BoolValue(b) => Some(b.to_string()),
        AnyValueKind::IntValue(i) => Some(i.to_string()),
        AnyValueKind::DoubleValue(d) => Some(double_to_json(d).to_string()),
        AnyValueKind::KvlistValue(list) => {
            let mut clashes = Map::new();
            for KeyValue { key, value, .. } in list.values {
                let value = any_value_to_json(value);
                if attributes.contains_key(&key) {
                    clashes.insert(key, value);
                } else {
                    attributes.insert(key, value);
                }
            }
            if !clashes.is_empty() {
                insert_derived(attributes, "body", Value::Object(clashes));
            }
            None
        }
        other => {
            insert_derived(attributes, "body", any_value_kind_to_json(other));
            None
        }
    }
}

fn key_values_to_map(pairs: Vec<KeyValue>) -> Map {
    let mut map = Map::with_capacity(pairs.len());
    for KeyValue { key, value, .. } in pairs {
        insert_first(&mut map, key, any_value_to_json(value));
    }
    map
}

fn any_value_to_json(value: Option<AnyValue>) -> Value {
    value
        .and_then(|v| v.value)
        .map_or(Value::Null, any_value_kind_to_json)
}

fn any_value_kind_to_json(kind: AnyValueKind) -> Value {
    match kind {
        AnyValueKind::StringValue(s) => Value::String(s),
        AnyValueKind::BoolValue(b) => Value::Bool(b),
        AnyValueKind::IntValue(i) => Value::from(i),
        AnyValueKind::DoubleValue(d) => double_to_json(d),
        AnyValueKind::BytesValue(bytes) => bytes_to_json(&bytes),
        AnyValueKind::ArrayValue(array) => Value::Array(
            array
                .values
                .into_iter()
                .map(|v| any_value_to_json(Some(v)))
                .collect(),
        ),
        AnyValueKind::KvlistValue(list) => Value::Object(key_values_to_map(list.values)),
        AnyValueKind::StringValueStrindex(_) => Value::Null,
    }
}

/// Asserts that the direct decoder's batch equals the oracle's: the same events, rejections
/// and message. Event ids drawn at random (UUIDv7, seeded per batch) only need to be v7 in both.
pub fn assert_same(direct: &MappedRequest, oracle: &MappedRequest) {
    assert_eq!(direct.rejected, oracle.rejected);
    assert_eq!(direct.first_rejection, oracle.first_rejection);
    assert_eq!(direct.events.len(), oracle.events.len());
    for (direct, oracle) in direct.events.iter().zip(&oracle.events) {
        let (mut direct, mut oracle) = (direct.clone().into_fields(), oracle.clone().into_fields());
        if direct.event_id.get_version_num() == 7 && oracle.event_id.get_version_num() == 7 {
            direct.event_id = Uuid::nil();
            oracle.event_id = Uuid::nil();
        }
        assert_eq!(direct, oracle);
    }
}
