//! How an HTTP exporter's requests prove who sends them, in one place for every exporter: a
//! static header (API keys, HEC tokens, basic auth), a bearer token fetched and refreshed from
//! an identity provider and dropped when the SIEM refuses it (Entra ID for Sentinel), or AWS
//! SigV4 with credentials from the AWS provider chain (CloudWatch Logs).
//!
//! [`HttpSink`](super::http::HttpSink) authorizes every request (event bodies, probes, the start
//! and setup calls) through the exporter's [`Authenticator`]; when an exporter classifies a reply
//! as [`Classified::Reauthenticate`](super::http::Classified::Reauthenticate), the sink
//! invalidates the credentials used and resends once with fresh ones.

pub mod aws_credentials;
pub mod entra_id;
pub mod sigv4;

pub use sigv4::SigV4;

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use siemrelay_core::config_types::Secret;

/// Which credentials authorized a request: given back to [`Authenticator::invalidate`] when the
/// SIEM refused them, so credentials fetched meanwhile by another request are kept.
pub type Generation = u64;

/// Why a request could not be authorized. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    /// What went wrong (no secrets).
    pub message: String,
    /// True when the identity provider refused the client (bad tenant, client id, secret):
    /// retrying will not help, the events are dead-lettered.
    pub refused: bool,
}

impl AuthError {
    /// A temporary failure (unreachable identity provider, no credentials yet).
    pub fn temporary(message: impl Into<String>) -> AuthError {
        AuthError {
            message: message.into(),
            refused: false,
        }
    }
}

/// Adds credentials to the requests of one HTTP exporter.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Authorizes `request` (its URL, headers and body final) and says with which credentials.
    async fn authorize(&self, request: &mut reqwest::Request) -> Result<Generation, AuthError>;

    /// Makes sure credentials are at hand before a send (fetching them if needed), so a send
    /// whose credentials cannot be had fails as a whole, before any request.
    async fn ready(&self) -> Result<(), AuthError> {
        Ok(())
    }

    /// The SIEM refused the credentials of `generation` (HTTP 401, an expired AWS token): drop
    /// them so the next request fetches fresh ones.
    async fn invalidate(&self, _generation: Generation) {}
}

/// No credentials (or credentials inside the URL or exporter headers).
pub struct NoAuth;

#[async_trait]
impl Authenticator for NoAuth {
    async fn authorize(&self, _request: &mut reqwest::Request) -> Result<Generation, AuthError> {
        Ok(0)
    }
}

/// One header with a fixed secret value: `Authorization: Splunk <token>`, `DD-API-KEY`,
/// `Authorization: ApiKey …` or `Basic …`. The value is marked sensitive (never logged).
pub struct StaticHeader {
    name: HeaderName,
    value: HeaderValue,
}

impl StaticHeader {
    /// `name: value`; fails when the value cannot be sent in a header (the message names the
    /// header, never the value).
    pub fn new(name: HeaderName, value: &str) -> Result<StaticHeader, AuthError> {
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            AuthError::temporary(format!(
                "the {name} value has characters not allowed in an HTTP header"
            ))
        })?;
        value.set_sensitive(true);
        Ok(StaticHeader { name, value })
    }

    /// `Authorization: <scheme> <secret>`.
    pub fn authorization(scheme: &str, secret: &Secret) -> Result<StaticHeader, AuthError> {
        StaticHeader::new(
            reqwest::header::AUTHORIZATION,
            &format!("{scheme} {}", secret.expose()),
        )
    }

    /// `Authorization: Basic base64(username:password)` (RFC 7617).
    pub fn basic(username: &str, password: &Secret) -> Result<StaticHeader, AuthError> {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{username}:{}", password.expose()));
        StaticHeader::new(reqwest::header::AUTHORIZATION, &format!("Basic {encoded}"))
    }
}

#[async_trait]
impl Authenticator for StaticHeader {
    async fn authorize(&self, request: &mut reqwest::Request) -> Result<Generation, AuthError> {
        request
            .headers_mut()
            .insert(self.name.clone(), self.value.clone());
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_headers_are_set_sensitive_and_basic_is_rfc_7617() {
        let auth = StaticHeader::basic("Aladdin", &Secret::new("open sesame")).unwrap();
        let mut request = reqwest::Request::new(
            reqwest::Method::POST,
            reqwest::Url::parse("http://127.0.0.1/").unwrap(),
        );
        auth.authorize(&mut request).await.unwrap();
        let value = &request.headers()[reqwest::header::AUTHORIZATION];
        assert_eq!(value, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(value.is_sensitive());
        let bad = StaticHeader::authorization("Splunk", &Secret::new("a\nb")).err();
        assert!(bad.is_some_and(|e| !e.message.contains("a\nb")));
    }
}
