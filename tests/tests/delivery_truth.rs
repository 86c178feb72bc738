//! Issue 21 §4, issue 19 ("Status") and issue 20 §1 (queue limits) on the real binary against a
//! fake Splunk HEC: a SIEM that refuses every request permanently makes the exporter `degraded`
//! with the dead-letter rate; a SIEM that answers 413 to every size dead-letters a 500-event
//! batch as "too large" within a bounded number of requests, however short `sending.timeout`;
//! a `failed` exporter with nothing queued recovers by itself when the SIEM does; `last_error`
//! has its time and turns past; the dead-letter count follows `dlq replay` run by another
//! process; failure series exist at 0 from the start; a batch larger than its queue is queued
//! in parts and the queue never holds more than `max_events`.

mod admin_support;

use admin_support::{Admin, TOKEN, metric, ndjson, post_webhook};
use siemrelay_e2e::fake::hec::{FakeHec, HecOptions, TOKEN as HEC_TOKEN};
use siemrelay_e2e::{Siemrelay, free_port};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn config(webhook: u16, admin: u16, hec: &str, exporter_extra: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  splunk_hec:
    endpoint: "{hec}"
    token: "{HEC_TOKEN}"
    index: security
{exporter_extra}
service:
  shutdown_timeout: 3s
  admin:
    endpoint: "127.0.0.1:{admin}"
    auth: {{ bearer_token: "${{env:SIEMRELAY_ADMIN_TOKEN}}" }}
  pipelines:
    security: {{ receivers: [webhook], exporters: [splunk_hec] }}
"#
    )
}

fn start(config: &str, webhook: u16, admin: u16) -> (Siemrelay, Admin) {
    let mut relay = Siemrelay::start_with(config, &[], &[("SIEMRELAY_ADMIN_TOKEN", TOKEN)]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin)));
    (relay, Admin::new(admin, Some(TOKEN)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_siem_that_refuses_every_request_makes_the_exporter_degraded_with_the_rate() {
    // The token may not write to the configured index: HEC answers 400 code 7 to every
    // request, a permanent refusal of the whole request.
    let hec = FakeHec::start(HecOptions {
        indexes: vec!["main".into()],
        ..HecOptions::default()
    });
    let (webhook, admin_port) = (free_port(), free_port());
    let extra = "    retry: { initial_interval: 20ms, max_interval: 200ms }";
    let (relay, admin) = start(
        &config(webhook, admin_port, &hec.url(), extra),
        webhook,
        admin_port,
    );
    let client = reqwest::Client::new();
    for request in 0..10 {
        post_webhook(
            &client,
            webhook,
            ndjson(20, &format!("r{request}"), false).0,
        )
        .await;
    }
    let exporter = admin
        .wait_exporter("splunk_hec", Duration::from_secs(60), |e| {
            e["dead_letter_count"] == 200
        })
        .await;
    assert_eq!(
        exporter["dead_letter_count"],
        200,
        "{exporter}\n{}",
        relay.logs()
    );
    assert_eq!(exporter["status"], "degraded", "{exporter}");
    let reason = exporter["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("200 of the last 200 events") && reason.contains("code 7"),
        "{reason}"
    );
    assert_eq!(exporter["recent_dead_letter_ratio"], 1.0);
    let metrics = admin.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "siemrelay_exporter_dead_letter_ratio",
            &[("exporter", "splunk_hec")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "siemrelay_exporter_status",
            &[("exporter", "splunk_hec")]
        ),
        Some(1.0)
    );
    assert_eq!(hec.distinct_events(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_siem_that_answers_413_to_every_size_dead_letters_as_too_large_within_bounded_requests() {
    // Every body is over the limit, even one event's.
    let hec = FakeHec::start(HecOptions {
        max_content_length: 40,
        ..HecOptions::default()
    });
    let (webhook, admin_port) = (free_port(), free_port());
    // A request timeout far below what one request per event would take on this machine.
    let extra = "    sending: { timeout: 1s, concurrency: 1 }\n    retry: { initial_interval: 20ms, max_interval: 200ms }";
    let (relay, admin) = start(
        &config(webhook, admin_port, &hec.url(), extra),
        webhook,
        admin_port,
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    post_webhook(&client, webhook, ndjson(500, "big", false).0).await;
    let exporter = admin
        .wait_exporter("splunk_hec", Duration::from_secs(60), |e| {
            e["dead_letter_count"] == 500
        })
        .await;
    let elapsed = started.elapsed();
    assert_eq!(
        exporter["dead_letter_count"],
        500,
        "{exporter}\n{}",
        relay.logs()
    );
    let requests = hec.read(|s| s.requests);
    println!("500 events: {requests} requests, all dead-lettered after {elapsed:?}");
    // log2(500) ≈ 9 halving levels, about two requests each, a few single events.
    assert!(requests <= 40, "{requests} requests");
    let entries = siemrelay_e2e::read_ndjson_files(
        &relay.dir().join("siemrelay-data/dead_letter"),
        "splunk_hec.ndjson",
    );
    assert_eq!(entries.len(), 500);
    for entry in &entries {
        let error = entry["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("too large") && !error.contains("timed out"),
            "{error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_exporter_with_an_empty_queue_recovers_by_itself_and_its_counts_stay_true() {
    let hec = FakeHec::start_default();
    let (webhook, admin_port) = (free_port(), free_port());
    let extra = "    retry: { initial_interval: 20ms, max_interval: 300ms, max_elapsed_time: 1s }";
    let (relay, admin) = start(
        &config(webhook, admin_port, &hec.url(), extra),
        webhook,
        admin_port,
    );
    // Every failure series exists at 0 before the first failure.
    let metrics = admin.metrics().await;
    let labels = [("exporter", "splunk_hec")];
    for name in [
        "siemrelay_exporter_events_failed_total",
        "siemrelay_exporter_events_retried_total",
        "siemrelay_exporter_events_dead_lettered_total",
    ] {
        assert_eq!(
            metric(&metrics, name, &labels),
            Some(0.0),
            "{name}\n{metrics}"
        );
    }
    for outcome in ["retry", "permanent"] {
        assert_eq!(
            metric(
                &metrics,
                "siemrelay_exporter_requests_total",
                &[("exporter", "splunk_hec"), ("outcome", outcome)]
            ),
            Some(0.0),
            "requests_total{{outcome={outcome}}}\n{metrics}"
        );
    }

    hec.go_down();
    let client = reqwest::Client::new();
    post_webhook(&client, webhook, ndjson(5, "outage", false).0).await;
    let failed = admin
        .wait_exporter("splunk_hec", Duration::from_secs(30), |e| {
            e["status"] == "failed" && e["queue"]["events"] == 0
        })
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["dead_letter_count"], 5);
    assert_eq!(failed["last_error_current"], true);
    assert!(failed["last_error_at"].is_string(), "{failed}");

    // The SIEM comes back; no new event arrives. The probe notices.
    hec.come_up();
    let recovered = admin
        .wait_exporter("splunk_hec", Duration::from_secs(30), |e| {
            e["status"] == "active"
        })
        .await;
    assert_eq!(
        recovered["status"],
        "active",
        "{recovered}\n{}",
        relay.logs()
    );
    assert_eq!(recovered["last_error_current"], false, "the error is past");
    assert!(recovered["last_error"].is_string());

    // Another process replays the dead letters: the count follows the file.
    let replay = std::process::Command::new(siemrelay_e2e::siemrelay_bin())
        .args(["dlq", "replay", "splunk_hec", "--config", "siemrelay.yaml"])
        .env("SIEMRELAY_ADMIN_TOKEN", TOKEN)
        .current_dir(relay.dir())
        .output()
        .expect("run dlq replay");
    assert!(
        replay.status.success(),
        "{}{}",
        String::from_utf8_lossy(&replay.stdout),
        String::from_utf8_lossy(&replay.stderr)
    );
    let after = admin
        .wait_exporter("splunk_hec", Duration::from_secs(10), |e| {
            e["dead_letter_count"] == 0
        })
        .await;
    assert_eq!(after["dead_letter_count"], 0, "{after}");
    assert_eq!(
        after["events_dead_lettered"], 5,
        "the since-start counter stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_its_queue_is_queued_in_parts_and_never_overfills_it() {
    let hec = FakeHec::start_default();
    let (webhook, admin_port) = (free_port(), free_port());
    let extra = "    queue: { max_events: 100 }\n    retry: { initial_interval: 20ms, max_interval: 200ms }";
    let (relay, admin) = start(
        &config(webhook, admin_port, &hec.url(), extra),
        webhook,
        admin_port,
    );
    let client = reqwest::Client::new();
    // The SIEM is up: 1,000 events in one request go through a 100-event queue.
    let (body, ids) = ndjson(1000, "big", false);
    post_webhook(&client, webhook, body).await;
    assert!(
        hec.events_reached(1000, Duration::from_secs(60)).await,
        "{} of 1000 arrived\n{}",
        hec.distinct_events(),
        relay.logs()
    );
    assert!(ids.iter().all(|id| hec.count_of(id) >= 1));

    // The SIEM is down: the queue fills to its limit and no further. Once a part is queued the
    // request is not refused (the sender's retry would send that part twice): it is held open
    // until the SIEM makes room, then answered, and every event arrives once.
    hec.go_down();
    let (body, held_ids) = ndjson(1000, "held", false);
    let held = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post(format!("http://127.0.0.1:{webhook}/v1/events"))
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let mut exporter = admin.exporter("splunk_hec").await;
    while exporter["queue"]["events"].as_u64().unwrap_or(0) < 100 {
        assert!(!held.is_finished(), "answered with the SIEM down: {held:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        exporter = admin.exporter("splunk_hec").await;
    }
    let queued = exporter["queue"]["events"].as_u64().unwrap();
    assert!(queued <= 100, "the queue holds {queued} events: {exporter}");
    assert!(
        !held.is_finished(),
        "the request waits for room, neither refused nor answered"
    );
    hec.come_up();
    assert_eq!(held.await.unwrap().unwrap(), 200);
    assert!(
        hec.events_reached(2000, Duration::from_secs(60)).await,
        "{} of 2000 arrived\n{}",
        hec.distinct_events(),
        relay.logs()
    );
    let twice = held_ids.iter().filter(|id| hec.count_of(id) != 1).count();
    assert_eq!(
        twice, 0,
        "events of the held request not delivered exactly once"
    );
}
