//! AWS credentials: the standard provider chain from `aws-config` (environment, shared config
//! and credentials files, web identity, ECS container and EC2 instance metadata), loaded once
//! on first use with siemrelay's own HTTP client, and a cache that refreshes before expiry or
//! when AWS says the token expired.

use super::{AuthError, Generation};
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use std::time::{Duration, SystemTime};
use tokio::sync::{Mutex, OnceCell};

/// Longest time before expiry at which cached credentials are refreshed.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Credentials fetched from a provider, with when they were fetched.
#[derive(Clone)]
struct Cached {
    credentials: Credentials,
    fetched: SystemTime,
    generation: Generation,
}

impl Cached {
    /// True while the credentials are not about to expire: refreshed within 5 minutes of
    /// expiry, or halfway through their life for short-lived ones.
    fn fresh(&self, now: SystemTime) -> bool {
        let Some(expiry) = self.credentials.expiry() else {
            return true;
        };
        let life = expiry.duration_since(self.fetched).unwrap_or_default();
        let margin = REFRESH_MARGIN.min(life / 2);
        now + margin < expiry
    }
}

/// A credentials cache in front of the provider chain.
pub struct CredentialCache {
    region: String,
    client: reqwest::Client,
    given: Option<SharedCredentialsProvider>,
    chain: OnceCell<SharedCredentialsProvider>,
    cached: Mutex<(Option<Cached>, Generation)>,
}

impl CredentialCache {
    /// A cache over `given`, or over the default chain (loaded on first use) when `None`.
    pub fn new(
        region: &str,
        client: reqwest::Client,
        given: Option<SharedCredentialsProvider>,
    ) -> CredentialCache {
        CredentialCache {
            region: region.to_string(),
            client,
            given,
            chain: OnceCell::new(),
            cached: Mutex::new((None, 0)),
        }
    }

    async fn provider(&self) -> Result<&SharedCredentialsProvider, AuthError> {
        if let Some(given) = &self.given {
            return Ok(given);
        }
        self.chain
            .get_or_try_init(|| async {
                let config = aws_config::defaults(BehaviorVersion::latest())
                    .region(aws_config::Region::new(self.region.clone()))
                    .http_client(ReqwestHttpClient {
                        client: self.client.clone(),
                    })
                    .load()
                    .await;
                config.credentials_provider().ok_or_else(|| {
                    AuthError::temporary("the AWS configuration has no credentials provider")
                })
            })
            .await
    }

    /// Credentials valid for a while, and their generation: the cached ones, or fresh ones
    /// from the provider.
    pub async fn get(&self) -> Result<(Credentials, Generation), AuthError> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(entry) = cached.0.as_ref().filter(|c| c.fresh(now)) {
            return Ok((entry.credentials.clone(), entry.generation));
        }
        let provider = self.provider().await?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            AuthError::temporary(format!(
                "cannot load AWS credentials: {}",
                crate::delivery::http::error_chain(&e)
            ))
        })?;
        // Whatever the source (env, profile, STS, IMDS), the secret half never leaves in a log
        // line, status or dead-letter reason an AWS reply or an error chain might carry it into.
        siemrelay_core::scrub::remember(
            std::iter::once(credentials.secret_access_key()).chain(credentials.session_token()),
        );
        cached.1 += 1;
        let generation = cached.1;
        cached.0 = Some(Cached {
            credentials: credentials.clone(),
            fetched: now,
            generation,
        });
        Ok((credentials, generation))
    }

    /// Drops the credentials of `generation` (AWS said they expired) so the next `get` asks
    /// the provider.
    pub async fn invalidate(&self, generation: Generation) {
        let mut cached = self.cached.lock().await;
        if cached
            .0
            .as_ref()
            .is_some_and(|c| c.generation == generation)
        {
            cached.0 = None;
        }
    }
}

/// Lets `aws-config`'s providers (STS, IMDS, ECS) use siemrelay's reqwest client.
#[derive(Clone, Debug)]
struct ReqwestHttpClient {
    client: reqwest::Client,
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeout = match (settings.connect_timeout(), settings.read_timeout()) {
            (Some(connect), Some(read)) => Some(connect + read),
            (connect, read) => connect.or(read),
        };
        SharedHttpConnector::new(ReqwestConnector {
            client: self.client.clone(),
            timeout,
        })
    }
}

#[derive(Clone, Debug)]
struct ReqwestConnector {
    client: reqwest::Client,
    timeout: Option<Duration>,
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let timeout = self.timeout;
        HttpConnectorFuture::new(async move {
            let method = reqwest::Method::from_bytes(request.method().as_bytes())
                .map_err(|e| ConnectorError::user(e.into()))?;
            let mut builder = client.request(method, request.uri());
            for (name, value) in request.headers().iter() {
                builder = builder.header(name, value);
            }
            if let Some(timeout) = timeout {
                builder = builder.timeout(timeout);
            }
            // The credential providers send small in-memory bodies only.
            let body = request
                .body()
                .bytes()
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            let response = builder.body(body).send().await.map_err(connector_error)?;
            let status = StatusCode::try_from(response.status().as_u16())
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let headers = response.headers().clone();
            let bytes = response.bytes().await.map_err(connector_error)?;
            let mut out = Response::new(status, SdkBody::from(bytes));
            for (name, value) in &headers {
                if let Ok(value) = value.to_str() {
                    out.headers_mut()
                        .append(name.as_str().to_string(), value.to_string());
                }
            }
            Ok(out)
        })
    }
}

fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Hands out `key-1`, `key-2`, … each valid for `life`.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        life: Duration,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("key-{n}"),
                format!("wJalrXUtnFEMI/K7MDENG/secret-{n}"),
                Some(format!("IQoJb3JpZ2luX2VjE-session-token-{n}")),
                Some(SystemTime::now() + self.life),
                "test",
            )))
        }
    }

    fn cache(life: Duration) -> (CredentialCache, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let provider = SharedCredentialsProvider::new(Counting {
            calls: calls.clone(),
            life,
        });
        (
            CredentialCache::new("eu-west-1", reqwest::Client::new(), Some(provider)),
            calls,
        )
    }

    #[tokio::test]
    async fn credentials_are_cached_until_near_expiry_and_dropped_when_stale() {
        let (long, calls) = cache(Duration::from_secs(3600));
        let key = |got: Result<(Credentials, Generation), AuthError>| {
            got.unwrap().0.access_key_id().to_string()
        };
        let (_, first) = long.get().await.unwrap();
        assert_eq!(key(long.get().await), "key-1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        long.invalidate(first).await;
        assert_eq!(key(long.get().await), "key-2");
        // Invalidating an older generation keeps the current credentials.
        long.invalidate(first).await;
        assert_eq!(key(long.get().await), "key-2");

        let (short, calls) = cache(Duration::from_millis(200));
        assert_eq!(key(short.get().await), "key-1");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(key(short.get().await), "key-2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn loaded_credentials_are_scrubbed_from_every_text() {
        let (cache, _) = cache(Duration::from_secs(3600));
        let (credentials, _) = cache.get().await.unwrap();
        let secret = credentials.secret_access_key().to_string();
        let token = credentials.session_token().unwrap().to_string();
        let echoed = format!("AWS said: bad signature for {secret} with token {token}");
        let scrubbed = siemrelay_core::scrub::scrub(&echoed);
        assert!(!scrubbed.contains(&secret), "{scrubbed}");
        assert!(!scrubbed.contains(&token), "{scrubbed}");
        assert!(
            scrubbed.starts_with("AWS said: bad signature for "),
            "{scrubbed}"
        );
    }
}
