//! Issue 4 acceptance with the real binary: webhook → filter → enrich → sign (keys from env,
//! `chain: true`) → file, then `siemrelay verify --keys keys.yaml --chain FILE`: the written file
//! verifies; one flipped byte in any field, a deleted event, or a keys file without the signing
//! key fails naming the right line; one signature is recomputed here by hand (sorted-key
//! canonical JSON + HMAC-SHA256, per docs/processors.md); a SIGTERM restart continues the chain;
//! filter and enrich do what they are configured to do.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use siemrelay_e2e::{Siemrelay, free_port, read_ndjson_files, run_cli};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const K1: &str = "k1-old-secret-5f0e1d2c";
const K2: &str = "k2-active-secret-9a8b7c6d";
const REGION: &str = "eu-west-3";
/// Event types cycle through these; `test_connection` is excluded by the filter.
const TYPES: [&str; 4] = ["login", "policy_violation", "test_connection", "anomaly"];

fn config(port: u16) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
processors:
  filter/no-tests:
    exclude: {{ event_types: [test_connection] }}
  enrich:
    actions:
      - {{ action: upsert, key: region, value: "${{env:REGION}}" }}
      - {{ action: upsert, key: deployment.env, value: prod }}
  sign:
    keys:
      - {{ id: k2, secret: "${{env:SIGN_KEY_K2}}" }}
      - {{ id: k1, secret: "${{env:SIGN_KEY_K1}}" }}
    active: k2
    chain: true
exporters:
  file: {{ path: "./out/signed.ndjson" }}
service:
  shutdown_timeout: 10s
  pipelines:
    security:
      receivers: [webhook]
      processors: [filter/no-tests, enrich, sign]
      exporters: [file]
"#
    )
}

fn start(dir: tempfile::TempDir, port: u16) -> Siemrelay {
    let env = [("SIGN_KEY_K1", K1), ("SIGN_KEY_K2", K2), ("REGION", REGION)];
    let mut relay = Siemrelay::start_in(dir, &config(port), &[], &env);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    relay
}

/// NDJSON for events `first..first+n`: varied types, a float, an integer, a nested object.
fn events(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| {
            json!({
                "event_type": TYPES[i % TYPES.len()],
                "severity": "high",
                "timestamp": format!("2026-11-20T09:{:02}:{:02}.25Z", (i / 60) % 60, i % 60),
                "summary": format!("signed event number {i}"),
                "user": format!("user-{i}"),
                "seq": i,
                "score": 0.5 + (i % 4) as f64,
                "tags": {"env": "prod", "team": "sec"},
            })
            .to_string()
                + "\n"
        })
        .collect()
}

/// Posts events `first..first+n` in one request; returns how many were queued (not filtered).
async fn post(port: u16, first: usize, n: usize) -> u64 {
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(events(first, n))
        .send()
        .await
        .expect("request");
    let status = response.status();
    let reply: Value = response.json().await.unwrap_or_default();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], n as u64, "{reply}");
    reply["queued"].as_u64().unwrap_or(u64::MAX)
}

fn expected_kept(first: usize, n: usize) -> u64 {
    (first..first + n)
        .filter(|i| TYPES[i % TYPES.len()] != "test_connection")
        .count() as u64
}

fn signed_file(dir: &Path) -> PathBuf {
    dir.join("out/signed.ndjson")
}

fn stop(relay: &mut Siemrelay) {
    let status = relay.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit after SIGTERM: {status:?}\n{}",
        relay.logs()
    );
}

/// Runs one pipeline: 4 requests of 10 events (30 kept), then SIGTERM. Returns the process
/// directory (holding `out/signed.ndjson`).
async fn signed_run() -> tempfile::TempDir {
    let port = free_port();
    let mut relay = start(tempfile::tempdir().expect("tempdir"), port);
    for request in 0..4 {
        assert_eq!(
            post(port, request * 10, 10).await,
            expected_kept(request * 10, 10)
        );
    }
    stop(&mut relay);
    relay.into_dir()
}

fn write_keys(dir: &Path, name: &str, keys: &[(&str, &str)]) -> PathBuf {
    let mut text = String::from("keys:\n");
    for (id, secret) in keys {
        text.push_str(&format!("  - {{ id: {id}, secret: \"{secret}\" }}\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write keys file");
    path
}

/// `siemrelay verify --keys KEYS --chain EVENTS`: exit code and stdout + stderr.
fn verify(dir: &Path, keys: &Path, events: &Path, chain: bool) -> (i32, String) {
    let keys = keys.to_string_lossy();
    let events = events.to_string_lossy();
    let mut args = vec!["verify", "--keys", &keys];
    if chain {
        args.push("--chain");
    }
    args.push(&events);
    let output = run_cli(&args, dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Flips one byte right after `needle` (which must occur exactly once in `line`).
fn flip_after(line: &str, needle: &str) -> String {
    assert_eq!(
        line.matches(needle).count(),
        1,
        "{needle:?} must occur once in {line}"
    );
    let at = line.find(needle).expect("counted above") + needle.len();
    let mut bytes = line.as_bytes().to_vec();
    assert!(
        bytes[at].is_ascii_alphanumeric(),
        "byte after {needle:?} is {:?}",
        bytes[at] as char
    );
    bytes[at] ^= 0x01;
    String::from_utf8(bytes).expect("ASCII flip keeps UTF-8")
}

/// The leaf paths where two JSON values differ.
fn changed_leaves(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            for (key, value) in x {
                match y.get(key) {
                    Some(other) => changed_leaves(&format!("{path}.{key}"), value, other, out),
                    None => out.push(format!("{path}.{key}")),
                }
            }
        }
        _ if a == b => {}
        _ => out.push(path.to_string()),
    }
}

#[tokio::test]
async fn the_signed_file_verifies_and_any_tampering_fails_at_its_line() {
    let dir = signed_run().await;
    let file = signed_file(dir.path());
    let keys = write_keys(dir.path(), "keys.yaml", &[("k2", K2), ("k1", K1)]);
    let lines = read_lines(&file);
    assert_eq!(
        lines.len(),
        30,
        "40 events posted, 10 test_connection filtered out"
    );

    let (code, output) = verify(dir.path(), &keys, &file, true);
    assert_eq!(code, 0, "the untouched file verifies:\n{output}");
    assert!(
        output.contains("30 events verified") && output.contains("chain intact"),
        "{output}"
    );

    // One flipped byte in one field of one line (1-based line numbers), each a different field.
    let tampering: [(usize, &str, &str, &str); 6] = [
        (3, "event_type", "\"event_type\":\"", "bad signature"),
        (5, "summary", "\"summary\":\"signed event ", "bad signature"),
        (8, "attributes.user", "\"user\":\"user-", "bad signature"),
        (12, "timestamp", "\"timestamp\":\"", "bad signature"),
        (
            17,
            "severity_number",
            "\"severity_number\":1",
            "bad signature",
        ),
        (21, "signature.kid", "\"kid\":\"k", "unknown key id \"k3\""),
    ];
    for (line_no, field, needle, reason) in tampering {
        let mut copy = lines.clone();
        copy[line_no - 1] = flip_after(&lines[line_no - 1], needle);
        let original: Value =
            serde_json::from_str(&lines[line_no - 1]).expect("written line is JSON");
        let tampered: Value = serde_json::from_str(&copy[line_no - 1])
            .unwrap_or_else(|e| panic!("{field}: the flip must keep the line valid JSON: {e}"));
        let mut changed = Vec::new();
        changed_leaves("", &original, &tampered, &mut changed);
        assert_eq!(
            changed,
            [format!(".{field}")],
            "exactly the field {field} changed"
        );

        let path = dir
            .path()
            .join(format!("tampered-{}.ndjson", field.replace('.', "_")));
        std::fs::write(&path, copy.join("\n") + "\n").expect("write copy");
        let (code, output) = verify(dir.path(), &keys, &path, true);
        assert_eq!(
            code, 1,
            "{field} flipped on line {line_no} must fail:\n{output}"
        );
        assert!(
            output.contains(&format!("FAILED at line {line_no}: {reason}")),
            "{field} on line {line_no}:\n{output}"
        );
    }

    // A deleted event breaks the chain at the line that follows it.
    let mut copy = lines.clone();
    copy.remove(9);
    let path = dir.path().join("deleted.ndjson");
    std::fs::write(&path, copy.join("\n") + "\n").expect("write copy");
    let (code, output) = verify(dir.path(), &keys, &path, true);
    assert_eq!(code, 1, "a deleted event must fail:\n{output}");
    assert!(
        output.contains("FAILED at line 10: broken chain"),
        "{output}"
    );
    // Without --chain each remaining event still carries a good signature: the chain is what
    // detects the deletion.
    let (code, output) = verify(dir.path(), &keys, &path, false);
    assert_eq!(code, 0, "{output}");

    // A keys file without the signing key (k2 retired) fails at the first line.
    let retired = write_keys(dir.path(), "keys-retired.yaml", &[("k1", K1)]);
    let (code, output) = verify(dir.path(), &retired, &file, true);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("FAILED at line 1: unknown key id \"k2\""),
        "{output}"
    );

    // The right key id with a wrong secret fails as a bad signature.
    let wrong = write_keys(
        dir.path(),
        "keys-wrong.yaml",
        &[("k2", "not-the-secret"), ("k1", K1)],
    );
    let (code, output) = verify(dir.path(), &wrong, &file, true);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("FAILED at line 1: bad signature"),
        "{output}"
    );
}

/// Canonical JSON per docs/processors.md, written independently of siemrelay: members sorted
/// by key, no whitespace, strings escaped as serde_json does (only `"`, `\` and control
/// characters), integers as digits, the test's floats in their shortest form.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // UTF-16 order equals byte order for the ASCII keys of these events.
            assert!(entries.iter().all(|(k, _)| k.is_ascii()), "non-ASCII key");
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).expect("string"));
                out.push(':');
                canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Number(n) => {
            let text = n.to_string();
            assert!(
                !text.contains(['e', 'E']),
                "exponent forms are not used by this test: {text}"
            );
            out.push_str(text.strip_suffix(".0").unwrap_or(&text));
        }
        other => out.push_str(&serde_json::to_string(other).expect("scalar")),
    }
}

fn canonical_string(value: &Value) -> String {
    let mut out = String::new();
    canonical(value, &mut out);
    out
}

#[test]
fn canonical_form_sorts_keys_and_strips_whitespace() {
    let value: Value = serde_json::from_str(
        r#"{ "b": [1, 2.5, {"z": null, "a": true}], "a": "x\ty\"", "c": 3.0 }"#,
    )
    .expect("JSON");
    assert_eq!(
        canonical_string(&value),
        r#"{"a":"x\ty\"","b":[1,2.5,{"a":true,"z":null}],"c":3}"#
    );
}

#[tokio::test]
async fn an_independent_hmac_matches_the_written_signatures_and_chain_links() {
    let dir = signed_run().await;
    let lines = read_lines(&signed_file(dir.path()));
    assert_eq!(lines.len(), 30);
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let zeros = "0".repeat(64);
    assert_eq!(
        events[0]["signature"]["prev"],
        zeros.as_str(),
        "the first event ever starts the chain"
    );
    for (index, event) in events.iter().enumerate() {
        let signature = &event["signature"];
        assert_eq!(signature["alg"], "HMAC-SHA256");
        assert_eq!(signature["kid"], "k2", "the active key signs");
        let mut unsigned = event.clone();
        let value = unsigned["signature"]
            .as_object_mut()
            .and_then(|s| s.remove("value"));
        let value = value
            .and_then(|v| v.as_str().map(str::to_string))
            .expect("signature.value");
        let mut mac = Hmac::<Sha256>::new_from_slice(K2.as_bytes()).expect("any key length");
        mac.update(canonical_string(&unsigned).as_bytes());
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            value,
            "line {}: HMAC by hand",
            index + 1
        );
        if index > 0 {
            let previous = hex::encode(Sha256::digest(
                canonical_string(&events[index - 1]).as_bytes(),
            ));
            assert_eq!(
                signature["prev"],
                previous.as_str(),
                "line {}: prev is the SHA-256 of line {}",
                index + 1,
                index
            );
        }
    }
    // The wrong key gives a different MAC (the comparison above can fail).
    let mut unsigned = events[0].clone();
    unsigned["signature"]
        .as_object_mut()
        .map(|s| s.remove("value"));
    let mut mac = Hmac::<Sha256>::new_from_slice(K1.as_bytes()).expect("any key length");
    mac.update(canonical_string(&unsigned).as_bytes());
    assert_ne!(
        Some(hex::encode(mac.finalize().into_bytes()).as_str()),
        events[0]["signature"]["value"].as_str()
    );
}

#[tokio::test]
async fn filter_and_enrich_run_before_signing() {
    let dir = signed_run().await;
    let events = read_ndjson_files(&dir.path().join("out"), "signed");
    assert_eq!(events.len(), 30);
    let mut seqs = Vec::new();
    for event in &events {
        assert_ne!(
            event["event_type"], "test_connection",
            "excluded type written: {event}"
        );
        assert_eq!(
            event["attributes"]["region"], REGION,
            "upsert from ${{env:REGION}}: {event}"
        );
        assert_eq!(
            event["attributes"]["deployment"],
            json!({"env": "prod"}),
            "nested upsert: {event}"
        );
        assert_eq!(
            event["attributes"]["tags"],
            json!({"env": "prod", "team": "sec"}),
            "other attributes untouched"
        );
        seqs.push(event["attributes"]["seq"].as_u64().expect("seq"));
    }
    let expected: Vec<u64> = (0..40u64)
        .filter(|i| TYPES[*i as usize % TYPES.len()] != "test_connection")
        .collect();
    assert_eq!(seqs, expected, "every kept event once, in order");
}

fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

#[tokio::test]
async fn a_sigterm_restart_continues_the_chain() {
    let port = free_port();
    let mut relay = start(tempfile::tempdir().expect("tempdir"), port);
    post(port, 0, 10).await;
    post(port, 10, 10).await;
    stop(&mut relay);
    let first_run = read_lines(&signed_file(relay.dir())).len();
    assert_eq!(first_run, 15);
    let mut relay = start(relay.into_dir(), port);
    post(port, 20, 10).await;
    post(port, 30, 10).await;
    stop(&mut relay);
    let dir = relay.into_dir();
    let file = signed_file(dir.path());
    let lines = read_lines(&file);
    assert_eq!(lines.len(), 30, "both runs append to the same file");
    let keys = write_keys(dir.path(), "keys.yaml", &[("k2", K2)]);
    let (code, output) = verify(dir.path(), &keys, &file, true);
    assert_eq!(code, 0, "the chain spans both runs:\n{output}");
    assert!(
        !output.contains("chain restart"),
        "a clean restart is not a chain restart:\n{output}"
    );
    let first_after: Value = serde_json::from_str(&lines[first_run]).expect("JSON");
    let last_before: Value = serde_json::from_str(&lines[first_run - 1]).expect("JSON");
    assert_eq!(
        first_after["signature"]["prev"].as_str(),
        Some(hex::encode(Sha256::digest(
            canonical_string(&last_before).as_bytes()
        )))
        .as_deref(),
        "the second run links to the last event of the first"
    );
}

#[tokio::test]
async fn a_kill_restart_is_a_signed_chain_restart_note() {
    let port = free_port();
    let mut relay = start(tempfile::tempdir().expect("tempdir"), port);
    post(port, 0, 10).await;
    let file = signed_file(relay.dir());
    assert!(
        wait_until(Duration::from_secs(10), || read_lines_if_any(&file) == 8),
        "8 events written before the kill"
    );
    relay.kill();
    let mut relay = start(relay.into_dir(), port);
    post(port, 10, 10).await;
    stop(&mut relay);
    let dir = relay.into_dir();
    let lines = read_lines(&file);
    assert_eq!(lines.len(), 15);
    let restarted: Value = serde_json::from_str(&lines[8]).expect("JSON");
    assert_eq!(
        restarted["signature"]["prev"],
        "0".repeat(64).as_str(),
        "after a crash the chain restarts"
    );
    let keys = write_keys(dir.path(), "keys.yaml", &[("k2", K2)]);
    let (code, output) = verify(dir.path(), &keys, &file, true);
    assert_eq!(
        code, 0,
        "a chain restart is a note, not a failure:\n{output}"
    );
    assert!(output.contains("note: line 9: chain restart"), "{output}");
}

fn read_lines_if_any(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[tokio::test]
async fn concurrent_senders_still_produce_one_intact_chain() {
    let port = free_port();
    let mut relay = start(tempfile::tempdir().expect("tempdir"), port);
    let senders: Vec<_> = (0..8)
        .map(|s| {
            tokio::spawn(async move {
                for r in 0..5 {
                    post(port, (s * 5 + r) * 10, 10).await;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.expect("sender task");
    }
    stop(&mut relay);
    let dir = relay.into_dir();
    let file = signed_file(dir.path());
    assert_eq!(
        read_lines(&file).len(),
        300,
        "400 events posted, 100 filtered out"
    );
    let keys = write_keys(dir.path(), "keys.yaml", &[("k2", K2)]);
    let (code, output) = verify(dir.path(), &keys, &file, true);
    assert_eq!(code, 0, "8 concurrent senders, one chain:\n{output}");
    assert!(output.contains("300 events verified"), "{output}");
}

/// `sign` keeps the bytes it signed as the event's JSON form; a processor placed after it that
/// changes events must not be shadowed by those bytes: its change reaches the SIEM (and, as
/// the signature no longer covers the event, `verify` says so).
#[tokio::test]
async fn a_change_made_after_signing_is_written_not_the_kept_signed_bytes() {
    let port = free_port();
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
processors:
  sign: {{ keys: [{{ id: k1, secret: "${{env:SIGN_KEY_K1}}" }}] }}
  enrich/late:
    actions: [{{ action: upsert, key: added_after_signing, value: yes }}]
exporters:
  file: {{ path: "./out/signed.ndjson" }}
service:
  pipelines:
    security: {{ receivers: [webhook], processors: [sign, enrich/late], exporters: [file] }}
"#
    );
    let mut relay = Siemrelay::start_with(&config, &[], &[("SIGN_KEY_K1", K1)]);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    post(port, 0, 3).await;
    let out = signed_file(relay.dir());
    let deadline = Instant::now() + Duration::from_secs(10);
    let written = |path: &Path| std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
    while written(&out) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["attributes"]["added_after_signing"], "yes", "{line}");
        assert!(event["signature"]["value"].is_string(), "{line}");
    }
    let keys = write_keys(relay.dir(), "keys.yaml", &[("k1", K1)]);
    let (code, text) = verify(relay.dir(), &keys, &out, false);
    assert_ne!(
        code, 0,
        "the late change is not covered by the signature: {text}"
    );
    stop(&mut relay);
}
