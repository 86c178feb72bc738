//! Event severity: the OpenTelemetry severity number (1–24) plus the text the sender used.

use std::fmt;

/// Severity of an event: an OpenTelemetry severity number and its text.
///
/// `number` is 0 when the sender gave none (OpenTelemetry's UNSPECIFIED).
/// `text` is kept exactly as the sender wrote it (`"high"`, `"WARN"`), or derived from the number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Severity {
    /// OpenTelemetry severity number: 0 unspecified, TRACE 1–4, DEBUG 5–8, INFO 9–12,
    /// WARN 13–16, ERROR 17–20, FATAL 21–24.
    pub number: u8,
    /// Severity text as sent, or the OpenTelemetry short name for `number`.
    pub text: String,
}

impl Default for Severity {
    fn default() -> Self {
        Severity {
            number: 0,
            text: String::from("unspecified"),
        }
    }
}

/// The documented mapping from severity names to OpenTelemetry numbers (case-insensitive).
///
/// | name | number |
/// |---|---|
/// | trace | 1 |
/// | debug | 5 |
/// | info, informational, notice | 9 |
/// | low | 10 (INFO2) |
/// | warn, warning, medium | 13 |
/// | error, err, high | 17 |
/// | fatal, critical, crit, emergency, alert | 21 |
///
/// OpenTelemetry sub-level names (`INFO2`, `WARN3`, …) map to their exact numbers.
pub fn number_for_name(name: &str) -> Option<u8> {
    // Lower-cased on the stack: every known name is shorter than the buffer (this runs once
    // per received event).
    let name = name.trim();
    let mut buffer = [0u8; 16];
    let folded = buffer.get_mut(..name.len())?;
    folded.copy_from_slice(name.as_bytes());
    folded.make_ascii_lowercase();
    // ASCII lower-casing keeps UTF-8 valid.
    let lower = std::str::from_utf8(folded).ok()?;
    let base = match lower {
        "unspecified" | "" => 0,
        "trace" => 1,
        "debug" => 5,
        "info" | "informational" | "notice" => 9,
        "low" => 10,
        "warn" | "warning" | "medium" => 13,
        "error" | "err" | "high" => 17,
        "fatal" | "critical" | "crit" | "emergency" | "emerg" | "alert" => 21,
        _ => {
            // OpenTelemetry sub-levels such as INFO2 or ERROR4.
            // The last character, which may be wider than a byte (a name from a sender).
            let last = lower.char_indices().last().map_or(0, |(at, _)| at);
            let (word, digit) = lower.split_at(last);
            let level: u8 = digit.parse().ok().filter(|d| (2..=4).contains(d))?;
            let base = match word {
                "trace" => 1,
                "debug" => 5,
                "info" => 9,
                "warn" => 13,
                "error" => 17,
                "fatal" => 21,
                _ => return None,
            };
            return Some(base + level - 1);
        }
    };
    Some(base)
}

/// The OpenTelemetry short name for a severity number (`INFO`, `WARN2`, …).
pub fn name_for_number(number: u8) -> String {
    if number == 0 || number > 24 {
        return String::from("unspecified");
    }
    let names = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let name = names[usize::from((number - 1) / 4)];
    let sub = (number - 1) % 4 + 1;
    if sub == 1 {
        name.to_string()
    } else {
        format!("{name}{sub}")
    }
}

impl Severity {
    /// Severity from a name such as `high` or `warning`; `None` when the name is unknown.
    pub fn from_name(name: &str) -> Option<Severity> {
        number_for_name(name).map(|number| Severity {
            number,
            text: name.to_string(),
        })
    }

    /// Severity from an OpenTelemetry number; `None` outside 0–24.
    pub fn from_number(number: i64) -> Option<Severity> {
        let number = u8::try_from(number).ok().filter(|n| *n <= 24)?;
        Some(Severity {
            number,
            text: name_for_number(number),
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_ending_in_a_wide_character_is_unknown_not_a_panic() {
        assert_eq!(number_for_name("😀"), None);
        assert_eq!(number_for_name("info😀"), None);
        assert_eq!(number_for_name("INFO2"), Some(10));
    }

    #[test]
    fn names_are_read_trimmed_in_any_case_and_long_ones_are_unknown() {
        assert_eq!(number_for_name("  Informational \t"), Some(9));
        assert_eq!(number_for_name("EMERGENCY"), Some(21));
        assert_eq!(number_for_name("informational-informational"), None);
        assert_eq!(number_for_name(&"x".repeat(100)), None);
    }

    #[test]
    fn names_map_to_documented_numbers() {
        for (name, number) in [
            ("trace", 1),
            ("DEBUG", 5),
            ("info", 9),
            ("low", 10),
            ("warn", 13),
            ("Warning", 13),
            ("medium", 13),
            ("error", 17),
            ("high", 17),
            ("fatal", 21),
            ("critical", 21),
            ("INFO3", 11),
            ("error4", 20),
        ] {
            assert_eq!(number_for_name(name), Some(number), "{name}");
        }
        assert_eq!(number_for_name("unspecified"), Some(0));
        assert_eq!(number_for_name("bogus"), None);
        assert_eq!(number_for_name("info7"), None);
    }

    #[test]
    fn numbers_have_otel_names() {
        assert_eq!(name_for_number(9), "INFO");
        assert_eq!(name_for_number(14), "WARN2");
        assert_eq!(name_for_number(24), "FATAL4");
        assert_eq!(name_for_number(0), "unspecified");
        assert!(Severity::from_number(25).is_none());
    }
}
