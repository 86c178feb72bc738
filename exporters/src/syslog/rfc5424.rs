//! RFC 5424 headers (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD `) and RFC 6587 framing.

use super::fields::write_datetime_millis;
use serde::{Deserialize, Deserializer};
use siemrelay_core::Event;
use std::io::Write as _;

/// A syslog facility (0–23), written in config by name (`local4`, `auth`, …) or number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facility(pub u8);

/// Facility names in code order (RFC 5424 §6.2.1).
const FACILITY_NAMES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

impl Facility {
    /// `local4` (20), the default.
    pub const LOCAL4: Facility = Facility(20);

    /// A facility from its name or number.
    pub fn parse(text: &str) -> Result<Facility, String> {
        let text = text.trim();
        if let Ok(number) = text.parse::<u8>() {
            return Facility::from_number(u64::from(number));
        }
        FACILITY_NAMES
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
            .map(|index| Facility(index as u8))
            .ok_or_else(|| {
                format!(
                    "unknown facility {text:?}; use a number 0-23 or one of {}",
                    FACILITY_NAMES.join(", ")
                )
            })
    }

    fn from_number(number: u64) -> Result<Facility, String> {
        u8::try_from(number)
            .ok()
            .filter(|n| *n <= 23)
            .map(Facility)
            .ok_or_else(|| format!("facility {number} is out of range 0-23"))
    }
}

impl Default for Facility {
    fn default() -> Self {
        Facility::LOCAL4
    }
}

impl<'de> Deserialize<'de> for Facility {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Name(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Facility::from_number(n),
            Raw::Name(name) => Facility::parse(&name),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// Syslog severity (0 emergency … 7 debug) from an OpenTelemetry severity number:
/// trace/debug → 7 debug, info/low → 6 informational, unspecified → 5 notice,
/// warn/medium → 4 warning, error/high → 3 error, fatal/critical → 2 critical.
pub fn syslog_severity(number: u8) -> u8 {
    match number {
        0 => 5,
        1..=8 => 7,
        9..=12 => 6,
        13..=16 => 4,
        17..=20 => 3,
        _ => 2,
    }
}

/// Checks a header field (HOSTNAME, APP-NAME): printable US-ASCII without spaces, at most `max`
/// characters (RFC 5424 §6.2).
pub fn check_header_field(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if let Some(bad) = value.chars().find(|c| !matches!(c, '!'..='~')) {
        return Err(format!(
            "{value:?} has {bad:?}; only printable ASCII without spaces is allowed"
        ));
    }
    Ok(())
}

/// Writes `value` as a header field: printable ASCII kept, anything else `_`, cut at `max`
/// bytes, `-` when empty.
fn write_field(value: &str, max: usize, out: &mut Vec<u8>) {
    if value.is_empty() {
        out.push(b'-');
        return;
    }
    for c in value.chars().take(max) {
        out.push(if matches!(c, '!'..='~') {
            c as u8
        } else {
            b'_'
        });
    }
}

/// The fixed parts of the RFC 5424 header and how each event fills the rest.
#[derive(Clone, Debug)]
pub struct Header {
    facility: Facility,
    /// HOSTNAME APP-NAME PROCID, already checked, with a space after each.
    fixed: Vec<u8>,
}

impl Header {
    /// A header with these fields (`procid` is usually the process id).
    pub fn new(facility: Facility, hostname: &str, app_name: &str, procid: &str) -> Header {
        let mut fixed = Vec::with_capacity(64);
        write_field(hostname, 255, &mut fixed);
        fixed.push(b' ');
        write_field(app_name, 48, &mut fixed);
        fixed.push(b' ');
        write_field(procid, 128, &mut fixed);
        fixed.push(b' ');
        Header { facility, fixed }
    }

    /// Writes `<PRI>1 2026-11-20T09:00:00.123Z HOST APP PROCID MSGID - ` for `event`: PRI from the
    /// facility and the event's severity, TIMESTAMP the event's time in UTC with milliseconds,
    /// MSGID the event type (printable ASCII, at most 32), no structured data.
    pub fn write(&self, event: &Event, out: &mut Vec<u8>) {
        let pri =
            u16::from(self.facility.0) * 8 + u16::from(syslog_severity(event.severity.number));
        let _ = write!(out, "<{pri}>1 ");
        write_datetime_millis(event.timestamp.0, out);
        out.extend_from_slice(b"Z ");
        out.extend_from_slice(&self.fixed);
        write_field(&event.event_type, 32, out);
        out.extend_from_slice(b" - ");
    }
}

/// How messages are delimited on a TCP or TLS stream (RFC 6587).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// Each message ends with `\n` (default; what QRadar and most receivers expect). The
    /// encoders never put a raw CR or LF inside a message.
    #[default]
    Lf,
    /// `<length> <message>` with the length in bytes, no terminator (RFC 6587 §3.4.1, RFC 5425).
    OctetCounting,
}

impl Framing {
    /// Appends `message` framed.
    pub fn frame(self, message: &[u8], out: &mut Vec<u8>) {
        match self {
            Framing::Lf => {
                out.extend(
                    message
                        .iter()
                        .map(|b| if matches!(b, b'\n' | b'\r') { b' ' } else { *b }),
                );
                out.push(b'\n');
            }
            Framing::OctetCounting => {
                let _ = write!(out, "{} ", message.len());
                out.extend_from_slice(message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemrelay_core::{Severity, Timestamp};

    #[test]
    fn header_has_pri_timestamp_and_sanitized_fields() {
        let header = Header::new(Facility::LOCAL4, "sensor-1", "siemrelay", "4711");
        let mut event = Event::new("policy violation/é");
        event.timestamp = Timestamp(1_718_000_000_123_000_000);
        event.severity = Severity::from_name("high").unwrap();
        let mut out = Vec::new();
        header.write(&event, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<163>1 2024-06-10T06:13:20.123Z sensor-1 siemrelay 4711 policy_violation/_ - "
        );
    }

    #[test]
    fn facilities_parse_by_name_and_number() {
        assert_eq!(Facility::parse("local0").unwrap(), Facility(16));
        assert_eq!(Facility::parse("AUTH").unwrap(), Facility(4));
        assert_eq!(Facility::parse("23").unwrap(), Facility(23));
        assert!(Facility::parse("24").unwrap_err().contains("out of range"));
        assert!(Facility::parse("local9").unwrap_err().contains("unknown"));
        let from_yaml: Facility = serde_json::from_str("17").unwrap();
        assert_eq!(from_yaml, Facility(17));
    }

    #[test]
    fn framing_lf_and_octet_counting() {
        let mut out = Vec::new();
        Framing::Lf.frame(b"a\nb", &mut out);
        Framing::OctetCounting.frame("é x".as_bytes(), &mut out);
        assert_eq!(out, "a b\n4 é x".as_bytes());
    }

    #[test]
    fn header_fields_are_checked() {
        assert!(check_header_field("siem-relay.example", 255).is_ok());
        assert!(check_header_field("has space", 255).is_err());
        assert!(check_header_field(&"x".repeat(49), 48).is_err());
    }
}
