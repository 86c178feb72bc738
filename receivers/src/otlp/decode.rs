//! OTLP/protobuf `ExportLogsServiceRequest` bytes → events, read straight off the wire: no
//! prost message per record, no string but those the events keep (see `mapping` for what
//! each field becomes).
//!
//! The whole request is checked as prost would check it (wire types of known fields, UTF-8 of
//! strings, unknown fields skipped, a message field seen twice merged) and refused whole, with
//! the path of the first bad field, when any part is not valid: nothing is half-accepted.
//! Fields may come in any order, so a `ResourceLogs` and a `ScopeLogs` are read twice: once
//! for their resource or scope (which every event carries) and once for their records.

use super::mapping::{
    EventIds, MappedRequest, RecordFields, ResourceFields, ScopeFields, bytes_to_json,
    check_record, double_to_json, finish_event, insert_derived, insert_first,
};
use super::wire::{Fields, MAX_DEPTH, Occurrences, Read, WireError, schema};
use siemrelay_core::{Map, Timestamp, Value};
use uuid::Uuid;

/// Nesting depth of a log record's attributes: request, resource_logs, scope_logs, log_record.
const ATTRIBUTE_DEPTH: usize = 4;

/// Maps every log record of the `ExportLogsServiceRequest` in `body` to an event observed at
/// `now` (`records`: how many the census counted, for the batch's capacity); an `event.id`
/// that is not a UUID becomes the UUIDv5 of its text in `namespace`.
pub fn decode_request(
    body: &[u8],
    records: usize,
    now: Timestamp,
    namespace: Uuid,
) -> Read<MappedRequest> {
    let mut decoder = Decoder {
        mapped: MappedRequest {
            events: Vec::with_capacity(records),
            ..MappedRequest::default()
        },
        ids: EventIds::new(now, namespace),
        now,
        attributes: Vec::new(),
    };
    let mut r = 0;
    for field in Fields::new(body, schema::request) {
        if let (1, value) = field? {
            let within = |e: WireError| e.within("resource_logs", Some(r));
            decoder
                .resource_logs(value.delimited().map_err(within)?, r)
                .map_err(within)?;
            r += 1;
        }
    }
    Ok(decoder.mapped)
}

/// The batch being built, and a scratch list of one record's attributes.
struct Decoder<'a> {
    mapped: MappedRequest,
    ids: EventIds,
    now: Timestamp,
    attributes: Vec<&'a [u8]>,
}

impl<'a> Decoder<'a> {
    fn resource_logs(&mut self, bytes: &'a [u8], r: usize) -> Read<()> {
        let mut resource = Occurrences::default();
        let mut scopes = 0;
        for field in Fields::new(bytes, schema::resource_logs) {
            match field? {
                (1, value) => resource.push(value.delimited().map_err(at("resource", None))?),
                (2, value) => {
                    value.delimited().map_err(at("scope_logs", Some(scopes)))?;
                    scopes += 1;
                }
                (3, value) => drop(value.text().map_err(at("schema_url", None))?),
                _ => {}
            }
        }
        let resource = ResourceFields::new(if resource.is_present() {
            resource_attributes(&resource.bytes()).map_err(at("resource", None))?
        } else {
            Map::new()
        });
        let mut s = 0;
        for field in Fields::new(bytes, schema::resource_logs) {
            if let (2, value) = field? {
                let within = |e: WireError| e.within("scope_logs", Some(s));
                self.scope_logs(value.delimited().map_err(within)?, &resource, [r, s])
                    .map_err(within)?;
                s += 1;
            }
        }
        Ok(())
    }

    fn scope_logs(
        &mut self,
        bytes: &'a [u8],
        resource: &ResourceFields,
        place: [usize; 2],
    ) -> Read<()> {
        let mut scope = Occurrences::default();
        let mut records = 0;
        for field in Fields::new(bytes, schema::scope_logs) {
            match field? {
                (1, value) => scope.push(value.delimited().map_err(at("scope", None))?),
                (2, value) => {
                    value
                        .delimited()
                        .map_err(at("log_records", Some(records)))?;
                    records += 1;
                }
                (3, value) => drop(value.text().map_err(at("schema_url", None))?),
                _ => {}
            }
        }
        let scope = if scope.is_present() {
            scope_fields(&scope.bytes()).map_err(at("scope", None))?
        } else {
            ScopeFields::default()
        };
        let mut l = 0;
        for field in Fields::new(bytes, schema::scope_logs) {
            if let (2, value) = field? {
                let within = |e: WireError| e.within("log_records", Some(l));
                let record = value.delimited().map_err(within)?;
                self.log_record(record, &scope, resource, [place[0], place[1], l])
                    .map_err(within)?;
                l += 1;
            }
        }
        Ok(())
    }

    fn log_record(
        &mut self,
        bytes: &'a [u8],
        scope: &ScopeFields,
        resource: &ResourceFields,
        [r, s, l]: [usize; 3],
    ) -> Read<()> {
        let mut record = RecordFields::default();
        let mut body = Occurrences::default();
        let mut attributes = std::mem::take(&mut self.attributes);
        attributes.clear();
        for field in Fields::new(bytes, schema::log_record) {
            let (number, value) = field?;
            let within = at(schema::log_record(number).unwrap_or_default(), None);
            match number {
                1 => record.time_unix_nano = value.fixed64().map_err(within)?,
                2 => record.severity_number = value.varint().map_err(within)? as i32,
                3 => record.severity_text = value.text().map_err(within)?,
                5 => body.push(value.delimited().map_err(within)?),
                6 => attributes.push(
                    value
                        .delimited()
                        .map_err(at("attributes", Some(attributes.len())))?,
                ),
                7 => drop(value.varint().map_err(within)?),
                8 => drop(value.fixed32().map_err(within)?),
                9 => record.trace_id = value.delimited().map_err(within)?,
                10 => record.span_id = value.delimited().map_err(within)?,
                11 => record.observed_time_unix_nano = value.fixed64().map_err(within)?,
                12 => record.event_name = value.text().map_err(within)?,
                _ => {}
            }
        }
        // Attributes and body are read even for a record that is then rejected: a request
        // with a malformed one is refused whole.
        let mut map = Map::with_capacity(attributes.len() + 4);
        for (i, attribute) in attributes.iter().enumerate() {
            let (key, value) =
                key_value(attribute, ATTRIBUTE_DEPTH).map_err(at("attributes", Some(i)))?;
            insert_first(&mut map, key, value);
        }
        self.attributes = attributes;
        let summary = if body.is_present() {
            map_body(&body.bytes(), &mut map).map_err(at("body", None))?
        } else {
            None
        };
        if let Err(reason) = check_record(&record) {
            self.mapped.rejected += 1;
            if self.mapped.first_rejection.is_none() {
                self.mapped.first_rejection = Some(format!(
                    "resource_logs[{r}].scope_logs[{s}].log_records[{l}]: {reason}"
                ));
            }
            return Ok(());
        }
        let event = finish_event(
            map,
            summary,
            &record,
            scope,
            resource,
            self.now,
            &mut self.ids,
        );
        self.mapped.events.push(event);
        Ok(())
    }
}

/// Adds the field's name (and index) to an error from inside it.
fn at(field: &'static str, index: Option<usize>) -> impl Fn(WireError) -> WireError {
    move |e| e.within(field, index)
}

/// A `Resource`'s attributes as a map (its other fields checked and skipped).
fn resource_attributes(bytes: &[u8]) -> Read<Map> {
    let mut map = Map::new();
    let (mut attributes, mut entity_refs) = (0, 0);
    for field in Fields::new(bytes, schema::resource) {
        match field? {
            (1, value) => {
                let within = at("attributes", Some(attributes));
                let (key, value) = key_value(value.delimited().map_err(within)?, 3)
                    .map_err(at("attributes", Some(attributes)))?;
                insert_first(&mut map, key, value);
                attributes += 1;
            }
            (2, value) => drop(
                value
                    .varint()
                    .map_err(at("dropped_attributes_count", None))?,
            ),
            (3, value) => {
                let within = at("entity_refs", Some(entity_refs));
                entity_ref(value.delimited().map_err(&within)?).map_err(within)?;
                entity_refs += 1;
            }
            _ => {}
        }
    }
    Ok(map)
}

/// Checks an `EntityRef` (all strings), which siemrelay does not map.
fn entity_ref(bytes: &[u8]) -> Read<()> {
    for field in Fields::new(bytes, schema::entity_ref) {
        let (number, value) = field?;
        if let Some(name) = schema::entity_ref(number) {
            value.text().map_err(at(name, None))?;
        }
    }
    Ok(())
}

/// An `InstrumentationScope`'s name, version and attributes.
fn scope_fields(bytes: &[u8]) -> Read<ScopeFields> {
    let (mut name, mut version) = ("", "");
    let mut map = Map::new();
    let mut attributes = 0;
    for field in Fields::new(bytes, schema::scope) {
        match field? {
            (1, value) => name = value.text().map_err(at("name", None))?,
            (2, value) => version = value.text().map_err(at("version", None))?,
            (3, value) => {
                let within = at("attributes", Some(attributes));
                let (key, value) =
                    key_value(value.delimited().map_err(&within)?, 3).map_err(within)?;
                insert_first(&mut map, key, value);
                attributes += 1;
            }
            (4, value) => drop(
                value
                    .varint()
                    .map_err(at("dropped_attributes_count", None))?,
            ),
            _ => {}
        }
    }
    Ok(ScopeFields {
        name: Some(name.to_string()).filter(|n| !n.is_empty()),
        version: Some(version.to_string()).filter(|v| !v.is_empty()),
        attributes: Some(map).filter(|a| !a.is_empty()),
    })
}

/// A `KeyValue` at nesting `depth`: its key and its value as JSON.
fn key_value(bytes: &[u8], depth: usize) -> Read<(String, Value)> {
    // The shape every SDK writes (key, then value, short lengths) is read without the general
    // field loop; anything else, or anything wrong, takes the loop (and its errors).
    if let Some((key, value)) = split_key_value(bytes)
        && let Ok(key) = std::str::from_utf8(key)
    {
        let value = any_value_json(value, depth + 1).map_err(at("value", None))?;
        return Ok((key.to_string(), value));
    }
    let mut key = "";
    let mut value = Occurrences::default();
    for field in Fields::new(bytes, schema::key_value) {
        match field? {
            (1, v) => key = v.text().map_err(at("key", None))?,
            (2, v) => value.push(v.delimited().map_err(at("value", None))?),
            (3, v) => drop(v.varint().map_err(at("key_strindex", None))?),
            _ => {}
        }
    }
    let value = if value.is_present() {
        any_value_json(&value.bytes(), depth + 1).map_err(at("value", None))?
    } else {
        Value::Null
    };
    Ok((key.to_string(), value))
}

/// A `KeyValue` of exactly `key` (field 1) then `value` (field 2), each under 128 bytes.
fn split_key_value(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&[0x0a, key_length], rest) = bytes.split_first_chunk::<2>()? else {
        return None;
    };
    let (key, rest) = rest.split_at_checked(usize::from(key_length))?;
    let (&[0x12, value_length], value) = rest.split_first_chunk::<2>()? else {
        return None;
    };
    (key_length < 0x80 && value_length < 0x80 && value.len() == usize::from(value_length))
        .then_some((key, value))
}

/// The value an `AnyValue` holds, borrowed from the wire (the last of its `oneof` fields).
enum Kind<'a> {
    String(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(Occurrences<'a>),
    Kvlist(Occurrences<'a>),
    /// A profiling string-table index: meaningless for logs.
    Strindex,
}

/// Reads an `AnyValue` at nesting `depth`.
fn any_value(bytes: &[u8], depth: usize) -> Read<Option<Kind<'_>>> {
    if depth > MAX_DEPTH {
        return Err(WireError::new("messages nested too deep"));
    }
    // One scalar field (what SDKs write for most values) is read without the general loop.
    match bytes {
        [0x0a, length, text @ ..] if *length < 0x80 && text.len() == usize::from(*length) => {
            if let Ok(text) = std::str::from_utf8(text) {
                return Ok(Some(Kind::String(text)));
            }
        }
        [0x18, int] if *int < 0x80 => return Ok(Some(Kind::Int(i64::from(*int)))),
        [0x21, bits @ ..] if bits.len() == 8 => {
            let bits: [u8; 8] = bits.try_into().unwrap_or_default();
            return Ok(Some(Kind::Double(f64::from_le_bytes(bits))));
        }
        _ => {}
    }
    let mut kind = None;
    for field in Fields::new(bytes, schema::any_value) {
        let (number, value) = field?;
        let within = at(schema::any_value(number).unwrap_or_default(), None);
        let next = match number {
            1 => Kind::String(value.text().map_err(within)?),
            2 => Kind::Bool(value.varint().map_err(within)? != 0),
            3 => Kind::Int(value.varint().map_err(within)? as i64),
            4 => Kind::Double(f64::from_bits(value.fixed64().map_err(within)?)),
            5 | 6 => {
                let message = value.delimited().map_err(within)?;
                // The same message variant again merges into it.
                match (&mut kind, number) {
                    (Some(Kind::Array(occurrences)), 5) | (Some(Kind::Kvlist(occurrences)), 6) => {
                        occurrences.push(message);
                        continue;
                    }
                    _ => {}
                }
                let mut occurrences = Occurrences::default();
                occurrences.push(message);
                if number == 5 {
                    Kind::Array(occurrences)
                } else {
                    Kind::Kvlist(occurrences)
                }
            }
            7 => Kind::Bytes(value.delimited().map_err(within)?),
            8 => {
                value.varint().map_err(within)?;
                Kind::Strindex
            }
            _ => continue,
        };
        // A replaced message variant was still decoded (and must be valid).
        if let Some(replaced @ (Kind::Array(_) | Kind::Kvlist(_))) = kind.replace(next) {
            kind_to_json(replaced, depth)?;
        }
    }
    Ok(kind)
}

/// An `AnyValue` at nesting `depth` as JSON (`null` when it holds nothing).
fn any_value_json(bytes: &[u8], depth: usize) -> Read<Value> {
    match any_value(bytes, depth)? {
        Some(kind) => kind_to_json(kind, depth),
        None => Ok(Value::Null),
    }
}

/// An `AnyValue`'s value (at nesting `depth`) as JSON, per the mapping table.
fn kind_to_json(kind: Kind<'_>, depth: usize) -> Read<Value> {
    Ok(match kind {
        Kind::String(text) => Value::String(text.to_string()),
        Kind::Bool(b) => Value::Bool(b),
        Kind::Int(i) => Value::from(i),
        Kind::Double(d) => double_to_json(d),
        Kind::Bytes(bytes) => bytes_to_json(bytes),
        Kind::Strindex => Value::Null,
        Kind::Array(occurrences) => {
            let bytes = occurrences.bytes();
            let mut values = Vec::new();
            for field in Fields::new(&bytes, schema::list) {
                if let (1, value) = field.map_err(at("array_value", None))? {
                    let within = |e: WireError| {
                        e.within("values", Some(values.len()))
                            .within("array_value", None)
                    };
                    let item = value.delimited().map_err(within)?;
                    let item = any_value_json(item, depth + 2).map_err(within)?;
                    values.push(item);
                }
            }
            Value::Array(values)
        }
        Kind::Kvlist(occurrences) => Value::Object(
            key_value_list(&occurrences.bytes(), depth).map_err(at("kvlist_value", None))?,
        ),
    })
}

/// The `KeyValueList` of an `AnyValue` at nesting `depth`, as a map.
fn key_value_list(bytes: &[u8], depth: usize) -> Read<Map> {
    let mut map = Map::new();
    for_each_key_value(bytes, depth, |key, value| {
        insert_first(&mut map, key, value)
    })?;
    Ok(map)
}

/// Calls `each` with every pair of the `KeyValueList` in `bytes`, in wire order.
fn for_each_key_value(bytes: &[u8], depth: usize, mut each: impl FnMut(String, Value)) -> Read<()> {
    let mut index = 0;
    for field in Fields::new(bytes, schema::list) {
        if let (1, value) = field? {
            let within = at("values", Some(index));
            let (key, value) =
                key_value(value.delimited().map_err(&within)?, depth + 2).map_err(within)?;
            each(key, value);
            index += 1;
        }
    }
    Ok(())
}

/// Maps a record's body: a string is the summary, a kvlist is merged into the attributes, a
/// scalar becomes the summary as JSON text, bytes and arrays go to the `body` attribute.
fn map_body(bytes: &[u8], attributes: &mut Map) -> Read<Option<String>> {
    let depth = ATTRIBUTE_DEPTH + 1;
    let Some(kind) = any_value(bytes, depth)? else {
        return Ok(None);
    };
    Ok(match kind {
        Kind::String(text) => Some(text.to_string()),
        Kind::Bool(b) => Some(b.to_string()),
        Kind::Int(i) => Some(i.to_string()),
        Kind::Double(d) => Some(double_to_json(d).to_string()),
        Kind::Kvlist(occurrences) => {
            let mut clashes = Map::new();
            for_each_key_value(&occurrences.bytes(), depth, |key, value| {
                if attributes.contains_key(&key) {
                    clashes.insert(key, value);
                } else {
                    attributes.insert(key, value);
                }
            })
            .map_err(at("kvlist_value", None))?;
            if !clashes.is_empty() {
                insert_derived(attributes, "body", Value::Object(clashes));
            }
            None
        }
        other => {
            insert_derived(attributes, "body", kind_to_json(other, depth)?);
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::mapping::oracle;
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Kind;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use proptest::prelude::*;
    use prost::Message;

    const NOW: Timestamp = Timestamp(1_763_629_200_000_000_000);
    const NAMESPACE: Uuid = Uuid::from_u128(0x5eed);

    /// Decodes `bytes` both ways: directly, and with prost then the old mapping. Both accept
    /// or both refuse; when both accept, their batches are the same. Returns the direct result.
    fn differential(bytes: &[u8]) -> Read<MappedRequest> {
        let direct = decode_request(bytes, 0, NOW, NAMESPACE);
        match (&direct, ExportLogsServiceRequest::decode(bytes)) {
            (Ok(mapped), Ok(request)) => {
                oracle::assert_same(mapped, &oracle::map_request(request, NOW, NAMESPACE));
            }
            (Err(_), Err(_)) => {}
            (Ok(_), Err(e)) => panic!("prost refuses what the decoder accepts: {e}"),
            (Err(e), Ok(_)) => panic!("the decoder refuses what prost accepts: {e}"),
        }
        direct
    }

    fn kv(key: &str, value: Kind) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    fn one_record(record: LogRecord) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
    }

    /// Keys that clash with what the mapping derives or looks up, and ordinary ones.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("event.name".to_string()),
            Just("event_type".to_string()),
            Just("event.id".to_string()),
            Just("event_id".to_string()),
            Just("body".to_string()),
            Just("otel.body".to_string()),
            Just("trace_id".to_string()),
            Just("span_id".to_string()),
            Just("otel.scope.name".to_string()),
            Just("observed_timestamp".to_string()),
            Just("service.name".to_string()),
            "[a-c]{1,2}",
            "\\PC{0,6}",
        ]
    }

    fn any_value() -> impl Strategy<Value = AnyValue> {
        let leaf = prop_oneof![
            Just(None),
            prop_oneof![
                Just(String::new()),
                Just("0192f0c4-8a52-7c3e-9d4b-2f6a1b3c4d5e".to_string()),
                "\\PC{0,8}",
            ]
            .prop_map(|s| Some(Kind::StringValue(s))),
            any::<bool>().prop_map(|b| Some(Kind::BoolValue(b))),
            any::<i64>().prop_map(|i| Some(Kind::IntValue(i))),
            prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(-0.0)
            ]
            .prop_map(|d| Some(Kind::DoubleValue(d))),
            proptest::collection::vec(any::<u8>(), 0..6).prop_map(|b| Some(Kind::BytesValue(b))),
            any::<i32>().prop_map(|i| Some(Kind::StringValueStrindex(i))),
        ]
        .prop_map(|value| AnyValue { value });
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                    value: Some(Kind::ArrayValue(ArrayValue { values })),
                }),
                proptest::collection::vec(
                    (key(), proptest::option::of(inner)).prop_map(|(key, value)| KeyValue {
                        key,
                        value,
                        ..KeyValue::default()
                    }),
                    0..4
                )
                .prop_map(|values| AnyValue {
                    value: Some(Kind::KvlistValue(KeyValueList { values })),
                }),
            ]
        })
    }

    fn key_values() -> impl Strategy<Value = Vec<KeyValue>> {
        proptest::collection::vec(
            (key(), proptest::option::of(any_value())).prop_map(|(key, value)| KeyValue {
                key,
                value,
                ..KeyValue::default()
            }),
            0..6,
        )
    }

    fn nanos() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            1u64..2_000_000_000_000_000_000,
            Just(i64::MAX as u64),
            Just(i64::MAX as u64 + 1),
        ]
    }

    fn id() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(Vec::new()),
            Just(vec![0; 16]),
            proptest::collection::vec(any::<u8>(), 0..17),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("warn".to_string()),
            Just("ERROR".to_string()),
            "\\PC{0,5}",
        ]
    }

    fn log_record() -> impl Strategy<Value = LogRecord> {
        (
            (nanos(), nanos(), -2i32..30, text(), text()),
            (proptest::option::of(any_value()), key_values(), id(), id()),
        )
            .prop_map(
                |(
                    (
                        time_unix_nano,
                        observed_time_unix_nano,
                        severity_number,
                        severity_text,
                        event_name,
                    ),
                    (body, attributes, trace_id, span_id),
                )| LogRecord {
                    time_unix_nano,
                    observed_time_unix_nano,
                    severity_number,
                    severity_text,
                    event_name,
                    body,
                    attributes,
                    trace_id,
                    span_id,
                    ..LogRecord::default()
                },
            )
    }

    fn request() -> impl Strategy<Value = ExportLogsServiceRequest> {
        let scope = proptest::option::of((text(), text(), key_values()).prop_map(
            |(name, version, attributes)| InstrumentationScope {
                name,
                version,
                attributes,
                ..InstrumentationScope::default()
            },
        ));
        let scope_logs = (scope, proptest::collection::vec(log_record(), 0..5)).prop_map(
            |(scope, log_records)| ScopeLogs {
                scope,
                log_records,
                ..ScopeLogs::default()
            },
        );
        let resource = proptest::option::of(key_values().prop_map(|attributes| Resource {
            attributes,
            ..Resource::default()
        }));
        let resource_logs = (resource, proptest::collection::vec(scope_logs, 0..3)).prop_map(
            |(resource, scope_logs)| ResourceLogs {
                resource,
                scope_logs,
                ..ResourceLogs::default()
            },
        );
        proptest::collection::vec(resource_logs, 0..3)
            .prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn generated_requests_decode_to_the_events_of_the_prost_mapping(request in request()) {
            let bytes = request.encode_to_vec();
            let direct = differential(&bytes).unwrap();
            let records: usize = request.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum();
            prop_assert_eq!(direct.events.len() + direct.rejected as usize, records);
        }

        #[test]
        fn damaged_requests_are_refused_or_decoded_as_prost_decodes_them(
            request in request(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes = request.encode_to_vec();
            let mut damaged = bytes.clone();
            for (at, mask) in flips {
                if !damaged.is_empty() {
                    let at = at.index(damaged.len());
                    damaged[at] ^= mask;
                }
            }
            let _ = differential(&damaged);
            let _ = differential(&bytes[..cut.index(bytes.len() + 1).min(bytes.len())]);
        }

        #[test]
        fn arbitrary_bytes_are_refused_or_decoded_as_prost_decodes_them(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = differential(&bytes);
        }
    }

    /// Bytes of a length-delimited field `number` holding `body`.
    fn delimited(number: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2];
        prost::encoding::encode_varint(body.len() as u64, &mut out);
        out.extend_from_slice(body);
        out
    }

    /// A request whose record 3 of scope 1 of resource 0 holds `record` (bytes).
    fn request_with_record(record: &[u8]) -> Vec<u8> {
        let good = LogRecord::default().encode_to_vec();
        let mut records = Vec::new();
        for _ in 0..3 {
            records.extend(delimited(2, &good));
        }
        records.extend(delimited(2, record));
        let mut scopes = delimited(2, &[]);
        scopes.extend(delimited(2, &records));
        delimited(1, &scopes)
    }

    #[test]
    fn malformed_fields_are_named_with_their_place_and_refuse_the_request() {
        let place = "resource_logs[0].scope_logs[1].log_records[3]";
        let attribute = kv("user", Kind::StringValue("ann".into())).encode_to_vec();
        let mut truncated = delimited(6, &attribute);
        truncated.truncate(truncated.len() - 2);
        let bad_key = delimited(6, &delimited(1, &[0xff, 0xfe]));
        let nested = kv(
            "list",
            Kind::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(Kind::StringValue("x".into())),
                }],
            }),
        )
        .encode_to_vec();
        // The array's string value (last byte) made invalid UTF-8.
        let mut bad_nested = delimited(6, &nested);
        *bad_nested.last_mut().unwrap() = 0xff;
        let cases: [(Vec<u8>, String); 5] = [
            (
                truncated,
                format!("{place}.attributes: truncated length-delimited field"),
            ),
            (
                bad_key,
                format!("{place}.attributes[0].key: a string field is not valid UTF-8"),
            ),
            (
                bad_nested,
                format!(
                    "{place}.attributes[0].value.array_value.values[0].string_value: \
                     a string field is not valid UTF-8"
                ),
            ),
            (
                vec![0x10 | 1, 0, 0, 0, 0, 0, 0, 0, 0],
                format!("{place}.severity_number: wire type fixed64 where the schema has varint"),
            ),
            (
                vec![0x09, 1, 2, 3],
                format!("{place}.time_unix_nano: truncated fixed64 field"),
            ),
        ];
        for (record, want) in cases {
            let bytes = request_with_record(&record);
            let error = differential(&bytes).unwrap_err();
            assert_eq!(error.to_string(), want);
        }
    }

    #[test]
    fn a_rejected_record_with_a_malformed_attribute_still_refuses_the_request() {
        // severity_number 30 would only reject the record; the bad attribute refuses it all.
        let mut record = vec![0x10, 30];
        record.extend(delimited(6, &delimited(1, &[0xc0])));
        let error = differential(&request_with_record(&record)).unwrap_err();
        assert!(error.to_string().contains("attributes[0].key"), "{error}");
    }

    #[test]
    fn unknown_fields_and_groups_are_skipped() {
        let record = LogRecord {
            severity_number: 9,
            attributes: vec![kv("a", Kind::IntValue(1))],
            ..LogRecord::default()
        };
        let plain = one_record(record.clone()).encode_to_vec();
        let mut extended = record.encode_to_vec();
        extended.extend([0x68, 5]); // field 13: varint
        extended.extend(delimited(14, b"future")); // field 14: bytes
        extended.extend([0x7b, 0x08, 1, 0x7c]); // field 15: a group
        extended.extend([0x85, 0x01, 1, 2, 3, 4]); // field 16: fixed32
        let mut request = request_with_record(&extended);
        request.extend(delimited(9, b"unknown at the root"));
        let direct = differential(&request).unwrap();
        let last = direct.events.last().unwrap();
        let expected = differential(&plain).unwrap();
        assert_eq!(last.attributes, expected.events[0].attributes);
        assert_eq!(last.severity, expected.events[0].severity);
    }

    #[test]
    fn message_fields_given_twice_are_merged_as_prost_merges_them() {
        // The resource twice (attributes concatenated), a body whose kvlist comes twice, and
        // an attribute value replaced by a later oneof field.
        let resource_a = Resource {
            attributes: vec![kv("service.name", Kind::StringValue("edr".into()))],
            ..Resource::default()
        };
        let resource_b = Resource {
            attributes: vec![kv("host", Kind::StringValue("h1".into()))],
            ..Resource::default()
        };
        let list = |key: &str| AnyValue {
            value: Some(Kind::KvlistValue(KeyValueList {
                values: vec![kv(key, Kind::BoolValue(true))],
            })),
        };
        let mut record = delimited(5, &list("x").encode_to_vec());
        record.extend(delimited(5, &list("y").encode_to_vec()));
        let mut value = AnyValue {
            value: Some(Kind::IntValue(1)),
        }
        .encode_to_vec();
        value.extend(
            AnyValue {
                value: Some(Kind::StringValue("later".into())),
            }
            .encode_to_vec(),
        );
        let mut attribute = delimited(1, b"v");
        attribute.extend(delimited(2, &value));
        record.extend(delimited(6, &attribute));
        let mut resource_logs = delimited(1, &resource_a.encode_to_vec());
        resource_logs.extend(delimited(2, &delimited(2, &record)));
        resource_logs.extend(delimited(1, &resource_b.encode_to_vec()));
        let direct = differential(&delimited(1, &resource_logs)).unwrap();
        let event = &direct.events[0];
        assert_eq!(event.resource.len(), 2);
        assert_eq!(event.source.as_deref(), Some("edr"));
        assert_eq!(event.attributes["x"], true);
        assert_eq!(event.attributes["y"], true);
        assert_eq!(event.attributes["v"], "later");
    }
}
