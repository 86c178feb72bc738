//! The index template (`index_template: true`): keyword/date mappings for the well-known
//! fields, matching the configured indices or data stream, named after the exporter and marked
//! in `_meta` as siemrelay's, so that siemrelay never replaces a template someone else made.

use super::config::TemplateSettings;
use serde_json::{Value, json};

/// `_meta.managed_by` of every template siemrelay installs.
pub const MANAGED_BY: &str = "siemrelay";

/// The template name of an exporter: `siemrelay-<id>`, `/` as `-`, lower case (Elasticsearch
/// refuses upper-case template names).
pub fn template_name(exporter: &str) -> String {
    format!(
        "siemrelay-{}",
        exporter.replace('/', "-").to_ascii_lowercase()
    )
}

/// Whose a template read back from the cluster is, judged by its `_meta`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Made by this exporter (`_meta.managed_by: siemrelay`, `_meta.exporter` = its id): it
    /// may be updated.
    Ours,
    /// Anything else: left alone. Says what its `_meta` shows.
    Foreign(String),
}

/// Judges the `index_template` object of a `GET _index_template/<name>` reply.
pub fn ownership(template: &Value, exporter: &str) -> Ownership {
    let meta = &template["_meta"];
    match (meta["managed_by"].as_str(), meta["exporter"].as_str()) {
        (Some(MANAGED_BY), Some(owner)) if owner == exporter => Ownership::Ours,
        (Some(MANAGED_BY), Some(owner)) => Ownership::Foreign(format!(
            "it was installed by siemrelay exporter {owner:?}, not {exporter:?}"
        )),
        (Some(MANAGED_BY), None) => Ownership::Foreign(
            "its _meta says siemrelay but names no exporter (an older siemrelay's template)".into(),
        ),
        _ if meta.is_null() => Ownership::Foreign("it has no _meta.managed_by: siemrelay".into()),
        _ => Ownership::Foreign(format!(
            "its _meta ({}) does not mark it as siemrelay's",
            cut(&meta.to_string(), 200)
        )),
    }
}

fn cut(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The `PUT _index_template/<name>` body for `exporter`. The default priority 200 wins over
/// the built-in `logs-*-*` template (priority 100) for a data stream such as
/// `logs-siemrelay-default`.
pub fn template_body(
    exporter: &str,
    pattern: &str,
    data_stream: bool,
    settings: &TemplateSettings,
) -> Value {
    let keyword = json!({"type": "keyword"});
    let date = json!({"type": "date"});
    let mut body = json!({
        "index_patterns": [pattern],
        "priority": settings.priority,
        "template": {
            "mappings": {
                "properties": {
                    "@timestamp": date,
                    "observed_timestamp": date,
                    "event_id": keyword,
                    "event_type": keyword,
                    "severity": keyword,
                    "severity_number": {"type": "short"},
                    "source": keyword,
                    "summary": {"type": "text"},
                    "attributes": {"type": "object"},
                    "resource": {"type": "object"},
                    "signature": {"properties": {
                        "alg": keyword, "kid": keyword, "value": keyword, "prev": keyword,
                    }},
                }
            }
        },
        "_meta": {
            "managed_by": MANAGED_BY,
            "exporter": exporter,
            "siemrelay_version": env!("CARGO_PKG_VERSION"),
        },
    });
    let mut index = serde_json::Map::new();
    if let Some(shards) = settings.number_of_shards {
        index.insert("number_of_shards".into(), json!(shards));
    }
    if let Some(replicas) = settings.number_of_replicas {
        index.insert("number_of_replicas".into(), json!(replicas));
    }
    if let Some(policy) = &settings.ilm_policy {
        index.insert("lifecycle".into(), json!({ "name": policy }));
    }
    if !index.is_empty() {
        body["template"]["settings"] = json!({ "index": index });
    }
    if data_stream {
        body["data_stream"] = json!({});
    }
    body
}

/// Whether an ISM policy (the `policy` object of `GET _plugins/_ism/policies/<id>`) attaches
/// itself to indices named like `pattern` through an `ism_template` entry.
pub fn ism_template_covers(policy: &Value, pattern: &str) -> bool {
    let templates = match &policy["ism_template"] {
        Value::Array(list) => list.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    };
    let probe = pattern.replace('*', "x");
    templates.iter().any(|template| {
        template["index_patterns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|p| glob(p, &probe))
    })
}

/// `*` wildcards, as index patterns have them.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_exporter_id() {
        assert_eq!(template_name("elasticsearch"), "siemrelay-elasticsearch");
        assert_eq!(
            template_name("elasticsearch/Archive.v2"),
            "siemrelay-elasticsearch-archive.v2"
        );
    }

    #[test]
    fn only_this_exporters_template_is_ours() {
        let body = template_body(
            "elasticsearch/a",
            "a-*",
            false,
            &TemplateSettings::default(),
        );
        assert_eq!(ownership(&body, "elasticsearch/a"), Ownership::Ours);
        assert!(matches!(
            ownership(&body, "elasticsearch/b"),
            Ownership::Foreign(why) if why.contains("elasticsearch/a")
        ));
        let old = json!({"index_patterns": ["x-*"], "_meta": {"managed_by": "siemrelay"}});
        assert!(matches!(
            ownership(&old, "elasticsearch"),
            Ownership::Foreign(_)
        ));
        let theirs = json!({"index_patterns": ["x-*"], "_meta": {"team": "soc"}});
        assert!(
            matches!(ownership(&theirs, "elasticsearch"), Ownership::Foreign(why) if why.contains("soc"))
        );
        assert!(matches!(
            ownership(&json!({"index_patterns": ["x-*"]}), "elasticsearch"),
            Ownership::Foreign(_)
        ));
    }

    #[test]
    fn settings_land_in_the_template() {
        let settings = TemplateSettings {
            number_of_shards: Some(3),
            number_of_replicas: Some(0),
            ilm_policy: Some("siemrelay-90d".into()),
            ism_policy: None,
            priority: 250,
        };
        let body = template_body("elasticsearch", "logs-siemrelay-default", true, &settings);
        assert_eq!(body["priority"], 250);
        assert_eq!(
            body["template"]["settings"],
            json!({"index": {"number_of_shards": 3, "number_of_replicas": 0, "lifecycle": {"name": "siemrelay-90d"}}})
        );
        assert_eq!(body["data_stream"], json!({}));
        let plain = template_body("elasticsearch", "a-*", false, &TemplateSettings::default());
        assert!(plain["template"].get("settings").is_none());
    }

    #[test]
    fn ism_templates_must_match_the_indices() {
        let policy =
            json!({"ism_template": [{"index_patterns": ["siemrelay-*"], "priority": 100}]});
        assert!(ism_template_covers(&policy, "siemrelay-events-*"));
        assert!(!ism_template_covers(&policy, "archive-*"));
        assert!(!ism_template_covers(&json!({}), "siemrelay-events-*"));
        let one = json!({"ism_template": {"index_patterns": ["archive-*"]}});
        assert!(ism_template_covers(&one, "archive-*"));
    }
}
