//! A pass over an `ExportLogsServiceRequest`'s protobuf bytes before it is decoded: counts its
//! log records (stopping at the first one over the limit) and estimates the memory the decoded
//! request and its events will take, so both limits hold before anything is allocated.
//!
//! 1,983 bytes of gzip can hold a million empty log records (two bytes each on the wire, a few
//! hundred bytes each decoded): the count is what stops them, and the estimate, not the wire
//! size, is what the admission budget is charged. The pass allocates nothing and never
//! panics; bytes it cannot walk are reported as malformed, as prost would, with the field's
//! place in the request.

use super::wire::{Fields, MAX_DEPTH, WireError, WireValue, schema};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use siemrelay_core::{Event, Value};

/// Memory of one attribute in an event's map besides its key's text and value's heap.
const ENTRY_SIZE: usize = size_of::<String>() + size_of::<Value>() + 3 * size_of::<usize>();
/// Memory of a JSON value slot.
const VALUE_SIZE: usize = size_of::<Value>();

/// What the pass found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Log records in the request.
    pub records: usize,
    /// Estimated memory of the decoded protobuf request, in bytes.
    pub decoded_bytes: usize,
    /// Estimated memory of the events the request maps to, in bytes.
    pub event_bytes: usize,
}

/// Why the pass stopped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CensusError {
    /// More log records than the limit.
    #[error("the request holds more than max_events_per_request ({limit}) log records")]
    TooManyRecords {
        /// The configured limit.
        limit: usize,
    },
    /// The bytes are not a protobuf message of the expected shape (where and why).
    #[error("request body is not a valid ExportLogsServiceRequest: {0}")]
    Malformed(WireError),
}

impl From<WireError> for CensusError {
    fn from(error: WireError) -> CensusError {
        CensusError::Malformed(error)
    }
}

impl CensusError {
    /// A malformed field's place seen from the enclosing message (see [`WireError::within`]).
    fn within(self, field: &str, index: Option<usize>) -> CensusError {
        match self {
            CensusError::Malformed(error) => CensusError::Malformed(error.within(field, index)),
            other => other,
        }
    }
}

type Walked<T> = Result<T, CensusError>;

/// Adds the field's name (and index) to an error from inside it.
fn at(field: &'static str, index: Option<usize>) -> impl Fn(CensusError) -> CensusError {
    move |e| e.within(field, index)
}

/// The bytes of a message field, or the error naming it.
fn message<'a>(
    value: WireValue<'a>,
    field: &'static str,
    index: Option<usize>,
) -> Walked<&'a [u8]> {
    value
        .delimited()
        .map_err(|e| CensusError::Malformed(e.within(field, index)))
}

fn too_deep() -> CensusError {
    CensusError::Malformed(WireError::new("messages nested too deep"))
}

/// Counts and sizes the request in `body`, stopping after `max_records` records.
pub fn census(body: &[u8], max_records: usize) -> Result<Census, CensusError> {
    let mut walk = Walk {
        census: Census::default(),
        max_records,
    };
    let mut resource_logs = 0;
    for field in Fields::new(body, schema::request) {
        if let (1, value) = field? {
            let place = Some(resource_logs);
            walk.resource_logs(message(value, "resource_logs", place)?, 1)
                .map_err(at("resource_logs", place))?;
            resource_logs += 1;
        }
    }
    walk.census.decoded_bytes += vec_bytes(resource_logs, size_of::<ResourceLogs>());
    Ok(walk.census)
}

struct Walk {
    census: Census,
    max_records: usize,
}

impl Walk {
    fn resource_logs(&mut self, body: &[u8], depth: usize) -> Walked<()> {
        let records_before = self.census.records;
        let (mut resource_bytes, mut scopes) = (0, 0);
        for field in Fields::new(body, schema::resource_logs) {
            match field? {
                (1, value) => {
                    resource_bytes = self
                        .resource(message(value, "resource", None)?, depth + 1)
                        .map_err(at("resource", None))?;
                }
                (2, value) => {
                    let place = Some(scopes);
                    self.scope_logs(message(value, "scope_logs", place)?, depth + 1)
                        .map_err(at("scope_logs", place))?;
                    scopes += 1;
                }
                (3, value) => {
                    self.census.decoded_bytes += message(value, "schema_url", None)?.len();
                }
                _ => {}
            }
        }
        self.census.decoded_bytes += vec_bytes(scopes, size_of::<ScopeLogs>());
        // Every event of the resource carries its own copy of the resource's attributes.
        let records = self.census.records - records_before;
        self.census.event_bytes += records * resource_bytes;
        Ok(())
    }

    /// Walks a `Resource`; returns the memory of its attributes as an event's map.
    fn resource(&mut self, body: &[u8], depth: usize) -> Walked<usize> {
        let mut map = 0;
        let mut attributes = 0;
        for field in Fields::new(body, schema::resource) {
            if let (1, value) = field? {
                let place = Some(attributes);
                map += self
                    .key_value(message(value, "attributes", place)?, depth + 1)
                    .map_err(at("attributes", place))?;
                attributes += 1;
            }
        }
        self.census.decoded_bytes += vec_bytes(attributes, size_of::<KeyValue>());
        Ok(map)
    }

    fn scope_logs(&mut self, body: &[u8], depth: usize) -> Walked<()> {
        let records_before = self.census.records;
        let (mut scope_bytes, mut records) = (0, 0);
        for field in Fields::new(body, schema::scope_logs) {
            match field? {
                (1, value) => {
                    scope_bytes = self
                        .scope(message(value, "scope", None)?, depth + 1)
                        .map_err(at("scope", None))?;
                }
                (2, value) => {
                    self.census.records += 1;
                    if self.census.records > self.max_records {
                        return Err(CensusError::TooManyRecords {
                            limit: self.max_records,
                        });
                    }
                    let place = Some(records);
                    self.log_record(message(value, "log_records", place)?, depth + 1)
                        .map_err(at("log_records", place))?;
                    records += 1;
                }
                (3, value) => {
                    self.census.decoded_bytes += message(value, "schema_url", None)?.len();
                }
                _ => {}
            }
        }
        self.census.decoded_bytes += vec_bytes(records, size_of::<LogRecord>());
        // Every event of the scope carries copies of its name, version and attributes.
        self.census.event_bytes += (self.census.records - records_before) * scope_bytes;
        Ok(())
    }

    /// Walks an `InstrumentationScope`; returns what each of its events copies of it.
    fn scope(&mut self, body: &[u8], depth: usize) -> Walked<usize> {
        let (mut copied, mut attributes) = (0, 0);
        for field in Fields::new(body, schema::scope) {
            match field? {
                (number @ (1 | 2), value) => {
                    let name = if number == 1 { "name" } else { "version" };
                    let text = message(value, name, None)?.len();
                    self.census.decoded_bytes += text;
                    copied += text + ENTRY_SIZE + 20;
                }
                (3, value) => {
                    let place = Some(attributes);
                    copied += self
                        .key_value(message(value, "attributes", place)?, depth + 1)
                        .map_err(at("attributes", place))?;
                    attributes += 1;
                }
                _ => {}
            }
        }
        self.census.decoded_bytes += vec_bytes(attributes, size_of::<KeyValue>());
        if attributes > 0 {
            copied += ENTRY_SIZE + 24;
        }
        Ok(copied)
    }

    fn log_record(&mut self, body: &[u8], depth: usize) -> Walked<()> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let mut event = size_of::<Event>();
        let mut attributes = 0;
        for field in Fields::new(body, schema::log_record) {
            let (number, value) = field?;
            let name = schema::log_record(number).unwrap_or_default();
            match number {
                3 | 12 => {
                    let text = message(value, name, None)?.len();
                    self.census.decoded_bytes += text;
                    event += text;
                }
                5 => {
                    event += self
                        .any_value(message(value, name, None)?, depth + 1)
                        .map_err(at(name, None))?;
                }
                6 => {
                    let place = Some(attributes);
                    event += self
                        .key_value(message(value, name, place)?, depth + 1)
                        .map_err(at(name, place))?;
                    attributes += 1;
                }
                9 | 10 => {
                    let id = message(value, name, None)?.len();
                    self.census.decoded_bytes += id;
                    event += 2 * id + ENTRY_SIZE;
                }
                _ => {}
            }
        }
        self.census.decoded_bytes += vec_bytes(attributes, size_of::<KeyValue>());
        self.census.event_bytes += event;
        Ok(())
    }

    /// Walks a `KeyValue`; returns the memory of the attribute it becomes in an event's map.
    fn key_value(&mut self, body: &[u8], depth: usize) -> Walked<usize> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let mut entry = ENTRY_SIZE;
        for field in Fields::new(body, schema::key_value) {
            match field? {
                (1, value) => {
                    let key = message(value, "key", None)?.len();
                    self.census.decoded_bytes += key;
                    entry += key;
                }
                (2, value) => {
                    self.census.decoded_bytes += size_of::<AnyValue>();
                    entry += self
                        .any_value(message(value, "value", None)?, depth + 1)
                        .map_err(at("value", None))?;
                }
                _ => {}
            }
        }
        Ok(entry)
    }

    /// Walks an `AnyValue`; returns the heap memory of the JSON value it becomes.
    fn any_value(&mut self, body: &[u8], depth: usize) -> Walked<usize> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let mut heap = 0;
        for field in Fields::new(body, schema::any_value) {
            let (number, value) = field?;
            let name = schema::any_value(number).unwrap_or_default();
            match number {
                1 => {
                    let text = message(value, name, None)?.len();
                    self.census.decoded_bytes += text;
                    heap += text;
                }
                7 => {
                    // Bytes become base64 text.
                    let bytes = message(value, name, None)?.len();
                    self.census.decoded_bytes += bytes;
                    heap += bytes.div_ceil(3) * 4;
                }
                5 => {
                    let mut items = 0;
                    for item in Fields::new(message(value, name, None)?, schema::list) {
                        if let (1, item) = item.map_err(|e| e.within(name, None))? {
                            let place = Some(items);
                            heap += VALUE_SIZE
                                + self
                                    .any_value(message(item, "values", place)?, depth + 2)
                                    .map_err(|e| e.within("values", place).within(name, None))?;
                            items += 1;
                        }
                    }
                    self.census.decoded_bytes += vec_bytes(items, size_of::<AnyValue>());
                }
                6 => {
                    let mut items = 0;
                    for item in Fields::new(message(value, name, None)?, schema::list) {
                        if let (1, item) = item.map_err(|e| e.within(name, None))? {
                            let place = Some(items);
                            heap += self
                                .key_value(message(item, "values", place)?, depth + 2)
                                .map_err(|e| e.within("values", place).within(name, None))?;
                            items += 1;
                        }
                    }
                    self.census.decoded_bytes += vec_bytes(items, size_of::<KeyValue>());
                }
                _ => {}
            }
        }
        Ok(heap)
    }
}

/// Memory of a `Vec` grown by pushing `count` elements of `size` bytes.
fn vec_bytes(count: usize, size: usize) -> usize {
    if count == 0 {
        0
    } else {
        count.next_power_of_two().max(4) * size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Kind;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use proptest::prelude::*;
    use prost::Message;

    fn request(records: Vec<LogRecord>, resource: Vec<KeyValue>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "scope".into(),
                        ..InstrumentationScope::default()
                    }),
                    log_records: records,
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
    }

    fn kv(key: &str, value: Kind) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    #[test]
    fn counts_records_and_stops_at_the_limit() {
        let body = request(vec![LogRecord::default(); 1000], vec![]).encode_to_vec();
        let census = census(&body, 1000).unwrap();
        assert_eq!(census.records, 1000);
        // Two bytes a record on the wire, hundreds in memory.
        assert!(census.decoded_bytes >= 1000 * size_of::<LogRecord>());
        assert!(census.event_bytes >= 1000 * size_of::<Event>());
        assert_eq!(
            super::census(&body, 999).unwrap_err(),
            CensusError::TooManyRecords { limit: 999 }
        );
    }

    #[test]
    fn the_resource_copied_into_every_event_is_counted_per_event() {
        let resource: Vec<KeyValue> = (0..20)
            .map(|i| kv(&format!("k{i}"), Kind::StringValue("x".repeat(100))))
            .collect();
        let small = census(
            &request(vec![LogRecord::default(); 100], vec![]).encode_to_vec(),
            1000,
        )
        .unwrap();
        let big = census(
            &request(vec![LogRecord::default(); 100], resource).encode_to_vec(),
            1000,
        )
        .unwrap();
        assert!(
            big.event_bytes >= small.event_bytes + 100 * 20 * 100,
            "{small:?} {big:?}"
        );
    }

    #[test]
    fn nested_values_are_sized_and_depth_is_bounded() {
        let mut value = Kind::StringValue("leaf".into());
        for _ in 0..30 {
            value = Kind::ArrayValue(ArrayValue {
                values: vec![AnyValue { value: Some(value) }],
            });
        }
        let record = LogRecord {
            attributes: vec![kv("deep", value)],
            ..LogRecord::default()
        };
        let body = request(vec![record], vec![]).encode_to_vec();
        let sized = census(&body, 10).unwrap();
        assert!(sized.event_bytes > 30 * VALUE_SIZE);
        // Bytes that are not protobuf are malformed, not a panic.
        assert!(matches!(
            census(&[0x0a, 0xff], 10),
            Err(CensusError::Malformed(_))
        ));
        assert!(matches!(
            census(&[0x00], 10),
            Err(CensusError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_agree_with_prost(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let decoded = ExportLogsServiceRequest::decode(bytes.as_slice());
            match (census(&bytes, 1_000_000), decoded) {
                (Ok(census), Ok(decoded)) => {
                    let records: usize = decoded.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum();
                    prop_assert_eq!(records, census.records);
                }
                (Err(refused), Ok(_)) => prop_assert!(false, "census refuses what prost decodes: {refused}"),
                _ => {}
            }
        }

        #[test]
        fn the_limit_holds_for_generated_requests(records in 0usize..60, limit in 0usize..60, attrs in 0usize..5) {
            let record = LogRecord {
                attributes: (0..attrs).map(|i| kv(&i.to_string(), Kind::IntValue(i as i64))).collect(),
                ..LogRecord::default()
            };
            let body = request(vec![record; records], vec![]).encode_to_vec();
            match census(&body, limit) {
                Ok(found) => { prop_assert!(records <= limit); prop_assert_eq!(found.records, records); }
                Err(CensusError::TooManyRecords { .. }) => prop_assert!(records > limit),
                Err(other) => prop_assert!(false, "{other}"),
            }
        }
    }
}
