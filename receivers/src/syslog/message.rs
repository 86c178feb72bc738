//! One syslog message → one event, through the shared ingest (so `mapping` and `strict` work as
//! for every receiver). The mapping table lives in `docs/receivers/syslog.md`.
//!
//! The header (RFC 5424 or RFC 3164, told apart per message) is read by `syslog_loose`, the
//! parser Vector uses; the body is then read as CEF ([`super::cef`]), LEEF ([`super::leef`]) or
//! kept as plain text. The message text after the header is kept exactly as received (trailing
//! spaces included); bytes that are not UTF-8 become U+FFFD.

use super::{cef, leef};
use chrono::{Datelike, SecondsFormat, Utc};
use serde_json::{Value, json};
use siemrelay_core::event::Map;
use siemrelay_core::ingest::{
    IngestError, IngestOptions, Ingested, event_from_object, keep_duplicate,
};
use siemrelay_core::time::Timestamp;
use std::net::IpAddr;
use syslog_loose::{IncompleteDate, Message, ProcId, Protocol, Variant};

/// The event type of a message with neither a CEF/LEEF event id nor an RFC 5424 MSGID.
pub const DEFAULT_EVENT_TYPE: &str = "syslog";
/// The attribute that holds a piece of CEF/LEEF text that is no `key=value` pair.
pub const UNKEYED: &str = "_unkeyed";

/// The year of an RFC 3164 timestamp (which has none): this year, or last year when the date
/// would be more than a month ahead of now (a December message read in January).
fn resolve_year((month, _day, _hour, _minute, _second): IncompleteDate) -> i32 {
    let now = Utc::now();
    if month > now.month() + 1 {
        now.year() - 1
    } else {
        now.year()
    }
}

/// Where the message text starts inside `text`: the parser trims, the message keeps its bytes.
fn message_text<'t>(text: &'t str, parsed: &Message<&'t str>) -> &'t str {
    let msg = parsed.msg;
    let start = (msg.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    let body = if msg.is_empty() || start > text.len() || !text.is_char_boundary(start) {
        msg
    } else {
        &text[start..]
    };
    let body = body.trim_end_matches(['\n', '\r', '\0']);
    body.strip_prefix('\u{feff}').unwrap_or(body)
}

fn header(parsed: &Message<&str>, peer: Option<IpAddr>) -> Map {
    let mut syslog = Map::new();
    let protocol = match parsed.protocol {
        Protocol::RFC5424(_) => "rfc5424",
        Protocol::RFC3164 => "rfc3164",
    };
    syslog.insert("protocol".into(), json!(protocol));
    if let Some(facility) = parsed.facility {
        syslog.insert("facility".into(), json!(facility as u8));
        syslog.insert("facility_name".into(), json!(facility.as_str()));
    }
    if let Some(severity) = parsed.severity {
        syslog.insert("severity".into(), json!(severity as u8));
        syslog.insert("severity_name".into(), json!(severity.as_str()));
    }
    for (key, value) in [
        ("hostname", parsed.hostname),
        ("app_name", parsed.appname),
        ("msgid", parsed.msgid),
    ] {
        if let Some(value) = value {
            syslog.insert(key.into(), json!(value));
        }
    }
    match &parsed.procid {
        Some(ProcId::PID(pid)) => {
            syslog.insert("procid".into(), json!(pid));
        }
        Some(ProcId::Name(name)) => {
            syslog.insert("procid".into(), json!(name));
        }
        None => {}
    }
    if !parsed.structured_data.is_empty() {
        let mut elements = Map::new();
        for element in &parsed.structured_data {
            let mut params = Map::new();
            for (name, value) in element.params() {
                insert(&mut params, (*name).to_string(), Value::String(value));
            }
            insert(&mut elements, element.id.to_string(), Value::Object(params));
        }
        syslog.insert("structured_data".into(), Value::Object(elements));
    }
    if let Some(peer) = peer {
        syslog.insert("peer".into(), json!(peer.to_string()));
    }
    syslog
}

/// Inserts `key`, or keeps a repeated one under `_duplicate.<key>` (the shared ingest's rule).
fn insert(object: &mut Map, key: String, value: Value) {
    if object.contains_key(&key) {
        keep_duplicate(object, key, value);
    } else {
        object.insert(key, value);
    }
}

fn pairs_into(attributes: &mut Map, pairs: Vec<(String, String)>) {
    for (key, value) in pairs {
        let key = if key.is_empty() {
            UNKEYED.to_string()
        } else {
            key
        };
        insert(attributes, key, Value::String(value));
    }
}

/// What a message's body says about the well-known fields.
#[derive(Default)]
struct Body {
    event_type: Option<String>,
    severity: Option<&'static str>,
    summary: Option<String>,
}

fn body(text: &str, attributes: &mut Map) -> Body {
    let trimmed = text.trim_start();
    if trimmed.starts_with("CEF:")
        && let Some(cef) = cef::parse(trimmed)
    {
        let severity = cef::severity_name(&cef.severity);
        attributes.insert(
            "cef".into(),
            json!({"version": cef.version, "vendor": cef.vendor, "product": cef.product,
                   "device_version": cef.device_version, "signature_id": cef.signature_id,
                   "name": cef.name, "severity": cef.severity}),
        );
        pairs_into(attributes, cef.extension);
        return Body {
            event_type: Some(cef.signature_id).filter(|s| !s.is_empty()),
            severity,
            summary: Some(cef.name).filter(|s| !s.is_empty()),
        };
    }
    if trimmed.starts_with("LEEF:")
        && let Some(leef) = leef::parse(trimmed)
    {
        let severity = leef.get("sev").and_then(leef::severity_name);
        attributes.insert(
            "leef".into(),
            json!({"version": leef.version, "vendor": leef.vendor, "product": leef.product,
                   "product_version": leef.product_version, "event_id": leef.event_id,
                   "delimiter": leef.delimiter.to_string()}),
        );
        let event_type = Some(leef.event_id).filter(|s| !s.is_empty());
        pairs_into(attributes, leef.attributes);
        return Body {
            event_type,
            severity,
            summary: None,
        };
    }
    Body {
        summary: Some(text.to_string()).filter(|s| !s.is_empty()),
        ..Body::default()
    }
}

/// `<PRI>TAG[PID]: MSG` or `<PRI>MSG` with no timestamp nor host, as small senders write it
/// (Python's `SysLogHandler`, many embedded devices), which the RFC parsers refuse.
fn minimal(text: &str) -> Option<Message<&str>> {
    let rest = text.strip_prefix('<')?;
    let (pri, rest) = rest.split_once('>')?;
    let pri: u8 = pri.parse().ok().filter(|pri| *pri <= 191)?;
    let (facility, severity) = syslog_loose::decompose_pri(pri);
    let mut message = Message {
        protocol: Protocol::RFC3164,
        facility,
        severity,
        timestamp: None,
        hostname: None,
        appname: None,
        procid: None,
        msgid: None,
        structured_data: Vec::new(),
        msg: rest,
    };
    // A tag: letters, digits and `_ - . /` up to `: ` (optionally `[pid]` before the colon).
    if let Some((tag, msg)) = rest.split_once(": ") {
        let (name, pid) = match tag.strip_suffix(']').and_then(|t| t.split_once('[')) {
            Some((name, pid)) => (name, Some(pid)),
            None => (tag, None),
        };
        let is_tag = !name.is_empty()
            && name.len() <= 48
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
        if is_tag {
            message.appname = Some(name);
            message.procid = pid.map(ProcId::from);
            message.msg = msg;
        }
    }
    Some(message)
}

/// Turns one received message (without its framing) into an event. `peer` is the sender's
/// address, kept as `attributes.syslog.peer`.
pub fn to_event(
    raw: &[u8],
    peer: Option<IpAddr>,
    options: &IngestOptions,
    observed: Timestamp,
) -> Result<Ingested, IngestError> {
    let text = String::from_utf8_lossy(raw);
    let text = text.as_ref();
    let parsed = syslog_loose::parse_message_with_year_exact_tz(
        text,
        resolve_year,
        Some(Utc),
        Variant::Either,
    )
    .ok()
    .filter(|parsed| parsed.facility.is_some() || parsed.severity.is_some())
    .or_else(|| minimal(text))
    // A line with no PRI is no syslog header: keep all of it as the message.
    .filter(|parsed| parsed.facility.is_some() || parsed.severity.is_some());
    let mut attributes = Map::new();
    let mut members: Vec<(std::borrow::Cow<'_, str>, Value)> = Vec::with_capacity(6);
    let (body_text, header_severity, msgid, app_name) = match &parsed {
        Some(parsed) => {
            attributes.insert("syslog".into(), Value::Object(header(parsed, peer)));
            if let Some(timestamp) = parsed.timestamp {
                let text = timestamp
                    .with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true);
                members.push(("timestamp".into(), Value::String(text)));
            }
            (
                message_text(text, parsed),
                parsed.severity.map(|s| s.as_str()),
                parsed.msgid.filter(|m| !m.is_empty() && *m != "-"),
                parsed.appname.filter(|a| !a.is_empty() && *a != "-"),
            )
        }
        None => {
            let mut syslog = Map::new();
            syslog.insert("protocol".into(), json!("none"));
            if let Some(peer) = peer {
                syslog.insert("peer".into(), json!(peer.to_string()));
            }
            attributes.insert("syslog".into(), Value::Object(syslog));
            (text.trim_end_matches(['\n', '\r', '\0']), None, None, None)
        }
    };
    let body = body(body_text, &mut attributes);
    let event_type = body
        .event_type
        .or_else(|| msgid.map(str::to_string))
        .unwrap_or_else(|| DEFAULT_EVENT_TYPE.to_string());
    members.push(("event_type".into(), Value::String(event_type)));
    if let Some(severity) = body.severity.or(header_severity) {
        members.push(("severity".into(), json!(severity)));
    }
    if let Some(summary) = body.summary {
        members.push(("summary".into(), Value::String(summary)));
    }
    if let Some(app_name) = app_name {
        members.push(("source".into(), json!(app_name)));
    }
    members.push(("attributes".into(), Value::Object(attributes)));
    event_from_object(siemrelay_core::ingest::Members(members), options, observed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemrelay_core::ingest::FieldMapping;

    fn event(raw: &str) -> siemrelay_core::Event {
        let options = IngestOptions::for_receiver("syslog/t", FieldMapping::default(), false);
        let peer = Some(IpAddr::from([192, 0, 2, 7]));
        to_event(raw.as_bytes(), peer, &options, Timestamp::now())
            .unwrap()
            .event
    }

    #[test]
    fn rfc5424_keeps_every_header_field_and_structured_data() {
        // RFC 5424 §6.5, example 3 (with the BOM), plus a second SD element.
        let e = event(
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\\\"q\\]\"] \u{feff}An application event log entry...  ",
        );
        assert_eq!(e.event_type, "ID47");
        assert_eq!(e.timestamp.to_rfc3339(), "2003-10-11T22:14:15.003Z");
        assert_eq!(e.severity.text, "notice");
        assert_eq!(e.source.as_deref(), Some("evntslog"));
        assert_eq!(
            e.summary.as_deref(),
            Some("An application event log entry...  ")
        );
        let syslog = &e.attributes["syslog"];
        assert_eq!(syslog["facility"], 20);
        assert_eq!(syslog["facility_name"], "local4");
        assert_eq!(syslog["severity"], 5);
        assert_eq!(syslog["hostname"], "mymachine.example.com");
        assert_eq!(syslog["app_name"], "evntslog");
        assert_eq!(syslog["msgid"], "ID47");
        assert_eq!(syslog["protocol"], "rfc5424");
        assert_eq!(syslog["peer"], "192.0.2.7");
        assert!(syslog.get("procid").is_none());
        let sd = &syslog["structured_data"];
        assert_eq!(sd["exampleSDID@32473"]["eventID"], "1011");
        assert_eq!(sd["examplePriority@32473"]["class"], "high\"q]");
    }

    #[test]
    fn rfc3164_gets_this_year_and_its_tag() {
        // RFC 3164 §5.4, example 1.
        let e = event(
            "<34>Oct 11 22:14:15 mymachine su[231]: 'su root' failed for lonvick on /dev/pts/8",
        );
        assert_eq!(e.severity.text, "crit");
        assert_eq!(e.severity.number, 21);
        assert_eq!(e.event_type, "syslog");
        assert_eq!(
            e.summary.as_deref(),
            Some("'su root' failed for lonvick on /dev/pts/8")
        );
        let syslog = &e.attributes["syslog"];
        assert_eq!(syslog["protocol"], "rfc3164");
        assert_eq!(syslog["hostname"], "mymachine");
        assert_eq!(syslog["app_name"], "su");
        assert_eq!(syslog["procid"], 231);
        assert_eq!(syslog["facility_name"], "auth");
        let text = e.timestamp.to_rfc3339();
        assert!(text.contains("-10-11T22:14:15"), "{text}");
    }

    #[test]
    fn cef_body_gives_type_severity_summary_and_attributes() {
        let e = event(
            r"<134>1 2024-06-10T06:13:20.123Z fw-1 siemrelay 77 policy_violation - CEF:0|Ven\|dor|Prod|1.0|policy_violation|Blocked a\|b|8|rt=1718000000123 msg=line1\nline2 a\=b\\c cat=x act=block",
        );
        assert_eq!(e.event_type, "policy_violation");
        assert_eq!(e.severity.text, "high");
        assert_eq!(e.severity.number, 17);
        assert_eq!(e.summary.as_deref(), Some("Blocked a|b"));
        assert_eq!(e.attributes["cef"]["vendor"], "Ven|dor");
        assert_eq!(e.attributes["cef"]["severity"], "8");
        assert_eq!(e.attributes["msg"], "line1\nline2 a=b\\c");
        assert_eq!(e.attributes["act"], "block");
        assert_eq!(e.attributes["syslog"]["procid"], 77);
    }

    #[test]
    fn leef_body_and_repeated_or_clashing_keys_are_kept() {
        let e = event(
            "<13>1 - - - - - - LEEF:2.0|V|P|1|lockout|x5E|sev=9^usrName=joe^usrName=ann^syslog=mine",
        );
        assert_eq!(e.event_type, "lockout");
        assert_eq!(e.severity.text, "critical");
        assert_eq!(e.attributes["leef"]["delimiter"], "^");
        assert_eq!(e.attributes["usrName"], "joe");
        assert_eq!(e.attributes["_duplicate"]["usrName"], json!(["ann"]));
        assert_eq!(e.attributes["_duplicate"]["syslog"], json!(["mine"]));
        assert_eq!(e.attributes["syslog"]["severity"], 5);
    }

    #[test]
    fn a_pri_and_tag_without_timestamp_is_read() {
        // What Python's logging.handlers.SysLogHandler sends.
        let e = event("<148>pyapp[4242]: msg-1 path=C:\\temp");
        assert_eq!(e.summary.as_deref(), Some("msg-1 path=C:\\temp"));
        assert_eq!(e.attributes["syslog"]["app_name"], "pyapp");
        assert_eq!(e.attributes["syslog"]["procid"], 4242);
        assert_eq!(e.attributes["syslog"]["facility_name"], "local2");
        assert_eq!(e.severity.text, "warning");
    }

    #[test]
    fn a_line_without_a_header_is_kept_whole() {
        let e = event("just some text\n");
        assert_eq!(e.summary.as_deref(), Some("just some text"));
        assert_eq!(e.event_type, "syslog");
        assert_eq!(e.attributes["syslog"]["protocol"], "none");
    }
}
