//! The `elasticsearch` exporter through a real `ExporterHandle` against the fake Elasticsearch
//! over real sockets: mapping and dated indices, limits, auth, gzip, the index template, the
//! pipeline parameter, per-item 429 (retried) and 400 (dead-lettered), replays answered 409,
//! data streams, the cluster down past `max_elapsed_time`, payload signatures and
//! `siemrelay test` outcomes.

mod support;

use siemrelay_core::config_types::Secret;
use siemrelay_core::{Event, Severity, Timestamp};
use siemrelay_e2e::fake::elasticsearch::{
    Behaviour, EsAuth, EsOptions, FakeElasticsearch, ItemFailure, Scripted,
};
use siemrelay_exporters::delivery::dead_letter::read_entries;
use siemrelay_exporters::delivery::http::{Compression, HttpOptions, SigningConfig};
use siemrelay_exporters::delivery::{ExporterState, Sink, test_delivery};
use siemrelay_exporters::elasticsearch::{self, ElasticsearchConfig};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Rig, fast_retry};

const API_KEY: &str = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";
const SECRET: &str = "shared-signing-secret";

/// Varied events over two days of event time (so two dated indices).
fn events(n: usize) -> Vec<Event> {
    let base = Timestamp::parse_rfc3339("2024-06-10T12:00:00.123Z").unwrap();
    (0..n)
        .map(|i| {
            let mut event = Event::new(["lockout", "policy_violation", "malware"][i % 3]);
            event.timestamp = Timestamp(base.0 + i as i64 * 20_000_000_000);
            event.severity = Severity::from_number([0, 5, 9, 13, 17, 21][i % 6]).unwrap();
            event.source = (i % 4 != 0).then(|| format!("sensor-{}", i % 5));
            event.summary = (i % 2 == 0).then(|| format!("event number {i}"));
            let env = ["prod", "stage"][i % 2];
            *event.attributes =
                serde_json::json!({"tags": {"env": env}, "user": format!("u{i}"), "n": i})
                    .as_object()
                    .unwrap()
                    .clone();
            if i % 3 == 0 {
                event
                    .resource
                    .insert("host.name".into(), format!("host-{}", i % 7).into());
            }
            event
        })
        .collect()
}

fn http(secret: Option<&str>, compression: Option<Compression>) -> HttpOptions {
    HttpOptions {
        compression,
        signing: secret.map(|s| SigningConfig {
            secret: Secret::new(s),
            header: "X-Siemrelay-Signature".into(),
            timestamp_header: "X-Siemrelay-Timestamp".into(),
            scheme: Default::default(),
        }),
        ..Default::default()
    }
}

fn sink(config: serde_json::Value, http: HttpOptions) -> Arc<dyn Sink> {
    let config: ElasticsearchConfig = serde_json::from_value(config).unwrap();
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    elasticsearch::build("elasticsearch/test", config, &http, Duration::from_secs(5)).unwrap()
}

fn plain_sink(url: &str) -> Arc<dyn Sink> {
    sink(serde_json::json!({"endpoint": url}), HttpOptions::default())
}

fn start(sink: Arc<dyn Sink>, delivery: serde_json::Value) -> Rig {
    Rig::start(
        "elasticsearch/test",
        sink,
        &support::delivery(delivery),
        1000,
        Duration::from_millis(50),
    )
}

fn ids(events: &[Event]) -> HashSet<String> {
    events.iter().map(|e| e.event_id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_are_stored_once_with_the_documented_mapping() {
    let fake = FakeElasticsearch::start_with(EsOptions {
        auth: EsAuth::ApiKey(API_KEY.into()),
        signing_secret: Some(SECRET.into()),
        ..Default::default()
    });
    let sink = sink(
        serde_json::json!({
            "endpoint": format!("{}/", fake.url()), "auth": {"api_key": API_KEY},
            "index_template": true, "pipeline": "siem-enrich", "max_events": 2000,
            "max_request_size": "2MiB",
        }),
        http(Some(SECRET), Some(Compression::Gzip)),
    );
    let running = start(sink, fast_retry());
    let sent = events(10_000);
    running.push(sent.clone()).await;
    assert!(fake.docs_reached(10_000, Duration::from_secs(30)).await);
    assert!(running.settled(10_000, Duration::from_secs(5)).await);
    fake.read(|state| {
        assert!(state.duplicates().is_empty(), "{:?}", state.duplicates());
        assert_eq!(state.doc_count(), 10_000);
        assert!(state.max_actions <= 2000);
        assert!(state.max_body_bytes <= 2 << 20);
        let template = &state.templates["siemrelay-elasticsearch-test"];
        assert_eq!(
            template["index_patterns"],
            serde_json::json!(["siemrelay-events-*"])
        );
        assert_eq!(
            template["template"]["mappings"]["properties"]["event_id"]["type"],
            "keyword"
        );
        assert_eq!(
            template["template"]["mappings"]["properties"]["@timestamp"]["type"],
            "date"
        );
        assert!(template.get("data_stream").is_none());
        assert_eq!(
            state.requests[0].method, "GET",
            "the template is read back first"
        );
        assert_eq!(
            state.requests[1].method, "PUT",
            "then installed, before any bulk"
        );
        assert_eq!(template["_meta"]["exporter"], "elasticsearch/test");
        for request in state.requests.iter().filter(|r| r.method == "POST") {
            assert_eq!(request.status, 200);
            assert_eq!(request.pipeline.as_deref(), Some("siem-enrich"));
            assert_eq!(
                request.headers["authorization"],
                format!("ApiKey {API_KEY}")
            );
            assert_eq!(request.headers["content-type"], "application/x-ndjson");
            assert_eq!(request.headers["content-encoding"], "gzip");
            assert!(request.wire_bytes < request.body_bytes);
        }
        for event in &sent {
            let id = event.event_id.to_string();
            let (index, doc) = state.doc(&id).unwrap_or_else(|| panic!("{id} missing"));
            let day = event.timestamp.to_datetime().format("%Y.%m.%d").to_string();
            assert_eq!(index, format!("siemrelay-events-{day}"));
            let mut expected = serde_json::json!({
                "@timestamp": event.timestamp.to_rfc3339(),
                "event_id": id,
                "observed_timestamp": event.observed_timestamp.to_rfc3339(),
                "event_type": event.event_type,
                "severity": event.severity.text,
                "severity_number": event.severity.number,
                "attributes": event.attributes,
            });
            let object = expected.as_object_mut().unwrap();
            if let Some(source) = &event.source {
                object.insert("source".into(), source.clone().into());
            }
            if let Some(summary) = &event.summary {
                object.insert("summary".into(), summary.clone().into());
            }
            if !event.resource.is_empty() {
                object.insert("resource".into(), event.resource.clone().into());
            }
            assert_eq!(doc, &expected);
        }
        assert_eq!(state.indices.len(), 3, "events span three UTC days");
        assert_eq!(state.signatures.failed, 0);
        assert_eq!(state.signatures.passed, state.requests.len());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_items_are_retried_alone_and_stored_exactly_once() {
    let fake = FakeElasticsearch::start();
    let sent = events(1000);
    let busy: Vec<String> = sent
        .iter()
        .step_by(3)
        .map(|e| e.event_id.to_string())
        .collect();
    fake.fail_ids(busy.clone(), ItemFailure::Rejected, 2);
    fake.fail_next_items(10, ItemFailure::UnavailableShards);
    let running = start(plain_sink(&fake.url()), fast_retry());
    running.push(sent.clone()).await;
    assert!(fake.docs_reached(1000, Duration::from_secs(10)).await);
    assert!(running.settled(1000, Duration::from_secs(5)).await);
    fake.read(|state| {
        assert!(state.duplicates().is_empty(), "{:?}", state.duplicates());
        assert_eq!(state.doc_count(), 1000);
        assert_eq!(state.item_failures, busy.len() * 2 + 10);
        // Retries carry only the failed items, so nothing was written twice or answered 409.
        assert_eq!(state.conflicts, 0);
        let retried: usize = state.requests.iter().skip(1).map(|r| r.actions).sum();
        assert!(retried < 1000, "only failed items are resent ({retried})");
    });
    let status = running.handle.status().snapshot();
    assert_eq!(status.events_sent, 1000);
    assert_eq!(status.events_dead_lettered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_errors_dead_letter_only_those_events() {
    let fake = FakeElasticsearch::start();
    let sent = events(1000);
    let bad: HashSet<String> = sent
        .iter()
        .skip(5)
        .step_by(20)
        .map(|e| e.event_id.to_string())
        .collect();
    fake.fail_ids(bad.clone(), ItemFailure::MapperParsing, usize::MAX);
    let running = start(plain_sink(&fake.url()), fast_retry());
    running.push(sent.clone()).await;
    assert!(running.settled(1000, Duration::from_secs(10)).await);
    fake.read(|state| {
        assert!(state.duplicates().is_empty());
        assert_eq!(state.doc_count(), 1000 - bad.len());
        assert!(bad.iter().all(|id| state.doc(id).is_none()));
        assert_eq!(state.item_failures, bad.len(), "400 items are not retried");
    });
    let (entries, problems) = read_entries(running.handle.dead_letter().path()).unwrap();
    assert!(problems.is_empty());
    let dead: HashSet<String> = entries
        .iter()
        .map(|e| e.event["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(dead, bad);
    for entry in &entries {
        assert!(
            entry
                .error
                .contains("item status 400, mapper_parsing_exception"),
            "{}",
            entry.error
        );
        assert_eq!(entry.attempts, 1);
    }
    let status = running.handle.status().snapshot();
    assert_eq!(status.events_sent as usize, 1000 - bad.len());
    assert_eq!(status.events_dead_lettered as usize, bad.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_event_answers_409_and_counts_as_delivered() {
    let fake = FakeElasticsearch::start();
    let running = start(plain_sink(&fake.url()), fast_retry());
    let sent = events(200);
    running.push(sent.clone()).await;
    assert!(running.settled(200, Duration::from_secs(10)).await);
    running.push(sent.clone()).await;
    assert!(running.settled(400, Duration::from_secs(10)).await);
    fake.read(|state| {
        assert_eq!(state.conflicts, 200);
        assert!(state.duplicates().is_empty());
        assert_eq!(state.doc_count(), 200);
    });
    let status = running.handle.status().snapshot();
    assert_eq!(status.events_sent, 400);
    assert_eq!(status.events_dead_lettered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_stream_mode_creates_into_the_stream_with_its_template() {
    let fake = FakeElasticsearch::start_with(EsOptions {
        auth: EsAuth::Basic {
            username: "siemrelay".into(),
            password: "pa:ss".into(),
        },
        ..Default::default()
    });
    let sink = sink(
        serde_json::json!({
            "endpoint": fake.url(), "auth": {"basic": {"username": "siemrelay", "password": "pa:ss"}},
            "mode": "data_stream", "data_stream": "logs-siemrelay-default", "index_template": true,
        }),
        HttpOptions::default(),
    );
    let running = start(sink, fast_retry());
    let sent = events(300);
    running.push(sent.clone()).await;
    assert!(running.settled(300, Duration::from_secs(10)).await);
    fake.read(|state| {
        let template = &state.templates["siemrelay-elasticsearch-test"];
        assert_eq!(
            template["index_patterns"],
            serde_json::json!(["logs-siemrelay-default"])
        );
        assert_eq!(template["data_stream"], serde_json::json!({}));
        assert_eq!(state.indices.len(), 1);
        assert_eq!(state.indices["logs-siemrelay-default"].len(), 300);
    });
    assert_eq!(running.handle.status().snapshot().events_dead_lettered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_template_is_installed_lazily_and_retried_before_the_first_bulk() {
    let fake = FakeElasticsearch::start();
    fake.script([Scripted::unavailable(), Scripted::too_many_requests(None)]);
    let sink = sink(
        serde_json::json!({"endpoint": fake.url(), "index_template": true}),
        HttpOptions::default(),
    );
    let running = start(sink, fast_retry());
    running.push(events(100)).await;
    assert!(running.settled(100, Duration::from_secs(10)).await);
    fake.read(|state| {
        let methods: Vec<(&str, u16)> = state
            .requests
            .iter()
            .map(|r| (r.method.as_str(), r.status))
            .collect();
        // Read back first (retried on 503 and 429), missing (404), then created.
        assert_eq!(
            &methods[..5],
            &[
                ("GET", 503),
                ("GET", 429),
                ("GET", 404),
                ("PUT", 200),
                ("POST", 200)
            ]
        );
        assert!(
            state.requests[3]
                .uri
                .ends_with("/_index_template/siemrelay-elasticsearch-test?create=true")
        );
        assert_eq!(state.doc_count(), 100);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_down_past_max_elapsed_time_degrades_fails_and_dead_letters() {
    let fake = FakeElasticsearch::start();
    fake.set_behaviour(Behaviour::Unavailable);
    let running = start(
        plain_sink(&fake.url()),
        serde_json::json!({"retry": {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "1s"}}),
    );
    let sent = events(300);
    running.push(sent.clone()).await;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.handle.status().snapshot().events_dead_lettered < 300 && Instant::now() < deadline
    {
        let state = running.handle.status().state();
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen.push(running.handle.status().state());
    assert!(seen.contains(&ExporterState::Degraded), "{seen:?}");
    assert_eq!(seen.last(), Some(&ExporterState::Failed), "{seen:?}");
    let status = running.handle.status().snapshot();
    let queued = running.handle.queue().depth().events as u64;
    assert_eq!(
        status.events_sent + status.events_dead_lettered + queued,
        300
    );
    let (entries, _) = read_entries(running.handle.dead_letter().path()).unwrap();
    let dead: HashSet<String> = entries
        .iter()
        .map(|e| e.event["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(dead, ids(&sent));
    for entry in &entries {
        assert!(entry.error.contains("retries exhausted"), "{}", entry.error);
        assert!(entry.error.contains("HTTP 503"), "{}", entry.error);
        assert!(entry.attempts >= 2);
    }
    assert_eq!(fake.read(|s| s.doc_count()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_signing_secret_fails_verification_at_the_cluster() {
    let fake = FakeElasticsearch::start_with(EsOptions {
        signing_secret: Some(SECRET.into()),
        ..Default::default()
    });
    let sink = sink(
        serde_json::json!({"endpoint": fake.url()}),
        http(Some("not-the-secret"), None),
    );
    let running = start(sink, fast_retry());
    running.push(events(50)).await;
    assert!(fake.docs_reached(50, Duration::from_secs(10)).await);
    let checks = fake.signatures();
    assert_eq!(checks.passed, 0);
    assert!(checks.failed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_reports_good_bad_key_and_unreachable_with_hints() {
    let fake = FakeElasticsearch::start_with(EsOptions {
        auth: EsAuth::ApiKey(API_KEY.into()),
        ..Default::default()
    });
    let with_key = |key: &str| {
        sink(
            serde_json::json!({"endpoint": fake.url(), "auth": {"api_key": key}}),
            HttpOptions::default(),
        )
    };
    let good = test_delivery(&*with_key(API_KEY), Duration::from_secs(5)).await;
    assert!(good.ok, "{good:?}");
    assert_eq!(good.http_status, Some(200));
    assert!(fake.read(|s| s.doc(&good.event_id).is_some()));

    let bad = test_delivery(&*with_key("d3Jvbmc6a2V5"), Duration::from_secs(5)).await;
    assert!(!bad.ok);
    assert_eq!(bad.outcome, "permanent");
    assert_eq!(bad.http_status, Some(401));
    assert!(bad.reply.unwrap().contains("security_exception"));
    assert!(bad.hint.unwrap().contains("auth.api_key"));

    let closed = format!("http://127.0.0.1:{}", siemrelay_e2e::free_port());
    let unreachable = test_delivery(&*plain_sink(&closed), Duration::from_secs(5)).await;
    assert!(!unreachable.ok);
    assert_eq!(unreachable.outcome, "retry");
    assert!(
        unreachable
            .hint
            .unwrap()
            .contains("cannot reach Elasticsearch")
    );

    fake.fail_next_items(1, ItemFailure::IndexNotFound);
    let missing = test_delivery(&*with_key(API_KEY), Duration::from_secs(5)).await;
    assert_eq!(missing.outcome, "permanent");
    assert!(missing.hint.unwrap().contains("index does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_request_over_max_content_length_is_split_until_it_fits() {
    let fake = FakeElasticsearch::start_with(EsOptions {
        max_content_length: 50_000,
        ..Default::default()
    });
    let running = start(plain_sink(&fake.url()), fast_retry());
    running.push(events(1000)).await;
    assert!(running.settled(1000, Duration::from_secs(10)).await);
    fake.read(|state| {
        assert!(state.requests_with_status(413) >= 1);
        assert!(state.max_body_bytes <= 50_000);
        assert_eq!(state.doc_count(), 1000);
        assert!(state.duplicates().is_empty());
    });
}
