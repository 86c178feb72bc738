//! IBM Log Event Extended Format bodies (IBM QRadar "LEEF event components"):
//!
//! - LEEF 1.0: `LEEF:1.0|Vendor|Product|Version|EventID|` then `key=value` pairs separated by tab;
//! - LEEF 2.0: `LEEF:2.0|Vendor|Product|Version|EventID|DelimiterCharacter|` then pairs separated
//!   by that character, given as itself (`^`) or in hex (`x09`, `0x5E`); left out or empty, tab.
//!
//! A `\|` in a header field is a `|` (IBM: "the pipe character must be escaped with a
//! backslash" in the header). LEEF defines no escaping inside values, so a value is kept
//! exactly as sent: it runs from the first `=` of its pair to the next delimiter. A piece
//! between two delimiters that has no `=` belongs to the value before it (a value that held the
//! delimiter), so nothing is dropped.

use super::cef::header_fields;

/// A parsed LEEF body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leef {
    /// `1.0` or `2.0`.
    pub version: String,
    /// Vendor.
    pub vendor: String,
    /// Product.
    pub product: String,
    /// Product version.
    pub product_version: String,
    /// EventID: the event's type.
    pub event_id: String,
    /// The attribute delimiter.
    pub delimiter: char,
    /// Attribute pairs in the order sent.
    pub attributes: Vec<(String, String)>,
}

impl Leef {
    /// The value of the first attribute named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads LEEF 2.0's delimiter field: one character, or `x`/`0x` and hex digits.
fn delimiter(field: &str) -> Option<char> {
    if field.is_empty() {
        return Some('\t');
    }
    let hex = field
        .strip_prefix("0x")
        .or_else(|| field.strip_prefix("0X"))
        .or_else(|| field.strip_prefix('x'))
        .or_else(|| field.strip_prefix('X'));
    if let Some(hex) = hex
        && !hex.is_empty()
        && hex.len() <= 4
    {
        return u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
    }
    let mut chars = field.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// Parses a LEEF body (text starting with `LEEF:`); `None` when it is not one.
pub fn parse(text: &str) -> Option<Leef> {
    let body = text.strip_prefix("LEEF:")?;
    let (mut fields, mut rest) = header_fields(body, 5)?;
    let version = fields[0].trim().to_string();
    let mut separator = '\t';
    if version.starts_with('2') {
        // The delimiter field, when present: what comes before the next `|`, holding no `=`.
        if let Some((field, after)) = rest.split_once('|')
            && !field.contains('=')
            && let Some(found) = delimiter(field)
        {
            separator = found;
            rest = after;
        }
    }
    let mut take = |i: usize| std::mem::take(&mut fields[i]);
    Some(Leef {
        version,
        vendor: take(1),
        product: take(2),
        product_version: take(3),
        event_id: take(4),
        delimiter: separator,
        attributes: attributes(rest, separator),
    })
}

fn attributes(text: &str, separator: char) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let text = text.trim_end_matches(['\r', '\n']);
    let mut pieces = text.split(separator).peekable();
    while let Some(piece) = pieces.next() {
        match piece.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                pairs.push((key.to_string(), value.to_string()));
            }
            _ => {
                let last = pieces.peek().is_none();
                if piece.is_empty() && last {
                    continue;
                }
                match pairs.last_mut() {
                    Some((_, value)) => {
                        value.push(separator);
                        value.push_str(piece);
                    }
                    None if piece.is_empty() => {}
                    None => pairs.push((String::new(), piece.to_string())),
                }
            }
        }
    }
    pairs
}

/// The OpenTelemetry severity name of a LEEF `sev` (1–10): `1` debug, `2` info, `3` low,
/// `4`–`6` medium, `7`–`8` high, `9`–`10` critical; `None` for anything else.
pub fn severity_name(sev: &str) -> Option<&'static str> {
    Some(match sev.trim().parse::<u8>().ok()? {
        1 => "debug",
        2 => "info",
        3 => "low",
        4..=6 => "medium",
        7 | 8 => "high",
        9 | 10 => "critical",
        _ => return None,
    })
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
    fn leef_1_uses_tab() {
        // IBM's LEEF 1.0 example.
        let leef = parse("LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=192.0.2.0\tdst=172.50.123.1\tsev=5\tcat=anomaly\tsrcPort=81\tdstPort=21\tusrName=joe.black").unwrap();
        assert_eq!(leef.vendor, "Microsoft");
        assert_eq!(leef.event_id, "15345");
        assert_eq!(leef.delimiter, '\t');
        assert_eq!(leef.get("usrName"), Some("joe.black"));
        assert_eq!(leef.attributes.len(), 7);
    }

    #[test]
    fn leef_2_delimiters_literal_hex_and_missing() {
        // IBM's LEEF 2.0 examples: `^` and `x5E` (both a caret).
        let caret = parse("LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^sev=5^srcPort=81^dstPort=21").unwrap();
        assert_eq!(caret.delimiter, '^');
        assert_eq!(caret.get("dstPort"), Some("21"));
        let hex =
            parse("LEEF:2.0|Lancope|StealthWatch|1.0|41|x5E|src=10.0.1.8^dst=10.0.0.5").unwrap();
        assert_eq!(hex.delimiter, '^');
        assert_eq!(
            hex.attributes,
            pairs(&[("src", "10.0.1.8"), ("dst", "10.0.0.5")])
        );
        let tab = parse("LEEF:2.0|V|P|1|E|0x09|a=1\tb=2").unwrap();
        assert_eq!(tab.delimiter, '\t');
        let missing = parse("LEEF:2.0|V|P|1|E|a=1\tb=x|y").unwrap();
        assert_eq!(missing.attributes, pairs(&[("a", "1"), ("b", "x|y")]));
    }

    #[test]
    fn values_are_kept_as_sent_and_stray_pieces_join_their_value() {
        let leef = parse("LEEF:2.0|Ac\\|me|P|1|E\\|v|^|a=x=y\\z^b=one^two^^c=\\n\t").unwrap();
        assert_eq!(leef.vendor, "Ac|me");
        assert_eq!(leef.event_id, "E|v");
        assert_eq!(
            leef.attributes,
            pairs(&[("a", "x=y\\z"), ("b", "one^two^"), ("c", "\\n\t")])
        );
    }

    #[test]
    fn severities_map_to_names() {
        let names: Vec<_> = ["1", "2", "3", "5", "8", "10", "0", "x"]
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
                None
            ]
        );
    }
}
