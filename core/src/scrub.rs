//! The one secret scrubber: every log line, status/history entry, admin API answer and
//! dead-letter reason passes through [`scrub`] before it leaves the process.
//!
//! It replaces with `***`:
//! - each configured secret (values that came from `${env:…}` / `${file:…}` and every
//!   [`Secret`](crate::config_types::Secret)-typed key), in every form it can take on the way
//!   out: raw, JSON-escaped, Rust-`Debug`-escaped, URL-encoded (`%XX` upper and lower case, and
//!   `+` for spaces), base64 (standard and URL-safe alphabets, at any byte offset, so the
//!   password inside a basic-auth `user:pass` is caught too), and each line of a multi-line
//!   secret;
//! - the value of credential headers a SIEM echoes back (`Authorization`, `DD-API-KEY`,
//!   `X-API-Key`, …) in `Name: value`, `"Name": "value"`, `"Name": ["value"]` or `name=value`
//!   form, keeping an auth scheme word (`Bearer ***`).
//!
//! Only text that leaves (error messages, log lines) is scrubbed, never events: the delivery hot
//! path does not pay for it. With no secret configured a call costs one pass of a small
//! automaton over the text.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine;
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock, RwLock};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Secrets shorter than this are not scrubbed (they would blank out ordinary words).
pub const MIN_SECRET_LEN: usize = 4;

/// Shortest secret whose base64 forms are matched (shorter ones give too short a core).
const MIN_BASE64_LEN: usize = 6;

/// Header names whose echoed value is always masked (lowercase).
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "dd-api-key",
    "dd-application-key",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-amz-security-token",
    "x-splunk-token",
    "cookie",
];

/// A set of secrets and the automaton that finds all their forms.
#[derive(Debug, Default)]
pub struct Scrubber {
    secrets: Vec<String>,
    forms: Option<AhoCorasick>,
}

impl Scrubber {
    /// A scrubber for these secrets (shorter than [`MIN_SECRET_LEN`] ones are ignored).
    pub fn new<I, S>(secrets: I) -> Scrubber
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut scrubber = Scrubber::default();
        scrubber.extend(secrets);
        scrubber
    }

    /// Adds secrets; returns true if any was new.
    pub fn extend<I, S>(&mut self, secrets: I) -> bool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut added = false;
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.len() >= MIN_SECRET_LEN && !self.secrets.iter().any(|s| s == secret) {
                self.secrets.push(secret.to_string());
                added = true;
            }
        }
        if added {
            self.rebuild();
        }
        added
    }

    /// True when it knows no secret (header values are still masked).
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    fn rebuild(&mut self) {
        let mut forms: Vec<String> = Vec::new();
        for secret in &self.secrets {
            forms_of(secret, &mut forms);
        }
        forms.sort();
        forms.dedup();
        self.forms = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&forms)
            .ok();
    }

    /// `text` with every secret form and credential header value masked.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let masked = match &self.forms {
            Some(forms) if forms.is_match(text) => {
                let mut out = String::with_capacity(text.len());
                forms.replace_all_with(text, &mut out, |_, _, out| {
                    out.push_str(MASK);
                    true
                });
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(text),
        };
        match mask_credential_headers(&masked) {
            Some(text) => Cow::Owned(text),
            None => masked,
        }
    }
}

/// Every form `secret` can take in text that leaves the process.
fn forms_of(secret: &str, out: &mut Vec<String>) {
    let mut push = |form: String| {
        if form.len() >= MIN_SECRET_LEN {
            out.push(form);
        }
    };
    // Escaped once or twice: a Debug-printed reply inside a JSON log line is both.
    let once = [json_escaped(secret), debug_escaped(secret)];
    for escaped in &once {
        push(json_escaped(escaped));
        push(debug_escaped(escaped));
    }
    push(secret.to_string());
    once.into_iter().for_each(&mut push);
    push(percent_encode(secret, false, true));
    push(percent_encode(secret, false, false));
    push(percent_encode(secret, true, true));
    if secret.len() >= MIN_BASE64_LEN {
        for offset in 0..3 {
            let core = base64_core(secret.as_bytes(), offset);
            push(core.replace('+', "-").replace('/', "_"));
            push(core);
        }
    }
    // A line of a multi-line secret may be quoted alone (a PEM key, a file with comments).
    if secret.contains('\n') {
        for line in secret.lines() {
            let line = line.trim();
            if line.len() >= 8 {
                push(line.to_string());
            }
        }
    }
}

fn json_escaped(text: &str) -> String {
    let json = serde_json::to_string(text).unwrap_or_default();
    json.get(1..json.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string()
}

fn debug_escaped(text: &str) -> String {
    let debug = format!("{text:?}");
    debug[1..debug.len() - 1].to_string()
}

/// RFC 3986 percent-encoding of everything but unreserved characters; `plus` writes a space as
/// `+` (HTML forms).
fn percent_encode(text: &str, plus: bool, upper: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            b' ' if plus => out.push('+'),
            _ if upper => out.push_str(&format!("%{byte:02X}")),
            _ => out.push_str(&format!("%{byte:02x}")),
        }
    }
    out
}

/// The base64 characters that depend only on `secret`'s bytes when it sits at byte `offset`
/// (mod 3) of a longer encoded value (`user:` before a password, for instance).
fn base64_core(secret: &[u8], offset: usize) -> String {
    let mut bytes = vec![0u8; offset];
    bytes.extend_from_slice(secret);
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes);
    let first = (8 * offset).div_ceil(6);
    let last = (8 * (offset + secret.len())) / 6; // exclusive
    encoded
        .get(first..last.min(encoded.len()))
        .unwrap_or_default()
        .to_string()
}

fn header_names() -> &'static AhoCorasick {
    static NAMES: OnceLock<AhoCorasick> = OnceLock::new();
    NAMES.get_or_init(|| {
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(CREDENTIAL_HEADERS)
            .expect("static header names build an automaton")
    })
}

/// Masks the value after each credential header name; `None` when nothing was masked.
fn mask_credential_headers(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    for found in header_names().find_iter(text) {
        if found.start() < copied {
            continue;
        }
        let boundary_before = found.start() == 0 || !is_name_byte(bytes[found.start() - 1]);
        let boundary_after = bytes.get(found.end()).is_none_or(|b| !is_name_byte(*b));
        if !boundary_before || !boundary_after {
            continue;
        }
        let Some((start, end)) = value_span(bytes, found.end()) else {
            continue;
        };
        let buffer = out.get_or_insert_with(|| String::with_capacity(text.len()));
        buffer.push_str(&text[copied..start]);
        buffer.push_str(MASK);
        copied = end;
    }
    let mut buffer = out?;
    buffer.push_str(&text[copied..]);
    Some(buffer)
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// The span of the credential after a header name ending at `at`: the separator (`:` or `=`,
/// with quotes, spaces and `[` around it) must follow; an auth scheme word is kept.
fn value_span(bytes: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let skip = |at: &mut usize, set: &[u8]| {
        while *at < bytes.len() && set.contains(&bytes[*at]) {
            *at += 1;
        }
    };
    skip(&mut at, b"\"'\\ \t");
    if !matches!(bytes.get(at), Some(b':') | Some(b'=')) {
        return None;
    }
    at += 1;
    skip(&mut at, b" \t[");
    // An opening quote, possibly escaped (`\"` inside a Debug-printed string).
    let quoted = {
        let before = at;
        skip(&mut at, b"\\\"'");
        at > before
    };
    let stop: &[u8] = if quoted {
        b"\"'\\\r\n"
    } else {
        b" \t\"'`\\\r\n,;&}]"
    };
    let end_of = |from: usize| {
        let mut end = from;
        while end < bytes.len() && !stop.contains(&bytes[end]) {
            end += 1;
        }
        end
    };
    let mut start = at;
    let mut end = end_of(start);
    // `Bearer xyz`, `Splunk xyz`, `Basic xyz`: keep the scheme, mask what follows it.
    let word = &bytes[start..end];
    if let Some(space) = word.iter().position(|b| *b == b' ')
        && word[..space]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    {
        start += space + 1;
    } else if !quoted
        && end < bytes.len()
        && bytes[end] == b' '
        && word.iter().all(|b| b.is_ascii_alphabetic())
        && is_scheme(word)
    {
        start = end + 1;
        end = end_of(start);
    }
    // A placeholder in documentation or a usage message (`Bearer <token>`) is no credential.
    (end > start && bytes[start] != b'<').then_some((start, end))
}

fn is_scheme(word: &[u8]) -> bool {
    const SCHEMES: &[&str] = &[
        "bearer",
        "basic",
        "splunk",
        "token",
        "apikey",
        "sharedkey",
        "digest",
        "dsn",
    ];
    SCHEMES
        .iter()
        .any(|s| s.as_bytes().eq_ignore_ascii_case(word))
}

fn global() -> &'static RwLock<Arc<Scrubber>> {
    static GLOBAL: OnceLock<RwLock<Arc<Scrubber>>> = OnceLock::new();
    GLOBAL.get_or_init(|| RwLock::new(Arc::new(Scrubber::default())))
}

/// Adds secrets to the process-wide scrubber (a config that is now running). Secrets are never
/// forgotten: text about an exporter of an earlier config may still be logged.
pub fn remember<I, S>(secrets: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let secrets: Vec<String> = secrets
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect();
    let mut current = global().write().unwrap_or_else(|p| p.into_inner());
    let known = &current.secrets;
    if secrets
        .iter()
        .all(|s| s.len() < MIN_SECRET_LEN || known.contains(s))
    {
        return;
    }
    let mut next = Scrubber {
        secrets: current.secrets.clone(),
        forms: None,
    };
    next.extend(secrets);
    *current = Arc::new(next);
}

/// The process-wide scrubber.
pub fn current() -> Arc<Scrubber> {
    global().read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// `text` with every secret the process knows, and every credential header value, masked.
pub fn scrub(text: &str) -> Cow<'_, str> {
    current().scrub(text)
}

/// [`scrub`] into an owned string (for error messages kept in statuses and dead letters).
pub fn scrub_owned(text: String) -> String {
    match current().scrub(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(scrubbed) => scrubbed,
    }
}

thread_local! {
    static COLLECTING: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Runs `parse` and returns, with its result, every [`Secret`](crate::config_types::Secret)
/// deserialized on this thread meanwhile (the config loader's way to learn secret-typed keys).
pub fn collect_secrets<R>(parse: impl FnOnce() -> R) -> (R, Vec<String>) {
    let outer = COLLECTING.with(|c| c.borrow_mut().replace(Vec::new()));
    let result = parse();
    let collected = COLLECTING.with(|c| {
        let mine = c.borrow_mut().take().unwrap_or_default();
        if let Some(mut outer) = outer {
            outer.extend(mine.iter().cloned());
            *c.borrow_mut() = Some(outer);
        }
        mine
    });
    (result, collected)
}

/// Called by `Secret`'s deserializer: notes the value for [`collect_secrets`].
pub(crate) fn note_secret(value: &str) {
    COLLECTING.with(|c| {
        if let Some(list) = c.borrow_mut().as_mut() {
            list.push(value.to_string());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr\"et\\line1\nline-two: p@ss w/rd+=";

    fn clean(scrubber: &Scrubber, text: &str) -> String {
        scrubber.scrub(text).into_owned()
    }

    #[test]
    fn every_form_of_a_secret_is_masked() {
        let scrubber = Scrubber::new([SECRET]);
        let json = serde_json::to_string(SECRET).unwrap();
        let debug = format!("{SECRET:?}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{SECRET}"));
        let basic2 = base64::engine::general_purpose::STANDARD.encode(format!("us:{SECRET}"));
        let basic3 = base64::engine::general_purpose::STANDARD.encode(format!("u:{SECRET}"));
        let url = percent_encode(SECRET, false, true);
        let form = percent_encode(SECRET, true, true);
        let lower = percent_encode(SECRET, false, false);
        for (name, form) in [
            ("raw", SECRET.to_string()),
            ("json", json),
            ("debug", debug),
            ("base64", b64),
            ("base64url", b64url),
            ("basic", basic),
            ("basic2", basic2),
            ("basic3", basic3),
            ("url", url),
            ("form", form),
            ("lower", lower),
            ("line", "line-two: p@ss w/rd+=".to_string()),
        ] {
            let text = format!("error: the SIEM said <{form}> (end)");
            let out = clean(&scrubber, &text);
            assert!(out.contains(MASK), "{name}: {out}");
            assert!(out.starts_with("error: the SIEM said <"), "{name}: {out}");
            assert!(!out.contains(&form), "{name}: {out}");
            for needle in ["s3cr", "p@ss", "line1"] {
                assert!(!out.contains(needle), "{name} leaks {needle}: {out}");
            }
        }
    }

    #[test]
    fn echoed_credential_headers_are_masked_whatever_their_value() {
        let scrubber = Scrubber::default();
        let cases = [
            (
                "400: {\"headers\":{\"Authorization\":\"Splunk 1234-abcd\",\"Host\":\"x\"}}",
                "400: {\"headers\":{\"Authorization\":\"Splunk ***\",\"Host\":\"x\"}}",
            ),
            (
                "echo: DD-API-KEY: 0123456789abcdef\r\nContent-Type: x",
                "echo: DD-API-KEY: ***\r\nContent-Type: x",
            ),
            (
                "{\"x-api-key\": [\"k-999\"], \"a\": 1}",
                "{\"x-api-key\": [\"***\"], \"a\": 1}",
            ),
            (
                "reply \"authorization: Bearer abc.def\\r\\nhost: y\"",
                "reply \"authorization: Bearer ***\\r\\nhost: y\"",
            ),
            ("GET /?api-key=zzz&x=1", "GET /?api-key=***&x=1"),
            (
                "missing `Authorization: Bearer <token>`",
                "missing `Authorization: Bearer <token>`",
            ),
            (
                "missing Authorization header",
                "missing Authorization header",
            ),
            (
                "authorization_token_missing: nope",
                "authorization_token_missing: nope",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(clean(&scrubber, input), expected, "{input}");
        }
    }

    #[test]
    fn nothing_to_scrub_borrows_and_short_secrets_are_ignored() {
        let scrubber = Scrubber::new(["abc", "longer-secret"]);
        assert!(matches!(
            scrubber.scrub("an ordinary abc line"),
            Cow::Borrowed(_)
        ));
        assert_eq!(clean(&scrubber, "x longer-secret y"), format!("x {MASK} y"));
    }

    #[test]
    fn secrets_are_collected_while_parsing() {
        let (secret, collected) = collect_secrets(|| {
            serde_json::from_str::<crate::config_types::Secret>("\"tok-en-1\"").unwrap()
        });
        assert_eq!(secret.expose(), "tok-en-1");
        assert_eq!(collected, vec!["tok-en-1".to_string()]);
        let (_, none) = collect_secrets(|| ());
        assert!(none.is_empty());
    }
}
