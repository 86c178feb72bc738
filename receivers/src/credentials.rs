//! Credentials a sender presents to a drop-in receiver (Datadog's API keys, Elasticsearch's basic
//! and API-key auth), checked in constant time.
//!
//! Each configured secret is kept only as its SHA-256 digest; a presented value is hashed and
//! compared with every digest using `subtle`, and the loop never stops early, so neither the
//! position of a match nor the length of a key shows in the time taken.

use base64::Engine;
use sha2::{Digest, Sha256};
use siemrelay_core::config_types::Secret;
use subtle::ConstantTimeEq;

/// A set of accepted secrets, as digests.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    digests: Vec<[u8; 32]>,
}

impl KeySet {
    /// The set of these secrets' texts.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> KeySet {
        KeySet {
            digests: secrets
                .into_iter()
                .map(|secret| Sha256::digest(secret.as_bytes()).into())
                .collect(),
        }
    }

    /// The set of these config secrets.
    pub fn of(secrets: &[Secret]) -> KeySet {
        KeySet::new(secrets.iter().map(Secret::expose))
    }

    /// True when no secret is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// True when `presented` is one of the secrets (constant time in which one, and in the
    /// secrets' lengths).
    pub fn contains(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = subtle::Choice::from(0);
        for expected in &self.digests {
            found |= digest.ct_eq(expected);
        }
        found.into()
    }
}

/// The `user:password` of an `Authorization: Basic <base64>` value, or `None` when the value is
/// another scheme or not valid base64 / UTF-8 / `user:password`.
pub fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, encoded) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The credential of an `Authorization: <scheme> <credential>` value when its scheme is
/// `scheme` (compared case-insensitively).
pub fn scheme_credential<'a>(authorization: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, credential) = authorization.trim().split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| credential.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly_and_basic_auth_parses() {
        let keys = KeySet::new(["first-key", "second-key"]);
        assert!(keys.contains(b"second-key"));
        assert!(keys.contains(b"first-key"));
        assert!(!keys.contains(b"second-ke"));
        assert!(!keys.contains(b""));
        assert!(!KeySet::default().contains(b"x"));
        // "elastic:pass:word" — the password may hold a colon.
        assert_eq!(
            basic_credentials("Basic ZWxhc3RpYzpwYXNzOndvcmQ="),
            Some(("elastic".into(), "pass:word".into()))
        );
        assert_eq!(
            basic_credentials("basic ZWxhc3RpYzpwYXNzOndvcmQ=").map(|c| c.0),
            Some("elastic".into())
        );
        assert_eq!(basic_credentials("Bearer ZWxhc3RpYzpw"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Basic bm9jb2xvbg=="), None);
        assert_eq!(scheme_credential("ApiKey abc== ", "apikey"), Some("abc=="));
        assert_eq!(scheme_credential("Basic abc", "ApiKey"), None);
    }
}
