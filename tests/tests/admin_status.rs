//! Issue 11 acceptance: exporter status active → degraded → failed → (enable) active against a
//! fake HEC that fails and recovers; the delivery history shows the failures with their HTTP
//! status; `POST …/test` tells a good token, a bad token and an unreachable HEC apart;
//! `siemrelay status` prints the table; auth: wrong/missing token → 401, and no token on a
//! non-loopback address refuses to start.

mod admin_support;

use admin_support::{Admin, TOKEN, encode, ndjson, post_webhook};
use serde_json::Value;
use siemrelay_e2e::fake::hec::{Behaviour, FakeHec, TOKEN as HEC_TOKEN};
use siemrelay_e2e::{Siemrelay, free_port, run_cli};
use std::net::SocketAddr;
use std::time::Duration;

fn config(webhook: u16, admin: u16, hec: &str, unreachable: u16) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  splunk_hec/prod:
    endpoint: "{hec}"
    token: "{HEC_TOKEN}"
    index: security
    retry: {{ initial_interval: 20ms, max_interval: 2s, max_elapsed_time: 600ms }}
  splunk_hec/bad_token:
    endpoint: "{hec}"
    token: "${{env:WRONG_HEC_TOKEN}}"
    index: security
  splunk_hec/unreachable:
    endpoint: "http://127.0.0.1:{unreachable}"
    token: "{HEC_TOKEN}"
    index: security
    sending: {{ timeout: 2s }}
service:
  shutdown_timeout: 3s
  admin:
    endpoint: "127.0.0.1:{admin}"
    auth: {{ bearer_token: "${{env:SIEMRELAY_ADMIN_TOKEN}}" }}
    allow_config_changes: true
  pipelines:
    security: {{ receivers: [webhook], exporters: [splunk_hec/prod] }}
    probes: {{ receivers: [webhook], processors: [filter/none], exporters: [splunk_hec/bad_token, splunk_hec/unreachable] }}
processors:
  filter/none: {{ include: {{ event_types: [never_sent] }} }}
"#
    )
}

const WRONG: &str = "00000000-0000-0000-0000-000000000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_follows_failures_and_recovery_and_test_reports_each_case() {
    let hec = FakeHec::start_default();
    let (webhook, admin_port, closed) = (free_port(), free_port(), free_port());
    let env = [("SIEMRELAY_ADMIN_TOKEN", TOKEN), ("WRONG_HEC_TOKEN", WRONG)];
    let mut relay =
        Siemrelay::start_with(&config(webhook, admin_port, &hec.url(), closed), &[], &env);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin_port)));
    let admin = Admin::new(admin_port, Some(TOKEN));
    let client = reqwest::Client::new();
    let prod = "splunk_hec/prod";

    // Auth: missing and wrong tokens are refused, the probes and the document are open.
    let (status, body) = Admin::new(admin_port, None)
        .call(reqwest::Method::GET, "/api/v1/exporters", None)
        .await;
    assert_eq!(
        (status, body["key"].as_str()),
        (401, Some("Authorization")),
        "{body}"
    );
    let (status, _) = Admin::new(admin_port, Some("not-the-token"))
        .call(reqwest::Method::GET, "/api/v1/exporters", None)
        .await;
    assert_eq!(status, 401);
    let (status, doc) = Admin::new(admin_port, None)
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None)
        .await;
    assert_eq!(
        (status, doc["openapi"].as_str().map(|v| v.starts_with("3."))),
        (200, Some(true))
    );
    let (status, body) = admin
        .call(
            reqwest::Method::GET,
            "/api/v1/exporters/nope%2Fnothing",
            None,
        )
        .await;
    assert_eq!((status, body["key"].as_str()), (404, Some("id")), "{body}");

    // Active.
    post_webhook(&client, webhook, ndjson(5, "ok", false).0).await;
    let exporter = admin
        .wait_exporter(prod, Duration::from_secs(10), |e| e["events_sent"] == 5)
        .await;
    assert_eq!(exporter["status"], "active", "{exporter}");
    assert_eq!(exporter["type"], "splunk_hec");
    assert_eq!(exporter["pipelines"], serde_json::json!(["security"]));

    // The SIEM answers 500: degraded, then (retries exhausted after 600ms) failed.
    hec.set_behaviour(Behaviour::InternalError);
    post_webhook(&client, webhook, ndjson(3, "fail", false).0).await;
    let degraded = admin
        .wait_exporter(prod, Duration::from_secs(5), |e| e["status"] != "active")
        .await;
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    let failed = admin
        .wait_exporter(prod, Duration::from_secs(10), |e| e["status"] == "failed")
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["failure_count"].as_u64().unwrap_or(0) >= 2,
        "{failed}"
    );
    assert!(
        failed["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    let failed = admin
        .wait_exporter(prod, Duration::from_secs(5), |e| {
            e["events_dead_lettered"] == 3
        })
        .await;
    assert_eq!(failed["dead_letter_count"], 3, "{failed}");

    // The delivery history shows the failures with their HTTP status, newest last.
    let history = admin
        .get(&format!("/api/v1/exporters/{}/deliveries", encode(prod)))
        .await;
    let deliveries = history["deliveries"].as_array().expect("deliveries");
    assert_eq!(
        deliveries.first().map(|d| d["outcome"].clone()),
        Some(Value::from("delivered"))
    );
    let failures: Vec<&Value> = deliveries
        .iter()
        .filter(|d| d["outcome"] == "retry")
        .collect();
    assert!(failures.len() >= 2, "{history}");
    assert!(
        failures
            .iter()
            .all(|d| d["http_status"] == 500 && d["error"].is_string()),
        "{history}"
    );
    assert!(
        failures
            .windows(2)
            .all(|w| w[0]["time"].as_str() <= w[1]["time"].as_str()),
        "newest last: {history}"
    );
    assert!(
        failures.iter().any(|d| d["attempt"].as_u64() > Some(1)),
        "{history}"
    );

    // `siemrelay status` shows the word (stdout is not a terminal here: no colour codes).
    let output = run_cli(
        &[
            "status",
            "--admin",
            &format!("127.0.0.1:{admin_port}"),
            "--token",
            TOKEN,
        ],
        relay.dir(),
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{table} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(prod) && l.contains("failed")),
        "{table}"
    );
    assert!(!table.contains('\x1b'), "{table:?}");
    let output = run_cli(
        &[
            "status",
            "--admin",
            &format!("127.0.0.1:{admin_port}"),
            "--token",
            "nope",
        ],
        relay.dir(),
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("401"));

    // The SIEM is back; an operator re-enables the exporter: active at once, and it delivers.
    hec.set_behaviour(Behaviour::Normal);
    let (status, enabled) = admin
        .post(&format!("/api/v1/exporters/{}/enable", encode(prod)))
        .await;
    assert_eq!(
        (status, enabled["status"].as_str()),
        (200, Some("active")),
        "{enabled}"
    );
    post_webhook(&client, webhook, ndjson(4, "again", false).0).await;
    let recovered = admin
        .wait_exporter(prod, Duration::from_secs(10), |e| e["events_sent"] == 9)
        .await;
    assert_eq!(
        (
            recovered["status"].as_str(),
            recovered["events_sent"].as_u64()
        ),
        (Some("active"), Some(9)),
        "{recovered}"
    );

    // Disable keeps queueing; enable delivers what was queued.
    let (_, disabled) = admin
        .post(&format!("/api/v1/exporters/{}/disable", encode(prod)))
        .await;
    assert_eq!(disabled["status"], "disabled");
    post_webhook(&client, webhook, ndjson(2, "while-disabled", false).0).await;
    let held = admin
        .wait_exporter(prod, Duration::from_secs(2), |e| e["queue"]["events"] == 2)
        .await;
    assert_eq!(
        (
            held["queue"]["events"].as_u64(),
            held["events_sent"].as_u64()
        ),
        (Some(2), Some(9)),
        "{held}"
    );
    admin
        .post(&format!("/api/v1/exporters/{}/enable", encode(prod)))
        .await;
    let drained = admin
        .wait_exporter(prod, Duration::from_secs(10), |e| e["events_sent"] == 11)
        .await;
    assert_eq!(drained["queue"]["events"], 0, "{drained}");

    // Test deliveries: good token, bad token, unreachable.
    let test = |id: &str| format!("/api/v1/exporters/{}/test", encode(id));
    let (status, good) = admin.post(&test(prod)).await;
    assert_eq!(
        (status, &good["ok"], &good["outcome"], &good["http_status"]),
        (
            200,
            &Value::Bool(true),
            &Value::from("delivered"),
            &Value::from(200)
        ),
        "{good}"
    );
    assert!(
        hec.count_of(good["event_id"].as_str().unwrap_or_default()) == 1,
        "the test event reached the HEC"
    );
    let (_, bad) = admin.post(&test("splunk_hec/bad_token")).await;
    assert_eq!(
        (&bad["ok"], &bad["http_status"]),
        (&Value::Bool(false), &Value::from(403)),
        "{bad}"
    );
    assert!(
        bad["hint"].as_str().is_some_and(|h| h.contains("token")),
        "{bad}"
    );
    assert!(
        !bad.to_string().contains(WRONG),
        "the token never shows: {bad}"
    );
    let (_, down) = admin.post(&test("splunk_hec/unreachable")).await;
    assert_eq!(
        (&down["ok"], &down["http_status"]),
        (&Value::Bool(false), &Value::Null),
        "{down}"
    );
    assert!(
        down["hint"]
            .as_str()
            .is_some_and(|h| h.contains("unreachable")),
        "{down}"
    );
    let (status, _) = admin.call(reqwest::Method::GET, &test(prod), None).await;
    assert_eq!(status, 405, "test takes POST only");

    assert!(
        relay
            .terminate(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "{}",
        relay.logs()
    );
}

#[test]
fn a_non_loopback_admin_address_without_a_token_refuses_to_start() {
    let (webhook, admin_port) = (free_port(), free_port());
    let yaml = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  file: {{ path: "./out.ndjson" }}
service:
  admin: {{ endpoint: "0.0.0.0:{admin_port}" }}
  pipelines:
    security: {{ receivers: [webhook], exporters: [file] }}
"#
    );
    let mut relay = Siemrelay::start(&yaml);
    let status = relay
        .wait_exit(Duration::from_secs(10))
        .expect("siemrelay must refuse to start");
    assert_eq!(status.code(), Some(1));
    let logs = relay.logs();
    assert!(
        logs.contains("service.admin.auth.bearer_token") && logs.contains("not a loopback address"),
        "{logs}"
    );
    let validate = run_cli(&["validate", "--config", "siemrelay.yaml"], relay.dir());
    assert!(!validate.status.success());
    assert!(String::from_utf8_lossy(&validate.stderr).contains("service.admin.auth.bearer_token"));
}
