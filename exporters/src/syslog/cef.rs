//! ArcSight CEF: `CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension`.
//!
//! Escaping as the ArcSight *CEF Implementation Standard* defines it (reversible): header values
//! `\` → `\\`, `|` → `\|`, CR/LF → space; extension values `\` → `\\`, `=` → `\=`, CR → `\r`,
//! LF → `\n`. Extension keys of attributes are single words (`A-Z a-z 0-9 _`), unique per event and
//! never a typed dictionary key holding a value of another type (rules in [`super::keys`]).

use super::fields::{FieldMapping, first_value, flatten, severity_0_10, value_text};
use super::keys::{CEF_PREDEFINED, CustomKeys, is_ip};
use serde::Deserialize;
use siemrelay_core::path::AttrPath;
use siemrelay_core::{ConfigIssue, Event, Value};
use std::io::Write as _;

/// Keys the encoder writes itself; attributes with these names are written as `attributes_<key>`.
const RESERVED: &[&str] = &[
    "rt",
    "externalId",
    "cat",
    "suser",
    "src",
    "shost",
    "dst",
    "dhost",
    "msg",
    "source",
    "cs1",
    "cs2",
    "cs3",
    "cs4",
    "cs5",
    "cs6",
    "cs1Label",
    "cs2Label",
    "cs3Label",
    "cs4Label",
    "cs5Label",
    "cs6Label",
];

/// One `cef.custom_strings` entry: an attribute sent as `csN` with `csNLabel`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomString {
    /// The label (`csNLabel`).
    pub label: String,
    /// The attribute path whose value is sent.
    pub attribute: AttrPath,
}

/// `cef:` settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CefOptions {
    /// Header Device Vendor (default `siemrelay`).
    pub vendor: String,
    /// Header Device Product (default `siemrelay`).
    pub product: String,
    /// Header Device Version (default the siemrelay version).
    pub version: String,
    /// Up to six attributes sent as `cs1`…`cs6` with their labels (default none).
    pub custom_strings: Vec<CustomString>,
    /// Also send every attribute as a flattened custom key (`tags.env=prod`) (default true).
    pub flatten_attributes: bool,
}

impl Default for CefOptions {
    fn default() -> Self {
        CefOptions {
            vendor: "siemrelay".into(),
            product: "siemrelay".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            custom_strings: Vec::new(),
            flatten_attributes: true,
        }
    }
}

impl CefOptions {
    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.custom_strings.len() > 6 {
            issues.push(ConfigIssue::new(
                "cef.custom_strings",
                format!(
                    "CEF has six custom strings (cs1-cs6); {} are configured",
                    self.custom_strings.len()
                ),
            ));
        }
        for (i, custom) in self.custom_strings.iter().enumerate() {
            if custom.label.trim().is_empty() {
                issues.push(ConfigIssue::new(
                    format!("cef.custom_strings.{i}.label"),
                    "must not be empty",
                ));
            }
        }
        for (key, value) in [
            ("cef.vendor", &self.vendor),
            ("cef.product", &self.product),
            ("cef.version", &self.version),
        ] {
            if value.trim().is_empty() {
                issues.push(ConfigIssue::new(key, "must not be empty"));
            }
        }
        issues
    }
}

/// Writes a CEF header value: `\` → `\\`, `|` → `\|`, CR/LF → space.
pub fn write_header_value(value: &str, out: &mut Vec<u8>) {
    for &byte in value.as_bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'|' => out.extend_from_slice(b"\\|"),
            b'\r' | b'\n' => out.push(b' '),
            other => out.push(other),
        }
    }
}

/// Writes an extension value: `\` → `\\`, `=` → `\=`, CR → `\r`, LF → `\n`.
pub fn write_extension_value(value: &str, out: &mut Vec<u8>) {
    for &byte in value.as_bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'=' => out.extend_from_slice(b"\\="),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
}

/// Encodes events as CEF (without a syslog header).
#[derive(Clone, Debug)]
pub struct CefEncoder {
    /// `CEF:0|Vendor|Product|Version|`.
    prefix: Vec<u8>,
    custom_strings: Vec<CustomString>,
    flatten_attributes: bool,
    fields: FieldMapping,
}

fn pair(key: &str, value: &str, out: &mut Vec<u8>) {
    // `rt` always comes first, so every other pair follows a space.
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    write_extension_value(value, out);
}

fn leaf_pair(key: &str, value: &Value, out: &mut Vec<u8>) {
    let mut scratch = String::new();
    if let Some(text) = value_text(value, &mut scratch) {
        pair(key, text, out);
    }
}

/// Writes an attribute (or resource) leaf under its custom key.
fn custom_pair(keys: &mut CustomKeys, path: &str, value: &Value, out: &mut Vec<u8>) {
    let mut scratch = String::new();
    if let Some(text) = value_text(value, &mut scratch) {
        let key = keys.name(path, text);
        pair(&key, text, out);
    }
}

impl CefEncoder {
    /// An encoder for validated options.
    pub fn new(options: &CefOptions, fields: FieldMapping) -> CefEncoder {
        let mut prefix = b"CEF:0|".to_vec();
        for value in [&options.vendor, &options.product, &options.version] {
            write_header_value(value, &mut prefix);
            prefix.push(b'|');
        }
        CefEncoder {
            prefix,
            custom_strings: options.custom_strings.iter().take(6).cloned().collect(),
            flatten_attributes: options.flatten_attributes,
            fields,
        }
    }

    /// Appends the CEF form of `event`: SignatureID = event type, Name = summary (or the event
    /// type), Severity 0–10; extension `rt` (epoch ms), `externalId` (event id), `cat`, `suser`,
    /// `src`/`shost`, `dst`/`dhost` (IP or name), `msg` (summary), `source`, `cs1`…`cs6` with
    /// labels, then (with `flatten_attributes`) the attributes as custom keys (`tags_env=prod`, see
    /// [`super::keys`]) and the resource as `resource_<name>`.
    pub fn encode(&self, event: &Event, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        write_header_value(&event.event_type, out);
        out.push(b'|');
        write_header_value(event.summary.as_deref().unwrap_or(&event.event_type), out);
        let _ = write!(out, "|{}|", severity_0_10(event.severity.number));
        let _ = write!(out, "rt={}", event.timestamp.as_epoch_millis());
        let mut id = uuid::Uuid::encode_buffer();
        pair(
            "externalId",
            event.event_id.hyphenated().encode_lower(&mut id),
            out,
        );
        let attributes = &event.attributes;
        match first_value(attributes, &self.fields.category) {
            Some(value) => leaf_pair("cat", value, out),
            None => {
                if let Some(source) = &event.source {
                    pair("cat", source, out);
                }
            }
        }
        if let Some(value) = first_value(attributes, &self.fields.user) {
            leaf_pair("suser", value, out);
        }
        for (ip_key, host_key, paths) in [
            ("src", "shost", &self.fields.src),
            ("dst", "dhost", &self.fields.dst),
        ] {
            if let Some(value) = first_value(attributes, paths) {
                leaf_pair(if is_ip(value) { ip_key } else { host_key }, value, out);
            }
        }
        if let Some(summary) = &event.summary {
            pair("msg", summary, out);
        }
        if let Some(source) = &event.source {
            pair("source", source, out);
        }
        for (index, custom) in self.custom_strings.iter().enumerate() {
            if let Some(value) = custom.attribute.get(attributes) {
                let mut scratch = String::new();
                if let Some(text) = value_text(value, &mut scratch) {
                    let n = index + 1;
                    pair(&format!("cs{n}"), text, out);
                    pair(&format!("cs{n}Label"), &custom.label, out);
                }
            }
        }
        if self.flatten_attributes {
            let mut keys = CustomKeys::new(RESERVED, CEF_PREDEFINED);
            let mut key = String::new();
            flatten(attributes, &mut key, &mut |path, value| {
                custom_pair(&mut keys, path, value, out);
            });
            if !event.resource.is_empty() {
                let mut key = String::from("resource");
                flatten(&event.resource, &mut key, &mut |path, value| {
                    custom_pair(&mut keys, path, value, out);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemrelay_core::{Severity, Timestamp};
    use siemrelay_e2e::fake::syslog_parse::parse_cef;
    use std::collections::HashMap;

    fn nasty_values() -> Vec<String> {
        vec![
            "a|b".into(),
            "k=v=w".into(),
            "back\\slash\\".into(),
            "trailing\\".into(),
            "\\=".into(),
            "tab\there".into(),
            "line1\nline2\r\nline3".into(),
            "ünïcödé ✓ 日本".into(),
            String::new(),
            "x".repeat(20_000),
            "spaces  inside and  key=looking text".into(),
        ]
    }

    #[test]
    fn nasty_values_parse_back_exactly() {
        let mut event = Event::new("sig|nature\\1");
        event.timestamp = Timestamp(1_718_000_000_123_000_000);
        event.severity = Severity::from_name("medium").unwrap();
        event.summary = Some("name | with \\ and\nnewline".into());
        event.source = Some("toktra".into());
        for (i, value) in nasty_values().into_iter().enumerate() {
            event.attributes.insert(format!("v{i}"), value.into());
        }
        event.attributes.insert("user_email".into(), "a=b@x".into());
        event
            .attributes
            .insert("client_ip".into(), "2001:db8::1".into());
        event.attributes.insert("dst".into(), "db.internal".into());
        event.attributes.insert("msg".into(), "clash".into());
        event
            .attributes
            .insert("tags".into(), serde_json::json!({"env": "prod"}));
        let options = CefOptions {
            vendor: "Ven|dor\\".into(),
            custom_strings: vec![CustomString {
                label: "Environment = tag".into(),
                attribute: AttrPath::parse("tags.env").unwrap(),
            }],
            ..CefOptions::default()
        };
        let encoder = CefEncoder::new(&options, FieldMapping::default());
        let mut out = Vec::new();
        encoder.encode(&event, &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(!line.contains('\n') && !line.contains('\r'));
        let parsed = parse_cef(&line).unwrap();
        assert_eq!(parsed.header[0], "Ven|dor\\");
        assert_eq!(parsed.header[1], "siemrelay");
        assert_eq!(parsed.header[3], "sig|nature\\1");
        assert_eq!(parsed.header[4], "name | with \\ and newline");
        assert_eq!(parsed.header[5], "5");
        let ext: HashMap<&str, &str> = parsed
            .extension
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(parsed.extension.len(), ext.len(), "keys are unique");
        for (i, value) in nasty_values().iter().enumerate() {
            assert_eq!(ext[format!("v{i}").as_str()], value, "v{i}");
        }
        assert_eq!(ext["rt"], "1718000000123");
        assert_eq!(ext["externalId"], event.event_id.to_string());
        assert_eq!(ext["cat"], "toktra");
        assert_eq!(ext["suser"], "a=b@x");
        assert_eq!(ext["src"], "2001:db8::1");
        assert_eq!(ext["dhost"], "db.internal");
        assert_eq!(ext["msg"], "name | with \\ and\nnewline");
        assert_eq!(ext["attributes_msg"], "clash");
        assert_eq!(ext["cs1"], "prod");
        assert_eq!(ext["cs1Label"], "Environment = tag");
        assert_eq!(ext["tags_env"], "prod");
    }

    #[test]
    fn custom_strings_are_limited_to_six() {
        let custom = CustomString {
            label: "l".into(),
            attribute: AttrPath::parse("a").unwrap(),
        };
        let options = CefOptions {
            custom_strings: vec![custom; 7],
            ..CefOptions::default()
        };
        assert_eq!(options.validate()[0].key, "cef.custom_strings");
    }
}
