//! How an event becomes a flat Azure Monitor record: the default column mapping and the
//! configurable `columns` option.

use serde::ser::{Serialize, SerializeMap, Serializer};
use siemrelay_core::path::AttrPath;
use siemrelay_core::{Event, Map, Timestamp, Value};

/// Column types of a Log Analytics table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// `datetime`.
    DateTime,
    /// `string`.
    String,
    /// `int` (32 bits).
    Int,
    /// `long` (64 bits).
    Long,
    /// `dynamic` (a JSON object or array).
    Dynamic,
}

impl ColumnType {
    /// The name used in table schemas and DCR stream declarations.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::DateTime => "datetime",
            ColumnType::String => "string",
            ColumnType::Int => "int",
            ColumnType::Long => "long",
            ColumnType::Dynamic => "dynamic",
        }
    }
}

/// The default mapping: column name, source field of the event's JSON form, column type.
/// `examples/sentinel/azuredeploy.json` declares exactly these columns (checked by a test).
pub const DEFAULT_COLUMNS: &[(&str, &str, ColumnType)] = &[
    ("TimeGenerated", "timestamp", ColumnType::DateTime),
    ("EventTime", "timestamp", ColumnType::DateTime),
    ("EventId", "event_id", ColumnType::String),
    ("EventType", "event_type", ColumnType::String),
    ("Severity", "severity", ColumnType::String),
    ("SeverityNumber", "severity_number", ColumnType::Int),
    ("Source", "source", ColumnType::String),
    ("Summary", "summary", ColumnType::String),
    ("Attributes", "attributes", ColumnType::Dynamic),
    ("Resource", "resource", ColumnType::Dynamic),
    ("Signature", "signature", ColumnType::Dynamic),
    ("ObservedTime", "observed_timestamp", ColumnType::DateTime),
];

/// Where a column's value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    /// `event_id`.
    EventId,
    /// `timestamp` (RFC 3339).
    Timestamp,
    /// `observed_timestamp` (RFC 3339).
    ObservedTimestamp,
    /// `event_type`.
    EventType,
    /// `severity` (the text).
    Severity,
    /// `severity_number`.
    SeverityNumber,
    /// `source`.
    Source,
    /// `summary`.
    Summary,
    /// `attributes` or a path inside it (empty path = the whole object).
    Attributes(Vec<String>),
    /// `resource` or a path inside it.
    Resource(Vec<String>),
    /// `signature` or one of its keys (`alg`, `kid`, `value`, `prev`).
    Signature(Option<String>),
}

impl Field {
    /// Parses a source such as `event_id`, `attributes.user.name` or `resource."host.name"`
    /// (written `resource["host.name"]`).
    pub fn parse(text: &str) -> Result<Field, String> {
        let path = AttrPath::parse(text).map_err(|e| e.to_string())?;
        let (first, rest) = path
            .segments()
            .split_first()
            .ok_or_else(|| format!("{text:?} is empty"))?;
        let leaf = |field: Field| {
            if rest.is_empty() {
                Ok(field)
            } else {
                Err(format!("{first:?} has no nested keys (in {text:?})"))
            }
        };
        match first.as_str() {
            "event_id" => leaf(Field::EventId),
            "timestamp" => leaf(Field::Timestamp),
            "observed_timestamp" => leaf(Field::ObservedTimestamp),
            "event_type" => leaf(Field::EventType),
            "severity" => leaf(Field::Severity),
            "severity_number" => leaf(Field::SeverityNumber),
            "source" => leaf(Field::Source),
            "summary" => leaf(Field::Summary),
            "attributes" => Ok(Field::Attributes(rest.to_vec())),
            "resource" => Ok(Field::Resource(rest.to_vec())),
            "signature" => match rest {
                [] => Ok(Field::Signature(None)),
                [key] if matches!(key.as_str(), "alg" | "kid" | "value" | "prev") => {
                    Ok(Field::Signature(Some(key.clone())))
                }
                _ => Err(format!(
                    "signature has the keys alg, kid, value and prev (in {text:?})"
                )),
            },
            other => Err(format!(
                "unknown field {other:?}; use event_id, timestamp, observed_timestamp, event_type, severity, severity_number, source, summary, attributes[.path], resource[.path] or signature[.key]"
            )),
        }
    }
}

/// Checks a column name: a letter, then letters, digits or `_`, at most 45 characters.
pub fn check_column_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_ok || name.len() > 45 || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "{name:?} is not a valid column name (a letter, then letters, digits or _, at most 45 characters)"
        ));
    }
    Ok(())
}

/// The columns of every record, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Columns {
    columns: Vec<(String, Field)>,
}

impl Columns {
    /// The default mapping.
    pub fn default_mapping() -> Columns {
        Columns {
            columns: DEFAULT_COLUMNS
                .iter()
                .filter_map(|(name, source, _)| {
                    Field::parse(source).ok().map(|f| (name.to_string(), f))
                })
                .collect(),
        }
    }

    /// A configured mapping (column → source). `TimeGenerated` and `EventTime` are added from
    /// `timestamp` when not mapped (Log Analytics replaces a `TimeGenerated` more than 2 days
    /// old with the receive time; `EventTime` keeps the event's own).
    pub fn from_config<'a>(
        entries: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Columns, (String, String)> {
        let mut columns = Vec::new();
        for (name, source) in entries {
            check_column_name(name).map_err(|e| (name.clone(), e))?;
            let field = Field::parse(source).map_err(|e| (name.clone(), e))?;
            columns.push((name.clone(), field));
        }
        if !columns.iter().any(|(name, _)| name == "TimeGenerated") {
            columns.insert(0, ("TimeGenerated".into(), Field::Timestamp));
        }
        if !columns.iter().any(|(name, _)| name == "EventTime") {
            columns.insert(1, ("EventTime".into(), Field::Timestamp));
        }
        Ok(Columns { columns })
    }

    /// The column names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(name, _)| name.as_str())
    }

    /// Appends one event's record (a JSON object) to `out`.
    pub fn write_record(&self, event: &Event, out: &mut Vec<u8>) -> Result<(), String> {
        serde_json::to_writer(
            out,
            &Record {
                columns: self,
                event,
            },
        )
        .map_err(|e| format!("cannot encode the record: {e}"))
    }
}

/// RFC 3339 with microseconds (Log Analytics keeps 100 ns ticks; parsers take ≤ 7 digits).
pub fn azure_time(time: Timestamp) -> String {
    time.to_datetime()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

struct Record<'a> {
    columns: &'a Columns,
    event: &'a Event,
}

fn nested<'a>(map: &'a Map, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = map.get(first)?;
    for key in rest {
        value = value.as_object()?.get(key)?;
    }
    Some(value)
}

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.event;
        let mut map = serializer.serialize_map(None)?;
        for (name, field) in &self.columns.columns {
            match field {
                Field::EventId => map.serialize_entry(name, &e.event_id)?,
                Field::Timestamp => map.serialize_entry(name, &azure_time(e.timestamp))?,
                Field::ObservedTimestamp => {
                    map.serialize_entry(name, &azure_time(e.observed_timestamp))?
                }
                Field::EventType => map.serialize_entry(name, &e.event_type)?,
                Field::Severity => map.serialize_entry(name, &e.severity.text)?,
                Field::SeverityNumber => map.serialize_entry(name, &e.severity.number)?,
                Field::Source => {
                    if let Some(source) = &e.source {
                        map.serialize_entry(name, source)?;
                    }
                }
                Field::Summary => {
                    if let Some(summary) = &e.summary {
                        map.serialize_entry(name, summary)?;
                    }
                }
                Field::Attributes(path) if path.is_empty() => {
                    map.serialize_entry(name, &e.attributes)?
                }
                Field::Resource(path) if path.is_empty() => {
                    if !e.resource.is_empty() {
                        map.serialize_entry(name, &e.resource)?;
                    }
                }
                Field::Attributes(path) => {
                    if let Some(value) = nested(&e.attributes, path) {
                        map.serialize_entry(name, value)?;
                    }
                }
                Field::Resource(path) => {
                    if let Some(value) = nested(&e.resource, path) {
                        map.serialize_entry(name, value)?;
                    }
                }
                Field::Signature(key) => {
                    let Some(signature) = &e.signature else {
                        continue;
                    };
                    match key.as_deref() {
                        None => map.serialize_entry(name, signature)?,
                        Some("alg") => map.serialize_entry(name, &signature.alg)?,
                        Some("kid") => map.serialize_entry(name, &signature.kid)?,
                        Some("value") => map.serialize_entry(name, &signature.value)?,
                        _ => {
                            if let Some(prev) = &signature.prev {
                                map.serialize_entry(name, prev)?;
                            }
                        }
                    }
                }
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemrelay_core::{Severity, Signature};

    fn event() -> Event {
        let mut e = Event::new("lockout");
        e.timestamp = Timestamp::parse_rfc3339("2026-11-20T09:00:00.123456789Z").unwrap();
        e.observed_timestamp = Timestamp::parse_rfc3339("2026-11-20T09:00:01Z").unwrap();
        e.severity = Severity::from_name("high").unwrap();
        e.source = Some("toktra".into());
        *e.attributes = serde_json::json!({"user": {"name": "alice"}, "n": 3})
            .as_object()
            .unwrap()
            .clone();
        e.resource.insert("host.name".into(), "sensor-1".into());
        e.signature = Some(Box::new(Signature {
            alg: "HMAC-SHA256".into(),
            kid: "k1".into(),
            value: "ab".into(),
            prev: None,
        }));
        e
    }

    #[test]
    fn default_mapping_is_flat_with_time_generated() {
        let e = event();
        let mut out = Vec::new();
        Columns::default_mapping()
            .write_record(&e, &mut out)
            .unwrap();
        let record: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            record,
            serde_json::json!({
                "TimeGenerated": "2026-11-20T09:00:00.123456Z",
                "EventTime": "2026-11-20T09:00:00.123456Z",
                "EventId": e.event_id.to_string(),
                "EventType": "lockout",
                "Severity": "high",
                "SeverityNumber": 17,
                "Source": "toktra",
                "Attributes": {"user": {"name": "alice"}, "n": 3},
                "Resource": {"host.name": "sensor-1"},
                "Signature": {"alg": "HMAC-SHA256", "kid": "k1", "value": "ab"},
                "ObservedTime": "2026-11-20T09:00:01.000000Z",
            })
        );
    }

    #[test]
    fn configured_columns_rename_and_pick() {
        let entries: Vec<(String, String)> = vec![
            ("Computer".into(), r#"resource["host.name"]"#.into()),
            ("UserName".into(), "attributes.user.name".into()),
            ("Missing".into(), "attributes.nope".into()),
            ("Kid".into(), "signature.kid".into()),
        ];
        let columns = Columns::from_config(entries.iter().map(|(a, b)| (a, b))).unwrap();
        assert_eq!(
            columns.names().collect::<Vec<_>>(),
            [
                "TimeGenerated",
                "EventTime",
                "Computer",
                "UserName",
                "Missing",
                "Kid"
            ]
        );
        let mut out = Vec::new();
        columns.write_record(&event(), &mut out).unwrap();
        let record: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            record,
            serde_json::json!({"TimeGenerated": "2026-11-20T09:00:00.123456Z", "EventTime": "2026-11-20T09:00:00.123456Z", "Computer": "sensor-1", "UserName": "alice", "Kid": "k1"})
        );
        let bad: Vec<(String, String)> = vec![("9x".into(), "event_id".into())];
        assert_eq!(
            Columns::from_config(bad.iter().map(|(a, b)| (a, b)))
                .unwrap_err()
                .0,
            "9x"
        );
        assert!(Field::parse("event_id.x").is_err());
        assert!(Field::parse("bogus").unwrap_err().contains("unknown field"));
    }
}
