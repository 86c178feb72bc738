//! Issue 5 acceptance with the real binary: webhook receiver → `elasticsearch` exporter → fake
//! Elasticsearch, and `siemrelay test` against a good key, a bad key and an unreachable cluster.

use siemrelay_e2e::events::{ndjson_body, post_events, start_listening};
use siemrelay_e2e::fake::elasticsearch::{EsAuth, EsOptions, FakeElasticsearch, ItemFailure};
use siemrelay_e2e::{Siemrelay, free_port, run_test_command};
use std::time::Duration;

const API_KEY: &str = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";
const SECRET: &str = "e2e-signing-secret";

fn config(receiver_port: u16, endpoint: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
exporters:
  elasticsearch:
    endpoint: "{endpoint}"
    auth: {{ api_key: "${{env:ES_API_KEY}}" }}
    index: "siemrelay-events-%Y.%m.%d"
    index_template: true
    pipeline: siem-enrich
    max_events: 2000
    compression: gzip
    signing: {{ secret: "${{env:SIGNING_SECRET}}" }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 30s }}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [elasticsearch] }}
"#
    )
}

fn start(port: u16, fake: &FakeElasticsearch) -> Siemrelay {
    start_listening(
        &config(port, &fake.url()),
        &[("ES_API_KEY", API_KEY), ("SIGNING_SECRET", SECRET)],
        port,
    )
}

fn secured() -> EsOptions {
    EsOptions {
        auth: EsAuth::ApiKey(API_KEY.into()),
        signing_secret: Some(SECRET.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn ten_thousand_events_via_the_webhook_are_stored_once_each() {
    let fake = FakeElasticsearch::start_with(secured());
    let port = free_port();
    let mut relay = start(port, &fake);
    let sent = post_events(port, 100, 100).await;
    assert!(
        fake.events_reached(10_000, Duration::from_secs(60)).await,
        "only {} of 10,000 documents stored; logs:\n{}",
        fake.distinct_events(),
        relay.logs()
    );
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean shutdown");
    fake.read(|state| {
        assert!(state.duplicates().is_empty(), "{:?}", state.duplicates());
        assert_eq!(state.doc_count(), 10_000);
        assert_eq!(
            state.templates["siemrelay-elasticsearch"]["index_patterns"],
            serde_json::json!(["siemrelay-events-*"])
        );
        for id in &sent {
            let (index, doc) = state
                .doc(id)
                .unwrap_or_else(|| panic!("event {id} missing"));
            assert_eq!(index, "siemrelay-events-2026.11.20");
            assert_eq!(doc["event_id"], id.as_str());
            assert!(
                doc["@timestamp"]
                    .as_str()
                    .unwrap()
                    .starts_with("2026-11-20T09:00:00")
            );
            assert_eq!(doc["event_type"], "policy_violation");
            assert_eq!(doc["severity"], "high");
            assert_eq!(doc["severity_number"], 17);
            assert_eq!(doc["source"], "toktra");
            assert!(doc["attributes"]["user_email"].is_string());
            assert!(doc.get("timestamp").is_none());
        }
        assert!(state.max_actions <= 2000);
        for request in state.requests.iter().filter(|r| r.method == "POST") {
            assert_eq!(request.pipeline.as_deref(), Some("siem-enrich"));
            assert_eq!(
                request.headers["authorization"],
                format!("ApiKey {API_KEY}").as_str()
            );
            assert_eq!(request.headers["content-encoding"], "gzip");
        }
        assert_eq!(state.signatures.failed, 0);
        assert_eq!(state.signatures.passed, state.requests.len());
    });
}

#[tokio::test]
async fn rejected_items_are_retried_and_mapping_errors_dead_lettered() {
    let fake = FakeElasticsearch::start_with(secured());
    fake.fail_next_items(300, ItemFailure::Rejected);
    let port = free_port();
    let mut relay = start(port, &fake);
    let sent = post_events(port, 10, 100).await;
    assert!(
        fake.events_reached(1_000, Duration::from_secs(30)).await,
        "logs:\n{}",
        relay.logs()
    );
    // A second wave in which three events hit a mapping error: only those are dead-lettered.
    let (body, wave) = ndjson_body(0, 20);
    let bad: Vec<String> = wave.iter().take(3).cloned().collect();
    fake.fail_ids(bad.clone(), ItemFailure::MapperParsing, usize::MAX);
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("post the second wave");
    assert_eq!(response.status(), 200);
    assert!(fake.events_reached(1_017, Duration::from_secs(30)).await);
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean shutdown");
    fake.read(|state| {
        assert!(state.duplicates().is_empty(), "{:?}", state.duplicates());
        for id in sent.iter().chain(&wave[3..]) {
            assert_eq!(state.writes.get(id), Some(&1), "event {id}");
        }
        assert!(bad.iter().all(|id| state.doc(id).is_none()));
    });
    let dead = siemrelay_e2e::read_ndjson_files(
        &relay.dir().join("siemrelay-data/dead_letter"),
        "elasticsearch",
    );
    let mut dead_ids: Vec<&str> = dead
        .iter()
        .map(|line| line["event"]["event_id"].as_str().unwrap_or(""))
        .collect();
    dead_ids.sort_unstable();
    let mut expected: Vec<&str> = bad.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(dead_ids, expected, "logs:\n{}", relay.logs());
    for line in &dead {
        assert!(
            line["error"]
                .as_str()
                .unwrap()
                .contains("mapper_parsing_exception")
        );
    }
}

fn test_config(endpoint: &str, key: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{}" }}
exporters:
  elasticsearch: {{ endpoint: "{endpoint}", auth: {{ api_key: "{key}" }}, sending: {{ timeout: 5s }} }}
service:
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [elasticsearch] }}
"#,
        free_port()
    )
}

fn siemrelay_test(config: &str) -> (bool, String) {
    run_test_command("elasticsearch", config, &[])
}

#[test]
fn siemrelay_test_reports_good_bad_key_and_unreachable() {
    let fake = FakeElasticsearch::start_with(EsOptions {
        auth: EsAuth::ApiKey(API_KEY.into()),
        ..Default::default()
    });
    let (ok, text) = siemrelay_test(&test_config(&fake.url(), API_KEY));
    assert!(ok, "{text}");
    assert!(text.contains("delivered"), "{text}");
    assert_eq!(fake.distinct_events(), 1);

    let (ok, text) = siemrelay_test(&test_config(&fake.url(), "d3Jvbmc6a2V5"));
    assert!(!ok, "{text}");
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(
        text.contains("hint:") && text.contains("auth.api_key"),
        "{text}"
    );

    let (ok, text) = siemrelay_test(&test_config(
        &format!("http://127.0.0.1:{}", free_port()),
        API_KEY,
    ));
    assert!(!ok, "{text}");
    assert!(text.contains("cannot reach Elasticsearch"), "{text}");
}

#[path = "admin_support/mod.rs"]
mod admin_support;

fn templates_config(receiver_port: u16, admin_port: u16, endpoint: &str) -> String {
    let token = admin_support::TOKEN;
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
exporters:
  elasticsearch:
    endpoint: "{endpoint}"
    mode: data_stream
    index_template: true
  elasticsearch/archive:
    endpoint: "{endpoint}"
    index: "archive-%Y.%m.%d"
    index_template: true
    template: {{ number_of_shards: 2, number_of_replicas: 0, ilm_policy: siemrelay-90d }}
  elasticsearch/legacy:
    endpoint: "{endpoint}"
    index: "legacy-%Y.%m.%d"
    index_template: true
  elasticsearch/opensearch:
    endpoint: "{endpoint}"
    index: "os-%Y.%m.%d"
    index_template: true
    template: {{ ism_policy: siemrelay-30d, priority: 150 }}
service:
  admin: {{ endpoint: "127.0.0.1:{admin_port}", auth: {{ bearer_token: "{token}" }} }}
  pipelines:
    security:
      receivers: [webhook]
      exporters: [elasticsearch, elasticsearch/archive, elasticsearch/legacy, elasticsearch/opensearch]
"#
    )
}

/// Issue 25: each exporter installs its own template (`siemrelay-<id, / as ->`), marked in
/// `_meta`; two exporters no longer overwrite each other (before, both PUT `siemrelay-events`
/// and the second replaced the first), a template siemrelay did not create is left alone and
/// reported in the log and the exporter's status, and an ISM policy that would not attach
/// itself is reported.
#[tokio::test]
async fn each_exporter_installs_its_own_template_and_leaves_foreign_ones_alone() {
    let fake = FakeElasticsearch::start();
    let foreign = serde_json::json!({
        "index_patterns": ["legacy-*"],
        "priority": 50,
        "template": {"settings": {"index": {"number_of_shards": 5}}},
        "_meta": {"team": "soc", "description": "hand-made"},
    });
    fake.add_template("siemrelay-elasticsearch-legacy", foreign.clone());
    fake.add_ism_policy(
        "siemrelay-30d",
        serde_json::json!({"description": "30 days", "ism_template": [{"index_patterns": ["siemrelay-*"], "priority": 100}]}),
    );
    let (port, admin_port) = (free_port(), free_port());
    let config = templates_config(port, admin_port, &fake.url());
    for run in 0..2u32 {
        let mut relay = start_listening(&config, &[], port);
        post_events(port, 1, 10).await;
        let stored = 40 * (run + 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while fake.read(|s| s.writes.values().sum::<u32>()) < stored {
            assert!(
                std::time::Instant::now() < deadline,
                "run {run}: not every exporter stored the events; logs:\n{}",
                relay.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        fake.read(|state| {
            let ours = &state.templates["siemrelay-elasticsearch"];
            assert_eq!(ours["index_patterns"], serde_json::json!(["logs-siemrelay-default"]));
            assert_eq!(ours["data_stream"], serde_json::json!({}));
            assert_eq!(ours["_meta"]["managed_by"], "siemrelay");
            assert_eq!(ours["_meta"]["exporter"], "elasticsearch");
            let archive = &state.templates["siemrelay-elasticsearch-archive"];
            assert_eq!(archive["index_patterns"], serde_json::json!(["archive-*"]));
            assert!(archive.get("data_stream").is_none());
            assert_eq!(
                archive["template"]["settings"],
                serde_json::json!({"index": {"number_of_shards": 2, "number_of_replicas": 0, "lifecycle": {"name": "siemrelay-90d"}}})
            );
            assert_eq!(archive["_meta"]["exporter"], "elasticsearch/archive");
            assert_eq!(
                state.templates["siemrelay-elasticsearch-legacy"], foreign,
                "a template siemrelay did not create was changed"
            );
            assert_eq!(state.templates["siemrelay-elasticsearch-opensearch"]["priority"], 150);
            assert!(!state.templates.contains_key("siemrelay-events"));
            assert!(state.indices["logs-siemrelay-default"].len() >= 10);
            assert!(state.indices["archive-2026.11.20"].len() >= 10);
            // Created only when missing (`create=true`), updated only when its own; never a PUT
            // to the foreign name.
            let puts: Vec<&str> = state
                .requests
                .iter()
                .filter(|r| r.method == "PUT")
                .map(|r| r.uri.as_str())
                .collect();
            assert!(
                !puts.iter().any(|uri| uri.contains("legacy")),
                "{puts:?}"
            );
            let created = puts.iter().filter(|uri| uri.ends_with("?create=true")).count();
            assert_eq!(created, 3, "{puts:?}");
            assert_eq!(puts.len() as u32, 3 * (run + 1), "{puts:?}");
        });
        let admin = admin_support::Admin::new(admin_port, Some(admin_support::TOKEN));
        let legacy = admin.exporter("elasticsearch/legacy").await;
        let notice = legacy["notice"].as_str().unwrap_or_default();
        assert!(
            notice.contains("siemrelay-elasticsearch-legacy")
                && notice.contains("siemrelay did not create it")
                && notice.contains("left unchanged"),
            "{legacy}"
        );
        let opensearch = admin.exporter("elasticsearch/opensearch").await;
        assert!(
            opensearch["notice"]
                .as_str()
                .unwrap_or_default()
                .contains("ISM policy siemrelay-30d has no ism_template matching os-*"),
            "{opensearch}"
        );
        for id in ["elasticsearch", "elasticsearch/archive"] {
            let exporter = admin.exporter(id).await;
            assert!(exporter["notice"].is_null(), "{exporter}");
        }
        assert!(
            relay
                .logs()
                .contains("index template siemrelay-elasticsearch-legacy exists and siemrelay did not create it"),
            "{}",
            relay.logs()
        );
        let status = relay.terminate(Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()), "clean shutdown");
    }
}
