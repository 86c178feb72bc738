//! Deserializing a config block while collecting every error, not just the first.
//!
//! serde stops at the first problem. To find the others, the offending entry is taken out of
//! the block and the block is read again, until it reads or nothing more can be taken out: an
//! unknown key or a bad value is removed (its default applies for the next pass); a missing
//! required key removes the map that lacks it (its parent's other keys are still checked). A
//! missing key that is only missing because an earlier pass removed it is not reported twice.
//! Paths are reported as written in the file, also after list items were removed.

use super::lenient::Lenient;
use super::{ConfigError, join_path, key_text, tidy_serde_message};
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use serde_yaml::Value;

/// Passes before giving up on a block (each pass removes one entry).
const MAX_PASSES: usize = 64;

/// One step of a key path inside a block.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// The result of reading a block: the typed value when the block could be read (possibly after
/// removing bad entries), every error, and the full paths of the entries that were removed.
pub struct Collected<T> {
    /// The block, read with the removed entries left at their defaults; `None` when it could
    /// not be read at all.
    pub value: Option<T>,
    /// Every problem found, in the order found.
    pub errors: Vec<ConfigError>,
    /// Full key paths of the removed entries (validation issues under them are not reported:
    /// they would be about defaults that stood in for the bad values).
    pub removed: Vec<String>,
}

impl<T> Collected<T> {
    /// Whether `path` is, or is under, a removed entry.
    pub fn covers(&self, path: &str) -> bool {
        self.removed.iter().any(|removed| {
            path == removed
                || path
                    .strip_prefix(removed.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }
}

/// Reads `value` as a `T`, collecting every error with its full key path (`path` is the
/// block's own path, e.g. `exporters.splunk_hec/prod`).
pub fn deserialize_collecting<T: DeserializeOwned>(mut value: Value, path: &str) -> Collected<T> {
    let mut errors = Vec::new();
    // Removed entries, as paths in the original block.
    let mut removed: Vec<Vec<Step>> = Vec::new();
    for _ in 0..MAX_PASSES {
        let error = match serde_path_to_error::deserialize::<_, T>(Lenient(value.clone())) {
            Ok(read) => {
                return Collected {
                    value: Some(read),
                    errors,
                    removed: removed.iter().map(|r| full_path(path, r)).collect(),
                };
            }
            Err(error) => error,
        };
        let Some(mut at) = steps(error.path()) else {
            errors.push(ConfigError {
                path: path.to_string(),
                message: tidy_serde_message(&error.inner().to_string()),
            });
            break;
        };
        let message = error.inner().to_string();
        let mut report = true;
        if let Some(field) = quoted_after(&message, "unknown field `") {
            // The path sometimes ends at the unknown key already, sometimes at its map.
            if at.last() != Some(&Step::Key(field.clone())) {
                at.push(Step::Key(field));
            }
        } else if let Some(field) = quoted_after(&message, "missing field `") {
            let mut missing = original(&at, &removed);
            missing.push(Step::Key(field));
            report = !removed.contains(&missing);
        }
        let original_at = original(&at, &removed);
        if report {
            errors.push(ConfigError {
                path: full_path(path, &original_at),
                message: tidy_serde_message(&message),
            });
        }
        if at.is_empty() || !remove(&mut value, &at) {
            break;
        }
        removed.push(original_at);
    }
    Collected {
        value: None,
        errors,
        removed: removed.iter().map(|r| full_path(path, r)).collect(),
    }
}

/// Reads `value` as a `T`; every error of the block when it does not read.
pub fn deserialize_all<T: DeserializeOwned>(
    value: Value,
    path: &str,
) -> Result<T, Vec<ConfigError>> {
    let collected = deserialize_collecting(value, path);
    match collected.value {
        Some(read) if collected.errors.is_empty() => Ok(read),
        _ => Err(collected.errors),
    }
}

/// The text between `prefix` and the next backtick in `message`.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name.to_string())
}

/// The error path as steps; `None` when a step cannot be followed in the YAML (e.g. inside a
/// value whose type reads it differently).
fn steps(path: &serde_path_to_error::Path) -> Option<Vec<Step>> {
    path.iter()
        .map(|segment| match segment {
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Enum { variant } => Some(Step::Key(variant.clone())),
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Unknown => None,
        })
        .collect()
}

/// A path in the current (pruned) block, translated to the original block: list indices move
/// past the items removed before them.
fn original(current: &[Step], removed: &[Vec<Step>]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(current.len());
    for step in current {
        match step {
            Step::Key(key) => out.push(Step::Key(key.clone())),
            Step::Index(index) => {
                let mut gone: Vec<usize> = removed
                    .iter()
                    .filter(|r| r.len() == out.len() + 1 && r[..out.len()] == out[..])
                    .filter_map(|r| match r.last() {
                        Some(Step::Index(i)) => Some(*i),
                        _ => None,
                    })
                    .collect();
                gone.sort_unstable();
                let mut at = *index;
                for i in gone {
                    if i <= at {
                        at += 1;
                    }
                }
                out.push(Step::Index(at));
            }
        }
    }
    out
}

fn full_path(base: &str, steps: &[Step]) -> String {
    let mut inner = String::new();
    for step in steps {
        match step {
            Step::Key(key) => {
                if !inner.is_empty() {
                    inner.push('.');
                }
                inner.push_str(key);
            }
            Step::Index(index) => inner.push_str(&format!("[{index}]")),
        }
    }
    join_path(base, &inner)
}

/// Removes the entry at `at`; false when the path does not lead to one.
fn remove(value: &mut Value, at: &[Step]) -> bool {
    let Some((last, parents)) = at.split_last() else {
        return false;
    };
    let mut node = value;
    for step in parents {
        node = match (step, node) {
            (Step::Key(key), Value::Mapping(map)) => match find_key(map, key) {
                Some(found) => match map.get_mut(&found) {
                    Some(child) => child,
                    None => return false,
                },
                None => return false,
            },
            (Step::Index(index), Value::Sequence(items)) => match items.get_mut(*index) {
                Some(child) => child,
                None => return false,
            },
            (step, Value::Tagged(tagged)) => {
                return remove(
                    &mut tagged.value,
                    &[&[step.clone()][..], &at[parents.len()..]].concat(),
                );
            }
            _ => return false,
        };
    }
    match (last, node) {
        (Step::Key(key), Value::Mapping(map)) => match find_key(map, key) {
            Some(found) => map.shift_remove(&found).is_some(),
            None => false,
        },
        (Step::Index(index), Value::Sequence(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
    }
}

/// The mapping key whose text is `key` (keys may be numbers or booleans in YAML).
fn find_key(map: &serde_yaml::Mapping, key: &str) -> Option<Value> {
    map.keys().find(|k| key_text(k) == key).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_types::ConfigDuration;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only deserialized
    struct Block {
        endpoint: String,
        #[serde(default)]
        timeout: Option<ConfigDuration>,
        #[serde(default)]
        retries: u32,
        #[serde(default)]
        tls: Option<Tls>,
        #[serde(default)]
        keys: Vec<Key>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only deserialized
    struct Tls {
        cert_file: String,
        #[serde(default)]
        verify: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only deserialized
    struct Key {
        id: String,
        #[serde(default)]
        secret: String,
    }

    fn collect(yaml: &str) -> Collected<Block> {
        deserialize_collecting(serde_yaml::from_str(yaml).unwrap(), "exporters.x")
    }

    fn paths(collected: &Collected<Block>) -> Vec<&str> {
        collected.errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn every_bad_key_of_a_block_is_reported() {
        let collected = collect(
            "{ endpoint: e, timeout: 5, retries: lots, endpiont: e, tls: { cert_fil: c, verify: 3 } }",
        );
        assert_eq!(
            paths(&collected),
            [
                "exporters.x.timeout",
                "exporters.x.retries",
                "exporters.x.endpiont",
                "exporters.x.tls.cert_fil",
                "exporters.x.tls.verify",
                "exporters.x.tls",
            ],
            "{:?}",
            collected.errors
        );
        assert!(collected.errors[0].message.contains("write 5s"));
        assert!(
            collected.errors[5]
                .message
                .contains("missing field `cert_file`")
        );
        assert!(
            collected.value.is_some(),
            "read with the bad entries removed"
        );
        assert!(collected.covers("exporters.x.tls.cert_file"));
        assert!(!collected.covers("exporters.x.tlsx"));
    }

    #[test]
    fn a_missing_key_is_reported_once_and_list_items_keep_their_index() {
        let collected = collect("{ endpoint: e, keys: [{ id: a, x: 1 }, { id: b }, { i: c }] }");
        assert_eq!(
            paths(&collected),
            [
                "exporters.x.keys[0].x",
                "exporters.x.keys[2].i",
                "exporters.x.keys[2]",
            ],
            "{:?}",
            collected.errors
        );
        // A removed required key is not reported again as missing; the block ends there.
        let collected = collect("{ endpoint: [1], retries: -1 }");
        assert_eq!(
            paths(&collected),
            ["exporters.x.endpoint", "exporters.x.retries"],
            "{:?}",
            collected.errors
        );
        assert!(collected.value.is_none());
        let missing = collect("{ retries: x }");
        assert_eq!(
            paths(&missing),
            ["exporters.x.retries", "exporters.x"],
            "{:?}",
            missing.errors
        );
    }
}
