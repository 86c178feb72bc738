//! OTLP/JSON decoding of `ExportLogsServiceRequest` and encoding of responses.
//!
//! The OTLP JSON rules: lowerCamelCase keys (the original snake_case names are accepted too, as
//! protobuf's JSON parsers do), `traceId`/`spanId` as hex, 64-bit integers as decimal strings or
//! numbers, enums as integers, `bytesValue` as base64, unknown keys ignored, `null` = absent.
//! Errors name the field's path in the request (`resourceLogs[0].scopeLogs[1].logRecords[2]…`).
//!
//! [`to_protobuf`] writes the request as protobuf bytes for the protobuf decoder; the mapping to
//! prost's structs (`decode_value`) is kept for tests only, as the oracle it is checked against.

use base64::Engine as _;
#[cfg(test)]
use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest,
    common::v1::any_value::Value as AnyValueKind,
    common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    resource::v1::Resource,
};
use prost::encoding::WireType;
use serde_json::{Map, Value};

/// A field of the request that is not what OTLP/JSON allows.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct JsonError {
    /// Where in the request (`resourceLogs[0].scopeLogs[0].logRecords[3].timeUnixNano`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

type Result<T> = std::result::Result<T, JsonError>;

#[cfg(test)]
/// Decodes an OTLP/JSON `ExportLogsServiceRequest`.
pub fn decode_request(body: &[u8]) -> Result<ExportLogsServiceRequest> {
    let root: Value = serde_json::from_slice(body).map_err(|e| JsonError {
        path: "request body".into(),
        message: format!("not valid JSON: {e}"),
    })?;
    decode_value(root)
}

#[cfg(test)]
/// Decodes an OTLP/JSON `ExportLogsServiceRequest` already parsed into a JSON tree (the
/// receiver parses it under its limits first).
pub fn decode_value(root: Value) -> Result<ExportLogsServiceRequest> {
    let root = object(root, "request body")?;
    let mut request = ExportLogsServiceRequest::default();
    for (key, value) in root {
        if matches!(key.as_str(), "resourceLogs" | "resource_logs") {
            request.resource_logs = list(value, "resourceLogs", resource_logs)?;
        }
    }
    Ok(request)
}

#[cfg(test)]
fn resource_logs(value: Value, path: &str) -> Result<ResourceLogs> {
    let mut out = ResourceLogs::default();
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        match key.as_str() {
            "resource" => out.resource = optional(value, &path(), resource)?,
            "scopeLogs" | "scope_logs" => out.scope_logs = list(value, &path(), scope_logs)?,
            "schemaUrl" | "schema_url" => out.schema_url = string(value, &path())?,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
fn resource(value: Value, path: &str) -> Result<Resource> {
    let mut out = Resource::default();
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        match key.as_str() {
            "attributes" => out.attributes = list(value, &path(), key_value)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                out.dropped_attributes_count = unsigned32(value, &path())?;
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
fn scope_logs(value: Value, path: &str) -> Result<ScopeLogs> {
    let mut out = ScopeLogs::default();
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        match key.as_str() {
            "scope" => out.scope = optional(value, &path(), scope)?,
            "logRecords" | "log_records" => out.log_records = list(value, &path(), log_record)?,
            "schemaUrl" | "schema_url" => out.schema_url = string(value, &path())?,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
fn scope(value: Value, path: &str) -> Result<InstrumentationScope> {
    let mut out = InstrumentationScope::default();
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        match key.as_str() {
            "name" => out.name = string(value, &path())?,
            "version" => out.version = string(value, &path())?,
            "attributes" => out.attributes = list(value, &path(), key_value)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                out.dropped_attributes_count = unsigned32(value, &path())?;
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
fn log_record(value: Value, path: &str) -> Result<LogRecord> {
    let mut out = LogRecord::default();
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        match key.as_str() {
            "timeUnixNano" | "time_unix_nano" => out.time_unix_nano = unsigned64(value, &path())?,
            "observedTimeUnixNano" | "observed_time_unix_nano" => {
                out.observed_time_unix_nano = unsigned64(value, &path())?;
            }
            "severityNumber" | "severity_number" => {
                out.severity_number = signed32(value, &path())?;
            }
            "severityText" | "severity_text" => out.severity_text = string(value, &path())?,
            "body" => out.body = optional(value, &path(), any_value)?,
            "attributes" => out.attributes = list(value, &path(), key_value)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                out.dropped_attributes_count = unsigned32(value, &path())?;
            }
            "flags" => out.flags = unsigned32(value, &path())?,
            "traceId" | "trace_id" => out.trace_id = hex_id(value, &path(), 16)?,
            "spanId" | "span_id" => out.span_id = hex_id(value, &path(), 8)?,
            "eventName" | "event_name" => out.event_name = string(value, &path())?,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
fn key_value(value: Value, path: &str) -> Result<KeyValue> {
    let mut out = KeyValue::default();
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        match key.as_str() {
            "key" => out.key = string(value, &path())?,
            "value" => out.value = optional(value, &path(), any_value)?,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
fn any_value(value: Value, path: &str) -> Result<AnyValue> {
    let mut out = AnyValue::default();
    for (key, value) in object(value, path)? {
        if value.is_null() {
            continue;
        }
        let path = format!("{path}.{key}");
        let kind = match key.as_str() {
            "stringValue" | "string_value" => AnyValueKind::StringValue(string(value, &path)?),
            "boolValue" | "bool_value" => match value {
                Value::Bool(b) => AnyValueKind::BoolValue(b),
                other => return Err(wrong(&path, "true or false", &other)),
            },
            "intValue" | "int_value" => AnyValueKind::IntValue(signed64(value, &path)?),
            "doubleValue" | "double_value" => AnyValueKind::DoubleValue(double(value, &path)?),
            "bytesValue" | "bytes_value" => AnyValueKind::BytesValue(base64_bytes(value, &path)?),
            "arrayValue" | "array_value" => {
                let mut array = ArrayValue::default();
                for (key, value) in object(value, &path)? {
                    if key == "values" {
                        array.values = list(value, &format!("{path}.values"), any_value)?;
                    }
                }
                AnyValueKind::ArrayValue(array)
            }
            "kvlistValue" | "kvlist_value" => {
                let mut kvlist = KeyValueList::default();
                for (key, value) in object(value, &path)? {
                    if key == "values" {
                        kvlist.values = list(value, &format!("{path}.values"), key_value)?;
                    }
                }
                AnyValueKind::KvlistValue(kvlist)
            }
            _ => continue,
        };
        out.value = Some(kind);
    }
    Ok(out)
}

/// Writes an OTLP/JSON `ExportLogsServiceRequest`, already parsed into a JSON tree (the
/// receiver parses it under its limits first), as the protobuf bytes of the same request, which
/// the protobuf decoder turns into events: the JSON's strings go to the wire once, with no
/// message structs in between. The same rules and errors as the JSON mapping above; a field
/// given under both its names keeps the later one, as a JSON object's keys are read in order.
pub fn to_protobuf(root: Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut resource_logs = None;
    for (key, value) in object(root, "request body")? {
        if matches!(key.as_str(), "resourceLogs" | "resource_logs") {
            resource_logs = Some(wire_list(value, "resourceLogs", 1, resource_logs_wire)?);
        }
    }
    out.extend(resource_logs.unwrap_or_default());
    Ok(out)
}

/// The protobuf field key of `number` with wire type `wire_type`.
fn put_key(out: &mut Vec<u8>, number: u32, wire_type: WireType) {
    prost::encoding::encode_key(number, wire_type, out);
}

fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(out, number, WireType::LengthDelimited);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, number: u32, value: u64) {
    put_key(out, number, WireType::Varint);
    prost::encoding::encode_varint(value, out);
}

fn put_fixed64(out: &mut Vec<u8>, number: u32, value: u64) {
    put_key(out, number, WireType::SixtyFourBit);
    out.extend_from_slice(&value.to_le_bytes());
}

/// A list of messages as repeated field `number` (`null` = empty).
fn wire_list(
    value: Value,
    path: &str,
    number: u32,
    item: fn(Value, &str) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match value {
        Value::Null => {}
        Value::Array(items) => {
            for (i, value) in items.into_iter().enumerate() {
                put_bytes(&mut out, number, &item(value, &format!("{path}[{i}]"))?);
            }
        }
        other => return Err(wrong(path, "an array", &other)),
    }
    Ok(out)
}

/// An optional message as field `number` (`null` = absent).
fn wire_optional(
    out: &mut Vec<u8>,
    value: Value,
    path: &str,
    number: u32,
    item: fn(Value, &str) -> Result<Vec<u8>>,
) -> Result<()> {
    if !value.is_null() {
        put_bytes(out, number, &item(value, path)?);
    }
    Ok(())
}

fn resource_logs_wire(value: Value, path: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut scope_logs = None;
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        match key.as_str() {
            "resource" => wire_optional(&mut out, value, &path(), 1, resource_wire)?,
            "scopeLogs" | "scope_logs" => {
                scope_logs = Some(wire_list(value, &path(), 2, scope_logs_wire)?);
            }
            "schemaUrl" | "schema_url" => drop(string(value, &path())?),
            _ => {}
        }
    }
    out.extend(scope_logs.unwrap_or_default());
    Ok(out)
}

fn resource_wire(value: Value, path: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        match key.as_str() {
            "attributes" => out.extend(wire_list(value, &path(), 1, key_value_wire)?),
            "droppedAttributesCount" | "dropped_attributes_count" => {
                unsigned32(value, &path())?;
            }
            _ => {}
        }
    }
    Ok(out)
}

fn scope_logs_wire(value: Value, path: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut log_records = None;
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        match key.as_str() {
            "scope" => wire_optional(&mut out, value, &path(), 1, scope_wire)?,
            "logRecords" | "log_records" => {
                log_records = Some(wire_list(value, &path(), 2, log_record_wire)?);
            }
            "schemaUrl" | "schema_url" => drop(string(value, &path())?),
            _ => {}
        }
    }
    out.extend(log_records.unwrap_or_default());
    Ok(out)
}

fn scope_wire(value: Value, path: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        match key.as_str() {
            "name" => put_bytes(&mut out, 1, string(value, &path())?.as_bytes()),
            "version" => put_bytes(&mut out, 2, string(value, &path())?.as_bytes()),
            "attributes" => out.extend(wire_list(value, &path(), 3, key_value_wire)?),
            "droppedAttributesCount" | "dropped_attributes_count" => {
                unsigned32(value, &path())?;
            }
            _ => {}
        }
    }
    Ok(out)
}

fn log_record_wire(value: Value, path: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut attributes = Vec::new();
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        let out = &mut out;
        match key.as_str() {
            "timeUnixNano" | "time_unix_nano" => put_fixed64(out, 1, unsigned64(value, &path())?),
            "observedTimeUnixNano" | "observed_time_unix_nano" => {
                put_fixed64(out, 11, unsigned64(value, &path())?);
            }
            "severityNumber" | "severity_number" => {
                // int32 on the wire: sign-extended to 64 bits, as protobuf writes it.
                put_varint(out, 2, i64::from(signed32(value, &path())?) as u64);
            }
            "severityText" | "severity_text" => {
                put_bytes(out, 3, string(value, &path())?.as_bytes());
            }
            "body" => wire_optional(out, value, &path(), 5, any_value_wire)?,
            "attributes" => attributes = wire_list(value, &path(), 6, key_value_wire)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                unsigned32(value, &path())?;
            }
            "flags" => drop(unsigned32(value, &path())?),
            "traceId" | "trace_id" => put_bytes(out, 9, &hex_id(value, &path(), 16)?),
            "spanId" | "span_id" => put_bytes(out, 10, &hex_id(value, &path(), 8)?),
            "eventName" | "event_name" => put_bytes(out, 12, string(value, &path())?.as_bytes()),
            _ => {}
        }
    }
    out.extend(attributes);
    Ok(out)
}

fn key_value_wire(value: Value, path: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (key, value) in object(value, path)? {
        let path = || format!("{path}.{key}");
        match key.as_str() {
            "key" => put_bytes(&mut out, 1, string(value, &path())?.as_bytes()),
            "value" => wire_optional(&mut out, value, &path(), 2, any_value_wire)?,
            _ => {}
        }
    }
    Ok(out)
}

fn any_value_wire(value: Value, path: &str) -> Result<Vec<u8>> {
    // The last value given wins; only it goes to the wire (two message values would merge).
    let mut kind = Vec::new();
    for (key, value) in object(value, path)? {
        if value.is_null() {
            continue;
        }
        let path = format!("{path}.{key}");
        let mut out = Vec::new();
        match key.as_str() {
            "stringValue" | "string_value" => {
                put_bytes(&mut out, 1, string(value, &path)?.as_bytes());
            }
            "boolValue" | "bool_value" => match value {
                Value::Bool(b) => put_varint(&mut out, 2, u64::from(b)),
                other => return Err(wrong(&path, "true or false", &other)),
            },
            "intValue" | "int_value" => put_varint(&mut out, 3, signed64(value, &path)? as u64),
            "doubleValue" | "double_value" => {
                put_fixed64(&mut out, 4, double(value, &path)?.to_bits());
            }
            "bytesValue" | "bytes_value" => put_bytes(&mut out, 7, &base64_bytes(value, &path)?),
            "arrayValue" | "array_value" => {
                let mut values = Vec::new();
                for (key, value) in object(value, &path)? {
                    if key == "values" {
                        values = wire_list(value, &format!("{path}.values"), 1, any_value_wire)?;
                    }
                }
                put_bytes(&mut out, 5, &values);
            }
            "kvlistValue" | "kvlist_value" => {
                let mut values = Vec::new();
                for (key, value) in object(value, &path)? {
                    if key == "values" {
                        values = wire_list(value, &format!("{path}.values"), 1, key_value_wire)?;
                    }
                }
                put_bytes(&mut out, 6, &values);
            }
            _ => continue,
        }
        kind = out;
    }
    Ok(kind)
}

fn object(value: Value, path: &str) -> Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(wrong(path, "an object", &other)),
    }
}

#[cfg(test)]
fn optional<T>(value: Value, path: &str, item: fn(Value, &str) -> Result<T>) -> Result<Option<T>> {
    if value.is_null() {
        Ok(None)
    } else {
        item(value, path).map(Some)
    }
}

#[cfg(test)]
fn list<T>(value: Value, path: &str, item: fn(Value, &str) -> Result<T>) -> Result<Vec<T>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| item(v, &format!("{path}[{i}]")))
            .collect(),
        other => Err(wrong(path, "an array", &other)),
    }
}

fn string(value: Value, path: &str) -> Result<String> {
    match value {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        other => Err(wrong(path, "a string", &other)),
    }
}

/// An integer written as a JSON number or a decimal string, as protobuf's JSON mapping allows.
fn integer<T: TryFrom<i128>>(value: Value, path: &str, what: &str) -> Result<T> {
    let parsed: Option<i128> = match &value {
        Value::Null => Some(0),
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| wrong(path, what, &value))
}

fn unsigned64(value: Value, path: &str) -> Result<u64> {
    integer(
        value,
        path,
        "an unsigned 64-bit integer (decimal string or number)",
    )
}

fn signed64(value: Value, path: &str) -> Result<i64> {
    integer(
        value,
        path,
        "a signed 64-bit integer (decimal string or number)",
    )
}

fn unsigned32(value: Value, path: &str) -> Result<u32> {
    integer(value, path, "an unsigned 32-bit integer")
}

fn signed32(value: Value, path: &str) -> Result<i32> {
    integer(
        value,
        path,
        "a 32-bit integer (enums are integers in OTLP/JSON)",
    )
}

fn double(value: Value, path: &str) -> Result<f64> {
    match &value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            text => text.trim().parse().ok(),
        },
        _ => None,
    }
    .ok_or_else(|| wrong(path, "a number", &value))
}

fn base64_bytes(value: Value, path: &str) -> Result<Vec<u8>> {
    let text = string(value, path)?;
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|engine| engine.decode(&text).ok())
        .ok_or_else(|| JsonError {
            path: path.to_string(),
            message: "expected base64 bytes".into(),
        })
}

/// A trace or span id: hex of `len` bytes, or empty (= absent).
fn hex_id(value: Value, path: &str, len: usize) -> Result<Vec<u8>> {
    let text = string(value, path)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    match hex::decode(&text) {
        Ok(bytes) if bytes.len() == len => Ok(bytes),
        _ => Err(JsonError {
            path: path.to_string(),
            message: format!(
                "expected {} hex digits (OTLP/JSON ids are hex, not base64), got {text:?}",
                len * 2
            ),
        }),
    }
}

fn wrong(path: &str, expected: &str, got: &Value) -> JsonError {
    let got = match got {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.len() <= 40 => format!("{s:?}"),
        Value::String(_) => "a long string".to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    };
    JsonError {
        path: path.to_string(),
        message: format!("expected {expected}, got {got}"),
    }
}

/// The OTLP/JSON `ExportLogsServiceResponse`: `{}` or a `partialSuccess`.
pub fn encode_response(rejected: u64, error_message: &str) -> Vec<u8> {
    let body = if rejected == 0 && error_message.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({"partialSuccess": {
            "rejectedLogRecords": rejected.to_string(),
            "errorMessage": error_message,
        }})
    };
    body.to_string().into_bytes()
}

/// A `google.rpc.Status` in JSON.
pub fn encode_status(code: i32, message: &str) -> Vec<u8> {
    serde_json::json!({"code": code, "message": message})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The sample of siem-protocols.md §8.
    const SAMPLE: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"acme-edr"}}]},"scopeLogs":[{"scope":{"name":"acme.exporter"},"logRecords":[{"timeUnixNano":"1718000000123000000","severityNumber":17,"severityText":"ERROR","body":{"stringValue":"malware blocked"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}"#;

    #[test]
    fn the_protocol_sample_decodes() {
        let request = decode_request(SAMPLE.as_bytes()).unwrap();
        let rl = &request.resource_logs[0];
        assert_eq!(
            rl.resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
        let record = &rl.scope_logs[0].log_records[0];
        assert_eq!(record.time_unix_nano, 1_718_000_000_123_000_000);
        assert_eq!(record.severity_number, 17);
        assert_eq!(
            hex::encode(&record.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(hex::encode(&record.span_id), "eee19b7ec3c1b174");
    }

    #[test]
    fn numbers_strings_empty_containers_and_unknown_keys() {
        let json = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{
            "timeUnixNano": 5, "observed_time_unix_nano": "6", "flags": null, "future": {"x":1},
            "body": {"arrayValue": {}},
            "attributes": [
                {"key":"i","value":{"intValue":"-9223372036854775808"}},
                {"key":"n","value":{"intValue":12}},
                {"key":"d","value":{"doubleValue":"NaN"}},
                {"key":"b","value":{"bytesValue":"AQID"}},
                {"key":"kv","value":{"kvlistValue":{}}},
                {"key":"empty","value":{}}
            ]}]}]}]}"#;
        let request = decode_request(json.as_bytes()).unwrap();
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(
            (record.time_unix_nano, record.observed_time_unix_nano),
            (5, 6)
        );
        let values: Vec<_> = record
            .attributes
            .iter()
            .map(|kv| kv.value.as_ref().unwrap().value.clone())
            .collect();
        assert_eq!(values[0], Some(AnyValueKind::IntValue(i64::MIN)));
        assert_eq!(values[1], Some(AnyValueKind::IntValue(12)));
        assert!(matches!(values[2], Some(AnyValueKind::DoubleValue(d)) if d.is_nan()));
        assert_eq!(values[3], Some(AnyValueKind::BytesValue(vec![1, 2, 3])));
        assert_eq!(
            values[4],
            Some(AnyValueKind::KvlistValue(KeyValueList::default()))
        );
        assert_eq!(values[5], None);
        assert_eq!(
            record.body.as_ref().unwrap().value,
            Some(AnyValueKind::ArrayValue(ArrayValue::default()))
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{"timeUnixNano":"soon"}]}]}]}"#,
                "resourceLogs[0].scopeLogs[0].logRecords[1].timeUnixNano: expected an unsigned 64-bit",
            ),
            (
                r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"W47/95gDgQPSabYzgT/GDA=="}]}]}]}"#,
                "logRecords[0].traceId: expected 32 hex digits",
            ),
            (r#"{"resourceLogs":{}}"#, "resourceLogs: expected an array"),
            (r#"{"resourceLogs":[}"#, "request body: not valid JSON"),
        ];
        for (json, want) in cases {
            let err = decode_request(json.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    /// Both ways from a JSON tree to events: written as protobuf and decoded directly, and
    /// through prost's structs then the old mapping. Same events, or the same error.
    fn differential(root: Value) {
        use super::super::decode::decode_request;
        use super::super::mapping::oracle;
        use prost::Message;
        use siemrelay_core::Timestamp;
        const NOW: Timestamp = Timestamp(1_763_629_200_000_000_000);
        let namespace = uuid::Uuid::from_u128(0x5eed);
        let direct = to_protobuf(root.clone())
            .map(|bytes| decode_request(&bytes, 0, NOW, namespace).expect("valid protobuf"));
        match (direct, decode_value(root)) {
            (Ok(direct), Ok(request)) => {
                oracle::assert_same(&direct, &oracle::map_request(request, NOW, namespace));
            }
            (Err(direct), Err(old)) => assert_eq!(direct.to_string(), old.to_string()),
            (direct, old) => panic!(
                "direct {:?} but prost {:?}",
                direct.map(|m| m.events.len()),
                old.map(|r| r.encoded_len())
            ),
        }
    }

    /// Values of every JSON type, mostly of the types OTLP/JSON fields take.
    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..40).prop_map(Value::from),
            any::<i64>().prop_map(|i| Value::String(i.to_string())),
            Just(Value::from(u64::MAX)),
            any::<f64>().prop_map(|d| serde_json::json!(d)),
            prop::sample::select(vec![
                "",
                "abc",
                "event.name",
                "NaN",
                "-Infinity",
                "AQID",
                "_-8",
                "1718000000123000000",
                "5b8efff798038103d269b633813fc60c",
                "eee19b7ec3c1b174",
                "0192f0c4-8a52-7c3e-9d4b-2f6a1b3c4d5e",
            ])
            .prop_map(|s| Value::String(s.into())),
        ]
    }

    const KEYS: &[&str] = &[
        "resourceLogs",
        "resource",
        "scopeLogs",
        "scope_logs",
        "scope",
        "logRecords",
        "log_records",
        "attributes",
        "key",
        "value",
        "values",
        "name",
        "version",
        "body",
        "timeUnixNano",
        "time_unix_nano",
        "observedTimeUnixNano",
        "severityNumber",
        "severity_number",
        "severityText",
        "traceId",
        "spanId",
        "eventName",
        "flags",
        "stringValue",
        "string_value",
        "boolValue",
        "intValue",
        "doubleValue",
        "bytesValue",
        "arrayValue",
        "array_value",
        "kvlistValue",
        "kvlist_value",
        "schemaUrl",
        "other",
    ];

    /// JSON trees whose objects use OTLP's keys, any value anywhere.
    fn tree() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(6, 48, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((prop::sample::select(KEYS), inner), 0..5).prop_map(
                    |pairs| Value::Object(
                        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                    )
                ),
            ]
        })
    }

    fn text() -> impl Strategy<Value = Value> {
        prop::sample::select(vec![
            "",
            "a",
            "b",
            "event.name",
            "event_type",
            "event.id",
            "body",
            "trace_id",
            "0192f0c4-8a52-7c3e-9d4b-2f6a1b3c4d5e",
            "warn",
            "ERROR",
        ])
        .prop_map(|s| Value::String(s.into()))
    }

    /// An OTLP/JSON `AnyValue`, well-typed most of the time.
    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            text().prop_map(|v| serde_json::json!({"stringValue": v})),
            any::<i64>().prop_map(|v| serde_json::json!({"intValue": v.to_string()})),
            (-5i64..5).prop_map(|v| serde_json::json!({"int_value": v})),
            prop_oneof![
                any::<f64>().prop_map(|d| serde_json::json!(d)),
                Just(serde_json::json!("NaN"))
            ]
            .prop_map(|v| serde_json::json!({"doubleValue": v})),
            prop::sample::select(vec!["AQID", "_-8", "/w=="])
                .prop_map(|v| serde_json::json!({"bytesValue": v})),
            any::<bool>().prop_map(|v| serde_json::json!({"boolValue": v})),
            Just(serde_json::json!({})),
            scalar().prop_map(|v| serde_json::json!({"stringValue": v})),
            tree(),
        ];
        leaf.prop_recursive(2, 12, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3)
                    .prop_map(|v| serde_json::json!({"arrayValue": {"values": v}})),
                proptest::collection::vec((text(), inner), 0..3).prop_map(|v| {
                    let values: Vec<Value> = v
                        .into_iter()
                        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                        .collect();
                    serde_json::json!({"kvlistValue": {"values": values}})
                }),
            ]
        })
    }

    fn key_value() -> impl Strategy<Value = Value> {
        (prop_oneof![9 => text(), 1 => scalar()], any_value())
            .prop_map(|(key, value)| serde_json::json!({"key": key, "value": value}))
    }

    /// A record's scalar fields, well-typed most of the time.
    fn field() -> impl Strategy<Value = (&'static str, Value)> {
        prop_oneof![
            any::<u64>().prop_map(|t| ("timeUnixNano", Value::String(t.to_string()))),
            (0u64..2_000_000_000_000_000_000)
                .prop_map(|t| ("observed_time_unix_nano", Value::from(t))),
            (-2i64..30).prop_map(|n| ("severityNumber", Value::from(n))),
            text().prop_map(|t| ("severityText", t)),
            text().prop_map(|t| ("eventName", t)),
            prop::sample::select(vec![
                "",
                "5b8efff798038103d269b633813fc60c",
                "00000000000000000000000000000000"
            ])
            .prop_map(|t| ("traceId", Value::String(t.into()))),
            prop::sample::select(vec!["", "eee19b7ec3c1b174"])
                .prop_map(|t| ("spanId", Value::String(t.into()))),
            (prop::sample::select(KEYS), scalar()),
        ]
    }

    fn record() -> impl Strategy<Value = Value> {
        (
            proptest::collection::vec(key_value(), 0..4),
            proptest::option::of(any_value()),
            proptest::collection::vec(field(), 0..6),
        )
            .prop_map(|(attributes, body, fields)| {
                let mut record: Map<String, Value> = fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                record.insert("attributes".into(), Value::Array(attributes));
                if let Some(body) = body {
                    record.insert("body".into(), body);
                }
                Value::Object(record)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn json_requests_map_to_the_events_of_the_prost_path(
            records in proptest::collection::vec(record(), 0..5),
            resource in proptest::collection::vec(key_value(), 0..3),
            scope in prop_oneof![
                (text(), text(), proptest::collection::vec(key_value(), 0..2))
                    .prop_map(|(name, version, attributes)| serde_json::json!({"name": name, "version": version, "attributes": attributes})),
                tree(),
            ],
        ) {
            differential(serde_json::json!({"resourceLogs": [{
                "resource": {"attributes": resource},
                "scopeLogs": [{"scope": scope, "logRecords": records}],
            }]}));
        }

        #[test]
        fn arbitrary_json_trees_agree_with_the_prost_path(root in tree()) {
            differential(root);
        }
    }

    #[test]
    fn responses_follow_otlp_json() {
        assert_eq!(encode_response(0, ""), b"{}");
        let partial: Value = serde_json::from_slice(&encode_response(2, "bad")).unwrap();
        assert_eq!(partial["partialSuccess"]["rejectedLogRecords"], "2");
        assert_eq!(partial["partialSuccess"]["errorMessage"], "bad");
    }
}
