//! One Datadog log → one event: the reserved attributes go to their event fields, every other
//! attribute goes through the shared ingest (so `mapping`, `strict` and the duplicate rules are
//! the webhook's), and nothing is dropped (the table is in `docs/receivers/datadog.md`).
//!
//! | log attribute | event field |
//! |---|---|
//! | `message` | `summary` |
//! | `ddsource` (or `?ddsource=`) | `source` |
//! | `service` (or `?service=`) | `resource."service.name"` |
//! | `hostname` (or `?hostname=` / `?host=`) | `resource."host.name"` |
//! | `status` | `severity` (Datadog's status words and syslog numbers) |
//! | `timestamp` | `timestamp` (epoch milliseconds or RFC 3339) |
//! | `ddtags` (and `?ddtags=`) | `attributes.ddtags`, the request's tags appended after a `,` |
//!
//! A reserved attribute whose event field the log also sets under the event field's own name
//! (`summary` next to `message`), or that a `mapping` entry reads, stays an attribute under its
//! own name; so does one of the wrong type, with a `mapping_error` note (strict mode refuses it).

use serde_json::Value;
use siemrelay_core::Event;
use siemrelay_core::Timestamp;
use siemrelay_core::event::Map;
use siemrelay_core::ingest::{
    IngestOptions, MAPPING_ERROR_KEY, Members, event_from_object, keep_duplicate,
};
use siemrelay_core::severity::Severity;
use std::borrow::Cow;

/// Resource key of the log's `hostname` (OpenTelemetry's name, which Datadog maps to hostname).
pub const HOST_NAME: &str = "host.name";
/// Resource key of the log's `service` (OpenTelemetry's name, which Datadog maps to service).
pub const SERVICE_NAME: &str = "service.name";

/// Attributes the query string sets for every log of a request (Datadog's
/// `?ddtags=…&ddsource=…&service=…&hostname=…`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestDefaults {
    /// `ddtags`: appended to each log's own tags.
    pub ddtags: Option<String>,
    /// `ddsource`: for logs without one.
    pub ddsource: Option<String>,
    /// `service`: for logs without one.
    pub service: Option<String>,
    /// `hostname` (or `host`): for logs without one.
    pub hostname: Option<String>,
}

impl RequestDefaults {
    /// The defaults in decoded query pairs (other parameters are ignored).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> RequestDefaults {
        let mut defaults = RequestDefaults::default();
        for (key, value) in pairs {
            if value.is_empty() {
                continue;
            }
            let slot = match key.as_str() {
                "ddtags" => &mut defaults.ddtags,
                "ddsource" => &mut defaults.ddsource,
                "service" => &mut defaults.service,
                "hostname" | "host" => &mut defaults.hostname,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        defaults
    }

    /// The defaults in a raw query string.
    pub fn from_query(query: &str) -> RequestDefaults {
        let uri = format!("/?{query}");
        let pairs = uri
            .parse::<axum::http::Uri>()
            .ok()
            .and_then(|uri| axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri).ok())
            .map(|query| query.0)
            .unwrap_or_default();
        RequestDefaults::from_pairs(pairs)
    }
}

/// A log turned into an event.
#[derive(Debug)]
pub struct Mapped {
    /// The event.
    pub event: Event,
    /// Fields that did not fit their event field (0 in strict mode).
    pub mapping_errors: usize,
}

/// Syslog severities 0–7, as Datadog's status remapper reads them.
const SYSLOG: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

/// The severity name of a Datadog `status`, and whether the sent value must be kept beside it
/// (when the severity's text is not the value as sent). Datadog's status remapper: syslog
/// numbers 0–7; words by their first letters (`emerg`/`f…` emergency, `a…` alert, `c…`
/// critical, `e…` error, `w…` warning, `n…` notice, `i…` info, `d…`/`trace`/`verbose` debug,
/// `ok`/`success` and anything else info).
fn status_severity(value: &Value) -> Option<(String, bool)> {
    let syslog = |n: i64| usize::try_from(n).ok().and_then(|n| SYSLOG.get(n).copied());
    match value {
        Value::Number(n) => n
            .as_i64()
            .and_then(syslog)
            .map(|name| (name.to_string(), true)),
        Value::String(text) => {
            if Severity::from_name(text).is_some() {
                return Some((text.clone(), false));
            }
            if let Some(name) = text.trim().parse::<i64>().ok().and_then(syslog) {
                return Some((name.to_string(), true));
            }
            let lower = text.trim().to_ascii_lowercase();
            let name = if lower.starts_with("emerg") || lower.starts_with('f') {
                "emergency"
            } else if lower.starts_with("trace")
                || lower.starts_with("verbose")
                || lower.starts_with('d')
            {
                "debug"
            } else {
                match lower.chars().next() {
                    Some('a') => "alert",
                    Some('c') => "critical",
                    Some('e') => "error",
                    Some('w') => "warning",
                    Some('n') => "notice",
                    _ => "info",
                }
            };
            Some((name.to_string(), true))
        }
        _ => None,
    }
}

/// Builds the event of one Datadog log (see the module doc). `Err` names the field that does
/// not fit, in strict mode.
pub fn log_to_event(
    log: Members<'_>,
    defaults: &RequestDefaults,
    options: &IngestOptions,
    observed: Timestamp,
) -> Result<Mapped, String> {
    let roots = options.mapping.source_roots();
    let has = |key: &str| log.0.iter().any(|(k, _)| k == key);
    let free = |target: &str, reserved: &str| !has(target) && !roots.contains(&reserved);
    let (summary_free, source_free, severity_free) = (
        free("summary", "message"),
        free("source", "ddsource"),
        free("severity", "status"),
    );
    let (host_free, service_free) = (!roots.contains(&"hostname"), !roots.contains(&"service"));
    let has_ddsource = has("ddsource") || has("source");
    let mut members: Vec<(Cow<'_, str>, Value)> = Vec::with_capacity(log.0.len() + 2);
    let mut misfits: Vec<String> = Vec::new();
    let mut kept_after: Vec<(String, Value)> = Vec::new();
    let (mut hostname, mut service, mut ddtags_seen) = (None, None, false);
    for (key, value) in log.0 {
        match (key.as_ref(), value) {
            ("message", Value::String(text)) if summary_free => {
                members.push((Cow::Borrowed("summary"), Value::String(text)));
            }
            ("ddsource", Value::String(text)) if source_free => {
                members.push((Cow::Borrowed("source"), Value::String(text)));
            }
            ("hostname", Value::String(text)) if host_free && hostname.is_none() => {
                hostname = Some(text);
            }
            ("service", Value::String(text)) if service_free && service.is_none() => {
                service = Some(text);
            }
            ("status", value) if severity_free => match status_severity(&value) {
                Some((name, keep)) => {
                    members.push((Cow::Borrowed("severity"), Value::String(name)));
                    if keep {
                        kept_after.push(("status".into(), value));
                    }
                }
                None => {
                    misfits.push("status must be a string or a syslog number".into());
                    members.push((key, value));
                }
            },
            ("ddtags", Value::String(text)) if !ddtags_seen => {
                ddtags_seen = true;
                let joined = match &defaults.ddtags {
                    Some(extra) if text.is_empty() => extra.clone(),
                    Some(extra) => format!("{text},{extra}"),
                    None => text,
                };
                members.push((key, Value::String(joined)));
            }
            (name @ ("message" | "ddsource" | "hostname" | "service"), value)
                if !value.is_string() =>
            {
                misfits.push(format!("{name} must be a string"));
                members.push((key, value));
            }
            (_, value) => members.push((key, value)),
        }
    }
    if let Some(extra) = &defaults.ddtags
        && !ddtags_seen
    {
        members.push((Cow::Borrowed("ddtags"), Value::String(extra.clone())));
    }
    if let Some(source) = &defaults.ddsource
        && !has_ddsource
        && !roots.contains(&"ddsource")
    {
        members.push((Cow::Borrowed("source"), Value::String(source.clone())));
    }
    if options.strict
        && let Some(first) = misfits.first()
    {
        return Err(first.clone());
    }
    let ingested = event_from_object(Members(members), options, observed)
        .map_err(|error| error.to_string())?;
    let mut event = ingested.event;
    let mut mapping_errors = ingested.mapping_errors + misfits.len();
    let hostname = hostname.or_else(|| defaults.hostname.clone());
    let service = service.or_else(|| defaults.service.clone());
    if hostname.is_some() || service.is_some() || !kept_after.is_empty() || !misfits.is_empty() {
        let fields = &mut *event;
        for (resource_key, log_key, value) in [
            (HOST_NAME, "hostname", hostname),
            (SERVICE_NAME, "service", service),
        ] {
            let Some(value) = value else { continue };
            if fields.resource.contains_key(resource_key) {
                // The log's own resource says otherwise: keep this one as an attribute.
                keep(&mut fields.attributes, log_key, Value::String(value));
            } else {
                fields
                    .resource
                    .insert(resource_key.to_string(), Value::String(value));
            }
        }
        for (key, value) in kept_after {
            keep(&mut fields.attributes, &key, value);
        }
        if !misfits.is_empty() {
            note(&mut fields.attributes, &misfits);
        }
    }
    if options.strict && mapping_errors > 0 {
        mapping_errors = 0;
    }
    Ok(Mapped {
        event,
        mapping_errors,
    })
}

/// Puts `value` under `key`, or under `_duplicate.<key>` when the key is taken.
fn keep(attributes: &mut Map, key: &str, value: Value) {
    if attributes.contains_key(key) {
        keep_duplicate(attributes, key.to_string(), value);
    } else {
        attributes.insert(key.to_string(), value);
    }
}

/// Adds the reasons to the event's `mapping_error` note (after the shared ingest's own).
fn note(attributes: &mut Map, reasons: &[String]) {
    let mut text = match attributes.get(MAPPING_ERROR_KEY) {
        Some(Value::String(existing)) => format!("{existing}; "),
        _ => String::new(),
    };
    text.push_str(&reasons.join("; "));
    attributes.insert(MAPPING_ERROR_KEY.to_string(), Value::String(text));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use siemrelay_core::ingest::FieldMapping;

    fn map(log: Value, defaults: &RequestDefaults, options: &IngestOptions) -> Mapped {
        let Value::Object(object) = log else {
            panic!("an object")
        };
        log_to_event(Members::from(object), defaults, options, Timestamp(7)).unwrap()
    }

    fn options() -> IngestOptions {
        IngestOptions::for_receiver("datadog", FieldMapping::default(), false)
    }

    #[test]
    fn reserved_attributes_go_to_their_fields_and_the_rest_is_kept() {
        let mapped = map(
            json!({"message": "malware blocked", "ddsource": "acme-edr", "ddtags": "env:prod,tenant:t1",
                   "hostname": "sensor-1", "service": "edr", "status": "error",
                   "timestamp": 1718000000123_i64, "rule": {"id": "R12"}, "event_type": "malware"}),
            &RequestDefaults::default(),
            &options(),
        );
        let e = mapped.event;
        assert_eq!(mapped.mapping_errors, 0);
        assert_eq!(e.summary.as_deref(), Some("malware blocked"));
        assert_eq!(e.source.as_deref(), Some("acme-edr"));
        assert_eq!(e.severity.text, "error");
        assert_eq!(e.severity.number, 17);
        assert_eq!(e.timestamp, Timestamp(1_718_000_000_123_000_000));
        assert_eq!(e.event_type, "malware");
        assert_eq!(e.resource[HOST_NAME], json!("sensor-1"));
        assert_eq!(e.resource[SERVICE_NAME], json!("edr"));
        assert_eq!(
            Value::Object(e.attributes.clone().into()),
            json!({"ddtags": "env:prod,tenant:t1", "rule": {"id": "R12"}})
        );
    }

    #[test]
    fn query_defaults_fill_in_and_tags_are_appended() {
        let defaults = RequestDefaults::from_query(
            "ddtags=env%3Aprod%2Cuser%3Ajoe&ddsource=nginx&service=web&host=h1&other=x",
        );
        assert_eq!(defaults.ddtags.as_deref(), Some("env:prod,user:joe"));
        let mapped = map(
            json!({"message": "m", "ddtags": "a:b", "hostname": "own"}),
            &defaults,
            &options(),
        );
        let e = mapped.event;
        assert_eq!(e.attributes["ddtags"], json!("a:b,env:prod,user:joe"));
        assert_eq!(e.source.as_deref(), Some("nginx"));
        assert_eq!(e.resource[HOST_NAME], json!("own"));
        assert_eq!(e.resource[SERVICE_NAME], json!("web"));
    }

    #[test]
    fn status_words_and_numbers_follow_datadogs_remapper_keeping_what_was_sent() {
        for (status, name, kept) in [
            (json!("warn"), "warn", false),
            (json!("notice"), "notice", false),
            (json!("OK"), "info", true),
            (json!("Fatal"), "Fatal", false),
            (json!("Failure"), "emergency", true),
            (json!(3), "error", true),
            (json!("7"), "debug", true),
            (json!("verbose"), "debug", true),
        ] {
            let e = map(
                json!({"status": status.clone()}),
                &RequestDefaults::default(),
                &options(),
            )
            .event;
            assert_eq!(e.severity.text, name, "{status}");
            assert_eq!(
                e.attributes.get("status"),
                kept.then_some(&status),
                "{status}"
            );
        }
    }

    #[test]
    fn clashes_and_misfits_keep_the_value_under_its_own_name() {
        let mapped = map(
            json!({"message": {"nested": true}, "summary": "s", "ddsource": "d", "source": "own",
                   "status": [1], "resource": {"host.name": "r"}, "hostname": "h"}),
            &RequestDefaults::default(),
            &options(),
        );
        let e = mapped.event;
        assert_eq!(e.summary.as_deref(), Some("s"));
        assert_eq!(e.source.as_deref(), Some("own"));
        assert_eq!(e.attributes["message"], json!({"nested": true}));
        assert_eq!(e.attributes["ddsource"], json!("d"));
        assert_eq!(e.attributes["status"], json!([1]));
        assert_eq!(e.attributes["hostname"], json!("h"));
        assert_eq!(e.resource[HOST_NAME], json!("r"));
        assert_eq!(mapped.mapping_errors, 2);
        let note = e.attributes[MAPPING_ERROR_KEY].as_str().unwrap();
        assert!(
            note.contains("message must be a string") && note.contains("status"),
            "{note}"
        );

        let strict = IngestOptions::for_receiver("datadog", FieldMapping::default(), true);
        let Value::Object(object) = json!({"message": 5}) else {
            unreachable!()
        };
        let error = log_to_event(
            Members::from(object),
            &RequestDefaults::default(),
            &strict,
            Timestamp(7),
        )
        .unwrap_err();
        assert!(error.contains("message"), "{error}");
    }

    #[test]
    fn a_mapping_reads_the_attribute_it_names() {
        let mapping: FieldMapping =
            serde_json::from_value(json!({"summary": "message", "event_type": "evt.name"}))
                .unwrap();
        let options = IngestOptions::for_receiver("datadog", mapping, false);
        let e = map(
            json!({"message": "m", "evt": {"name": "login"}}),
            &RequestDefaults::default(),
            &options,
        )
        .event;
        assert_eq!(e.summary.as_deref(), Some("m"));
        assert_eq!(e.event_type, "login");
    }
}
