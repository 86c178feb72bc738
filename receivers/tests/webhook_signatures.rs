//! Every signature scheme over real HTTP: a correctly signed request is accepted, tampering,
//! a wrong secret, a missing header and (timestamped schemes) a stale timestamp get 401 with
//! nothing reaching the pipeline, and the old secret still verifies during rotation.

mod webhook_support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use webhook_support::{CollectingSink, hmac_bytes, hmac_hex, send, start};

const BODY: &str = r#"[{"event_type":"login","severity":"info"},{"event_type":"logout"}]"#;
const NEW_SECRET: &str = "new-secret-0123456789";
const OLD_SECRET: &str = "old-secret-9876543210";
// 24 random-looking bytes each, base64 (standard_webhooks secrets).
const NEW_WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_WHSEC: &str = "whsec_c2Vjb25kLXNlY3JldC1vZi0yNC1ieXRlcw==";

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Headers a sender adds to a signed request.
type SignedHeaders = Vec<(&'static str, String)>;

/// One scheme under test: its config and how a sender signs a body at a time with a secret.
struct Case {
    scheme: &'static str,
    config: Value,
    secrets: [&'static str; 2],
    timestamped: bool,
    sign: fn(secret: &str, body: &[u8], at: i64) -> SignedHeaders,
}

fn key_of(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => BASE64.decode(encoded).expect("test secret is base64"),
        None => secret.as_bytes().to_vec(),
    }
}

fn cases() -> Vec<Case> {
    let plain = [NEW_SECRET, OLD_SECRET];
    vec![
        Case {
            scheme: "hmac_sha256",
            config: json!({"scheme": "hmac_sha256", "header": "X-Truthlocks-Signature", "secrets": plain}),
            secrets: plain,
            timestamped: false,
            sign: |secret, body, _| {
                vec![(
                    "x-truthlocks-signature",
                    format!("sha256={}", hmac_hex(secret.as_bytes(), &[body])),
                )]
            },
        },
        Case {
            scheme: "github",
            config: json!({"scheme": "github", "secrets": plain}),
            secrets: plain,
            timestamped: false,
            sign: |secret, body, _| {
                vec![(
                    "x-hub-signature-256",
                    format!("sha256={}", hmac_hex(secret.as_bytes(), &[body])),
                )]
            },
        },
        Case {
            scheme: "stripe",
            config: json!({"scheme": "stripe", "secrets": [NEW_WHSEC, OLD_WHSEC]}),
            secrets: [NEW_WHSEC, OLD_WHSEC],
            timestamped: true,
            sign: |secret, body, at| {
                let t = at.to_string();
                // Stripe uses the whsec_ secret as-is.
                let v1 = hmac_hex(secret.as_bytes(), &[t.as_bytes(), b".", body]);
                vec![("stripe-signature", format!("t={t},v1={v1},v0=abcdef"))]
            },
        },
        Case {
            scheme: "slack",
            config: json!({"scheme": "slack", "secrets": plain, "tolerance": "5m"}),
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
        Case {
            scheme: "standard_webhooks",
            config: json!({"scheme": "standard_webhooks", "secrets": [NEW_WHSEC, OLD_WHSEC]}),
            secrets: [NEW_WHSEC, OLD_WHSEC],
            timestamped: true,
            sign: |secret, body, at| {
                let t = at.to_string();
                let mac = hmac_bytes(
                    &key_of(secret),
                    &[b"msg_2Lh9", b".", t.as_bytes(), b".", body],
                );
                vec![
                    ("webhook-id", "msg_2Lh9".to_string()),
                    ("webhook-timestamp", t),
                    (
                        "webhook-signature",
                        format!("v1a,ZWQyNTUxOQ== v1,{}", BASE64.encode(mac)),
                    ),
                ]
            },
        },
    ]
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    headers: &[(&'static str, String)],
) -> webhook_support::Reply {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    send(request).await
}

fn assert_refused(reply: &webhook_support::Reply, scheme: &str, what: &str, expected_words: &str) {
    assert_eq!(reply.status, 401, "{scheme} {what}: {}", reply.body);
    let message = reply.body["error"].as_str().unwrap_or("");
    assert!(
        message.contains(expected_words),
        "{scheme} {what}: {message}"
    );
    for secret in [NEW_SECRET, OLD_SECRET, NEW_WHSEC, OLD_WHSEC] {
        assert!(
            !message.contains(secret),
            "{scheme} {what}: message echoes a secret"
        );
    }
}

#[tokio::test]
async fn every_scheme_accepts_good_signatures_and_refuses_bad_ones() {
    let client = reqwest::Client::new();
    for case in cases() {
        let sink = Arc::new(CollectingSink::default());
        let server = start(json!({"verify": case.config}), sink.clone()).await;
        let url = server.url("/v1/events");
        let scheme = case.scheme;
        let body = BODY.as_bytes();
        let [new, old] = case.secrets;

        let good = (case.sign)(new, body, now());
        let reply = post(&client, &url, body, &good).await;
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.body);
        assert_eq!(reply.body, json!({"accepted": 2, "queued": 2}));

        let mut flipped = body.to_vec();
        flipped[3] ^= 0x01;
        let reply = post(&client, &url, &flipped, &good).await;
        assert_refused(&reply, scheme, "flipped body byte", "does not match");

        let reply = post(
            &client,
            &url,
            body,
            &(case.sign)("some-other-secret", body, now()),
        )
        .await;
        assert_refused(&reply, scheme, "wrong secret", "does not match");

        for missing in &good {
            let partial: Vec<_> = good
                .iter()
                .filter(|(n, _)| n != &missing.0)
                .cloned()
                .collect();
            let reply = post(&client, &url, body, &partial).await;
            assert_refused(&reply, scheme, "missing header", "missing");
        }

        let malformed: Vec<_> = good
            .iter()
            .map(|(n, _)| (*n, "garbage".to_string()))
            .collect();
        let reply = post(&client, &url, body, &malformed).await;
        assert_refused(&reply, scheme, "malformed header", "malformed");

        if case.timestamped {
            for skew in [-400, 400] {
                let stale = (case.sign)(new, body, now() + skew);
                let reply = post(&client, &url, body, &stale).await;
                assert_refused(&reply, scheme, "outside tolerance", "tolerance");
            }
        }
        assert_eq!(
            sink.event_count(),
            2,
            "{scheme}: refused requests reach nothing"
        );

        // Rotation: the old secret still verifies and is reported as index 1.
        let reply = post(&client, &url, body, &(case.sign)(old, body, now())).await;
        assert_eq!(reply.status, 200, "{scheme} old secret: {}", reply.body);
        let batches = sink.batches();
        let stamps: Vec<&Value> = batches
            .iter()
            .flatten()
            .map(|e| &e.attributes["verified_by"])
            .collect();
        assert_eq!(stamps.len(), 4);
        assert_eq!(stamps[0], &json!({"scheme": scheme, "secret_index": 0}));
        assert_eq!(stamps[3], &json!({"scheme": scheme, "secret_index": 1}));
        server.stop().await.expect("clean stop");
    }
}

#[tokio::test]
async fn signature_covers_the_raw_gzip_bytes() {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;
    let sink = Arc::new(CollectingSink::default());
    let config = json!({"verify": {"scheme": "github", "secrets": [NEW_SECRET]}});
    let server = start(config, sink.clone()).await;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(BODY.as_bytes()).expect("in memory");
    let gz = encoder.finish().expect("in memory");
    let client = reqwest::Client::new();
    let send_signed = |signed: &[u8]| {
        client
            .post(server.url("/v1/events"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header(
                "x-hub-signature-256",
                format!("sha256={}", hmac_hex(NEW_SECRET.as_bytes(), &[signed])),
            )
            .body(gz.clone())
    };
    let reply = send(send_signed(BODY.as_bytes())).await;
    assert_eq!(
        reply.status, 401,
        "a signature over the decoded body must not verify"
    );
    let reply = send(send_signed(&gz)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(sink.event_count(), 2);
}
