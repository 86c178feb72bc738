//! Splitting a TCP/TLS byte stream into syslog messages (RFC 6587), detected per connection from
//! its first byte:
//!
//! - a digit: octet counting, `MSG-LEN SP SYSLOG-MSG` (RFC 6587 §3.4.1, RFC 5425);
//! - anything else (normally `<`): non-transparent framing, each message ends with LF
//!   (RFC 6587 §3.4.2); a CR before the LF is dropped, empty lines are skipped.
//!
//! A message longer than `max_message_size` is skipped whole (its bytes are read and thrown
//! away without being held) and reported as [`Frame::TooLarge`]; the connection goes on. A
//! length prefix that is not a number ends the connection ([`FramingError`]): after it nothing
//! in the stream can be trusted to start a message.

use bytes::{Buf, Bytes, BytesMut};

/// Longest `MSG-LEN` accepted, in digits (16 MiB has 8).
const MAX_LENGTH_DIGITS: usize = 9;

/// How a connection frames its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `MSG-LEN SP MSG`.
    OctetCounting,
    /// `MSG LF`.
    LineFeed,
}

impl Mode {
    /// The label used in logs and docs.
    pub fn name(self) -> &'static str {
        match self {
            Mode::OctetCounting => "octet_counting",
            Mode::LineFeed => "lf",
        }
    }
}

/// One thing taken from the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message (without its framing).
    Message(Bytes),
    /// A message over `max_message_size` was skipped; its length in bytes as far as known.
    TooLarge(usize),
}

/// The stream does not follow its framing.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("octet-counted framing expected `<length> <message>`, got {got:?}")]
pub struct FramingError {
    /// The first bytes of what was found instead (lossy text).
    pub got: String,
}

/// The framing state of one connection.
#[derive(Debug)]
pub struct Framer {
    mode: Option<Mode>,
    max_message_size: usize,
    /// Bytes still to throw away of a message that was too large.
    skipping: usize,
    /// While skipping an LF-framed message: true until its LF is found.
    skipping_line: bool,
}

impl Framer {
    /// A framer for a new connection.
    pub fn new(max_message_size: usize) -> Framer {
        Framer {
            mode: None,
            max_message_size,
            skipping: 0,
            skipping_line: false,
        }
    }

    /// The connection's framing, once its first byte is known.
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// Takes the next frame out of `buffer`; `Ok(None)` when more bytes are needed. At most
    /// `max_message_size` plus a length prefix is ever held in `buffer` by a partial frame.
    pub fn next(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        loop {
            if self.skipping > 0 {
                let n = self.skipping.min(buffer.len());
                buffer.advance(n);
                self.skipping -= n;
                if self.skipping > 0 {
                    return Ok(None);
                }
            }
            if self.skipping_line {
                match memchr(b'\n', buffer) {
                    Some(at) => {
                        buffer.advance(at + 1);
                        self.skipping_line = false;
                    }
                    None => {
                        buffer.clear();
                        return Ok(None);
                    }
                }
            }
            let Some(&first) = buffer.first() else {
                return Ok(None);
            };
            let mode = *self.mode.get_or_insert(if first.is_ascii_digit() {
                Mode::OctetCounting
            } else {
                Mode::LineFeed
            });
            let frame = match mode {
                Mode::OctetCounting => self.octet_counted(buffer)?,
                Mode::LineFeed => self.line(buffer),
            };
            match frame {
                Some(Frame::Message(message)) if message.is_empty() => continue,
                other => return Ok(other),
            }
        }
    }

    fn octet_counted(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        // Tolerate LF (or CRLF) between frames, which some senders add.
        while matches!(buffer.first(), Some(b'\n' | b'\r')) {
            buffer.advance(1);
        }
        let digits = buffer.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == buffer.len() {
            return if digits > MAX_LENGTH_DIGITS {
                Err(self.bad(buffer))
            } else {
                Ok(None)
            };
        }
        if digits == 0 || digits > MAX_LENGTH_DIGITS || buffer[digits] != b' ' {
            return Err(self.bad(buffer));
        }
        let length: usize = std::str::from_utf8(&buffer[..digits])
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| self.bad(buffer))?;
        if length > self.max_message_size {
            buffer.advance(digits + 1);
            self.skipping = length;
            return Ok(Some(Frame::TooLarge(length)));
        }
        if buffer.len() < digits + 1 + length {
            buffer.reserve(digits + 1 + length - buffer.len());
            return Ok(None);
        }
        buffer.advance(digits + 1);
        Ok(Some(Frame::Message(buffer.split_to(length).freeze())))
    }

    fn line(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        match memchr(b'\n', buffer) {
            Some(at) if at <= self.max_message_size => {
                let mut line = buffer.split_to(at + 1);
                line.truncate(at);
                if line.last() == Some(&b'\r') {
                    line.truncate(at - 1);
                }
                Some(Frame::Message(line.freeze()))
            }
            Some(at) => {
                buffer.advance(at + 1);
                Some(Frame::TooLarge(at))
            }
            None if buffer.len() > self.max_message_size => {
                let seen = buffer.len();
                buffer.clear();
                self.skipping_line = true;
                Some(Frame::TooLarge(seen))
            }
            None => None,
        }
    }

    fn bad(&self, buffer: &BytesMut) -> FramingError {
        let shown = &buffer[..buffer.len().min(32)];
        FramingError {
            got: String::from_utf8_lossy(shown).into_owned(),
        }
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Result<Vec<Frame>, FramingError> {
        let mut framer = Framer::new(max);
        let mut buffer = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buffer.extend_from_slice(chunk);
            while let Some(frame) = framer.next(&mut buffer)? {
                out.push(frame);
            }
        }
        Ok(out)
    }

    fn message(text: &str) -> Frame {
        Frame::Message(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn octet_counting_is_detected_and_split_across_reads() {
        let got = frames(100, &[b"11 <13>1 a\nb c", b"5 <1>1 ", b"\n3 abc"]).unwrap();
        assert_eq!(
            got,
            [message("<13>1 a\nb c"), message("<1>1 "), message("abc")]
        );
    }

    #[test]
    fn lf_framing_drops_cr_and_skips_empty_lines() {
        let got = frames(100, &[b"<13>a\r\n\n<14>b", b"c\n"]).unwrap();
        assert_eq!(got, [message("<13>a"), message("<14>bc")]);
    }

    #[test]
    fn too_large_messages_are_skipped_and_the_stream_goes_on() {
        let got = frames(4, &[b"6 abcdef2 ok"]).unwrap();
        assert_eq!(got, [Frame::TooLarge(6), message("ok")]);
        let got = frames(4, &[b"<1>abcdefgh", b"ijk\n<2>x\n"]).unwrap();
        assert_eq!(got, [Frame::TooLarge(11), message("<2>x")]);
        let got = frames(4, &[b"<1>abcdef\n<2>x\n"]).unwrap();
        assert_eq!(got, [Frame::TooLarge(9), message("<2>x")]);
    }

    #[test]
    fn a_bad_length_prefix_is_an_error() {
        let err = frames(100, &[b"12x <13>"]).unwrap_err();
        assert!(err.got.starts_with("12x"), "{err}");
        assert!(frames(100, &[b"1234567890123"]).is_err());
    }
}
