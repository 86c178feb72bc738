//! The `sentinel` exporter through a real `ExporterHandle` against the fake Entra ID + Logs
//! Ingestion endpoint over real sockets: 10,000 events with the default mapping, token request
//! checks, a token that expires mid-run, 413 split, 429 with Retry-After, 401 → one refresh,
//! 403 permanent, endpoint down past max_elapsed_time, and `siemrelay test` outcomes.

mod support;

use siemrelay_core::{Event, Severity, Timestamp};
use siemrelay_e2e::fake::azure::{
    AzureOptions, CLIENT_ID, CLIENT_SECRET, DCR_ID, FakeAzure, SCOPE, STREAM, Scripted, TENANT_ID,
    record_id,
};
use siemrelay_exporters::delivery::Schema;
use siemrelay_exporters::delivery::dead_letter::read_entries;
use siemrelay_exporters::delivery::http::HttpOptions;
use siemrelay_exporters::delivery::schema::carried_native_json;
use siemrelay_exporters::delivery::{ExporterState, Sink, test_delivery};
use siemrelay_exporters::sentinel::{self, SentinelConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Rig, fast_retry};

fn config(url: &str, secret: &str) -> SentinelConfig {
    serde_json::from_value(serde_json::json!({
        "endpoint": url, "authority_host": url, "dcr_immutable_id": DCR_ID, "stream_name": STREAM,
        "tenant_id": TENANT_ID, "client_id": CLIENT_ID, "client_secret": secret,
    }))
    .unwrap()
}

fn sink_for(url: &str, secret: &str) -> Arc<dyn Sink> {
    sentinel::build(
        "sentinel/test",
        config(url, secret),
        &HttpOptions::default(),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn sink(fake: &FakeAzure) -> Arc<dyn Sink> {
    sink_for(&fake.url(), CLIENT_SECRET)
}

fn events(n: usize) -> Vec<Event> {
    let base = Timestamp::parse_rfc3339("2026-06-10T12:00:00.123456Z").unwrap();
    (0..n)
        .map(|i| {
            let mut event = Event::new(["lockout", "policy_violation", "malware"][i % 3]);
            event.timestamp = Timestamp(base.0 + i as i64 * 1_000_000_000);
            event.severity = Severity::from_number([5, 9, 13, 17, 21][i % 5]).unwrap();
            event.source = (i % 4 != 0).then(|| format!("sensor-{}", i % 5));
            event.summary = Some(format!("event number {i}"));
            *event.attributes = serde_json::json!({"user": format!("u{i}"), "n": i})
                .as_object()
                .unwrap()
                .clone();
            if i % 2 == 0 {
                event
                    .resource
                    .insert("host.name".into(), format!("host-{}", i % 7).into());
            }
            event
        })
        .collect()
}

fn start(sink: Arc<dyn Sink>, delivery: serde_json::Value) -> Rig {
    Rig::start(
        "sentinel/test",
        sink,
        &support::delivery(delivery),
        2000,
        Duration::from_millis(50),
    )
}

fn time(t: Timestamp) -> String {
    t.to_datetime()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_arrive_once_as_flat_records() {
    let fake = FakeAzure::start();
    let running = start(sink(&fake), fast_retry());
    let sent = events(10_000);
    running.push(sent.clone()).await;
    assert!(fake.events_reached(10_000, Duration::from_secs(20)).await);
    assert!(running.settled(10_000, Duration::from_secs(5)).await);
    fake.read(|state| {
        assert_eq!(
            state.records.total(),
            10_000,
            "{:?}",
            state.records.duplicates()
        );
        assert_eq!(state.tokens_issued, 1, "the token is cached");
        assert_eq!(state.last_token_form["grant_type"], "client_credentials");
        assert_eq!(state.last_token_form["scope"], SCOPE);
        assert_eq!(state.last_token_form["client_id"], CLIENT_ID);
        for upload in &state.uploads {
            assert_eq!(upload.status, 204);
            assert!(
                upload.uri.ends_with("?api-version=2023-01-01"),
                "{}",
                upload.uri
            );
            assert!(upload.body_bytes <= 1_000_000);
            assert_eq!(upload.headers["content-encoding"], "gzip");
            assert_eq!(upload.headers["content-type"], "application/json");
            assert!(
                upload.headers["authorization"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer ")
            );
            assert!(upload.headers.contains_key("x-ms-client-request-id"));
        }
        let by_id = state.records_by_id();
        for event in &sent {
            let id = event.event_id.to_string();
            let record = by_id
                .get(id.as_str())
                .copied()
                .unwrap_or_else(|| panic!("{id} missing"));
            let mut expected = serde_json::json!({
                "TimeGenerated": time(event.timestamp),
                "EventTime": time(event.timestamp),
                "EventId": id,
                "EventType": event.event_type,
                "Severity": event.severity.text,
                "SeverityNumber": event.severity.number,
                "Summary": event.summary,
                "Attributes": event.attributes,
                "ObservedTime": time(event.observed_timestamp),
            });
            let object = expected.as_object_mut().unwrap();
            if let Some(source) = &event.source {
                object.insert("Source".into(), source.clone().into());
            }
            if !event.resource.is_empty() {
                object.insert("Resource".into(), event.resource.clone().into());
            }
            // What was sent: the fake, like Log Analytics, replaces a TimeGenerated more than
            // 2 days old and keeps the sent value aside.
            let mut sent_record = record.clone();
            if let Some(object) = sent_record.as_object_mut()
                && let Some(original) = object.remove("_OriginalTimeGenerated")
            {
                object.insert("TimeGenerated".into(), original);
            }
            assert_eq!(sent_record, expected);
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_mid_run_is_refreshed_before_use() {
    let fake = FakeAzure::start_with(AzureOptions {
        token_lifetime: 1,
        ..Default::default()
    });
    let running = start(sink(&fake), fast_retry());
    running.push(events(100)).await;
    assert!(fake.events_reached(100, Duration::from_secs(10)).await);
    // Past the refresh point (half the 1 s lifetime) and past expiry.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let more = events(100);
    running.push(more).await;
    assert!(fake.events_reached(200, Duration::from_secs(10)).await);
    fake.read(|state| {
        assert!(state.tokens_issued >= 2, "{}", state.tokens_issued);
        assert_eq!(state.uploads_with(401), 0, "an expired token was used");
        assert_eq!(state.records.total(), 200);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_gets_401_then_one_refresh_and_the_resend_succeeds() {
    let fake = FakeAzure::start();
    let running = start(sink(&fake), fast_retry());
    running.push(events(50)).await;
    assert!(fake.events_reached(50, Duration::from_secs(10)).await);
    fake.revoke_tokens();
    running.push(events(50)).await;
    assert!(fake.events_reached(100, Duration::from_secs(10)).await);
    assert!(running.settled(100, Duration::from_secs(5)).await);
    fake.read(|state| {
        assert_eq!(state.uploads_with(401), 1);
        assert_eq!(state.tokens_issued, 2);
        assert_eq!(state.records.total(), 100);
    });
    let status = running.handle.status().snapshot();
    assert_eq!(status.events_dead_lettered, 0);
    assert_eq!(
        status.events_retried, 0,
        "the 401 resend happens within the same send"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_is_split_and_429_waits_for_retry_after() {
    let fake = FakeAzure::start();
    fake.set_max_body(60_000);
    fake.script([Scripted::throttled(1)]);
    let running = start(sink(&fake), fast_retry());
    let started = Instant::now();
    running.push(events(1000)).await;
    assert!(fake.events_reached(1000, Duration::from_secs(20)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert!(running.settled(1000, Duration::from_secs(5)).await);
    fake.read(|state| {
        assert_eq!(state.uploads_with(429), 1);
        assert!(state.uploads_with(413) >= 1);
        assert!(
            state
                .uploads
                .iter()
                .filter(|u| u.status == 204)
                .all(|u| u.body_bytes <= 60_000)
        );
        assert_eq!(state.records.total(), 1000);
    });
    assert_eq!(running.handle.status().snapshot().events_dead_lettered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_role_is_permanent_with_the_service_message() {
    let fake = FakeAzure::start();
    fake.set_forbidden(true);
    let running = start(sink(&fake), fast_retry());
    running.push(events(20)).await;
    assert!(running.settled(20, Duration::from_secs(10)).await);
    let (entries, problems) = read_entries(running.handle.dead_letter().path()).unwrap();
    assert!(problems.is_empty());
    assert_eq!(entries.len(), 20);
    assert!(
        entries[0].error.contains("HTTP 403"),
        "{}",
        entries[0].error
    );
    assert!(
        entries[0].error.contains("OperationFailed"),
        "{}",
        entries[0].error
    );
    assert!(
        entries[0]
            .error
            .contains("does not have access to ingest data")
    );
    assert_eq!(entries[0].attempts, 1);
    assert_eq!(fake.read(|s| s.uploads.len()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_past_max_elapsed_time_degrades_fails_and_dead_letters() {
    let fake = FakeAzure::start();
    fake.server().go_down();
    let running = start(
        sink(&fake),
        serde_json::json!({"retry": {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "1s"}}),
    );
    running.push(events(100)).await;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.handle.status().snapshot().events_dead_lettered < 100 && Instant::now() < deadline
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
        100
    );
    let (entries, _) = read_entries(running.handle.dead_letter().path()).unwrap();
    assert_eq!(entries.len(), 100);
    assert!(
        entries[0].error.contains("retries exhausted"),
        "{}",
        entries[0].error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_reports_good_bad_secret_and_unreachable_with_hints() {
    let fake = FakeAzure::start();
    let good = test_delivery(&*sink(&fake), Duration::from_secs(5)).await;
    assert!(good.ok, "{good:?}");
    assert_eq!(good.http_status, Some(204));
    assert!(fake.read(|s| s.record(&good.event_id).is_some()));

    let bad = test_delivery(
        &*sink_for(&fake.url(), "wrong-secret"),
        Duration::from_secs(5),
    )
    .await;
    assert!(!bad.ok);
    assert_eq!(bad.outcome, "permanent");
    let reply = bad.reply.clone().unwrap_or_default();
    assert!(
        reply.contains("invalid_client") && reply.contains("AADSTS7000215"),
        "{reply}"
    );
    assert!(!reply.contains("wrong-secret"));
    assert!(bad.hint.unwrap().contains("client_secret"));

    let closed = format!("http://127.0.0.1:{}", siemrelay_e2e::free_port());
    let unreachable =
        test_delivery(&*sink_for(&closed, CLIENT_SECRET), Duration::from_secs(5)).await;
    assert!(!unreachable.ok);
    assert_eq!(unreachable.outcome, "retry");
    assert!(unreachable.hint.unwrap().contains("cannot reach"));
}

/// A sink writing `schema`, to the stream of that schema (no `stream_name`: the default).
fn shaped_sink(fake: &FakeAzure, schema: Schema, extra: serde_json::Value) -> Arc<dyn Sink> {
    let mut config = serde_json::json!({
        "endpoint": fake.url(), "authority_host": fake.url(), "dcr_immutable_id": DCR_ID,
        "tenant_id": TENANT_ID, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let http = HttpOptions {
        schema,
        ..HttpOptions::default()
    };
    sentinel::build(
        &format!("sentinel/{}", schema.name()),
        serde_json::from_value(config).unwrap(),
        &http,
        Duration::from_secs(5),
    )
    .unwrap()
}

/// Issue 25: every shape reaches its own stream of the DCR the shipped template deploys (the
/// fake, like the DCR, keeps only declared columns with values of their declared types, and
/// lists what it would drop: nothing here), once per event, with signed events carrying their
/// native form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_schema_reaches_its_own_stream_with_only_declared_columns() {
    let fake = FakeAzure::start();
    let mut sent = events(400);
    for (i, event) in sent.iter_mut().enumerate().filter(|(i, _)| i % 4 == 0) {
        event.signature = Some(Box::new(siemrelay_core::Signature {
            alg: "HMAC-SHA256".into(),
            kid: "k1".into(),
            value: format!("{i:064x}").into(),
            prev: None,
        }));
        event.attributes.insert("action".into(), "block".into());
    }
    let rigs: Vec<Rig> = Schema::ALL
        .into_iter()
        .map(|schema| {
            start(
                shaped_sink(&fake, schema, serde_json::json!({})),
                fast_retry(),
            )
        })
        .collect();
    for rig in &rigs {
        rig.push(sent.clone()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.read(|s| s.records.total()) < 4 * sent.len() {
        assert!(Instant::now() < deadline, "too few records arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for rig in &rigs {
        assert!(rig.settled(sent.len() as u64, Duration::from_secs(5)).await);
    }
    fake.read(|state| {
        assert!(
            state.dropped.is_empty(),
            "{:?}",
            &state.dropped[..state.dropped.len().min(5)]
        );
        assert_eq!(
            state.records.total(),
            4 * sent.len(),
            "{:?}",
            state.records.duplicates()
        );
        assert!(state.uploads.iter().all(|u| u.status == 204));
        for schema in Schema::ALL {
            let stream = sentinel::shape_table(schema).stream;
            let rows = state.records_of(stream);
            assert_eq!(rows.len(), sent.len(), "{stream}");
            let ids: std::collections::HashSet<&str> =
                rows.iter().filter_map(|r| record_id(r)).collect();
            assert_eq!(ids.len(), sent.len(), "{stream}: each event once");
            for row in &rows {
                assert!(
                    row["EventTime"]
                        .as_str()
                        .unwrap()
                        .starts_with("2026-06-10T")
                );
            }
            let signed = rows
                .iter()
                .filter_map(|row| match schema {
                    Schema::Native => row.get("Signature").map(|_| ()),
                    _ => carried_native_json(schema, row).map(|json| {
                        let native: serde_json::Value = serde_json::from_str(json).unwrap();
                        assert_eq!(native["attributes"]["action"], "block");
                        assert!(native["signature"]["value"].is_string());
                    }),
                })
                .count();
            assert_eq!(signed, 100, "{stream}: the signed events keep their form");
        }
        let blocked = state
            .records_of("Custom-SiemrelayFlat_CL")
            .iter()
            .filter(|r| r["action"] == "block")
            .count();
        assert_eq!(blocked, 100, "flat: the action column");
        let ecs_blocked = state
            .records_of("Custom-SiemrelayEcs_CL")
            .iter()
            .filter(|r| r["event"]["action"] == "block")
            .count();
        assert_eq!(ecs_blocked, 100, "ecs: event.action in the event column");
    });
}

/// The fake judges columns the way the DCR does: a configured column the stream does not
/// declare is not stored (and listed), and a stream the DCR does not declare is 404; a shipped
/// stream of another shape is refused when the sink is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_columns_and_streams_are_caught() {
    let fake = FakeAzure::start();
    let custom = start(
        shaped_sink(
            &fake,
            Schema::Native,
            serde_json::json!({"columns": {"Who": "attributes.user"}}),
        ),
        fast_retry(),
    );
    custom.push(events(3)).await;
    // The records have no event id column: count them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.read(|s| s.records.total()) < 3 {
        assert!(Instant::now() < deadline, "the records did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.read(|state| {
        assert_eq!(state.dropped.len(), 3, "{:?}", state.dropped);
        assert!(
            state.dropped[0].contains("Custom-SiemrelayEvents_CL: column Who is not declared"),
            "{:?}",
            state.dropped
        );
        assert!(state.records.items.iter().all(|r| r.get("Who").is_none()));
    });
    let own = shaped_sink(
        &fake,
        Schema::Ecs,
        serde_json::json!({"stream_name": "Custom-NotDeployed_CL"}),
    );
    let rig = start(own, fast_retry());
    rig.push(events(1)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.read(|s| s.uploads_with(404)) == 0 {
        assert!(Instant::now() < deadline, "no 404 for an undeclared stream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http = HttpOptions {
        schema: Schema::Ocsf,
        ..HttpOptions::default()
    };
    let refused = sentinel::build(
        "sentinel/ocsf",
        config(&fake.url(), CLIENT_SECRET),
        &http,
        Duration::from_secs(5),
    )
    .err()
    .expect("the native stream with schema: ocsf is refused")
    .to_string();
    assert!(
        refused.contains("stream_name") && refused.contains("Custom-SiemrelayOcsf_CL"),
        "{refused}"
    );
}
