//! Reading one component's config block into its typed settings, with every problem collected
//! and named by its full key path (`exporters.splunk_hec/prod.endpoint`).
//!
//! It lives in core so that each component's factory (see [`crate::factory`]) reads its own
//! config type; the pipelines crate only hands each block to the factory its type names.

mod collect;
pub mod lenient;

pub use collect::{Collected, deserialize_all, deserialize_collecting};
pub use serde_yaml::{Mapping, Value};

use crate::config_types::ConfigIssue;
use serde::de::DeserializeOwned;

/// One config problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path (`exporters.splunk_hec/prod.endpoint`), or "" for the file as a whole.
    pub path: String,
    /// What is wrong (secrets scrubbed).
    pub message: String,
}

impl ConfigError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Reads a component's block as a `T` and runs its semantic checks (`validate`), collecting
/// every error of the block. Issues under an entry that could not be read are left out: they
/// would be about the default that stood in for it.
pub fn read_block<T: DeserializeOwned>(
    value: Value,
    path: &str,
    validate: impl Fn(&T) -> Vec<ConfigIssue>,
) -> Result<T, Vec<ConfigError>> {
    let collected = deserialize_collecting::<T>(value, path);
    let mut errors = Vec::new();
    if let Some(config) = &collected.value {
        errors.extend(
            validate(config)
                .into_iter()
                .map(|i| issue_at(path, i))
                .filter(|e| !collected.covers(&e.path)),
        );
    }
    let mut all = collected.errors;
    all.append(&mut errors);
    match collected.value {
        Some(config) if all.is_empty() => Ok(config),
        _ => Err(all),
    }
}

/// A component's issue (keys relative to its block) as an error at its full path.
pub fn issue_at(path: &str, issue: ConfigIssue) -> ConfigError {
    ConfigError {
        path: join_path(path, &issue.key),
        message: issue.message,
    }
}

/// Deserializes `value` into `T`, turning a serde error into one with the full key path.
pub fn deserialize_at<T: DeserializeOwned>(value: Value, path: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize::<_, T>(lenient::Lenient(value)).map_err(|e| {
        let inner = e.path().to_string();
        let mut full = join_path(path, if inner == "." { "" } else { &inner });
        let message = e.inner().to_string();
        // serde names an unknown key in the message but not in the path: put it in the path.
        if let Some(rest) = message.strip_prefix("unknown field `")
            && let Some((field, _)) = rest.split_once('`')
            && !full.ends_with(field)
        {
            full = join_path(&full, field);
        }
        ConfigError {
            path: full,
            message: tidy_serde_message(&message),
        }
    })
}

/// Joins key paths with a dot.
pub fn join_path(base: &str, rest: &str) -> String {
    match (base.is_empty(), rest.is_empty()) {
        (_, true) => base.to_string(),
        (true, false) => rest.to_string(),
        (false, false) => format!("{base}.{rest}"),
    }
}

/// A YAML key as text for paths.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn tidy_serde_message(message: &str) -> String {
    // serde_yaml appends " at line N column M" positions relative to a sub-document; drop them.
    match message.find(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message.to_string(),
    }
}
