//! An event's attributes, kept as the JSON bytes they arrived as until something reads a key.
//!
//! The webhook's ingest writes the attribute members of a received object straight into one
//! buffer, in exactly the form `serde_json::to_vec(&map)` gives for the parsed map (compact,
//! keys sorted, serde_json's escaping and number text), without building a tree. Most events
//! are never asked for a key on their way to a SIEM: the sign processor and the exporters copy
//! or canonicalize those bytes. Reading the attributes ([`Deref`] to [`Map`]) parses them once
//! (the tree is cached); changing them ([`DerefMut`]) turns them into a plain map.

use crate::event::{Map, Value};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

/// An event's attributes: a parsed [`Map`] (boxed; none when empty), or the JSON bytes of one
/// parsed on first read.
/// Read it like a map (`attributes.get("user")`, iteration); a change makes it a map.
#[derive(Clone, Default)]
pub struct Attributes(Repr);

/// Both forms boxed (an event waits in queues: 16 bytes here instead of a map's 24 inline).
#[derive(Clone, Default)]
enum Repr {
    #[default]
    Empty,
    Tree(Box<Map>),
    Raw(Box<Raw>),
}

/// What an empty [`Repr`] reads as.
static EMPTY: std::sync::LazyLock<Map> = std::sync::LazyLock::new(Map::new);

#[derive(Clone)]
struct Raw {
    /// `serde_json::to_vec` of the map: `{…}`, compact, keys sorted, no key twice.
    json: Vec<u8>,
    /// Offset of each top-level member (its key's opening quote), in key order: a key is found
    /// by binary search instead of a scan.
    starts: Vec<u32>,
    /// `json` is exactly its RFC 8785 canonical form (see [`Attributes::raw_canonical_json`]).
    canonical: bool,
    /// The map, parsed on first read.
    tree: OnceLock<Map>,
}

impl Attributes {
    /// No attributes.
    pub fn new() -> Attributes {
        Attributes::default()
    }

    /// Attributes held as `json`, which the caller guarantees is exactly what
    /// `serde_json::to_vec` writes for some [`Map`] (so it parses back, to that map).
    /// `starts`: where each top-level member begins (see [`Attributes::member_starts`]).
    /// `canonical`: the writer found every key and float canonical as it wrote them (see
    /// [`key_is_canonical`] and [`plain_decimal_is_canonical`]), so `json` is its own RFC 8785
    /// form; false is always safe.
    pub(crate) fn from_serialized_map(
        json: Vec<u8>,
        starts: Vec<u32>,
        canonical: bool,
    ) -> Attributes {
        Attributes(Repr::Raw(Box::new(Raw {
            json,
            starts,
            canonical,
            tree: OnceLock::new(),
        })))
    }

    /// Where each top-level member of the serialized map `json` begins, found by one scan.
    pub(crate) fn member_starts(json: &[u8]) -> Vec<u32> {
        let mut starts = Vec::new();
        let mut at = 1;
        while at < json.len() && json[at] == b'"' {
            starts.push(u32::try_from(at).unwrap_or(u32::MAX));
            let value_end = value_end(json, string_end(json, at) + 2);
            at = value_end + usize::from(json.get(value_end) == Some(&b','));
        }
        starts
    }

    /// Attributes held as the JSON bytes of `map` (serialized now): what the webhook's ingest
    /// gives, for tests and tools that start from a map.
    pub fn raw_from_map(map: &Map) -> Attributes {
        // Serializing a map of JSON values into a Vec cannot fail.
        let json = serde_json::to_vec(map).unwrap_or_else(|_| b"{}".into());
        let starts = Attributes::member_starts(&json);
        Attributes::from_serialized_map(json, starts, map_is_canonical(map))
    }

    /// The JSON bytes of the attributes (`serde_json::to_vec` of the map) while they are held
    /// raw (not changed since they were received), else `None`.
    pub fn raw_json(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Raw(raw) => Some(&raw.json),
            Repr::Tree(_) | Repr::Empty => None,
        }
    }

    /// The JSON bytes of the attributes while they are held raw and are exactly their RFC 8785
    /// canonical form (as the sign processor's `canonical_json` writes it): no key at any
    /// depth has an escape or a character from U+E000 on (so serde_json's key order is
    /// UTF-16 order and the keys are written as JCS writes them), and every number that is
    /// not an integer is a plain decimal JCS writes the same ([`plain_decimal_is_canonical`]).
    /// serde_json's strings and integers are canonical already. The signer copies these bytes
    /// instead of canonicalizing them. `None` when not raw or not known to be canonical.
    pub fn raw_canonical_json(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Raw(raw) if raw.canonical => Some(&raw.json),
            Repr::Raw(_) | Repr::Tree(_) | Repr::Empty => None,
        }
    }

    /// The attributes as a map, taken out.
    pub fn into_map(self) -> Map {
        match self.0 {
            Repr::Empty => Map::new(),
            Repr::Tree(map) => *map,
            Repr::Raw(raw) => match raw.tree.into_inner() {
                Some(map) => map,
                None => parse(&raw.json),
            },
        }
    }

    /// Length of the attributes' JSON form when held raw (exact), for size estimates.
    pub fn raw_len(&self) -> Option<usize> {
        self.raw_json().map(<[u8]>::len)
    }

    /// The JSON text of the top-level attribute `key`, found in the raw bytes without parsing
    /// them; `None` when the attributes are not raw or have no such key.
    pub fn raw_member(&self, key: &str) -> Option<&[u8]> {
        let Repr::Raw(raw) = &self.0 else {
            return None;
        };
        let index = raw.find(key).ok()?;
        let start = raw.starts[index] as usize;
        let value_start = string_end(&raw.json, start) + 2;
        let value_end = match raw.starts.get(index + 1) {
            Some(next) => *next as usize - 1,
            None => raw.json.len() - 1,
        };
        raw.json.get(value_start..value_end)
    }

    /// Adds the top-level attribute `key` with `value` when the attributes are held raw and have
    /// no such key, keeping the bytes raw (written where `serde_json` would put the key, in
    /// its form). Returns false, changing nothing, when they are not raw or the key is there.
    pub fn insert_raw_if_absent(&mut self, key: &str, value: &Value) -> bool {
        self.insert_raw_path_if_absent(key, &[], value)
    }

    /// Like [`Attributes::insert_raw_if_absent`] with the value `{inner[0]: {…: value}}`: sets
    /// the path `key.inner…` when its first key is absent, writing the nested objects straight
    /// into the bytes. (Serializes the member first: to add the same member to many events,
    /// make a [`RawMember`] once and use [`Attributes::insert_raw_member_if_absent`].)
    pub fn insert_raw_path_if_absent(
        &mut self,
        key: &str,
        inner: &[String],
        value: &Value,
    ) -> bool {
        if !matches!(self.0, Repr::Raw(_)) {
            return false;
        }
        self.insert_raw_member_if_absent(&RawMember::new(key, inner, value))
    }

    /// Adds `member` when the attributes are held raw and have no top-level attribute with its
    /// key: one binary search, one copy of its prepared text into the bytes (where `serde_json`
    /// would write it), the later members' offsets shifted. The bytes stay canonical (see
    /// [`Attributes::raw_canonical_json`]) when they were and the member is. Returns false,
    /// changing nothing, when they are not raw or the key is there.
    pub fn insert_raw_member_if_absent(&mut self, member: &RawMember) -> bool {
        let Repr::Raw(raw) = &mut self.0 else {
            return false;
        };
        let Err(index) = raw.find(&member.key) else {
            return false;
        };
        let json = &mut raw.json;
        let old_len = json.len();
        let comma = !raw.starts.is_empty();
        let grown = member.text.len() + usize::from(comma);
        // Offsets are u32: attributes are not grown beyond 4 GiB.
        let (Ok(grown_u32), Ok(_)) = (u32::try_from(grown), u32::try_from(old_len + grown)) else {
            return false;
        };
        // Before the member that follows in key order (a comma after the text), or after the
        // last member, before the closing brace (a comma before it unless the map is empty).
        let (at, comma_after) = match raw.starts.get(index) {
            Some(&next) => (next as usize, true),
            None => (old_len - 1, false),
        };
        json.resize(old_len + grown, 0);
        json.copy_within(at..old_len, at + grown);
        let start = at + usize::from(comma && !comma_after);
        json[start..start + member.text.len()].copy_from_slice(&member.text);
        if comma {
            let comma_at = if comma_after {
                start + member.text.len()
            } else {
                at
            };
            json[comma_at] = b',';
        }
        for later in &mut raw.starts[index..] {
            *later += grown_u32;
        }
        // Fits: checked above.
        raw.starts.insert(index, start as u32);
        raw.canonical &= member.canonical;
        if let Some(tree) = raw.tree.get_mut() {
            tree.insert(member.key.clone(), member.value.clone());
        }
        true
    }
}

/// One top-level attribute (`"key":value`, the value nested under a path's inner keys),
/// serialized once in `serde_json`'s form, to be added to the raw attributes of many events
/// ([`Attributes::insert_raw_member_if_absent`]): what the enrich processor prepares for each
/// action when it is built.
#[derive(Clone, Debug, PartialEq)]
pub struct RawMember {
    /// The top-level key.
    key: String,
    /// `"key":value` as `serde_json` writes it.
    text: Vec<u8>,
    /// The value under `key` (nested under the inner keys), for a cached tree.
    value: Value,
    /// `text` is its own canonical form (see [`Attributes::raw_canonical_json`]).
    canonical: bool,
}

impl RawMember {
    /// The member `key` with the value `{inner[0]: {…: value}}` (just `value` when `inner`
    /// is empty).
    pub fn new(key: &str, inner: &[String], value: &Value) -> RawMember {
        let mut text = Vec::with_capacity(key.len() + 32);
        // Writing strings and a JSON value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut text, key);
        text.push(b':');
        for segment in inner {
            text.push(b'{');
            let _ = serde_json::to_writer(&mut text, segment);
            text.push(b':');
        }
        let _ = serde_json::to_writer(&mut text, value);
        text.extend(std::iter::repeat_n(b'}', inner.len()));
        let mut nested = value.clone();
        for segment in inner.iter().rev() {
            let mut map = Map::new();
            map.insert(segment.clone(), nested);
            nested = Value::Object(map);
        }
        let canonical = key_text_is_canonical(key) && value_is_canonical(&nested);
        RawMember {
            key: key.to_string(),
            text,
            value: nested,
            canonical,
        }
    }

    /// The top-level key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// `"key":value` as `serde_json` writes it.
    pub fn text(&self) -> &[u8] {
        &self.text
    }
}

/// Whether an object key as `serde_json` wrote it (the bytes between its quotes, escapes as
/// written) keeps raw attributes canonical: no backslash (an escape; JCS sorts keys by their
/// decoded text) and no byte from 0xEE on (a character from U+E000 on, where UTF-8 order,
/// serde_json's, and UTF-16 order, JCS's, may part). Checked by whatever writes raw attributes.
pub fn key_is_canonical(written: &[u8]) -> bool {
    !written.iter().any(|&byte| byte == b'\\' || byte >= 0xee)
}

/// [`key_is_canonical`] of the text `serde_json` writes for `key` (it escapes `"`, `\` and
/// control characters).
fn key_text_is_canonical(key: &str) -> bool {
    !key.bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\' || byte >= 0xee)
}

/// Whether `serde_json`'s text of `value` is its canonical form: every key canonical
/// ([`key_is_canonical`]) and every float's text a [`plain_decimal_is_canonical`].
fn value_is_canonical(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(number) => !number.is_f64() || float_text_is_canonical(number),
        Value::Array(items) => items.iter().all(value_is_canonical),
        Value::Object(map) => map_is_canonical(map),
    }
}

/// [`value_is_canonical`] of a map.
fn map_is_canonical(map: &Map) -> bool {
    map.iter()
        .all(|(key, value)| key_text_is_canonical(key) && value_is_canonical(value))
}

/// Whether `serde_json`'s text of a float is canonical.
fn float_text_is_canonical(number: &serde_json::Number) -> bool {
    let mut text = [0u8; 40];
    let mut out = &mut text[..];
    let room = out.len();
    // A float's text is at most 24 bytes; a failed write (never) counts as not canonical.
    serde_json::to_writer(&mut out, number).is_ok() && {
        let written = room - out.len();
        plain_decimal_is_canonical(&text[..written])
    }
}

/// Whether a number's text (valid JSON, not an integer) is what ECMAScript writes for its
/// double, known without converting: a plain decimal `[-]int.frac` with at most 15
/// significant digits, no trailing zero, and no more than five zeros after `0.`. Every
/// decimal of at most 15 significant digits is the shortest text of the double nearest to
/// it (a double has 15.95 decimal digits of precision), and ECMAScript writes such values
/// (10^-6 ≤ |x| < 10^21) as `int.frac`. Such a text is a finite double with a point: sendable.
/// Common in attributes (`87.5`, `0.25`), and it spares a float conversion both ways. Used by
/// the canonical writer and by whatever writes raw attributes (their canonical flag).
pub fn plain_decimal_is_canonical(text: &[u8]) -> bool {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let Some(point) = digits.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (whole, fraction) = (&digits[..point], &digits[point + 1..]);
    if fraction.last().is_none_or(|&digit| digit == b'0')
        || !fraction.iter().all(u8::is_ascii_digit)
    {
        // A trailing zero, or an exponent.
        return false;
    }
    let significant = if whole == b"0" {
        let zeros = fraction.iter().take_while(|&&digit| digit == b'0').count();
        if zeros > 5 {
            return false;
        }
        fraction.len() - zeros
    } else {
        whole.len() + fraction.len()
    };
    significant <= 15
}

fn parse(json: &[u8]) -> Map {
    match serde_json::from_slice(json) {
        Ok(map) => map,
        Err(error) => {
            // The bytes were written by siemrelay as a serialized map; never a panic.
            tracing::error!(%error, "raw attributes did not parse; they are lost");
            Map::new()
        }
    }
}

impl Raw {
    /// The index of the member with `key` among the top-level ones, or where it would go: a
    /// binary search with the comparison inline (a few probes per insert of every event).
    fn find(&self, key: &str) -> Result<usize, usize> {
        let (json, starts) = (&self.json[..], &self.starts[..]);
        let (mut low, mut high) = (0, starts.len());
        while low < high {
            let middle = low + (high - low) / 2;
            match cmp_key(json, starts[middle] as usize, key.as_bytes()) {
                Ordering::Less => low = middle + 1,
                Ordering::Greater => high = middle,
                Ordering::Equal => return Ok(middle),
            }
        }
        Err(low)
    }
}

/// Orders the key whose opening quote is at `at` in `json` against `key`, comparing bytes
/// only up to the first that differs: the stored text is the key itself until an escape,
/// which is decoded (rare: a key with a quote, backslash or control character).
#[inline(always)]
fn cmp_key(json: &[u8], at: usize, key: &[u8]) -> Ordering {
    let stored = json.get(at + 1..).unwrap_or_default();
    for (i, &byte) in stored.iter().enumerate() {
        match (byte, key.get(i)) {
            (b'\\', _) => break,
            (b'"', None) => return Ordering::Equal,
            (b'"', Some(_)) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (byte, Some(&wanted)) if byte != wanted => return byte.cmp(&wanted),
            _ => {}
        }
    }
    cmp_escaped_key(json, at, key)
}

/// [`cmp_key`] for a key written with an escape: decoded, then compared.
#[cold]
#[inline(never)]
fn cmp_escaped_key(json: &[u8], at: usize, key: &[u8]) -> Ordering {
    let key_end = string_end(json, at);
    let decoded: String = json
        .get(at..=key_end)
        .and_then(|text| serde_json::from_slice(text).ok())
        .unwrap_or_default();
    decoded.as_bytes().cmp(key)
}

/// Index of the closing quote of the string whose opening quote is at `at`.
fn string_end(json: &[u8], at: usize) -> usize {
    crate::ingest::parse::string_end(json, at + 1)
}

/// End (exclusive) of the compact JSON value starting at `at`.
fn value_end(json: &[u8], at: usize) -> usize {
    let mut depth = 0usize;
    let mut i = at;
    while i < json.len() {
        match json[i] {
            b'"' => {
                i = string_end(json, i) + 1;
                if depth == 0 {
                    return i;
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b',' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    json.len()
}

impl Deref for Attributes {
    type Target = Map;

    fn deref(&self) -> &Map {
        match &self.0 {
            Repr::Empty => &EMPTY,
            Repr::Tree(map) => map,
            Repr::Raw(raw) => raw.tree.get_or_init(|| parse(&raw.json)),
        }
    }
}

/// A change makes the attributes a plain map (the raw bytes are dropped).
impl DerefMut for Attributes {
    fn deref_mut(&mut self) -> &mut Map {
        if !matches!(self.0, Repr::Tree(_)) {
            let map = std::mem::take(self).into_map();
            self.0 = Repr::Tree(Box::new(map));
        }
        match &mut self.0 {
            Repr::Tree(map) => map,
            Repr::Empty | Repr::Raw(_) => unreachable!("made a tree above"),
        }
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = (&'a String, &'a Value);
    type IntoIter = serde_json::map::Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        (**self).iter()
    }
}

impl From<Map> for Attributes {
    fn from(map: Map) -> Attributes {
        if map.is_empty() {
            return Attributes::default();
        }
        Attributes(Repr::Tree(Box::new(map)))
    }
}

impl From<Attributes> for Map {
    fn from(attributes: Attributes) -> Map {
        attributes.into_map()
    }
}

/// Equal when the maps are (raw bytes that are equal need no parse).
impl PartialEq for Attributes {
    fn eq(&self, other: &Attributes) -> bool {
        if let (Some(a), Some(b)) = (self.raw_json(), other.raw_json())
            && a == b
        {
            return true;
        }
        **self == **other
    }
}

impl PartialEq<Map> for Attributes {
    fn eq(&self, other: &Map) -> bool {
        **self == *other
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Serialized as the map (parsed first when raw; [`crate::Event::write_json`] copies the raw
/// bytes instead).
impl Serialize for Attributes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(Attributes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn attributes_take_less_room_in_an_event_than_a_map() {
        assert!(size_of::<Attributes>() <= 16);
        assert!(
            size_of::<crate::Event>() <= 224,
            "{}",
            size_of::<crate::Event>()
        );
    }

    #[test]
    fn raw_attributes_read_like_the_map_and_a_change_makes_them_a_map() {
        let tree = map(json!({"b": {"x": [1, "é\n"]}, "a": 1.5, "c\"q": null}));
        let mut raw = Attributes::raw_from_map(&tree);
        assert_eq!(
            raw.raw_json(),
            Some(&serde_json::to_vec(&tree).unwrap()[..])
        );
        assert_eq!(raw, Attributes::from(tree.clone()));
        assert_eq!(raw["b"]["x"][1], "é\n");
        assert_eq!(raw.raw_member("a"), Some(&b"1.5"[..]));
        assert_eq!(raw.raw_member("c\"q"), Some(&b"null"[..]));
        assert_eq!(raw.raw_member("b"), Some(r#"{"x":[1,"é\n"]}"#.as_bytes()));
        assert_eq!(raw.raw_member("zz"), None);
        assert!(raw.raw_json().is_some(), "reading keeps the bytes");
        raw.insert("d".into(), json!(true));
        assert!(raw.raw_json().is_none());
        let mut expected = tree;
        expected.insert("d".into(), json!(true));
        assert_eq!(raw, expected);
    }

    #[test]
    fn the_canonical_flag_follows_keys_and_floats_and_survives_only_canonical_inserts() {
        let canonical = map(json!({"a": 1, "b": {"c": [0.25, "x\n\"", -7]}, "d": "é"}));
        let mut raw = Attributes::raw_from_map(&canonical);
        assert!(raw.raw_canonical_json().is_some());
        assert_eq!(raw.raw_canonical_json(), raw.raw_json());
        assert!(raw.insert_raw_if_absent("c", &json!({"e": 1.5})));
        assert_eq!(
            raw.raw_canonical_json(),
            raw.raw_json(),
            "a canonical insert"
        );
        assert!(raw.insert_raw_path_if_absent("e", &["\u{e000}".into()], &json!(1)));
        assert!(raw.raw_json().is_some());
        assert!(raw.raw_canonical_json().is_none(), "a key from U+E000 on");
        for (name, value) in [
            ("escaped key", json!({"x": {"a\"": 1}})),
            ("control key", json!({"x": [{"a\nb": 1}]})),
            ("high key", json!({"x": {"\u{ffff}": 1}})),
            ("float as integer", json!({"x": [1.0]})),
            ("exponent", json!({"x": 1e300})),
            ("too many digits", json!({"x": 0.1 + 0.2})),
        ] {
            let raw = Attributes::raw_from_map(&map(value));
            assert!(raw.raw_json().is_some(), "{name}");
            assert!(raw.raw_canonical_json().is_none(), "{name}");
            let mut canonical = Attributes::raw_from_map(&canonical);
            let member = RawMember::new("x", &[], &raw["x"]);
            assert!(canonical.insert_raw_member_if_absent(&member), "{name}");
            assert!(canonical.raw_canonical_json().is_none(), "{name}: inserted");
        }
        assert!(Attributes::from(canonical).raw_canonical_json().is_none());
        assert!(Attributes::new().raw_canonical_json().is_none());
        assert!(plain_decimal_is_canonical(b"-87.5"));
        assert!(!plain_decimal_is_canonical(b"87.50"));
        assert!(key_is_canonical(br#""a.b""#));
        assert!(!key_is_canonical(br#""a\"b""#));
    }

    #[test]
    fn an_absent_key_is_inserted_where_serde_json_would_write_it() {
        let tree = map(json!({"b": 1, "d": {"e": [1, {"f": "}"}]}, "x\\y": 2}));
        for key in ["a", "c", "e", "z", "b0", "x\\", "d"] {
            for start in [tree.clone(), Map::new()] {
                let mut raw = Attributes::raw_from_map(&start);
                let _ = raw.get("b"); // a cached tree is kept in step
                let value = json!({"deep": ["v", 2.5]});
                let inserted = raw.insert_raw_if_absent(key, &value);
                assert_eq!(inserted, !start.contains_key(key), "{key}");
                let mut expected = start.clone();
                expected.entry(key.to_string()).or_insert(value);
                assert_eq!(
                    raw.raw_json().unwrap(),
                    &serde_json::to_vec(&expected).unwrap()[..],
                    "{key}"
                );
                assert_eq!(raw, expected);
                assert_eq!(*raw, expected, "the cached tree");
            }
        }
        // Inserts one after another keep every member findable.
        let mut raw = Attributes::raw_from_map(&Map::new());
        let mut expected = Map::new();
        for (n, key) in ["m", "c", "x", "a", "é", "b\"", "n", "m0"]
            .iter()
            .enumerate()
        {
            assert!(raw.insert_raw_if_absent(key, &json!([n, {"k": key}])));
            expected.insert(key.to_string(), json!([n, {"k": key}]));
            assert_eq!(
                raw.raw_json().unwrap(),
                &serde_json::to_vec(&expected).unwrap()[..]
            );
            for (key, value) in &expected {
                let text = serde_json::to_vec(value).unwrap();
                assert_eq!(raw.raw_member(key), Some(&text[..]), "{key}");
                assert!(!raw.insert_raw_if_absent(key, &json!(0)));
            }
        }
        assert_eq!(
            Attributes::member_starts(raw.raw_json().unwrap()),
            match &raw.0 {
                Repr::Raw(raw) => raw.starts.clone(),
                _ => unreachable!(),
            }
        );
        // A path: the nested objects are written into the bytes.
        let mut raw = Attributes::raw_from_map(&tree);
        let _ = raw.get("b");
        let inner = ["y".to_string(), "a\"q".to_string()];
        assert!(raw.insert_raw_path_if_absent("c", &inner, &json!(1.5)));
        assert!(!raw.insert_raw_path_if_absent("d", &inner, &json!(1.5)));
        let mut expected = tree.clone();
        expected.insert("c".into(), json!({"y": {"a\"q": 1.5}}));
        assert_eq!(
            raw.raw_json().unwrap(),
            &serde_json::to_vec(&expected).unwrap()[..]
        );
        assert_eq!(*raw, expected, "the cached tree");
    }
}
