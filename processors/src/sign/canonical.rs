//! The canonical JSON form signatures are computed over: RFC 8785 (JSON Canonicalization
//! Scheme, JCS), except that integers are written exactly.
//!
//! - Objects: members sorted by key, compared as UTF-16 code units; no whitespace.
//! - Strings: `"` `\` and control characters escaped (`\b \t \n \f \r`, others `\u00xx` in
//!   lowercase hex); everything else, including `/`, DEL and non-ASCII, written as UTF-8.
//! - Floats: ECMAScript `Number.prototype.toString` (via `ryu-js`): `4.5`, `0.002`, `1e+30`,
//!   `-0` as `0`.
//! - Integers (values held as 64-bit integers, i.e. JSON numbers without fraction or exponent
//!   within −2^63 … 2^64−1): their exact decimal text. **Deviation from RFC 8785**, which
//!   writes every number as an IEEE double: `18446744073709551615` stays as is instead of
//!   becoming `18446744073709552000`, so integers beyond 2^53 stay exact and are covered by the
//!   signature digit for digit. For integers up to 2^53 in magnitude both rules give the same text.

use super::canonical_json::{CanonicalJsonScratch, write_canonical_json};
use siemrelay_core::{Event, Map, Value};
use std::cmp::Ordering;

/// Appends the canonical form of `value` to `out`.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    let mut stack = Vec::new();
    write_value(value, out, &mut stack);
}

/// The signature members that are signed: everything but `value`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SignedFields<'a> {
    /// Algorithm name.
    pub(crate) alg: &'a str,
    /// Key id.
    pub(crate) kid: &'a str,
    /// Chain link, when chaining.
    pub(crate) prev: Option<&'a str>,
}

/// Entries of objects being written, reused across nested objects (a stack of slices).
pub(crate) type EntryStack<'a> = Vec<(&'a str, &'a Value)>;

/// Empties `stack` and hands back its allocation for values of another lifetime.
pub(crate) fn recycle<'b>(mut stack: EntryStack<'_>) -> EntryStack<'b> {
    stack.clear();
    // Reuses the allocation: in-place collection of an empty vector of same-layout items.
    stack.into_iter().map(|_| unreachable_entry()).collect()
}

fn unreachable_entry<'b>() -> (&'b str, &'b Value) {
    unreachable!("the vector was emptied")
}

/// Marks where the signature object goes among the event's members.
static SIGNATURE_SLOT: Value = Value::Null;

/// Appends the MAC input of an event: the canonical form of `event` (its JSON object without
/// `signature`) with `"signature":{"alg":…,"kid":…[,"prev":…]}` added. Returns the offset of
/// the signature object's closing `}`, where `,"value":"<hex>"` goes in the full canonical form.
pub(crate) fn write_signing_input<'a>(
    event: &'a Map,
    signed: SignedFields<'_>,
    out: &mut Vec<u8>,
    stack: &mut EntryStack<'a>,
) -> usize {
    let start = stack.len();
    stack.extend(
        event
            .iter()
            .filter(|(k, _)| k.as_str() != "signature")
            .map(|(k, v)| (k.as_str(), v)),
    );
    stack.push(("signature", &SIGNATURE_SLOT));
    stack[start..].sort_unstable_by(|a, b| cmp_utf16(a.0, b.0));
    let end = stack.len();
    let mut value_at = 0;
    out.push(b'{');
    for i in start..end {
        let (key, value) = stack[i];
        if i > start {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        if std::ptr::eq(value, &SIGNATURE_SLOT) {
            value_at = write_signed_fields(signed, out);
        } else {
            write_value(value, out, stack);
        }
    }
    out.push(b'}');
    stack.truncate(start);
    value_at
}

/// Where the signature value goes in an event's MAC input, and whether the full canonical
/// form can be sent as the event's JSON form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EventSigningInput {
    /// Offset of the signature object's closing `}`.
    pub(crate) value_at: usize,
    /// False when a float was written as integer text (`4.0` → `4`): sending the canonical
    /// form would turn that float into an integer, so the event is serialized normally.
    pub(crate) sendable: bool,
}

/// Like [`write_signing_input`] over `event.to_json_value()`, but written straight from the
/// event's fields without building a JSON tree first. Must produce the same bytes (tested).
pub(crate) fn write_event_signing_input<'a>(
    event: &'a Event,
    signed: SignedFields<'_>,
    out: &mut Vec<u8>,
    stack: &mut EntryStack<'a>,
    json: &mut CanonicalJsonScratch,
) -> EventSigningInput {
    let mut time = siemrelay_core::time::Rfc3339Buf::default();
    let mut id = uuid::Uuid::encode_buffer();
    // Members in sorted order; all top-level keys are ASCII.
    out.extend_from_slice(br#"{"attributes":"#);
    let mut sendable = write_attributes_canonical(event, out, stack, json);
    out.extend_from_slice(br#","event_id":""#);
    out.extend_from_slice(event.event_id.hyphenated().encode_lower(&mut id).as_bytes());
    out.extend_from_slice(br#"","event_type":"#);
    write_string(&event.event_type, out);
    out.extend_from_slice(br#","observed_timestamp":"#);
    write_rfc3339(event.observed_timestamp, &mut time, out);
    if !event.resource.is_empty() {
        out.extend_from_slice(br#","resource":"#);
        sendable &= write_map(&event.resource, out, stack);
    }
    out.extend_from_slice(br#","severity":"#);
    write_string(&event.severity.text, out);
    out.extend_from_slice(br#","severity_number":"#);
    out.extend_from_slice(itoa::Buffer::new().format(event.severity.number).as_bytes());
    out.extend_from_slice(br#","signature":"#);
    let value_at = write_signed_fields(signed, out);
    if let Some(source) = &event.source {
        out.extend_from_slice(br#","source":"#);
        write_string(source, out);
    }
    if let Some(summary) = &event.summary {
        out.extend_from_slice(br#","summary":"#);
        write_string(summary, out);
    }
    out.extend_from_slice(br#","timestamp":"#);
    write_rfc3339(event.timestamp, &mut time, out);
    out.push(b'}');
    EventSigningInput { value_at, sendable }
}

/// Writes the canonical form of the event's attributes; returns what [`write_value`] does.
/// Attributes held raw that are their own canonical form (`raw_canonical_json()`: what the
/// webhook's ingest usually gives) are copied; other raw ones are canonicalized straight from
/// their bytes, without a tree ([`write_canonical_json`]); a tree is written as a tree.
fn write_attributes_canonical<'a>(
    event: &'a Event,
    out: &mut Vec<u8>,
    stack: &mut EntryStack<'a>,
    json: &mut CanonicalJsonScratch,
) -> bool {
    if let Some(canonical) = event.attributes.raw_canonical_json() {
        // Canonical text holds no float written as an integer: sendable.
        out.extend_from_slice(canonical);
        return true;
    }
    match event.attributes.raw_json() {
        Some(raw) => write_canonical_json(raw, out, json),
        None => write_map(&event.attributes, out, stack),
    }
}

/// Writes `{"alg":…,"kid":…[,"prev":…]}`; returns the offset of its closing `}`.
fn write_signed_fields(signed: SignedFields<'_>, out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(br#"{"alg":"#);
    write_string(signed.alg, out);
    out.extend_from_slice(br#","kid":"#);
    write_string(signed.kid, out);
    if let Some(prev) = signed.prev {
        out.extend_from_slice(br#","prev":"#);
        write_string(prev, out);
    }
    let value_at = out.len();
    out.push(b'}');
    value_at
}

/// Writes `value`; returns false when a float was written as integer text (`4.0` → `4`),
/// i.e. when reading the text back would change a value's JSON type.
pub(crate) fn write_value<'a>(
    value: &'a Value,
    out: &mut Vec<u8>,
    stack: &mut EntryStack<'a>,
) -> bool {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            if let Some(n) = number.as_u64() {
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            } else if let Some(n) = number.as_i64() {
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            } else if let Some(f) = number.as_f64() {
                let mut buffer = ryu_js::Buffer::new();
                let text = buffer.format(f).as_bytes();
                out.extend_from_slice(text);
                return text.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
            }
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            let mut exact = true;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                exact &= write_value(item, out, stack);
            }
            out.push(b']');
            return exact;
        }
        Value::Object(map) => return write_map(map, out, stack),
    }
    true
}

/// Writes an object with its members sorted by key; returns what [`write_value`] does.
fn write_map<'a>(map: &'a Map, out: &mut Vec<u8>, stack: &mut EntryStack<'a>) -> bool {
    let mut exact = true;
    let start = stack.len();
    stack.extend(map.iter().map(|(k, v)| (k.as_str(), v)));
    stack[start..].sort_unstable_by(|a, b| cmp_utf16(a.0, b.0));
    let end = stack.len();
    out.push(b'{');
    for i in start..end {
        let (key, value) = stack[i];
        if i > start {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        exact &= write_value(value, out, stack);
    }
    out.push(b'}');
    stack.truncate(start);
    exact
}

/// Writes a JSON string escaped as JCS requires.
/// A time as its RFC 3339 JSON string: ASCII digits and separators, which JCS writes as
/// they are (what [`write_string`] gives for it, without its escape scan).
fn write_rfc3339(
    time: siemrelay_core::Timestamp,
    buf: &mut siemrelay_core::time::Rfc3339Buf,
    out: &mut Vec<u8>,
) {
    out.push(b'"');
    out.extend_from_slice(time.format_rfc3339_bytes(buf));
    out.push(b'"');
}

pub(crate) fn write_string(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rest = text.as_bytes();
    out.push(b'"');
    while let Some(at) = first_to_escape(rest) {
        out.extend_from_slice(&rest[..at]);
        let byte = rest[at];
        match byte {
            b'"' => out.extend_from_slice(br#"\""#),
            b'\\' => out.extend_from_slice(br"\\"),
            b'\n' => out.extend_from_slice(br"\n"),
            b'\r' => out.extend_from_slice(br"\r"),
            b'\t' => out.extend_from_slice(br"\t"),
            0x08 => out.extend_from_slice(br"\b"),
            0x0c => out.extend_from_slice(br"\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Index of the first byte JCS escapes (a control character, `"` or `\`): the bytes JSON
/// text escapes, found by core's word-at-a-time search (most strings have none, and this runs
/// over every string of every event).
pub(crate) fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    let at = siemrelay_core::ingest::parse::first_special_byte(bytes, 0);
    (at < bytes.len()).then_some(at)
}

/// Orders strings by their UTF-16 code units, as RFC 8785 sorts object keys.
///
/// UTF-8 byte order equals code point order; UTF-16 order differs only where a character
/// from U+E000–U+FFFF (UTF-8 lead byte 0xEE/0xEF) meets one above U+FFFF (lead byte ≥ 0xF0,
/// a surrogate pair starting with 0xD800–0xDBFF in UTF-16, which sorts first).
pub(crate) fn cmp_utf16(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    match a.iter().zip(b).position(|(x, y)| x != y) {
        None => a.len().cmp(&b.len()),
        Some(i) => {
            let (x, y) = (a[i], b[i]);
            let high_bmp = |c: u8| (0xee..0xf0).contains(&c);
            if x >= 0xf0 && high_bmp(y) {
                Ordering::Less
            } else if y >= 0xf0 && high_bmp(x) {
                Ordering::Greater
            } else {
                x.cmp(&y)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemrelay_core::Timestamp;
    use siemrelay_core::time::Rfc3339Buf;

    #[test]
    fn times_are_written_as_their_escaped_strings_would_be() {
        let mut buf = Rfc3339Buf::default();
        // Across the fast range, with every fraction length, and years chrono writes.
        for nanos in [
            0,
            1_700_000_000_123_456_789,
            1_700_000_000_120_000_000,
            1_700_000_000_123_456_000,
            -1,
            i64::MIN,
            i64::MAX,
        ] {
            let time = Timestamp(nanos);
            let (mut fast, mut escaped) = (Vec::new(), Vec::new());
            write_rfc3339(time, &mut buf, &mut fast);
            write_string(&time.to_rfc3339(), &mut escaped);
            assert_eq!(fast, escaped, "{nanos}");
        }
    }
}
