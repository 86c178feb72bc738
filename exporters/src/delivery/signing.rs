//! The `signing.scheme`s of HTTP exporters: which bytes the HMAC-SHA256 covers and which
//! headers carry it.
//!
//! - `body` (default): `<header>: sha256=<hex of HMAC(secret, body)>` and
//!   `<timestamp_header>: <unix seconds>`. The timestamp is not signed, so this gives no replay
//!   protection; kept for receivers that already check it.
//! - `timestamped`: `<header>: sha256=<hex of HMAC(secret, "<ts>.<body>")>` and
//!   `<timestamp_header>: <ts>`; a receiver refuses a timestamp outside its window (siemrelay's
//!   webhook receiver: `verify.scheme: timestamped`).
//! - `standard_webhooks`: the Standard Webhooks specification (standardwebhooks.com):
//!   `webhook-id: msg_<hex>`, `webhook-timestamp: <ts>`,
//!   `webhook-signature: v1,<base64 of HMAC(key, "<id>.<ts>.<body>")>`, where the key is the
//!   base64-decoded secret after its `whsec_` prefix. The id is derived from the body (the first
//!   16 bytes of its SHA-256), so a retried request keeps its id, as the spec asks.
//!
//! `body` is the exact bytes sent (after compression); `ts` is the Unix time in seconds when the
//! request is sent (each retry is signed afresh).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use siemrelay_core::ConfigIssue;

/// Smallest decoded `standard_webhooks` secret: the spec asks for 24 to 64 random bytes.
pub const STANDARD_WEBHOOKS_MIN_KEY: usize = 24;

/// `signing.scheme`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningScheme {
    /// HMAC over the body only (default).
    #[default]
    Body,
    /// HMAC over `"<timestamp>.<body>"`, the timestamp in its own header.
    Timestamped,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks,
}

impl SigningScheme {
    /// The scheme's name as written in config.
    pub fn name(self) -> &'static str {
        match self {
            SigningScheme::Body => "body",
            SigningScheme::Timestamped => "timestamped",
            SigningScheme::StandardWebhooks => "standard_webhooks",
        }
    }
}

/// The HMAC key of a `standard_webhooks` secret: `whsec_<base64>` (or bare base64), decoded.
/// The error never contains the secret.
pub fn standard_webhooks_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    let key = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| {
            "is not base64: standard_webhooks secrets are whsec_<base64> (Standard Webhooks spec)"
                .to_string()
        })?;
    if key.len() < STANDARD_WEBHOOKS_MIN_KEY {
        return Err(format!(
            "decodes to {} bytes; the Standard Webhooks spec asks for 24 to 64 random bytes",
            key.len()
        ));
    }
    Ok(key)
}

/// Checks a `signing` block's scheme against its other keys (keys relative to the exporter).
pub fn validate(
    scheme: SigningScheme,
    secret: &str,
    header: &str,
    timestamp_header: &str,
    defaults: (&str, &str),
) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    if scheme == SigningScheme::StandardWebhooks {
        if let Err(message) = standard_webhooks_key(secret) {
            issues.push(ConfigIssue::new("signing.secret", message));
        }
        for (key, value, default) in [
            ("signing.header", header, defaults.0),
            ("signing.timestamp_header", timestamp_header, defaults.1),
        ] {
            if !value.eq_ignore_ascii_case(default) {
                issues.push(ConfigIssue::new(
                    key,
                    "scheme standard_webhooks uses the spec's fixed headers (webhook-id, \
                     webhook-timestamp, webhook-signature); remove this key",
                ));
            }
        }
    }
    if HeaderName::from_bytes(timestamp_header.as_bytes()).is_err() {
        issues.push(ConfigIssue::new(
            "signing.timestamp_header",
            format!("{timestamp_header:?} is not a valid header name"),
        ));
    }
    issues
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The `webhook-id` of a body: `msg_` and the hex of the first 16 bytes of its SHA-256.
pub fn message_id(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("msg_{}", hex::encode(&digest[..16]))
}

/// The headers that sign `body` sent at `now` (Unix seconds) under `scheme`. `header` and
/// `timestamp_header` are the configured names (unused by `standard_webhooks`).
pub fn signature_headers(
    scheme: SigningScheme,
    secret: &str,
    header: &str,
    timestamp_header: &str,
    body: &[u8],
    now: u64,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let ts = now.to_string();
    let pairs: Vec<(String, String)> = match scheme {
        SigningScheme::Body => vec![
            (
                header.to_string(),
                format!("sha256={}", hex::encode(hmac(secret.as_bytes(), &[body]))),
            ),
            (timestamp_header.to_string(), ts),
        ],
        SigningScheme::Timestamped => {
            let mac = hmac(secret.as_bytes(), &[ts.as_bytes(), b".", body]);
            vec![
                (header.to_string(), format!("sha256={}", hex::encode(mac))),
                (timestamp_header.to_string(), ts),
            ]
        }
        SigningScheme::StandardWebhooks => {
            let key = standard_webhooks_key(secret).map_err(|e| format!("signing.secret {e}"))?;
            let id = message_id(body);
            let mac = hmac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
            vec![
                ("webhook-id".into(), id),
                ("webhook-timestamp".into(), ts),
                (
                    "webhook-signature".into(),
                    format!("v1,{}", STANDARD.encode(mac)),
                ),
            ]
        }
    };
    pairs
        .into_iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a valid header name"))?;
            let value = HeaderValue::from_str(&value)
                .map_err(|_| format!("the {name} value is not a header value"))?;
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(headers: &[(HeaderName, HeaderValue)], name: &str) -> String {
        headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.to_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn body_scheme_signs_the_body_only() {
        // RFC 4231 test case 2.
        let h = signature_headers(
            SigningScheme::Body,
            "Jefe",
            "x-sig",
            "x-ts",
            b"what do ya want for nothing?",
            7,
        )
        .unwrap();
        assert_eq!(
            get(&h, "x-sig"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(get(&h, "x-ts"), "7");
    }

    #[test]
    fn timestamped_scheme_covers_the_timestamp() {
        let at = |now| {
            signature_headers(SigningScheme::Timestamped, "k", "x-sig", "x-ts", b"b", now).unwrap()
        };
        let expected = hex::encode(hmac(b"k", &[b"100.b"]));
        assert_eq!(get(&at(100), "x-sig"), format!("sha256={expected}"));
        assert_ne!(get(&at(100), "x-sig"), get(&at(101), "x-sig"));
    }

    #[test]
    fn standard_webhooks_secret_rules() {
        let key = [7u8; 32];
        let secret = format!("whsec_{}", STANDARD.encode(key));
        assert_eq!(standard_webhooks_key(&secret).unwrap(), key);
        assert_eq!(
            standard_webhooks_key(&STANDARD_NO_PAD.encode(key)).unwrap(),
            key
        );
        let err = standard_webhooks_key("whsec_not base64!").unwrap_err();
        assert!(!err.contains("not base64!"), "{err}");
        assert!(standard_webhooks_key(&STANDARD.encode([1u8; 8])).is_err());
        let h = signature_headers(SigningScheme::StandardWebhooks, &secret, "", "", b"body", 5)
            .unwrap();
        let id = get(&h, "webhook-id");
        assert_eq!(id, message_id(b"body"));
        let mac = hmac(&key, &[format!("{id}.5.body").as_bytes()]);
        assert_eq!(
            get(&h, "webhook-signature"),
            format!("v1,{}", STANDARD.encode(mac))
        );
    }
}
