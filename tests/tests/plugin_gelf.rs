//! Issue 10 acceptance with the real binary: the GELF plugin (`libsiemrelay_gelf.so`, built by
//! `cargo build -p siemrelay-gelf`) loaded from the YAML delivers to a fake Graylog GELF HTTP
//! input once per event with the documented mapping, survives a 503 period through the delivery
//! layer's retries, and dead-letters past `max_elapsed_time`.

mod plugin_support;

use plugin_support::{gelf_plugin, post_events, repo, wait_dead_letters};
use siemrelay_e2e::fake::gelf::FakeGelf;
use siemrelay_e2e::{Siemrelay, free_port, run_cli};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

fn config(port: u16, library: &Path, endpoint: &str, max_elapsed: &str) -> String {
    plugin_support::in_plugins_dir(&format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
exporters:
  plugin/graylog:
    library: "{}"
    config: {{ endpoint: "{endpoint}", default_host: relay-e2e, timeout_ms: 5000 }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: {max_elapsed} }}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [plugin/graylog] }}
"#,
        library.display()
    ))
}

fn start(fake: &FakeGelf, max_elapsed: &str) -> (Siemrelay, u16) {
    let port = free_port();
    let mut relay = Siemrelay::start(&config(port, &gelf_plugin(), &fake.endpoint(), max_elapsed));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    (relay, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_events_arrive_once_with_the_documented_mapping() {
    let fake = FakeGelf::start();
    let (mut relay, port) = start(&fake, "60s");
    let sent = post_events(port, 20, 500).await;
    assert!(
        fake.wait_for_events(10_000, Duration::from_secs(60)),
        "only {} of 10000 arrived; logs:\n{}",
        fake.read(|s| s.messages.distinct()),
        relay.logs()
    );
    relay.terminate(Duration::from_secs(20));
    fake.read(|state| {
        assert!(
            state.rejected.is_empty(),
            "malformed GELF: {:?}",
            &state.rejected[..state.rejected.len().min(3)]
        );
        assert!(
            state.messages.duplicates().is_empty(),
            "{:?}",
            state.messages.duplicates()
        );
        for id in &sent {
            assert_eq!(state.messages.counts.get(id), Some(&1), "event {id}");
        }
        assert!(state.content_types.iter().all(|c| c == "application/json"));
        let first = state
            .messages
            .items
            .iter()
            .find(|m| m["_event_id"] == sent[0].as_str())
            .expect("first event");
        assert_eq!(
            *first,
            serde_json::json!({
                "version": "1.1", "host": "toktra", "short_message": "event 0-0",
                "timestamp": 1795165200.25, "level": 3,
                "_event_id": sent[0], "_event_type": "policy_violation", "_severity": "high",
                "_user_email": "ann@example.com", "_blocked": "true"
            })
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_503_period_is_retried_until_everything_arrives() {
    let fake = FakeGelf::start();
    fake.set_unavailable(true);
    let (mut relay, port) = start(&fake, "60s");
    let sent = post_events(port, 4, 250).await;
    assert!(
        fake.wait_for_unavailable_replies(5, Duration::from_secs(20)),
        "logs:\n{}",
        relay.logs()
    );
    assert_eq!(fake.read(|s| s.messages.distinct()), 0);
    fake.set_unavailable(false);
    assert!(
        fake.wait_for_events(1_000, Duration::from_secs(30)),
        "only {} arrived; logs:\n{}",
        fake.read(|s| s.messages.distinct()),
        relay.logs()
    );
    relay.terminate(Duration::from_secs(20));
    fake.read(|state| {
        assert!(state.messages.duplicates().is_empty());
        assert!(sent.iter().all(|id| state.messages.counts.contains_key(id)));
    });
    let dead = relay
        .dir()
        .join("siemrelay-data/dead_letter/plugin__graylog.ndjson");
    assert!(!dead.exists(), "nothing may be dead-lettered");
}

#[tokio::test(flavor = "multi_thread")]
async fn past_max_elapsed_time_events_are_dead_lettered() {
    let fake = FakeGelf::start();
    fake.set_unavailable(true);
    let (mut relay, port) = start(&fake, "1s");
    let sent = post_events(port, 1, 50).await;
    let path = relay
        .dir()
        .join("siemrelay-data/dead_letter/plugin__graylog.ndjson");
    let lines = wait_dead_letters(&path, 50, Duration::from_secs(20)).await;
    assert_eq!(lines.len(), 50, "logs:\n{}", relay.logs());
    for line in &lines {
        assert_eq!(line["exporter"], "plugin/graylog");
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("retries exhausted") && error.contains("HTTP 503"),
            "{error}"
        );
        assert!(line["attempts"].as_u64().unwrap_or(0) >= 2);
        assert!(
            sent.contains(
                &line["event"]["event_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            )
        );
    }
    relay.terminate(Duration::from_secs(20));
    assert_eq!(fake.read(|s| s.messages.distinct()), 0);
}

#[test]
fn the_example_config_validates_and_bad_plugin_config_names_the_key() {
    let library = gelf_plugin();
    let example = repo().join("examples/plugin-gelf.yaml");
    let out = std::process::Command::new(siemrelay_e2e::siemrelay_bin())
        .args(["validate", "--config"])
        .arg(&example)
        .env("SIEMRELAY_GELF_PLUGIN", &library)
        .env(
            "SIEMRELAY_PLUGIN_DIR",
            library.parent().expect("target/<profile>"),
        )
        .env("GRAYLOG_INPUT_TOKEN", "not-a-real-token")
        .output()
        .expect("run siemrelay validate");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = config(free_port(), &library, "graylog:12201", "60s")
        .replace("timeout_ms: 5000", "timeout_ms: 5000, colour: red");
    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
    let out = run_cli(&["validate", "--config", "bad.yaml"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Deserialization stops at the first problem: the unknown key.
    assert!(
        stderr.contains("exporters.plugin/graylog.config.colour"),
        "{stderr}"
    );
    assert!(stderr.contains("libsiemrelay_gelf.so"), "{stderr}");

    let bad = config(free_port(), &library, "graylog:12201", "60s");
    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
    let out = run_cli(&["validate", "--config", "bad.yaml"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exporters.plugin/graylog.config.endpoint"),
        "{stderr}"
    );
}
