//! Issue 9 with the real binary: webhook receiver → `qradar` exporter (LEEF 2.0 over syslog/TCP) →
//! a real rsyslogd; and rsyslogd stopped mid-stream and restarted without losing events.

use siemrelay_e2e::fake::rsyslog::Rsyslog;
use siemrelay_e2e::fake::syslog_parse::{parse_leef, parse_rfc5424};
use siemrelay_e2e::{Siemrelay, free_port};
use std::collections::HashMap;
use std::time::Duration;

fn config(receiver_port: u16, syslog: &str, extra: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
exporters:
  qradar:
    endpoint: "{syslog}"
    hostname: relay-e2e
    leef: {{ vendor: Toktra, product: Gateway, delimiter: "^" }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 60s }}
{extra}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [qradar] }}
"#
    )
}

/// Posts `requests` NDJSON bodies of `per_request` events; returns (event id, user) per event.
async fn post_events(
    port: u16,
    requests: usize,
    per_request: usize,
    pause: Duration,
) -> Vec<(String, String)> {
    let mut sent = Vec::new();
    for request in 0..requests {
        let mut body = String::new();
        for i in 0..per_request {
            let id = uuid::Uuid::new_v4().to_string();
            let user = format!("user-{request}-{i}@example.com");
            body.push_str(&format!(
                "{{\"event_id\":\"{id}\",\"event_type\":\"lockout\",\"severity\":\"high\",\"summary\":\"locked | out = {i}\",\"attributes\":{{\"user\":\"{user}\",\"src\":\"10.1.2.3\",\"tags\":{{\"env\":\"prod\"}}}}}}\n"
            ));
            sent.push((id, user));
        }
        siemrelay_e2e::post_ndjson_bodies(port, vec![body]).await;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    sent
}

/// Parses rsyslog's lines and counts arrivals per event id, checking the LEEF fields.
fn arrivals(lines: &[String], sent: &[(String, String)]) -> HashMap<String, usize> {
    let users: HashMap<&str, &str> = sent
        .iter()
        .map(|(id, user)| (id.as_str(), user.as_str()))
        .collect();
    let mut counts = HashMap::new();
    for line in lines {
        let syslog = parse_rfc5424(line).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(syslog.hostname, "relay-e2e");
        assert_eq!(syslog.pri, 20 * 8 + 3, "local4, error (high)");
        let leef = parse_leef(&syslog.msg).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(
            (
                leef.vendor.as_str(),
                leef.product.as_str(),
                leef.event_id.as_str()
            ),
            ("Toktra", "Gateway", "lockout")
        );
        let id = leef.get("event_id").expect("event_id").to_string();
        let user = users
            .get(id.as_str())
            .unwrap_or_else(|| panic!("unknown event {id}"));
        assert_eq!(leef.get("usrName"), Some(*user));
        assert_eq!(leef.get("src"), Some("10.1.2.3"));
        assert_eq!(leef.get("sev"), Some("8"));
        assert_eq!(leef.get("tags_env"), Some("prod"));
        assert!(
            leef.get("msg")
                .is_some_and(|m| m.starts_with("locked | out = "))
        );
        *counts.entry(id).or_insert(0usize) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_to_qradar_leef_over_tcp_reaches_rsyslog_once_each() {
    let server = Rsyslog::start(None);
    let port = free_port();
    let mut relay = Siemrelay::start(&config(port, &server.endpoint(), ""));
    relay.wait_ready(([127, 0, 0, 1], port).into());
    let sent = post_events(port, 20, 500, Duration::ZERO).await;
    let lines = tokio::task::block_in_place(|| {
        server.wait_for(Duration::from_secs(30), |l| l.len() >= sent.len())
    });
    let counts = arrivals(&lines, &sent);
    assert_eq!(
        counts.len(),
        sent.len(),
        "every event arrived; logs:\n{}",
        relay.logs()
    );
    assert_eq!(lines.len(), sent.len(), "once each");
    assert!(
        relay
            .terminate(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_restart_mid_stream_loses_nothing() {
    let mut server = Rsyslog::start(None);
    let port = free_port();
    let extra = "    confirm: peer_close\n    max_events: 100";
    let mut relay = Siemrelay::start(&config(port, &server.endpoint(), extra));
    relay.wait_ready(([127, 0, 0, 1], port).into());
    let poster = tokio::spawn(post_events(port, 40, 250, Duration::from_millis(25)));
    let before = tokio::task::block_in_place(|| {
        server.wait_for(Duration::from_secs(30), |l| l.len() >= 2_000)
    })
    .len();
    tokio::task::block_in_place(|| server.stop());
    let at_stop = server.lines().len();
    assert!(
        at_stop < 10_000,
        "the stop should land mid-stream ({at_stop} lines)"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| server.start_again());
    let sent = poster.await.expect("poster");
    let lines = tokio::task::block_in_place(|| {
        server.wait_for(Duration::from_secs(30), |l| {
            arrivals(l, &sent).len() >= sent.len()
        })
    });
    let counts = arrivals(&lines, &sent);
    let missing = sent.len() - counts.len();
    assert_eq!(
        missing,
        0,
        "{missing} events lost (stopped at {before}..{at_stop}); logs:\n{}",
        relay.logs()
    );
    let duplicates = lines.len() - sent.len();
    assert!(duplicates <= 1_000, "{duplicates} duplicates");
    assert!(
        relay
            .terminate(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );
}
