//! The canonical form (see [`super::canonical`]) written straight from JSON text, without
//! building a `serde_json::Value` tree: for events whose `attributes` are kept as the
//! compact bytes `serde_json` wrote for them.
//!
//! Two passes over the text, both into reused buffers ([`CanonicalJsonScratch`]):
//!
//! 1. **Tape**: one scan checks the text exactly as `serde_json::from_slice::<Value>` does
//!    (grammar, UTF-8, escapes and surrogate pairs, control characters, numbers out of range,
//!    nesting deeper than 127) and records a flat tape of its values. Containers record where
//!    they end on the tape, so the writer never scans anything twice. Strings are only
//!    decoded when they must be: keys with a backslash escape (they sort by their decoded
//!    text) and strings with an escape JCS writes differently (`\/`, `\u00e9`, `\u001F`).
//! 2. **Write**: objects' members are sorted by key as UTF-16 code units
//!    (`canonical::cmp_utf16`) and written in that order, values copied through
//!    where the text already is canonical:
//!    - strings: `serde_json` escapes exactly as JCS does (`"` `\` `\b \t \n \f \r`, other
//!      control characters as lowercase `\u00xx`; `/`, DEL, U+2028 and all other characters
//!      as UTF-8; tested), so its strings are copied as written;
//!    - integers that `serde_json` reads as `u64`/`i64` are copied as written; `-0` and
//!      integers beyond 64 bits are doubles to `serde_json`, written as such;
//!    - other numbers are parsed to `f64` and written as ECMAScript does (`ryu-js`);
//!      plain decimals of up to 15 significant digits (`87.5`) are canonical as written.
//!
//!    The tape marks every container whose text is canonical already (no whitespace, keys
//!    unescaped and strictly in order, every value canonical): the writer copies it as one
//!    slice. serde_json writes a map's keys in UTF-8 order, which is UTF-16 order but for
//!    keys mixing U+E000–U+FFFF with characters above U+FFFF, so attributes `serde_json`
//!    wrote are usually one copy; objects in another order are sorted, and their members
//!    copied as `"key":value` slices where those are canonical.
//!
//! The result is byte for byte what [`super::canonical`] writes for the tree
//! `serde_json::from_slice::<Value>(json)`, with the same "sendable" flag (tested
//! differentially on arbitrary trees and on corrupted texts).

use super::canonical::{cmp_utf16, first_to_escape, write_string, write_value};
use siemrelay_core::Value;
use siemrelay_core::attributes::plain_decimal_is_canonical;
use std::cmp::Ordering;

/// Deepest nesting of arrays and objects `serde_json` reads (its recursion limit, 128, counts
/// the level that fails).
const MAX_DEPTH: usize = 127;

/// Reusable buffers of [`write_canonical_json`]: once they have grown to the largest input,
/// writing allocates nothing.
#[derive(Debug, Default)]
pub struct CanonicalJsonScratch {
    /// The values of the text being written, in document order.
    tape: Vec<Token>,
    /// Decoded text of the strings that needed decoding.
    decoded: String,
    /// Members of the objects being written, a stack of slices (one per open object).
    entries: Vec<Entry>,
}

/// The text was not JSON that `serde_json::from_slice::<Value>` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidJson {
    /// Byte offset where the text stopped being valid.
    pub at: usize,
}

impl std::fmt::Display for InvalidJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not valid JSON at byte {}", self.at)
    }
}

impl std::error::Error for InvalidJson {}

/// Appends to `out` the canonical form of the JSON value `json` (any value: object, array or
/// scalar; meant for the compact bytes `serde_json::to_vec` wrote, but any JSON
/// `serde_json` reads is fine, whitespace and escapes included). Returns whether the form is
/// *sendable*: false when a float was written as integer text (`4.0` → `4`, `-0.0` → `0`),
/// so sending the canonical form would change a value's JSON type (same as
/// [`super::canonical`]'s tree writer).
///
/// This is what an event's MAC input holds for `attributes` kept as raw bytes:
/// `write_canonical_json(raw_attributes, out, scratch)` in place of writing the map. An
/// empty map must be passed as `{}` (empty bytes are not JSON). Only appends to `out`; keep
/// one scratch per thread (e.g. beside the entry stack the sign processor reuses).
///
/// Text that is not valid JSON cannot occur for bytes `serde_json` wrote (and never
/// panics): it is then parsed as a `Value` and written from the tree, and when even that
/// fails `null` is written and false returned, so the event is serialized as is and its
/// signature does not verify. Use [`try_write_canonical_json`] to see the error instead.
pub fn write_canonical_json(
    json: &[u8],
    out: &mut Vec<u8>,
    scratch: &mut CanonicalJsonScratch,
) -> bool {
    match try_write_canonical_json(json, out, scratch) {
        Ok(sendable) => sendable,
        Err(_) => match serde_json::from_slice::<Value>(json) {
            Ok(value) => write_value(&value, out, &mut Vec::new()),
            Err(_) => {
                out.extend_from_slice(b"null");
                false
            }
        },
    }
}

/// Like [`write_canonical_json`], but text that `serde_json::from_slice::<Value>` would
/// reject is an error, and then nothing is appended to `out`.
pub fn try_write_canonical_json(
    json: &[u8],
    out: &mut Vec<u8>,
    scratch: &mut CanonicalJsonScratch,
) -> Result<bool, InvalidJson> {
    let text = std::str::from_utf8(json).map_err(|e| InvalidJson {
        at: e.valid_up_to(),
    })?;
    // Offsets are kept as u32; a 4 GiB attribute map is not an event.
    if u32::try_from(json.len()).is_err() {
        return Err(InvalidJson { at: 0 });
    }
    let CanonicalJsonScratch {
        tape,
        decoded,
        entries,
    } = scratch;
    tape.clear();
    decoded.clear();
    entries.clear();
    let mut parser = Parser {
        text,
        bytes: json,
        pos: 0,
        depth: 0,
        spaces: 0,
        tape,
        decoded,
    };
    parser
        .document()
        .map_err(|Stop| InvalidJson { at: parser.pos })?;
    let mut writer = Writer {
        text,
        tape,
        decoded,
        entries,
        out,
    };
    Ok(writer.value(0))
}

/// A range of bytes, of the input or of the decoded strings.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Lengths are checked to fit u32 before parsing.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One value of the input, in document order; an object's members are its key (a string)
/// and value, one after the other.
#[derive(Clone, Copy, Debug)]
enum Token {
    /// `null`, `true` or `false`, at the span.
    Literal(Span),
    /// An integer `serde_json` reads as `u64` or `i64`, written as in the input.
    Integer(Span),
    /// Any other number: a finite double (checked).
    Float(AsWritten),
    /// A string: its text with quotes in the input, and its decoded text (in
    /// `decoded`) when it was decoded: keys with escapes, strings with non-JCS escapes.
    String { raw: Span, decoded: Option<Span> },
    /// An object; `end` is the index of the first token after it.
    Object { end: u32, text: AsWritten },
    /// An array; `end` is the index of the first token after it.
    Array { end: u32, text: AsWritten },
}

/// Whether a value's text is its canonical form already (then it is copied as one slice),
/// and whether that form is sendable.
#[derive(Clone, Copy, Debug)]
struct AsWritten {
    /// The value's text.
    raw: Span,
    /// The text is canonical: no whitespace, members in order and unique, every string
    /// and number written as JCS writes it.
    canonical: bool,
    /// See [`write_canonical_json`]; exact when `canonical`.
    sendable: bool,
}

/// What a value's text is, as the parser found it.
#[derive(Clone, Copy, Debug)]
struct Form {
    canonical: bool,
    sendable: bool,
}

impl Form {
    const CANONICAL: Form = Form {
        canonical: true,
        sendable: true,
    };

    fn and(self, other: Form) -> Form {
        Form {
            canonical: self.canonical && other.canonical,
            sendable: self.sendable && other.sendable,
        }
    }
}

/// An object member being sorted: where its key's text is, and its tokens.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// [`lead`] of the key.
    lead: u16,
    /// The key's text (without quotes), in the input or in `decoded`.
    key_text: Span,
    key_decoded: bool,
    /// Tape index of the key (the value follows it); ties between equal keys are broken by
    /// it.
    key: u32,
}

/// The first pass: checks the text and records the tape.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    /// How many runs of whitespace were skipped so far: a container whose text has any is
    /// not canonical.
    spaces: usize,
    tape: &'a mut Vec<Token>,
    decoded: &'a mut String,
}

/// The text is not valid JSON at the parser's position. (Small, so that results are
/// returned in registers.)
struct Stop;

type Parsed<T = ()> = Result<T, Stop>;

impl Parser<'_> {
    fn error(&self) -> Stop {
        Stop
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        if let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.spaces += 1;
            while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
                self.pos += 1;
            }
        }
    }

    /// One value, with optional whitespace around it, and nothing else.
    fn document(&mut self) -> Parsed {
        self.skip_whitespace();
        self.value()?;
        self.skip_whitespace();
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    /// One value, recorded on the tape; returns what its text is.
    fn value(&mut self) -> Parsed<Form> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Form {
                canonical: self.string(false)?,
                sendable: true,
            }),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            _ => Err(self.error()),
        }
    }

    fn literal(&mut self, text: &[u8]) -> Parsed<Form> {
        if self.bytes[self.pos..].starts_with(text) {
            let start = self.pos;
            self.pos += text.len();
            self.tape.push(Token::Literal(Span::new(start, self.pos)));
            Ok(Form::CANONICAL)
        } else {
            Err(self.error())
        }
    }

    /// Opens an array or object at the current `[` or `{`; returns its tape index and the
    /// whitespace count before it.
    fn open(&mut self, token: Token) -> Parsed<(usize, usize)> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error());
        }
        let spaces = self.spaces;
        self.pos += 1;
        self.tape.push(token);
        self.skip_whitespace();
        Ok((self.tape.len() - 1, spaces))
    }

    /// After a member or item: `,` (then whitespace) continues, `close` ends the container.
    fn next_or_close(&mut self, close: u8) -> Parsed<bool> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_whitespace();
                Ok(true)
            }
            Some(byte) if byte == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.error()),
        }
    }

    /// Closes the container opened at tape index `at` (its text started at byte `start`);
    /// `form` is its members' or items'.
    fn close(&mut self, at: usize, start: usize, spaces: usize, form: Form) -> Form {
        self.depth -= 1;
        let end = self.tape.len() as u32;
        let form = Form {
            canonical: form.canonical && spaces == self.spaces,
            sendable: form.sendable,
        };
        let text = AsWritten {
            raw: Span::new(start, self.pos),
            canonical: form.canonical,
            sendable: form.sendable,
        };
        self.tape[at] = match self.tape[at] {
            Token::Object { .. } => Token::Object { end, text },
            _ => Token::Array { end, text },
        };
        form
    }

    fn object(&mut self) -> Parsed<Form> {
        let start = self.pos;
        let (at, spaces) = self.open(Token::Object {
            end: 0,
            text: PLACEHOLDER,
        })?;
        let mut form = Form::CANONICAL;
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            let mut previous: Option<&str> = None;
            loop {
                if self.peek() != Some(b'"') {
                    return Err(self.error());
                }
                self.string(true)?;
                // Members already in canonical order (serde_json writes a map's keys in UTF-8
                // order, the same but for rare characters) need no sorting. Keys with escapes
                // (rare too) always go through the sorting writer.
                match self.tape.last() {
                    Some(&Token::String { raw, decoded: None }) => {
                        let current = &self.text[raw.start as usize + 1..raw.end as usize - 1];
                        form.canonical &=
                            previous.is_none_or(|previous| in_order(previous, current));
                        previous = Some(current);
                    }
                    _ => form.canonical = false,
                }
                self.skip_whitespace();
                if self.peek() != Some(b':') {
                    return Err(self.error());
                }
                self.pos += 1;
                self.skip_whitespace();
                form = form.and(self.value()?);
                if !self.next_or_close(b'}')? {
                    break;
                }
            }
        }
        Ok(self.close(at, start, spaces, form))
    }

    fn array(&mut self) -> Parsed<Form> {
        let start = self.pos;
        let (at, spaces) = self.open(Token::Array {
            end: 0,
            text: PLACEHOLDER,
        })?;
        let mut form = Form::CANONICAL;
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                form = form.and(self.value()?);
                if !self.next_or_close(b']')? {
                    break;
                }
            }
        }
        Ok(self.close(at, start, spaces, form))
    }

    /// The string at the current `"`. Decodes it when it is a key with an escape, or when an
    /// escape is not written as JCS writes it. Records it; returns whether its text is
    /// canonical.
    #[inline]
    fn string(&mut self, is_key: bool) -> Parsed<bool> {
        let start = self.pos;
        let pos = start + 1;
        // Most strings have no escape: their end is the first byte JCS escapes.
        match first_to_escape(&self.bytes[pos..]).map(|at| (pos + at, self.bytes[pos + at])) {
            Some((end, b'"')) => {
                self.pos = end + 1;
                self.tape.push(Token::String {
                    raw: Span::new(start, end + 1),
                    decoded: None,
                });
                Ok(true)
            }
            _ => self.escaped_string(start, is_key),
        }
    }

    /// [`Self::string`] for a string with escapes (or an invalid one).
    #[cold]
    #[inline(never)]
    fn escaped_string(&mut self, start: usize, is_key: bool) -> Parsed<bool> {
        let mut pos = start + 1;
        let mut escaped = false;
        let mut canonical = true;
        loop {
            let Some(at) = first_to_escape(&self.bytes[pos..]) else {
                self.pos = self.bytes.len();
                return Err(self.error());
            };
            pos += at;
            match self.bytes[pos] {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.pos = pos;
                    let (len, is_canonical) = self.escape(pos)?;
                    canonical &= is_canonical;
                    pos += len;
                }
                // A control character: JSON requires it escaped.
                _ => {
                    self.pos = pos;
                    return Err(self.error());
                }
            }
        }
        self.pos = pos + 1;
        let raw = Span::new(start, pos + 1);
        let decoded = if escaped && (is_key || !canonical) {
            let from = self.decoded.len();
            if let Err(at) = decode(&self.text[start + 1..pos], self.decoded) {
                self.pos = start + 1 + at;
                return Err(Stop);
            }
            Some(Span::new(from, self.decoded.len()))
        } else {
            None
        };
        self.tape.push(Token::String { raw, decoded });
        Ok(!escaped || canonical)
    }

    /// Checks the escape at `pos` (a `\`); returns its length and whether JCS writes the
    /// character it stands for the same way.
    fn escape(&self, pos: usize) -> Parsed<(usize, bool)> {
        match self.bytes.get(pos + 1) {
            Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => Ok((2, true)),
            Some(b'/') => Ok((2, false)),
            Some(b'u') => {
                let digits = self.bytes.get(pos + 2..pos + 6).ok_or(self.error())?;
                let unit = hex4(digits).ok_or(self.error())?;
                let short = matches!(unit, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d);
                let lowercase = !digits.iter().any(u8::is_ascii_uppercase);
                Ok((6, unit < 0x20 && !short && lowercase))
            }
            _ => Err(self.error()),
        }
    }

    /// A number, read as `serde_json` reads it: an integer within `u64` or (when negative
    /// and not zero) `i64` stays an integer, everything else is an `f64`, which must be
    /// finite.
    fn number(&mut self) -> Parsed<Form> {
        let bytes = self.bytes;
        let start = self.pos;
        let mut pos = start;
        let negative = bytes[pos] == b'-';
        if negative {
            pos += 1;
        }
        let mut magnitude: Option<u64> = Some(0);
        match bytes.get(pos) {
            Some(b'0') => {
                pos += 1;
                if let Some(b'0'..=b'9') = bytes.get(pos) {
                    self.pos = pos;
                    return Err(self.error());
                }
            }
            Some(b'1'..=b'9') => {
                while let Some(&digit @ b'0'..=b'9') = bytes.get(pos) {
                    magnitude = magnitude
                        .and_then(|m| m.checked_mul(10))
                        .and_then(|m| m.checked_add(u64::from(digit - b'0')));
                    pos += 1;
                }
            }
            _ => {
                self.pos = pos;
                return Err(self.error());
            }
        }
        let mut integer = true;
        if bytes.get(pos) == Some(&b'.') {
            integer = false;
            pos = self.digits(pos + 1)?;
        }
        if let Some(b'e' | b'E') = bytes.get(pos) {
            integer = false;
            pos += 1;
            if let Some(b'+' | b'-') = bytes.get(pos) {
                pos += 1;
            }
            pos = self.digits(pos)?;
        }
        let exact = match magnitude {
            Some(m) if integer => !negative || (m != 0 && m <= 1 << 63),
            _ => false,
        };
        let span = Span::new(start, pos);
        let (token, form) = if exact {
            (Token::Integer(span), Form::CANONICAL)
        } else if plain_decimal_is_canonical(&bytes[start..pos]) {
            (
                Token::Float(as_written(span, Form::CANONICAL)),
                Form::CANONICAL,
            )
        } else {
            let raw = &self.text[start..pos];
            match raw.parse::<f64>() {
                Ok(float) if float.is_finite() => {
                    let mut buffer = ryu_js::Buffer::new();
                    let text = buffer.format(float);
                    let form = Form {
                        canonical: text == raw,
                        sendable: float_sendable(text),
                    };
                    (Token::Float(as_written(span, form)), form)
                }
                _ => {
                    self.pos = start;
                    return Err(Stop);
                }
            }
        };
        self.pos = pos;
        self.tape.push(token);
        Ok(form)
    }

    /// One or more digits from `pos`; returns the position after them.
    fn digits(&mut self, mut pos: usize) -> Parsed<usize> {
        let first = pos;
        while let Some(b'0'..=b'9') = self.bytes.get(pos) {
            pos += 1;
        }
        if pos == first {
            self.pos = pos;
            return Err(self.error());
        }
        Ok(pos)
    }
}

/// A value's text and what the parser found it to be.
fn as_written(raw: Span, form: Form) -> AsWritten {
    AsWritten {
        raw,
        canonical: form.canonical,
        sendable: form.sendable,
    }
}

/// Placeholder of a container's text until it is closed.
const PLACEHOLDER: AsWritten = AsWritten {
    raw: Span { start: 0, end: 0 },
    canonical: false,
    sendable: false,
};

/// Whether a double's canonical text reads back as a double (JCS writes `4.0` as `4`).
fn float_sendable(text: &str) -> bool {
    text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

/// Whether `a` sorts before `b` in UTF-16 order ([`cmp_utf16`]). Keys that differ in their
/// first byte, both below 0xEE (where UTF-8 and UTF-16 order may part), need no full
/// comparison: the common case, checked inline.
#[inline]
fn in_order(a: &str, b: &str) -> bool {
    lead_order(lead(a), lead(b)).map_or_else(|| cmp_utf16(a, b).is_lt(), Ordering::is_lt)
}

/// A key's first byte plus one, 0 for the empty key: enough to order most keys (kept in
/// [`Entry::lead`]).
fn lead(key: &str) -> u16 {
    key.as_bytes()
        .first()
        .map_or(0, |&byte| u16::from(byte) + 1)
}

/// The UTF-16 order of two keys from their [`lead`]s, when these decide it: they differ and
/// neither key starts with a byte from 0xEE on (where UTF-8 and UTF-16 order may part).
#[inline]
fn lead_order(a: u16, b: u16) -> Option<Ordering> {
    (a != b && a <= 0xee && b <= 0xee).then(|| a.cmp(&b))
}

/// The value of four hex digits.
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |value, &digit| {
        let nibble = char::from(digit).to_digit(16)?;
        Some(value << 4 | nibble)
    })
}

/// Appends the text of a string's escaped content (between its quotes; its escapes are
/// checked already) to `out`. Errors with the offset of a lone surrogate escape, which
/// `serde_json` rejects.
fn decode(content: &str, out: &mut String) -> Result<(), usize> {
    let bytes = content.as_bytes();
    let mut pos = 0;
    while let Some(at) = bytes[pos..].iter().position(|&b| b == b'\\') {
        out.push_str(&content[pos..pos + at]);
        pos += at;
        let escape = pos;
        let unit = |at: usize| bytes.get(at + 2..at + 6).and_then(hex4).ok_or(escape);
        let character = match bytes.get(pos + 1) {
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let high = unit(pos)?;
                if (0xd800..0xdc00).contains(&high) {
                    if bytes.get(pos + 6..pos + 8) != Some(b"\\u") {
                        return Err(escape);
                    }
                    pos += 6;
                    let low = unit(pos)?;
                    if !(0xdc00..0xe000).contains(&low) {
                        return Err(escape);
                    }
                    let code = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                    char::from_u32(code).ok_or(escape)?
                } else {
                    // A lone low surrogate has no character.
                    char::from_u32(high).ok_or(escape)?
                }
            }
            // `"`, `\` and `/` stand for themselves.
            Some(&other) => char::from(other),
            None => return Err(escape),
        };
        out.push(character);
        pos += if bytes[pos + 1] == b'u' { 6 } else { 2 };
    }
    out.push_str(&content[pos..]);
    Ok(())
}

/// The text of an entry's key.
fn key_text<'t>(text: &'t str, decoded: &'t str, entry: &Entry) -> &'t str {
    if entry.key_decoded {
        &decoded[entry.key_text.range()]
    } else {
        &text[entry.key_text.range()]
    }
}

/// The second pass: writes the tape in canonical form.
struct Writer<'a> {
    text: &'a str,
    tape: &'a [Token],
    decoded: &'a str,
    entries: &'a mut Vec<Entry>,
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    /// Tape index of the first token after the value at `at`.
    fn after(&self, at: usize) -> usize {
        match self.tape[at] {
            Token::Object { end, .. } | Token::Array { end, .. } => end as usize,
            _ => at + 1,
        }
    }

    /// Writes the value at tape index `at`; returns whether it is sendable (see
    /// [`write_canonical_json`]).
    /// The text of the value at `at` and whether it is sendable, when the text is its
    /// canonical form.
    fn canonical_text(&self, at: usize) -> Option<(Span, bool)> {
        match self.tape[at] {
            Token::Literal(span) | Token::Integer(span) => Some((span, true)),
            Token::String { raw, decoded: None } => Some((raw, true)),
            Token::Float(text) | Token::Object { text, .. } | Token::Array { text, .. }
                if text.canonical =>
            {
                Some((text.raw, text.sendable))
            }
            _ => None,
        }
    }

    fn value(&mut self, at: usize) -> bool {
        if let Some((span, sendable)) = self.canonical_text(at) {
            self.out
                .extend_from_slice(&self.text.as_bytes()[span.range()]);
            return sendable;
        }
        match self.tape[at] {
            Token::Float(text) => {
                // The parser checked that the text is a finite double.
                let float = self.text[text.raw.range()]
                    .parse::<f64>()
                    .unwrap_or_default();
                let mut buffer = ryu_js::Buffer::new();
                let text = buffer.format(float);
                self.out.extend_from_slice(text.as_bytes());
                return float_sendable(text);
            }
            Token::String { .. } => self.string(at),
            Token::Array { end, .. } => {
                let mut exact = true;
                self.out.push(b'[');
                let mut item = at + 1;
                while item < end as usize {
                    if item > at + 1 {
                        self.out.push(b',');
                    }
                    exact &= self.value(item);
                    item = self.after(item);
                }
                self.out.push(b']');
                return exact;
            }
            Token::Object { end, .. } => return self.object(at, end as usize),
            // Written above: their text is always canonical.
            Token::Literal(_) | Token::Integer(_) => {}
        }
        true
    }

    fn string(&mut self, at: usize) {
        if let Token::String { raw, decoded } = self.tape[at] {
            match decoded {
                None => self
                    .out
                    .extend_from_slice(&self.text.as_bytes()[raw.range()]),
                Some(span) => write_string(&self.decoded[span.range()], self.out),
            }
        }
    }

    /// Writes the object at `at` (its tokens end before `end`) with its members sorted by
    /// key. Of members with equal keys (never in `serde_json`'s output) the last one is
    /// written, as `serde_json` keeps the last when it reads them into a map.
    fn object(&mut self, at: usize, end: usize) -> bool {
        let base = self.entries.len();
        let mut key = at + 1;
        while key < end {
            let Token::String { raw, decoded } = self.tape[key] else {
                // The parser puts a string before every member's value.
                break;
            };
            let (key_text, key_decoded) = match decoded {
                Some(span) => (span, true),
                None => (
                    Span {
                        start: raw.start + 1,
                        end: raw.end - 1,
                    },
                    false,
                ),
            };
            let texts = if key_decoded {
                self.decoded.as_bytes()
            } else {
                self.text.as_bytes()
            };
            let lead = if key_text.start < key_text.end {
                u16::from(texts[key_text.start as usize]) + 1
            } else {
                0
            };
            self.entries.push(Entry {
                lead,
                key_text,
                key_decoded,
                key: key as u32,
            });
            key = self.after(key + 1);
        }
        let (text, decoded) = (self.text, self.decoded);
        let key_of = |entry: &Entry| key_text(text, decoded, entry);
        let members = &mut self.entries[base..];
        let mut duplicates = false;
        members.sort_unstable_by(|a, b| {
            lead_order(a.lead, b.lead).unwrap_or_else(|| {
                cmp_utf16(key_of(a), key_of(b)).then_with(|| {
                    duplicates = true;
                    a.key.cmp(&b.key)
                })
            })
        });
        // A correct sort compares every pair that ends up adjacent, so equal keys set the flag.
        if duplicates {
            let mut kept = base;
            for i in base..self.entries.len() {
                let entry = self.entries[i];
                let next = self.entries.get(i + 1);
                if next.is_some_and(|next| key_of(next) == key_of(&entry)) {
                    continue;
                }
                self.entries[kept] = entry;
                kept += 1;
            }
            self.entries.truncate(kept);
        }
        let mut exact = true;
        self.out.push(b'{');
        for i in base..self.entries.len() {
            let entry = self.entries[i];
            if i > base {
                self.out.push(b',');
            }
            // `"key":value` as written when both are canonical and only `:` is between them.
            let value = entry.key as usize + 1;
            if let (Token::String { raw, decoded: None }, Some((text, sendable))) =
                (self.tape[entry.key as usize], self.canonical_text(value))
                && text.start == raw.end + 1
            {
                self.out.extend_from_slice(
                    &self.text.as_bytes()[raw.start as usize..text.end as usize],
                );
                exact &= sendable;
                continue;
            }
            self.string(entry.key as usize);
            self.out.push(b':');
            exact &= self.value(value);
        }
        self.out.push(b'}');
        self.entries.truncate(base);
        exact
    }
}

#[cfg(test)]
mod tests;
