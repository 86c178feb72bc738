//! A hand-written single-pass scanner for the webhook's raw ingest (issue 24).
//!
//! [`super::parse_body_raw`] tries it first. For a body of the common shape (NDJSON lines, a
//! JSON array of objects or one object, keys without escapes) it gives exactly what the
//! serde_json-driven raw path ([`super::raw`]) gives: the same [`Object`]s (the well-known
//! members as [`Value`]s, the other members and those of `attributes` as the same raw bytes
//! with the same member starts), and it charges the request's [`Limits`] with the same amounts
//! at the same points (the raw buffers grow through the same sequence of `Vec` operations, so
//! their capacities, which are what is charged, are the same). It reads the body once, byte by
//! byte for structure and eight bytes at a time inside strings, and builds no serde state.
//!
//! It gives up ([`None`]) on anything else, and the caller runs the current path from the
//! start: malformed JSON, a limit reached, a key with an escape, a key repeated in any object
//! (or a well-known key given twice, or `attributes` given twice or not an object), an
//! integer beyond 64 bits, nesting deeper than [`MAX_DEPTH`]. Errors and the tree path's
//! handling of those bodies are thus exactly today's.
//!
//! Raw attributes carry whether they are already their RFC 8785 canonical form, as the
//! serde_json raw path's do.

use super::parse::{ENTRY_SIZE, Limits, MEMBER_SIZE, OBJECT_SIZE, VALUE_SIZE};
use super::{BodyFormat, Members, Object, ParsedFields, RawAttributes, WellKnown};
use crate::attributes::{key_is_canonical, plain_decimal_is_canonical};
use crate::event::{Map, Value};
use serde_json::map::Entry;
use std::borrow::Cow;

/// Nesting (the event object counts as one, or two inside a JSON array body) beyond which the
/// scanner leaves the body to the current path; serde_json's own limit is 128.
pub(crate) const MAX_DEPTH: usize = 64;

/// What the scanner gives for a body it took.
#[derive(Debug)]
pub(crate) struct Scanned<'b> {
    /// The objects, exactly as the serde_json raw path gives them (with the same canonical
    /// flag on their raw attributes: see [`crate::attributes::key_is_canonical`] and
    /// [`crate::attributes::plain_decimal_is_canonical`]).
    pub(crate) objects: Vec<Object<'b>>,
}

/// The scanner does not take the body; the current path parses it from the start.
#[derive(Debug)]
struct Fallback;

type Scan<T> = Result<T, Fallback>;

/// Scans `text` (the whole body, already checked to be UTF-8) in `format` under `limits`;
/// `None` when the body is not one the scanner takes (the caller then resets what was charged
/// on `limits` and runs the current path).
pub(crate) fn scan_body<'b>(
    text: &'b str,
    format: BodyFormat,
    limits: &Limits<'_>,
) -> Option<Scanned<'b>> {
    let mut scanner = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        limits,
        entries: Vec::new(),
        copy: Vec::new(),
        decoded: String::new(),
        out: Vec::new(),
        charged: 0,
        canonical: true,
    };
    let scanned = match format {
        BodyFormat::Json => scanner.json_body(),
        BodyFormat::Ndjson => scanner.ndjson_body(),
    };
    scanned.ok()
}

/// A string just read: its text as it stands in the body, or decoded into `Scanner::decoded`.
enum Text {
    /// No escape: the text is `bytes[from..to]`.
    Plain(usize, usize),
    /// Escapes, decoded into the scanner's `decoded`.
    Decoded,
}

/// A number just read.
enum Number {
    /// A non-negative integer (serde_json's `u64`).
    Unsigned(u64),
    /// A negative integer (serde_json's `i64`).
    Negative(i64),
    /// Any other number, as serde_json reads it.
    Float(f64),
}

/// The state of one body's scan.
struct Scanner<'b, 'l, 'r> {
    /// The whole body (keys borrow from it).
    text: &'b str,
    /// The part being scanned: the whole body, or the body up to the end of the current line.
    bytes: &'b [u8],
    /// Where the scan is, an offset in the body.
    pos: usize,
    limits: &'l Limits<'r>,
    /// Members of the objects being written into `out`: key, start and end in `out` (a stack:
    /// a nested object's members above its parent's).
    entries: Vec<(&'b str, usize, usize)>,
    /// Room to reorder an object's members (reused across the body's objects, as the raw
    /// path's is, and charged the same way).
    copy: Vec<u8>,
    /// The text of the last string with escapes.
    decoded: String,
    /// The raw attributes of the current object (empty until its first such member).
    out: Vec<u8>,
    /// Capacity of `out` and `copy` already charged for the current object.
    charged: usize,
    /// Whether the current object's raw attributes are canonical so far.
    canonical: bool,
}

impl<'b> Scanner<'b, '_, '_> {
    fn json_body(&mut self) -> Scan<Scanned<'b>> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => {
                self.count_event()?;
                let object = self.object(1)?;
                self.at_end()?;
                Ok(Scanned {
                    objects: vec![object],
                })
            }
            Some(b'[') => {
                self.pos += 1;
                let mut objects = Vec::new();
                self.skip_whitespace();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        if self.peek() != Some(b'{') {
                            return Err(Fallback);
                        }
                        let object = self.object(2)?;
                        self.count_event()?;
                        self.push_object(&mut objects, object)?;
                        self.skip_whitespace();
                        match self.next_byte() {
                            Some(b',') => self.skip_whitespace(),
                            Some(b']') => break,
                            _ => return Err(Fallback),
                        }
                    }
                }
                self.at_end()?;
                Ok(Scanned { objects })
            }
            _ => Err(Fallback),
        }
    }

    fn ndjson_body(&mut self) -> Scan<Scanned<'b>> {
        let body = self.text.as_bytes();
        let mut objects = Vec::new();
        for (_, from, to) in super::parse::ndjson_lines(body) {
            self.bytes = &body[..to];
            self.pos = from;
            self.skip_whitespace();
            if self.peek() != Some(b'{') {
                return Err(Fallback);
            }
            let object = self.object(1)?;
            self.at_end()?;
            self.count_event()?;
            self.push_object(&mut objects, object)?;
        }
        Ok(Scanned { objects })
    }

    /// One event object (at its `{`): the well-known members as values, the others written
    /// raw (flagged when their raw form is canonical).
    fn object(&mut self, depth: usize) -> Scan<Object<'b>> {
        self.pos += 1;
        let mut members: Vec<(Cow<'b, str>, Value)> = Vec::with_capacity(12);
        self.charge(12 * MEMBER_SIZE)?;
        self.entries.clear();
        self.out = Vec::new();
        self.charged = 0;
        self.canonical = true;
        let mut seen: u16 = 0;
        let mut merged = false;
        let mut parsed = ParsedFields::default();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                let key_at = self.pos;
                let key = self.key()?;
                self.colon()?;
                match WellKnown::from_key(key) {
                    None => self.member(key, key_at, depth + 1)?,
                    Some(WellKnown::Attributes) => {
                        if merged {
                            return Err(Fallback);
                        }
                        merged = true;
                        self.merge_attributes(depth + 1)?;
                    }
                    Some(field) => {
                        let bit = 1u16 << (field as u16);
                        if seen & bit != 0 {
                            return Err(Fallback);
                        }
                        seen |= bit;
                        if self.peek() == Some(b'"')
                            && matches!(
                                field,
                                WellKnown::EventId | WellKnown::Timestamp | WellKnown::Severity
                            )
                            && self.parse_field(field, &mut parsed)?
                        {
                            // Parsed into its typed field; nothing is kept of the text.
                        } else {
                            let value = self.value(depth + 1)?;
                            let capacity = members.capacity();
                            members.push((Cow::Borrowed(key), value));
                            if members.capacity() != capacity {
                                self.charge((members.capacity() - capacity) * MEMBER_SIZE)?;
                            }
                        }
                    }
                }
                self.skip_whitespace();
                match self.next_byte() {
                    Some(b',') => self.skip_whitespace(),
                    Some(b'}') => break,
                    _ => return Err(Fallback),
                }
            }
        }
        let raw_attributes = self.finish()?;
        let object = Object {
            members: Members(members),
            raw_attributes,
            parsed,
        };
        Ok(object)
    }

    /// Parses the string at `pos` (a well-known member's value) into `parsed` when it parses;
    /// else leaves `pos` where it was, for [`Scanner::value`]. Charged as the string value it
    /// replaces.
    fn parse_field(&mut self, field: WellKnown, parsed: &mut ParsedFields) -> Scan<bool> {
        let at = self.pos;
        self.pos += 1;
        let text = match self.string()? {
            Text::Plain(from, to) => self.text.get(from..to).ok_or(Fallback)?,
            Text::Decoded => self.decoded.as_str(),
        };
        if parsed.take(field, text) {
            self.charge(text.len())?;
            return Ok(true);
        }
        self.pos = at;
        Ok(false)
    }

    /// The members of the `attributes` member (at its value), written among the top-level
    /// ones; a value that is not an object is left to the current path.
    fn merge_attributes(&mut self, depth: usize) -> Scan<()> {
        if self.peek() != Some(b'{') || depth > MAX_DEPTH {
            return Err(Fallback);
        }
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key_at = self.pos;
            let key = self.key()?;
            self.colon()?;
            self.member(key, key_at, depth + 1)?;
            self.skip_whitespace();
            match self.next_byte() {
                Some(b',') => self.skip_whitespace(),
                Some(b'}') => return Ok(()),
                _ => return Err(Fallback),
            }
        }
    }

    /// One top-level raw member: `key` (whose opening quote is at `key_at`) and its value (at
    /// the value).
    fn member(&mut self, key: &'b str, key_at: usize, depth: usize) -> Scan<()> {
        if self.out.is_empty() {
            // As the raw path starts each object's attributes.
            self.out = Vec::with_capacity(256);
            self.out.push(b'{');
        }
        if !self.entries.is_empty() {
            self.out.push(b',');
        }
        let start = self.out.len();
        if !self.copy_member(key, key_at)? {
            self.write_key(key);
            self.transcode(depth)?;
        }
        let end = self.out.len();
        self.entries.push((key, start, end));
        self.charge_out()
    }

    /// The finished raw attributes of the current object (`None` when it had none).
    fn finish(&mut self) -> Scan<Option<RawAttributes>> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        // Room for two more members, as the raw path leaves (an enrich adds them without
        // reallocating).
        let mut starts = Vec::with_capacity(self.entries.len() + 2);
        self.close(0, 0, Some(&mut starts))?;
        Ok(Some((
            std::mem::take(&mut self.out),
            starts,
            self.canonical,
        )))
    }

    /// Closes the object written from `start` (its `{`) whose members are the entries from
    /// `base`: sorts its members by key when they are out of order, as serde_json's map
    /// orders them (a repeated key is left to the current path). `starts` receives where each
    /// member begins (for the top-level object).
    fn close(&mut self, start: usize, base: usize, starts: Option<&mut Vec<u32>>) -> Scan<()> {
        let entries = &mut self.entries[base..];
        let offset = |at: usize| u32::try_from(at).unwrap_or(u32::MAX);
        if entries
            .windows(2)
            .all(|pair| key_less(pair[0].0, pair[1].0))
        {
            if let Some(starts) = starts {
                starts.extend(entries.iter().map(|&(_, from, _)| offset(from)));
            }
        } else {
            entries.sort_unstable_by(|a, b| key_order(a.0, b.0));
            if entries.windows(2).any(|pair| pair[0].0 == pair[1].0) {
                return Err(Fallback);
            }
            let (out, copy) = (&mut self.out, &mut self.copy);
            copy.clear();
            copy.extend_from_slice(&out[start + 1..]);
            out.truncate(start + 1);
            let mut starts = starts;
            for (index, &(_, from, to)) in entries.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                if let Some(starts) = starts.as_mut() {
                    starts.push(offset(out.len()));
                }
                out.extend_from_slice(&copy[from - start - 1..to - start - 1]);
            }
        }
        self.out.push(b'}');
        self.entries.truncate(base);
        self.charge_out()
    }

    /// Copies the member `"key":value` from the body as it stands when that is what would be
    /// written — no whitespace around the colon, and a value written as it reads (a string
    /// without escapes, an integer, `true`, `false`, `null`) — and the output needs no room
    /// beyond what it holds (so its growth, which is charged, is the same as written piece by
    /// piece). Else changes nothing and returns false.
    #[inline]
    fn copy_member(&mut self, key: &str, key_at: usize) -> Scan<bool> {
        let value_at = self.pos;
        if key_at + key.len() + 3 != value_at {
            return Ok(false);
        }
        let end = match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                match self.string()? {
                    Text::Plain(_, to) => to + 1,
                    Text::Decoded => 0,
                }
            }
            Some(b'-' | b'0'..=b'9') => match self.number()? {
                Number::Unsigned(_) | Number::Negative(_) => self.pos,
                Number::Float(_) => 0,
            },
            Some(b't') => self.literal(b"true").map(|()| self.pos)?,
            Some(b'f') => self.literal(b"false").map(|()| self.pos)?,
            Some(b'n') => self.literal(b"null").map(|()| self.pos)?,
            _ => 0,
        };
        let member = self.bytes.get(key_at..end).unwrap_or_default();
        if end == 0 || self.out.len() + member.len() > self.out.capacity() {
            self.pos = value_at;
            return Ok(false);
        }
        if !key.is_ascii() && !key_is_canonical(key.as_bytes()) {
            self.canonical = false;
        }
        self.out.extend_from_slice(member);
        Ok(true)
    }

    /// `"key":` as serde_json writes a key without escapes.
    #[inline]
    fn write_key(&mut self, key: &str) {
        if !key.is_ascii() && !key_is_canonical(key.as_bytes()) {
            self.canonical = false;
        }
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.push(b'"');
        self.out.push(b':');
    }

    /// Writes the value at `pos` into `out` as serde_json writes its parsed form.
    fn transcode(&mut self, depth: usize) -> Scan<()> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                match self.string()? {
                    Text::Plain(from, to) => {
                        // No escape: nothing serde_json would escape either.
                        self.out.push(b'"');
                        self.out.extend_from_slice(&self.bytes[from..to]);
                        self.out.push(b'"');
                    }
                    // Writing into a Vec cannot fail.
                    Text::Decoded => {
                        let _ = serde_json::to_writer(&mut self.out, self.decoded.as_str());
                    }
                }
                Ok(())
            }
            Some(b'{') => self.transcode_object(depth),
            Some(b'[') => self.transcode_array(depth),
            Some(b't') => self.transcode_literal(b"true"),
            Some(b'f') => self.transcode_literal(b"false"),
            Some(b'n') => self.transcode_literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                match self.number()? {
                    // JSON integers have no leading zeros and `-0` is a float: the text is
                    // what serde_json writes for the integer.
                    Number::Unsigned(_) | Number::Negative(_) => {
                        self.out.extend_from_slice(&self.bytes[start..self.pos]);
                    }
                    Number::Float(value) => {
                        let at = self.out.len();
                        let _ = serde_json::to_writer(&mut self.out, &value);
                        if self.canonical && !plain_decimal_is_canonical(&self.out[at..]) {
                            self.canonical = false;
                        }
                    }
                }
                Ok(())
            }
            _ => Err(Fallback),
        }
    }

    fn transcode_literal(&mut self, word: &'static [u8]) -> Scan<()> {
        self.literal(word)?;
        self.out.extend_from_slice(word);
        Ok(())
    }

    fn transcode_object(&mut self, depth: usize) -> Scan<()> {
        if depth > MAX_DEPTH {
            return Err(Fallback);
        }
        self.pos += 1;
        let start = self.out.len();
        let base = self.entries.len();
        self.out.push(b'{');
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                let key_at = self.pos;
                let key = self.key()?;
                self.colon()?;
                if self.entries.len() > base {
                    self.out.push(b',');
                }
                let from = self.out.len();
                if !self.copy_member(key, key_at)? {
                    self.write_key(key);
                    self.transcode(depth + 1)?;
                }
                let to = self.out.len();
                self.entries.push((key, from, to));
                self.charge_out()?;
                self.skip_whitespace();
                match self.next_byte() {
                    Some(b',') => self.skip_whitespace(),
                    Some(b'}') => break,
                    _ => return Err(Fallback),
                }
            }
        }
        self.close(start, base, None)
    }

    fn transcode_array(&mut self, depth: usize) -> Scan<()> {
        if depth > MAX_DEPTH {
            return Err(Fallback);
        }
        self.pos += 1;
        self.out.push(b'[');
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.out.push(b']');
            return Ok(());
        }
        loop {
            self.transcode(depth + 1)?;
            self.charge_out()?;
            self.skip_whitespace();
            match self.next_byte() {
                Some(b',') => {
                    self.out.push(b',');
                    self.skip_whitespace();
                }
                Some(b']') => {
                    // The raw path writes a `,` it then takes back before the `]`: the same
                    // growth as writing the `]` alone.
                    self.out.push(b']');
                    return Ok(());
                }
                _ => return Err(Fallback),
            }
        }
    }

    /// The value at `pos` as a [`Value`] (a well-known member's), charged as the current
    /// path's values are.
    fn value(&mut self, depth: usize) -> Scan<Value> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                let text = match self.string()? {
                    Text::Plain(from, to) => self.text.get(from..to).ok_or(Fallback)?,
                    Text::Decoded => self.decoded.as_str(),
                };
                self.charge(text.len())?;
                Ok(Value::String(text.to_owned()))
            }
            Some(b'{') => {
                if depth > MAX_DEPTH {
                    return Err(Fallback);
                }
                self.pos += 1;
                let mut object = Map::new();
                self.skip_whitespace();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Value::Object(object));
                }
                loop {
                    let key = self.key()?;
                    self.charge(key.len() + ENTRY_SIZE)?;
                    self.colon()?;
                    let value = self.value(depth + 1)?;
                    match object.entry(key) {
                        Entry::Vacant(slot) => {
                            slot.insert(value);
                        }
                        Entry::Occupied(_) => return Err(Fallback),
                    }
                    self.skip_whitespace();
                    match self.next_byte() {
                        Some(b',') => self.skip_whitespace(),
                        Some(b'}') => return Ok(Value::Object(object)),
                        _ => return Err(Fallback),
                    }
                }
            }
            Some(b'[') => {
                if depth > MAX_DEPTH {
                    return Err(Fallback);
                }
                self.pos += 1;
                let mut items: Vec<Value> = Vec::new();
                self.skip_whitespace();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    let item = self.value(depth + 1)?;
                    let capacity = items.capacity();
                    items.push(item);
                    if items.capacity() != capacity {
                        self.charge((items.capacity() - capacity) * VALUE_SIZE)?;
                    }
                    self.skip_whitespace();
                    match self.next_byte() {
                        Some(b',') => self.skip_whitespace(),
                        Some(b']') => return Ok(Value::Array(items)),
                        _ => return Err(Fallback),
                    }
                }
            }
            Some(b't') => self.literal(b"true").map(|()| Value::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Value::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Value::Null),
            Some(b'-' | b'0'..=b'9') => Ok(match self.number()? {
                Number::Unsigned(value) => Value::Number(value.into()),
                Number::Negative(value) => Value::Number(value.into()),
                Number::Float(value) => {
                    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
                }
            }),
            _ => Err(Fallback),
        }
    }

    /// An object key (at its opening quote) without escapes, borrowed from the body.
    #[inline(always)]
    fn key(&mut self) -> Scan<&'b str> {
        if self.next_byte() != Some(b'"') {
            return Err(Fallback);
        }
        match self.string()? {
            Text::Plain(from, to) => self.text.get(from..to).ok_or(Fallback),
            Text::Decoded => Err(Fallback),
        }
    }

    /// The string whose text starts at `pos` (after its quote); leaves `pos` after its closing
    /// quote.
    #[inline(always)]
    fn string(&mut self) -> Scan<Text> {
        let from = self.pos;
        let at = super::parse::first_special_byte(self.bytes, from);
        match self.bytes.get(at) {
            Some(b'"') => {
                self.pos = at + 1;
                Ok(Text::Plain(from, at))
            }
            Some(b'\\') => self.decode(from, at),
            // A control character, or the end.
            _ => Err(Fallback),
        }
    }

    /// Decodes the string whose text starts at `from` and whose first escape is at `at`, as
    /// serde_json does (a lone surrogate, which serde_json refuses, is left to it).
    fn decode(&mut self, from: usize, mut at: usize) -> Scan<Text> {
        let (text, bytes) = (self.text, self.bytes);
        self.decoded.clear();
        let mut plain = from;
        loop {
            self.decoded.push_str(text.get(plain..at).ok_or(Fallback)?);
            match bytes.get(at) {
                Some(b'"') => {
                    self.pos = at + 1;
                    return Ok(Text::Decoded);
                }
                Some(b'\\') => {}
                _ => return Err(Fallback),
            }
            let escape = bytes.get(at + 1).copied().ok_or(Fallback)?;
            at += 2;
            let decoded = match escape {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let unit = hex4(bytes, at)?;
                    at += 4;
                    let code = match unit {
                        0xD800..=0xDBFF => {
                            if bytes.get(at..at + 2) != Some(b"\\u") {
                                return Err(Fallback);
                            }
                            let low = hex4(bytes, at + 2)?;
                            if !(0xDC00..=0xDFFF).contains(&low) {
                                return Err(Fallback);
                            }
                            at += 6;
                            0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        }
                        0xDC00..=0xDFFF => return Err(Fallback),
                        _ => unit,
                    };
                    char::from_u32(code).ok_or(Fallback)?
                }
                _ => return Err(Fallback),
            };
            self.decoded.push(decoded);
            plain = at;
            at = super::parse::first_special_byte(bytes, at);
        }
    }

    /// The number at `pos`, checked against JSON's grammar; leaves `pos` after it. Integers
    /// that fit 64 bits are integers; `-0`, decimals and exponents are read as serde_json
    /// reads them; an integer beyond 64 bits (refused or re-checked by the current path) and a
    /// float that could be one are left to the current path.
    fn number(&mut self) -> Scan<Number> {
        let bytes = self.bytes;
        let start = self.pos;
        let negative = bytes.get(start) == Some(&b'-');
        let mut at = start + usize::from(negative);
        let mut magnitude: Option<u64> = Some(0);
        match bytes.get(at) {
            Some(b'0') => {
                at += 1;
                if let Some(b'0'..=b'9') = bytes.get(at) {
                    return Err(Fallback);
                }
            }
            Some(b'1'..=b'9') => {
                while let Some(&digit @ b'0'..=b'9') = bytes.get(at) {
                    magnitude = magnitude
                        .and_then(|m| m.checked_mul(10))
                        .and_then(|m| m.checked_add(u64::from(digit - b'0')));
                    at += 1;
                }
            }
            _ => return Err(Fallback),
        }
        let whole_end = at;
        let mut fraction_end = at;
        let mut exponent = false;
        if bytes.get(at) == Some(&b'.') {
            at = digits(bytes, at + 1)?;
            fraction_end = at;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            exponent = true;
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            at = digits(bytes, at)?;
        }
        self.pos = at;
        if fraction_end == whole_end && !exponent {
            return match magnitude {
                Some(m) if !negative => Ok(Number::Unsigned(m)),
                // `-0` is a float to serde_json (below).
                Some(m) if m != 0 && m <= 1 << 63 => {
                    Ok(Number::Negative(0i64.wrapping_sub_unsigned(m)))
                }
                Some(_) => self.float(start, at),
                None => Err(Fallback),
            };
        }
        if !exponent {
            // A short plain decimal: an exact integer over an exact power of ten, one
            // correctly rounded division (the nearest double, as serde_json's
            // float_roundtrip parse gives).
            let all = &bytes[start + usize::from(negative)..fraction_end];
            if all.len() <= 16 {
                let mut mantissa: u64 = 0;
                for &digit in all.iter().filter(|byte| byte.is_ascii_digit()) {
                    mantissa = mantissa * 10 + u64::from(digit - b'0');
                }
                let scale = POWERS_OF_TEN[fraction_end - whole_end - 1];
                let value = mantissa as f64 / scale;
                return Ok(Number::Float(if negative { -value } else { value }));
            }
        }
        self.float(start, at)
    }

    /// The float `text[start..end]` as serde_json reads it; one that could be an integer
    /// beyond 64 bits (serde_json reads those as floats) is left to the current path.
    fn float(&self, start: usize, end: usize) -> Scan<Number> {
        let token = self.text.get(start..end).ok_or(Fallback)?;
        let value: f64 = serde_json::from_str(token).map_err(|_| Fallback)?;
        if value.fract() == 0.0
            && (value >= 18_446_744_073_709_551_616.0 || value <= -9_223_372_036_854_775_808.0)
        {
            return Err(Fallback);
        }
        Ok(Number::Float(value))
    }

    fn literal(&mut self, word: &'static [u8]) -> Scan<()> {
        if self.bytes.get(self.pos..self.pos + word.len()) != Some(word) {
            return Err(Fallback);
        }
        self.pos += word.len();
        Ok(())
    }

    /// `:` between a key and its value, with any whitespace around it.
    #[inline]
    fn colon(&mut self) -> Scan<()> {
        self.skip_whitespace();
        if self.next_byte() != Some(b':') {
            return Err(Fallback);
        }
        self.skip_whitespace();
        Ok(())
    }

    /// Nothing but whitespace up to the end of what is scanned.
    fn at_end(&mut self) -> Scan<()> {
        self.skip_whitespace();
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    #[inline(always)]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn next_byte(&mut self) -> Option<u8> {
        let byte = self.peek();
        self.pos += 1;
        byte
    }

    #[inline]
    fn charge(&self, bytes: usize) -> Scan<()> {
        self.limits.charge(bytes).map_err(|_| Fallback)
    }

    /// Charges what `out` and `copy` hold beyond what is charged already (as the raw path's
    /// `RawObject::charge`).
    #[inline]
    fn charge_out(&mut self) -> Scan<()> {
        let held = self.out.capacity() + self.copy.capacity();
        if held > self.charged {
            self.charge(held - self.charged)?;
            self.charged = held;
        }
        Ok(())
    }

    fn count_event(&self) -> Scan<()> {
        if self.limits.count_scanned_event() {
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    /// Adds an object to the request's list, charging the list's growth.
    fn push_object(&self, objects: &mut Vec<Object<'b>>, object: Object<'b>) -> Scan<()> {
        let capacity = objects.capacity();
        objects.push(object);
        if objects.capacity() != capacity {
            self.charge((objects.capacity() - capacity) * OBJECT_SIZE)?;
        }
        Ok(())
    }
}

/// Whether key `a` sorts before `b` (as `str`s do, byte by byte): told by the first bytes
/// when they differ (most keys), inline, before a full comparison.
#[inline]
fn key_less(a: &str, b: &str) -> bool {
    key_order(a, b).is_lt()
}

/// The order of keys `a` and `b` as `str`s order, first bytes compared inline.
#[inline]
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    match a.as_bytes().first().cmp(&b.as_bytes().first()) {
        std::cmp::Ordering::Equal => a.cmp(b),
        order => order,
    }
}

/// 10^0 ..= 10^15, each exact as a double.
const POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// One or more digits from `at`; the position after them.
fn digits(bytes: &[u8], mut at: usize) -> Scan<usize> {
    let first = at;
    while let Some(b'0'..=b'9') = bytes.get(at) {
        at += 1;
    }
    if at == first { Err(Fallback) } else { Ok(at) }
}

/// Four hex digits at `at` as a number.
fn hex4(bytes: &[u8], at: usize) -> Scan<u32> {
    let digits = bytes.get(at..at + 4).ok_or(Fallback)?;
    digits.iter().try_fold(0u32, |code, &digit| {
        let value = (digit as char).to_digit(16).ok_or(Fallback)?;
        Ok(code * 16 + value)
    })
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
