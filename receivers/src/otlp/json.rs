//! OTLP/JSON decoding of `ExportLogsServiceRequest` and encoding of responses.
//!
//! The OTLP JSON rules: lowerCamelCase keys (the original snake_case names are accepted too, as
//! protobuf's JSON parsers do), `traceId`/`spanId` as hex, 64-bit integers as decimal strings or
//! numbers, enums as integers, `bytesValue` as base64, unknown keys ignored, `null` = absent.
//! Errors name the field's path in the request (`resourceLogs[0].scopeLogs[1].logRecords[2]…`).

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
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

/// Decodes an OTLP/JSON `ExportLogsServiceRequest`.
pub fn decode_request(body: &[u8]) -> Result<ExportLogsServiceRequest> {
    let root: Value = serde_json::from_slice(body).map_err(|e| JsonError {
        path: "request body".into(),
        message: format!("not valid JSON: {e}"),
    })?;
    decode_value(root)
}

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

fn object(value: Value, path: &str) -> Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(wrong(path, "an object", &other)),
    }
}

fn optional<T>(value: Value, path: &str, item: fn(Value, &str) -> Result<T>) -> Result<Option<T>> {
    if value.is_null() {
        Ok(None)
    } else {
        item(value, path).map(Some)
    }
}

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

    #[test]
    fn responses_follow_otlp_json() {
        assert_eq!(encode_response(0, ""), b"{}");
        let partial: Value = serde_json::from_slice(&encode_response(2, "bad")).unwrap();
        assert_eq!(partial["partialSuccess"]["rejectedLogRecords"], "2");
        assert_eq!(partial["partialSuccess"]["errorMessage"], "bad");
    }
}
