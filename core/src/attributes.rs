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
    pub(crate) fn from_serialized_map(json: Vec<u8>) -> Attributes {
        Attributes(Repr::Raw(Box::new(Raw {
            json,
            tree: OnceLock::new(),
        })))
    }

    /// Attributes held as the JSON bytes of `map` (serialized now): what the webhook's ingest
    /// gives, for tests and tools that start from a map.
    pub fn raw_from_map(map: &Map) -> Attributes {
        // Serializing a map of JSON values into a Vec cannot fail.
        Attributes::from_serialized_map(serde_json::to_vec(map).unwrap_or_else(|_| b"{}".into()))
    }

    /// The JSON bytes of the attributes (`serde_json::to_vec` of the map) while they are held
    /// raw (not changed since they were received), else `None`.
    pub fn raw_json(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Raw(raw) => Some(&raw.json),
            Repr::Tree(_) | Repr::Empty => None,
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
        let json = self.raw_json()?;
        match find_member(json, key) {
            Found::At { value, .. } => Some(&json[value]),
            Found::Before(_) => None,
        }
    }

    /// Adds the top-level attribute `key` with `value` when the attributes are held raw and have
    /// no such key, keeping the bytes raw (written where `serde_json` would put the key, in
    /// its form). Returns false, changing nothing, when they are not raw or the key is there.
    pub fn insert_raw_if_absent(&mut self, key: &str, value: &Value) -> bool {
        self.insert_raw_path_if_absent(key, &[], value)
    }

    /// Like [`Attributes::insert_raw_if_absent`] with the value `{inner[0]: {…: value}}`: sets
    /// the path `key.inner…` when its first key is absent, writing the nested objects straight
    /// into the bytes.
    pub fn insert_raw_path_if_absent(
        &mut self,
        key: &str,
        inner: &[String],
        value: &Value,
    ) -> bool {
        let Repr::Raw(raw) = &mut self.0 else {
            return false;
        };
        let at = match find_member(&raw.json, key) {
            Found::At { .. } => return false,
            Found::Before(at) => at,
        };
        let mut member = Vec::with_capacity(key.len() + 32);
        // Writing strings and a JSON value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut member, key);
        member.push(b':');
        for segment in inner {
            member.push(b'{');
            let _ = serde_json::to_writer(&mut member, segment);
            member.push(b':');
        }
        let _ = serde_json::to_writer(&mut member, value);
        member.extend(std::iter::repeat_n(b'}', inner.len()));
        let json = &mut raw.json;
        let empty = json.len() <= 2;
        if at + 1 == json.len() {
            // After the last member (or into `{}`).
            if !empty {
                member.insert(0, b',');
            }
        } else {
            member.push(b',');
        }
        json.splice(at..at, member);
        if let Some(tree) = raw.tree.get_mut() {
            let mut nested = value.clone();
            for segment in inner.iter().rev() {
                let mut map = Map::new();
                map.insert(segment.clone(), nested);
                nested = Value::Object(map);
            }
            tree.insert(key.to_string(), nested);
        }
        true
    }
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

/// Where a top-level key is in raw attributes.
enum Found {
    /// The member's value bytes.
    At { value: std::ops::Range<usize> },
    /// Absent: the offset where a member with this key goes (a member's start, or the `}`).
    Before(usize),
}

/// Finds `key` among the members of the serialized map `json` (compact, keys sorted).
fn find_member(json: &[u8], key: &str) -> Found {
    let mut at = 1;
    while at < json.len() && json[at] == b'"' {
        let key_end = string_end(json, at);
        let text = &json[at + 1..key_end];
        let order = if text.contains(&b'\\') {
            let decoded: String = serde_json::from_slice(&json[at..=key_end]).unwrap_or_default();
            decoded.as_str().cmp(key)
        } else {
            text.cmp(key.as_bytes())
        };
        let value_start = key_end + 2;
        let value_end = value_end(json, value_start);
        match order {
            Ordering::Equal => {
                return Found::At {
                    value: value_start..value_end,
                };
            }
            Ordering::Greater => return Found::Before(at),
            Ordering::Less => {}
        }
        at = value_end + usize::from(json.get(value_end) == Some(&b','));
    }
    Found::Before(json.len().saturating_sub(1))
}

/// Index of the closing quote of the string whose opening quote is at `at`.
fn string_end(json: &[u8], at: usize) -> usize {
    let mut i = at + 1;
    while let Some(found) = memchr::memchr2(b'"', b'\\', &json[i.min(json.len())..]) {
        i += found;
        if json[i] == b'"' {
            return i;
        }
        i += 2;
    }
    json.len()
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
