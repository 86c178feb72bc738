//! ArcSight Common Event Format bodies:
//! `CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension`.
//!
//! Header fields undo `\|` and `\\`. The extension is `key=value` pairs separated by spaces;
//! values may hold spaces and undo `\=`, `\\`, `\|`, `\n` (LF) and `\r` (CR) (ArcSight's
//! "Implementing ArcSight CEF", character encoding). A value ends where the next key begins: the
//! last space-separated word before an unescaped `=`, when that word looks like a key (letters,
//! digits, `_ . - [ ]`); an `=` after anything else (a URL's query) stays in the value.

/// A parsed CEF body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cef {
    /// CEF format version (`0` or `1`).
    pub version: String,
    /// Device Vendor.
    pub vendor: String,
    /// Device Product.
    pub product: String,
    /// Device Version.
    pub device_version: String,
    /// Signature ID (Device Event Class ID): the event's type.
    pub signature_id: String,
    /// Name: a human-readable description.
    pub name: String,
    /// Severity as sent: `0`–`10` or `Unknown`, `Low`, `Medium`, `High`, `Very-High`.
    pub severity: String,
    /// Extension pairs in the order sent, escaping undone.
    pub extension: Vec<(String, String)>,
}

/// Splits `count` `|`-separated header fields (undoing `\|` and `\\`) off `text`; returns them and
/// what follows the last `|`, or `None` when `text` has fewer.
pub fn header_fields(text: &str, count: usize) -> Option<(Vec<String>, &str)> {
    let mut fields = Vec::with_capacity(count);
    let mut current = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped @ ('|' | '\\'))) => current.push(escaped),
                Some((_, other)) => {
                    current.push('\\');
                    current.push(other);
                }
                None => current.push('\\'),
            },
            '|' => {
                fields.push(std::mem::take(&mut current));
                if fields.len() == count {
                    return Some((fields, &text[at + 1..]));
                }
            }
            other => current.push(other),
        }
    }
    None
}

/// Parses a CEF body (text starting with `CEF:`); `None` when it is not one (then the message is
/// kept as plain text).
pub fn parse(text: &str) -> Option<Cef> {
    let body = text.strip_prefix("CEF:")?;
    let (mut fields, extension) = header_fields(body, 7)?;
    let mut take = |i: usize| std::mem::take(&mut fields[i]);
    Some(Cef {
        version: take(0),
        vendor: take(1),
        product: take(2),
        device_version: take(3),
        signature_id: take(4),
        name: take(5),
        severity: take(6),
        extension: parse_extension(extension),
    })
}

fn is_key(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'[' | b']'))
}

/// Parses `key=value key2=value two` into pairs, escaping undone.
pub fn parse_extension(text: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    // The raw (still escaped) text since the last key's `=`.
    let mut raw = String::new();
    let mut key: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                raw.push('\\');
                if let Some(next) = chars.next() {
                    raw.push(next);
                }
            }
            '=' => {
                let (value, word, spaced) = match raw.rfind(' ') {
                    Some(space) => (&raw[..space], &raw[space + 1..], true),
                    None => ("", raw.as_str(), false),
                };
                // A key follows a space, except the first one; text before it is no pair.
                let boundary = if key.is_some() {
                    spaced
                } else {
                    value.trim().is_empty()
                };
                if !boundary || !is_key(word) {
                    raw.push('=');
                    continue;
                }
                let word = word.to_string();
                if let Some(previous) = key.take() {
                    pairs.push((previous, unescape(value)));
                }
                key = Some(word);
                raw.clear();
            }
            other => raw.push(other),
        }
    }
    match key {
        Some(last) => pairs.push((last, unescape(raw.trim_end_matches([' ', '\r', '\n'])))),
        None if !raw.trim().is_empty() => pairs.push((String::new(), unescape(raw.trim()))),
        None => {}
    }
    pairs
}

/// Undoes CEF extension escaping: `\n` → LF, `\r` → CR, `\x` → `x` for any other character.
pub fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The OpenTelemetry severity name of a CEF severity: `0` debug, `1`–`2` info, `3` low,
/// `4`–`6` medium, `7`–`8` high, `9`–`10` critical; the words `Low`, `Medium`, `High`,
/// `Very-High` likewise. `None` for `Unknown` or anything else.
pub fn severity_name(severity: &str) -> Option<&'static str> {
    let severity = severity.trim();
    if let Ok(number) = severity.parse::<u8>() {
        return Some(match number {
            0 => "debug",
            1 | 2 => "info",
            3 => "low",
            4..=6 => "medium",
            7 | 8 => "high",
            9 | 10 => "critical",
            _ => return None,
        });
    }
    match severity.to_ascii_lowercase().as_str() {
        "low" => Some("low"),
        "medium" => Some("medium"),
        "high" => Some("high"),
        "very-high" | "very high" => Some("critical"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn arcsight_example_parses() {
        // From "Implementing ArcSight CEF" (revision 25), the example in "CEF:Version".
        let cef = parse(
            r"CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 dst=2.1.2.2 spt=1232",
        )
        .unwrap();
        assert_eq!(cef.vendor, "Security");
        assert_eq!(cef.signature_id, "100");
        assert_eq!(cef.name, "worm successfully stopped");
        assert_eq!(cef.severity, "10");
        assert_eq!(
            cef.extension,
            pairs(&[("src", "10.0.0.1"), ("dst", "2.1.2.2"), ("spt", "1232")])
        );
    }

    #[test]
    fn escaping_is_undone_in_header_and_extension() {
        let cef = parse(
            r"CEF:0|Ven\|dor\\|P|1|sig\|1|na\\me|7|msg=a b\=c\\ d\n e\r act=bl\|ocked note=x= y",
        )
        .unwrap();
        assert_eq!(cef.vendor, "Ven|dor\\");
        assert_eq!(cef.signature_id, "sig|1");
        assert_eq!(cef.name, "na\\me");
        assert_eq!(
            cef.extension,
            pairs(&[
                ("msg", "a b=c\\ d\n e\r"),
                ("act", "bl|ocked"),
                ("note", "x= y")
            ])
        );
    }

    #[test]
    fn an_unescaped_equals_sign_after_a_non_key_stays_in_the_value() {
        let cef = parse("CEF:0|V|P|1|s|n|3|request=http://x/?a=b&c=d cs1=one two").unwrap();
        assert_eq!(
            cef.extension,
            pairs(&[("request", "http://x/?a=b&c=d"), ("cs1", "one two")])
        );
    }

    #[test]
    fn not_cef_or_a_short_header_is_none() {
        assert!(parse("hello").is_none());
        assert!(parse("CEF:0|a|b|c").is_none());
        assert_eq!(parse("CEF:0|a|b|c|d|e|5|").unwrap().extension, vec![]);
    }

    #[test]
    fn severities_map_to_names() {
        let names: Vec<_> = ["0", "1", "3", "5", "8", "10", "11", "Very-High", "Unknown"]
            .iter()
            .map(|s| severity_name(s))
            .collect();
        assert_eq!(
            names,
            [
                Some("debug"),
                Some("info"),
                Some("low"),
                Some("medium"),
                Some("high"),
                Some("critical"),
                None,
                Some("critical"),
                None
            ]
        );
    }
}
