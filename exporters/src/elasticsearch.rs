//! The `elasticsearch` exporter: Bulk API NDJSON to `<endpoint>/_bulk` (Elasticsearch 7/8,
//! OpenSearch).
//!
//! Every event is a `create` action with `_id` = event id, so a resent event is never stored
//! twice (its item answers 409, counted as delivered). The index comes from the `index` template
//! filled with the UTC time of the event, or is the data stream (`mode: data_stream`). Per-item
//! results: 2xx / 409 delivered, 429 and 5xx retried (only those items), anything else
//! dead-lettered with the item's error type and reason. Whole requests: 413 split, 408/429/5xx
//! retried, 400/401/403/404 permanent. See README-elasticsearch.md.

mod bulk;
mod config;
pub mod factory;
mod index_name;
mod template;

pub use bulk::Document;
pub use config::TemplateSettings;
pub use config::{AuthConfig, BasicAuth, ElasticsearchConfig, Mode};
pub use index_name::{IndexTemplate, check_index_name};
pub use template::{MANAGED_BY, template_body, template_name};

use template::Ownership;

use crate::delivery::auth::{AuthError, StaticHeader};
use crate::delivery::endpoint::HttpEndpoint;
use crate::delivery::http::{
    CallError, Classified, Compression, HttpCalls, HttpEncoder, HttpOptions, HttpSink, Reply,
};
use crate::delivery::pack::{Encoded, EncodedRequest, LINES, pack};
use crate::delivery::{
    Outcome, Outcomes, RequestLimits, RequestRecord, Schema, Sink, default_hint,
};
use async_trait::async_trait;
use siemrelay_core::Event;
use std::sync::Arc;
use std::time::Duration;

/// Builds the Elasticsearch sink for a validated config.
pub fn build(
    id: &str,
    config: ElasticsearchConfig,
    http: &HttpOptions,
    timeout: Duration,
) -> anyhow::Result<Arc<dyn Sink>> {
    let encoder = ElasticsearchEncoder::new(id, &config)?.with_schema(http.schema);
    let sink = HttpSink::new(id, encoder, http, timeout, Compression::None)?;
    let auth = |made: Result<StaticHeader, AuthError>, key: &str| {
        made.map_err(|_| anyhow::anyhow!("exporter {id}: {key} is not a valid header value"))
    };
    Ok(match &config.auth {
        Some(AuthConfig {
            api_key: Some(key), ..
        }) => Arc::new(sink.with_auth(auth(
            StaticHeader::authorization("ApiKey", key),
            "auth.api_key",
        )?)),
        Some(AuthConfig {
            basic: Some(basic), ..
        }) => Arc::new(sink.with_auth(auth(
            StaticHeader::basic(&basic.username, &basic.password),
            "auth.basic",
        )?)),
        _ => Arc::new(sink),
    })
}

/// Where documents go.
enum Target {
    /// Dated indices.
    Indices(IndexTemplate),
    /// One data stream.
    DataStream(String),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Indices(template) => format!("indices {}", template.pattern()),
            Target::DataStream(name) => format!("data stream {name}"),
        }
    }
}

/// Encodes events as bulk `create` actions and judges bulk replies.
pub struct ElasticsearchEncoder {
    exporter: String,
    bulk_url: reqwest::Url,
    template_url: Option<reqwest::Url>,
    template_name: String,
    template_settings: TemplateSettings,
    /// `_plugins/_ism/policies/<template.ism_policy>`, when set.
    ism_url: Option<reqwest::Url>,
    /// What the template work left for an operator to know.
    notice: std::sync::Mutex<Option<String>>,
    target: Target,
    limits: RequestLimits,
    schema: Schema,
}

impl ElasticsearchEncoder {
    /// An encoder for `config`; fails on an invalid config.
    pub fn new(
        exporter: &str,
        config: &ElasticsearchConfig,
    ) -> anyhow::Result<ElasticsearchEncoder> {
        if let Some(issue) = config.validate().first() {
            anyhow::bail!("exporter {exporter}: {issue}");
        }
        let base = HttpEndpoint::base(&config.endpoint, config::ENDPOINT_EXAMPLE)
            .map_err(|e| anyhow::anyhow!("exporter {exporter}: endpoint: {e}"))?;
        let join = |path: &str| {
            reqwest::Url::parse(&base.join(path))
                .map_err(|e| anyhow::anyhow!("exporter {exporter}: endpoint: {e}"))
        };
        let mut bulk_url = join("_bulk")?;
        if let Some(pipeline) = &config.pipeline {
            bulk_url.query_pairs_mut().append_pair("pipeline", pipeline);
        }
        let template_name = template_name(exporter);
        let template_url = if config.index_template {
            Some(join(&format!("_index_template/{template_name}"))?)
        } else {
            None
        };
        let template_settings = config.template.clone().unwrap_or_default();
        let ism_url = match &template_settings.ism_policy {
            Some(policy) => Some(join(&format!("_plugins/_ism/policies/{policy}"))?),
            None => None,
        };
        let target = match config.mode {
            Mode::Index => Target::Indices(
                IndexTemplate::parse(&config.index)
                    .map_err(|e| anyhow::anyhow!("exporter {exporter}: index: {e}"))?,
            ),
            Mode::DataStream => Target::DataStream(config.data_stream.clone()),
        };
        Ok(ElasticsearchEncoder {
            exporter: exporter.to_string(),
            bulk_url,
            template_url,
            template_name,
            template_settings,
            ism_url,
            notice: std::sync::Mutex::new(None),
            target,
            limits: RequestLimits {
                max_events: config.max_events,
                max_bytes: config.max_request_size.as_usize(),
            },
            schema: Schema::Native,
        })
    }

    /// Writes each document in `schema` (the shared `schema` key); a reshaped document's index
    /// template maps only `@timestamp` and leaves the rest to the cluster's dynamic mappings.
    pub fn with_schema(self, schema: Schema) -> ElasticsearchEncoder {
        ElasticsearchEncoder { schema, ..self }
    }

    /// Installs this exporter's index template once: reads it back first; creates it
    /// (`?create=true`, so a template made meanwhile is never replaced) when missing, updates it
    /// when its `_meta` says this exporter made it, and leaves any other template of that name
    /// alone, saying so in the log and the status notice. Transport errors, 408, 429 and 5xx
    /// are retried with the send (`Err`); any other refusal is reported and not retried (the
    /// bulk requests then show whether the cluster can take the documents without it).
    async fn install_template(
        &self,
        calls: &HttpCalls<'_>,
        url: &reqwest::Url,
    ) -> Result<(), Outcome> {
        let name = &self.template_name;
        let (pattern, data_stream) = self.target_pattern();
        let existing = self
            .call(calls, calls.client().get(url.clone()), None, "reading")
            .await?;
        let create = match existing.status {
            404 => true,
            200..=299 => {
                let found: serde_json::Value =
                    serde_json::from_slice(&existing.body).unwrap_or_default();
                let template = found["index_templates"]
                    .as_array()
                    .and_then(|list| list.iter().find(|t| t["name"] == name.as_str()))
                    .map(|t| t["index_template"].clone())
                    .unwrap_or_default();
                match template::ownership(&template, &self.exporter) {
                    Ownership::Ours => false,
                    Ownership::Foreign(why) => {
                        self.left_alone(&format!(
                            "index template {name} exists and siemrelay did not create it ({why}): left unchanged; siemrelay sends without installing its own. Delete or rename it, or set index_template: false"
                        ));
                        return Ok(());
                    }
                }
            }
            status => return self.refused(status, &existing.body, "read"),
        };
        let mut body = template_body(
            &self.exporter,
            &pattern,
            data_stream,
            &self.template_settings,
        );
        if self.schema != Schema::Native {
            body["template"]["mappings"]["properties"] =
                serde_json::json!({"@timestamp": {"type": "date"}});
        }
        let body = body.to_string().into_bytes();
        let mut put_url = url.clone();
        if create {
            put_url.query_pairs_mut().append_pair("create", "true");
        }
        let request = calls
            .client()
            .put(put_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let reply = self.call(calls, request, Some(body), "installing").await?;
        let text = String::from_utf8_lossy(&reply.body);
        match reply.status {
            200..=299 => {
                let what = if create {
                    "index template created"
                } else {
                    "index template updated (siemrelay's own)"
                };
                tracing::info!(exporter = %self.exporter, template = %name, pattern = %pattern, "{what}");
                self.set_notice(None);
                self.check_ism_policy(calls, &pattern).await
            }
            400 if create && text.contains("already exists") => {
                self.left_alone(&format!(
                    "index template {name} was created by someone else while siemrelay was checking for it: left unchanged; siemrelay sends without installing its own"
                ));
                Ok(())
            }
            status => self.refused(status, &reply.body, "install"),
        }
    }

    /// With `template.ism_policy`: checks that the OpenSearch policy exists and attaches itself
    /// to the indices through its `ism_template`; reports it when not (it does not stop sending).
    async fn check_ism_policy(&self, calls: &HttpCalls<'_>, pattern: &str) -> Result<(), Outcome> {
        let (Some(policy), Some(url)) = (&self.template_settings.ism_policy, &self.ism_url) else {
            return Ok(());
        };
        let reply = self
            .call(
                calls,
                calls.client().get(url.clone()),
                None,
                "reading the ISM policy of",
            )
            .await?;
        let problem = match reply.status {
            200..=299 => {
                let found: serde_json::Value =
                    serde_json::from_slice(&reply.body).unwrap_or_default();
                if template::ism_template_covers(&found["policy"], pattern) {
                    return Ok(());
                }
                format!(
                    "ISM policy {policy} has no ism_template matching {pattern}: OpenSearch will not attach it to new indices; add \"ism_template\": [{{\"index_patterns\": [\"{pattern}\"], \"priority\": 100}}] to the policy"
                )
            }
            404 => format!(
                "ISM policy {policy} does not exist: create it with an ism_template matching {pattern}"
            ),
            status => format!(
                "cannot read ISM policy {policy} (HTTP {status}): {}",
                bulk::request_error(&reply.body)
            ),
        };
        tracing::warn!(exporter = %self.exporter, template = %self.template_name, "{problem}");
        self.set_notice(Some(problem));
        Ok(())
    }

    /// Sends one template call; transport failures are retried with the send.
    async fn call(
        &self,
        calls: &HttpCalls<'_>,
        request: reqwest::RequestBuilder,
        body: Option<Vec<u8>>,
        doing: &str,
    ) -> Result<crate::delivery::http::Response, Outcome> {
        let name = &self.template_name;
        let (response, _) = calls
            .send(request, body.unwrap_or_default().into())
            .await
            .map_err(|e| match &e {
                CallError::Auth(_) => e.outcome(),
                CallError::Transport { .. } => {
                    Outcome::retry(format!("{doing} index template {name} failed: {e}"))
                }
            })?;
        match response.status {
            408 | 429 | 500..=599 => Err(Outcome::retry(format!(
                "{doing} index template {name} failed: HTTP {}: {}",
                response.status,
                bulk::request_error(&response.body)
            ))),
            _ => Ok(response),
        }
    }

    /// A refusal to read or install the template: reported, not retried.
    fn refused(&self, status: u16, body: &[u8], doing: &str) -> Result<(), Outcome> {
        let error = bulk::request_error(body);
        let problem = format!(
            "cannot {doing} index template {} (HTTP {status}: {error}); needs the manage_index_templates privilege; sending without it",
            self.template_name
        );
        tracing::error!(exporter = %self.exporter, template = %self.template_name, status = %status, "{problem}");
        self.set_notice(Some(problem));
        Ok(())
    }

    fn left_alone(&self, problem: &str) {
        tracing::error!(exporter = %self.exporter, template = %self.template_name, "{problem}");
        self.set_notice(Some(problem.to_string()));
    }

    fn set_notice(&self, notice: Option<String>) {
        *self.notice.lock().unwrap_or_else(|p| p.into_inner()) = notice;
    }

    /// The template's index pattern and whether it is for a data stream.
    fn target_pattern(&self) -> (String, bool) {
        match &self.target {
            Target::Indices(template) => (template.pattern(), false),
            Target::DataStream(name) => (name.clone(), true),
        }
    }
}

#[async_trait]
impl HttpEncoder for ElasticsearchEncoder {
    fn limits(&self) -> RequestLimits {
        self.limits
    }

    /// The default encoding, with an index-name cache for the batch (`write_event` has no
    /// per-batch state).
    fn encode(&self, events: &[Event]) -> Encoded {
        let (mut namer, stream) = match &self.target {
            Target::Indices(template) => (Some(index_name::IndexNamer::new(template)), ""),
            Target::DataStream(name) => (None, name.as_str()),
        };
        pack(
            events.iter().enumerate(),
            self.limits,
            LINES,
            |event, out| {
                let index = match &mut namer {
                    Some(namer) => namer.name(event.timestamp),
                    None => stream,
                };
                Ok(bulk::write_create(event, index, self.schema, out)?)
            },
        )
    }

    fn content_type(&self) -> &'static str {
        "application/x-ndjson"
    }

    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        client.post(self.bulk_url.clone())
    }

    /// Installs the index template (`index_template: true`) before the first bulk request.
    async fn start(&self, calls: &HttpCalls<'_>) -> Result<(), Outcome> {
        match &self.template_url {
            Some(url) => self.install_template(calls, url).await,
            None => Ok(()),
        }
    }

    fn notice(&self) -> Option<String> {
        self.notice
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn classify(&self, reply: &Reply<'_>, request: &EncodedRequest) -> Classified {
        let events = request.indices.len();
        let outcome = match reply.status {
            200..=299 => return classify_bulk(reply.body, events),
            413 => return Classified::Split,
            408 | 429 | 500..=599 => Outcome::Retry {
                reason: format!(
                    "Elasticsearch answered HTTP {}: {}",
                    reply.status,
                    bulk::request_error(reply.body)
                )
                .into(),
                after: reply.retry_after(),
            },
            status @ (401 | 403) => {
                let error = bulk::request_error(reply.body);
                tracing::error!(exporter = %self.exporter, status = %status, %error, "Elasticsearch refused the credentials or privileges");
                Outcome::permanent(format!(
                    "Elasticsearch refused the request (HTTP {status}): {error}"
                ))
            }
            status => Outcome::permanent(format!(
                "Elasticsearch rejected the bulk request (HTTP {status}): {}",
                bulk::request_error(reply.body)
            )),
        };
        Classified::Outcomes(Outcomes::Uniform(outcome))
    }

    fn hint(&self, record: &RequestRecord) -> Option<String> {
        let reply = record.reply.as_deref().unwrap_or("");
        let target = self.target.describe();
        match record.http_status {
            None => Some(format!(
                "cannot reach Elasticsearch at {}: check endpoint, TLS settings and firewall",
                self.bulk_url
            )),
            Some(401) => Some(
                "Elasticsearch refused the credentials (HTTP 401): check auth.api_key (the base64 `encoded` value of the key) or auth.basic".into(),
            ),
            Some(403) => Some(format!(
                "the credentials lack privileges (HTTP 403): they need create_doc and auto_configure (or create_index) on {target}"
            )),
            Some(404) => Some(
                "not found (HTTP 404): endpoint must be the cluster URL, without /_bulk".into(),
            ),
            Some(200..=299) if reply.contains("index_not_found_exception") => Some(format!(
                "the index does not exist and may not be auto-created: create {target} or allow action.auto_create_index"
            )),
            Some(200..=299)
                if reply.contains("mapper_parsing_exception")
                    || reply.contains("document_parsing_exception") =>
            {
                Some("a field of the event conflicts with the index mapping: see the item error".into())
            }
            Some(200..=299) if reply.contains("cluster_block_exception") => Some(
                "the index is read-only (disk flood stage or a block): free disk space or lift the block".into(),
            ),
            Some(200..=299) if reply.contains("es_rejected_execution_exception") => Some(
                "Elasticsearch is busy (write queue full): it will be retried; lower concurrency or batch size".into(),
            ),
            _ => default_hint(record),
        }
    }
}

/// Judges a 2xx bulk reply: `errors: false` means all delivered; otherwise item by item.
fn classify_bulk(body: &[u8], events: usize) -> Classified {
    let unreadable = |e: serde_json::Error| {
        Classified::Outcomes(Outcomes::Uniform(Outcome::retry(format!(
            "unreadable bulk reply ({e}); resending (create with _id prevents duplicates)"
        ))))
    };
    match serde_json::from_slice::<bulk::BulkHead>(body) {
        Ok(head) if !head.errors => Classified::Outcomes(Outcomes::Uniform(Outcome::Delivered)),
        Ok(_) => match serde_json::from_slice::<bulk::BulkReply>(body) {
            Ok(reply) => {
                let mut outcomes: Vec<Outcome> = reply
                    .items
                    .iter()
                    .take(events)
                    .map(|item| bulk::item_outcome(item.result()))
                    .collect();
                outcomes.resize(
                    events,
                    Outcome::retry("the bulk reply has no item for this document; resending"),
                );
                Classified::Outcomes(Outcomes::PerEvent(outcomes))
            }
            Err(e) => unreadable(e),
        },
        Err(e) => unreadable(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: serde_json::Value) -> ElasticsearchConfig {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn config_checks_name_the_key() {
        let ok = config(serde_json::json!({"endpoint": "http://127.0.0.1:9200"}));
        assert!(ok.validate().is_empty());
        assert_eq!(ok.max_events, 5000);
        assert_eq!(ok.max_request_size.0, 10 << 20);
        for (value, key) in [
            (serde_json::json!({"endpoint": "es:9200"}), "endpoint"),
            (
                serde_json::json!({"endpoint": "http://h", "index": "Bad-%Y"}),
                "index",
            ),
            (
                serde_json::json!({"endpoint": "http://h", "mode": "data_stream", "data_stream": "a b"}),
                "data_stream",
            ),
            (
                serde_json::json!({"endpoint": "http://h", "auth": {}}),
                "auth",
            ),
            (
                serde_json::json!({"endpoint": "http://h", "auth": {"api_key": "k", "basic": {"username": "u", "password": "p"}}}),
                "auth",
            ),
            (
                serde_json::json!({"endpoint": "http://h", "index": "%Y-events", "index_template": true}),
                "index",
            ),
            (
                serde_json::json!({"endpoint": "http://h", "max_events": 0}),
                "max_events",
            ),
        ] {
            let issues = config(value.clone()).validate();
            assert_eq!(issues.len(), 1, "{value}: {issues:?}");
            assert_eq!(issues[0].key, key, "{value}");
        }
        assert!(
            serde_json::from_value::<ElasticsearchConfig>(
                serde_json::json!({"endpoint": "http://h", "indx": "x"})
            )
            .is_err()
        );
    }

    #[test]
    fn bulk_url_carries_the_pipeline() {
        let cfg =
            config(serde_json::json!({"endpoint": "http://127.0.0.1:9200/", "pipeline": "geo ip"}));
        let encoder = ElasticsearchEncoder::new("elasticsearch", &cfg).unwrap();
        assert_eq!(
            encoder.bulk_url.as_str(),
            "http://127.0.0.1:9200/_bulk?pipeline=geo+ip"
        );
    }

    #[test]
    fn error_free_replies_deliver_everything_and_item_errors_map_per_event() {
        let all = classify_bulk(
            br#"{"took":3,"errors":false,"items":[{"create":{"status":201}}]}"#,
            1,
        );
        assert_eq!(
            all,
            Classified::Outcomes(Outcomes::Uniform(Outcome::Delivered))
        );
        let mixed = classify_bulk(
            br#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}}]}"#,
            3,
        );
        let Classified::Outcomes(Outcomes::PerEvent(list)) = mixed else {
            panic!("expected per-event outcomes")
        };
        assert_eq!(list.len(), 3);
        assert_eq!(list[0], Outcome::Delivered);
        assert!(matches!(list[1], Outcome::Retry { .. }));
        assert!(matches!(list[2], Outcome::Retry { .. }));
        assert!(matches!(
            classify_bulk(b"<html>", 2),
            Classified::Outcomes(Outcomes::Uniform(Outcome::Retry { .. }))
        ));
    }
}
