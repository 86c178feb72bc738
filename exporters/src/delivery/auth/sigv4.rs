//! AWS Signature Version 4 for the requests of an AWS service (CloudWatch Logs; OpenSearch
//! Service next), with credentials from the standard AWS provider chain, cached and refreshed.

use super::aws_credentials::{AwsCredentialsConfig, CredentialCache};
use super::{AuthError, Authenticator, Generation};
use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::SystemTime;

/// Signs every request for one AWS service in one region; every header the request carries
/// when it is authorized (`content-type`, `x-amz-target`, …) is signed with its body.
pub struct SigV4 {
    region: String,
    service: &'static str,
    credentials: CredentialCache,
}

impl SigV4 {
    /// Signs for `service` (`logs`) in `region`. `provider` replaces the default chain (loaded on
    /// first use with `client`).
    pub fn new(
        region: &str,
        service: &'static str,
        client: reqwest::Client,
        provider: Option<SharedCredentialsProvider>,
    ) -> SigV4 {
        SigV4 {
            region: region.to_string(),
            service,
            credentials: CredentialCache::new(region, client, provider),
        }
    }

    /// Takes credentials as `settings` (an exporter's `credentials:` block) say, unless a
    /// provider was given.
    pub fn with_credentials(mut self, settings: AwsCredentialsConfig, exporter: &str) -> SigV4 {
        self.credentials = self.credentials.with_settings(settings, exporter);
        self
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) for `request`.
    fn headers(
        &self,
        credentials: &Credentials,
        request: &reqwest::Request,
    ) -> Result<Vec<(&'static str, String, bool)>, String> {
        let identity: Identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let mut headers = Vec::with_capacity(request.headers().len());
        for (name, value) in request.headers() {
            let value = value
                .to_str()
                .map_err(|_| format!("header {name} is not text and cannot be signed"))?;
            headers.push((name.as_str(), value));
        }
        let body = request
            .body()
            .map_or(Some(&[][..]), reqwest::Body::as_bytes)
            .ok_or("a streamed body cannot be signed")?;
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.url().as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        let (headers, _params) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|h| (h.name(), h.value().to_string(), h.sensitive()))
            .collect())
    }
}

#[async_trait]
impl Authenticator for SigV4 {
    async fn authorize(&self, request: &mut reqwest::Request) -> Result<Generation, AuthError> {
        let (credentials, generation) = self.credentials.get().await?;
        let headers = self
            .headers(&credentials, request)
            .map_err(|e| AuthError::temporary(format!("cannot sign the request: {e}")))?;
        for (name, value, sensitive) in headers {
            let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                AuthError::temporary(format!(
                    "the signature header {name} is not a valid header value"
                ))
            })?;
            value.set_sensitive(sensitive);
            request.headers_mut().insert(name, value);
        }
        Ok(generation)
    }

    async fn ready(&self) -> Result<(), AuthError> {
        self.credentials.get().await.map(|_| ())
    }

    async fn invalidate(&self, generation: Generation) {
        self.credentials.invalidate(generation).await;
    }
}
