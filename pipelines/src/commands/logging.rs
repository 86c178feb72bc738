//! The log writer: `tracing` output on stderr that never carries a secret and cannot be forged.
//!
//! - Every field value and message is scrubbed of secrets ([`siemrelay_core::scrub`]) before it
//!   is escaped, and every finished line once more (JSON lines carry secrets in their
//!   JSON-escaped form, which the scrubber knows).
//! - Text from outside (file names, header values, paths, SIEM replies) cannot start a line of
//!   its own or drive the terminal: in readable lines, newlines, carriage returns, ANSI escapes,
//!   other control characters and Unicode direction overrides are written as `\n`, `\r`,
//!   `\u{1b}`…; JSON lines are escaped by JSON itself.
//! - ANSI colours only when stderr is a terminal and `NO_COLOR` is not set.

use siemrelay_core::scrub;
use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;

/// Sets up `tracing` output on stderr: readable lines, or JSON with `json`. The level comes from
/// `RUST_LOG` (default `info`).
pub fn init(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colours = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(ScrubbedStderr);
    if json {
        builder.json().init();
    } else {
        builder.fmt_fields(EscapedFields).init();
    }
}

/// Makes one [`LineWriter`] per log event.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScrubbedStderr;

impl<'a> MakeWriter<'a> for ScrubbedStderr {
    type Writer = LineWriter<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter::new(std::io::stderr())
    }
}

/// Collects one formatted event, then writes it scrubbed, in one write, when dropped.
pub struct LineWriter<W: Write> {
    buffer: Vec<u8>,
    out: W,
}

impl<W: Write> LineWriter<W> {
    /// A writer for one event to `out`.
    pub fn new(out: W) -> LineWriter<W> {
        LineWriter {
            buffer: Vec::with_capacity(256),
            out,
        }
    }
}

impl<W: Write> Write for LineWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buffer);
        let scrubbed = scrub::scrub(&text);
        let result = self.out.write_all(scrubbed.as_bytes());
        self.buffer.clear();
        result.and_then(|()| self.out.flush())
    }
}

impl<W: Write> Drop for LineWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Formats fields as `name=value` like the default, with every value scrubbed and escaped.
#[derive(Clone, Copy, Debug, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visit for EscapingVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let text = format!("{value:?}");
        let scrubbed = scrub::scrub(&text);
        let text = escape(&scrubbed);
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{text}")
        } else {
            write!(self.writer, "{separator}{}={text}", field.name())
        };
    }
}

/// `text` with characters that could end a log line or drive a terminal written as escapes.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = LineWriter<Captured>;
        fn make_writer(&'a self) -> Self::Writer {
            LineWriter::new(self.clone())
        }
    }

    fn capture(json: bool, log: impl FnOnce()) -> String {
        let out = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(out.clone());
        if json {
            tracing::subscriber::with_default(builder.json().finish(), log);
        } else {
            tracing::subscriber::with_default(builder.fmt_fields(EscapedFields).finish(), log);
        }
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn untrusted_text_cannot_forge_a_line_or_an_ansi_sequence() {
        let name = "a.log\n2026-01-01T00:00:00Z  INFO forged line\u{1b}[31m";
        let text = capture(false, || {
            tracing::warn!(file = %name, reply = ?name, "cannot read {name}");
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("a.log\\n2026"), "{text}");
        let json = capture(true, || tracing::warn!(file = %name, "cannot read {name}"));
        assert_eq!(json.lines().count(), 1, "{json}");
        assert!(!json.contains('\u{1b}'), "{json}");
    }

    #[test]
    fn secrets_never_reach_the_log_in_any_form() {
        let secret = "multi\"line\\secret\nsecond line";
        scrub::remember([secret]);
        for json in [false, true] {
            let text = capture(json, || {
                tracing::warn!(last_error = %secret, debug = ?secret, "reply: {secret}");
            });
            assert!(text.contains(scrub::MASK), "{text}");
            for needle in ["multi", "second line"] {
                assert!(!text.contains(needle), "json={json}: {text}");
            }
        }
    }
}
