//! A protobuf wire reader over borrowed bytes, for decoding OTLP requests without message
//! structs: fields in wire order, each checked against the wire type its schema gives it, with
//! errors that name the field and its place in the request.
//!
//! It follows prost's rules, so that what prost refuses is refused and what it accepts is read
//! the same: unknown fields (groups too) are skipped, a scalar field seen twice keeps its last
//! value, and strings must be UTF-8.

use std::borrow::Cow;
use std::fmt;

/// Deepest nesting of messages and groups read (prost refuses deeper messages too).
pub const MAX_DEPTH: usize = 100;

/// Why request bytes are not a valid message, and where: `resource_logs[0].scope_logs[1]
/// .log_records[3].attributes: truncated length-delimited field`. Boxed, so that the results
/// the reader returns for every field stay small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(Box<Failure>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Failure {
    /// The field's path from the request's root (empty: the request itself).
    path: String,
    /// What is wrong.
    reason: Cow<'static, str>,
}

impl WireError {
    /// An error in the message being read (its path is added as the error leaves each level).
    #[cold]
    pub fn new(reason: impl Into<Cow<'static, str>>) -> WireError {
        WireError(Box::new(Failure {
            path: String::new(),
            reason: reason.into(),
        }))
    }

    /// The error seen from the enclosing message: inside its field `field` (item `index` of a
    /// repeated field).
    #[cold]
    pub fn within(mut self, field: &str, index: Option<usize>) -> WireError {
        let mut path = match index {
            Some(index) => format!("{field}[{index}]"),
            None => field.to_string(),
        };
        if !self.0.path.is_empty() {
            path.push('.');
            path.push_str(&self.0.path);
        }
        self.0.path = path;
        self
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.path.is_empty() {
            f.write_str(&self.0.reason)
        } else {
            write!(f, "{}: {}", self.0.path, self.0.reason)
        }
    }
}

impl std::error::Error for WireError {}

/// A result of reading the wire.
pub type Read<T> = Result<T, WireError>;

/// One field's value as it is on the wire.
#[derive(Clone, Copy, Debug)]
pub enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: a message, string or bytes.
    Delimited(&'a [u8]),
    /// Wire type 3, already skipped up to its end (only unknown fields may be groups).
    Group,
    /// Wire type 5.
    Fixed32(u32),
}

impl<'a> WireValue<'a> {
    fn wire_type_name(self) -> &'static str {
        match self {
            WireValue::Varint(_) => "varint",
            WireValue::Fixed64(_) => "fixed64",
            WireValue::Delimited(_) => "length-delimited",
            WireValue::Group => "group",
            WireValue::Fixed32(_) => "fixed32",
        }
    }

    fn wrong_type(self, expected: &str) -> WireError {
        WireError::new(format!(
            "wire type {} where the schema has {expected}",
            self.wire_type_name()
        ))
    }

    /// The bytes of a message, string or bytes field.
    pub fn delimited(self) -> Read<&'a [u8]> {
        match self {
            WireValue::Delimited(bytes) => Ok(bytes),
            other => Err(other.wrong_type("length-delimited")),
        }
    }

    /// The text of a string field (UTF-8 checked).
    pub fn text(self) -> Read<&'a str> {
        std::str::from_utf8(self.delimited()?)
            .map_err(|_| WireError::new("a string field is not valid UTF-8"))
    }

    /// The value of a varint field (int32, int64, uint32, bool, enum).
    pub fn varint(self) -> Read<u64> {
        match self {
            WireValue::Varint(value) => Ok(value),
            other => Err(other.wrong_type("varint")),
        }
    }

    /// The value of a fixed64 or double field.
    pub fn fixed64(self) -> Read<u64> {
        match self {
            WireValue::Fixed64(value) => Ok(value),
            other => Err(other.wrong_type("fixed64")),
        }
    }

    /// The value of a fixed32 field.
    pub fn fixed32(self) -> Read<u32> {
        match self {
            WireValue::Fixed32(value) => Ok(value),
            other => Err(other.wrong_type("fixed32")),
        }
    }
}

/// The fields of one message, in wire order; `name` names a field number for errors.
pub struct Fields<'a> {
    bytes: &'a [u8],
    name: fn(u32) -> Option<&'static str>,
    failed: bool,
}

impl<'a> Fields<'a> {
    /// Reads the message in `bytes`; `name` gives the schema's name of a field number.
    pub fn new(bytes: &'a [u8], name: fn(u32) -> Option<&'static str>) -> Fields<'a> {
        Fields {
            bytes,
            name,
            failed: false,
        }
    }

    /// Names field `number` for an error: the schema's name, else its number.
    pub fn field_name(&self, number: u32) -> Cow<'static, str> {
        match (self.name)(number) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(format!("field {number}")),
        }
    }

    #[inline]
    fn varint(&mut self) -> Option<u64> {
        // Most keys and lengths fit one byte.
        if let Some(&byte) = self.bytes.first()
            && byte < 0x80
        {
            self.bytes = &self.bytes[1..];
            return Some(u64::from(byte));
        }
        let mut value: u64 = 0;
        for (index, byte) in self.bytes.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                // The tenth byte may carry only the 64th bit (prost's rule).
                if index == 9 && *byte > 1 {
                    return None;
                }
                self.bytes = &self.bytes[index + 1..];
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if count > self.bytes.len() {
            return None;
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(taken)
    }

    /// Reads one key.
    #[inline]
    fn key(&mut self) -> Read<(u32, u8)> {
        let key = self
            .varint()
            .ok_or_else(|| WireError::new("truncated or overlong varint in a field key"))?;
        let key = u32::try_from(key)
            .map_err(|_| WireError::new(format!("field key {key} is out of range")))?;
        let number = key >> 3;
        if number == 0 {
            return Err(WireError::new("field number 0 is not allowed"));
        }
        Ok((number, (key & 7) as u8))
    }

    /// Reads the value of field `number` of wire type `wire_type` (after its key).
    #[inline]
    fn value(&mut self, number: u32, wire_type: u8, depth: usize) -> Read<WireValue<'a>> {
        match wire_type {
            0 => self
                .varint()
                .map(WireValue::Varint)
                .ok_or_else(|| WireError::new("truncated or overlong varint")),
            1 => self
                .take(8)
                .map(|b| WireValue::Fixed64(u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))))
                .ok_or_else(|| WireError::new("truncated fixed64 field")),
            2 => {
                let length = self
                    .varint()
                    .ok_or_else(|| WireError::new("truncated or overlong length"))?;
                usize::try_from(length)
                    .ok()
                    .and_then(|length| self.take(length))
                    .map(WireValue::Delimited)
                    .ok_or_else(|| WireError::new("truncated length-delimited field"))
            }
            3 => self
                .skip_group(number, depth + 1)
                .map(|()| WireValue::Group),
            4 => Err(WireError::new("an end-group tag without its start")),
            5 => self
                .take(4)
                .map(|b| WireValue::Fixed32(u32::from_le_bytes(b.try_into().unwrap_or([0; 4]))))
                .ok_or_else(|| WireError::new("truncated fixed32 field")),
            other => Err(WireError::new(format!("invalid wire type {other}"))),
        }
    }

    /// Skips a group (deprecated wire types 3/4) up to the end tag of field `number`.
    #[cold]
    fn skip_group(&mut self, number: u32, depth: usize) -> Read<()> {
        if depth > MAX_DEPTH {
            return Err(WireError::new("groups nested too deep"));
        }
        loop {
            if self.bytes.is_empty() {
                return Err(WireError::new("a group has no end tag"));
            }
            let (inner, wire_type) = self.key()?;
            if wire_type == 4 {
                return if inner == number {
                    Ok(())
                } else {
                    Err(WireError::new("a group ends with another field's end tag"))
                };
            }
            self.value(inner, wire_type, depth)?;
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Read<(u32, WireValue<'a>)>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.bytes.is_empty() {
            return None;
        }
        let read = self.key().and_then(|(number, wire_type)| {
            self.value(number, wire_type, 0)
                .map(|value| (number, value))
                .map_err(|e| e.within(&self.field_name(number), None))
        });
        self.failed = read.is_err();
        Some(read)
    }
}

/// A singular message field: its occurrences in wire order, read as one message (protobuf
/// merges a message field seen more than once, which is reading the concatenation).
#[derive(Default)]
pub struct Occurrences<'a> {
    first: Option<&'a [u8]>,
    more: Vec<&'a [u8]>,
}

impl<'a> Occurrences<'a> {
    /// One more occurrence.
    pub fn push(&mut self, bytes: &'a [u8]) {
        if self.first.is_none() {
            self.first = Some(bytes);
        } else {
            self.more.push(bytes);
        }
    }

    /// Whether the field was present at all.
    pub fn is_present(&self) -> bool {
        self.first.is_some()
    }

    /// The merged message's bytes (borrowed unless the field came more than once).
    pub fn bytes(&self) -> Cow<'a, [u8]> {
        match self.first {
            None => Cow::Borrowed(&[]),
            Some(first) if self.more.is_empty() => Cow::Borrowed(first),
            Some(first) => {
                let mut all = first.to_vec();
                for more in &self.more {
                    all.extend_from_slice(more);
                }
                Cow::Owned(all)
            }
        }
    }
}

/// The field names of the OTLP logs messages, by field number (for errors).
pub mod schema {
    /// The name of field `number`.
    pub fn request(number: u32) -> Option<&'static str> {
        (number == 1).then_some("resource_logs")
    }

    /// The name of field `number`.
    pub fn resource_logs(number: u32) -> Option<&'static str> {
        ["resource", "scope_logs", "schema_url"]
            .get(number.wrapping_sub(1) as usize)
            .copied()
    }

    /// The name of field `number`.
    pub fn resource(number: u32) -> Option<&'static str> {
        ["attributes", "dropped_attributes_count", "entity_refs"]
            .get(number.wrapping_sub(1) as usize)
            .copied()
    }

    /// The name of field `number`.
    pub fn entity_ref(number: u32) -> Option<&'static str> {
        ["schema_url", "type", "id_keys", "description_keys"]
            .get(number.wrapping_sub(1) as usize)
            .copied()
    }

    /// The name of field `number`.
    pub fn scope_logs(number: u32) -> Option<&'static str> {
        ["scope", "log_records", "schema_url"]
            .get(number.wrapping_sub(1) as usize)
            .copied()
    }

    /// The name of field `number`.
    pub fn scope(number: u32) -> Option<&'static str> {
        ["name", "version", "attributes", "dropped_attributes_count"]
            .get(number.wrapping_sub(1) as usize)
            .copied()
    }

    /// The name of field `number`.
    pub fn log_record(number: u32) -> Option<&'static str> {
        match number {
            1 => Some("time_unix_nano"),
            2 => Some("severity_number"),
            3 => Some("severity_text"),
            5 => Some("body"),
            6 => Some("attributes"),
            7 => Some("dropped_attributes_count"),
            8 => Some("flags"),
            9 => Some("trace_id"),
            10 => Some("span_id"),
            11 => Some("observed_time_unix_nano"),
            12 => Some("event_name"),
            _ => None,
        }
    }

    /// The name of field `number`.
    pub fn key_value(number: u32) -> Option<&'static str> {
        ["key", "value", "key_strindex"]
            .get(number.wrapping_sub(1) as usize)
            .copied()
    }

    /// The name of field `number`.
    pub fn any_value(number: u32) -> Option<&'static str> {
        [
            "string_value",
            "bool_value",
            "int_value",
            "double_value",
            "array_value",
            "kvlist_value",
            "bytes_value",
            "string_value_strindex",
        ]
        .get(number.wrapping_sub(1) as usize)
        .copied()
    }

    /// The name of field `number`.
    pub fn list(number: u32) -> Option<&'static str> {
        (number == 1).then_some("values")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_names(_: u32) -> Option<&'static str> {
        None
    }

    fn read_all(bytes: &[u8]) -> Read<Vec<(u32, String)>> {
        Fields::new(bytes, no_names)
            .map(|field| field.map(|(n, v)| (n, format!("{v:?}"))))
            .collect()
    }

    #[test]
    fn every_wire_type_is_read_and_groups_are_skipped() {
        let bytes = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1a, 2, b'h', b'i', // 3: "hi"
            0x23, 0x08, 0x01, 0x24, // 4: group holding 1: varint 1
            0x2d, 7, 0, 0, 0, // 5: fixed32 7
        ];
        let fields = read_all(&bytes).unwrap();
        assert_eq!(
            fields,
            [
                (1, "Varint(150)".into()),
                (2, "Fixed64(1)".into()),
                (3, "Delimited([104, 105])".into()),
                (4, "Group".into()),
                (5, "Fixed32(7)".into()),
            ]
        );
    }

    #[test]
    fn damaged_fields_are_named() {
        let cases: [(&[u8], &str); 7] = [
            (&[0x0a, 5, 1], "field 1: truncated length-delimited field"),
            (&[0x08, 0xff], "field 1: truncated or overlong varint"),
            (&[0x09, 1, 2], "field 1: truncated fixed64 field"),
            (&[0x0f], "field 1: invalid wire type 7"),
            (&[0x00], "field number 0 is not allowed"),
            (&[0x0c], "field 1: an end-group tag without its start"),
            (&[0x0b, 0x10, 1], "field 1: a group has no end tag"),
        ];
        for (bytes, want) in cases {
            assert_eq!(read_all(bytes).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn paths_grow_outward() {
        let error = WireError::new("truncated length-delimited field")
            .within("attributes", None)
            .within("log_records", Some(3))
            .within("scope_logs", Some(1))
            .within("resource_logs", Some(0));
        assert_eq!(
            error.to_string(),
            "resource_logs[0].scope_logs[1].log_records[3].attributes: \
             truncated length-delimited field"
        );
    }

    #[test]
    fn repeated_occurrences_read_as_their_concatenation() {
        let mut field = Occurrences::default();
        assert!(!field.is_present());
        field.push(b"ab");
        assert!(matches!(field.bytes(), Cow::Borrowed(b"ab")));
        field.push(b"cd");
        assert_eq!(&field.bytes()[..], b"abcd");
    }
}
