//! LEEF 2.0 (IBM QRadar's Log Event Extended Format):
//! `LEEF:2.0|Vendor|Product|Version|EventID|Delim|key=value<Delim>key=value…`.
//!
//! IBM's guide (*Log Event Extended Format (LEEF) Version 2*) defines no escaping at all, so
//! characters that would break the structure are replaced, never escaped:
//! - header values (vendor, product, version, EventID): `|` and `\` → `_` (a `\|` would be read
//!   as an escaped pipe by parsers that assume CEF-style escaping), control characters → space;
//! - keys: single words `A-Z a-z 0-9 _`, unique per event, never a predefined key with a value
//!   of the wrong type (rules in [`super::keys`]);
//! - `src`/`dst` only for IP addresses; a host name goes to `srcHostName`/`dstHostName`;
//! - values: the delimiter and tab → space, CR → `\r`, LF → `\n` (two characters each), other
//!   control characters → space; `=` and `\` are kept (a value runs from the first `=` of its
//!   pair to the next delimiter).

use super::fields::{
    FieldMapping, first_value, flatten, severity_1_10, value_text, write_datetime_millis,
};
use super::keys::{CustomKeys, LEEF_PREDEFINED, is_ip};
use serde::Deserialize;
use siemrelay_core::{ConfigIssue, Event, Value};
use std::io::Write as _;

/// The `devTimeFormat` written with every event (Java `SimpleDateFormat`).
pub const DEV_TIME_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSSZ";

/// Keys the encoder writes itself; attributes with these names are written as `attributes_<key>`.
const RESERVED: &[&str] = &[
    "devTime",
    "devTimeFormat",
    "sev",
    "cat",
    "usrName",
    "src",
    "dst",
    "srcHostName",
    "dstHostName",
    "event_id",
    "source",
    "msg",
];

/// `leef:` settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeefOptions {
    /// Header Vendor (default `siemrelay`). With Product it picks the QRadar DSM.
    pub vendor: String,
    /// Header Product (default `siemrelay`).
    pub product: String,
    /// Header Version (default the siemrelay version).
    pub version: String,
    /// Attribute delimiter: one ASCII character, or hex `x09` / `0x09` (default tab, written
    /// `x09` in the header). Not alphanumeric, `=`, `|`, `\`, CR or LF.
    pub delimiter: String,
}

impl Default for LeefOptions {
    fn default() -> Self {
        LeefOptions {
            vendor: "siemrelay".into(),
            product: "siemrelay".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            delimiter: "x09".into(),
        }
    }
}

/// Parses a delimiter setting into its byte.
pub fn parse_delimiter(text: &str) -> Result<u8, String> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("x"))
        .filter(|h| !h.is_empty() && h.len() <= 2);
    let byte = match hex {
        Some(hex) => u8::from_str_radix(hex, 16)
            .map_err(|_| format!("{text:?} is not a hex character code such as x09"))?,
        None => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii() => c as u8,
                _ => {
                    return Err(format!(
                        "{text:?} must be one ASCII character (e.g. ^) or a hex code (e.g. x09)"
                    ));
                }
            }
        }
    };
    if byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'=' | b'|' | b'\\' | b'\r' | b'\n' | b'.' | b'_' | b'-' | 0
        )
        || byte > 0x7e
    {
        return Err(format!(
            "{text:?} cannot delimit LEEF attributes (it may appear in keys or break the line)"
        ));
    }
    Ok(byte)
}

impl LeefOptions {
    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if let Err(message) = parse_delimiter(&self.delimiter) {
            issues.push(ConfigIssue::new("leef.delimiter", message));
        }
        for (key, value) in [
            ("leef.vendor", &self.vendor),
            ("leef.product", &self.product),
            ("leef.version", &self.version),
        ] {
            if value.trim().is_empty() {
                issues.push(ConfigIssue::new(key, "must not be empty"));
            }
        }
        issues
    }
}

/// Writes a LEEF header value: `|` and `\` → `_`, control characters → space (LEEF defines no
/// header escaping).
pub fn write_header_value(value: &str, out: &mut Vec<u8>) {
    for &byte in value.as_bytes() {
        match byte {
            b'|' | b'\\' => out.push(b'_'),
            b if b < 0x20 || b == 0x7f => out.push(b' '),
            other => out.push(other),
        }
    }
}

/// Encodes events as LEEF 2.0 (without a syslog header).
#[derive(Clone, Debug)]
pub struct LeefEncoder {
    /// `LEEF:2.0|Vendor|Product|Version|`.
    prefix: Vec<u8>,
    delimiter: u8,
    /// The delimiter as written in the header (`x09` or the character).
    delimiter_field: String,
    fields: FieldMapping,
}

impl LeefEncoder {
    /// An encoder for validated options.
    pub fn new(options: &LeefOptions, fields: FieldMapping) -> Result<LeefEncoder, String> {
        let delimiter = parse_delimiter(&options.delimiter)?;
        let mut prefix = b"LEEF:2.0|".to_vec();
        for value in [&options.vendor, &options.product, &options.version] {
            write_header_value(value, &mut prefix);
            prefix.push(b'|');
        }
        let delimiter_field = if delimiter.is_ascii_graphic() {
            (delimiter as char).to_string()
        } else {
            format!("x{delimiter:02X}")
        };
        Ok(LeefEncoder {
            prefix,
            delimiter,
            delimiter_field,
            fields,
        })
    }

    /// The delimiter byte.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    fn write_value(&self, value: &str, out: &mut Vec<u8>) {
        for &byte in value.as_bytes() {
            match byte {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b if b == self.delimiter || b < 0x20 || b == 0x7f => out.push(b' '),
                other => out.push(other),
            }
        }
    }

    /// Writes `<delim>key=value`; `key` is a valid key already.
    fn pair(&self, key: &str, value: &str, out: &mut Vec<u8>) {
        out.push(self.delimiter);
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        self.write_value(value, out);
    }

    fn leaf_pair(&self, key: &str, value: &Value, scratch: &mut String, out: &mut Vec<u8>) {
        if let Some(text) = value_text(value, scratch) {
            self.pair(key, text, out);
        }
    }

    /// Writes an attribute (or resource) leaf under its custom key.
    fn custom_pair(&self, keys: &mut CustomKeys, path: &str, value: &Value, out: &mut Vec<u8>) {
        let mut scratch = String::new();
        if let Some(text) = value_text(value, &mut scratch) {
            let key = keys.name(path, text);
            self.pair(&key, text, out);
        }
    }

    /// Appends the LEEF form of `event` to `out`: header, then `devTime`, `devTimeFormat`, `sev`,
    /// `cat`, `usrName`, `src`/`dst` (IP addresses) or `srcHostName`/`dstHostName` (anything
    /// else), `event_id`, `source`, `msg` (the summary), the attributes flattened into custom
    /// keys (`tags_env=prod`, see [`super::keys`]) and the resource as `resource_<name>`.
    pub fn encode(&self, event: &Event, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        write_header_value(&event.event_type, out);
        out.push(b'|');
        out.extend_from_slice(self.delimiter_field.as_bytes());
        out.push(b'|');
        // devTime first, without a leading delimiter.
        out.extend_from_slice(b"devTime=");
        write_datetime_millis(event.timestamp.0, out);
        out.extend_from_slice(b"+0000");
        self.pair("devTimeFormat", DEV_TIME_FORMAT, out);
        out.push(self.delimiter);
        let _ = write!(out, "sev={}", severity_1_10(event.severity.number));
        let mut scratch = String::new();
        let attributes = &event.attributes;
        match first_value(attributes, &self.fields.category) {
            Some(value) => self.leaf_pair("cat", value, &mut scratch, out),
            None => {
                if let Some(source) = &event.source {
                    self.pair("cat", source, out);
                }
            }
        }
        if let Some(value) = first_value(attributes, &self.fields.user) {
            self.leaf_pair("usrName", value, &mut scratch, out);
        }
        for (ip_key, host_key, paths) in [
            ("src", "srcHostName", &self.fields.src),
            ("dst", "dstHostName", &self.fields.dst),
        ] {
            if let Some(value) = first_value(attributes, paths) {
                let key = if is_ip(value) { ip_key } else { host_key };
                self.leaf_pair(key, value, &mut scratch, out);
            }
        }
        let mut id = uuid::Uuid::encode_buffer();
        self.pair(
            "event_id",
            event.event_id.hyphenated().encode_lower(&mut id),
            out,
        );
        if let Some(source) = &event.source {
            self.pair("source", source, out);
        }
        if let Some(summary) = &event.summary {
            self.pair("msg", summary, out);
        }
        let mut keys = CustomKeys::new(RESERVED, LEEF_PREDEFINED);
        let mut key = String::new();
        flatten(attributes, &mut key, &mut |path, value| {
            self.custom_pair(&mut keys, path, value, out);
        });
        if !event.resource.is_empty() {
            let mut key = String::from("resource");
            flatten(&event.resource, &mut key, &mut |path, value| {
                self.custom_pair(&mut keys, path, value, out);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemrelay_core::{Severity, Timestamp};
    use siemrelay_e2e::fake::syslog_parse::parse_leef;
    use std::collections::HashMap;

    fn encoder(delimiter: &str) -> LeefEncoder {
        let options = LeefOptions {
            vendor: "Ac|me\\".into(),
            delimiter: delimiter.into(),
            ..LeefOptions::default()
        };
        LeefEncoder::new(&options, FieldMapping::default()).unwrap()
    }

    /// What the encoder promises for a value: the delimiter and control characters replaced.
    fn expected_value(value: &str, delimiter: char) -> String {
        value
            .chars()
            .map(|c| match c {
                '\n' => "\\n".to_string(),
                '\r' => "\\r".to_string(),
                c if c == delimiter || (c as u32) < 0x20 || c == '\u{7f}' => " ".to_string(),
                c => c.to_string(),
            })
            .collect()
    }

    fn nasty_values() -> Vec<String> {
        vec![
            "a|b".into(),
            "k=v=w".into(),
            "back\\slash\\".into(),
            "caret^here".into(),
            "tab\there".into(),
            "line1\nline2\r\nline3".into(),
            "ünïcödé ✓ 日本".into(),
            String::new(),
            "x".repeat(20_000),
            "\\|=^\t\n".into(),
            "nul\u{0}bell\u{7}".into(),
        ]
    }

    fn nasty_event() -> Event {
        let mut event = Event::new("lock|out\\ \nx");
        event.timestamp = Timestamp(1_718_000_000_123_000_000);
        event.severity = Severity::from_name("critical").unwrap();
        event.source = Some("toktra".into());
        event.summary = Some("summary with = and ^ and |".into());
        for (i, value) in nasty_values().into_iter().enumerate() {
            event.attributes.insert(format!("v{i}"), value.into());
        }
        event.attributes.insert("user".into(), "alice^admin".into());
        event.attributes.insert("src".into(), "10.0.0.5".into());
        event.attributes.insert("bad key=|".into(), "k".into());
        event.attributes.insert(
            "tags".into(),
            serde_json::json!({"env": "prod", "n": 3, "list": ["a", "b"]}),
        );
        event
    }

    fn check_round_trip(delimiter_setting: &str, delimiter: char) {
        let event = nasty_event();
        let mut out = Vec::new();
        encoder(delimiter_setting).encode(&event, &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        let parsed = parse_leef(&line).unwrap();
        assert_eq!(parsed.version, "2.0");
        assert_eq!(parsed.vendor, "Ac_me_");
        assert_eq!(parsed.product, "siemrelay");
        assert_eq!(parsed.event_id, "lock_out_  x");
        assert_eq!(parsed.delimiter, delimiter);
        let attrs: HashMap<&str, &str> = parsed
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(parsed.attributes.len(), attrs.len(), "keys are unique");
        for (i, value) in nasty_values().iter().enumerate() {
            assert_eq!(
                attrs[format!("v{i}").as_str()],
                expected_value(value, delimiter),
                "v{i}"
            );
        }
        assert_eq!(attrs["devTime"], "2024-06-10T06:13:20.123+0000");
        assert_eq!(attrs["devTimeFormat"], DEV_TIME_FORMAT);
        assert_eq!(attrs["sev"], "10");
        assert_eq!(attrs["cat"], "toktra");
        assert_eq!(attrs["usrName"], expected_value("alice^admin", delimiter));
        assert_eq!(attrs["src"], "10.0.0.5");
        assert_eq!(attrs["attributes_src"], "10.0.0.5");
        assert_eq!(attrs["event_id"], event.event_id.to_string());
        assert_eq!(
            attrs["msg"],
            expected_value("summary with = and ^ and |", delimiter)
        );
        assert_eq!(attrs["bad_key__"], "k");
        assert_eq!(attrs["tags_env"], "prod");
        assert_eq!(attrs["tags_n"], "3");
        assert_eq!(attrs["tags_list"], r#"["a","b"]"#);
    }

    #[test]
    fn nasty_values_parse_back_with_tab_delimiter() {
        check_round_trip("x09", '\t');
    }

    #[test]
    fn nasty_values_parse_back_with_caret_delimiter() {
        check_round_trip("^", '^');
    }

    #[test]
    fn delimiters_are_checked() {
        assert_eq!(parse_delimiter("^").unwrap(), b'^');
        assert_eq!(parse_delimiter("0x09").unwrap(), b'\t');
        assert!(parse_delimiter("x7C").unwrap_err().contains("cannot"));
        assert!(parse_delimiter("=").is_err());
        assert!(parse_delimiter("ab").is_err());
        assert!(parse_delimiter("a").is_err());
        let issues = LeefOptions {
            delimiter: "|".into(),
            vendor: " ".into(),
            ..LeefOptions::default()
        }
        .validate();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["leef.delimiter", "leef.vendor"]);
    }

    #[test]
    fn simple_event_matches_the_documented_shape() {
        let mut event = Event::new("MalwareBlocked");
        event.timestamp = Timestamp(1_718_000_000_123_000_000);
        event.severity = Severity::from_name("high").unwrap();
        event.attributes.insert("category".into(), "Malware".into());
        let encoder = LeefEncoder::new(
            &LeefOptions {
                vendor: "Acme".into(),
                product: "EDR".into(),
                version: "3.1".into(),
                delimiter: "^".into(),
            },
            FieldMapping::default(),
        )
        .unwrap();
        let mut out = Vec::new();
        encoder.encode(&event, &mut out);
        let expected = format!(
            "LEEF:2.0|Acme|EDR|3.1|MalwareBlocked|^|devTime=2024-06-10T06:13:20.123+0000^devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ^sev=8^cat=Malware^event_id={}^category=Malware",
            event.event_id
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
