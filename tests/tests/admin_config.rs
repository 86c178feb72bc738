//! Issue 11 acceptance: an exporter created through the API receives events, is still there
//! after a restart (the overlay in the storage directory), shows in `siemrelay validate`, and
//! deleting it while its SIEM is down loses nothing (queued events are dead-lettered). Invalid
//! changes answer 400 with the offending key; without `allow_config_changes`, 403.

mod admin_support;

use admin_support::{Admin, TOKEN, encode, ids_in_file, ndjson, post_webhook};
use serde_json::json;
use siemrelay_e2e::fake::hec::{FakeHec, TOKEN as HEC_TOKEN};
use siemrelay_e2e::{Siemrelay, free_port, siemrelay_bin};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn config(webhook: u16, admin: u16, allow: bool) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  file: {{ path: "./archive/events.ndjson" }}
service:
  shutdown_timeout: 2s
  admin:
    endpoint: "127.0.0.1:{admin}"
    auth: {{ bearer_token: "${{env:SIEMRELAY_ADMIN_TOKEN}}" }}
    allow_config_changes: {allow}
    allowed_env: [HEC_TOKEN]
  pipelines:
    security: {{ receivers: [webhook], exporters: [file] }}
"#
    )
}

const ENV: [(&str, &str); 2] = [("SIEMRELAY_ADMIN_TOKEN", TOKEN), ("HEC_TOKEN", HEC_TOKEN)];

fn ready(relay: &mut Siemrelay, ports: [u16; 2]) {
    for port in ports {
        relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exporter_created_through_the_api_survives_a_restart_and_its_deletion_loses_nothing() {
    let hec = FakeHec::start_default();
    let (webhook, admin_port) = (free_port(), free_port());
    let yaml = config(webhook, admin_port, true);
    let mut relay = Siemrelay::start_with(&yaml, &[], &ENV);
    ready(&mut relay, [webhook, admin_port]);
    let admin = Admin::new(admin_port, Some(TOKEN));
    let client = reqwest::Client::new();
    let id = "splunk_hec/new";
    let path = format!("/api/v1/exporters/{}", encode(id));

    // Invalid changes: 400 with the offending key; nothing is saved.
    let bad = json!({"config": {"endpoint": "not a url", "token": "${env:HEC_TOKEN}", "index": "security"}, "pipelines": ["security"]});
    let (status, body) = admin.call(reqwest::Method::PUT, &path, Some(bad)).await;
    assert_eq!(
        (status, body["key"].as_str()),
        (400, Some("exporters.splunk_hec/new.endpoint")),
        "{body}"
    );
    let (status, body) = admin
        .call(
            reqwest::Method::PUT,
            &path,
            Some(json!({"config": {"index": "x"}})),
        )
        .await;
    assert_eq!(
        (status, body["key"].as_str()),
        (400, Some("pipelines")),
        "{body}"
    );
    let (status, body) = admin
        .call(
            reqwest::Method::PUT,
            &path,
            Some(json!({"pipelines": ["security"]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = admin
        .call(reqwest::Method::DELETE, "/api/v1/exporters/file", None)
        .await;
    assert_eq!(
        (status, body["key"].as_str()),
        (400, Some("service.pipelines.security.exporters")),
        "the last exporter of a pipeline stays: {body}"
    );
    assert!(
        !relay
            .dir()
            .join("siemrelay-data/admin/overlay.yaml")
            .exists()
    );

    // Create: it runs and receives events.
    let create = json!({
        "config": {
            "endpoint": hec.url(), "token": "${env:HEC_TOKEN}", "index": "security",
            "retry": {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "1h"}
        },
        "pipelines": ["security"]
    });
    let (status, created) = admin.call(reqwest::Method::PUT, &path, Some(create)).await;
    assert_eq!(
        (status, created["status"].as_str()),
        (201, Some("active")),
        "{created}"
    );
    assert!(
        !created.to_string().contains(HEC_TOKEN),
        "secrets never shown"
    );
    let (body, first) = ndjson(20, "first", false);
    post_webhook(&client, webhook, body).await;
    assert!(hec.events_reached(20, Duration::from_secs(10)).await);
    assert!(first.iter().all(|e| hec.count_of(e) == 1));
    let overlay = std::fs::read_to_string(relay.dir().join("siemrelay-data/admin/overlay.yaml"))
        .expect("overlay saved");
    assert!(
        overlay.contains("splunk_hec/new") && overlay.contains("${env:HEC_TOKEN}"),
        "{overlay}"
    );
    assert!(
        !overlay.contains(HEC_TOKEN),
        "the overlay keeps the reference, not the value: {overlay}"
    );
    let validate = std::process::Command::new(siemrelay_bin())
        .args(["validate", "--config", "siemrelay.yaml"])
        .current_dir(relay.dir())
        .envs(ENV)
        .output()
        .expect("run validate");
    let shown = String::from_utf8_lossy(&validate.stdout);
    assert!(
        shown.contains("[file, splunk_hec/new]"),
        "validate shows the merged config: {shown}"
    );

    // Restart on the same data: it is still there.
    assert!(
        relay
            .terminate(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    let dir = relay.into_dir();
    let mut relay = Siemrelay::start_in(dir, &yaml, &[], &ENV);
    ready(&mut relay, [webhook, admin_port]);
    let again = admin.exporter(id).await;
    assert_eq!(again["pipelines"], json!(["security"]), "{again}");
    let (body, _) = ndjson(10, "after-restart", false);
    post_webhook(&client, webhook, body).await;
    assert!(hec.events_reached(30, Duration::from_secs(10)).await);

    // Delete it while its SIEM is down: its queued events are dead-lettered, none vanish.
    hec.go_down();
    let (body, stranded) = ndjson(25, "stranded", false);
    post_webhook(&client, webhook, body).await;
    let queued = admin
        .wait_exporter(id, Duration::from_secs(5), |e| e["queue"]["events"] == 25)
        .await;
    assert_eq!(queued["queue"]["events"], 25, "{queued}");
    let (status, body) = admin.call(reqwest::Method::DELETE, &path, None).await;
    assert_eq!(
        (status, body["deleted"].as_str()),
        (200, Some(id)),
        "{body}"
    );
    let (status, _) = admin.call(reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let dead_letter = relay
        .dir()
        .join("siemrelay-data/dead_letter/splunk_hec__new.ndjson");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ids_in_file(&dead_letter).len() < stranded.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead: Vec<String> = ids_in_file(&dead_letter);
    assert!(
        stranded.iter().all(|id| dead.contains(id)),
        "every queued event is in the dead-letter file ({} of {})",
        dead.len(),
        stranded.len()
    );
    // New events no longer go to it; the file exporter still has everything.
    let (body, later) = ndjson(5, "later", false);
    post_webhook(&client, webhook, body).await;
    let archive = relay.dir().join("archive");
    let deadline = Instant::now() + Duration::from_secs(10);
    let archived = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|e| ids_in_file(&e.path()))
            .collect()
    };
    while !later.iter().all(|id| archived(&archive).contains(id)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(later.iter().all(|id| archived(&archive).contains(id)));
    assert!(
        later
            .iter()
            .all(|id| !dead.contains(id) && hec.count_of(id) == 0)
    );
    assert!(
        relay
            .terminate(Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "{}",
        relay.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_are_refused_unless_allowed() {
    let (webhook, admin_port) = (free_port(), free_port());
    let mut relay = Siemrelay::start_with(&config(webhook, admin_port, false), &[], &ENV);
    ready(&mut relay, [webhook, admin_port]);
    let admin = Admin::new(admin_port, Some(TOKEN));
    let change = json!({"config": {"path": "./other.ndjson"}, "pipelines": ["security"]});
    let (status, body) = admin
        .call(
            reqwest::Method::PUT,
            "/api/v1/exporters/file%2Fother",
            Some(change),
        )
        .await;
    assert_eq!(
        (status, body["key"].as_str()),
        (403, Some("service.admin.allow_config_changes")),
        "{body}"
    );
    let (status, _) = admin
        .call(reqwest::Method::DELETE, "/api/v1/exporters/file", None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        admin.get("/api/v1/exporters").await["exporters"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}
