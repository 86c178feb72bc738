//! Entra ID (Azure AD) client-credentials tokens, cached and refreshed before they expire.
//! Neither the secret nor the token is ever logged or put in an error.

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

/// A cached bearer token for one app registration and scope.
pub struct TokenCache {
    client: reqwest::Client,
    url: String,
    client_id: String,
    client_secret: Secret,
    scope: String,
    state: Mutex<(Option<Cached>, u64)>,
}

impl TokenCache {
    /// A cache fetching from `url` (`<authority>/<tenant>/oauth2/v2.0/token`).
    pub fn new(
        client: reqwest::Client,
        url: String,
        client_id: &str,
        client_secret: Secret,
        scope: &str,
    ) -> TokenCache {
        TokenCache {
            client,
            url,
            client_id: client_id.to_string(),
            client_secret,
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

    async fn fetch(&self) -> Result<(String, Duration), AuthError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("scope", self.scope.as_str()),
        ];
        let response = self
            .client
            .post(&self.url)
            .form(&form)
            .send()
            .await
            .map_err(|e| AuthError {
                message: format!(
                    "Entra ID token request to {} failed: {}",
                    self.url,
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
                .map(|d| d.lines().next().unwrap_or(d))
                .unwrap_or("");
            return Err(AuthError {
                message: format!(
                    "Entra ID token request failed: HTTP {status} {}: {description}",
                    text("error").unwrap_or("error")
                ),
                refused: (400..500).contains(&status) && status != 429 && status != 408,
            });
        }
        let token = text("access_token").ok_or_else(|| AuthError {
            message: "Entra ID token reply has no access_token".into(),
            refused: false,
        })?;
        let seconds = body
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
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
