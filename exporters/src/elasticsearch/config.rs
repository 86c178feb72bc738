//! `elasticsearch:` exporter settings and their checks.

use super::index_name::{IndexTemplate, check_index_name};
use crate::delivery::endpoint::HttpEndpoint;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::config_types::{ConfigSize, Secret};

/// `elasticsearch:` exporter settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Cluster base URL, e.g. `https://es.example.com:9200` (the exporter appends `/_bulk`).
    pub endpoint: String,
    /// Credentials (default none): `{ api_key: … }` or `{ basic: { username, password } }`.
    pub auth: Option<AuthConfig>,
    /// Index name template; strftime fields use the UTC time of the EVENT
    /// (default `siemrelay-events-%Y.%m.%d`). Used with `mode: index`.
    #[serde(default = "default_index")]
    pub index: String,
    /// `index` (default: dated indices from `index`) or `data_stream` (writes to `data_stream`).
    #[serde(default)]
    pub mode: Mode,
    /// Data stream name for `mode: data_stream` (default `logs-siemrelay-default`).
    #[serde(default = "default_data_stream")]
    pub data_stream: String,
    /// Install the index template `siemrelay-<exporter id, / as ->` before the first bulk
    /// request (default false). A template of that name that siemrelay did not create is left
    /// alone and reported.
    #[serde(default)]
    pub index_template: bool,
    /// Settings of the installed index template (with `index_template: true`).
    pub template: Option<TemplateSettings>,
    /// Ingest pipeline to run on every document (`?pipeline=NAME`; default none).
    pub pipeline: Option<String>,
    /// Most uncompressed bytes per bulk request (default 10MiB).
    #[serde(default = "default_max_request_size")]
    pub max_request_size: ConfigSize,
    /// Most documents per bulk request (default 5000).
    #[serde(default = "default_max_events")]
    pub max_events: usize,
}

/// Where documents go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Dated indices named by the `index` template (default).
    #[default]
    Index,
    /// One data stream (`data_stream`); needs an index template with `data_stream: {}`.
    DataStream,
}

/// `template:` — what the installed index template sets on new indices or backing indices.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSettings {
    /// `index.number_of_shards` (default: the cluster's, 1).
    pub number_of_shards: Option<u32>,
    /// `index.number_of_replicas` (default: the cluster's, 1).
    pub number_of_replicas: Option<u32>,
    /// Elasticsearch ILM policy (`index.lifecycle.name`); the policy must exist.
    pub ilm_policy: Option<String>,
    /// OpenSearch ISM policy. OpenSearch attaches a policy to new indices through the
    /// policy's own `ism_template` (an index setting no longer does): siemrelay checks at start
    /// that the policy exists and its `ism_template` matches the indices, and reports it if not.
    pub ism_policy: Option<String>,
    /// Template priority (default 200: above the built-in `logs-*-*` at 100). Two templates
    /// with overlapping patterns need different priorities.
    #[serde(default = "default_priority")]
    pub priority: u32,
}

fn default_priority() -> u32 {
    200
}

impl Default for TemplateSettings {
    fn default() -> Self {
        TemplateSettings {
            number_of_shards: None,
            number_of_replicas: None,
            ilm_policy: None,
            ism_policy: None,
            priority: default_priority(),
        }
    }
}

/// `auth:` — exactly one of `api_key` and `basic`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The `encoded` value of an API key (base64 of `id:key`), sent as `Authorization: ApiKey <value>`.
    pub api_key: Option<Secret>,
    /// User name and password, sent as `Authorization: Basic …`.
    pub basic: Option<BasicAuth>,
}

/// `auth.basic:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
}

fn default_index() -> String {
    "siemrelay-events-%Y.%m.%d".into()
}

fn default_data_stream() -> String {
    "logs-siemrelay-default".into()
}

fn default_max_request_size() -> ConfigSize {
    ConfigSize(10 << 20)
}

fn default_max_events() -> usize {
    5000
}

fn template_issues(template: &TemplateSettings, installed: bool) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    if !installed {
        issues.push(ConfigIssue::new(
            "template",
            "is only used with index_template: true (siemrelay installs no template otherwise)",
        ));
    }
    if template.number_of_shards == Some(0) {
        issues.push(ConfigIssue::new(
            "template.number_of_shards",
            "must be at least 1",
        ));
    }
    if template.ilm_policy.is_some() && template.ism_policy.is_some() {
        issues.push(ConfigIssue::new(
            "template",
            "give ilm_policy (Elasticsearch) or ism_policy (OpenSearch), not both",
        ));
    }
    for (key, policy) in [
        ("template.ilm_policy", &template.ilm_policy),
        ("template.ism_policy", &template.ism_policy),
    ] {
        if let Some(policy) = policy
            && (policy.is_empty()
                || !policy
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)))
        {
            issues.push(ConfigIssue::new(
                key,
                "must be a policy name: letters, digits, _ - and . only",
            ));
        }
    }
    issues
}

/// An `endpoint` of the right shape, for error messages.
pub(super) const ENDPOINT_EXAMPLE: &str = "https://elasticsearch.example.com:9200";

impl ElasticsearchConfig {
    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if let Err(error) = HttpEndpoint::base(&self.endpoint, ENDPOINT_EXAMPLE) {
            issues.push(ConfigIssue::new("endpoint", error.to_string()));
        }
        if let Some(auth) = &self.auth {
            match (&auth.api_key, &auth.basic) {
                (Some(_), Some(_)) => issues.push(ConfigIssue::new(
                    "auth",
                    "give either api_key or basic, not both",
                )),
                (None, None) => issues.push(ConfigIssue::new("auth", "give api_key or basic")),
                (Some(key), None) => {
                    if reqwest::header::HeaderValue::from_str(key.expose()).is_err() {
                        issues.push(ConfigIssue::new(
                            "auth.api_key",
                            "contains characters that cannot be sent in an HTTP header",
                        ));
                    }
                }
                (None, Some(basic)) => {
                    if basic.username.is_empty() || basic.username.contains(':') {
                        issues.push(ConfigIssue::new(
                            "auth.basic.username",
                            "must be non-empty and without ':'",
                        ));
                    }
                }
            }
        }
        match self.mode {
            Mode::Index => match IndexTemplate::parse(&self.index) {
                Ok(template) => {
                    if self.index_template && template.literal_prefix().is_empty() {
                        issues.push(ConfigIssue::new(
                            "index",
                            "with index_template: true the index must start with a fixed prefix (e.g. siemrelay-events-%Y.%m.%d), so the template does not match every index",
                        ));
                    }
                }
                Err(message) => issues.push(ConfigIssue::new("index", message)),
            },
            Mode::DataStream => {
                if let Err(message) = check_index_name(&self.data_stream) {
                    issues.push(ConfigIssue::new("data_stream", message));
                } else if self.data_stream.starts_with(".ds-") {
                    issues.push(ConfigIssue::new("data_stream", "must not start with .ds-"));
                }
            }
        }
        if let Some(template) = &self.template {
            issues.extend(template_issues(template, self.index_template));
        }
        if let Some(pipeline) = &self.pipeline
            && pipeline.trim().is_empty()
        {
            issues.push(ConfigIssue::new("pipeline", "must not be empty when set"));
        }
        if self.max_request_size.0 < 1024 {
            issues.push(ConfigIssue::new(
                "max_request_size",
                "must be at least 1KiB",
            ));
        }
        if self.max_events == 0 {
            issues.push(ConfigIssue::new("max_events", "must be at least 1"));
        }
        issues
    }
}
