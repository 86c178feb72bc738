//! Issue 11 acceptance: hot reload under a steady load (webhook NDJSON and OTLP/HTTP JSON).
//! A valid change (an exporter added, a filter changed) by SIGHUP, an invalid one by SIGHUP and by
//! the API (reported, ignored), and a changed exporter by the API: no request is refused, no
//! accepted event is lost, and the added exporter receives events.

mod admin_support;

use admin_support::{Admin, TOKEN, ids_in_file, metric, ndjson, otlp_json};
use siemrelay_e2e::fake::hec::{FakeHec, TOKEN as HEC_TOKEN};
use siemrelay_e2e::{Siemrelay, free_port};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Ports {
    webhook: u16,
    otlp: u16,
    admin: u16,
}

fn config(ports: &Ports, hec: &str, noise: &str, extra: bool, initial_interval: &str) -> String {
    let (extra_exporter, extra_id) = if extra {
        (
            "  file/extra: { path: \"./extra/events.ndjson\" }",
            ", file/extra",
        )
    } else {
        ("", "")
    };
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
  otlp:
    protocols:
      http: {{ endpoint: "127.0.0.1:{otlp}" }}
processors:
  filter/noise: {{ exclude: {{ event_types: [{noise}] }} }}
exporters:
  splunk_hec/prod:
    endpoint: "{hec}"
    token: "{HEC_TOKEN}"
    index: security
    retry: {{ initial_interval: {initial_interval}, max_interval: 200ms, max_elapsed_time: 60s }}
{extra_exporter}
service:
  shutdown_timeout: 10s
  admin:
    endpoint: "127.0.0.1:{admin}"
    auth: {{ bearer_token: "${{env:SIEMRELAY_ADMIN_TOKEN}}" }}
    allow_config_changes: true
  pipelines:
    security: {{ receivers: [webhook, otlp], processors: [filter/noise], exporters: [splunk_hec/prod{extra_id}] }}
"#,
        webhook = ports.webhook,
        otlp = ports.otlp,
        admin = ports.admin,
    )
}

/// What a sender saw.
#[derive(Default)]
struct Sent {
    acked: Vec<String>,
    failures: Vec<String>,
}

/// Posts until `stop`, a request at a time; records acknowledged ids and every failure.
async fn sender(url: String, otlp: bool, stop: Arc<AtomicBool>) -> Sent {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut sent = Sent::default();
    let mut request = 0;
    while !stop.load(Ordering::Relaxed) {
        let (body, ids, content_type) = if otlp {
            let (body, ids) = otlp_json(10);
            (body, ids, "application/json")
        } else {
            let (body, ids) = ndjson(20, &format!("req{request}"), false);
            (body, ids, "application/x-ndjson")
        };
        request += 1;
        match client
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
        {
            Ok(response) if response.status() == 200 => sent.acked.extend(ids),
            Ok(response) => sent
                .failures
                .push(format!("{url}: HTTP {}", response.status())),
            Err(e) => sent.failures.push(format!("{url}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    sent
}

async fn wait_for(timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_refuse_and_lose_nothing_and_invalid_configs_are_ignored() {
    let hec = FakeHec::start_default();
    let ports = Ports {
        webhook: free_port(),
        otlp: free_port(),
        admin: free_port(),
    };
    let v1 = config(&ports, &hec.url(), "noise_a", false, "50ms");
    let mut relay = Siemrelay::start_with(&v1, &[], &[("SIEMRELAY_ADMIN_TOKEN", TOKEN)]);
    for port in [ports.webhook, ports.otlp, ports.admin] {
        relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let admin = Admin::new(ports.admin, Some(TOKEN));
    let config_file = relay.dir().join("siemrelay.yaml");
    let exporters_of = async |admin: &Admin| -> Vec<String> {
        let pipelines = admin.get("/api/v1/pipelines").await;
        pipelines["pipelines"][0]["exporters"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|e| e["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };

    let stop = Arc::new(AtomicBool::new(false));
    let webhook = tokio::spawn(sender(
        format!("http://127.0.0.1:{}/v1/events", ports.webhook),
        false,
        stop.clone(),
    ));
    let otlp = tokio::spawn(sender(
        format!("http://127.0.0.1:{}/v1/logs", ports.otlp),
        true,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;

    // 1. Valid change by SIGHUP: an exporter added, the filter changed.
    std::fs::write(
        &config_file,
        config(&ports, &hec.url(), "noise_b", true, "50ms"),
    )
    .expect("write v2");
    relay.signal(libc::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(10), async || exporters_of(&admin)
            .await
            .contains(&"file/extra".to_string()))
        .await,
        "the SIGHUP reload added file/extra: {}",
        relay.logs()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 2. Invalid changes by SIGHUP and by the API: reported, the running config stays.
    let invalid = config(&ports, &hec.url(), "noise_b", true, "50ms")
        .replace(&format!("\"{}\"", hec.url()), "\"not a url\"");
    std::fs::write(&config_file, &invalid).expect("write invalid");
    relay.signal(libc::SIGHUP);
    let (status, answer) = admin.post("/api/v1/reload").await;
    assert_eq!(
        (status, &answer["ok"]),
        (400, &serde_json::Value::Bool(false)),
        "{answer}"
    );
    assert!(
        answer["errors"].as_array().is_some_and(|errors| errors
            .iter()
            .any(|e| e["path"] == "exporters.splunk_hec/prod.endpoint")),
        "{answer}"
    );
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("splunk_hec/prod.endpoint")),
        "{answer}"
    );
    assert_eq!(
        exporters_of(&admin).await,
        vec!["splunk_hec/prod".to_string(), "file/extra".to_string()]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 3. Valid change by the API: the HEC exporter's settings changed (replaced; its queue
    //    drains), the filter back.
    std::fs::write(
        &config_file,
        config(&ports, &hec.url(), "noise_a", true, "60ms"),
    )
    .expect("write v4");
    let (status, answer) = admin.post("/api/v1/reload").await;
    assert_eq!(
        (status, &answer["ok"]),
        (200, &serde_json::Value::Bool(true)),
        "{answer}"
    );
    assert_eq!(
        answer["summary"]["restarted"]
            .as_array()
            .map(|r| r.iter().any(|c| c == "exporters.splunk_hec/prod")),
        Some(true),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;

    stop.store(true, Ordering::Relaxed);
    let webhook = webhook.await.expect("webhook sender");
    let otlp = otlp.await.expect("otlp sender");
    assert!(
        webhook.failures.is_empty() && otlp.failures.is_empty(),
        "refused during reloads: {:?} {:?}",
        webhook.failures,
        otlp.failures
    );
    let acked: Vec<String> = webhook.acked.into_iter().chain(otlp.acked).collect();
    assert!(
        acked.len() > 500,
        "a steady load was sent ({} events)",
        acked.len()
    );
    assert!(
        hec.events_reached(acked.len(), Duration::from_secs(30))
            .await,
        "the HEC indexed {} of {} accepted events",
        hec.distinct_events(),
        acked.len()
    );
    let lost: Vec<&String> = acked.iter().filter(|id| hec.count_of(id) == 0).collect();
    assert!(
        lost.is_empty(),
        "{} accepted events never reached the HEC",
        lost.len()
    );
    let extra = ids_in_file(
        &std::fs::read_dir(relay.dir().join("extra"))
            .expect("file/extra wrote")
            .flatten()
            .next()
            .expect("a file")
            .path(),
    );
    assert!(
        !extra.is_empty() && extra.iter().all(|id| acked.contains(id)),
        "the added exporter received events"
    );

    let text = admin.metrics().await;
    assert_eq!(
        metric(
            &text,
            "siemrelay_config_reload_total",
            &[("result", "success")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "siemrelay_config_reload_total",
            &[("result", "failure")]
        ),
        Some(2.0),
        "{text}"
    );
    assert!(
        relay
            .logs()
            .contains("reload refused, the running configuration stays")
    );
    assert!(
        relay
            .terminate(Duration::from_secs(20))
            .is_some_and(|s| s.success()),
        "{}",
        relay.logs()
    );
}

/// A disk-queue exporter whose settings change is closed and reopened on the same directory
/// (the intake waits, it is not refused), and a chained `sign` pipeline is rebuilt after its
/// head is saved: still nothing refused or lost, and the chain verifies across the reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_disk_queue_exporter_and_a_signature_chain_under_load_loses_nothing() {
    let (webhook, admin_port) = (free_port(), free_port());
    let yaml = |interval: &str, summary: &str| {
        format!(
            r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
processors:
  sign: {{ keys: [{{ id: k1, secret: "0123456789abcdef0123456789abcdef" }}], chain: true }}
  enrich: {{ source: "{summary}" }}
exporters:
  file:
    path: "./out/events.ndjson"
    queue: {{ type: disk }}
    retry: {{ initial_interval: {interval} }}
service:
  shutdown_timeout: 10s
  admin:
    endpoint: "127.0.0.1:{admin_port}"
    auth: {{ bearer_token: "${{env:SIEMRELAY_ADMIN_TOKEN}}" }}
    allow_config_changes: true
  pipelines:
    security: {{ receivers: [webhook], processors: [enrich, sign], exporters: [file] }}
"#
        )
    };
    let mut relay =
        Siemrelay::start_with(&yaml("1s", "v1"), &[], &[("SIEMRELAY_ADMIN_TOKEN", TOKEN)]);
    for port in [webhook, admin_port] {
        relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let admin = Admin::new(admin_port, Some(TOKEN));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(sender(
        format!("http://127.0.0.1:{webhook}/v1/events"),
        false,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(relay.dir().join("siemrelay.yaml"), yaml("2s", "v2")).expect("write v2");
    let (status, answer) = admin.post("/api/v1/reload").await;
    assert_eq!(status, 200, "{answer}");
    let restarted = answer["summary"]["restarted"].to_string();
    assert!(
        restarted.contains("exporters.file") && restarted.contains("pipelines.security"),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = load.await.expect("sender");
    assert!(
        sent.failures.is_empty(),
        "refused during the reload: {:?}",
        sent.failures
    );
    assert!(
        relay
            .terminate(Duration::from_secs(20))
            .is_some_and(|s| s.success()),
        "{}",
        relay.logs()
    );
    let out = relay.dir().join("out");
    let written: Vec<String> = std::fs::read_dir(&out)
        .expect("output")
        .flatten()
        .flat_map(|e| ids_in_file(&e.path()))
        .collect();
    let lost = sent.acked.iter().filter(|id| !written.contains(id)).count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} accepted events are missing from the output",
        sent.acked.len()
    );
    let keys = relay.dir().join("keys.yaml");
    std::fs::write(
        &keys,
        "keys: [{ id: k1, secret: \"0123456789abcdef0123456789abcdef\" }]\n",
    )
    .expect("keys");
    for entry in std::fs::read_dir(&out).expect("output").flatten() {
        let verify = siemrelay_e2e::run_cli(
            &[
                "verify",
                "--keys",
                "keys.yaml",
                "--chain",
                &entry.path().display().to_string(),
            ],
            relay.dir(),
        );
        assert!(
            verify.status.success(),
            "the chain verifies across the reload: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}
