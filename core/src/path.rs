//! Attribute paths used in config: `tags.env` is a nested key; a literal dot is written `a\.b`
//! or `["a.b"]` (e.g. `http["user.agent"]`).

use crate::event::{Map, Value};
use std::fmt;

/// A parsed path of map keys into an attribute tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AttrPath {
    segments: Vec<String>,
}

/// Why a path could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid attribute path {path:?}: {reason}")]
pub struct PathError {
    /// The path as written.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl AttrPath {
    /// Parses `a.b`, `a\.b` and `a["b.c"]` forms.
    pub fn parse(text: &str) -> Result<AttrPath, PathError> {
        let err = |reason| PathError {
            path: text.to_string(),
            reason,
        };
        let mut segments = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars().peekable();
        // True right after a `["…"]` segment, where only `.`, `[` or the end may follow.
        let mut after_bracket = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped) => current.push(escaped),
                    None => return Err(err("trailing backslash")),
                },
                '.' => {
                    if current.is_empty() && !after_bracket {
                        return Err(err("empty segment"));
                    }
                    if !after_bracket {
                        segments.push(std::mem::take(&mut current));
                    }
                    after_bracket = false;
                    continue;
                }
                '[' if chars.peek() == Some(&'"') => {
                    if !current.is_empty() {
                        segments.push(std::mem::take(&mut current));
                    }
                    chars.next();
                    let mut key = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => match chars.next() {
                                Some(escaped) => key.push(escaped),
                                None => return Err(err("unterminated [\"…\"]")),
                            },
                            Some('"') => break,
                            Some(other) => key.push(other),
                            None => return Err(err("unterminated [\"…\"]")),
                        }
                    }
                    if chars.next() != Some(']') {
                        return Err(err("expected ] after the quoted key"));
                    }
                    segments.push(key);
                    after_bracket = true;
                    continue;
                }
                other => {
                    if after_bracket {
                        return Err(err("expected . or [ after ]"));
                    }
                    current.push(other);
                }
            }
        }
        if !after_bracket {
            if current.is_empty() {
                return Err(err("empty segment"));
            }
            segments.push(current);
        }
        Ok(AttrPath { segments })
    }

    /// A path of exactly one key (no parsing of dots).
    pub fn single(key: impl Into<String>) -> AttrPath {
        AttrPath {
            segments: vec![key.into()],
        }
    }

    /// The keys of the path, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The value at this path, if every step exists and is a map.
    pub fn get<'a>(&self, map: &'a Map) -> Option<&'a Value> {
        let (last, parents) = self.segments.split_last()?;
        let mut current = map;
        for key in parents {
            current = current.get(key)?.as_object()?;
        }
        current.get(last)
    }

    /// Mutable access to the value at this path.
    pub fn get_mut<'a>(&self, map: &'a mut Map) -> Option<&'a mut Value> {
        let (last, parents) = self.segments.split_last()?;
        let mut current = map;
        for key in parents {
            current = current.get_mut(key)?.as_object_mut()?;
        }
        current.get_mut(last)
    }

    /// Sets the value at this path, creating intermediate maps. Returns the previous value.
    /// An intermediate value that is not a map is replaced by a map.
    pub fn insert(&self, map: &mut Map, value: Value) -> Option<Value> {
        let (last, parents) = self.segments.split_last()?;
        let mut current = map;
        for key in parents {
            let slot = current
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            current = slot.as_object_mut()?;
        }
        current.insert(last.clone(), value)
    }

    /// Removes and returns the value at this path.
    pub fn remove(&self, map: &mut Map) -> Option<Value> {
        let (last, parents) = self.segments.split_last()?;
        let mut current = map;
        for key in parents {
            current = current.get_mut(key)?.as_object_mut()?;
        }
        current.remove(last)
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(&segment.replace('\\', "\\\\").replace('.', "\\."))?;
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for AttrPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        AttrPath::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for AttrPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn segs(text: &str) -> Vec<String> {
        AttrPath::parse(text).unwrap().segments().to_vec()
    }

    #[test]
    fn parses_nested_escaped_and_bracketed_keys() {
        assert_eq!(segs("tags.env"), ["tags", "env"]);
        assert_eq!(segs(r"a\.b"), ["a.b"]);
        assert_eq!(segs(r#"["a.b"]"#), ["a.b"]);
        assert_eq!(segs(r#"http["user.agent"].x"#), ["http", "user.agent", "x"]);
        assert_eq!(segs(r#"a["b"]["c.d"]"#), ["a", "b", "c.d"]);
        assert!(AttrPath::parse("a..b").is_err());
        assert!(AttrPath::parse("").is_err());
        assert!(AttrPath::parse(r#"a["b"#).is_err());
        assert!(AttrPath::parse(r#"a["b"]c"#).is_err());
    }

    #[test]
    fn get_insert_remove_on_nested_maps() {
        let mut map = json!({"tags": {"env": "prod"}, "a.b": 1})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            AttrPath::parse("tags.env").unwrap().get(&map),
            Some(&json!("prod"))
        );
        assert_eq!(AttrPath::parse(r"a\.b").unwrap().get(&map), Some(&json!(1)));
        AttrPath::parse("x.y.z")
            .unwrap()
            .insert(&mut map, json!(true));
        assert_eq!(map["x"]["y"]["z"], json!(true));
        assert_eq!(
            AttrPath::parse("tags.env").unwrap().remove(&mut map),
            Some(json!("prod"))
        );
        assert_eq!(map["tags"], json!({}));
        assert_eq!(AttrPath::parse(r"a\.b").unwrap().to_string(), r"a\.b");
    }
}
