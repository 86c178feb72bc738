//! Packing encoded events into request bodies that respect a SIEM's limits, encoding each event
//! exactly once.

use super::RequestLimits;
use siemrelay_core::Event;

/// How events are joined in one body.
#[derive(Clone, Copy, Debug)]
pub struct Framing {
    /// Bytes before the first event (`[` for a JSON array).
    pub start: &'static [u8],
    /// Bytes between events (`,` for a JSON array).
    pub separator: &'static [u8],
    /// Bytes after the last event (`]` for a JSON array).
    pub end: &'static [u8],
}

/// JSON objects back to back (Splunk HEC).
pub const CONCATENATED: Framing = Framing {
    start: b"",
    separator: b"",
    end: b"",
};
/// One item per line, each ending with `\n` (the item encoder writes the newline).
pub const LINES: Framing = Framing {
    start: b"",
    separator: b"",
    end: b"",
};
/// A JSON array.
pub const JSON_ARRAY: Framing = Framing {
    start: b"[",
    separator: b",",
    end: b"]",
};

/// One request body and the events (indices into the input) it carries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncodedRequest {
    /// Indices of the events in this body, in body order.
    pub indices: Vec<usize>,
    /// The uncompressed body.
    pub body: Vec<u8>,
    /// Where the body goes when the exporter sends bodies to several places (a CloudWatch log
    /// stream), for [`crate::delivery::http::HttpEncoder::setup`].
    pub target: Option<String>,
}

/// The requests for a slice of events, and the events that cannot be sent at all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Encoded {
    /// Bodies within the limits.
    pub requests: Vec<EncodedRequest>,
    /// Events that could not be encoded or are larger than a whole request may be, with why.
    pub rejected: Vec<(usize, String)>,
}

/// Why one event cannot go into a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Encoded, it is larger than a whole request may be.
    #[error("event is {size} bytes encoded, more than the {limit} bytes one request may carry")]
    TooLarge {
        /// Its encoded size.
        size: usize,
        /// `RequestLimits::max_bytes`.
        limit: usize,
    },
    /// The exporter cannot encode it, or refuses it (over a per-event limit of the SIEM); the
    /// reason goes to the dead-letter file.
    #[error("{0}")]
    Refused(String),
}

impl From<String> for EncodeError {
    fn from(reason: String) -> EncodeError {
        EncodeError::Refused(reason)
    }
}

impl From<&str> for EncodeError {
    fn from(reason: &str) -> EncodeError {
        EncodeError::Refused(reason.to_string())
    }
}

/// Bytes a body's buffer holds beyond its limit, for the item that overflows it.
const BODY_SLACK: usize = 64 * 1024;

/// Encodes `events` with `encode` and packs them into bodies of at most `limits.max_bytes` bytes
/// and `limits.max_events` events.
pub fn pack<'a>(
    events: impl IntoIterator<Item = (usize, &'a Event)>,
    limits: RequestLimits,
    framing: Framing,
    mut encode: impl FnMut(&Event, &mut Vec<u8>) -> Result<(), EncodeError>,
) -> Encoded {
    let overhead = framing.start.len() + framing.end.len();
    let mut out = Encoded::default();
    // Room for a full body plus the item that overflows it (encoded before it is moved to the
    // next body): without the slack that item doubles the body's buffer, and every body after
    // it starts at twice the size it needs.
    let capacity = limits.max_bytes.min(1 << 20) + BODY_SLACK;
    let mut current = EncodedRequest {
        body: Vec::with_capacity(capacity),
        ..Default::default()
    };
    current.body.extend_from_slice(framing.start);
    for (index, event) in events {
        let mark = current.body.len();
        if !current.indices.is_empty() {
            current.body.extend_from_slice(framing.separator);
        }
        let item_start = current.body.len();
        if let Err(reason) = encode(event, &mut current.body) {
            current.body.truncate(mark);
            out.rejected.push((index, reason.to_string()));
            continue;
        }
        let item_len = current.body.len() - item_start;
        if item_len + overhead > limits.max_bytes {
            current.body.truncate(mark);
            let too_large = EncodeError::TooLarge {
                size: item_len,
                limit: limits.max_bytes,
            };
            out.rejected.push((index, too_large.to_string()));
            continue;
        }
        let too_big = current.body.len() + framing.end.len() > limits.max_bytes;
        let too_many = current.indices.len() >= limits.max_events;
        if (too_big || too_many) && !current.indices.is_empty() {
            // Move this item into a fresh body and close the current one.
            let item = current.body[item_start..].to_vec();
            current.body.truncate(mark);
            current.body.extend_from_slice(framing.end);
            let mut next = EncodedRequest {
                body: Vec::with_capacity(capacity),
                ..Default::default()
            };
            next.body.extend_from_slice(framing.start);
            next.body.extend_from_slice(&item);
            out.requests.push(std::mem::replace(&mut current, next));
        }
        current.indices.push(index);
    }
    if !current.indices.is_empty() {
        current.body.extend_from_slice(framing.end);
        out.requests.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<Event> {
        (0..n).map(|i| Event::new(format!("type-{i}"))).collect()
    }

    fn encode_type(event: &Event, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        serde_json::to_writer(out, &event.event_type).map_err(|e| e.to_string().into())
    }

    #[test]
    fn json_array_bodies_respect_byte_and_count_limits() {
        let evs = events(10);
        // Each item is `"type-N"` = 8 bytes; arrays add 2, separators 1.
        let limits = RequestLimits {
            max_events: 4,
            max_bytes: 30,
        };
        let encoded = pack(evs.iter().enumerate(), limits, JSON_ARRAY, encode_type);
        assert!(encoded.rejected.is_empty());
        let mut seen = Vec::new();
        for request in &encoded.requests {
            assert!(
                request.body.len() <= 30,
                "{}",
                String::from_utf8_lossy(&request.body)
            );
            assert!(request.indices.len() <= 4);
            let parsed: Vec<String> = serde_json::from_slice(&request.body).unwrap();
            assert_eq!(parsed.len(), request.indices.len());
            seen.extend(request.indices.iter().copied());
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(encoded.requests[0].body, br#"["type-0","type-1","type-2"]"#);
    }

    #[test]
    fn oversize_and_unencodable_events_are_rejected_alone() {
        let mut evs = events(3);
        evs[1].event_type = "x".repeat(100);
        let limits = RequestLimits {
            max_events: 100,
            max_bytes: 50,
        };
        let encoded = pack(evs.iter().enumerate(), limits, CONCATENATED, |e, out| {
            if e.event_type == "type-2" {
                Err("cannot encode".into())
            } else {
                encode_type(e, out)
            }
        });
        assert_eq!(
            encoded.rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(encoded.requests.len(), 1);
        assert_eq!(encoded.requests[0].body, br#""type-0""#);
    }

    #[test]
    fn an_overflowing_item_does_not_double_the_bodies_buffers() {
        let limits = RequestLimits {
            max_bytes: 1 << 20,
            max_events: usize::MAX,
        };
        let all = events(3_000);
        let framing = Framing {
            start: b"[",
            separator: b",",
            end: b"]",
        };
        let padded = |event: &Event, out: &mut Vec<u8>| {
            encode_type(event, out)?;
            out.extend_from_slice(&[b' '; 1000]);
            Ok(())
        };
        let encoded = pack(all.iter().enumerate(), limits, framing, padded);
        assert!(encoded.requests.len() > 2);
        for request in &encoded.requests {
            assert!(request.body.len() <= limits.max_bytes);
            assert!(
                request.body.capacity() <= limits.max_bytes + BODY_SLACK,
                "capacity {} for a body of at most {}",
                request.body.capacity(),
                limits.max_bytes
            );
        }
    }
}
