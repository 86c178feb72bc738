//! Issue 14 acceptance with the real binary: every sender sample in `tests/fixtures/samples/`, posted
//! unchanged with the README's config for that sender, reaches the file exporter with every
//! field (same value, same JSON type) and the mapped well-known fields; every signature scheme
//! accepts a correct signature, refuses tampering, a wrong secret, a missing header and a stale
//! timestamp with 401 and writes nothing for them, and still verifies the old secret during a
//! rotation. Secrets come from environment variables (`${env:...}`) in the YAML.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use siemrelay_e2e::{Siemrelay, free_port, read_ndjson_files};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<sha2::Sha256>;

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/samples")
}

fn hmac_bytes(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    hex::encode(hmac_bytes(key, parts))
}

/// Stops siemrelay with SIGTERM (which drains every queue into the file) and returns what the
/// file exporter wrote under `out/`.
fn drain_and_read(relay: &mut Siemrelay) -> Vec<Value> {
    let status = relay.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit after SIGTERM: {status:?}\n{}",
        relay.logs()
    );
    read_ndjson_files(&relay.dir().join("out"), "")
}

// ---------------------------------------------------------------------------------------------
// Samples: no field lost
// ---------------------------------------------------------------------------------------------

/// The input objects of a sample file (NDJSON or a JSON array).
fn input_objects(name: &str, text: &str) -> Vec<Map<String, Value>> {
    let values: Vec<Value> = if name.ends_with(".ndjson") {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{name}: sample line is not JSON: {e}"))
            })
            .collect()
    } else {
        serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{name}: sample file is not a JSON array: {e}"))
    };
    values
        .into_iter()
        .map(|v| match v {
            Value::Object(map) => map,
            other => panic!("{name}: sample item is not an object: {other}"),
        })
        .collect()
}

/// Differences between `expected` and `actual`, compared recursively by value and JSON type
/// (an integer and a float are different, `1` ≠ `1.0`; objects must have the same keys, arrays
/// the same length).
fn differences(path: &str, expected: &Value, actual: Option<&Value>, out: &mut Vec<String>) {
    let Some(actual) = actual else {
        out.push(format!("{path}: missing"));
        return;
    };
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                differences(&format!("{path}.{key}"), value, a.get(key), out);
            }
            for key in a.keys().filter(|k| !e.contains_key(*k)) {
                out.push(format!("{path}.{key}: unexpected key"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!("{path}: {} items, expected {}", a.len(), e.len()));
            }
            for (index, value) in e.iter().enumerate() {
                differences(&format!("{path}[{index}]"), value, a.get(index), out);
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            let same_type = (e.is_f64() == a.is_f64())
                && (e.is_i64() == a.is_i64())
                && (e.is_u64() == a.is_u64());
            if !same_type || e.as_f64() != a.as_f64() || e.to_string() != a.to_string() {
                out.push(format!(
                    "{path}: got {a}, expected {e} (value and number type must match)"
                ));
            }
        }
        (e, a) if e == a => {}
        (e, a) => out.push(format!("{path}: got {a}, expected {e}")),
    }
}

const WELL_KNOWN: [&str; 6] = [
    "event_id",
    "timestamp",
    "event_type",
    "severity",
    "summary",
    "source",
];

/// Where an input field must appear in the written event: the mapped well-known field, the
/// well-known field of the same name, or `attributes.<field>`.
fn location<'e>(event: &'e Value, field: &str, mapping: &[(&str, &str)]) -> Option<&'e Value> {
    if let Some((target, _)) = mapping.iter().find(|(_, source)| *source == field) {
        return event.get(*target);
    }
    if WELL_KNOWN.contains(&field) && !mapping.iter().any(|(target, _)| *target == field) {
        return event.get(field);
    }
    event.get("attributes").and_then(|a| a.get(field))
}

/// The OpenTelemetry number of the severity names used in the samples (README table).
fn severity_number(text: &str) -> Option<u64> {
    Some(match text.to_ascii_lowercase().as_str() {
        "unspecified" => 0,
        "info" | "informational" | "notice" => 9,
        "low" => 10,
        "warn" | "warning" | "medium" => 13,
        "error" | "err" | "high" => 17,
        "fatal" | "critical" | "crit" | "alert" | "emergency" => 21,
        _ => return None,
    })
}

/// One sender of the README's "Senders" section.
struct Sender {
    file: &'static str,
    /// The receiver block after `endpoint`, as in the README (secrets from env vars).
    receiver_yaml: &'static str,
    path: &'static str,
    mapping: &'static [(&'static str, &'static str)],
    /// Signature header and the env var holding the secret, for senders that sign.
    signature: Option<(&'static str, &'static str)>,
    /// Bearer token env var, for senders protected by a token.
    token: Option<&'static str>,
}

const SECRET_VALUE: &str = "sample-secret-0f9e8d7c";
const TOKEN_VALUE: &str = "sample-token-1a2b3c";

async fn check_sample(sender: Sender) {
    let text = std::fs::read_to_string(samples_dir().join(sender.file))
        .unwrap_or_else(|e| panic!("{}: {e}", samples_dir().join(sender.file).display()));
    let inputs = input_objects(sender.file, &text);
    assert!(
        inputs.len() >= 20,
        "{}: the sample has {} events",
        sender.file,
        inputs.len()
    );
    let port = free_port();
    let config = format!(
        r#"
receivers:
  webhook/sender:
    endpoint: "127.0.0.1:{port}"
{receiver}
exporters:
  file: {{ path: "./out/events.ndjson" }}
service:
  pipelines:
    security: {{ receivers: [webhook/sender], exporters: [file] }}
"#,
        receiver = sender.receiver_yaml
    );
    let mut env: Vec<(&str, &str)> = Vec::new();
    if let Some((_, var)) = sender.signature {
        env.push((var, SECRET_VALUE));
    }
    if let Some(var) = sender.token {
        env.push((var, TOKEN_VALUE));
    }
    let mut relay = Siemrelay::start_with(&config, &[], &env);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));

    let content_type = if sender.file.ends_with(".ndjson") {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{}", sender.path))
        .header("content-type", content_type)
        .body(text.clone());
    if let Some((header, _)) = sender.signature {
        request = request.header(
            header,
            format!(
                "sha256={}",
                hmac_hex(SECRET_VALUE.as_bytes(), &[text.as_bytes()])
            ),
        );
    }
    if sender.token.is_some() {
        request = request.bearer_auth(TOKEN_VALUE);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let reply: Value = response.json().await.unwrap_or_default();
    assert_eq!(status, 200, "{}: {reply}", sender.file);
    assert_eq!(
        reply,
        json!({"accepted": inputs.len(), "queued": inputs.len()}),
        "{}",
        sender.file
    );

    let events = drain_and_read(&mut relay);
    assert_eq!(
        events.len(),
        inputs.len(),
        "{}: one written line per input object",
        sender.file
    );
    let mut problems = Vec::new();
    for (index, (input, event)) in inputs.iter().zip(&events).enumerate() {
        let at = format!("{}[{index}]", sender.file);
        for (field, value) in input {
            differences(
                &format!("{at}.{field}"),
                value,
                location(event, field, sender.mapping),
                &mut problems,
            );
        }
        // The mapped (or same-named) well-known fields carry the sender's values.
        for target in ["event_id", "timestamp", "event_type", "severity", "summary"] {
            let source = sender
                .mapping
                .iter()
                .find(|(t, _)| *t == target)
                .map_or(target, |(_, s)| *s);
            if let Some(expected) = input.get(source)
                && event.get(target) != Some(expected)
            {
                problems.push(format!(
                    "{at}: {target} = {:?}, expected {expected} (from {source})",
                    event.get(target)
                ));
            }
        }
        if let Some(text) = event["severity"].as_str()
            && event["severity_number"].as_u64() != severity_number(text)
        {
            problems.push(format!(
                "{at}: severity {text:?} has severity_number {}",
                event["severity_number"]
            ));
        }
        if let Some(note) = event["attributes"].get("mapping_error") {
            problems.push(format!("{at}: mapping error {note}"));
        }
        if sender.signature.is_some()
            && event["attributes"]["verified_by"]
                != json!({"scheme": "hmac_sha256", "secret_index": 0})
        {
            problems.push(format!(
                "{at}: verified_by = {}",
                event["attributes"]["verified_by"]
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test]
async fn toktra_sample_arrives_with_every_field() {
    check_sample(Sender {
        file: "toktra.ndjson",
        receiver_yaml: r#"    path: /v1/events
    verify:
      scheme: hmac_sha256
      header: X-Toktra-Signature
      secrets: [ "${env:TOKTRA_WEBHOOK_SECRET}" ]"#,
        path: "/v1/events",
        mapping: &[],
        signature: Some(("X-Toktra-Signature", "TOKTRA_WEBHOOK_SECRET")),
        token: None,
    })
    .await;
}

#[tokio::test]
async fn truthlocks_sample_arrives_with_every_field_and_its_mapping() {
    check_sample(Sender {
        file: "truthlocks.json",
        receiver_yaml: r#"    path: /hooks/truthlocks
    mapping: { event_id: id, event_type: type, timestamp: created_at, severity: level }
    verify:
      scheme: hmac_sha256
      header: X-Truthlocks-Signature
      secrets: [ "${env:TRUTHLOCKS_WEBHOOK_SECRET}" ]"#,
        path: "/hooks/truthlocks",
        mapping: &[
            ("event_id", "id"),
            ("event_type", "type"),
            ("timestamp", "created_at"),
            ("severity", "level"),
        ],
        signature: Some(("X-Truthlocks-Signature", "TRUTHLOCKS_WEBHOOK_SECRET")),
        token: None,
    })
    .await;
}

#[tokio::test]
async fn keeptrusts_sample_arrives_with_every_field() {
    check_sample(Sender {
        file: "keeptrusts.ndjson",
        receiver_yaml: r#"    path: /hooks/keeptrusts
    auth: { bearer_token: "${env:KEEPTRUSTS_TOKEN}" }"#,
        path: "/hooks/keeptrusts",
        mapping: &[],
        signature: None,
        token: Some("KEEPTRUSTS_TOKEN"),
    })
    .await;
}

#[tokio::test]
async fn neuraltrust_sample_arrives_with_every_field_and_its_mapping() {
    check_sample(Sender {
        file: "neuraltrust.json",
        receiver_yaml: r#"    path: /hooks/neuraltrust
    auth: { bearer_token: "${env:NEURALTRUST_TOKEN}" }
    mapping: { summary: message }"#,
        path: "/hooks/neuraltrust",
        mapping: &[("summary", "message")],
        signature: None,
        token: Some("NEURALTRUST_TOKEN"),
    })
    .await;
}

#[test]
fn comparison_detects_lost_fields_changed_types_and_extra_keys() {
    let expected = json!({"a": 1, "b": {"c": [1.5, null], "d": "x"}, "e": 2.0});
    let mut problems = Vec::new();
    differences(
        "x",
        &expected,
        Some(&json!({"a": 1.0, "b": {"c": [1.5], "d": "x", "z": 0}, "e": 2})),
        &mut problems,
    );
    // a: int→float, b.c: length and missing item, b.z: extra key, e: float→int.
    assert_eq!(problems.len(), 5, "{problems:?}");
    problems.clear();
    differences("x", &expected, Some(&expected.clone()), &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let mapping = [("summary", "message")];
    let event = json!({"summary": "s", "attributes": {"category": "c"}, "event_type": "t"});
    assert_eq!(location(&event, "message", &mapping), Some(&json!("s")));
    assert_eq!(location(&event, "category", &mapping), Some(&json!("c")));
    assert_eq!(location(&event, "event_type", &mapping), Some(&json!("t")));
    assert_eq!(
        location(&event, "summary", &mapping),
        None,
        "a mapped-over well-known name is looked up under attributes"
    );
}

// ---------------------------------------------------------------------------------------------
// Signature schemes
// ---------------------------------------------------------------------------------------------

const NEW_SECRET: &str = "new-secret-0123456789";
const OLD_SECRET: &str = "old-secret-9876543210";
const NEW_WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_WHSEC: &str = "whsec_c2Vjb25kLXNlY3JldC1vZi0yNC1ieXRlcw==";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

type SignedHeaders = Vec<(&'static str, String)>;

/// One scheme: its `verify:` block (secrets from env vars), the two secrets, and how a sender
/// signs a body at a time with a secret.
struct Scheme {
    name: &'static str,
    verify_yaml: &'static str,
    secrets: [&'static str; 2],
    timestamped: bool,
    sign: fn(secret: &str, body: &[u8], at: i64) -> SignedHeaders,
}

fn whsec_key(secret: &str) -> Vec<u8> {
    BASE64
        .decode(secret.trim_start_matches("whsec_"))
        .expect("test secret is base64")
}

fn scheme(name: &str) -> Scheme {
    let plain = [NEW_SECRET, OLD_SECRET];
    let whsec = [NEW_WHSEC, OLD_WHSEC];
    match name {
        "toktra" => Scheme {
            name: "hmac_sha256",
            verify_yaml: r#"{ scheme: hmac_sha256, header: X-Toktra-Signature, secrets: ["${env:HOOK_SECRET_NEW}", "${env:HOOK_SECRET_OLD}"] }"#,
            secrets: plain,
            timestamped: false,
            sign: |secret, body, _| {
                vec![(
                    "x-toktra-signature",
                    format!("sha256={}", hmac_hex(secret.as_bytes(), &[body])),
                )]
            },
        },
        "truthlocks" => Scheme {
            name: "hmac_sha256",
            verify_yaml: r#"{ scheme: hmac_sha256, header: X-Truthlocks-Signature, secrets: ["${env:HOOK_SECRET_NEW}", "${env:HOOK_SECRET_OLD}"] }"#,
            secrets: plain,
            timestamped: false,
            // The bare-hex form of the header.
            sign: |secret, body, _| {
                vec![(
                    "x-truthlocks-signature",
                    hmac_hex(secret.as_bytes(), &[body]),
                )]
            },
        },
        "github" => Scheme {
            name: "github",
            verify_yaml: r#"{ scheme: github, secrets: ["${env:HOOK_SECRET_NEW}", "${env:HOOK_SECRET_OLD}"] }"#,
            secrets: plain,
            timestamped: false,
            sign: |secret, body, _| {
                vec![(
                    "x-hub-signature-256",
                    format!("sha256={}", hmac_hex(secret.as_bytes(), &[body])),
                )]
            },
        },
        "stripe" => Scheme {
            name: "stripe",
            verify_yaml: r#"{ scheme: stripe, secrets: ["${env:HOOK_SECRET_NEW}", "${env:HOOK_SECRET_OLD}"], tolerance: 5m }"#,
            secrets: whsec,
            timestamped: true,
            sign: |secret, body, at| {
                let t = at.to_string();
                let v1 = hmac_hex(secret.as_bytes(), &[t.as_bytes(), b".", body]);
                vec![("stripe-signature", format!("t={t},v1={v1},v0=0123abcd"))]
            },
        },
        "slack" => Scheme {
            name: "slack",
            verify_yaml: r#"{ scheme: slack, secrets: ["${env:HOOK_SECRET_NEW}", "${env:HOOK_SECRET_OLD}"] }"#,
            secrets: plain,
            timestamped: true,
            sign: |secret, body, at| {
                let t = at.to_string();
                let v0 = hmac_hex(secret.as_bytes(), &[b"v0:", t.as_bytes(), b":", body]);
                vec![
                    ("x-slack-request-timestamp", t),
                    ("x-slack-signature", format!("v0={v0}")),
                ]
            },
        },
        "standard_webhooks" => Scheme {
            name: "standard_webhooks",
            verify_yaml: r#"{ scheme: standard_webhooks, secrets: ["${env:HOOK_SECRET_NEW}", "${env:HOOK_SECRET_OLD}"] }"#,
            secrets: whsec,
            timestamped: true,
            sign: |secret, body, at| {
                let t = at.to_string();
                let mac = hmac_bytes(
                    &whsec_key(secret),
                    &[b"msg_e2e", b".", t.as_bytes(), b".", body],
                );
                vec![
                    ("webhook-id", "msg_e2e".to_string()),
                    ("webhook-timestamp", t),
                    (
                        "webhook-signature",
                        format!("v1a,ZWQyNTUxOQ== v1,{}", BASE64.encode(mac)),
                    ),
                ]
            },
        },
        other => panic!("unknown scheme case {other}"),
    }
}

fn body(tag: &str) -> Vec<u8> {
    format!(r#"[{{"event_type":"login","severity":"info","summary":"{tag} 1"}},{{"event_type":"logout","summary":"{tag} 2"}}]"#).into_bytes()
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    headers: &[(&'static str, String)],
) -> (u16, Value) {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

fn assert_refused(reply: &(u16, Value), case: &str, what: &str) {
    assert_eq!(reply.0, 401, "{case} {what}: {}", reply.1);
    let message = reply.1["error"].as_str().unwrap_or_default();
    assert!(message.contains("signature"), "{case} {what}: {message}");
    for secret in [NEW_SECRET, OLD_SECRET, NEW_WHSEC, OLD_WHSEC] {
        assert!(
            !message.contains(secret),
            "{case} {what}: the message echoes a secret"
        );
    }
}

async fn check_scheme(case: &str) {
    let scheme = scheme(case);
    let port = free_port();
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}", verify: {verify} }}
exporters:
  file: {{ path: "./out/events.ndjson" }}
service:
  pipelines:
    security: {{ receivers: [webhook], exporters: [file] }}
"#,
        verify = scheme.verify_yaml
    );
    let [new, old] = scheme.secrets;
    let mut relay = Siemrelay::start_with(
        &config,
        &[],
        &[("HOOK_SECRET_NEW", new), ("HOOK_SECRET_OLD", old)],
    );
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let client = reqwest::Client::new();

    let good = body("good-new");
    let reply = post(&client, &url, &good, &(scheme.sign)(new, &good, now())).await;
    assert_eq!(reply.0, 200, "{case}: {}", reply.1);
    assert_eq!(reply.1, json!({"accepted": 2, "queued": 2}), "{case}");

    // A flipped body byte under a signature made for the original bytes.
    let original = body("refused-flipped");
    let headers = (scheme.sign)(new, &original, now());
    let mut flipped = original.clone();
    let at = flipped
        .iter()
        .position(|b| *b == b'l')
        .expect("an l in the body");
    flipped[at] ^= 0x01;
    assert_refused(
        &post(&client, &url, &flipped, &headers).await,
        case,
        "flipped body byte",
    );

    let wrong = body("refused-wrong-secret");
    let wrong_secret = if new.starts_with("whsec_") {
        "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="
    } else {
        "wrong-secret"
    };
    assert_refused(
        &post(
            &client,
            &url,
            &wrong,
            &(scheme.sign)(wrong_secret, &wrong, now()),
        )
        .await,
        case,
        "wrong secret",
    );

    let missing = body("refused-missing-header");
    let signed = (scheme.sign)(new, &missing, now());
    for left_out in &signed {
        let partial: SignedHeaders = signed
            .iter()
            .filter(|(n, _)| *n != left_out.0)
            .cloned()
            .collect();
        assert_refused(
            &post(&client, &url, &missing, &partial).await,
            case,
            &format!("without {}", left_out.0),
        );
    }

    if scheme.timestamped {
        let stale = body("refused-stale");
        for skew in [-400, 400] {
            let headers = (scheme.sign)(new, &stale, now() + skew);
            assert_refused(
                &post(&client, &url, &stale, &headers).await,
                case,
                &format!("timestamp {skew:+} s off"),
            );
        }
    }

    // Rotation: the old secret still verifies.
    let rotated = body("good-old");
    let reply = post(
        &client,
        &url,
        &rotated,
        &(scheme.sign)(old, &rotated, now()),
    )
    .await;
    assert_eq!(reply.0, 200, "{case} old secret: {}", reply.1);

    let events = drain_and_read(&mut relay);
    let summaries: Vec<&str> = events
        .iter()
        .map(|e| e["summary"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        summaries,
        ["good-new 1", "good-new 2", "good-old 1", "good-old 2"],
        "{case}: only the accepted requests are written"
    );
    for (event, index) in events.iter().zip([0, 0, 1, 1]) {
        assert_eq!(
            event["attributes"]["verified_by"],
            json!({"scheme": scheme.name, "secret_index": index}),
            "{case}: {}",
            event["summary"]
        );
    }
    let logs = relay.logs();
    for secret in [new, old] {
        assert!(
            !logs.contains(secret),
            "{case}: a secret appears in the logs"
        );
    }
}

#[tokio::test]
async fn hmac_sha256_with_toktra_header() {
    check_scheme("toktra").await;
}

#[tokio::test]
async fn hmac_sha256_with_truthlocks_header() {
    check_scheme("truthlocks").await;
}

#[tokio::test]
async fn github_scheme() {
    check_scheme("github").await;
}

#[tokio::test]
async fn stripe_scheme() {
    check_scheme("stripe").await;
}

#[tokio::test]
async fn slack_scheme() {
    check_scheme("slack").await;
}

#[tokio::test]
async fn standard_webhooks_scheme() {
    check_scheme("standard_webhooks").await;
}

/// The output directory is read by name prefix; make sure an empty prefix reads every file.
#[test]
fn reading_all_output_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.ndjson"), "{\"x\":1}\n").expect("write");
    std::fs::write(dir.path().join("b.ndjson"), "{\"x\":2}\n\n").expect("write");
    assert_eq!(read_ndjson_files(Path::new(dir.path()), "").len(), 2);
}
