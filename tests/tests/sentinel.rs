//! Issue 9 acceptance with the real binary: webhook receiver → `sentinel` exporter → the fake
//! Entra ID + Logs Ingestion endpoint (a token that expires mid-run, 413 split, 429), and
//! `siemrelay test` with a good secret, a bad secret and an unreachable endpoint.

use siemrelay_e2e::events::{post_events, start_listening};
use siemrelay_e2e::fake::azure::{
    AzureOptions, CLIENT_ID, CLIENT_SECRET, DCR_ID, FEDERATED_TOKEN, FakeAzure, IDENTITY_HEADER,
    RESOURCE, SCOPE, STREAM, Scripted, TENANT_ID, USER_ASSIGNED_CLIENT_ID, record_id,
};
use siemrelay_e2e::{free_port, repo, run_cli, run_test_command};
use std::time::Duration;

fn config(receiver_port: u16, url: &str, secret: &str) -> String {
    format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{receiver_port}" }}
exporters:
  sentinel:
    endpoint: "{url}"
    authority_host: "{url}"
    dcr_immutable_id: {DCR_ID}
    stream_name: {STREAM}
    tenant_id: {TENANT_ID}
    client_id: {CLIENT_ID}
    client_secret: "{secret}"
    sending: {{ timeout: 5s }}
    retry: {{ initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 30s }}
service:
  shutdown_timeout: 20s
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [sentinel] }}
"#
    )
}

#[tokio::test]
async fn ten_thousand_events_via_the_webhook_reach_sentinel_once_each() {
    let fake = FakeAzure::start_with(AzureOptions {
        token_lifetime: 2,
        ..Default::default()
    });
    fake.script([Scripted::throttled(1)]);
    fake.set_max_body(400_000);
    let port = free_port();
    let mut relay = start_listening(&config(port, &fake.url(), CLIENT_SECRET), &[], port);
    let mut sent = post_events(port, 50, 100).await;
    assert!(
        fake.events_reached(5_000, Duration::from_secs(30)).await,
        "logs:\n{}",
        relay.logs()
    );
    // Past the first token's lifetime: the second half needs a refreshed token.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    sent.extend(post_events(port, 50, 100).await);
    assert!(
        fake.events_reached(10_000, Duration::from_secs(60)).await,
        "only {} of 10,000 events arrived; logs:\n{}",
        fake.distinct_events(),
        relay.logs()
    );
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean shutdown");
    fake.read(|state| {
        assert_eq!(
            state.records.total(),
            10_000,
            "{:?}",
            state.records.duplicates()
        );
        assert!(state.tokens_issued >= 2, "{}", state.tokens_issued);
        assert_eq!(state.uploads_with(401), 0);
        assert_eq!(state.uploads_with(429), 1);
        assert!(state.uploads_with(413) >= 1);
        let by_id = state.records_by_id();
        for id in &sent {
            let record = by_id
                .get(id.as_str())
                .copied()
                .unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(record["EventType"], "policy_violation");
            assert_eq!(record["Severity"], "high");
            assert_eq!(record["SeverityNumber"], 17);
            assert_eq!(record["Source"], "toktra");
            // The event time, in EventTime; TimeGenerated as sent (Log Analytics replaces it
            // when the event is more than 2 days old: the fake keeps what was sent aside).
            assert!(
                record["EventTime"]
                    .as_str()
                    .unwrap()
                    .starts_with("2026-11-20T09:00:00.")
            );
            let sent_time = record
                .get("_OriginalTimeGenerated")
                .unwrap_or(&record["TimeGenerated"]);
            assert!(
                sent_time
                    .as_str()
                    .unwrap()
                    .starts_with("2026-11-20T09:00:00.")
            );
            assert!(
                record["Attributes"]["user_email"]
                    .as_str()
                    .unwrap()
                    .starts_with('u')
            );
        }
    });
    assert!(
        !relay.logs().contains(CLIENT_SECRET),
        "the secret never prints"
    );
}

fn siemrelay_test(config: &str) -> (bool, String) {
    run_test_command("sentinel", config, &[])
}

#[test]
fn siemrelay_test_reports_good_bad_secret_and_unreachable() {
    let fake = FakeAzure::start();
    let (ok, text) = siemrelay_test(&config(free_port(), &fake.url(), CLIENT_SECRET));
    assert!(ok, "{text}");
    assert!(text.contains("delivered"), "{text}");
    assert_eq!(fake.distinct_events(), 1);

    let (ok, text) = siemrelay_test(&config(free_port(), &fake.url(), "bad-secret-value"));
    assert!(!ok, "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(text.contains("client_secret"), "{text}");
    assert!(
        !text.contains("bad-secret-value"),
        "the secret never prints: {text}"
    );

    fake.set_forbidden(true);
    let (ok, text) = siemrelay_test(&config(free_port(), &fake.url(), CLIENT_SECRET));
    assert!(!ok, "{text}");
    assert!(
        text.contains("403") && text.contains("Monitoring Metrics Publisher"),
        "{text}"
    );

    let closed = format!("http://127.0.0.1:{}", free_port());
    let (ok, text) = siemrelay_test(&config(free_port(), &closed, CLIENT_SECRET));
    assert!(!ok, "{text}");
    assert!(text.contains("cannot reach"), "{text}");
}

/// Issue 25: a backfilled event (10 days old) keeps its real time in `EventTime`; Log
/// Analytics (the fake, as Microsoft documents) replaces its `TimeGenerated` with the receive
/// time. And the token is asked for the documented scope `https://monitor.azure.com//.default`
/// (the fake, like Entra ID, refuses others).
#[tokio::test]
async fn a_backfilled_event_keeps_its_time_in_event_time_and_the_documented_scope_is_used() {
    let fake = FakeAzure::start();
    let port = free_port();
    let mut relay = start_listening(&config(port, &fake.url(), CLIENT_SECRET), &[], port);
    let ten_days_ago = std::time::SystemTime::now() - Duration::from_secs(10 * 86_400);
    let millis = ten_days_ago
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let id = "0193a3c1-7d2e-7b6f-9a41-5c2d3e4f5a6b";
    let line = format!(
        "{{\"event_id\":\"{id}\",\"timestamp\":{millis},\"event_type\":\"lockout\",\"severity\":\"high\",\"source\":\"backfill\"}}\n"
    );
    siemrelay_e2e::post_ndjson_bodies(port, vec![line]).await;
    assert!(
        fake.events_reached(1, Duration::from_secs(30)).await,
        "logs:\n{}",
        relay.logs()
    );
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()));
    fake.read(|state| {
        assert_eq!(state.last_token_form["scope"], SCOPE);
        assert_eq!(SCOPE, "https://monitor.azure.com//.default");
        assert!(state.token_errors.is_empty(), "{:?}", state.token_errors);
        let record = state.record(id).expect("the record arrived");
        let event_time = record["EventTime"].as_str().expect("EventTime is sent");
        let sent_seconds = (millis / 1000) as u64;
        let expected = siemrelay_e2e_time(sent_seconds);
        assert!(
            event_time.starts_with(&expected),
            "{event_time} vs {expected}"
        );
        // What Log Analytics keeps in TimeGenerated is the receive time, not the event's.
        assert!(
            !record["TimeGenerated"]
                .as_str()
                .unwrap()
                .starts_with(&expected[..10])
        );
    });
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time (UTC).
fn siemrelay_e2e_time(seconds: u64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(seconds);
    let text = siemrelay_e2e::fake::cloudwatch::iso8601(time);
    text.trim_end_matches('Z').to_string()
}

/// Issue 25: managed identity from IMDS (`identity_endpoint`, `Metadata: true`,
/// `api-version=2018-02-01`, `resource`, a user-assigned `client_id`) and from App Service
/// (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, `api-version=2019-08-01`), and workload identity
/// (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_AUTHORITY_HOST`:
/// the client-assertion grant), each delivering through the same Authenticator.
#[tokio::test]
async fn managed_and_workload_identities_get_tokens_as_microsoft_documents() {
    let fake = FakeAzure::start();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, format!("{FEDERATED_TOKEN}\n")).unwrap();
    let url = fake.url();
    let port = free_port();
    let exporter = |id: &str, identity: &str| {
        format!(
            r#"  {id}:
    endpoint: "{url}"
    dcr_immutable_id: {DCR_ID}
    stream_name: {STREAM}
{identity}
    retry: {{ initial_interval: 50ms, max_interval: 200ms }}
"#
        )
    };
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
exporters:
{}{}{}service:
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [sentinel/vm, sentinel/app, sentinel/aks] }}
"#,
        exporter(
            "sentinel/vm",
            &format!(
                "    identity: managed_identity\n    client_id: {USER_ASSIGNED_CLIENT_ID}\n    identity_endpoint: \"{url}/metadata/identity/oauth2/token\""
            )
        ),
        exporter("sentinel/app", "    identity: managed_identity"),
        exporter("sentinel/aks", "    identity: workload_identity"),
    );
    let token_path = token_file.display().to_string();
    let msi = format!("{url}/msi/token");
    let env = [
        ("IDENTITY_ENDPOINT", msi.as_str()),
        ("IDENTITY_HEADER", IDENTITY_HEADER),
        ("AZURE_FEDERATED_TOKEN_FILE", token_path.as_str()),
        ("AZURE_CLIENT_ID", CLIENT_ID),
        ("AZURE_TENANT_ID", TENANT_ID),
        ("AZURE_AUTHORITY_HOST", url.as_str()),
    ];
    let mut relay = start_listening(&config, &env, port);
    let sent = post_events(port, 1, 10).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fake.read(|s| s.records.total()) < 30 {
        assert!(
            std::time::Instant::now() < deadline,
            "logs:\n{}",
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()));
    for id in &sent {
        assert_eq!(fake.count_of(id), 3, "each exporter delivered {id} once");
    }
    fake.read(|state| {
        assert!(state.token_errors.is_empty(), "{:?}", state.token_errors);
        let imds = state
            .identity_requests
            .iter()
            .find(|(path, _, _)| path == "/metadata/identity/oauth2/token")
            .expect("an IMDS request");
        assert_eq!(imds.1["api-version"], "2018-02-01");
        assert_eq!(imds.1["resource"], RESOURCE);
        assert_eq!(imds.1["client_id"], USER_ASSIGNED_CLIENT_ID);
        assert_eq!(imds.2["metadata"], "true");
        let app = state
            .identity_requests
            .iter()
            .find(|(path, _, _)| path == "/msi/token")
            .expect("an App Service identity request");
        assert_eq!(app.1["api-version"], "2019-08-01");
        assert_eq!(app.1["resource"], RESOURCE);
        assert_eq!(app.2["x-identity-header"], IDENTITY_HEADER);
        // The workload identity's token request (the last form request).
        let form = &state.last_token_form;
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["client_id"], CLIENT_ID);
        assert_eq!(
            form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert_eq!(
            form["client_assertion"], "***",
            "the assertion is checked and hidden"
        );
        assert_eq!(form["scope"], SCOPE);
        assert!(!form.contains_key("client_secret"));
    });
    assert!(
        !relay.logs().contains(FEDERATED_TOKEN) && !relay.logs().contains(IDENTITY_HEADER),
        "no credential in the logs"
    );
}

const SIGN_KEY: &str = "sentinel-schema-secret-7a8b9c";

/// Issue 25: `schema:` on Sentinel, with the real binary. The four product samples, signed, go
/// to four `sentinel` exporters (`native`, `flat`, `ecs`, `ocsf`, no `stream_name`: each
/// shape's default stream) against the fake DCR deployed from the shipped template: every
/// event reaches each shape's stream once, the DCR would store every column (nothing dropped),
/// Keeptrusts' `action == "block"` matches the flat table's column, and the native form each
/// reshaped row carries verifies with `siemrelay verify`.
#[tokio::test]
async fn every_schema_reaches_its_own_table_and_signed_rows_verify() {
    let fake = FakeAzure::start();
    let url = fake.url();
    let port = free_port();
    let mut exporters = String::new();
    for schema in ["native", "flat", "ecs", "ocsf"] {
        exporters.push_str(&format!(
            "  sentinel/{schema}:\n    endpoint: \"{url}\"\n    authority_host: \"{url}\"\n    dcr_immutable_id: {DCR_ID}\n    tenant_id: {TENANT_ID}\n    client_id: {CLIENT_ID}\n    client_secret: \"{CLIENT_SECRET}\"\n    schema: {schema}\n"
        ));
    }
    let config = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
processors:
  sign:
    keys: [{{ id: k1, secret: "${{env:SIGN_KEY}}" }}]
    active: k1
exporters:
{exporters}service:
  shutdown_timeout: 20s
  pipelines:
    security:
      receivers: [webhook]
      processors: [sign]
      exporters: [sentinel/native, sentinel/flat, sentinel/ecs, sentinel/ocsf]
"#
    );
    let mut relay = start_listening(&config, &[("SIGN_KEY", SIGN_KEY)], port);
    let client = reqwest::Client::new();
    let mut total = 0;
    let mut blocked = 0;
    for name in [
        "keeptrusts.ndjson",
        "toktra.ndjson",
        "truthlocks.json",
        "neuraltrust.json",
    ] {
        let body = std::fs::read_to_string(repo().join("tests/fixtures/samples").join(name))
            .expect("sample");
        if name == "keeptrusts.ndjson" {
            blocked = body
                .lines()
                .filter(|l| l.contains("\"action\": \"block\""))
                .count();
        }
        let reply: serde_json::Value = client
            .post(format!("http://127.0.0.1:{port}/v1/events"))
            .header(
                "content-type",
                if name.ends_with(".ndjson") {
                    "application/x-ndjson"
                } else {
                    "application/json"
                },
            )
            .body(body)
            .send()
            .await
            .expect("post sample")
            .json()
            .await
            .expect("reply");
        total += reply["accepted"].as_u64().expect("accepted") as usize;
    }
    assert_eq!(total, 135, "the four samples hold 135 events");
    assert!(blocked > 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fake.read(|s| s.records.total()) < 4 * total {
        assert!(
            std::time::Instant::now() < deadline,
            "too few records; logs:\n{}",
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = relay.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{}", relay.logs());
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys.yaml");
    std::fs::write(
        &keys,
        format!("keys:\n  - {{ id: k1, secret: \"{SIGN_KEY}\" }}\n"),
    )
    .expect("keys");
    fake.read(|state| {
        assert!(
            state.dropped.is_empty(),
            "the DCR would drop: {:?}",
            state.dropped
        );
        assert_eq!(state.records.total(), 4 * total);
        for (schema, stream) in [
            ("native", "Custom-SiemrelayEvents_CL"),
            ("flat", "Custom-SiemrelayFlat_CL"),
            ("ecs", "Custom-SiemrelayEcs_CL"),
            ("ocsf", "Custom-SiemrelayOcsf_CL"),
        ] {
            let rows = state.records_of(stream);
            let ids: std::collections::HashSet<&str> =
                rows.iter().filter_map(|r| record_id(r)).collect();
            assert_eq!(
                (rows.len(), ids.len()),
                (total, total),
                "{schema}: once each"
            );
            if schema == "native" {
                continue;
            }
            // What a user exports from the table: each row's carried native form.
            let carried: String = rows
                .iter()
                .map(|row| {
                    let carrier = match schema {
                        "flat" => &row["signed_json"],
                        "ecs" => &row["siemrelay"]["signed_json"],
                        _ => &row["unmapped"]["signed_json"],
                    };
                    format!(
                        "{}\n",
                        carrier.as_str().expect("a signed row carries its form")
                    )
                })
                .collect();
            let file = dir.path().join(format!("{schema}.ndjson"));
            std::fs::write(&file, carried).expect("carried forms");
            let output = run_cli(
                &[
                    "verify",
                    "--keys",
                    &keys.to_string_lossy(),
                    &file.to_string_lossy(),
                ],
                dir.path(),
            );
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{schema}: {text}");
            assert!(
                text.contains(&format!("OK: {total} events verified")),
                "{text}"
            );
        }
        let flat_blocked = state
            .records_of("Custom-SiemrelayFlat_CL")
            .iter()
            .filter(|r| r["action"] == "block")
            .count();
        assert_eq!(
            flat_blocked, blocked,
            "flat: SiemrelayFlat_CL | where action == \"block\""
        );
        let ecs_blocked = state
            .records_of("Custom-SiemrelayEcs_CL")
            .iter()
            .filter(|r| r["event"]["action"] == "block")
            .count();
        assert_eq!(
            ecs_blocked, blocked,
            "ecs: where tostring(event.action) == \"block\""
        );
        let classes: std::collections::BTreeSet<i64> = state
            .records_of("Custom-SiemrelayOcsf_CL")
            .iter()
            .filter_map(|r| r["class_uid"].as_i64())
            .collect();
        assert_eq!(classes, [0, 2004, 3002].into());
    });
}

/// Issue 25: `siemrelay validate` accepts `schema:` on Sentinel, and names a `stream_name`
/// that is another shape's stream in the shipped template, and `columns` with a reshaped
/// schema.
#[test]
fn validate_takes_a_schema_and_names_a_stream_of_another_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("pipeline.yaml");
    let write = |exporter: &str| {
        std::fs::write(
            &config,
            format!(
                r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:18998" }}
exporters:
  sentinel:
    endpoint: "https://my-dce.westeurope-1.ingest.monitor.azure.com"
    dcr_immutable_id: {DCR_ID}
    identity: managed_identity
{exporter}
service:
  pipelines:
    p: {{ receivers: [webhook], processors: [], exporters: [sentinel] }}
"#
            ),
        )
        .expect("config");
        let output = run_cli(
            &["validate", "--config", &config.to_string_lossy()],
            dir.path(),
        );
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    for schema in ["flat", "ecs", "ocsf"] {
        let (ok, text) = write(&format!("    schema: {schema}"));
        assert!(ok, "{schema}: {text}");
    }
    let (ok, text) = write("    schema: ecs\n    stream_name: Custom-SiemrelayEvents_CL");
    assert!(!ok, "{text}");
    assert!(
        text.contains("exporters.sentinel.stream_name") && text.contains("Custom-SiemrelayEcs_CL"),
        "{text}"
    );
    let (ok, text) = write("    schema: flat\n    columns: { Who: attributes.user }");
    assert!(!ok, "{text}");
    assert!(text.contains("exporters.sentinel.columns"), "{text}");
}
