use super::canonical::{cmp_utf16, first_to_escape, write_canonical};
use super::*;
use serde_json::json;
use siemrelay_core::{Severity, Timestamp, Value};
use std::io::Cursor;
use std::path::Path;

fn ctx(dir: &Path) -> ProcessorContext {
    ProcessorContext {
        id: "sign".into(),
        pipeline: "security".into(),
        storage_dir: dir.to_path_buf(),
    }
}

fn sign_config(yaml: &str) -> SignConfig {
    serde_yaml::from_str(yaml).unwrap()
}

fn signer(yaml: &str, dir: &Path) -> Sign {
    build(sign_config(yaml), &ctx(dir)).unwrap()
}

fn keyring(yaml: &str) -> Keyring {
    serde_yaml::from_str::<KeysFile>(yaml)
        .unwrap()
        .keyring()
        .unwrap()
}

const K1: &str = "{ id: k1, secret: first-secret }";
const K2: &str = "{ id: k2, secret: second-secret }";

/// An event with every field of the JSON form set, and awkward attribute values.
fn full_event(n: u64) -> Event {
    let mut event = Event::new("policy_violation");
    event.event_id = format!("0192f0c4-5e6b-7a8c-9d0e-1f2a3b4c5d{n:02x}")
        .parse()
        .unwrap();
    event.timestamp = Timestamp(1_795_000_000_123_456_000 + n as i64);
    event.observed_timestamp = Timestamp(1_795_000_000_200_000_000);
    event.severity = Severity::from_name("high").unwrap();
    event.source = Some("toktra".into());
    event.summary = Some(format!(
        "Blocked upload #{n} of \"secrets.txt\" — été 😀\tby bob"
    ));
    *event.attributes = json!({
        "user_email": "bob@corp.example",
        "count": n,
        "ratio": 0.25,
        "big": 1_u64 << 60,
        "huge": u64::MAX,
        "tiny": i64::MIN,
        "flags": [true, false, null],
        "tags": {"env": "prod", "team": "sec", "a.b": {"z": 1, "é": 2, "\u{ffff}": 3, "😀": 4}},
        "ctl": "\u{1}\u{7f}/\\"
    })
    .as_object()
    .unwrap()
    .clone();
    event.resource = json!({"service.name": "gateway"})
        .as_object()
        .unwrap()
        .clone();
    event
}

fn ndjson(events: &[Event]) -> String {
    let mut out = Vec::new();
    for event in events {
        event.write_json(&mut out);
        out.push(b'\n');
    }
    String::from_utf8(out).unwrap()
}

fn signed_lines(config: &str, count: u64) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut batch: Vec<Event> = (0..count).map(full_event).collect();
    signer(config, dir.path()).process(&mut batch);
    ndjson(&batch).lines().map(str::to_string).collect()
}

fn verify(lines: &[String], keys: &Keyring, chain: bool) -> VerifyReport {
    verify_stream(Cursor::new(lines.join("\n")), keys, chain)
}

fn failure(report: &VerifyReport) -> (usize, FailureReason) {
    let failure = report.failure.clone().expect("verification should fail");
    (failure.line, failure.reason)
}

fn canonical(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn canonical_form_matches_rfc8785_examples() {
    // RFC 8785 section 3.2.2.
    let input = r#"{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }"#;
    let expected = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;
    assert_eq!(canonical(&serde_json::from_str(input).unwrap()), expected);

    // RFC 8785 section 3.2.3: sorting by UTF-16 code units.
    let input = r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u00e9":"e acute"}"#;
    // The canonical text itself must list the keys in UTF-16 order (parsing it back would
    // re-sort them by the map's own order, so look at the text).
    let text = canonical(&serde_json::from_str(input).unwrap());
    let expected_order = [
        "\r", "1", "\u{80}", "\u{e9}", "\u{f6}", "\u{20ac}", "😀", "\u{fb33}",
    ];
    let positions: Vec<usize> = expected_order
        .iter()
        .map(|key| {
            let quoted = canonical(&Value::String((*key).to_string()));
            text.find(&format!("{quoted}:"))
                .unwrap_or_else(|| panic!("{key:?} missing in {text}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "keys out of UTF-16 order: {text}"
    );

    // RFC 8785 appendix B: number serialization (IEEE 754 bit patterns).
    for (bits, text) in [
        (0x0000000000000000_u64, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ] {
        assert_eq!(canonical(&json!(f64::from_bits(bits))), text, "{bits:#x}");
    }
    for (float, text) in [
        (1e30, "1e+30"),
        (4.5, "4.5"),
        (0.002, "0.002"),
        (-0.0, "0"),
        (2.0, "2"),
    ] {
        assert_eq!(canonical(&json!(float)), text);
    }
    // Integers stay exact (the documented deviation from RFC 8785).
    assert_eq!(canonical(&json!(u64::MAX)), "18446744073709551615");
    assert_eq!(canonical(&json!(i64::MIN)), "-9223372036854775808");
    assert_eq!(canonical(&json!(1_u64 << 60)), "1152921504606846976");
}

#[test]
fn utf16_key_order_agrees_with_encode_utf16() {
    let samples = [
        "",
        "a",
        "ab",
        "b",
        "\u{7f}",
        "\u{80}",
        "é",
        "\u{d7ff}",
        "\u{e000}",
        "\u{ffff}",
        "😀",
        "😀a",
        "\u{10000}",
        "\u{10ffff}",
        "a😀",
        "a\u{ffff}",
        "\u{fb33}",
    ];
    for a in samples {
        for b in samples {
            assert_eq!(
                cmp_utf16(a, b),
                a.encode_utf16().cmp(b.encode_utf16()),
                "{a:?} vs {b:?}"
            );
        }
    }
}

#[test]
fn signed_events_verify_and_carry_the_signature() {
    for chain in [false, true] {
        let lines = signed_lines(&format!("{{ keys: [{K1}], chain: {chain} }}"), 5);
        let report = verify(&lines, &keyring(&format!("keys: [{K1}]")), chain);
        assert_eq!(
            report,
            VerifyReport {
                events_checked: 5,
                failure: None,
                notes: vec![]
            },
            "chain {chain}"
        );
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["signature"]["alg"], "HMAC-SHA256");
        assert_eq!(first["signature"]["kid"], "k1");
        assert_eq!(first["signature"]["value"].as_str().unwrap().len(), 64);
        if chain {
            assert_eq!(first["signature"]["prev"], CHAIN_START);
        } else {
            assert!(first["signature"].get("prev").is_none());
        }
    }
}

#[test]
fn flipping_any_byte_of_a_line_fails_at_that_line() {
    let keys = keyring(&format!("keys: [{K1}]"));
    for chain in [false, true] {
        let lines = signed_lines(&format!("{{ keys: [{K1}], chain: {chain} }}"), 3);
        let original = lines[1].as_bytes().to_vec();
        // Every member of the JSON form is present, so every field gets flipped.
        let json: Value = serde_json::from_str(&lines[1]).unwrap();
        for field in siemrelay_core::event::WELL_KNOWN_FIELDS {
            assert!(
                json.get(field).is_some(),
                "{field} missing from the test event"
            );
        }
        for i in 0..original.len() {
            let mut tampered = original.clone();
            tampered[i] ^= 0x01;
            let mut changed = lines.clone();
            changed[1] = String::from_utf8_lossy(&tampered).into_owned();
            let report = verify(&changed, &keys, chain);
            let (line, reason) = failure(&report);
            assert_eq!(
                line, 2,
                "byte {i} ({:?}) flipped: {reason}",
                original[i] as char
            );
            assert_eq!(report.events_checked, 1);
        }
    }
}

#[test]
fn a_changed_big_integer_fails_exactly() {
    let lines = signed_lines(&format!("{{ keys: [{K1}] }}"), 1);
    let keys = keyring(&format!("keys: [{K1}]"));
    assert!(lines[0].contains(r#""huge":18446744073709551615"#));
    assert!(lines[0].contains(r#""big":1152921504606846976"#));
    assert!(lines[0].contains(r#""tiny":-9223372036854775808"#));
    assert!(verify(&lines, &keys, false).is_ok());
    // Both values are the same IEEE double; exact integers still tell them apart.
    for (from, to) in [
        ("18446744073709551615", "18446744073709551614"),
        ("1152921504606846976", "1152921504606846977"),
    ] {
        let changed = vec![lines[0].replace(from, to)];
        assert_eq!(
            failure(&verify(&changed, &keys, false)),
            (1, FailureReason::BadSignature)
        );
    }
}

#[test]
fn deleting_or_reordering_chained_events_fails_at_the_gap() {
    let keys = keyring(&format!("keys: [{K1}]"));
    let lines = signed_lines(&format!("{{ keys: [{K1}], chain: true }}"), 5);

    let mut deleted = lines.clone();
    deleted.remove(2);
    let report = verify(&deleted, &keys, true);
    assert!(
        matches!(failure(&report), (3, FailureReason::BrokenChain(_))),
        "{report:?}"
    );
    assert_eq!(report.events_checked, 2);
    // Without --chain each event still verifies on its own.
    assert!(verify(&deleted, &keys, false).is_ok());

    let mut reordered = lines.clone();
    reordered.swap(2, 3);
    assert!(matches!(
        failure(&verify(&reordered, &keys, true)),
        (3, FailureReason::BrokenChain(_))
    ));

    let mut duplicated = lines.clone();
    duplicated.insert(2, lines[1].clone());
    assert!(matches!(
        failure(&verify(&duplicated, &keys, true)),
        (3, FailureReason::BrokenChain(_))
    ));

    // Starting mid-chain is not a failure, only a note.
    let report = verify(&lines[2..], &keys, true);
    assert_eq!(report.events_checked, 3);
    assert_eq!(report.notes.len(), 1);
    assert_eq!(report.notes[0].line, 1);

    // Events signed without chain fail a chain check.
    let unchained = signed_lines(&format!("{{ keys: [{K1}] }}"), 2);
    assert!(matches!(
        failure(&verify(&unchained, &keys, true)),
        (1, FailureReason::BrokenChain(_))
    ));
}

#[test]
fn unknown_or_retired_keys_fail_and_rotation_verifies_with_both_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut first: Vec<Event> = (0..3).map(full_event).collect();
    let mut second: Vec<Event> = (3..6).map(full_event).collect();
    {
        let sign = signer(&format!("{{ keys: [{K1}], chain: true }}"), dir.path());
        sign.process(&mut first);
    } // Clean shutdown: the chain head is saved.
    assert!(dir.path().join(CHAIN_STATE_FILE).exists());
    signer(
        &format!("{{ keys: [{K2}, {K1}], active: k2, chain: true }}"),
        dir.path(),
    )
    .process(&mut second);
    assert_eq!(second[0].signature.as_ref().unwrap().kid, "k2");
    let lines: Vec<String> = ndjson(&[first, second].concat())
        .lines()
        .map(str::to_string)
        .collect();

    let both = verify(&lines, &keyring(&format!("keys: [{K1}, {K2}]")), true);
    assert_eq!(
        both,
        VerifyReport {
            events_checked: 6,
            failure: None,
            notes: vec![]
        }
    );

    let only_new = verify(&lines, &keyring(&format!("keys: [{K2}]")), true);
    assert_eq!(
        failure(&only_new),
        (1, FailureReason::UnknownKey("k1".into()))
    );
    let only_old = verify(&lines, &keyring(&format!("keys: [{K1}]")), true);
    assert_eq!(
        failure(&only_old),
        (4, FailureReason::UnknownKey("k2".into()))
    );
    // Same id, different secret.
    let wrong = verify(
        &lines,
        &keyring("keys: [{ id: k1, secret: guessed }]"),
        true,
    );
    assert_eq!(failure(&wrong), (1, FailureReason::BadSignature));
}

#[test]
fn a_crash_restarts_the_chain_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{{ keys: [{K1}], chain: true }}");
    let mut first: Vec<Event> = (0..2).map(full_event).collect();
    let mut second: Vec<Event> = (2..4).map(full_event).collect();
    // A clean run that leaves a saved chain head.
    signer(&config, dir.path()).process(&mut vec![full_event(9)]);
    let crashed = signer(&config, dir.path());
    crashed.process(&mut first);
    std::mem::forget(crashed); // Killed: no clean shutdown, nothing saved.
    signer(&config, dir.path()).process(&mut second);
    assert_eq!(
        second[0].signature.as_ref().unwrap().prev.as_deref(),
        Some(CHAIN_START)
    );
    assert_ne!(
        first[0].signature.as_ref().unwrap().prev.as_deref(),
        Some(CHAIN_START)
    );
    let lines: Vec<String> = ndjson(&[first, second].concat())
        .lines()
        .map(str::to_string)
        .collect();
    let report = verify(&lines, &keyring(&format!("keys: [{K1}]")), true);
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events_checked, 4);
    assert_eq!(
        report.notes.iter().map(|n| n.line).collect::<Vec<_>>(),
        [1, 3]
    );
}

#[test]
fn signature_matches_an_independent_hmac_over_a_hand_written_canonical_form() {
    use hmac::{Hmac, Mac};
    let mut event = Event::new("login");
    event.event_id = "0192f0c4-5e6b-7a8c-9d0e-1f2a3b4c5d6e".parse().unwrap();
    event.timestamp = Timestamp(1_795_000_000_000_000_000);
    event.observed_timestamp = Timestamp(1_795_000_000_500_000_000);
    event.severity = Severity::from_name("high").unwrap();
    event.source = Some("toktra".into());
    *event.attributes = json!({"user": "bob", "n": 1.50, "a": {"y": 2, "x": "é\n"}})
        .as_object()
        .unwrap()
        .clone();
    let dir = tempfile::tempdir().unwrap();
    let mut batch = vec![event];
    signer(
        "{ keys: [{ id: k9, secret: hunter2 }], chain: true }",
        dir.path(),
    )
    .process(&mut batch);

    let zeros = "0".repeat(64);
    let hand_written = format!(
        concat!(
            r#"{{"attributes":{{"a":{{"x":"é\n","y":2}},"n":1.5,"user":"bob"}},"#,
            r#""event_id":"0192f0c4-5e6b-7a8c-9d0e-1f2a3b4c5d6e","event_type":"login","#,
            r#""observed_timestamp":"2026-11-18T11:06:40.500Z","severity":"high","severity_number":17,"#,
            r#""signature":{{"alg":"HMAC-SHA256","kid":"k9","prev":"{}"}},"source":"toktra","#,
            r#""timestamp":"2026-11-18T11:06:40Z"}}"#
        ),
        zeros
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"hunter2").unwrap();
    mac.update(hand_written.as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(batch[0].signature.as_ref().unwrap().value, expected);
}

#[test]
fn malformed_lines_and_signatures_fail_with_reasons() {
    let keys = keyring(&format!("keys: [{K1}]"));
    let good = signed_lines(&format!("{{ keys: [{K1}] }}"), 1).remove(0);
    let cases = [
        ("not json".to_string(), "malformed JSON"),
        ("[1,2]".to_string(), "not a JSON object"),
        (r#"{"event_type":"x"}"#.to_string(), "missing signature"),
        (
            good.replacen("{", r#"{"summary":"forged","#, 1),
            "duplicate key",
        ),
        (
            good.replace(r#""kid":"k1""#, r#""kid":"k1","note":"x""#),
            "signature.note",
        ),
        (good.replace("HMAC-SHA256", "HMAC-MD5"), "unsupported"),
        (
            good.replace(r#""value":""#, r#""value":"AB"#),
            "64 lowercase hex",
        ),
    ];
    for (line, reason) in cases {
        let report = verify(&["".to_string(), line.clone()], &keys, false);
        let (at, why) = failure(&report);
        assert_eq!(at, 2, "{line}");
        assert!(
            why.to_string().contains(reason),
            "{why} should mention {reason}"
        );
    }
}

#[test]
fn key_config_errors_name_the_key_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("k1");
    std::fs::write(&secret_file, "file-secret\n").unwrap();
    let missing = dir.path().join("missing");

    // A secret file loses its trailing newline: same signature as the inline secret.
    let mut a = vec![full_event(1)];
    let mut b = a.clone();
    signer("{ keys: [{ id: k1, secret: file-secret }] }", dir.path()).process(&mut a);
    signer(
        &format!(
            "{{ keys: [{{ id: k1, secret_file: {} }}] }}",
            secret_file.display()
        ),
        dir.path(),
    )
    .process(&mut b);
    assert_eq!(a[0].signature, b[0].signature);

    let config = sign_config(&format!(
        "{{ keys: [{{ id: k2, secret: topsecret }}, {{ id: k1, secret_file: {} }}, {{ id: k2, secret: x }}, {{ id: k3 }}], active: k9 }}",
        missing.display()
    ));
    let issues = config.validate();
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "keys[1].secret_file",
            "keys[2].id",
            "keys[3].secret",
            "active"
        ]
    );
    assert!(issues[0].message.contains("missing"));
    assert!(issues.iter().all(|i| !i.to_string().contains("topsecret")));
    assert_eq!(build(config, &ctx(dir.path())).unwrap_err(), issues);

    let two = sign_config(&format!("{{ keys: [{K1}, {K2}] }}"));
    assert_eq!(two.validate()[0].key, "active");
    assert!(serde_yaml::from_str::<SignConfig>("{ keys: [{ id: k, secret: '' }] }").is_err());

    let sign = signer("{ keys: [{ id: k1, secret: topsecret }] }", dir.path());
    assert!(!format!("{sign:?}").contains("topsecret"));
    assert!(
        !format!("{:?}", keyring("keys: [{ id: k1, secret: topsecret }]")).contains("topsecret")
    );
}

#[test]
fn floats_survive_the_round_trip_through_text() {
    // Pseudo-random bit patterns cover floats whose shortest text needs exact parsing.
    let mut bits: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut floats = Vec::new();
    while floats.len() < 2000 {
        bits ^= bits << 13;
        bits ^= bits >> 7;
        bits ^= bits << 17;
        let f = f64::from_bits(bits);
        if f.is_finite() {
            floats.push(json!(f));
        }
    }
    floats.extend([
        json!(333333333.3333333),
        json!(0.1),
        json!(1e300),
        json!(5e-324),
    ]);
    let mut event = full_event(1);
    event
        .attributes
        .insert("floats".into(), Value::Array(floats));
    let dir = tempfile::tempdir().unwrap();
    let mut batch = vec![event];
    signer(&format!("{{ keys: [{K1}] }}"), dir.path()).process(&mut batch);
    let lines: Vec<String> = ndjson(&batch).lines().map(str::to_string).collect();
    let report = verify(&lines, &keyring(&format!("keys: [{K1}]")), false);
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn direct_event_writer_matches_the_generic_canonical_form() {
    use super::canonical::{SignedFields, write_event_signing_input, write_signing_input};
    let mut only_source = Event::new("x");
    only_source.source = Some("s".into());
    let mut signed_before = full_event(2);
    signed_before.signature = Some(Box::new(Signature {
        alg: "old".into(),
        kid: "old".into(),
        value: "00".into(),
        prev: None,
    }));
    for mut event in [
        full_event(1),
        Event::new("minimal"),
        only_source,
        signed_before,
    ] {
        event.signature = None;
        for prev in [None, Some(CHAIN_START)] {
            let signed = SignedFields {
                alg: ALGORITHM,
                kid: "k1",
                prev,
            };
            let (mut direct, mut generic) = (Vec::new(), Vec::new());
            let direct_at = write_event_signing_input(
                &event,
                signed,
                &mut direct,
                &mut Vec::new(),
                &mut Default::default(),
            )
            .value_at;
            let json = event.to_json_value();
            let map = json.as_object().unwrap();
            let generic_at = write_signing_input(map, signed, &mut generic, &mut Vec::new());
            assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&generic)
            );
            assert_eq!(direct_at, generic_at);
        }
    }
}

#[test]
fn chain_state_is_saved_even_when_the_storage_directory_does_not_exist_yet() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("processors/security/sign");
    let mut first: Vec<Event> = (0..2).map(full_event).collect();
    signer(&format!("{{ keys: [{K1}], chain: true }}"), &dir).process(&mut first);
    assert!(
        dir.join(CHAIN_STATE_FILE).exists(),
        "the directory is created at shutdown"
    );
    let mut second: Vec<Event> = (2..3).map(full_event).collect();
    signer(&format!("{{ keys: [{K1}], chain: true }}"), &dir).process(&mut second);
    assert_ne!(
        second[0].signature.as_ref().unwrap().prev.as_deref(),
        Some("0".repeat(64).as_str()),
        "a clean restart continues the chain"
    );
}

#[test]
fn the_sent_json_form_is_the_signed_canonical_form() {
    let dir = tempfile::tempdir().unwrap();
    let mut batch: Vec<Event> = (0..3).map(full_event).collect();
    signer(&format!("{{ keys: [{K1}], chain: true }}"), dir.path()).process(&mut batch);
    for event in &batch {
        assert!(event.written_json().is_some(), "signing keeps the bytes");
        let sent = event.to_json_bytes();
        let value: Value = serde_json::from_slice(&sent).unwrap();
        // The same fields, values and types as the event, ...
        assert_eq!(value, event.to_json_value());
        // ... written canonically: the bytes sent are the bytes the MAC covers (plus `value`).
        assert_eq!(String::from_utf8(sent).unwrap(), canonical(&value));
    }
}

#[test]
fn an_integral_float_is_serialized_normally_so_it_stays_a_float() {
    let dir = tempfile::tempdir().unwrap();
    let mut event = full_event(1);
    event.attributes.insert("score".into(), json!(4.0));
    let mut batch = vec![event];
    signer(&format!("{{ keys: [{K1}] }}"), dir.path()).process(&mut batch);
    assert!(batch[0].written_json().is_none());
    let line = ndjson(&batch);
    assert!(line.contains(r#""score":4.0"#), "{line}");
    let lines: Vec<String> = line.lines().map(str::to_string).collect();
    let report = verify(&lines, &keyring(&format!("keys: [{K1}]")), false);
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn the_word_at_a_time_escape_scan_agrees_with_a_byte_scan() {
    let naive = |bytes: &[u8]| {
        bytes
            .iter()
            .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
    };
    let plain = "abcdé😀xyz0123456789/~\u{7f}";
    for special in ["\u{0}", "\u{1f}", "\n", "\"", "\\", "\u{7f}", " ", "é"] {
        for at in 0..plain.len() {
            if !plain.is_char_boundary(at) {
                continue;
            }
            for tail in ["", "\"", "\u{1}"] {
                let text = format!("{}{special}{}{tail}", &plain[..at], &plain[at..]);
                assert_eq!(
                    first_to_escape(text.as_bytes()),
                    naive(text.as_bytes()),
                    "{text:?}"
                );
            }
        }
    }
    assert_eq!(first_to_escape(b""), None);
}

#[test]
fn a_signature_is_the_same_whether_the_attributes_were_raw_or_a_tree() {
    let dir = tempfile::tempdir().unwrap();
    for config in [
        format!("{{ keys: [{K1}], active: k1 }}"),
        format!("{{ keys: [{K1}], active: k1, chain: true }}"),
    ] {
        let trees: Vec<Event> = (0..3).map(full_event).collect();
        let mut raws = trees.clone();
        for event in &mut raws {
            event.attributes = siemrelay_core::Attributes::raw_from_map(&event.attributes);
            assert!(event.attributes.raw_json().is_some());
        }
        let (mut trees, mut raws) = (trees, raws);
        signer(&config, &dir.path().join("tree")).process(&mut trees);
        signer(&config, &dir.path().join("raw")).process(&mut raws);
        assert_eq!(ndjson(&raws), ndjson(&trees), "{config}");
        for (raw, tree) in raws.iter().zip(&trees) {
            assert!(raw.signature.is_some());
            assert_eq!(raw.signature, tree.signature);
        }
    }
}

#[test]
fn the_kept_form_is_the_signing_input_with_the_value_in_a_buffer_of_exactly_its_size() {
    let input = br#"{"a":1,"signature":{"alg":"HMAC-SHA256","kid":"k1"},"z":2}"#;
    let value_at = input.iter().position(|b| *b == b'}').unwrap();
    let hex = [b'f'; 64];
    let form = super::full_form(input, value_at, &hex);
    let expected = format!(
        r#"{{"a":1,"signature":{{"alg":"HMAC-SHA256","kid":"k1","value":"{}"}},"z":2}}"#,
        "f".repeat(64)
    );
    assert_eq!(String::from_utf8(form.clone()).unwrap(), expected);
    // It waits in queues: no room left over.
    assert_eq!(form.capacity(), form.len());
}

#[test]
fn hex_lower_writes_every_byte_as_the_hex_crate_does() {
    for round in 0..8u8 {
        let bytes: [u8; 32] = std::array::from_fn(|i| round * 32 + i as u8);
        let digits = super::hex_lower(&bytes);
        assert_eq!(super::hex_str(&digits), hex::encode(bytes));
    }
}
