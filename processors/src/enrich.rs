//! The `enrich` processor: sets, moves and removes attributes on every event, and fills in
//! `source`. Modelled on the OpenTelemetry Collector's `attributes` processor.
//!
//! ```yaml
//! processors:
//!   enrich:
//!     actions:
//!       - { action: upsert, key: deployment.env, value: prod }
//!       - { action: insert, key: host, value_from: hostname }
//!       - { action: upsert, key: region, value: "${env:REGION}" }
//!       - { action: rename, from: usr, to: user.name }
//!       - { action: copy, from: user.name, to: actor }
//!       - { action: delete, key: tags.internal }
//!       - { action: promote_resource, keys: [service.name] }
//!     source: gateway        # set when the event has no source
//! ```
//!
//! Actions run in the order listed, on every event. Keys (`key`, `from`, `to`) are attribute
//! paths: `tags.env` is the key `env` inside the map `tags`; a key containing a dot is written
//! `a\.b` or `["a.b"]`.
//!
//! | action | fields | effect |
//! |---|---|---|
//! | `insert` | `key`, `value` or `value_from` | sets the value only if `key` is absent (and no parent on the path is a non-map value) |
//! | `upsert` | `key`, `value` or `value_from` | sets the value, replacing any existing one; missing parent maps are created, non-map parents replaced |
//! | `update` | `key`, `value` or `value_from` | replaces the value only if `key` is present |
//! | `delete` | `key` | removes `key` if present |
//! | `rename` | `from`, `to` | moves the value from `from` to `to` (replacing `to`); nothing if `from` is absent |
//! | `copy` | `from`, `to` | copies the value from `from` to `to` (replacing `to`); nothing if `from` is absent |
//! | `promote_resource` | `keys` (optional) | copies the listed resource attributes (all when `keys` is left out) into the attributes under the same key, unless the event already has that attribute. Resource keys are taken literally: `service.name` is the resource key `"service.name"`, promoted to the attribute `"service.name"` |
//!
//! `value` is any YAML value (string, number, bool, list, map); `${env:NAME}` in it is expanded
//! when the config is loaded. `value_from: hostname` uses the host name of the machine
//! siemrelay runs on, read once at start.
//!
//! `source` (default: none) sets the event's `source` field when the event has none; it is
//! applied after the actions.

pub mod factory;

use crate::filter::counters::BatchCounters;
use serde::Deserialize;
use siemrelay_core::attributes::RawMember;
use siemrelay_core::path::AttrPath;
use siemrelay_core::{
    Attributes, Batch, ConfigIssue, Event, EventFields, Processor, ProcessorContext, Value,
};

/// Config of the `enrich` processor.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Actions applied to every event, in order. Default: none.
    #[serde(default)]
    pub actions: Vec<ActionConfig>,
    /// Value for `source` on events that have none. Default: none (source left as is).
    #[serde(default)]
    pub source: Option<String>,
}

/// One action as written in config. Which fields apply depends on `action`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// What to do.
    pub action: ActionKind,
    /// Attribute path for `insert`, `upsert`, `update`, `delete`.
    #[serde(default)]
    pub key: Option<String>,
    /// Value for `insert`, `upsert`, `update` (exclusive with `value_from`).
    #[serde(default)]
    pub value: Option<Value>,
    /// Computed value for `insert`, `upsert`, `update` (exclusive with `value`).
    #[serde(default)]
    pub value_from: Option<ValueFrom>,
    /// Source attribute path for `rename` and `copy`.
    #[serde(default)]
    pub from: Option<String>,
    /// Target attribute path for `rename` and `copy`.
    #[serde(default)]
    pub to: Option<String>,
    /// Resource keys for `promote_resource`. Default: all resource attributes.
    #[serde(default)]
    pub keys: Option<Vec<String>>,
}

/// The kinds of enrich actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Set a value only where none exists.
    Insert,
    /// Set a value, replacing any existing one.
    Upsert,
    /// Replace an existing value only.
    Update,
    /// Remove a value.
    Delete,
    /// Move a value to another path.
    Rename,
    /// Copy a value to another path.
    Copy,
    /// Copy resource attributes into the attributes.
    PromoteResource,
}

/// Sources of computed values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueFrom {
    /// The host name of the machine siemrelay runs on.
    Hostname,
}

impl EnrichConfig {
    /// Checks the actions (required and unused fields, paths) without building anything.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        self.compile(|| Value::Null).err().unwrap_or_default()
    }

    /// Compiles the actions; `hostname` is called at most once, only if an action needs it.
    fn compile(&self, hostname: impl FnOnce() -> Value) -> Result<Vec<Action>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mut hostname = Some(hostname);
        let mut host_value = None;
        let mut actions = Vec::with_capacity(self.actions.len());
        for (i, config) in self.actions.iter().enumerate() {
            let mut resolve = |from: ValueFrom| match from {
                ValueFrom::Hostname => host_value
                    .get_or_insert_with(|| hostname.take().map_or(Value::Null, |f| f()))
                    .clone(),
            };
            if let Some(action) =
                config.compile(&format!("actions[{i}]"), &mut resolve, &mut issues)
            {
                actions.push(action);
            }
        }
        if issues.is_empty() {
            Ok(actions)
        } else {
            Err(issues)
        }
    }
}

impl ActionConfig {
    fn compile(
        &self,
        key: &str,
        resolve: &mut dyn FnMut(ValueFrom) -> Value,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<Action> {
        let before = issues.len();
        let name = self.action.name();
        let path = |field: &str, text: &Option<String>, issues: &mut Vec<ConfigIssue>| {
            parse_path(key, name, field, text.as_deref(), issues)
        };
        let action = match self.action {
            ActionKind::Insert | ActionKind::Upsert | ActionKind::Update => {
                let target = path("key", &self.key, issues);
                let value = match (&self.value, self.value_from) {
                    (Some(value), None) => Some(value.clone()),
                    (None, Some(from)) => Some(resolve(from)),
                    (Some(_), Some(_)) => {
                        issues.push(ConfigIssue::new(
                            format!("{key}.value_from"),
                            "give either `value` or `value_from`, not both",
                        ));
                        None
                    }
                    (None, None) => {
                        issues.push(ConfigIssue::new(
                            format!("{key}.value"),
                            format!("{name} needs `value` or `value_from`"),
                        ));
                        None
                    }
                };
                target.zip(value).map(|(target, value)| match self.action {
                    ActionKind::Insert => Action::Insert(SetValue::new(target, value)),
                    ActionKind::Upsert => Action::Upsert(SetValue::new(target, value)),
                    _ => Action::Update(target, value),
                })
            }
            ActionKind::Delete => path("key", &self.key, issues).map(Action::Delete),
            ActionKind::Rename | ActionKind::Copy => {
                let from = path("from", &self.from, issues);
                let to = path("to", &self.to, issues);
                from.zip(to).map(|(from, to)| {
                    if self.action == ActionKind::Rename {
                        Action::Rename { from, to }
                    } else {
                        Action::Copy { from, to }
                    }
                })
            }
            ActionKind::PromoteResource => {
                if self.keys.as_ref().is_some_and(Vec::is_empty) {
                    issues.push(ConfigIssue::new(
                        format!("{key}.keys"),
                        "empty list promotes nothing; leave `keys` out to promote all",
                    ));
                }
                Some(Action::PromoteResource(self.keys.clone()))
            }
        };
        for (field, given) in self.given_fields() {
            if given && !self.action.uses(field) {
                issues.push(ConfigIssue::new(
                    format!("{key}.{field}"),
                    format!("`{field}` is not used by {name}"),
                ));
            }
        }
        action.filter(|_| issues.len() == before)
    }

    fn given_fields(&self) -> [(&'static str, bool); 6] {
        [
            ("key", self.key.is_some()),
            ("value", self.value.is_some()),
            ("value_from", self.value_from.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("keys", self.keys.is_some()),
        ]
    }
}

/// Parses the attribute path in `field` of the action at `key`, which `action` requires.
fn parse_path(
    key: &str,
    action: &str,
    field: &str,
    text: Option<&str>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<AttrPath> {
    let Some(text) = text else {
        issues.push(ConfigIssue::new(
            format!("{key}.{field}"),
            format!("{action} needs `{field}`"),
        ));
        return None;
    };
    AttrPath::parse(text)
        .map_err(|e| issues.push(ConfigIssue::new(format!("{key}.{field}"), e.to_string())))
        .ok()
}

impl ActionKind {
    /// The name as written in config.
    fn name(self) -> &'static str {
        match self {
            ActionKind::Insert => "insert",
            ActionKind::Upsert => "upsert",
            ActionKind::Update => "update",
            ActionKind::Delete => "delete",
            ActionKind::Rename => "rename",
            ActionKind::Copy => "copy",
            ActionKind::PromoteResource => "promote_resource",
        }
    }

    /// Whether this action reads the config field `field`.
    fn uses(self, field: &str) -> bool {
        match self {
            ActionKind::Insert | ActionKind::Upsert | ActionKind::Update => {
                matches!(field, "key" | "value" | "value_from")
            }
            ActionKind::Delete => field == "key",
            ActionKind::Rename | ActionKind::Copy => matches!(field, "from" | "to"),
            ActionKind::PromoteResource => field == "keys",
        }
    }
}

/// A compiled action.
#[derive(Clone, Debug, PartialEq)]
enum Action {
    Insert(SetValue),
    Upsert(SetValue),
    Update(AttrPath, Value),
    Delete(AttrPath),
    Rename { from: AttrPath, to: AttrPath },
    Copy { from: AttrPath, to: AttrPath },
    PromoteResource(Option<Vec<String>>),
}

/// What `insert` and `upsert` set: the path and value, and the member that raw attributes
/// lacking the path's first key get, serialized once here.
#[derive(Clone, Debug, PartialEq)]
struct SetValue {
    path: AttrPath,
    value: Value,
    /// `"first":{…:value}` (see [`RawMember`]); none for a path without segments.
    raw: Option<RawMember>,
}

impl SetValue {
    fn new(path: AttrPath, value: Value) -> SetValue {
        let raw = path
            .segments()
            .split_first()
            .map(|(first, rest)| RawMember::new(first, rest, &value));
        SetValue { path, value, raw }
    }

    /// Sets the value in attributes held raw, without parsing them, when the path's first key
    /// is not there (then insert and upsert give the same: `{first: {…: value}}`): a copy of
    /// the prepared member into the bytes. False, changing nothing, otherwise.
    fn insert_raw(&self, attributes: &mut Attributes) -> bool {
        self.raw
            .as_ref()
            .is_some_and(|member| attributes.insert_raw_member_if_absent(member))
    }
}

impl Action {
    fn apply(&self, event: &mut EventFields) {
        let attributes = &mut event.attributes;
        match self {
            // A first key that raw attributes lack is written into their bytes.
            Action::Insert(set) | Action::Upsert(set) if set.insert_raw(attributes) => {}
            Action::Insert(SetValue { path, value, .. }) => {
                if path_is_free(path, attributes) {
                    path.insert(attributes, value.clone());
                }
            }
            Action::Upsert(SetValue { path, value, .. }) => {
                path.insert(attributes, value.clone());
            }
            Action::Update(path, value) => {
                if let Some(slot) = path.get_mut(attributes) {
                    slot.clone_from(value);
                }
            }
            Action::Delete(path) => {
                path.remove(attributes);
            }
            Action::Rename { from, to } => {
                if let Some(value) = from.remove(attributes) {
                    to.insert(attributes, value);
                }
            }
            Action::Copy { from, to } => {
                if let Some(value) = from.get(attributes).cloned() {
                    to.insert(attributes, value);
                }
            }
            Action::PromoteResource(keys) => {
                let mut promote = |key: &String, value: &Value| {
                    if !attributes.contains_key(key) {
                        attributes.insert(key.clone(), value.clone());
                    }
                };
                match keys {
                    Some(keys) => {
                        for key in keys {
                            if let Some(value) = event.resource.get(key) {
                                promote(key, value);
                            }
                        }
                    }
                    None => event.resource.iter().for_each(|(k, v)| promote(k, v)),
                }
            }
        }
    }
}

/// Whether `path` is absent and every existing parent on it is a map, so `insert` may set it.
fn path_is_free(path: &AttrPath, map: &siemrelay_core::Map) -> bool {
    let Some((last, parents)) = path.segments().split_last() else {
        return false;
    };
    let mut current = map;
    for key in parents {
        match current.get(key) {
            None => return true,
            Some(Value::Object(inner)) => current = inner,
            Some(_) => return false,
        }
    }
    !current.contains_key(last)
}

/// The running `enrich` processor.
#[derive(Debug)]
pub struct Enrich {
    actions: Vec<Action>,
    source: Option<String>,
    counters: BatchCounters,
}

/// Builds an `enrich` processor from its config. Reads the host name if an action uses it.
pub fn build(config: EnrichConfig, ctx: &ProcessorContext) -> Result<Enrich, Vec<ConfigIssue>> {
    let actions = config
        .compile(|| Value::String(gethostname::gethostname().to_string_lossy().into_owned()))?;
    Ok(Enrich {
        actions,
        source: config.source,
        counters: BatchCounters::new(ctx),
    })
}

impl Enrich {
    /// Applies the actions and the default source to one event.
    pub fn enrich(&self, event: &mut Event) {
        // One mutable access to the fields for all actions (it drops any kept JSON form).
        if !self.actions.is_empty() {
            let fields = &mut **event;
            for action in &self.actions {
                action.apply(fields);
            }
        }
        if event.source.is_none()
            && let Some(source) = &self.source
        {
            event.source = Some(source.clone());
        }
    }
}

impl Processor for Enrich {
    fn process(&self, batch: &mut Batch) {
        for event in batch.iter_mut() {
            self.enrich(event);
        }
        self.counters.record(batch.len(), batch.len());
    }
}

#[cfg(test)]
mod tests;
