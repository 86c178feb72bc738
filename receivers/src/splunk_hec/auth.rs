//! Who sent a request, the way HEC tells: `Authorization: Splunk <token>`, basic auth with the
//! token as the password (any user name), or `?token=<token>` when `allow_query_token` is on.
//! Tokens are compared as SHA-256 digests in constant time, against every configured token
//! (no early exit), so neither a token's text nor its length leaks through timing.

use super::config::TokenConfig;
use super::reply::{self, HecStatus};
use crate::credentials;
use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token gives the events sent with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenDefaults {
    /// Index of events that name none.
    pub index: Option<String>,
    /// Source of events that name none.
    pub source: Option<String>,
    /// Sourcetype of events that name none.
    pub sourcetype: Option<String>,
    /// Indexes allowed (empty: any).
    pub allowed_indexes: Vec<String>,
}

impl TokenDefaults {
    /// True when `index` may be written with this token.
    pub fn allows(&self, index: Option<&str>) -> bool {
        match index {
            Some(index) => {
                self.allowed_indexes.is_empty() || self.allowed_indexes.iter().any(|i| i == index)
            }
            None => true,
        }
    }
}

/// The configured tokens, as digests.
pub struct Tokens {
    entries: Vec<([u8; 32], TokenDefaults)>,
    allow_query: bool,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.len())
    }
}

impl Tokens {
    /// Digests of the configured tokens.
    pub fn new(tokens: &[TokenConfig], allow_query: bool) -> Tokens {
        Tokens {
            entries: tokens
                .iter()
                .map(|t| {
                    (
                        Sha256::digest(t.token.expose().as_bytes()).into(),
                        TokenDefaults {
                            index: t.index.clone(),
                            source: t.source.clone(),
                            sourcetype: t.sourcetype.clone(),
                            allowed_indexes: t.allowed_indexes.clone(),
                        },
                    )
                })
                .collect(),
            allow_query,
        }
    }

    /// The defaults of the token the request presents, or the HEC status refusing it.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<&TokenDefaults, HecStatus> {
        let presented = match headers.get(header::AUTHORIZATION) {
            Some(value) => presented_in_header(value.as_bytes())?,
            None => match query_token {
                Some(_) if !self.allow_query => return Err(reply::QUERY_TOKEN_DISABLED),
                Some(token) => token.to_string(),
                None => return Err(reply::TOKEN_REQUIRED),
            },
        };
        if presented.is_empty() {
            return Err(reply::TOKEN_REQUIRED);
        }
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (i, (expected, _)) in self.entries.iter().enumerate() {
            if bool::from(digest.ct_eq(expected)) {
                found = Some(i);
            }
        }
        found
            .and_then(|i| self.entries.get(i))
            .map(|(_, defaults)| defaults)
            .ok_or(reply::INVALID_TOKEN)
    }
}

/// The token in an `Authorization` header value: `Splunk <token>` or `Basic base64(user:token)`.
fn presented_in_header(value: &[u8]) -> Result<String, HecStatus> {
    let text = std::str::from_utf8(value).map_err(|_| reply::INVALID_AUTHORIZATION)?;
    if let Some(token) = credentials::scheme_credential(text, "splunk") {
        return Ok(token.to_string());
    }
    credentials::basic_credentials(text)
        .map(|(_, password)| password)
        .ok_or(reply::INVALID_AUTHORIZATION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use base64::Engine;
    use siemrelay_core::config_types::Secret;

    fn tokens(allow_query: bool) -> Tokens {
        let config = |token: &str, index: Option<&str>| TokenConfig {
            token: Secret::new(token),
            index: index.map(str::to_string),
            source: None,
            sourcetype: None,
            allowed_indexes: vec![],
        };
        Tokens::new(
            &[config("tok-one", Some("main")), config("tok-two", None)],
            allow_query,
        )
    }

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn every_way_splunk_takes_a_token() {
        let t = tokens(true);
        let one = t.authenticate(&with_auth("Splunk tok-one"), None).unwrap();
        assert_eq!(one.index.as_deref(), Some("main"));
        let basic = base64::engine::general_purpose::STANDARD.encode("x:tok-two");
        let two = t
            .authenticate(&with_auth(&format!("Basic {basic}")), None)
            .unwrap();
        assert_eq!(two.index, None);
        assert!(t.authenticate(&HeaderMap::new(), Some("tok-two")).is_ok());
        // The header wins over the query string.
        assert_eq!(
            t.authenticate(&with_auth("Splunk nope"), Some("tok-one")),
            Err(reply::INVALID_TOKEN)
        );
    }

    #[test]
    fn refusals_carry_splunks_codes() {
        let t = tokens(false);
        let code = |headers: &HeaderMap, query: Option<&str>| {
            t.authenticate(headers, query).map(|_| ()).unwrap_err().code
        };
        assert_eq!(code(&HeaderMap::new(), None), 2);
        assert_eq!(code(&with_auth("tok-one"), None), 3);
        assert_eq!(code(&with_auth("Bearer tok-one"), None), 3);
        assert_eq!(code(&with_auth("Basic !!!"), None), 3);
        assert_eq!(code(&with_auth("Splunk tok-three"), None), 4);
        assert_eq!(code(&with_auth("Splunk tok-on"), None), 4);
        assert_eq!(code(&HeaderMap::new(), Some("tok-one")), 16);
    }
}
