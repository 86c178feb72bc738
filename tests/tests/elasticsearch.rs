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
            state.templates["siemrelay-events"]["index_patterns"],
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
