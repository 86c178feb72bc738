//! Entra ID (Azure AD) access tokens for one scope, cached and refreshed before they expire,
//! from one of three sources:
//!
//! - a client secret: `POST {authority}/{tenant}/oauth2/v2.0/token` with
//!   `grant_type=client_credentials`, `client_id`, `client_secret`, `scope`;
//! - a federated token (workload identity, AKS): the same request with
//!   `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
//!   `client_assertion=<the token file>` instead of the secret (the file is read at every fetch:
//!   the kubelet rotates it);
//! - a managed identity: `GET` the Azure Instance Metadata Service
//!   (`http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`,
//!   header `Metadata: true`), or on App Service / Functions `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…`
//!   with `X-IDENTITY-HEADER: {IDENTITY_HEADER}`; `client_id` picks a user-assigned identity.
//!
//! Neither the secret, the assertion nor the token is ever logged or put in an error.

use crate::delivery::auth::{AuthError, Authenticator, Generation};
use async_trait::async_trait;
use siemrelay_core::config_types::Secret;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Longest time before expiry at which a token is refreshed.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

struct Cached {
    header: reqwest::header::HeaderValue,
    refresh_at: Instant,
    generation: u64,
}

/// The IMDS token endpoint of Azure VMs, VM scale sets and AKS nodes.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The `api-version` of IMDS identity requests.
pub const IMDS_API_VERSION: &str = "2018-02-01";
/// The `api-version` of App Service / Functions identity requests (`IDENTITY_ENDPOINT`).
pub const APP_SERVICE_API_VERSION: &str = "2019-08-01";
/// `client_assertion_type` of a federated token (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Where tokens come from.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// An app registration's client secret (client-credentials grant).
    ClientSecret {
        /// `{authority}/{tenant}/oauth2/v2.0/token`.
        url: String,
        /// Application (client) id.
        client_id: String,
        /// The secret.
        secret: Secret,
    },
    /// A federated token file (workload identity): client-credentials grant with a client
    /// assertion.
    ClientAssertion {
        /// `{authority}/{tenant}/oauth2/v2.0/token`.
        url: String,
        /// Application (client) id.
        client_id: String,
        /// The file holding the federated token (`AZURE_FEDERATED_TOKEN_FILE`).
        token_file: std::path::PathBuf,
    },
    /// A managed identity, from IMDS or the App Service identity endpoint.
    ManagedIdentity {
        /// The identity endpoint.
        endpoint: String,
        /// `X-IDENTITY-HEADER` value (App Service); `None` for IMDS (`Metadata: true`).
        identity_header: Option<Secret>,
        /// A user-assigned identity's client id (`None`: the system-assigned one).
        client_id: Option<String>,
    },
}

impl TokenSource {
    /// Where tokens are fetched, for errors and hints.
    pub fn url(&self) -> &str {
        match self {
            TokenSource::ClientSecret { url, .. } | TokenSource::ClientAssertion { url, .. } => url,
            TokenSource::ManagedIdentity { endpoint, .. } => endpoint,
        }
    }

    /// What kind of credential it is, for errors.
    fn describe(&self) -> &'static str {
        match self {
            TokenSource::ClientSecret { .. } => "Entra ID token request",
            TokenSource::ClientAssertion { .. } => "Entra ID token request (workload identity)",
            TokenSource::ManagedIdentity { .. } => "managed identity token request",
        }
    }
}

/// The `resource` of a managed-identity request for a v2 `scope`: the scope without its
/// `/.default` (`https://monitor.azure.com//.default` → `https://monitor.azure.com/`).
pub fn resource_of(scope: &str) -> &str {
    scope.strip_suffix(".default").map_or(scope, |r| {
        r.strip_suffix('/')
            .filter(|r| r.ends_with('/'))
            .unwrap_or(r)
    })
}

/// A cached bearer token for one credential and scope.
pub struct TokenCache {
    client: reqwest::Client,
    source: TokenSource,
    scope: String,
    state: Mutex<(Option<Cached>, u64)>,
}

impl TokenCache {
    /// A cache fetching from `url` (`<authority>/<tenant>/oauth2/v2.0/token`) with a client
    /// secret.
    pub fn new(
        client: reqwest::Client,
        url: String,
        client_id: &str,
        client_secret: Secret,
        scope: &str,
    ) -> TokenCache {
        TokenCache::from_source(
            client,
            TokenSource::ClientSecret {
                url,
                client_id: client_id.to_string(),
                secret: client_secret,
            },
            scope,
        )
    }

    /// A cache fetching tokens for `scope` from `source`.
    pub fn from_source(client: reqwest::Client, source: TokenSource, scope: &str) -> TokenCache {
        TokenCache {
            client,
            source,
            scope: scope.to_string(),
            state: Mutex::new((None, 0)),
        }
    }

    /// The `Authorization: Bearer …` value and its generation (for [`TokenCache::invalidate`]).
    pub async fn bearer(&self) -> Result<(reqwest::header::HeaderValue, u64), AuthError> {
        let mut state = self.state.lock().await;
        if let Some(cached) = state.0.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok((cached.header.clone(), cached.generation));
        }
        let (token, lifetime) = self.fetch().await?;
        let mut header = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| AuthError {
                message: "Entra ID returned an access token that is not a valid header value"
                    .into(),
                refused: false,
            })?;
        header.set_sensitive(true);
        state.1 += 1;
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let generation = state.1;
        state.0 = Some(Cached {
            header: header.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
            generation,
        });
        Ok((header, generation))
    }

    /// Drops the token of `generation` (the service refused it) so the next call fetches anew.
    pub async fn drop_token(&self, generation: Generation) {
        let mut state = self.state.lock().await;
        if state.0.as_ref().is_some_and(|c| c.generation == generation) {
            state.0 = None;
        }
    }

    /// The token request for the source.
    fn token_request(&self) -> Result<reqwest::RequestBuilder, AuthError> {
        Ok(match &self.source {
            TokenSource::ClientSecret {
                url,
                client_id,
                secret,
            } => self.client.post(url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", secret.expose()),
                ("scope", self.scope.as_str()),
            ]),
            TokenSource::ClientAssertion {
                url,
                client_id,
                token_file,
            } => {
                let assertion = std::fs::read_to_string(token_file).map_err(|e| {
                    AuthError::temporary(format!(
                        "cannot read the federated token file {}: {e}",
                        token_file.display()
                    ))
                })?;
                self.client.post(url).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", assertion.trim()),
                    ("scope", self.scope.as_str()),
                ])
            }
            TokenSource::ManagedIdentity {
                endpoint,
                identity_header,
                client_id,
            } => {
                let api_version = if identity_header.is_some() {
                    APP_SERVICE_API_VERSION
                } else {
                    IMDS_API_VERSION
                };
                let mut query = vec![
                    ("api-version", api_version),
                    ("resource", resource_of(&self.scope)),
                ];
                if let Some(id) = client_id {
                    query.push(("client_id", id.as_str()));
                }
                let request = self.client.get(endpoint).query(&query);
                match identity_header {
                    Some(header) => request.header("X-IDENTITY-HEADER", header.expose()),
                    None => request.header("Metadata", "true"),
                }
            }
        })
    }

    async fn fetch(&self) -> Result<(String, Duration), AuthError> {
        let what = self.source.describe();
        let response = self.token_request()?.send().await.map_err(|e| AuthError {
            message: format!(
                "{what} to {} failed: {}",
                self.source.url(),
                crate::delivery::http::error_chain(&e)
            ),
            refused: false,
        })?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let text = |key: &str| body.get(key).and_then(serde_json::Value::as_str);
        if !(200..300).contains(&status) {
            // `error_description` names the problem (AADSTS codes); it never echoes the secret.
            let description = text("error_description")
                .or_else(|| text("message"))
                .map(|d| d.lines().next().unwrap_or(d))
                .unwrap_or("");
            return Err(AuthError {
                message: format!(
                    "{what} failed: HTTP {status} {}: {description}",
                    text("error").unwrap_or("error")
                ),
                refused: (400..500).contains(&status) && status != 429 && status != 408,
            });
        }
        let token = text("access_token").ok_or_else(|| AuthError {
            message: format!("{what}: the reply has no access_token"),
            refused: false,
        })?;
        let number = |key: &str| {
            body.get(key).and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
        };
        // `expires_in` (seconds; a string from IMDS), else `expires_on` (Unix time; App Service).
        let seconds = number("expires_in")
            .or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                number("expires_on").map(|on| on.saturating_sub(now))
            })
            .unwrap_or(3599);
        Ok((token.to_string(), Duration::from_secs(seconds)))
    }
}

/// `Authorization: Bearer <token>` on every request; a token the service refused is dropped.
#[async_trait]
impl Authenticator for TokenCache {
    async fn authorize(&self, request: &mut reqwest::Request) -> Result<Generation, AuthError> {
        let (bearer, generation) = self.bearer().await?;
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, bearer);
        Ok(generation)
    }

    async fn ready(&self) -> Result<(), AuthError> {
        self.bearer().await.map(|_| ())
    }

    async fn invalidate(&self, generation: Generation) {
        self.drop_token(generation).await;
    }
}
