//! Memory that shows (issue 24): `/metrics` of the real binary gives resident memory as the
//! standard `process_*` metrics, the admission budget (`service.memory_limit`) as a limit and
//! what requests hold of it right now, and the allocator's own figures (mimalloc's committed
//! memory), each with a value the kernel's own figures bear out, and with their names intact
//! when a word in them is the value of an environment variable the config reads.

mod admin_support;

use admin_support::{Admin, metric, ndjson, post_webhook};
use siemrelay_e2e::{Siemrelay, free_port};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A field of `/proc/<pid>/status` in bytes (`VmRSS`, `VmHWM`, given there in kB).
fn proc_status_bytes(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status:\n{status}"));
    kib * 1024.0
}

/// Scrapes until `ready` holds for the exposition (or 30 s pass), and returns the last one.
async fn scrape_until(admin: &Admin, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = admin.metrics().await;
        if ready(&text) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn value(text: &str, name: &str) -> f64 {
    metric(text, name, &[]).unwrap_or_else(|| panic!("no {name} in the exposition:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_resident_memory_the_admission_budget_and_the_allocators_figures() {
    let (webhook, admin_port) = (free_port(), free_port());
    let yaml = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  file: {{ path: "./${{env:OUT_DIR}}/events.ndjson" }}
service:
  memory_limit: 24MiB
  admin: {{ endpoint: "127.0.0.1:{admin_port}" }}
  pipelines:
    security: {{ receivers: [webhook], exporters: [file] }}
"#
    );
    // A value read from the environment is masked wherever it could leak; "memory" must not
    // be masked out of the metric names.
    let mut relay = Siemrelay::start_with(&yaml, &[], &[("OUT_DIR", "memory")]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin_port)));
    let admin = Admin::new(admin_port, None);
    let client = reqwest::Client::new();
    for round in 0..5 {
        post_webhook(&client, webhook, ndjson(200, &format!("m{round}"), false).0).await;
    }
    let idle = admin.metrics().await;

    // Resident memory: a real process's, and no more than the kernel's peak for it.
    let resident = value(&idle, "process_resident_memory_bytes");
    let peak = proc_status_bytes(relay.pid(), "VmHWM");
    assert!(
        resident > 1024.0 * 1024.0 && resident <= peak,
        "process_resident_memory_bytes {resident}, VmHWM {peak}"
    );
    let virtual_memory = value(&idle, "process_virtual_memory_bytes");
    assert!(
        virtual_memory >= resident,
        "virtual {virtual_memory} < resident {resident}"
    );
    let (open_fds, max_fds) = (
        value(&idle, "process_open_fds"),
        value(&idle, "process_max_fds"),
    );
    assert!(
        open_fds >= 3.0 && open_fds <= max_fds,
        "fds {open_fds} of {max_fds}"
    );
    assert!(value(&idle, "process_cpu_seconds_total") >= 0.0);
    assert!(value(&idle, "process_start_time_seconds") > 1.7e9);

    // The allocator's figures: mimalloc has committed memory, at most what it ever had, and
    // not more than the process maps.
    let committed = value(&idle, "siemrelay_allocator_committed_bytes");
    let peak_committed = value(&idle, "siemrelay_allocator_peak_committed_bytes");
    assert!(
        committed > 0.0 && committed <= peak_committed && peak_committed <= virtual_memory,
        "committed {committed}, peak committed {peak_committed}, virtual {virtual_memory}"
    );

    // The admission budget: the configured limit, nothing held while idle.
    assert_eq!(
        value(&idle, "siemrelay_admission_limit_bytes"),
        24.0 * 1024.0 * 1024.0
    );
    assert_eq!(
        value(&idle, "siemrelay_admission_reserved_bytes"),
        0.0,
        "{idle}"
    );

    // A sender announces a 4 MiB body and sends it slowly: what it holds shows while it
    // arrives, and goes back when the request ends.
    let declared = 4 * 1024 * 1024;
    let mut slow = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], webhook)))
        .await
        .expect("connect");
    slow.write_all(
        format!(
            "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ncontent-length: {declared}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("headers");
    let line = format!(
        "{{\"event_type\":\"held\",\"pad\":\"{}\"}}\n",
        "x".repeat(990)
    );
    let mut sent = 0;
    while sent + line.len() <= 64 * 1024 {
        slow.write_all(line.as_bytes()).await.expect("body");
        sent += line.len();
    }
    let holding = scrape_until(&admin, |text| {
        metric(text, "siemrelay_admission_reserved_bytes", &[]).is_some_and(|v| v > 0.0)
    })
    .await;
    let held = value(&holding, "siemrelay_admission_reserved_bytes");
    assert!(
        held >= sent as f64 && held <= 24.0 * 1024.0 * 1024.0,
        "a request with {sent} bytes received holds {held} bytes of the budget:\n{holding}"
    );
    // The rest of the body, then the answer: the reservation is given back.
    let mut rest = declared - sent;
    while rest > 0 {
        let chunk = if rest >= line.len() {
            line.clone()
        } else {
            " ".repeat(rest - 1) + "\n"
        };
        slow.write_all(chunk.as_bytes()).await.expect("body");
        rest -= chunk.len();
    }
    let mut answer = [0u8; 64];
    let n = slow.read(&mut answer).await.expect("answer");
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let after = scrape_until(&admin, |text| {
        metric(text, "siemrelay_admission_reserved_bytes", &[]) == Some(0.0)
    })
    .await;
    assert_eq!(
        value(&after, "siemrelay_admission_reserved_bytes"),
        0.0,
        "{after}"
    );
    // The 4 MiB request went through the allocator: its peak shows it.
    let peak_after = value(&after, "siemrelay_allocator_peak_committed_bytes");
    assert!(
        peak_after >= peak_committed && peak_after >= declared as f64,
        "peak committed {peak_after} after a {declared}-byte request (before: {peak_committed})"
    );
    assert!(
        value(&after, "process_resident_memory_bytes") <= proc_status_bytes(relay.pid(), "VmHWM")
    );
    assert!(
        relay
            .terminate(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "{}",
        relay.logs()
    );
}
