//! Webhook signature schemes: HMAC-SHA256 over the exact body bytes as received, compared in
//! constant time, with several secrets during rotation (see siem-protocols §7).

use super::config::VerifyConfig;
use axum::http::{HeaderMap, HeaderName};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use siemrelay_core::ConfigIssue;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Default signature header of the `github` scheme.
pub const GITHUB_HEADER: &str = "x-hub-signature-256";
const STRIPE_HEADER: &str = "stripe-signature";
const SLACK_TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
const SLACK_SIGNATURE_HEADER: &str = "x-slack-signature";
const STANDARD_ID_HEADER: &str = "webhook-id";
const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";
/// Default signature header of the `timestamped` scheme (siemrelay's webhook exporter).
pub const TIMESTAMPED_HEADER: &str = "x-siemrelay-signature";
/// Default timestamp header of the `timestamped` scheme.
pub const TIMESTAMPED_TIMESTAMP_HEADER: &str = "x-siemrelay-timestamp";

/// A supported signature scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// `<header>: sha256=<hex>` or bare hex of HMAC-SHA256(secret, body).
    HmacSha256,
    /// `X-Hub-Signature-256: sha256=<hex>` (header configurable).
    Github,
    /// `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]` over `"<t>.<body>"`.
    Stripe,
    /// `X-Slack-Request-Timestamp` + `X-Slack-Signature: v0=<hex>` over `"v0:<ts>:<body>"`.
    Slack,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> …` over
    /// `"<id>.<ts>.<body>"`, with a base64 (`whsec_…`) secret.
    StandardWebhooks,
    /// `X-Siemrelay-Signature: sha256=<hex>` over `"<ts>.<body>"` with the timestamp in
    /// `X-Siemrelay-Timestamp` (both headers configurable): siemrelay's webhook exporter with
    /// `signing.scheme: timestamped`.
    Timestamped,
}

impl Scheme {
    /// The scheme's name as written in config and in `verified_by`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::HmacSha256 => "hmac_sha256",
            Scheme::Github => "github",
            Scheme::Stripe => "stripe",
            Scheme::Slack => "slack",
            Scheme::StandardWebhooks => "standard_webhooks",
            Scheme::Timestamped => "timestamped",
        }
    }

    /// True for schemes that sign a timestamp and so reject replays.
    pub fn is_timestamped(self) -> bool {
        matches!(
            self,
            Scheme::Stripe | Scheme::Slack | Scheme::StandardWebhooks | Scheme::Timestamped
        )
    }
}

/// Which check of a signed request failed. Messages never contain a secret or expected MAC.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    /// A header the scheme needs is absent.
    #[error("signature header {0} is missing")]
    MissingHeader(String),
    /// A header is present but cannot be read.
    #[error("signature header {header} is malformed: {reason}")]
    MalformedHeader {
        /// The header at fault.
        header: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signature matches none of the configured secrets.
    #[error("signature does not match any configured secret")]
    NoMatch,
    /// The signed timestamp is too far from now (a replay or a wrong clock).
    #[error("signed timestamp is {skew_secs}s away from now; tolerance is {tolerance_secs}s")]
    OutsideTolerance {
        /// Distance between the signed timestamp and now.
        skew_secs: u64,
        /// The configured tolerance.
        tolerance_secs: u64,
    },
    /// The same signed request was already accepted within the tolerance window.
    #[error("this signed request was already received; a replay is refused")]
    Replayed,
}

impl VerifyFailure {
    /// Metric label for the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyFailure::MissingHeader(_) => "missing_header",
            VerifyFailure::MalformedHeader { .. } => "malformed_header",
            VerifyFailure::NoMatch => "no_match",
            VerifyFailure::OutsideTolerance { .. } => "outside_tolerance",
            VerifyFailure::Replayed => "replay",
        }
    }
}

/// A request whose signature matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The scheme that verified it.
    pub scheme: Scheme,
    /// Index into `verify.secrets` of the secret that matched.
    pub secret_index: usize,
}

/// A ready-to-use verifier: header name parsed and secrets decoded once, at build time.
pub struct Verifier {
    scheme: Scheme,
    /// The header carrying the signature (configurable for `hmac_sha256`, `github` and
    /// `timestamped` only).
    header: HeaderName,
    /// The header carrying the signed timestamp (`timestamped` only; configurable).
    timestamp_header: HeaderName,
    keys: Vec<Vec<u8>>,
    tolerance: Duration,
    /// Signed requests accepted within the tolerance window (timestamped schemes only).
    seen: Mutex<Seen>,
}

/// The MACs of signed requests accepted while their signed timestamp is within the tolerance
/// window: a request carrying one of them again is a replay. Entries leave once their
/// timestamp is outside the window (such a request is refused by the time check anyway), so
/// memory holds the window's entries only.
#[derive(Default)]
struct Seen {
    /// First 16 bytes of the MAC → the Unix second after which it may be forgotten.
    expires: HashMap<[u8; 16], i64>,
    /// When the next sweep of expired entries is due.
    next_sweep: i64,
}

impl Seen {
    /// Records `tag`, or says it was seen. Expired entries are swept at most once a second.
    fn first_time(&mut self, tag: [u8; 16], expires: i64, now: i64) -> bool {
        if now >= self.next_sweep {
            self.expires.retain(|_, until| *until >= now);
            self.next_sweep = now.saturating_add(1);
        }
        match self.expires.get(&tag) {
            Some(until) if *until >= now => false,
            _ => {
                self.expires.insert(tag, expires);
                true
            }
        }
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("scheme", &self.scheme)
            .field("header", &self.header)
            .field("secrets", &self.keys.len())
            .finish()
    }
}

impl Verifier {
    /// Checks the `verify` block and prepares the verifier; issues are keyed `verify.<key>`.
    pub fn from_config(config: &VerifyConfig) -> Result<Verifier, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let scheme = config.scheme;
        let header = match (scheme, config.header.as_deref()) {
            (Scheme::HmacSha256 | Scheme::Github | Scheme::Timestamped, Some(text)) => {
                HeaderName::from_bytes(text.trim().as_bytes()).map_err(|_| {
                    ConfigIssue::new(
                        "verify.header",
                        format!("{text:?} is not a valid HTTP header name"),
                    )
                })
            }
            (Scheme::HmacSha256, None) => Err(ConfigIssue::new(
                "verify.header",
                "scheme hmac_sha256 needs the header that carries the signature",
            )),
            (Scheme::Github, None) => Ok(HeaderName::from_static(GITHUB_HEADER)),
            (Scheme::Timestamped, None) => Ok(HeaderName::from_static(TIMESTAMPED_HEADER)),
            (_, Some(_)) => Err(ConfigIssue::new(
                "verify.header",
                format!(
                    "scheme {} uses fixed headers; header applies only to hmac_sha256, github and timestamped",
                    scheme.name()
                ),
            )),
            (Scheme::Stripe, None) => Ok(HeaderName::from_static(STRIPE_HEADER)),
            (Scheme::Slack, None) => Ok(HeaderName::from_static(SLACK_SIGNATURE_HEADER)),
            (Scheme::StandardWebhooks, None) => {
                Ok(HeaderName::from_static(STANDARD_SIGNATURE_HEADER))
            }
        }
        .unwrap_or_else(|issue| {
            issues.push(issue);
            HeaderName::from_static(GITHUB_HEADER)
        });
        let timestamp_header = match (scheme, config.timestamp_header.as_deref()) {
            (Scheme::Timestamped, Some(text)) => HeaderName::from_bytes(text.trim().as_bytes())
                .map_err(|_| {
                    ConfigIssue::new(
                        "verify.timestamp_header",
                        format!("{text:?} is not a valid HTTP header name"),
                    )
                }),
            (_, Some(_)) => Err(ConfigIssue::new(
                "verify.timestamp_header",
                format!(
                    "scheme {} uses fixed headers; timestamp_header applies only to timestamped",
                    scheme.name()
                ),
            )),
            (_, None) => Ok(HeaderName::from_static(TIMESTAMPED_TIMESTAMP_HEADER)),
        }
        .unwrap_or_else(|issue| {
            issues.push(issue);
            HeaderName::from_static(TIMESTAMPED_TIMESTAMP_HEADER)
        });
        if config.secrets.is_empty() {
            issues.push(ConfigIssue::new(
                "verify.secrets",
                "at least one secret is needed",
            ));
        }
        let mut keys = Vec::with_capacity(config.secrets.len());
        for (index, secret) in config.secrets.iter().enumerate() {
            match signing_key(scheme, secret.expose()) {
                Some(key) => keys.push(key),
                None => issues.push(ConfigIssue::new(
                    format!("verify.secrets[{index}]"),
                    "not valid base64; standard_webhooks secrets are whsec_<base64>",
                )),
            }
        }
        match config.tolerance {
            Some(_) if !scheme.is_timestamped() => issues.push(ConfigIssue::new(
                "verify.tolerance",
                format!(
                    "scheme {} signs no timestamp; tolerance applies only to stripe, slack, standard_webhooks and timestamped",
                    scheme.name()
                ),
            )),
            Some(tolerance) if tolerance.0.is_zero() => issues.push(ConfigIssue::new(
                "verify.tolerance",
                "tolerance must be greater than 0",
            )),
            _ => {}
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Verifier {
            scheme,
            header,
            timestamp_header,
            keys,
            tolerance: config.tolerance_or_default(),
            seen: Mutex::new(Seen::default()),
        })
    }

    /// Verifies `body` (exact bytes as received) against the request's headers at `now_unix`.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Verified, VerifyFailure> {
        let secret_index = match self.scheme {
            Scheme::HmacSha256 => {
                let value = header_text(headers, self.header.as_str())?;
                let hex_part = value.strip_prefix("sha256=").unwrap_or(value);
                let signature = decode_hex(self.header.as_str(), hex_part)?;
                self.matching_key(&[body], &[signature])
                    .map(|(index, _)| index)
            }
            Scheme::Github => {
                let value = header_text(headers, self.header.as_str())?;
                let hex_part = value
                    .strip_prefix("sha256=")
                    .ok_or_else(|| malformed(self.header.as_str(), "expected sha256=<hex>"))?;
                let signature = decode_hex(self.header.as_str(), hex_part)?;
                self.matching_key(&[body], &[signature])
                    .map(|(index, _)| index)
            }
            Scheme::Stripe => {
                let value = header_text(headers, STRIPE_HEADER)?;
                let (timestamp, signatures) = parse_stripe(value)?;
                let index = self.matching_key(&[timestamp.as_bytes(), b".", body], &signatures);
                self.check_time(index, timestamp, STRIPE_HEADER, now_unix)?
            }
            Scheme::Slack => {
                let timestamp = header_text(headers, SLACK_TIMESTAMP_HEADER)?;
                let value = header_text(headers, SLACK_SIGNATURE_HEADER)?;
                let hex_part = value
                    .strip_prefix("v0=")
                    .ok_or_else(|| malformed(SLACK_SIGNATURE_HEADER, "expected v0=<hex>"))?;
                let signature = decode_hex(SLACK_SIGNATURE_HEADER, hex_part)?;
                let signed = [b"v0:", timestamp.as_bytes(), b":", body];
                let index = self.matching_key(&signed, &[signature]);
                self.check_time(index, timestamp, SLACK_TIMESTAMP_HEADER, now_unix)?
            }
            Scheme::StandardWebhooks => {
                let id = header_text(headers, STANDARD_ID_HEADER)?;
                let timestamp = header_text(headers, STANDARD_TIMESTAMP_HEADER)?;
                let value = header_text(headers, STANDARD_SIGNATURE_HEADER)?;
                let signatures = parse_standard(value)?;
                let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
                let index = self.matching_key(&signed, &signatures);
                self.check_time(index, timestamp, STANDARD_TIMESTAMP_HEADER, now_unix)?
            }
            Scheme::Timestamped => {
                let ts_header = self.timestamp_header.as_str();
                let timestamp = header_text(headers, ts_header)?;
                let value = header_text(headers, self.header.as_str())?;
                let hex_part = value
                    .strip_prefix("sha256=")
                    .ok_or_else(|| malformed(self.header.as_str(), "expected sha256=<hex>"))?;
                let signature = decode_hex(self.header.as_str(), hex_part)?;
                let signed = [timestamp.as_bytes(), b".", body];
                let index = self.matching_key(&signed, &[signature]);
                self.check_time(index, timestamp, ts_header, now_unix)?
            }
        };
        secret_index
            .map(|secret_index| Verified {
                scheme: self.scheme,
                secret_index,
            })
            .ok_or(VerifyFailure::NoMatch)
    }

    /// Index of the first secret whose MAC over `parts` equals one of `signatures`, with the
    /// MAC's first 16 bytes (what identifies the signed request for replay checks).
    fn matching_key(&self, parts: &[&[u8]], signatures: &[Vec<u8>]) -> Option<(usize, [u8; 16])> {
        self.keys.iter().enumerate().find_map(|(index, key)| {
            let mut mac = HmacSha256::new_from_slice(key).ok()?;
            for part in parts {
                mac.update(part);
            }
            let tag = mac.finalize().into_bytes();
            let matched = signatures
                .iter()
                .any(|signature| bool::from(tag.as_slice().ct_eq(signature)));
            let mut id = [0u8; 16];
            id.copy_from_slice(&tag[..16]);
            matched.then_some((index, id))
        })
    }

    /// For a matched signature, rejects a signed timestamp outside the tolerance, then a
    /// request already accepted within the window (a replay).
    fn check_time(
        &self,
        matched: Option<(usize, [u8; 16])>,
        timestamp: &str,
        header: &str,
        now_unix: i64,
    ) -> Result<Option<usize>, VerifyFailure> {
        let signed: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| malformed(header, "timestamp is not a whole number of Unix seconds"))?;
        let Some((index, tag)) = matched else {
            return Ok(None);
        };
        let skew_secs = signed.abs_diff(now_unix);
        let tolerance_secs = self.tolerance.as_secs();
        if skew_secs > tolerance_secs {
            return Err(VerifyFailure::OutsideTolerance {
                skew_secs,
                tolerance_secs,
            });
        }
        let expires = signed.saturating_add_unsigned(tolerance_secs);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.first_time(tag, expires, now_unix) {
            return Err(VerifyFailure::Replayed);
        }
        Ok(Some(index))
    }

    /// Signed requests remembered for replay checks (for tests and metrics).
    pub fn remembered(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expires
            .len()
    }
}

/// The HMAC key for a configured secret: the secret's bytes, or for `standard_webhooks` the
/// base64-decoded part after an optional `whsec_` prefix.
fn signing_key(scheme: Scheme, secret: &str) -> Option<Vec<u8>> {
    match scheme {
        Scheme::StandardWebhooks => {
            let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
            BASE64.decode(encoded.trim()).ok()
        }
        _ => Some(secret.as_bytes().to_vec()),
    }
}

fn malformed(header: &str, reason: &'static str) -> VerifyFailure {
    VerifyFailure::MalformedHeader {
        header: header.to_string(),
        reason,
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, VerifyFailure> {
    let value = headers
        .get(name)
        .ok_or_else(|| VerifyFailure::MissingHeader(name.to_string()))?;
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| malformed(name, "not visible ASCII"))
}

fn decode_hex(header: &str, text: &str) -> Result<Vec<u8>, VerifyFailure> {
    hex::decode(text.trim()).map_err(|_| malformed(header, "signature is not hex"))
}

/// `t=<unix>,v1=<hex>[,v1=<hex>…]`; other keys (`v0`) are ignored.
fn parse_stripe(value: &str) -> Result<(&str, Vec<Vec<u8>>), VerifyFailure> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        let Some((key, text)) = item.split_once('=') else {
            return Err(malformed(STRIPE_HEADER, "expected key=value items"));
        };
        match key.trim() {
            "t" => timestamp = Some(text.trim()),
            "v1" => signatures.push(decode_hex(STRIPE_HEADER, text)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| malformed(STRIPE_HEADER, "no t= timestamp"))?;
    if signatures.is_empty() {
        return Err(malformed(STRIPE_HEADER, "no v1= signature"));
    }
    Ok((timestamp, signatures))
}

/// Space-separated `v1,<base64>` entries; other versions (`v1a,` ed25519) are ignored.
fn parse_standard(value: &str) -> Result<Vec<Vec<u8>>, VerifyFailure> {
    let signatures: Vec<Vec<u8>> = value
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .collect();
    if signatures.is_empty() {
        return Err(malformed(
            STANDARD_SIGNATURE_HEADER,
            "no v1,<base64> signature",
        ));
    }
    Ok(signatures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;
    use siemrelay_core::config_types::Secret;

    const NOW: i64 = 1_763_629_200;

    fn verifier(scheme: Scheme, header: Option<&str>, secrets: &[&str]) -> Verifier {
        let config = VerifyConfig {
            scheme,
            header: header.map(str::to_string),
            timestamp_header: None,
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            tolerance: None,
        };
        Verifier::from_config(&config).unwrap()
    }

    fn mac_hex(key: &[u8], parts: &[&[u8]]) -> String {
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        for part in parts {
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn hmac_accepts_prefixed_and_bare_hex_and_rotated_secrets() {
        let v = verifier(
            Scheme::HmacSha256,
            Some("X-Toktra-Signature"),
            &["new", "old"],
        );
        let body = b"{\"a\":1}";
        let sig = mac_hex(b"old", &[body]);
        for value in [format!("sha256={sig}"), sig.to_uppercase()] {
            let verified = v
                .verify(&headers(&[("x-toktra-signature", value)]), body, NOW)
                .unwrap();
            assert_eq!(verified.secret_index, 1);
        }
        let err = v
            .verify(&headers(&[("x-toktra-signature", sig)]), b"{\"a\":2}", NOW)
            .unwrap_err();
        assert_eq!(err, VerifyFailure::NoMatch);
    }

    #[test]
    fn github_requires_its_prefix() {
        let v = verifier(Scheme::Github, None, &["s"]);
        let sig = mac_hex(b"s", &[b"x"]);
        assert!(
            v.verify(
                &headers(&[(GITHUB_HEADER, format!("sha256={sig}"))]),
                b"x",
                NOW
            )
            .is_ok()
        );
        assert_eq!(
            v.verify(&headers(&[(GITHUB_HEADER, sig)]), b"x", NOW)
                .unwrap_err()
                .reason(),
            "malformed_header"
        );
        assert_eq!(
            v.verify(&HeaderMap::new(), b"x", NOW).unwrap_err(),
            VerifyFailure::MissingHeader(GITHUB_HEADER.into())
        );
    }

    #[test]
    fn stripe_matches_any_v1_and_rejects_stale_timestamps() {
        let v = verifier(Scheme::Stripe, None, &["whsec_abc"]);
        let t = NOW.to_string();
        let good = mac_hex(b"whsec_abc", &[t.as_bytes(), b".", b"body"]);
        let value = format!("t={t},v1={},v1={good},v0=00", "ab".repeat(32));
        assert!(
            v.verify(&headers(&[(STRIPE_HEADER, value.clone())]), b"body", NOW)
                .is_ok()
        );
        let err = v
            .verify(&headers(&[(STRIPE_HEADER, value)]), b"body", NOW + 301)
            .unwrap_err();
        assert_eq!(err.reason(), "outside_tolerance");
        let err = v
            .verify(
                &headers(&[(STRIPE_HEADER, format!("v1={good}"))]),
                b"body",
                NOW,
            )
            .unwrap_err();
        assert_eq!(err.reason(), "malformed_header");
    }

    #[test]
    fn slack_signs_version_timestamp_and_body() {
        let v = verifier(Scheme::Slack, None, &["s"]);
        let t = NOW.to_string();
        let sig = mac_hex(b"s", &[b"v0:", t.as_bytes(), b":", b"b"]);
        let h = headers(&[
            (SLACK_TIMESTAMP_HEADER, t.clone()),
            (SLACK_SIGNATURE_HEADER, format!("v0={sig}")),
        ]);
        assert!(v.verify(&h, b"b", NOW - 299).is_ok());
        assert_eq!(
            v.verify(&h, b"b", NOW - 301).unwrap_err().reason(),
            "outside_tolerance"
        );
        let h = headers(&[(SLACK_SIGNATURE_HEADER, format!("v0={sig}"))]);
        assert_eq!(
            v.verify(&h, b"b", NOW).unwrap_err(),
            VerifyFailure::MissingHeader(SLACK_TIMESTAMP_HEADER.into())
        );
    }

    #[test]
    fn standard_webhooks_decodes_secret_and_signature_list() {
        let key = b"0123456789abcdef01234567";
        let secret = format!("whsec_{}", BASE64.encode(key));
        let bare = BASE64.encode(b"another-secret-of-24-byt");
        let v = verifier(Scheme::StandardWebhooks, None, &[&bare, &secret]);
        let t = NOW.to_string();
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(format!("msg_1.{t}.body").as_bytes());
        let sig = BASE64.encode(mac.finalize().into_bytes());
        let h = headers(&[
            (STANDARD_ID_HEADER, "msg_1".into()),
            (STANDARD_TIMESTAMP_HEADER, t),
            (
                STANDARD_SIGNATURE_HEADER,
                format!("v1a,xyz v1,{} v1,{sig}", BASE64.encode([0u8; 32])),
            ),
        ]);
        assert_eq!(v.verify(&h, b"body", NOW).unwrap().secret_index, 1);
        assert_eq!(
            v.verify(&h, b"bodx", NOW).unwrap_err(),
            VerifyFailure::NoMatch
        );
    }

    #[test]
    fn timestamped_signs_timestamp_and_body_and_refuses_replays() {
        let v = verifier(Scheme::Timestamped, None, &["s"]);
        let t = NOW.to_string();
        let sig = mac_hex(b"s", &[t.as_bytes(), b".", b"b"]);
        let h = headers(&[
            (TIMESTAMPED_TIMESTAMP_HEADER, t.clone()),
            (TIMESTAMPED_HEADER, format!("sha256={sig}")),
        ]);
        assert_eq!(
            v.verify(&h, b"b", NOW - 301).unwrap_err().reason(),
            "outside_tolerance"
        );
        assert!(v.verify(&h, b"b", NOW + 299).is_ok());
        assert_eq!(
            v.verify(&h, b"b", NOW + 299).unwrap_err(),
            VerifyFailure::Replayed
        );
        // The body-only MAC of the `body` scheme does not pass.
        let body_only = headers(&[
            (TIMESTAMPED_TIMESTAMP_HEADER, t),
            (
                TIMESTAMPED_HEADER,
                format!("sha256={}", mac_hex(b"s", &[b"b"])),
            ),
        ]);
        assert_eq!(
            v.verify(&body_only, b"b", NOW).unwrap_err(),
            VerifyFailure::NoMatch
        );
        let h = headers(&[(TIMESTAMPED_HEADER, format!("sha256={sig}"))]);
        assert_eq!(
            v.verify(&h, b"b", NOW).unwrap_err(),
            VerifyFailure::MissingHeader(TIMESTAMPED_TIMESTAMP_HEADER.into())
        );
    }

    #[test]
    fn a_replay_within_the_window_is_refused_and_memory_holds_the_window_only() {
        let v = verifier(Scheme::Stripe, None, &["whsec_abc"]);
        let signed = |t: i64, body: &[u8]| {
            let ts = t.to_string();
            let mac = mac_hex(b"whsec_abc", &[ts.as_bytes(), b".", body]);
            headers(&[(STRIPE_HEADER, format!("t={ts},v1={mac}"))])
        };
        let h = signed(NOW, b"body");
        assert!(v.verify(&h, b"body", NOW).is_ok());
        assert_eq!(
            v.verify(&h, b"body", NOW + 10).unwrap_err(),
            VerifyFailure::Replayed
        );
        assert_eq!(VerifyFailure::Replayed.reason(), "replay");
        // Extra decoy signatures in the header do not make a replay new.
        let mac = mac_hex(b"whsec_abc", &[NOW.to_string().as_bytes(), b".", b"body"]);
        let decorated = headers(&[(
            STRIPE_HEADER,
            format!("t={NOW},v1={},v1={mac}", "00".repeat(32)),
        )]);
        assert_eq!(
            v.verify(&decorated, b"body", NOW + 20).unwrap_err(),
            VerifyFailure::Replayed
        );
        // The same body signed at another second is a new request.
        assert!(
            v.verify(&signed(NOW + 1, b"body"), b"body", NOW + 1)
                .is_ok()
        );
        for i in 0..100 {
            let body = format!("event {i}");
            assert!(
                v.verify(&signed(NOW + i, body.as_bytes()), body.as_bytes(), NOW + i)
                    .is_ok()
            );
        }
        assert_eq!(v.remembered(), 102);
        // Once the window has passed, old entries are forgotten.
        let later = NOW + 1000;
        assert!(v.verify(&signed(later, b"late"), b"late", later).is_ok());
        assert_eq!(v.remembered(), 1);
    }

    #[test]
    fn failure_messages_never_contain_the_expected_mac() {
        let v = verifier(Scheme::HmacSha256, Some("x-sig"), &["topsecret"]);
        let expected = mac_hex(b"topsecret", &[b"x"]);
        let err = v
            .verify(&headers(&[("x-sig", "00".repeat(32))]), b"x", NOW)
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains(&expected) && !err.contains("topsecret"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn verifiers_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            value in "\\PC{0,120}",
            timestamp in "[-0-9a-z ]{0,24}",
            now in any::<i64>(),
        ) {
            let schemes = [
                (Scheme::HmacSha256, Some("x-sig")),
                (Scheme::Github, None),
                (Scheme::Stripe, None),
                (Scheme::Slack, None),
                (Scheme::StandardWebhooks, None),
                (Scheme::Timestamped, None),
            ];
            let mut map = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&value) {
                for name in ["x-sig", GITHUB_HEADER, STRIPE_HEADER, SLACK_SIGNATURE_HEADER,
                             STANDARD_SIGNATURE_HEADER, STANDARD_ID_HEADER, TIMESTAMPED_HEADER] {
                    map.insert(name, v.clone());
                }
            }
            if let Ok(t) = HeaderValue::from_str(&timestamp) {
                map.insert(SLACK_TIMESTAMP_HEADER, t.clone());
                map.insert(STANDARD_TIMESTAMP_HEADER, t.clone());
                map.insert(TIMESTAMPED_TIMESTAMP_HEADER, t);
            }
            for (scheme, header) in schemes {
                let v = verifier(scheme, header, &["c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"]);
                // Arbitrary input must never verify by accident, nor panic.
                prop_assert!(v.verify(&map, &body, now).is_err());
            }
        }
    }
}
