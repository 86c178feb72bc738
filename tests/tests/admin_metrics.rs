//! Issue 11 acceptance: `/metrics` after 10,000 events through webhook → filter → splunk_hec
//! (fake HEC) agrees with what the SIEM indexed and what the filter dropped, and the queue gauge
//! rises while the SIEM is down and falls after. Also the health probes and `/api/v1/pipelines`.

mod admin_support;

use admin_support::{Admin, TOKEN, metric, ndjson, post_webhook};
use siemrelay_e2e::fake::hec::{FakeHec, TOKEN as HEC_TOKEN};
use siemrelay_e2e::{Siemrelay, free_port};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn config(webhook: u16, admin: u16, hec: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
processors:
  filter/high: {{ include: {{ min_severity: high }} }}
exporters:
  splunk_hec/prod:
    endpoint: "{hec}"
    token: "{HEC_TOKEN}"
    index: security
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 60s }}
    queue: {{ max_events: 50000, max_size: 64MiB }}
service:
  shutdown_timeout: 5s
  admin:
    endpoint: "127.0.0.1:{admin}"
    auth: {{ bearer_token: "${{env:SIEMRELAY_ADMIN_TOKEN}}" }}
  pipelines:
    security: {{ receivers: [webhook], processors: [filter/high], exporters: [splunk_hec/prod] }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_agree_with_the_siem_and_the_filter_and_the_queue_gauge_follows_an_outage() {
    let hec = FakeHec::start_default();
    let (webhook, admin_port) = (free_port(), free_port());
    let mut relay = Siemrelay::start_with(
        &config(webhook, admin_port, &hec.url()),
        &[],
        &[("SIEMRELAY_ADMIN_TOKEN", TOKEN)],
    );
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin_port)));
    let admin = Admin::new(admin_port, Some(TOKEN));
    let anonymous = Admin::new(admin_port, None);
    assert_eq!(
        anonymous
            .call(reqwest::Method::GET, "/healthz", None)
            .await
            .0,
        200
    );
    assert_eq!(
        anonymous
            .call(reqwest::Method::GET, "/readyz", None)
            .await
            .0,
        200
    );
    assert_eq!(
        anonymous
            .call(reqwest::Method::GET, "/metrics", None)
            .await
            .0,
        401
    );

    // 10,000 events in 100 requests, half of them `low` (dropped by the filter).
    let client = reqwest::Client::new();
    let mut kept = Vec::new();
    let mut sends = Vec::new();
    for request in 0..100 {
        let (body, ids) = ndjson(100, &format!("req{request}"), true);
        kept.extend(ids);
        let client = client.clone();
        sends.push(tokio::spawn(async move {
            post_webhook(&client, webhook, body).await
        }));
    }
    for send in sends {
        send.await.expect("sender");
    }
    assert_eq!(kept.len(), 5000);
    assert!(
        hec.events_reached(5000, Duration::from_secs(30)).await,
        "the HEC indexed {}",
        hec.distinct_events()
    );
    // Counters are updated right after the SIEM's reply: wait for the last one to land.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = admin.metrics().await;
    while metric(
        &text,
        "siemrelay_exporter_events_sent_total",
        &[("exporter", "splunk_hec/prod")],
    ) != Some(5000.0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = admin.metrics().await;
    }
    let m = |name: &str, labels: &[(&str, &str)]| {
        metric(&text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}"))
    };
    let indexed = hec.total_events() as f64;
    assert_eq!(indexed, 5000.0, "every kept event indexed once");
    assert_eq!(
        m(
            "siemrelay_receiver_events_received_total",
            &[("receiver", "webhook")]
        ),
        10000.0
    );
    assert_eq!(
        m(
            "siemrelay_pipeline_events_in_total",
            &[("pipeline", "security")]
        ),
        10000.0
    );
    assert_eq!(
        m(
            "siemrelay_pipeline_events_out_total",
            &[("pipeline", "security")]
        ),
        5000.0
    );
    let filter = [("processor", "filter/high"), ("pipeline", "security")];
    assert_eq!(m("siemrelay_processor_events_in_total", &filter), 10000.0);
    assert_eq!(m("siemrelay_processor_events_out_total", &filter), 5000.0);
    assert_eq!(
        m("siemrelay_processor_events_dropped_total", &filter),
        5000.0
    );
    let exporter = [("exporter", "splunk_hec/prod")];
    assert_eq!(
        m("siemrelay_exporter_events_sent_total", &exporter),
        indexed
    );
    let requests = m(
        "siemrelay_exporter_requests_total",
        &[("exporter", "splunk_hec/prod"), ("outcome", "delivered")],
    );
    assert!(requests >= 1.0);
    assert_eq!(
        m(
            "siemrelay_exporter_request_duration_seconds_count",
            &exporter
        ),
        requests
    );
    assert_eq!(
        m("siemrelay_exporter_queue_capacity_events", &exporter),
        50000.0
    );
    assert_eq!(
        m("siemrelay_exporter_queue_capacity_bytes", &exporter),
        (64u64 << 20) as f64
    );
    assert_eq!(m("siemrelay_exporter_queue_events", &exporter), 0.0);
    assert_eq!(m("siemrelay_exporter_status", &exporter), 0.0);
    assert!(
        metric(
            &text,
            "siemrelay_receiver_events_refused_total",
            &[("receiver", "webhook")]
        )
        .is_none(),
        "nothing refused"
    );

    // The API's per-component counters say the same.
    let pipelines = admin.get("/api/v1/pipelines").await;
    let security = &pipelines["pipelines"][0];
    assert_eq!(security["name"], "security");
    assert_eq!(security["events_in"], 10000);
    assert_eq!(security["events_out"], 5000);
    assert_eq!(security["receivers"][0]["events_received"], 10000);
    assert_eq!(security["processors"][0]["type"], "filter");
    assert_eq!(security["exporters"][0]["events_sent"], 5000);
    assert_eq!(admin.exporter("splunk_hec/prod").await["events_sent"], 5000);

    // The SIEM goes down: the queue gauge rises; it comes back: the gauge falls to 0.
    hec.go_down();
    let mut outage_ids = Vec::new();
    for request in 0..10 {
        let (body, ids) = ndjson(100, &format!("outage{request}"), false);
        outage_ids.extend(ids);
        post_webhook(&client, webhook, body).await;
    }
    let queued = metric(
        &admin.metrics().await,
        "siemrelay_exporter_queue_events",
        &exporter,
    )
    .unwrap_or(0.0);
    assert_eq!(
        queued, 1000.0,
        "the queue holds the events the SIEM could not take"
    );
    assert_eq!(
        admin.exporter("splunk_hec/prod").await["queue"]["events"],
        1000
    );
    hec.come_up();
    assert!(
        hec.events_reached(6000, Duration::from_secs(30)).await,
        "indexed {}",
        hec.distinct_events()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = metric(
        &admin.metrics().await,
        "siemrelay_exporter_queue_events",
        &exporter,
    );
    while after != Some(0.0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = metric(
            &admin.metrics().await,
            "siemrelay_exporter_queue_events",
            &exporter,
        );
    }
    assert_eq!(
        after,
        Some(0.0),
        "the queue gauge falls after the SIEM is back"
    );
    assert!(outage_ids.iter().all(|id| hec.count_of(id) >= 1));
    assert!(
        relay
            .terminate(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "{}",
        relay.logs()
    );
}
