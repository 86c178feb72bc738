//! Issue 25, output shapes, with the real binary: the four product samples go through a webhook
//! receiver to Splunk HEC fakes with `schema: native | flat | ecs | ocsf`, and signed to `file`
//! exporters in the three reshaped schemas.
//!
//! - Keeptrusts' documented Splunk search `action="block"` (a field equality on the event's
//!   top-level `action`) matches every blocked Keeptrusts event with `flat`, and none with
//!   `native` (where the field arrives as `attributes.action`).
//! - `ecs` output validates against the vendored ECS 8.17 subset, `ocsf` output against the
//!   JSON Schemas compiled from the vendored OCSF 1.1.0 classes (tests/python/validate_schemas.py).
//! - Signed reshaped events verify with `siemrelay verify --schema … --chain`; a changed visible
//!   field or a changed carried form fails naming the line.

use serde_json::Value;
use siemrelay_e2e::fake::hec::{FakeHec, TOKEN};
use siemrelay_e2e::{Siemrelay, free_port, python, repo, run_cli};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const SIGN_KEY: &str = "schema-test-secret-0c1d2e3f";
const SAMPLES: [&str; 4] = [
    "keeptrusts.ndjson",
    "toktra.ndjson",
    "truthlocks.json",
    "neuraltrust.json",
];
const SCHEMAS: [&str; 3] = ["flat", "ecs", "ocsf"];

fn config(port: u16, hec: &str) -> String {
    let mut exporters = String::new();
    for schema in ["native", "flat", "ecs", "ocsf"] {
        exporters.push_str(&format!(
            "  splunk_hec/{schema}: {{ endpoint: \"{hec}\", token: \"{TOKEN}\", sourcetype: \"kt:{schema}\", schema: {schema} }}\n"
        ));
    }
    for schema in SCHEMAS {
        exporters.push_str(&format!(
            "  file/{schema}: {{ path: \"./out/{schema}.ndjson\", schema: {schema} }}\n"
        ));
    }
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
processors:
  sign:
    keys: [{{ id: k1, secret: "${{env:SIGN_KEY}}" }}]
    active: k1
    chain: true
exporters:
{exporters}service:
  shutdown_timeout: 10s
  pipelines:
    plain:
      receivers: [webhook]
      processors: []
      exporters: [splunk_hec/native, splunk_hec/flat, splunk_hec/ecs, splunk_hec/ocsf]
    signed:
      receivers: [webhook]
      processors: [sign]
      exporters: [file/flat, file/ecs, file/ocsf]
"#
    )
}

fn sample(name: &str) -> String {
    let path = repo().join("tests/fixtures/samples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sample_events(name: &str) -> Vec<Value> {
    let text = sample(name);
    if name.ends_with(".ndjson") {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("sample line"))
            .collect()
    } else {
        serde_json::from_str::<Vec<Value>>(&text).expect("sample array")
    }
}

async fn post_samples(port: u16) -> usize {
    let client = reqwest::Client::new();
    let mut total = 0;
    for name in SAMPLES {
        let content_type = if name.ends_with(".ndjson") {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        let response = client
            .post(format!("http://127.0.0.1:{port}/v1/events"))
            .header("content-type", content_type)
            .body(sample(name))
            .send()
            .await
            .expect("post sample");
        let status = response.status();
        let reply: Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 200, "{name}: {reply}");
        total += reply["accepted"].as_u64().unwrap_or(0) as usize;
    }
    total
}

/// The `event` members HEC indexed with sourcetype `kt:<schema>`.
fn indexed(hec: &FakeHec, schema: &str) -> Vec<Value> {
    let sourcetype = format!("kt:{schema}");
    hec.read(|s| {
        s.events
            .items
            .iter()
            .filter(|e| e["sourcetype"] == sourcetype.as_str())
            .map(|e| e["event"].clone())
            .collect()
    })
}

fn validate(kind: &str, events: &[Value], dir: &Path) -> String {
    let path = dir.join(format!("{kind}-events.ndjson"));
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&path, text).expect("write events");
    let output = std::process::Command::new(python())
        .arg(repo().join("tests/python/validate_schemas.py"))
        .arg(kind)
        .arg(&path)
        .output()
        .expect("run validate_schemas.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{kind} validation failed:\n{text}");
    text
}

fn verify(dir: &Path, schema: &str, file: &Path) -> (i32, String) {
    let keys = dir.join("keys.yaml");
    std::fs::write(
        &keys,
        format!("keys:\n  - {{ id: k1, secret: \"{SIGN_KEY}\" }}\n"),
    )
    .expect("keys file");
    let (keys, file) = (keys.to_string_lossy(), file.to_string_lossy());
    let output = run_cli(
        &[
            "verify", "--keys", &keys, "--chain", "--schema", schema, &file,
        ],
        dir,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn samples_arrive_searchable_valid_and_verifiable_in_every_schema() {
    let hec = FakeHec::start_default();
    let port = free_port();
    let mut relay = Siemrelay::start_in(
        tempfile::tempdir().expect("tempdir"),
        &config(port, &hec.url()),
        &[],
        &[("SIGN_KEY", SIGN_KEY)],
    );
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let total = post_samples(port).await;
    assert_eq!(total, 135, "the four samples hold 135 events");
    let deadline = Instant::now() + Duration::from_secs(60);
    while hec.read(|s| s.events.total()) < 4 * total {
        assert!(
            Instant::now() < deadline,
            "HEC got too few events:\n{}",
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{}", relay.logs());
    let dir = relay.into_dir();

    // Keeptrusts documents `index=... action="block"`: Splunk's JSON field extraction names a
    // top-level member by its key, a nested one by its path (`attributes.action`).
    let blocked = sample_events("keeptrusts.ndjson")
        .iter()
        .filter(|e| e["action"] == "block")
        .count();
    assert!(blocked > 0);
    let matches = |events: &[Value]| events.iter().filter(|e| e["action"] == "block").count();
    assert_eq!(
        matches(&indexed(&hec, "flat")),
        blocked,
        "flat: action=\"block\" matches"
    );
    assert_eq!(
        matches(&indexed(&hec, "native")),
        0,
        "native: the field is attributes.action"
    );
    assert!(
        indexed(&hec, "native")
            .iter()
            .any(|e| e["attributes"]["action"] == "block")
    );

    // ECS and OCSF against the vendored schemas.
    let ecs = indexed(&hec, "ecs");
    assert_eq!(ecs.len(), total);
    let blocked_ecs = ecs
        .iter()
        .filter(|e| e["event"]["action"] == "block")
        .count();
    assert_eq!(blocked_ecs, blocked, "ECS: event.action");
    validate("ecs", &ecs, dir.path());
    let ocsf = indexed(&hec, "ocsf");
    assert_eq!(ocsf.len(), total);
    let report = validate("ocsf", &ocsf, dir.path());
    assert!(report.contains("classes 0, 2004, 3002"), "{report}");

    // Signed, reshaped, verified; the signed files validate too.
    for schema in SCHEMAS {
        let file = dir.path().join(format!("out/{schema}.ndjson"));
        let (code, text) = verify(dir.path(), schema, &file);
        assert_eq!(code, 0, "{schema}: {text}");
        assert!(
            text.contains(&format!("OK: {total} events verified, chain intact")),
            "{text}"
        );
    }
    let signed_ecs: Vec<Value> = std::fs::read_to_string(dir.path().join("out/ecs.ndjson"))
        .expect("ecs file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    validate("ecs", &signed_ecs, dir.path());

    // Tampering: a visible field, then the carried form.
    let path = dir.path().join("out/ecs.ndjson");
    let original = std::fs::read_to_string(&path).expect("ecs file");
    let mut lines: Vec<Value> = original
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    let line = lines
        .iter()
        .position(|e| e["event"]["action"] == "block")
        .expect("a blocked event");
    lines[line]["event"]["action"] = "allow".into();
    let write = |lines: &[Value]| {
        let text: String = lines.iter().map(|e| format!("{e}\n")).collect();
        std::fs::write(&path, text).expect("write tampered");
    };
    write(&lines);
    let (code, text) = verify(dir.path(), "ecs", &path);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("FAILED at line {}", line + 1)) && text.contains("event.action"),
        "{text}"
    );
    lines[line]["event"]["action"] = "block".into();
    let carried = lines[line]["siemrelay"]["signed_json"]
        .as_str()
        .expect("signed_json")
        .replace("\"block\"", "\"allow\"");
    lines[line]["siemrelay"]["signed_json"] = carried.into();
    write(&lines);
    let (code, text) = verify(dir.path(), "ecs", &path);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("FAILED at line {}", line + 1)),
        "{text}"
    );
    // Without --schema the reshaped file is not siemrelay's native form.
    std::fs::write(&path, original).expect("restore");
    let (code, text) = verify(dir.path(), "native", &path);
    assert_eq!(code, 1, "{text}");
}

#[test]
fn exporters_that_do_not_send_json_refuse_a_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        r#"
receivers:
  webhook: { endpoint: "127.0.0.1:18999" }
exporters:
  syslog: { endpoint: "udp://127.0.0.1:514", schema: ecs }
service:
  pipelines:
    p: { receivers: [webhook], processors: [], exporters: [syslog] }
"#,
    )
    .expect("config");
    let output = run_cli(
        &["validate", "--config", &config.to_string_lossy()],
        dir.path(),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("exporters.syslog.schema") && text.contains("cannot reshape"),
        "{text}"
    );
}
