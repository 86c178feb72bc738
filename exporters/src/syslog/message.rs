//! One event → one syslog message: RFC 5424 header + body in the configured format.

use super::cef::CefEncoder;
use super::leef::LeefEncoder;
use super::rfc5424::Header;
use serde::Deserialize;
use siemrelay_core::Event;

/// The message body format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    /// IBM QRadar LEEF 2.0 (default of `qradar`).
    Leef,
    /// ArcSight CEF.
    Cef,
    /// The event's JSON form (default of `syslog`).
    Json,
}

/// The body encoder for a format.
#[derive(Clone, Debug)]
pub enum Body {
    /// LEEF 2.0.
    Leef(LeefEncoder),
    /// CEF.
    Cef(CefEncoder),
    /// JSON form.
    Json,
}

/// Encodes whole syslog messages.
#[derive(Clone, Debug)]
pub struct MessageEncoder {
    header: Header,
    body: Body,
}

impl MessageEncoder {
    /// An encoder with this header and body.
    pub fn new(header: Header, body: Body) -> MessageEncoder {
        MessageEncoder { header, body }
    }

    /// Appends the body alone (LEEF, CEF or JSON; never a raw CR or LF).
    pub fn encode_body(&self, event: &Event, out: &mut Vec<u8>) {
        match &self.body {
            Body::Leef(leef) => leef.encode(event, out),
            Body::Cef(cef) => cef.encode(event, out),
            Body::Json => event.write_json(out),
        }
    }

    /// Appends the RFC 5424 header and the body.
    pub fn encode_message(&self, event: &Event, out: &mut Vec<u8>) {
        self.header.write(event, out);
        self.encode_body(event, out);
    }
}
