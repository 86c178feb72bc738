//! Issue 25, detection content: the Sigma rules of `content/sigma/` convert with pySigma for
//! Splunk SPL, Elasticsearch Lucene and ES|QL, Kusto (Sentinel), DuckDB and Datadog, and, run
//! with pySigma-backend-duckdb over siemrelay's own `file` output (`schema: flat`, the schema
//! the rules are written for) of a scripted scenario through the real binary, each rule fires
//! on exactly the events (or users) meant for it.
//!
//! The scenario: the Toktra sample (40 events from 40 users: policy violations and lockouts
//! one per user) as background, six policy violations from alice (the rate rule's threshold
//! is five in ten minutes) and two from bob, three lockouts of carol (threshold three in an
//! hour) and one of dave, a failed and a passed `signature_verification`, an
//! `exporter_dead_letter` with 12 events and one with none.

use serde_json::{Value, json};
use siemrelay_e2e::{Siemrelay, free_port, python, repo};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn config(port: u16) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
exporters:
  file: {{ path: "./out/events.ndjson", schema: flat }}
service:
  shutdown_timeout: 10s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [file] }}
"#
    )
}

/// The Python with pySigma's Datadog backend (its own venv: it needs pySigma 0.11).
fn datadog_python() -> PathBuf {
    let path = std::env::var_os("SIEMRELAY_PYTHON_SIGMA_DATADOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/py-venv-sigma-datadog/bin/python"));
    assert!(
        path.exists(),
        "no {}: run `bash scripts/setup-test-env.sh` (it makes target/py-venv-sigma-datadog)",
        path.display()
    );
    path
}

fn run_script(python: PathBuf, args: &[&str]) -> String {
    let output = Command::new(python)
        .arg(repo().join("tests/python/sigma_rules.py"))
        .args(args)
        .output()
        .expect("run sigma_rules.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "sigma_rules.py {args:?}:\n{text}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_rule_converts_for_every_backend() {
    let main = run_script(python(), &["convert"]);
    for backend in [
        "splunk",
        "elasticsearch-lucene",
        "elasticsearch-esql",
        "kusto",
        "duckdb",
    ] {
        for rule in [
            "siemrelay_policy_violation",
            "siemrelay_lockout",
            "siemrelay_signature_failure",
            "siemrelay_exporter_dead_letter",
        ] {
            assert!(main.contains(&format!("{backend}: {rule}: ok:")), "{main}");
        }
    }
    for backend in ["splunk", "elasticsearch-esql", "duckdb"] {
        for rule in [
            "siemrelay_policy_violation_burst",
            "siemrelay_repeated_lockouts",
        ] {
            assert!(main.contains(&format!("{backend}: {rule}: ok:")), "{main}");
        }
    }
    let datadog = run_script(datadog_python(), &["convert"]);
    assert!(
        datadog.contains("datadog: siemrelay_signature_failure: ok: '@event_type:signature_verification AND @verify_status:failed'"),
        "{datadog}"
    );
}

/// One scripted event with a fresh id; returns the id.
fn event(events: &mut Vec<Value>, minute: u32, mut fields: Value) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    fields["event_id"] = id.clone().into();
    fields["timestamp"] = format!("2026-12-05T10:{minute:02}:00Z").into();
    fields["source"] = "scenario".into();
    events.push(fields);
    id
}

#[tokio::test]
async fn each_rule_fires_on_the_events_meant_for_it_and_no_others() {
    let mut events: Vec<Value> =
        std::fs::read_to_string(repo().join("tests/fixtures/samples/toktra.ndjson"))
            .expect("toktra sample")
            .lines()
            .map(|l| serde_json::from_str(l).expect("sample line"))
            .collect();
    let mut expected: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let sample_ids = |kind: &str, events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event_type"] == kind)
            .map(|e| e["event_id"].as_str().expect("sample id").to_string())
            .collect()
    };
    let mut violations = sample_ids("policy_violation", &events);
    let mut lockouts = sample_ids("lockout", &events);
    for minute in 0..6 {
        violations.push(event(&mut events, minute, json!({"event_type": "policy_violation", "severity": "high", "user_email": "alice@acme.example", "summary": "blocked upload"})));
    }
    for minute in [1, 30] {
        violations.push(event(&mut events, minute, json!({"event_type": "policy_violation", "severity": "high", "user_email": "bob@acme.example"})));
    }
    for minute in [5, 20, 35] {
        lockouts.push(event(&mut events, minute, json!({"event_type": "lockout", "severity": "critical", "user_email": "carol@acme.example"})));
    }
    lockouts.push(event(
        &mut events,
        7,
        json!({"event_type": "lockout", "severity": "critical", "user_email": "dave@acme.example"}),
    ));
    let failed = event(
        &mut events,
        8,
        json!({"event_type": "signature_verification", "severity": "critical", "verify_status": "failed", "verify_reason": "bad signature", "verify_line": 7, "verify_file": "/var/lib/siemrelay/events.ndjson"}),
    );
    event(
        &mut events,
        9,
        json!({"event_type": "signature_verification", "severity": "info", "verify_status": "ok", "verify_line": 0, "verify_file": "/var/lib/siemrelay/events.ndjson"}),
    );
    let dead = event(
        &mut events,
        10,
        json!({"event_type": "exporter_dead_letter", "severity": "error", "exporter": "splunk_hec/prod", "error": "HTTP 400: Invalid data format", "dead_lettered": 12}),
    );
    event(
        &mut events,
        11,
        json!({"event_type": "exporter_dead_letter", "severity": "info", "exporter": "datadog", "error": "", "dead_lettered": 0}),
    );
    violations.sort();
    lockouts.sort();
    expected.insert("siemrelay_policy_violation", violations);
    expected.insert("siemrelay_lockout", lockouts);
    expected.insert(
        "siemrelay_policy_violation_burst",
        vec!["alice@acme.example".into()],
    );
    expected.insert(
        "siemrelay_repeated_lockouts",
        vec!["carol@acme.example".into()],
    );
    expected.insert("siemrelay_signature_failure", vec![failed]);
    expected.insert("siemrelay_exporter_dead_letter", vec![dead]);

    let port = free_port();
    let mut relay = Siemrelay::start_in(
        tempfile::tempdir().expect("tempdir"),
        &config(port),
        &[],
        &[],
    );
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let reply = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("post scenario");
    assert_eq!(reply.status(), 200);
    let file = relay.dir().join("out/events.ndjson");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&file).map_or(0, |t| t.lines().count()) < events.len() {
        assert!(
            Instant::now() < deadline,
            "the file got too few events:\n{}",
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{}", relay.logs());

    let fired: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&run_script(python(), &["run", &file.to_string_lossy()]))
            .expect("sigma_rules.py run prints JSON");
    let expected: BTreeMap<String, Vec<String>> = expected
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(fired, expected);
}
