//! The `sentinel` exporter: Microsoft Sentinel / Azure Monitor through the Logs Ingestion API
//! (`POST {endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`).
//!
//! Each event becomes a record of its shape's columns (`schema: native`: the default columns of
//! [`columns::DEFAULT_COLUMNS`] or the configured `columns`; `flat`, `ecs`, `ocsf`: the columns
//! of that shape's own table and stream, [`shapes`]) in a JSON array body of at most 1,000,000
//! bytes, gzip-compressed by default, with the event time in both `TimeGenerated` and
//! `EventTime` (Log Analytics replaces
//! a `TimeGenerated` more than 2 days old with the time it received the record; `EventTime`
//! keeps it). Authentication is an Entra ID token for scope `https://monitor.azure.com//.default`
//! (or `.us` / `.cn`; the double slash is what Microsoft documents for the Logs Ingestion API),
//! from a client secret, a managed identity or a workload identity (see
//! [`crate::delivery::auth::entra_id`]), cached and refreshed before expiry; a 401 drops the
//! token and resends once with a fresh one.
//!
//! Replies: 204 delivered; 413 split and resent; 429 retried after `Retry-After`; 408 and 5xx
//! retried; 400/403/404 permanent with the service's `{"error":{"code","message"}}` (403 and 404
//! also logged as errors). Token failures: refused client credentials are permanent, others
//! retried.

pub mod columns;
pub mod factory;
pub mod shapes;
mod sink;

pub use columns::{ColumnType, Columns, DEFAULT_COLUMNS};
pub use shapes::{RecordShape, SHAPE_TABLES, ShapeTable, shape_table};
pub use sink::{SentinelEncoder, SentinelSink, sentinel_sink};

use crate::delivery::Schema;
use crate::delivery::Sink;
use crate::delivery::auth::entra_id;
use crate::delivery::endpoint::HttpEndpoint;
use crate::delivery::http::HttpOptions;
use indexmap::IndexMap;
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use siemrelay_core::config_types::Secret;
use std::sync::Arc;
use std::time::Duration;

/// The Logs Ingestion API version used.
pub const API_VERSION: &str = "2023-01-01";
/// Most uncompressed bytes per request (the service takes 1 MB per call).
pub const MAX_REQUEST_BYTES: usize = 1_000_000;
/// Most records per request.
pub const MAX_RECORDS_PER_REQUEST: usize = 10_000;

/// The Azure cloud: sets the Entra ID authority and the token scope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AzureCloud {
    /// Azure public cloud (default).
    #[default]
    Public,
    /// Azure US Government.
    #[serde(rename = "usgovernment")]
    UsGovernment,
    /// Azure operated by 21Vianet (China).
    China,
}

impl AzureCloud {
    /// The Entra ID authority host.
    pub fn authority(self) -> &'static str {
        match self {
            AzureCloud::Public => "https://login.microsoftonline.com",
            AzureCloud::UsGovernment => "https://login.microsoftonline.us",
            AzureCloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The token scope of Azure Monitor for the Logs Ingestion API: the resource
    /// `https://monitor.azure.com/` plus `/.default`, so with a double slash, as Microsoft
    /// documents it (learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview).
    pub fn scope(self) -> &'static str {
        match self {
            AzureCloud::Public => "https://monitor.azure.com//.default",
            AzureCloud::UsGovernment => "https://monitor.azure.us//.default",
            AzureCloud::China => "https://monitor.azure.cn//.default",
        }
    }
}

/// How the exporter gets its Entra ID token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// An app registration's client secret (`tenant_id`, `client_id`, `client_secret`).
    #[default]
    ClientSecret,
    /// The managed identity of the VM, scale set, AKS node, App Service or Functions app
    /// (`client_id` picks a user-assigned one).
    ManagedIdentity,
    /// Workload identity federation (AKS): a federated token file exchanged for a token
    /// (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
    /// `AZURE_AUTHORITY_HOST`, or the config keys).
    WorkloadIdentity,
}

/// `sentinel:` exporter settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// Data collection endpoint (or the DCR's logs ingestion endpoint) base URL. Required.
    pub endpoint: String,
    /// The DCR's immutable id, `dcr-` and 32 hex digits. Required.
    pub dcr_immutable_id: String,
    /// The DCR input stream. Default: the shipped template's stream of the exporter's `schema`
    /// (`Custom-SiemrelayEvents_CL`, `Custom-SiemrelayFlat_CL`, `Custom-SiemrelayEcs_CL`,
    /// `Custom-SiemrelayOcsf_CL`: see [`shapes::SHAPE_TABLES`]); another shape's shipped stream
    /// is refused.
    pub stream_name: Option<String>,
    /// How the token is had: `client_secret` (default), `managed_identity` or
    /// `workload_identity`.
    #[serde(default)]
    pub identity: Identity,
    /// Entra ID tenant (directory) id or domain. Required with `client_secret`; with
    /// `workload_identity` default `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// Application (client) id. Required with `client_secret`; with `workload_identity` default
    /// `AZURE_CLIENT_ID`; with `managed_identity` a user-assigned identity's client id.
    pub client_id: Option<String>,
    /// Client secret of the app registration (`client_secret` only).
    pub client_secret: Option<Secret>,
    /// Managed identity token endpoint (default: `IDENTITY_ENDPOINT` on App Service, else
    /// IMDS `http://169.254.169.254/metadata/identity/oauth2/token`).
    pub identity_endpoint: Option<String>,
    /// Federated token file for `workload_identity` (default `AZURE_FEDERATED_TOKEN_FILE`).
    pub federated_token_file: Option<std::path::PathBuf>,
    /// `public` (default), `usgovernment` or `china`: picks the authority and scope.
    #[serde(default)]
    pub cloud: AzureCloud,
    /// Base URL replacing the cloud's Entra ID authority (tests, proxies).
    pub authority_host: Option<String>,
    /// Column name → event field (`event_id`, `attributes.user.name`, …). Replaces the default
    /// mapping; `TimeGenerated` comes from `timestamp` unless mapped. Default: the default
    /// mapping.
    pub columns: Option<IndexMap<String, String>>,
}

impl SentinelConfig {
    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for (key, url) in [
            ("endpoint", Some(&self.endpoint)),
            ("authority_host", self.authority_host.as_ref()),
        ] {
            if let Some(url) = url
                && let Err(error) =
                    HttpEndpoint::base(url, "https://my-dce.westeurope-1.ingest.monitor.azure.com")
            {
                issues.push(ConfigIssue::new(key, error.to_string()));
            }
        }
        let dcr_ok = self
            .dcr_immutable_id
            .strip_prefix("dcr-")
            .is_some_and(|hex| hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()));
        if !dcr_ok {
            issues.push(ConfigIssue::new(
                "dcr_immutable_id",
                format!(
                    "{:?} is not a DCR immutable id (dcr- and 32 hex digits, shown on the DCR's overview page)",
                    self.dcr_immutable_id
                ),
            ));
        }
        if let Some(stream) = &self.stream_name {
            let stream_ok = ["Custom-", "Microsoft-"].iter().any(|prefix| {
                stream.strip_prefix(prefix).is_some_and(|rest| {
                    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
            });
            if !stream_ok {
                issues.push(ConfigIssue::new(
                    "stream_name",
                    format!(
                        "{stream:?} is not a DCR stream name (Custom-<Table>_CL or Microsoft-<Table>)"
                    ),
                ));
            }
        }
        issues.extend(self.identity_issues());
        if let Some(columns) = &self.columns {
            if columns.is_empty() {
                issues.push(ConfigIssue::new("columns", "must map at least one column"));
            }
            if let Err((column, message)) = Columns::from_config(columns.iter()) {
                issues.push(ConfigIssue::new(format!("columns.{column}"), message));
            }
        }
        issues
    }

    /// Checks against the exporter's `schema` (keys relative to the exporter block): a
    /// `stream_name` that is another shape's stream in the shipped template, and `columns`
    /// (a mapping of the native fields) with a reshaped schema.
    pub fn schema_issues(&self, schema: Schema) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let wanted = shapes::shape_table(schema);
        if let Some(stream) = &self.stream_name
            && let Some(other) = shapes::SHAPE_TABLES
                .iter()
                .find(|t| t.stream == stream && t.schema != schema)
        {
            issues.push(ConfigIssue::new(
                "stream_name",
                format!(
                    "{stream} is the shipped DCR's stream for schema: {}, whose columns differ from schema: {}'s; use {} (the default for schema: {}) or leave stream_name out",
                    other.schema.name(),
                    schema.name(),
                    wanted.stream,
                    schema.name()
                ),
            ));
        }
        if self.columns.is_some() && schema != Schema::Native {
            issues.push(ConfigIssue::new(
                "columns",
                format!(
                    "columns maps the native fields; with schema: {} every record has the columns of {} ({}): remove columns, or use schema: native",
                    schema.name(),
                    wanted.stream,
                    wanted.table
                ),
            ));
        }
        issues
    }

    fn identity_issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if let Some(tenant) = &self.tenant_id
            && (tenant.trim().is_empty() || tenant.contains(['/', '?', '#', ' ']))
        {
            issues.push(ConfigIssue::new(
                "tenant_id",
                "must be the directory (tenant) id or domain",
            ));
        }
        if self
            .client_id
            .as_ref()
            .is_some_and(|id| id.trim().is_empty())
        {
            issues.push(ConfigIssue::new("client_id", "must not be empty"));
        }
        if let Some(endpoint) = &self.identity_endpoint
            && let Err(error) = HttpEndpoint::base(endpoint, entra_id::IMDS_ENDPOINT)
        {
            issues.push(ConfigIssue::new("identity_endpoint", error.to_string()));
        }
        let only = |key: &str, set: bool, identity: &str| {
            set.then(|| ConfigIssue::new(key, format!("is only used with identity: {identity}")))
        };
        match self.identity {
            Identity::ClientSecret => {
                for (key, missing) in [
                    ("tenant_id", self.tenant_id.is_none()),
                    ("client_id", self.client_id.is_none()),
                    ("client_secret", self.client_secret.is_none()),
                ] {
                    if missing {
                        issues.push(ConfigIssue::new(
                            key,
                            "is required with identity: client_secret (the default); or use identity: managed_identity or workload_identity",
                        ));
                    }
                }
                issues.extend(only(
                    "identity_endpoint",
                    self.identity_endpoint.is_some(),
                    "managed_identity",
                ));
                issues.extend(only(
                    "federated_token_file",
                    self.federated_token_file.is_some(),
                    "workload_identity",
                ));
            }
            Identity::ManagedIdentity => {
                issues.extend(only(
                    "client_secret",
                    self.client_secret.is_some(),
                    "client_secret",
                ));
                issues.extend(only(
                    "federated_token_file",
                    self.federated_token_file.is_some(),
                    "workload_identity",
                ));
                issues.extend(only("tenant_id", self.tenant_id.is_some(), "client_secret or workload_identity (a managed identity's tenant is its resource's)"));
            }
            Identity::WorkloadIdentity => {
                issues.extend(only(
                    "client_secret",
                    self.client_secret.is_some(),
                    "client_secret",
                ));
                issues.extend(only(
                    "identity_endpoint",
                    self.identity_endpoint.is_some(),
                    "managed_identity",
                ));
            }
        }
        issues
    }

    /// Where the token comes from, with the environment filled in (`AZURE_*` for workload
    /// identity, `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` for App Service); `env` reads one
    /// variable. Names what is missing.
    pub fn token_source(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<entra_id::TokenSource, String> {
        let from = |value: &Option<String>, var: &str, key: &str| {
            value
                .clone()
                .or_else(|| env(var).filter(|v| !v.is_empty()))
                .ok_or_else(|| format!("{key}: not set and {var} is not in the environment"))
        };
        Ok(match self.identity {
            Identity::ClientSecret => entra_id::TokenSource::ClientSecret {
                url: self.token_url(),
                client_id: self.client_id.clone().unwrap_or_default(),
                secret: self
                    .client_secret
                    .clone()
                    .unwrap_or_else(|| Secret::new("")),
            },
            Identity::WorkloadIdentity => {
                let tenant = from(&self.tenant_id, "AZURE_TENANT_ID", "tenant_id")?;
                let client_id = from(&self.client_id, "AZURE_CLIENT_ID", "client_id")?;
                let token_file = match &self.federated_token_file {
                    Some(file) => file.clone(),
                    None => env("AZURE_FEDERATED_TOKEN_FILE")
                        .filter(|v| !v.is_empty())
                        .map(std::path::PathBuf::from)
                        .ok_or("federated_token_file: not set and AZURE_FEDERATED_TOKEN_FILE is not in the environment")?,
                };
                let authority = self
                    .authority_host
                    .clone()
                    .or_else(|| env("AZURE_AUTHORITY_HOST").filter(|v| !v.is_empty()))
                    .unwrap_or_else(|| self.cloud.authority().to_string());
                entra_id::TokenSource::ClientAssertion {
                    url: format!(
                        "{}/{tenant}/oauth2/v2.0/token",
                        authority.trim_end_matches('/')
                    ),
                    client_id,
                    token_file,
                }
            }
            Identity::ManagedIdentity => {
                let app_service = env("IDENTITY_ENDPOINT").filter(|v| !v.is_empty());
                let (endpoint, identity_header) = match (&self.identity_endpoint, app_service) {
                    (Some(endpoint), _) => (endpoint.clone(), None),
                    (None, Some(endpoint)) => {
                        let header = env("IDENTITY_HEADER")
                            .filter(|v| !v.is_empty())
                            .ok_or("IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not")?;
                        (endpoint, Some(header))
                    }
                    (None, None) => (entra_id::IMDS_ENDPOINT.to_string(), None),
                };
                entra_id::TokenSource::ManagedIdentity {
                    endpoint,
                    identity_header: identity_header.map(Secret::new),
                    client_id: self.client_id.clone(),
                }
            }
        })
    }

    /// The DCR stream of `schema`: `stream_name`, else the shipped template's stream.
    pub fn stream(&self, schema: Schema) -> &str {
        self.stream_name
            .as_deref()
            .unwrap_or(shapes::shape_table(schema).stream)
    }

    /// The upload URL with its `api-version`, for events in `schema`.
    pub fn upload_url(&self, schema: Schema) -> String {
        format!(
            "{}/dataCollectionRules/{}/streams/{}?api-version={API_VERSION}",
            self.endpoint.trim_end_matches('/'),
            self.dcr_immutable_id,
            self.stream(schema)
        )
    }

    /// The Entra ID token URL (client secret).
    pub fn token_url(&self) -> String {
        let authority = self
            .authority_host
            .as_deref()
            .unwrap_or(self.cloud.authority());
        format!(
            "{}/{}/oauth2/v2.0/token",
            authority.trim_end_matches('/'),
            self.tenant_id.as_deref().unwrap_or_default()
        )
    }

    /// The record columns: configured, or the default mapping.
    pub fn columns(&self) -> Result<Columns, String> {
        match &self.columns {
            Some(columns) => Columns::from_config(columns.iter())
                .map_err(|(column, message)| format!("columns.{column}: {message}")),
            None => Ok(Columns::default_mapping()),
        }
    }
}

/// Builds the Sentinel sink for a validated config.
pub fn build(
    id: &str,
    config: SentinelConfig,
    http: &HttpOptions,
    timeout: Duration,
) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(Arc::new(sentinel_sink(id, &config, http, timeout)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> SentinelConfig {
        let mut base = serde_json::json!({
            "endpoint": "https://my-dce.westeurope-1.ingest.monitor.azure.com/",
            "dcr_immutable_id": "dcr-0123456789abcdef0123456789abcdef",
            "stream_name": "Custom-SiemrelayEvents_CL",
            "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "client_id": "00000000-0000-0000-0000-000000000001",
            "client_secret": "s3cret",
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn urls_follow_the_cloud_and_overrides() {
        let c = config(serde_json::json!({}));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(
            c.upload_url(Schema::Native),
            "https://my-dce.westeurope-1.ingest.monitor.azure.com/dataCollectionRules/dcr-0123456789abcdef0123456789abcdef/streams/Custom-SiemrelayEvents_CL?api-version=2023-01-01"
        );
        assert_eq!(
            c.token_url(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
        assert_eq!(c.cloud.scope(), "https://monitor.azure.com//.default");
        let gov = config(serde_json::json!({"cloud": "usgovernment"}));
        assert!(
            gov.token_url()
                .starts_with("https://login.microsoftonline.us/")
        );
        assert_eq!(gov.cloud.scope(), "https://monitor.azure.us//.default");
        let cn =
            config(serde_json::json!({"cloud": "china", "authority_host": "http://127.0.0.1:9/"}));
        assert_eq!(cn.cloud.scope(), "https://monitor.azure.cn//.default");
        assert!(cn.token_url().starts_with("http://127.0.0.1:9/72f988bf"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn bad_settings_are_reported_at_their_keys() {
        let c = config(serde_json::json!({
            "endpoint": "ftp://x", "dcr_immutable_id": "dcr-xyz", "stream_name": "Events",
            "tenant_id": "a/b", "client_id": " ", "columns": {"Ok": "event_id", "Bad": "nope"},
        }));
        let keys: Vec<String> = c.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "endpoint",
                "dcr_immutable_id",
                "stream_name",
                "tenant_id",
                "client_id",
                "columns.Bad"
            ]
        );
    }

    #[test]
    fn identities_take_their_keys_and_the_environment() {
        let bare = |extra: serde_json::Value| -> SentinelConfig {
            let mut base = serde_json::json!({
                "endpoint": "https://my-dce.westeurope-1.ingest.monitor.azure.com/",
                "dcr_immutable_id": "dcr-0123456789abcdef0123456789abcdef",
                "stream_name": "Custom-SiemrelayEvents_CL",
            });
            base.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value(base).unwrap()
        };
        let keys = |c: &SentinelConfig| -> Vec<String> {
            c.validate().into_iter().map(|i| i.key).collect()
        };
        assert_eq!(
            keys(&bare(serde_json::json!({}))),
            ["tenant_id", "client_id", "client_secret"]
        );
        assert!(keys(&bare(serde_json::json!({"identity": "managed_identity"}))).is_empty());
        assert_eq!(
            keys(&bare(
                serde_json::json!({"identity": "managed_identity", "client_secret": "x", "tenant_id": "t"})
            )),
            ["client_secret", "tenant_id"]
        );
        assert_eq!(
            keys(&bare(
                serde_json::json!({"identity": "workload_identity", "identity_endpoint": "http://h"})
            )),
            ["identity_endpoint"]
        );
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let workload = bare(serde_json::json!({"identity": "workload_identity"}));
        let missing = workload.token_source(env(&[])).unwrap_err();
        assert!(missing.contains("AZURE_TENANT_ID"), "{missing}");
        let source = workload
            .token_source(env(&[
                ("AZURE_TENANT_ID", "t1"),
                ("AZURE_CLIENT_ID", "c1"),
                (
                    "AZURE_FEDERATED_TOKEN_FILE",
                    "/var/run/secrets/azure/tokens/azure-identity-token",
                ),
                ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
            ]))
            .unwrap();
        assert_eq!(
            source.url(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
        let managed = bare(serde_json::json!({"identity": "managed_identity"}));
        assert_eq!(
            managed.token_source(env(&[])).unwrap().url(),
            entra_id::IMDS_ENDPOINT
        );
        let app = managed
            .token_source(env(&[
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:41999/msi/token"),
                ("IDENTITY_HEADER", "h"),
            ]))
            .unwrap();
        assert_eq!(app.url(), "http://127.0.0.1:41999/msi/token");
        assert!(
            managed
                .token_source(env(&[(
                    "IDENTITY_ENDPOINT",
                    "http://127.0.0.1:41999/msi/token"
                )]))
                .is_err()
        );
        assert_eq!(
            entra_id::resource_of(AzureCloud::Public.scope()),
            "https://monitor.azure.com/"
        );
        assert_eq!(
            entra_id::resource_of("https://management.azure.com/.default"),
            "https://management.azure.com/"
        );
    }

    /// The ARM template declares, for each shape, a table and a DCR stream (`Custom-<table>`)
    /// with exactly the shape's columns and types, and a data flow from that stream to that
    /// table, so the exporter and the template cannot drift.
    #[test]
    fn arm_template_declares_each_shapes_table_stream_and_flow() {
        let text = include_str!("../../examples/sentinel/azuredeploy.json");
        let template: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(
            template["$schema"],
            "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
        );
        let listed = |columns: &serde_json::Value| -> Vec<(String, String)> {
            columns
                .as_array()
                .expect("columns array")
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap().to_string(),
                        c["type"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        // `[variables('x')]` → the variable's value.
        let resolve = |text: &str| -> String {
            match text
                .strip_prefix("[variables('")
                .and_then(|t| t.strip_suffix("')]"))
            {
                Some(name) => template["variables"][name].as_str().unwrap().to_string(),
                None => text.to_string(),
            }
        };
        let resources = template["resources"].as_array().unwrap();
        let of_type = |kind: &'static str| resources.iter().filter(move |r| r["type"] == kind);
        let dcr = of_type("Microsoft.Insights/dataCollectionRules")
            .next()
            .expect("a DCR");
        assert_eq!(
            of_type("Microsoft.Insights/dataCollectionEndpoints").count(),
            1
        );
        let streams = dcr["properties"]["streamDeclarations"].as_object().unwrap();
        assert_eq!(streams.len(), SHAPE_TABLES.len());
        let flows = dcr["properties"]["dataFlows"].as_array().unwrap();
        assert_eq!(flows.len(), SHAPE_TABLES.len());
        assert_eq!(
            of_type("Microsoft.OperationalInsights/workspaces/tables").count(),
            SHAPE_TABLES.len()
        );
        for shape in SHAPE_TABLES {
            let expected: Vec<(String, String)> = shape
                .columns()
                .iter()
                .map(|(name, kind)| (name.to_string(), kind.name().to_string()))
                .collect();
            assert_eq!(shape.stream, format!("Custom-{}", shape.table));
            let table = of_type("Microsoft.OperationalInsights/workspaces/tables")
                .find(|t| {
                    resolve(t["properties"]["schema"]["name"].as_str().unwrap()) == shape.table
                })
                .unwrap_or_else(|| panic!("no table {}", shape.table));
            assert_eq!(
                listed(&table["properties"]["schema"]["columns"]),
                expected,
                "{}",
                shape.table
            );
            assert_eq!(
                listed(&streams[shape.stream]["columns"]),
                expected,
                "{}",
                shape.stream
            );
            let flow = flows
                .iter()
                .find(|f| f["outputStream"] == shape.stream)
                .unwrap_or_else(|| panic!("no data flow into {}", shape.stream));
            let inputs: Vec<String> = flow["streams"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| resolve(s.as_str().unwrap()))
                .collect();
            assert_eq!(inputs, [shape.stream]);
            assert_eq!(flow["transformKql"], "source");
            assert_eq!(
                template["outputs"]["streamNames"]["value"][shape.schema.name()],
                shape.stream
            );
        }
    }

    #[test]
    fn the_stream_follows_the_schema_and_a_mismatch_is_named() {
        let c = config(serde_json::json!({}));
        for shape in SHAPE_TABLES {
            let mut default = config(serde_json::json!({}));
            default.stream_name = None;
            assert_eq!(default.stream(shape.schema), shape.stream);
            assert!(
                default
                    .upload_url(shape.schema)
                    .contains(&format!("/streams/{}?", shape.stream))
            );
            assert!(default.schema_issues(shape.schema).is_empty());
        }
        // The configured native stream with schema: ecs is another shape's stream.
        let issues = c.schema_issues(Schema::Ecs);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].key, "stream_name");
        assert!(
            issues[0].message.contains("schema: native")
                && issues[0].message.contains("Custom-SiemrelayEcs_CL"),
            "{}",
            issues[0].message
        );
        assert!(c.schema_issues(Schema::Native).is_empty());
        // A stream of the user's own DCR is theirs to declare.
        let own = config(serde_json::json!({"stream_name": "Custom-SecOpsEcs_CL"}));
        assert!(own.schema_issues(Schema::Ecs).is_empty());
        assert_eq!(own.stream(Schema::Ecs), "Custom-SecOpsEcs_CL");
        // columns maps native fields only.
        let mapped =
            config(serde_json::json!({"stream_name": null, "columns": {"Who": "attributes.user"}}));
        let keys: Vec<String> = mapped
            .schema_issues(Schema::Flat)
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(keys, ["columns"]);
        assert!(mapped.schema_issues(Schema::Native).is_empty());
    }
}
