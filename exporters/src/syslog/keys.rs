//! Custom keys of LEEF and CEF: every attribute becomes one key that is a single word
//! (`A-Z a-z 0-9 _`), unique within its event, and never a predefined key of the format holding
//! a value of the wrong type.
//!
//! The rules, in order, for an attribute path such as `tags.env`:
//! 1. every character outside `A-Z a-z 0-9 _` becomes `_` (`tags.env` → `tags_env`; an empty
//!    name becomes `_`);
//! 2. a name the encoder writes itself (`src`, `sev`, `msg`, …), or a predefined key whose type
//!    the value does not have (`srcPort` = `"https"`), is prefixed with `attributes_`;
//! 3. a name already used in the event gets `_2`, `_3`, … (the first free one). Keys are taken
//!    in the order they are written: the encoder's own keys, the attributes in name order, then
//!    the resource (`resource_<name>`), so the result is the same for the same event.

use siemrelay_core::Value;
use std::collections::HashSet;
use std::net::IpAddr;

/// The type of value a predefined key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// Any text.
    Text,
    /// An IPv4 or IPv6 address.
    Ip,
    /// A non-negative integer.
    Integer,
    /// A port number, 0–65535.
    Port,
    /// A MAC address, six hex pairs separated by `:`.
    Mac,
    /// `true` or `false`.
    Boolean,
    /// A time as epoch milliseconds.
    EpochMillis,
    /// A decimal number.
    Float,
}

/// IBM's predefined LEEF event attributes (IBM QRadar *Log Event Extended Format (LEEF)
/// Version 2* guide, "Predefined LEEF event attributes") with their value types.
pub const LEEF_PREDEFINED: &[(&str, KeyType)] = &[
    ("cat", KeyType::Text),
    ("devTime", KeyType::Text),
    ("devTimeFormat", KeyType::Text),
    ("proto", KeyType::Text),
    ("sev", KeyType::Integer),
    ("src", KeyType::Ip),
    ("dst", KeyType::Ip),
    ("srcPort", KeyType::Port),
    ("dstPort", KeyType::Port),
    ("srcPreNAT", KeyType::Ip),
    ("dstPreNAT", KeyType::Ip),
    ("srcPostNAT", KeyType::Ip),
    ("dstPostNAT", KeyType::Ip),
    ("usrName", KeyType::Text),
    ("srcMAC", KeyType::Mac),
    ("dstMAC", KeyType::Mac),
    ("srcPreNATPort", KeyType::Port),
    ("dstPreNATPort", KeyType::Port),
    ("srcPostNATPort", KeyType::Port),
    ("dstPostNATPort", KeyType::Port),
    ("identSrc", KeyType::Ip),
    ("identHostName", KeyType::Text),
    ("identNetBios", KeyType::Text),
    ("identGrpName", KeyType::Text),
    ("identMAC", KeyType::Mac),
    ("vSrc", KeyType::Ip),
    ("vSrcName", KeyType::Text),
    ("accountName", KeyType::Text),
    ("srcBytes", KeyType::Integer),
    ("dstBytes", KeyType::Integer),
    ("srcPackets", KeyType::Integer),
    ("dstPackets", KeyType::Integer),
    ("totalPackets", KeyType::Integer),
    ("role", KeyType::Text),
    ("realm", KeyType::Text),
    ("policy", KeyType::Text),
    ("resource", KeyType::Text),
    ("url", KeyType::Text),
    ("groupID", KeyType::Text),
    ("domain", KeyType::Text),
    ("isLoginEvent", KeyType::Boolean),
    ("isLogoutEvent", KeyType::Boolean),
    ("identSecondlp", KeyType::Ip),
    ("calLanguage", KeyType::Text),
    ("AttributeLimits", KeyType::Text),
    ("calCountryOrRegion", KeyType::Text),
];

/// The typed keys of the ArcSight CEF extension dictionary (*Implementing ArcSight Common Event
/// Format (CEF)*, "CEF Key Names For Event Producers"); the dictionary's text keys accept any
/// value and are not listed.
pub const CEF_PREDEFINED: &[(&str, KeyType)] = &[
    ("art", KeyType::EpochMillis),
    ("c6a1", KeyType::Ip),
    ("c6a2", KeyType::Ip),
    ("c6a3", KeyType::Ip),
    ("c6a4", KeyType::Ip),
    ("cfp1", KeyType::Float),
    ("cfp2", KeyType::Float),
    ("cfp3", KeyType::Float),
    ("cfp4", KeyType::Float),
    ("cn1", KeyType::Integer),
    ("cn2", KeyType::Integer),
    ("cn3", KeyType::Integer),
    ("cnt", KeyType::Integer),
    ("deviceCustomDate1", KeyType::EpochMillis),
    ("deviceCustomDate2", KeyType::EpochMillis),
    ("deviceDirection", KeyType::Integer),
    ("deviceTranslatedAddress", KeyType::Ip),
    ("destinationTranslatedAddress", KeyType::Ip),
    ("destinationTranslatedPort", KeyType::Port),
    ("dmac", KeyType::Mac),
    ("dpid", KeyType::Integer),
    ("dpt", KeyType::Port),
    ("dst", KeyType::Ip),
    ("dvc", KeyType::Ip),
    ("dvcmac", KeyType::Mac),
    ("dvcpid", KeyType::Integer),
    ("end", KeyType::EpochMillis),
    ("fileCreateTime", KeyType::EpochMillis),
    ("fileModificationTime", KeyType::EpochMillis),
    ("fsize", KeyType::Integer),
    ("in", KeyType::Integer),
    ("oldFileCreateTime", KeyType::EpochMillis),
    ("oldFileModificationTime", KeyType::EpochMillis),
    ("oldFileSize", KeyType::Integer),
    ("out", KeyType::Integer),
    ("rt", KeyType::EpochMillis),
    ("smac", KeyType::Mac),
    ("sourceTranslatedAddress", KeyType::Ip),
    ("sourceTranslatedPort", KeyType::Port),
    ("spid", KeyType::Integer),
    ("spt", KeyType::Port),
    ("src", KeyType::Ip),
    ("start", KeyType::EpochMillis),
    ("type", KeyType::Integer),
];

/// Whether `text` is a value of type `kind`.
pub fn fits(kind: KeyType, text: &str) -> bool {
    match kind {
        KeyType::Text => true,
        KeyType::Ip => text.parse::<IpAddr>().is_ok(),
        KeyType::Integer | KeyType::EpochMillis => {
            !text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit())
        }
        KeyType::Port => text.parse::<u16>().is_ok() && !text.starts_with('+'),
        KeyType::Mac => {
            let parts: Vec<&str> = text.split(':').collect();
            parts.len() == 6
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        }
        KeyType::Boolean => text == "true" || text == "false",
        KeyType::Float => text.parse::<f64>().is_ok_and(f64::is_finite),
    }
}

/// Whether `text` is an IP address (LEEF `src`/`dst`, CEF `src`/`dst`).
pub fn is_ip(value: &Value) -> bool {
    value.as_str().is_some_and(|text| fits(KeyType::Ip, text))
}

/// Appends `name` as a single word: `A-Z a-z 0-9 _` kept, every other character `_`.
pub fn push_word(name: &str, out: &mut String) {
    if name.is_empty() {
        out.push('_');
        return;
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

/// Names the custom keys of one event (rules in the module doc).
pub struct CustomKeys {
    /// Keys the encoder writes itself.
    own: &'static [&'static str],
    /// The format's predefined typed keys.
    predefined: &'static [(&'static str, KeyType)],
    used: HashSet<String>,
}

impl CustomKeys {
    /// A namer for one event of a format whose own keys are `own` and typed keys `predefined`.
    pub fn new(
        own: &'static [&'static str],
        predefined: &'static [(&'static str, KeyType)],
    ) -> CustomKeys {
        CustomKeys {
            own,
            predefined,
            used: HashSet::new(),
        }
    }

    /// The key for attribute path `path` (`.`-joined) holding `text`.
    pub fn name(&mut self, path: &str, text: &str) -> String {
        let mut word = String::with_capacity(path.len() + 12);
        push_word(path, &mut word);
        let clashes = self.own.contains(&word.as_str())
            || self
                .predefined
                .iter()
                .any(|(key, kind)| *key == word && !fits(*kind, text));
        if clashes {
            word.insert_str(0, "attributes_");
        }
        if self.used.contains(&word) {
            let base = word.len();
            for n in 2.. {
                word.truncate(base);
                word.push('_');
                word.push_str(&n.to_string());
                if !self.used.contains(&word) {
                    break;
                }
            }
        }
        self.used.insert(word.clone());
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_single_words_unique_and_typed() {
        let mut keys = CustomKeys::new(&["src", "msg"], LEEF_PREDEFINED);
        assert_eq!(keys.name("tags.env", "prod"), "tags_env");
        assert_eq!(keys.name("tags_env", "x"), "tags_env_2");
        assert_eq!(keys.name("tags-env", "x"), "tags_env_3");
        assert_eq!(keys.name("src", "10.0.0.1"), "attributes_src");
        assert_eq!(keys.name("srcPort", "https"), "attributes_srcPort");
        assert_eq!(keys.name("dstPort", "443"), "dstPort");
        assert_eq!(keys.name("policy", "anything"), "policy");
        assert_eq!(keys.name("ünï code", "x"), "_n__code");
        assert_eq!(keys.name("", "x"), "_");
        assert_eq!(keys.name("srcMAC", "00:1a:2B:3c:4d:5e"), "srcMAC");
        assert_eq!(keys.name("dstMAC", "nope"), "attributes_dstMAC");
    }

    #[test]
    fn types_follow_the_specs() {
        assert!(fits(KeyType::Ip, "2001:db8::1"));
        assert!(!fits(KeyType::Ip, "db.internal"));
        assert!(fits(KeyType::Port, "65535"));
        assert!(!fits(KeyType::Port, "65536"));
        assert!(!fits(KeyType::Integer, "-1"));
        assert!(fits(KeyType::Boolean, "false"));
        assert!(!fits(KeyType::Boolean, "yes"));
        assert!(!fits(KeyType::Float, "NaN"));
    }
}
