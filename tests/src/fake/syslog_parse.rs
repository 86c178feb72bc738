//! Small reference parsers for what the `syslog` and `qradar` exporters send: RFC 5424 lines,
//! LEEF 1.0/2.0 and CEF. Written from the format descriptions, independently of the encoders,
//! so tests can check that encoded events parse back to the same fields.

/// An RFC 5424 message split into its header fields and MSG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syslog5424 {
    /// PRI (facility × 8 + severity).
    pub pri: u16,
    /// TIMESTAMP as written.
    pub timestamp: String,
    /// HOSTNAME.
    pub hostname: String,
    /// APP-NAME.
    pub app_name: String,
    /// PROCID.
    pub procid: String,
    /// MSGID.
    pub msgid: String,
    /// STRUCTURED-DATA (`-` when nil).
    pub structured_data: String,
    /// MSG.
    pub msg: String,
}

/// Parses `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG` (structured data must be `-`).
pub fn parse_rfc5424(line: &str) -> Result<Syslog5424, String> {
    let rest = line
        .strip_prefix('<')
        .ok_or_else(|| format!("no <PRI> in {line:.80?}"))?;
    let (pri, rest) = rest
        .split_once(">1 ")
        .ok_or_else(|| format!("no `>1 ` after PRI in {line:.80?}"))?;
    let pri: u16 = pri.parse().map_err(|_| format!("bad PRI {pri:?}"))?;
    let mut parts = rest.splitn(7, ' ');
    let mut next = |what: &str| {
        parts
            .next()
            .map(str::to_string)
            .ok_or_else(|| format!("missing {what} in {line:.80?}"))
    };
    let timestamp = next("TIMESTAMP")?;
    let hostname = next("HOSTNAME")?;
    let app_name = next("APP-NAME")?;
    let procid = next("PROCID")?;
    let msgid = next("MSGID")?;
    let structured_data = next("STRUCTURED-DATA")?;
    if structured_data != "-" {
        return Err(format!(
            "structured data {structured_data:?} is not supported here"
        ));
    }
    let msg = next("MSG").unwrap_or_default();
    Ok(Syslog5424 {
        pri,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        msg,
    })
}

/// A parsed LEEF event.
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
    /// EventID.
    pub event_id: String,
    /// Attribute delimiter (tab for LEEF 1.0).
    pub delimiter: char,
    /// Attributes in order.
    pub attributes: Vec<(String, String)>,
}

impl Leef {
    /// The value of attribute `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `n` header fields separated by `|` (with `\|` and `\\` escapes); returns them and the
/// rest of the text after the n-th `|`.
fn header_fields(text: &str, n: usize) -> Result<(Vec<String>, &str), String> {
    let mut fields = Vec::with_capacity(n);
    let mut current = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
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
                if fields.len() == n {
                    return Ok((fields, &text[index + 1..]));
                }
            }
            other => current.push(other),
        }
    }
    Err(format!(
        "expected {n} header fields separated by | in {text:.120?}"
    ))
}

/// Parses a LEEF 1.0 or 2.0 event (the text starting at `LEEF:`).
pub fn parse_leef(text: &str) -> Result<Leef, String> {
    let body = text
        .strip_prefix("LEEF:")
        .ok_or_else(|| format!("no LEEF: prefix in {text:.80?}"))?;
    let version = body.split('|').next().unwrap_or_default().to_string();
    // IBM's LEEF guide defines no header escaping: a field is everything between two pipes.
    let count = match version.as_str() {
        "1.0" => 5,
        "2.0" => 6,
        other => return Err(format!("unknown LEEF version {other:?}")),
    };
    let mut split = body.splitn(count + 1, '|');
    let fields: Vec<String> = split.by_ref().take(count).map(str::to_string).collect();
    let rest = split
        .next()
        .ok_or_else(|| format!("expected {count} header fields separated by | in {text:.120?}"))?;
    let delimiter = if version == "1.0" {
        '\t'
    } else {
        let field = &fields[5];
        let hex = field.strip_prefix("0x").or_else(|| field.strip_prefix('x'));
        match hex {
            Some(hex) if !hex.is_empty() => u8::from_str_radix(hex, 16)
                .map(char::from)
                .map_err(|_| format!("bad hex delimiter {field:?}"))?,
            _ => {
                let mut chars = field.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => c,
                    (None, _) => '\t',
                    _ => return Err(format!("delimiter {field:?} is not one character")),
                }
            }
        }
    };
    let mut attributes = Vec::new();
    if !rest.is_empty() {
        for pair in rest.split(delimiter) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("attribute {pair:.80?} has no ="))?;
            attributes.push((key.to_string(), value.to_string()));
        }
    }
    Ok(Leef {
        version,
        vendor: fields[1].clone(),
        product: fields[2].clone(),
        product_version: fields[3].clone(),
        event_id: fields[4].clone(),
        delimiter,
        attributes,
    })
}

/// A parsed CEF event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cef {
    /// CEF version (`0`).
    pub version: String,
    /// Vendor, Product, Version, SignatureID, Name, Severity (unescaped).
    pub header: Vec<String>,
    /// Extension pairs in order (unescaped).
    pub extension: Vec<(String, String)>,
}

impl Cef {
    /// The value of extension key `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extension
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn unescape_extension(raw: &str) -> String {
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

/// Parses a CEF event (the text starting at `CEF:`).
pub fn parse_cef(text: &str) -> Result<Cef, String> {
    let body = text
        .strip_prefix("CEF:")
        .ok_or_else(|| format!("no CEF: prefix in {text:.80?}"))?;
    let (mut fields, rest) = header_fields(body, 7)?;
    let version = fields.remove(0);
    // Walk the extension: an unescaped `=` ends a key, which is the last space-separated word
    // before it; the text before that word (minus one separating space) is the previous value.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut raw = String::new();
    let mut key: Option<String> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                raw.push('\\');
                if let Some(next) = chars.next() {
                    raw.push(next);
                }
            }
            '=' => {
                let (value, new_key) = match raw.rfind(' ') {
                    Some(space) => (raw[..space].to_string(), raw[space + 1..].to_string()),
                    None => (String::new(), raw.clone()),
                };
                match key.take() {
                    Some(previous) => pairs.push((previous, unescape_extension(&value))),
                    None if !value.is_empty() => {
                        return Err(format!("text {value:?} before the first key"));
                    }
                    None => {}
                }
                if new_key.is_empty() {
                    return Err(format!("empty key in {rest:.120?}"));
                }
                key = Some(new_key);
                raw.clear();
            }
            other => raw.push(other),
        }
    }
    if let Some(last) = key {
        pairs.push((last, unescape_extension(&raw)));
    } else if !raw.trim().is_empty() {
        return Err(format!("extension {raw:.80?} has no key=value"));
    }
    Ok(Cef {
        version,
        header: fields,
        extension: pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_examples() {
        let line = "<134>1 2024-06-10T06:13:20.123Z sensor-1 acme-edr 4711 - - LEEF:2.0|Acme|EDR|3.1|MalwareBlocked|^|devTime=Jun 10 2024 06:13:20^sev=8^cat=Malware^src=10.0.0.5";
        let syslog = parse_rfc5424(line).unwrap();
        assert_eq!(syslog.pri, 134);
        assert_eq!(syslog.hostname, "sensor-1");
        let leef = parse_leef(&syslog.msg).unwrap();
        assert_eq!(leef.event_id, "MalwareBlocked");
        assert_eq!(leef.delimiter, '^');
        assert_eq!(leef.get("devTime"), Some("Jun 10 2024 06:13:20"));
        assert_eq!(leef.get("src"), Some("10.0.0.5"));
        let tab = parse_leef("LEEF:1.0|V|P|1|E|a=1\tb=x=y").unwrap();
        assert_eq!(tab.get("b"), Some("x=y"));
        // IBM defines no escaping in the LEEF header: a backslash is an ordinary character.
        let hex = parse_leef("LEEF:2.0|V\\x|P|1|E|x09|a=1\tb=2").unwrap();
        assert_eq!(hex.vendor, "V\\x");
        assert_eq!(hex.delimiter, '\t');
        let cef = parse_cef(
            r"CEF:0|Ven\|dor|P|1.0|100|worm stopped|10|src=10.0.0.1 msg=a b\=c\\ d\n act=blocked",
        )
        .unwrap();
        assert_eq!(cef.header[0], "Ven|dor");
        assert_eq!(cef.get("msg"), Some("a b=c\\ d\n"));
        assert_eq!(cef.get("act"), Some("blocked"));
        assert!(parse_cef("CEF:0|a|b|c").is_err());
    }
}
