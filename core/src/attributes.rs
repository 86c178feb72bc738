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
    pub(crate) fn from_serialized_map(json: Vec<u8>, starts: Vec<u32>) -> Attributes {
        Attributes(Repr::Raw(Box::new(Raw {
            json,
            starts,
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
        Attributes::from_serialized_map(json, starts)
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
        let index = match raw.find(key) {
            Ok(_) => return false,
            Err(index) => index,
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
        let (at, start) = match raw.starts.get(index) {
            // Before the member that follows in key order.
            Some(next) => {
                member.push(b',');
                (*next as usize, *next as usize)
            }
            // After the last member (or into `{}`), before the closing brace.
            None if raw.starts.is_empty() => (json.len() - 1, json.len() - 1),
            None => {
                member.insert(0, b',');
                (json.len() - 1, json.len())
            }
        };
        let Ok(grown) = u32::try_from(member.len()) else {
            return false;
        };
        json.splice(at..at, member);
        for later in &mut raw.starts[index..] {
            *later += grown;
        }
        raw.starts
            .insert(index, u32::try_from(start).unwrap_or(u32::MAX));
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

impl Raw {
    /// The index of the member with `key` among the top-level ones, or where it would go.
    fn find(&self, key: &str) -> Result<usize, usize> {
        let json = &self.json;
        self.starts.binary_search_by(|start| {
            let at = *start as usize;
            let key_end = string_end(json, at);
            let text = &json[at + 1..key_end];
            if text.contains(&b'\\') {
                let decoded: String =
                    serde_json::from_slice(&json[at..=key_end]).unwrap_or_default();
                decoded.as_str().cmp(key)
            } else {
                text.cmp(key.as_bytes())
            }
        })
    }
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
