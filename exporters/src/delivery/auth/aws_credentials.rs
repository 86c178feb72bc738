//! AWS credentials: the standard provider chain from `aws-config` (environment, shared config
//! and credentials files, web identity, ECS container and EC2 instance metadata), or what an
//! exporter's `credentials:` block names (a profile, a role to assume with STS `AssumeRole`,
//! a web identity token for STS `AssumeRoleWithWebIdentity`), loaded once on first use with
//! siemrelay's own HTTP client, and a cache that refreshes before expiry or when AWS says the
//! token expired.

use super::{AuthError, Generation};
use aws_config::BehaviorVersion;
use aws_config::provider_config::ProviderConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::web_identity_token::{StaticConfiguration, WebIdentityTokenCredentialsProvider};
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
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::sync::{Mutex, OnceCell};

/// `credentials:` on an AWS exporter: where its credentials come from. Empty: the standard
/// chain (environment keys, `AWS_PROFILE` and the shared files, web identity from
/// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, ECS, EC2 instance metadata).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsCredentialsConfig {
    /// A profile of the shared config and credentials files (instead of `AWS_PROFILE`); with
    /// `role_arn`, the credentials that assume the role.
    pub profile: Option<String>,
    /// A role to assume: with STS `AssumeRole` using the base credentials (`profile` or the
    /// chain), or with `AssumeRoleWithWebIdentity` when `web_identity_token_file` is set.
    pub role_arn: Option<String>,
    /// `ExternalId` for `AssumeRole`, when the role's trust policy asks for one.
    pub external_id: Option<String>,
    /// `RoleSessionName` (default `siemrelay-<exporter id>`), shown in CloudTrail.
    pub session_name: Option<String>,
    /// A web identity token file (an EKS projected service account token) exchanged for the
    /// role's credentials; needs `role_arn`.
    pub web_identity_token_file: Option<PathBuf>,
}

impl AwsCredentialsConfig {
    /// Semantic checks (keys relative to the exporter block, under `credentials.`).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let key = |name: &str| format!("credentials.{name}");
        if let Some(profile) = &self.profile
            && (profile.trim().is_empty() || profile.contains(['[', ']']))
        {
            issues.push(ConfigIssue::new(key("profile"), "must be a profile name"));
        }
        if let Some(role) = &self.role_arn
            && !is_role_arn(role)
        {
            issues.push(ConfigIssue::new(
                key("role_arn"),
                format!("{role:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"),
            ));
        }
        let needs_role = [
            ("external_id", self.external_id.is_some()),
            ("session_name", self.session_name.is_some()),
            (
                "web_identity_token_file",
                self.web_identity_token_file.is_some(),
            ),
        ];
        for (name, set) in needs_role {
            if set && self.role_arn.is_none() {
                issues.push(ConfigIssue::new(key(name), "needs credentials.role_arn"));
            }
        }
        if let Some(name) = &self.session_name
            && (!(2..=64).contains(&name.len())
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)))
        {
            issues.push(ConfigIssue::new(
                key("session_name"),
                "must be 2 to 64 characters of letters, digits and _+=,.@- (STS RoleSessionName)",
            ));
        }
        if let Some(id) = &self.external_id
            && (!(2..=1224).contains(&id.len())
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c)))
        {
            issues.push(ConfigIssue::new(
                key("external_id"),
                "must be 2 to 1224 characters of letters, digits and _+=,.@:/- (STS ExternalId)",
            ));
        }
        if self.web_identity_token_file.is_some() && self.external_id.is_some() {
            issues.push(ConfigIssue::new(
                key("external_id"),
                "is not used with web_identity_token_file (AssumeRoleWithWebIdentity takes none)",
            ));
        }
        issues
    }
}

/// `arn:<partition>:iam::<12 digits>:role/<path/name>`.
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(
        parts[..],
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty())
    )
}

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
    settings: AwsCredentialsConfig,
    /// The default `RoleSessionName`.
    session_name: String,
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
            settings: AwsCredentialsConfig::default(),
            session_name: "siemrelay".into(),
            chain: OnceCell::new(),
            cached: Mutex::new((None, 0)),
        }
    }

    /// Uses `settings` (an exporter's `credentials:` block) instead of the plain chain;
    /// `exporter` names the default STS session (`siemrelay-<id>`).
    pub fn with_settings(mut self, settings: AwsCredentialsConfig, exporter: &str) -> Self {
        let name: String = format!("siemrelay-{exporter}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        self.session_name = name;
        self.settings = settings;
        self
    }

    async fn provider(&self) -> Result<&SharedCredentialsProvider, AuthError> {
        if let Some(given) = &self.given {
            return Ok(given);
        }
        self.chain.get_or_try_init(|| self.build_provider()).await
    }

    /// The provider the settings name, in this order: a web identity token file with a role
    /// (`AssumeRoleWithWebIdentity`); a role assumed with the base credentials (`AssumeRole`);
    /// a profile; the standard chain. STS is called at the region's endpoint, or at
    /// `AWS_ENDPOINT_URL_STS` when set.
    async fn build_provider(&self) -> Result<SharedCredentialsProvider, AuthError> {
        let http = ReqwestHttpClient {
            client: self.client.clone(),
        };
        let region = aws_config::Region::new(self.region.clone());
        let settings = &self.settings;
        let session_name = settings
            .session_name
            .clone()
            .unwrap_or_else(|| self.session_name.clone());
        if let (Some(role), Some(token_file)) =
            (&settings.role_arn, &settings.web_identity_token_file)
        {
            let provider_config = ProviderConfig::without_region()
                .with_region(Some(region))
                .with_http_client(http);
            let provider = WebIdentityTokenCredentialsProvider::builder()
                .configure(&provider_config)
                .static_configuration(StaticConfiguration {
                    web_identity_token_file: token_file.clone(),
                    role_arn: role.clone(),
                    session_name,
                })
                .build();
            return Ok(SharedCredentialsProvider::new(provider));
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .http_client(http);
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        let config = loader.load().await;
        if let Some(role) = &settings.role_arn {
            let mut builder = AssumeRoleProvider::builder(role.clone()).session_name(session_name);
            if let Some(id) = &settings.external_id {
                builder = builder.external_id(id.clone());
            }
            let provider = builder.configure(&config).build().await;
            return Ok(SharedCredentialsProvider::new(provider));
        }
        config.credentials_provider().ok_or_else(|| {
            AuthError::temporary("the AWS configuration has no credentials provider")
        })
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

    #[test]
    fn credentials_settings_are_checked_at_their_keys() {
        let read = |value: serde_json::Value| -> Vec<String> {
            serde_json::from_value::<AwsCredentialsConfig>(value)
                .unwrap()
                .validate()
                .into_iter()
                .map(|issue| issue.key)
                .collect()
        };
        assert!(read(serde_json::json!({})).is_empty());
        assert!(
            read(serde_json::json!({"profile": "siem", "role_arn": "arn:aws:iam::123456789012:role/path/w", "external_id": "soc-7f3a", "session_name": "siemrelay"}))
                .is_empty()
        );
        assert!(
            read(serde_json::json!({"role_arn": "arn:aws-cn:iam::123456789012:role/w", "web_identity_token_file": "/t"}))
                .is_empty()
        );
        assert_eq!(
            read(serde_json::json!({"role_arn": "arn:aws:iam::1234:user/w"})),
            ["credentials.role_arn"]
        );
        assert_eq!(
            read(serde_json::json!({"external_id": "x1", "web_identity_token_file": "/t"})),
            [
                "credentials.external_id",
                "credentials.web_identity_token_file",
                "credentials.external_id"
            ]
        );
        assert_eq!(
            read(
                serde_json::json!({"role_arn": "arn:aws:iam::123456789012:role/w", "session_name": "a b"})
            ),
            ["credentials.session_name"]
        );
        assert!(
            serde_json::from_value::<AwsCredentialsConfig>(serde_json::json!({"role": "x"}))
                .is_err()
        );
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
