//! The admin API's dead letters with the real binary: `GET /api/v1/exporters/{id}/dead_letters`
//! lists them newest first (secrets scrubbed), and `POST …/dead_letters/replay` resends them
//! through the `siemrelay dlq replay` code, only with the token and `allow_config_changes`.

mod admin_support;

use admin_support::{Admin, TOKEN, encode, ndjson, post_webhook};
use serde_json::Value;
use siemrelay_e2e::{Siemrelay, free_port};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SECRET_HEADER: &str = "dead-letter-api-secret-value";

fn config(webhook: u16, admin: u16, dead: u16, allow: bool) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  webhook/dead:
    endpoint: "http://127.0.0.1:{dead}/hook"
    headers: {{ X-Token: "${{env:DLQ_TEST_SECRET}}" }}
    sending: {{ timeout: 1s }}
    retry: {{ initial_interval: 20ms, max_interval: 50ms, max_elapsed_time: 200ms }}
service:
  shutdown_timeout: 3s
  admin:
    endpoint: "127.0.0.1:{admin}"
    auth: {{ bearer_token: "${{env:DLQ_TEST_ADMIN_TOKEN}}" }}
    allow_config_changes: {allow}
  pipelines:
    security: {{ receivers: [webhook], exporters: [webhook/dead] }}
"#
    )
}

async fn start(allow: bool) -> (Siemrelay, Admin, u16) {
    let (webhook, admin_port, dead) = (free_port(), free_port(), free_port());
    let mut relay = Siemrelay::start_with(
        &config(webhook, admin_port, dead, allow),
        &[],
        &[
            ("DLQ_TEST_ADMIN_TOKEN", TOKEN),
            ("DLQ_TEST_SECRET", SECRET_HEADER),
        ],
    );
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin_port)));
    (relay, Admin::new(admin_port, Some(TOKEN)), webhook)
}

async fn dead_letters(admin: &Admin, query: &str) -> Value {
    admin
        .get(&format!(
            "/api/v1/exporters/{}/dead_letters{query}",
            encode("webhook/dead")
        ))
        .await
}

async fn wait_total(admin: &Admin, total: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = dead_letters(admin, "").await;
        if list["total"].as_u64() == Some(total) || Instant::now() > deadline {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_only_when_changes_are_allowed() {
    let (mut relay, admin, webhook) = start(false).await;
    post_webhook(&reqwest::Client::new(), webhook, ndjson(5, "dlq", false).0).await;
    let list = wait_total(&admin, 5).await;
    assert_eq!(list["total"], 5, "{list}");
    let entries = list["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 5);
    assert!(
        entries
            .windows(2)
            .all(|w| w[0]["time"].as_str() >= w[1]["time"].as_str()),
        "newest first: {list}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["event_id"].is_string() && e["attempts"].as_u64() >= Some(1))
    );
    assert!(
        !list.to_string().contains(SECRET_HEADER),
        "a secret leaked: {list}"
    );
    assert_eq!(
        dead_letters(&admin, "?limit=2").await["entries"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    for bad in ["?limit=0", "?limit=lots", "?sort=asc"] {
        let (status, body) = admin
            .call(
                reqwest::Method::GET,
                &format!(
                    "/api/v1/exporters/{}/dead_letters{bad}",
                    encode("webhook/dead")
                ),
                None,
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let replay = format!(
        "/api/v1/exporters/{}/dead_letters/replay",
        encode("webhook/dead")
    );
    let (status, body) = Admin::new(admin_port_of(&admin), None).post(&replay).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = admin.post(&replay).await;
    assert_eq!(status, 403, "replay needs allow_config_changes: {body}");
    assert_eq!(body["key"], "service.admin.allow_config_changes");
    assert_eq!(
        dead_letters(&admin, "").await["total"],
        5,
        "a refused replay moved nothing"
    );
    relay.terminate(Duration::from_secs(10));

    // With changes allowed, the replay runs (the SIEM is still down: all come back).
    let (mut relay, admin, webhook) = start(true).await;
    post_webhook(
        &reqwest::Client::new(),
        webhook,
        ndjson(4, "again", false).0,
    )
    .await;
    wait_total(&admin, 4).await;
    let (status, started) = admin.post(&replay).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["state"], "running");
    assert_eq!(started["events"], 4);
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let list = dead_letters(&admin, "").await;
        if list["replay"]["state"] != "running" || Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["replay"]["state"], "done", "{done}");
    assert_eq!(done["replay"]["dead_lettered"], 4, "{done}");
    assert_eq!(
        done["total"], 4,
        "the replayed events are dead-lettered again: {done}"
    );
    relay.terminate(Duration::from_secs(10));
}

fn admin_port_of(admin: &Admin) -> u16 {
    admin
        .base()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("admin port")
}
