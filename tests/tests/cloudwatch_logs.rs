//! Issue 9 acceptance with the real binary: webhook receiver → `cloudwatch_logs` exporter → the
//! `moto` AWS emulator (credentials from the environment through the standard AWS chain), and
//! `siemrelay test` against the fake CloudWatch Logs endpoint with good and bad credentials and
//! an unreachable endpoint.

use siemrelay_e2e::events::start_listening;
use siemrelay_e2e::fake::cloudwatch::{
    ACCESS_KEY, FakeCloudWatch, FakeSts, Moto, REGION, SECRET_KEY,
};
use siemrelay_e2e::{free_port, run_test_command};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const GROUP: &str = "/security/siemrelay";

fn config(receiver_port: u16, endpoint: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
exporters:
  cloudwatch_logs:
    region: {REGION}
    log_group: {GROUP}
    log_stream: "{{host}}"
    endpoint: "{endpoint}"
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 30s }}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [cloudwatch_logs] }}
"#
    )
}

/// Credentials for the AWS chain from the environment only (no files, no instance metadata).
fn aws_env<'a>(key: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        ),
    ]
}

/// NDJSON bodies: events over the last three days (out of order), hosts host-0..host-3.
fn ndjson_bodies(
    requests: usize,
    per_request: usize,
) -> (Vec<String>, HashMap<String, (String, i64)>) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let total = requests * per_request;
    let span_ms = 72 * 3_600_000i64;
    let mut expected = HashMap::new();
    let mut bodies = Vec::new();
    for request in 0..requests {
        let mut body = String::new();
        for i in 0..per_request {
            let n = request * per_request + i;
            let slot = (n * 7919) % total;
            let millis = now_ms - 3_600_000 - slot as i64 * span_ms / total as i64;
            let id = uuid::Uuid::new_v4().to_string();
            let host = format!("host-{}", n % 4);
            body.push_str(&format!(
                "{{\"event_id\":\"{id}\",\"timestamp\":{millis},\"event_type\":\"policy_violation\",\"severity\":\"high\",\"source\":\"toktra\",\"summary\":\"event {n}\",\"host\":\"{host}\"}}\n"
            ));
            expected.insert(id, (host, millis));
        }
        bodies.push(body);
    }
    (bodies, expected)
}

#[tokio::test]
async fn ten_thousand_events_via_the_webhook_reach_moto_once_each() {
    let moto = Moto::start();
    let port = free_port();
    let mut relay = start_listening(
        &config(port, &moto.url()),
        &aws_env("testing", "testing"),
        port,
    );
    let (bodies, expected) = ndjson_bodies(100, 100);
    siemrelay_e2e::post_ndjson_bodies(port, bodies).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = moto.read_events(GROUP);
        if stored.len() >= 10_000 || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let status = relay.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean shutdown; logs:\n{}",
        relay.logs()
    );
    assert_eq!(stored.len(), 10_000, "logs:\n{}", relay.logs());
    let mut seen = HashMap::new();
    for (stream, timestamp, message) in stored {
        let event: serde_json::Value =
            serde_json::from_str(&message).expect("message is the JSON form");
        let id = event["event_id"].as_str().unwrap().to_string();
        let (host, millis) = &expected[&id];
        assert_eq!(&stream, host);
        assert_eq!(timestamp, *millis);
        assert_eq!(event["event_type"], "policy_violation");
        assert_eq!(event["severity"], "high");
        assert_eq!(event["source"], "toktra");
        assert!(seen.insert(id, ()).is_none(), "an event was stored twice");
    }
    let mut streams = moto.streams(GROUP);
    streams.sort();
    assert_eq!(streams, ["host-0", "host-1", "host-2", "host-3"]);
}

fn siemrelay_test(endpoint: &str, key: &str, secret: &str) -> (bool, String) {
    run_test_command(
        "cloudwatch_logs",
        &config(free_port(), endpoint),
        &aws_env(key, secret),
    )
}

#[test]
fn siemrelay_test_reports_good_bad_credentials_and_unreachable() {
    let fake = FakeCloudWatch::start();
    let (ok, text) = siemrelay_test(&fake.url(), ACCESS_KEY, SECRET_KEY);
    assert!(ok, "{text}");
    assert!(text.contains("delivered"), "{text}");
    assert_eq!(fake.distinct_events(), 1);
    assert_eq!(
        fake.read(|s| s.streams.len()),
        1,
        "stream created on first use"
    );

    let (ok, text) = siemrelay_test(&fake.url(), ACCESS_KEY, "wrong-secret-value");
    assert!(!ok, "{text}");
    assert!(text.contains("InvalidSignatureException"), "{text}");
    assert!(text.contains("AWS_SECRET_ACCESS_KEY"), "{text}");
    assert!(
        !text.contains("wrong-secret-value"),
        "the secret never prints: {text}"
    );

    let (ok, text) = siemrelay_test(
        &format!("http://127.0.0.1:{}", free_port()),
        ACCESS_KEY,
        SECRET_KEY,
    );
    assert!(!ok, "{text}");
    assert!(text.contains("cannot reach CloudWatch Logs"), "{text}");
}

const WRITER_ROLE: &str = "arn:aws:iam::123456789012:role/siemrelay-writer";
const POD_ROLE: &str = "arn:aws:iam::123456789012:role/siemrelay-pod";
const PROFILE_KEY: &str = "AKIDPROFILEBASE0001";
const WEB_TOKEN: &str =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImUyZSJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln";

/// The AWS environment of a test: no keys, no files, no instance metadata, STS at the fake
/// (`AWS_ENDPOINT_URL_STS`, AWS's documented service-specific endpoint variable).
fn sts_env(sts: &FakeSts, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("AWS_REGION", REGION.to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config".to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials".to_string(),
        ),
        ("AWS_ENDPOINT_URL_STS", sts.url()),
    ];
    for (name, value) in extra {
        env.retain(|(n, _)| n != name);
        env.push((name, value.clone()));
    }
    env
}

fn exporters_config(receiver_port: u16, exporters: &str, ids: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
exporters:
{exporters}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [{ids}] }}
"#
    )
}

async fn wait_stored(fake: &FakeCloudWatch, n: usize, relay: &siemrelay_e2e::Siemrelay) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.read(|s| s.events.total()) < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} stored; logs:\n{}",
            fake.read(|s| s.events.total()),
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 25: `credentials: { profile, role_arn, external_id, session_name }` assumes the role
/// with STS `AssumeRole` signed by the profile's key, sends with the assumed credentials (the
/// fake CloudWatch accepts no other key), and fetches new ones before the old ones expire (no
/// request ever meets `ExpiredTokenException`).
#[tokio::test]
async fn a_profile_assumes_a_role_with_sts_and_refreshes_before_expiry() {
    let fake = FakeCloudWatch::start_with(Vec::new());
    let sts = FakeSts::start(&fake, &[PROFILE_KEY], WEB_TOKEN, Duration::from_secs(6));
    let dir = tempfile::tempdir().unwrap();
    let credentials_file = dir.path().join("credentials");
    std::fs::write(
        &credentials_file,
        format!("[default]\naws_access_key_id = AKIDWRONGDEFAULT001\naws_secret_access_key = x\n\n[siem]\naws_access_key_id = {PROFILE_KEY}\naws_secret_access_key = profile/secret/key\n"),
    )
    .unwrap();
    let port = free_port();
    let exporter = format!(
        r#"  cloudwatch_logs:
    region: {REGION}
    log_group: {GROUP}
    endpoint: "{}"
    credentials: {{ profile: siem, role_arn: "{WRITER_ROLE}", external_id: soc-7f3a, session_name: siemrelay-e2e }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms }}"#,
        fake.url()
    );
    let env = sts_env(
        &sts,
        &[(
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials_file.display().to_string(),
        )],
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut relay = start_listening(
        &exporters_config(port, &exporter, "cloudwatch_logs"),
        &env,
        port,
    );
    let (bodies, _) = ndjson_bodies(1, 20);
    siemrelay_e2e::post_ndjson_bodies(port, bodies).await;
    wait_stored(&fake, 20, &relay).await;
    let first_key = sts.calls()[0].issued.clone();
    // Past half the credentials' life: the next send fetches new ones first.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (bodies, _) = ndjson_bodies(1, 20);
    siemrelay_e2e::post_ndjson_bodies(port, bodies).await;
    wait_stored(&fake, 40, &relay).await;
    let status = relay.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "logs:\n{}",
        relay.logs()
    );

    let calls = sts.calls();
    assert!(calls.len() >= 2, "no refresh: {calls:?}");
    for call in &calls {
        assert_eq!(call.action, "AssumeRole");
        assert_eq!(call.status, 200, "{call:?}");
        assert_eq!(call.signed_by, PROFILE_KEY, "signed by the profile's key");
        assert_eq!(call.params["RoleArn"], WRITER_ROLE);
        assert_eq!(call.params["ExternalId"], "soc-7f3a");
        assert_eq!(call.params["RoleSessionName"], "siemrelay-e2e");
        assert_eq!(call.params["Version"], "2011-06-15");
    }
    fake.read(|state| {
        let puts: Vec<&str> = state
            .calls
            .iter()
            .filter(|c| c.operation == "PutLogEvents")
            .map(|c| c.access_key.as_str())
            .collect();
        assert!(
            puts.iter().all(|k| k.starts_with("ASIASTSFAKE")),
            "{puts:?}"
        );
        assert_ne!(
            puts.last().copied(),
            Some(first_key.as_str()),
            "the second wave used refreshed credentials"
        );
        assert_eq!(state.calls_with("PutLogEvents", "ExpiredTokenException"), 0);
        assert_eq!(state.events.distinct(), 40);
    });
}

/// Issue 25: on an EKS pod (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`) the standard chain
/// exchanges the token with `AssumeRoleWithWebIdentity`; `credentials: { role_arn,
/// web_identity_token_file }` does the same for one exporter with its own role.
#[tokio::test]
async fn web_identity_tokens_are_exchanged_from_the_pod_environment_and_the_config() {
    let fake = FakeCloudWatch::start_with(Vec::new());
    let sts = FakeSts::start(&fake, &[], WEB_TOKEN, Duration::from_secs(900));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, WEB_TOKEN).unwrap();
    let port = free_port();
    let exporters = format!(
        r#"  cloudwatch_logs:
    region: {REGION}
    log_group: {GROUP}
    endpoint: "{url}"
  cloudwatch_logs/explicit:
    region: {REGION}
    log_group: /security/explicit
    endpoint: "{url}"
    credentials: {{ role_arn: "{WRITER_ROLE}", web_identity_token_file: "{token}" }}"#,
        url = fake.url(),
        token = token_file.display()
    );
    let env = sts_env(
        &sts,
        &[
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("AWS_ROLE_ARN", POD_ROLE.to_string()),
        ],
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut relay = start_listening(
        &exporters_config(
            port,
            &exporters,
            "cloudwatch_logs, cloudwatch_logs/explicit",
        ),
        &env,
        port,
    );
    let (bodies, _) = ndjson_bodies(1, 10);
    siemrelay_e2e::post_ndjson_bodies(port, bodies).await;
    wait_stored(&fake, 20, &relay).await;
    let status = relay.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "logs:\n{}",
        relay.logs()
    );
    let calls = sts.calls();
    let mut roles: Vec<&str> = calls.iter().map(|c| c.params["RoleArn"].as_str()).collect();
    roles.sort_unstable();
    assert_eq!(roles, [POD_ROLE, WRITER_ROLE], "{calls:?}");
    for call in &calls {
        assert_eq!(call.action, "AssumeRoleWithWebIdentity");
        assert_eq!(call.status, 200, "{call:?}");
        assert_eq!(
            call.signed_by, "",
            "AssumeRoleWithWebIdentity is not signed"
        );
        assert_eq!(call.params["WebIdentityToken"], WEB_TOKEN);
    }
    let explicit = calls
        .iter()
        .find(|c| c.params["RoleArn"] == WRITER_ROLE)
        .unwrap();
    assert_eq!(
        explicit.params["RoleSessionName"],
        "siemrelay-cloudwatch_logs-explicit"
    );
    fake.read(|state| {
        assert_eq!(state.events.distinct(), 10);
        assert!(
            state
                .calls
                .iter()
                .filter(|c| c.operation == "PutLogEvents")
                .all(|c| c.access_key.starts_with("ASIASTSFAKE"))
        );
    });
}
