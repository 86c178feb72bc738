//! `/metrics` of the real binary tells the truth an operator relies on: the standard `process_*`
//! metrics (read from /proc), `siemrelay_build_info{version,commit}`, a file exporter whose
//! latency histogram is measured, and families listed in one order scrape after scrape.

mod admin_support;

use admin_support::{Admin, TOKEN, metric, ndjson, post_webhook};
use siemrelay_e2e::{Siemrelay, free_port, run_cli};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The `# TYPE` names of an exposition, in order.
fn families(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_include_process_and_build_info_measure_file_latency_and_keep_their_order() {
    let (webhook, admin_port) = (free_port(), free_port());
    let yaml = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
processors:
  filter/high: {{ include: {{ min_severity: high }} }}
exporters:
  file: {{ path: "./out/events.ndjson" }}
service:
  admin:
    endpoint: "127.0.0.1:{admin_port}"
    auth: {{ bearer_token: "${{env:SIEMRELAY_ADMIN_TOKEN}}" }}
  pipelines:
    security: {{ receivers: [webhook], processors: [filter/high], exporters: [file] }}
"#
    );
    let mut relay = Siemrelay::start_with(&yaml, &[], &[("SIEMRELAY_ADMIN_TOKEN", TOKEN)]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin_port)));
    let admin = Admin::new(admin_port, Some(TOKEN));
    let client = reqwest::Client::new();
    for round in 0..5 {
        post_webhook(&client, webhook, ndjson(40, &format!("m{round}"), false).0).await;
    }
    let exporter = admin
        .wait_exporter("file", Duration::from_secs(20), |e| {
            e["events_sent"].as_u64() == Some(200)
        })
        .await;
    assert_eq!(exporter["events_sent"], 200, "{exporter}");

    let first = admin.metrics().await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    for name in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
    ] {
        let value = metric(&first, name, &[]).unwrap_or_else(|| panic!("no {name}:\n{first}"));
        assert!(value > 0.0, "{name} = {value}");
    }
    let cpu = metric(&first, "process_cpu_seconds_total", &[])
        .unwrap_or_else(|| panic!("no process_cpu_seconds_total:\n{first}"));
    assert!(cpu >= 0.0, "process_cpu_seconds_total = {cpu}");
    let started = metric(&first, "process_start_time_seconds", &[])
        .unwrap_or_else(|| panic!("no process_start_time_seconds:\n{first}"));
    assert!(
        started <= now + 1.0 && started > now - 600.0,
        "process_start_time_seconds = {started}, now {now}"
    );
    let rss = metric(&first, "process_resident_memory_bytes", &[]).unwrap_or_default();
    assert!(
        rss > 1_000_000.0,
        "resident memory {rss} bytes is not a real process's"
    );

    // build_info: the version, and the commit `siemrelay --version` names.
    let version = run_cli(&["-V"], relay.dir());
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("--version names no commit: {version}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "commit {commit:?}"
    );
    assert_eq!(
        metric(
            &first,
            "siemrelay_build_info",
            &[("version", env!("CARGO_PKG_VERSION")), ("commit", commit)]
        ),
        Some(1.0),
        "{first}"
    );

    // The file exporter measures its writes.
    let sum = metric(
        &first,
        "siemrelay_exporter_request_duration_seconds_sum",
        &[("exporter", "file")],
    )
    .unwrap_or_else(|| panic!("no latency sum for the file exporter:\n{first}"));
    let count = metric(
        &first,
        "siemrelay_exporter_request_duration_seconds_count",
        &[("exporter", "file")],
    )
    .unwrap_or_default();
    assert!(
        count >= 1.0 && sum > 0.0,
        "file latency: sum {sum}, count {count}"
    );

    // Families in one (sorted) order, scrape after scrape.
    let order = families(&first);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "families are not in name order");
    assert!(order.len() >= 15, "{order:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut scrapes = 0;
    while Instant::now() < deadline && scrapes < 10 {
        post_webhook(&client, webhook, ndjson(5, "again", true).0).await;
        let again = admin.metrics().await;
        assert_eq!(
            families(&again),
            order,
            "the family order changed between scrapes"
        );
        scrapes += 1;
    }
    assert!(
        relay
            .terminate(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "{}",
        relay.logs()
    );
}
