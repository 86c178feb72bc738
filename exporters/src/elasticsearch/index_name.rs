//! Index names: the `index` template with strftime fields filled from the event's UTC time, and
//! Elasticsearch's rules for names.

use chrono::format::{Item, StrftimeItems};
use siemrelay_core::Timestamp;
use std::fmt::Write;

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

/// A parsed index template such as `siemrelay-events-%Y.%m.%d`. Fields finer than an hour are
/// refused, so a name can be cached per hour of event time.
#[derive(Clone, Debug)]
pub struct IndexTemplate {
    text: String,
    items: Vec<Item<'static>>,
}

impl IndexTemplate {
    /// Parses and checks a template: valid strftime, at most hourly, and every name it can make
    /// is a valid index name.
    pub fn parse(text: &str) -> Result<IndexTemplate, String> {
        let items = StrftimeItems::new(text)
            .parse_to_owned()
            .map_err(|_| format!("{text:?} has an invalid %-field (use e.g. %Y.%m.%d)"))?;
        let template = IndexTemplate {
            text: text.to_string(),
            items,
        };
        // 2026-03-07T05:00:00Z and the last instant of that hour.
        let hour_start = Timestamp(1_772_859_600_000_000_000);
        let hour_end = Timestamp(hour_start.0 + NANOS_PER_HOUR - 1);
        let first = template.format(hour_start);
        if first != template.format(hour_end) {
            return Err(format!(
                "{text:?} changes within an hour: use date fields (%Y %m %d) or %H at most"
            ));
        }
        for sample in [
            hour_start,
            Timestamp(1_798_761_599_000_000_000),
            Timestamp(0),
        ] {
            let name = template.format(sample);
            check_index_name(&name).map_err(|e| format!("{text:?} makes {e}"))?;
        }
        Ok(template)
    }

    /// The name for an event at `time` (UTC).
    pub fn format(&self, time: Timestamp) -> String {
        let mut name = String::with_capacity(self.text.len() + 8);
        // Formatting a valid parsed template into a String cannot fail.
        let _ = write!(
            name,
            "{}",
            time.to_datetime().format_with_items(self.items.iter())
        );
        name
    }

    /// The fixed text before the first `%` field (`siemrelay-events-`).
    pub fn literal_prefix(&self) -> &str {
        self.text.split('%').next().unwrap_or("")
    }

    /// An index pattern matching every name of this template (`siemrelay-events-*`).
    pub fn pattern(&self) -> String {
        if self.text.contains('%') {
            format!("{}*", self.literal_prefix())
        } else {
            self.text.clone()
        }
    }
}

/// Names the index of each event, reusing the name while events stay in the same hour.
pub struct IndexNamer<'a> {
    template: &'a IndexTemplate,
    cached: Option<(i64, String)>,
}

impl<'a> IndexNamer<'a> {
    /// A namer for one batch.
    pub fn new(template: &'a IndexTemplate) -> IndexNamer<'a> {
        IndexNamer {
            template,
            cached: None,
        }
    }

    /// The index for an event at `time`.
    pub fn name(&mut self, time: Timestamp) -> &str {
        let hour = time.0.div_euclid(NANOS_PER_HOUR);
        if self.cached.as_ref().is_none_or(|(h, _)| *h != hour) {
            self.cached = Some((hour, self.template.format(time)));
        }
        self.cached.as_ref().map_or("", |(_, name)| name.as_str())
    }
}

/// Elasticsearch's rules for index and data stream names: lowercase, none of
/// `\ / * ? " < > | , # :` or space, not starting with `- _ +`, not `.`/`..`, at most 255 bytes.
pub fn check_index_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty index name".into());
    }
    if name.len() > 255 {
        return Err(format!("index name {name:?} longer than 255 bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("index name {name:?}, which is reserved"));
    }
    if name.starts_with(['-', '_', '+']) {
        return Err(format!(
            "index name {name:?}, which must not start with -, _ or +"
        ));
    }
    if name.chars().any(char::is_uppercase) {
        return Err(format!("index name {name:?}, which must be lowercase"));
    }
    if let Some(bad) = name.chars().find(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':' | ' '
        )
    }) {
        return Err(format!(
            "index name {name:?}, which must not contain {bad:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_indices_by_event_date() {
        let template = IndexTemplate::parse("siemrelay-events-%Y.%m.%d").unwrap();
        let t = Timestamp::parse_rfc3339("2024-06-10T23:59:59.999Z").unwrap();
        assert_eq!(template.format(t), "siemrelay-events-2024.06.10");
        assert_eq!(template.pattern(), "siemrelay-events-*");
        let mut namer = IndexNamer::new(&template);
        assert_eq!(namer.name(t), "siemrelay-events-2024.06.10");
        let next = Timestamp(t.0 + 1_000_000);
        assert_eq!(namer.name(next), "siemrelay-events-2024.06.11");
        assert_eq!(IndexTemplate::parse("fixed").unwrap().pattern(), "fixed");
        assert!(IndexTemplate::parse("events-%Y.%m.%d.%H").is_ok());
    }

    #[test]
    fn invalid_templates_and_names_are_explained() {
        for (template, expected) in [
            ("Events-%Y", "lowercase"),
            ("events %Y", "must not contain ' '"),
            ("_events-%Y", "must not start"),
            ("events-%Y-%M", "changes within an hour"),
            ("events-%b", "lowercase"),
            ("events-%Q", "invalid %-field"),
            ("events,%Y", "must not contain ','"),
        ] {
            let err = IndexTemplate::parse(template).unwrap_err();
            assert!(err.contains(expected), "{template}: {err}");
        }
        assert!(check_index_name("logs-siemrelay-default").is_ok());
        assert!(check_index_name(&"a".repeat(256)).is_err());
    }
}
