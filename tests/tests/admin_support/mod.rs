//! Helpers shared by the admin acceptance tests: an admin API client, a Prometheus text reader,
//! and event senders (webhook NDJSON and OTLP/HTTP JSON).

#![allow(dead_code)]

use serde_json::Value;
use std::time::{Duration, Instant};

/// The admin token the tests use.
pub const TOKEN: &str = "admin-e2e-token-4f1d";

/// Talks to a running siemrelay's admin listener.
#[derive(Clone)]
pub struct Admin {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Admin {
    /// A client for `http://127.0.0.1:<port>` sending `token`.
    pub fn new(port: u16, token: Option<&str>) -> Admin {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Admin {
            base: format!("http://127.0.0.1:{port}"),
            token: token.map(str::to_string),
            client,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; returns the status and the body (JSON, or a string for other bodies).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GET, expecting 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// POST without a body.
    pub async fn post(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, None).await
    }

    /// The exporter with this id (`GET /api/v1/exporters/{id}`, id percent-encoded).
    pub async fn exporter(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/exporters/{}", encode(id))).await
    }

    /// `/metrics` text.
    pub async fn metrics(&self) -> String {
        match self.get("/metrics").await {
            Value::String(text) => text,
            other => panic!("/metrics is not text: {other}"),
        }
    }

    /// Polls `check` on the exporter until it holds or `timeout` passes; returns the last state.
    pub async fn wait_exporter(
        &self,
        id: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let exporter = self.exporter(id).await;
            if check(&exporter) || Instant::now() > deadline {
                return exporter;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Percent-encodes an exporter id for a path segment.
pub fn encode(id: &str) -> String {
    id.replace('%', "%25").replace('/', "%2F")
}

/// The value of a Prometheus sample `name{labels…}` whose labels include every `label=value`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| {
                series_labels
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            });
            if all { value.parse().ok() } else { None }
        })
}

/// `n` NDJSON events; every other one is `severity: low` when `mixed`. Returns the body and the
/// ids of the `high` ones (and all ids when not mixed).
pub fn ndjson(n: usize, tag: &str, mixed: bool) -> (String, Vec<String>) {
    let mut body = String::new();
    let mut kept = Vec::new();
    for i in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        let severity = if mixed && i % 2 == 1 { "low" } else { "high" };
        body.push_str(&format!(
            "{{\"event_id\":\"{id}\",\"event_type\":\"login\",\"severity\":\"{severity}\",\"source\":\"e2e\",\"summary\":\"{tag} {i}\"}}\n"
        ));
        if severity == "high" {
            kept.push(id);
        }
    }
    (body, kept)
}

/// `n` OTLP/HTTP JSON log records (severity ERROR); returns the body and their ids.
pub fn otlp_json(n: usize) -> (String, Vec<String>) {
    let mut records = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        records.push(format!(
            r#"{{"timeUnixNano":"1732000000000000000","severityNumber":17,"body":{{"stringValue":"otlp {i}"}},"attributes":[{{"key":"event.id","value":{{"stringValue":"{id}"}}}},{{"key":"event.name","value":{{"stringValue":"login"}}}}]}}"#
        ));
        ids.push(id);
    }
    (
        format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[]}},"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
            records.join(",")
        ),
        ids,
    )
}

/// Posts an NDJSON body to the webhook receiver; panics unless it is accepted.
pub async fn post_webhook(client: &reqwest::Client, port: u16, body: String) {
    let response = client
        .post(format!("http://127.0.0.1:{port}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("webhook request");
    let status = response.status();
    assert_eq!(
        status,
        200,
        "webhook answered {status}: {}",
        response.text().await.unwrap_or_default()
    );
}

/// Event ids found in NDJSON lines (the `event_id` field, or the HEC envelope's `event.event_id`).
pub fn ids_in_file(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|v| {
            v.get("event_id")
                .or_else(|| v.get("event").and_then(|e| e.get("event_id")))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}
