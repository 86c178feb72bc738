//! The `filter` processor: keeps or drops events by event type, severity, well-known fields
//! and attribute conditions.
//!
//! ```yaml
//! processors:
//!   filter/security-only:
//!     include: { event_types: [policy_violation, "lockout", "anomaly*"], min_severity: warn }
//!     exclude: { attributes: { user_email: { regex: ".*@test\\.example$" } } }
//! ```
//!
//! # Semantics
//!
//! An event **passes** when it matches `include` and does not match `exclude`:
//!
//! - A matcher (`include` or `exclude`) matches an event when **every criterion given in it**
//!   holds. Criteria left out are not checked.
//! - No `include` means every event is included; no `exclude` means nothing is excluded.
//!   So `exclude` always wins over `include`.
//! - `event_types`: the event type equals one of the entries. `*` in an entry matches any run
//!   of characters (`anomaly*`, `*_violation`, `*`). Case-sensitive.
//! - `min_severity`: the event's severity number is at least this. Given as a name
//!   (`info`, `warn`, `high`, … as in `siemrelay_core::severity::number_for_name`) or an
//!   OpenTelemetry number 0–24. An event without a severity (number 0) is below every minimum.
//! - `attributes`: a map from attribute path to condition; every listed condition must hold.
//!   Paths are nested (`tags.env`); a key containing a dot is written `a\.b` or `["a.b"]`.
//! - `resource`: the same, on the event's resource attributes.
//! - `fields`: the same, on well-known fields: `source`, `summary`, `event_type`, `severity`
//!   (the severity text). An absent `source`/`summary` does not exist.
//!
//! A condition holds when every test given in it holds:
//!
//! | test | holds when |
//! |---|---|
//! | `equals: V` | the value exists and equals `V` (numbers compare by value: `1` equals `1.0`; no string/number coercion) |
//! | `in: [V, …]` | the value exists and equals one of the entries |
//! | `regex: R` | the value is a string and `R` matches somewhere in it (use `^…$` to anchor) |
//! | `exists: true/false` | the value is present / absent (a present `null` exists) |
//!
//! Regexes use the Rust `regex` syntax and are compiled once when the processor is built.

pub mod factory;

use crate::filter::counters::BatchCounters;
use serde::Deserialize;
use siemrelay_core::path::AttrPath;
use siemrelay_core::severity::number_for_name;
use siemrelay_core::{Batch, ConfigIssue, Event, Map, Processor, ProcessorContext, Value};
use std::collections::BTreeMap;

pub(crate) mod counters;

/// Config of the `filter` processor.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Events must match this to pass. Default: none (every event is included).
    #[serde(default)]
    pub include: Option<MatcherConfig>,
    /// Events matching this are dropped, even when included. Default: none.
    #[serde(default)]
    pub exclude: Option<MatcherConfig>,
}

/// Criteria of `include` or `exclude`; the matcher matches when all given criteria hold.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatcherConfig {
    /// Event types, exact or with `*` globs. Default: not checked.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Minimum severity, a name or a number 0–24. Default: not checked.
    #[serde(default)]
    pub min_severity: Option<SeverityThreshold>,
    /// Conditions on attribute paths. Default: none.
    #[serde(default)]
    pub attributes: BTreeMap<String, ConditionConfig>,
    /// Conditions on resource attribute paths. Default: none.
    #[serde(default)]
    pub resource: BTreeMap<String, ConditionConfig>,
    /// Conditions on well-known fields (`source`, `summary`, `event_type`, `severity`).
    /// Default: none.
    #[serde(default)]
    pub fields: BTreeMap<String, ConditionConfig>,
}

/// A severity threshold as written in config: a name (`warn`) or a number (`13`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SeverityThreshold {
    /// An OpenTelemetry severity number.
    Number(i64),
    /// A severity name such as `warn` or `high`.
    Name(String),
}

/// Tests on one value; the condition holds when every given test holds.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// The value equals this. Default: not checked.
    #[serde(default)]
    pub equals: Option<Value>,
    /// The value equals one of these. Default: not checked.
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<Value>>,
    /// The value is a string this regex matches (unanchored). Default: not checked.
    #[serde(default)]
    pub regex: Option<String>,
    /// The value is present (`true`) or absent (`false`). Default: not checked.
    #[serde(default)]
    pub exists: Option<bool>,
}

impl MatcherConfig {
    /// Whether no criterion is given.
    fn is_empty(&self) -> bool {
        self.event_types.is_none()
            && self.min_severity.is_none()
            && self.attributes.is_empty()
            && self.resource.is_empty()
            && self.fields.is_empty()
    }
}

impl FilterConfig {
    /// Checks the config (patterns, severities, paths, regexes) without building anything.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        self.compile().err().unwrap_or_default()
    }

    fn compile(&self) -> Result<(Option<Matcher>, Option<Matcher>), Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let include = self
            .include
            .as_ref()
            .map(|m| Matcher::compile(m, "include", &mut issues));
        let exclude = self
            .exclude
            .as_ref()
            .map(|m| Matcher::compile(m, "exclude", &mut issues));
        if self.exclude.as_ref().is_some_and(MatcherConfig::is_empty) {
            issues.push(ConfigIssue::new(
                "exclude",
                "exclude has no criteria, so it would drop every event; remove it or add criteria",
            ));
        }
        if issues.is_empty() {
            Ok((include, exclude))
        } else {
            Err(issues)
        }
    }
}

/// The running `filter` processor.
#[derive(Debug)]
pub struct Filter {
    include: Option<Matcher>,
    exclude: Option<Matcher>,
    counters: BatchCounters,
}

/// Builds a `filter` processor from its config.
pub fn build(config: FilterConfig, ctx: &ProcessorContext) -> Result<Filter, Vec<ConfigIssue>> {
    let (include, exclude) = config.compile()?;
    Ok(Filter {
        include,
        exclude,
        counters: BatchCounters::new(ctx),
    })
}

impl Filter {
    /// Whether `event` passes the filter.
    pub fn passes(&self, event: &Event) -> bool {
        self.include.as_ref().is_none_or(|m| m.matches(event))
            && !self.exclude.as_ref().is_some_and(|m| m.matches(event))
    }
}

impl Processor for Filter {
    fn process(&self, batch: &mut Batch) {
        let before = batch.len();
        batch.retain(|event| self.passes(event));
        self.counters.record(before, batch.len());
    }
}

/// Compiled criteria of `include` or `exclude`.
#[derive(Debug, Default)]
struct Matcher {
    event_types: Option<Vec<Glob>>,
    min_severity: Option<u8>,
    conditions: Vec<(Target, Condition)>,
}

/// Where a condition reads its value.
#[derive(Debug)]
enum Target {
    Attribute(AttrPath),
    Resource(AttrPath),
    Source,
    Summary,
    EventType,
    SeverityText,
}

impl Matcher {
    fn compile(config: &MatcherConfig, key: &str, issues: &mut Vec<ConfigIssue>) -> Matcher {
        let mut matcher = Matcher::default();
        if let Some(types) = &config.event_types {
            if types.is_empty() {
                issues.push(ConfigIssue::new(
                    format!("{key}.event_types"),
                    "empty list matches no event; remove the key or list event types",
                ));
            }
            matcher.event_types = Some(types.iter().map(|t| Glob::new(t)).collect());
        }
        if let Some(threshold) = &config.min_severity {
            match threshold.number() {
                Some(number) => matcher.min_severity = Some(number),
                None => issues.push(ConfigIssue::new(
                    format!("{key}.min_severity"),
                    format!(
                        "unknown severity {threshold}; use a name (trace, debug, info, warn, \
                         error, fatal, low, medium, high, critical, …) or a number 0-24"
                    ),
                )),
            }
        }
        let mut add = |map: &BTreeMap<String, ConditionConfig>, section: &str| {
            for (name, condition) in map {
                let cond_key = format!("{key}.{section}.{name}");
                let target = match section {
                    "fields" => match name.as_str() {
                        "source" => Some(Target::Source),
                        "summary" => Some(Target::Summary),
                        "event_type" => Some(Target::EventType),
                        "severity" => Some(Target::SeverityText),
                        _ => {
                            issues.push(ConfigIssue::new(
                                &cond_key,
                                "unknown field; fields are source, summary, event_type, severity",
                            ));
                            None
                        }
                    },
                    _ => match AttrPath::parse(name) {
                        Ok(path) if section == "resource" => Some(Target::Resource(path)),
                        Ok(path) => Some(Target::Attribute(path)),
                        Err(e) => {
                            issues.push(ConfigIssue::new(&cond_key, e.to_string()));
                            None
                        }
                    },
                };
                let condition = Condition::compile(condition, &cond_key, issues);
                if let (Some(target), Some(condition)) = (target, condition) {
                    matcher.conditions.push((target, condition));
                }
            }
        };
        add(&config.attributes, "attributes");
        add(&config.resource, "resource");
        add(&config.fields, "fields");
        matcher
    }

    fn matches(&self, event: &Event) -> bool {
        if let Some(min) = self.min_severity
            && event.severity.number < min
        {
            return false;
        }
        if let Some(globs) = &self.event_types
            && !globs.iter().any(|g| g.matches(&event.event_type))
        {
            return false;
        }
        self.conditions
            .iter()
            .all(|(target, condition)| condition.holds(target.read(event)))
    }
}

impl Target {
    /// The value this target names in `event`, borrowed without allocating.
    fn read<'a>(&self, event: &'a Event) -> Found<'a> {
        match self {
            Target::Attribute(path) => Found::from_value(path.get(&event.attributes)),
            Target::Resource(path) => Found::from_value(path.get(&event.resource)),
            Target::Source => event.source.as_deref().map_or(Found::Absent, Found::Text),
            Target::Summary => event.summary.as_deref().map_or(Found::Absent, Found::Text),
            Target::EventType => Found::Text(&event.event_type),
            Target::SeverityText => Found::Text(&event.severity.text),
        }
    }
}

/// A value found in an event: an attribute value, a well-known text field, or nothing.
#[derive(Clone, Copy)]
enum Found<'a> {
    Absent,
    Text(&'a str),
    Value(&'a Value),
}

impl<'a> Found<'a> {
    fn from_value(value: Option<&'a Value>) -> Found<'a> {
        value.map_or(Found::Absent, Found::Value)
    }

    fn as_str(self) -> Option<&'a str> {
        match self {
            Found::Text(text) => Some(text),
            Found::Value(value) => value.as_str(),
            Found::Absent => None,
        }
    }

    fn equals(self, expected: &Value) -> bool {
        match self {
            Found::Absent => false,
            Found::Text(text) => expected.as_str() == Some(text),
            Found::Value(value) => values_equal(value, expected),
        }
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                x.as_f64() == y.as_f64()
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => maps_equal(x, y),
        _ => a == b,
    }
}

fn maps_equal(x: &Map, y: &Map) -> bool {
    x.len() == y.len()
        && x.iter()
            .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
}

/// Compiled tests on one value.
#[derive(Debug)]
struct Condition {
    equals: Option<Value>,
    one_of: Option<Vec<Value>>,
    regex: Option<regex::Regex>,
    exists: Option<bool>,
}

impl Condition {
    fn compile(
        config: &ConditionConfig,
        key: &str,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<Condition> {
        let before = issues.len();
        if config.equals.is_none()
            && config.one_of.is_none()
            && config.regex.is_none()
            && config.exists.is_none()
        {
            issues.push(ConfigIssue::new(
                key,
                "condition has no test; give equals, in, regex or exists",
            ));
        }
        if config.one_of.as_ref().is_some_and(Vec::is_empty) {
            issues.push(ConfigIssue::new(
                format!("{key}.in"),
                "empty list matches no value",
            ));
        }
        let regex = match &config.regex {
            Some(pattern) => match regex::Regex::new(pattern) {
                Ok(regex) => Some(regex),
                Err(e) => {
                    issues.push(ConfigIssue::new(
                        format!("{key}.regex"),
                        format!("invalid regex: {e}"),
                    ));
                    None
                }
            },
            None => None,
        };
        (issues.len() == before).then(|| Condition {
            equals: config.equals.clone(),
            one_of: config.one_of.clone(),
            regex,
            exists: config.exists,
        })
    }

    fn holds(&self, found: Found<'_>) -> bool {
        if let Some(exists) = self.exists
            && exists == matches!(found, Found::Absent)
        {
            return false;
        }
        if let Some(expected) = &self.equals
            && !found.equals(expected)
        {
            return false;
        }
        if let Some(options) = &self.one_of
            && !options.iter().any(|o| found.equals(o))
        {
            return false;
        }
        if let Some(regex) = &self.regex
            && !found.as_str().is_some_and(|s| regex.is_match(s))
        {
            return false;
        }
        true
    }
}

impl SeverityThreshold {
    /// The OpenTelemetry number of this threshold, if valid.
    pub fn number(&self) -> Option<u8> {
        match self {
            SeverityThreshold::Number(n) => u8::try_from(*n).ok().filter(|n| *n <= 24),
            SeverityThreshold::Name(name) => number_for_name(name),
        }
    }
}

impl std::fmt::Display for SeverityThreshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeverityThreshold::Number(n) => write!(f, "{n}"),
            SeverityThreshold::Name(name) => write!(f, "{name:?}"),
        }
    }
}

/// An event type pattern: exact text, or parts separated by `*`.
#[derive(Debug)]
enum Glob {
    Exact(String),
    Parts(Vec<String>),
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        if pattern.contains('*') {
            Glob::Parts(pattern.split('*').map(str::to_string).collect())
        } else {
            Glob::Exact(pattern.to_string())
        }
    }

    fn matches(&self, text: &str) -> bool {
        match self {
            Glob::Exact(exact) => exact == text,
            Glob::Parts(parts) => glob_matches(parts, text),
        }
    }
}

/// Matches `text` against pattern parts that were separated by `*` (at least two parts).
fn glob_matches(parts: &[String], text: &str) -> bool {
    let (Some((first, rest)), Some(last)) = (parts.split_first(), parts.last()) else {
        return false;
    };
    let Some(mut remaining) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    let middle = &rest[..rest.len().saturating_sub(1)];
    for part in middle {
        match remaining.find(part.as_str()) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last.as_str())
}

#[cfg(test)]
mod tests;
