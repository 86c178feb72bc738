//! The shared `schema` key in the exporters that encode whole requests themselves: webhook
//! items, Elasticsearch documents (with `@timestamp` and the reshaped template), Datadog logs
//! (reserved attributes kept, never twice) and CloudWatch Logs messages (through the fake).

use serde_json::{Value, json};
use siemrelay_core::{Event, Timestamp};
use siemrelay_e2e::fake::cloudwatch::{FakeCloudWatch, REGION};
use siemrelay_e2e::json_keys_in_order;
use siemrelay_exporters::cloudwatch_logs::{self, CloudWatchLogsConfig};
use siemrelay_exporters::datadog::{DatadogConfig, DatadogEncoder};
use siemrelay_exporters::delivery::Schema;
use siemrelay_exporters::delivery::http::{HttpEncoder, HttpOptions};
use siemrelay_exporters::elasticsearch::{ElasticsearchConfig, ElasticsearchEncoder};
use siemrelay_exporters::webhook::{WebhookConfig, WebhookEncoder};
use std::time::Duration;

fn blocked() -> Event {
    let mut event = Event::new("blocked");
    event.timestamp = Timestamp::parse_rfc3339("2026-11-20T09:00:37.123456Z").unwrap();
    event.summary = Some("prompt injection blocked".into());
    event.source = Some("keeptrusts".into());
    *event.attributes =
        json!({"action": "block", "policy_name": "prompt-injection", "user_id": "svc-1"})
            .as_object()
            .unwrap()
            .clone();
    event
}

#[test]
fn webhook_items_are_reshaped() {
    let config: WebhookConfig =
        serde_json::from_value(json!({"endpoint": "http://127.0.0.1:9/hook"})).unwrap();
    let encoder = WebhookEncoder::new(&config)
        .unwrap()
        .with_schema(Schema::Flat);
    let encoded = encoder.encode(&[blocked()]);
    let items: Vec<Value> = serde_json::from_slice(&encoded.requests[0].body).unwrap();
    assert_eq!(items[0]["action"], "block");
    assert!(items[0].get("attributes").is_none());
}

#[test]
fn elasticsearch_documents_are_reshaped_with_one_timestamp() {
    let config: ElasticsearchConfig =
        serde_json::from_value(json!({"endpoint": "http://127.0.0.1:9200"})).unwrap();
    for (schema, check) in [
        (Schema::Ecs, "/event/action"),
        (Schema::Flat, "/action"),
        (Schema::Ocsf, "/unmapped/attributes/action"),
    ] {
        let encoder = ElasticsearchEncoder::new("elasticsearch", &config)
            .unwrap()
            .with_schema(schema);
        let body = encoder.encode(&[blocked()]).requests.remove(0).body;
        let lines: Vec<&[u8]> = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let document: Value = serde_json::from_slice(lines[1]).unwrap();
        assert_eq!(
            document.pointer(check),
            Some(&json!("block")),
            "{schema:?}: {document}"
        );
        let keys = json_keys_in_order(lines[1]);
        assert_eq!(
            keys.iter().filter(|k| *k == "@timestamp").count(),
            1,
            "{schema:?}"
        );
        assert_eq!(document["@timestamp"], "2026-11-20T09:00:37.123456Z");
    }
}

#[test]
fn datadog_logs_keep_the_reserved_attributes_once() {
    let config: DatadogConfig = serde_json::from_value(json!({"api_key": "k"})).unwrap();
    let encoder = DatadogEncoder::new("datadog", &config)
        .unwrap()
        .with_schema(Schema::Flat);
    let body = encoder.encode(&[blocked()]).requests.remove(0).body;
    let logs: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(logs[0]["action"], "block");
    assert_eq!(logs[0]["message"], "prompt injection blocked");
    assert_eq!(logs[0]["ddsource"], "siemrelay");
    // `timestamp` is Datadog's (epoch milliseconds), not the flat form's RFC 3339 text.
    assert!(logs[0]["timestamp"].is_i64(), "{}", logs[0]);
    let text = String::from_utf8_lossy(&body);
    let object = &text[1..text.len() - 1];
    let keys = json_keys_in_order(object.as_bytes());
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "no member twice: {keys:?}");
}

#[tokio::test]
async fn cloudwatch_messages_are_reshaped() {
    let fake = FakeCloudWatch::start();
    let config: CloudWatchLogsConfig = serde_json::from_value(json!({
        "region": REGION, "log_group": "/security/siemrelay", "log_stream": "relay",
        "create_missing": true, "endpoint": fake.url(),
    }))
    .unwrap();
    let http = HttpOptions {
        schema: Schema::Ecs,
        ..Default::default()
    };
    let sink = cloudwatch_logs::build_with_credentials(
        "cloudwatch_logs/test",
        config,
        &http,
        Duration::from_secs(10),
        Some(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    siemrelay_e2e::fake::cloudwatch::ACCESS_KEY,
                    siemrelay_e2e::fake::cloudwatch::SECRET_KEY,
                    None,
                    None,
                    "test",
                ),
            ),
        ),
    )
    .unwrap();
    let mut event = blocked();
    event.timestamp = Timestamp::now();
    let report = sink.send(&[event]).await;
    assert!(
        matches!(
            report.outcomes,
            siemrelay_exporters::delivery::Outcomes::Uniform(
                siemrelay_exporters::delivery::Outcome::Delivered
            )
        ),
        "{report:?}"
    );
    let items = fake.read(|s| s.events.items.clone());
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["event"]["action"], "block", "{}", items[0]);
    assert_eq!(items[0]["rule"]["name"], "prompt-injection");
}
