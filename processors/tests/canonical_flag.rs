//! The canonical flag of raw attributes (issue 24): attributes the webhook's real ingest
//! writes are flagged `raw_canonical_json` only when `write_canonical_json` gives their bytes
//! back unchanged, and the sign processor, which copies flagged bytes instead of
//! canonicalizing them, signs every event exactly as it signs the same event with its
//! attributes as a tree (the same JSON form, the same signature).

use proptest::prelude::*;
use siemrelay_core::ingest::{
    BodyFormat, FieldMapping, IngestOptions, Limits, event_from_received, parse_body_raw,
};
use siemrelay_core::{Attributes, Event, Processor, ProcessorContext, Timestamp};
use siemrelay_processors::sign;
use siemrelay_processors::sign::canonical_json::{CanonicalJsonScratch, write_canonical_json};

/// The events the webhook's raw ingest makes of `body` (a JSON object, or an array of them).
fn ingest(body: &str) -> Vec<Event> {
    let options = IngestOptions::for_receiver("webhook/flag", FieldMapping::default(), false);
    let limits = Limits::new(10_000);
    let Ok(objects) = parse_body_raw(body.as_bytes(), BodyFormat::Json, &limits, &options.mapping)
    else {
        return Vec::new();
    };
    objects
        .into_iter()
        .filter_map(|object| {
            event_from_received(object, &options, Timestamp(1_700_000_000_000_000_000)).ok()
        })
        .map(|ingested| ingested.event)
        .collect()
}

/// Checks the flag of each event's raw attributes against `write_canonical_json`, and that
/// signing gives the same as for the tree; returns how many events were flagged.
fn check(events: Vec<Event>, signer: &sign::Sign) -> usize {
    let mut flagged = 0;
    let mut scratch = CanonicalJsonScratch::default();
    for event in &events {
        let Some(raw) = event.attributes.raw_json() else {
            continue;
        };
        let mut canonical = Vec::new();
        write_canonical_json(raw, &mut canonical, &mut scratch);
        if let Some(bytes) = event.attributes.raw_canonical_json() {
            flagged += 1;
            assert_eq!(
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&canonical),
                "flagged canonical, but canonical_json writes otherwise"
            );
        }
    }
    let mut raws = events;
    let mut trees = raws.clone();
    for event in &mut trees {
        let map = event.attributes.clone().into_map();
        event.attributes = Attributes::from(map);
        assert!(event.attributes.raw_json().is_none());
    }
    signer.process(&mut raws);
    signer.process(&mut trees);
    for (raw, tree) in raws.iter().zip(&trees) {
        assert!(raw.signature.is_some());
        assert_eq!(raw.signature, tree.signature);
        assert_eq!(
            String::from_utf8_lossy(&raw.to_json_bytes()),
            String::from_utf8_lossy(&tree.to_json_bytes()),
            "the same signed form"
        );
    }
    flagged
}

fn signer() -> (sign::Sign, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ctx = ProcessorContext {
        id: "sign".into(),
        pipeline: "security".into(),
        storage_dir: dir.path().to_path_buf(),
    };
    let config = serde_yaml::from_str("{ keys: [{ id: k1, secret: flag-secret }] }").unwrap();
    (sign::build(config, &ctx).unwrap(), dir)
}

#[test]
fn the_reference_events_attributes_are_flagged_and_awkward_ones_are_not() {
    let (signer, _dir) = signer();
    let reference = r#"{"event_id":"0192f0c4-5e6b-7a8c-9d0e-1f2a3b4c5d00",
        "timestamp":"2026-11-20T09:00:00.123456Z","event_type":"policy_violation",
        "severity":"high","source":"toktra","summary":"User exceeded the daily token policy",
        "user_email":"user7@acme.example","attributes":{"policy":"eng","model":"gpt-x",
        "requests":1200,"limit":1000,"ratio":1.2,"blocked":true,"tags":{"team":"sec","env":"prod"},
        "deep":[{"z":0.25,"a":-3,"é":"\u00e9\n\/"}],"big":18446744073709551615,"neg":-0.5}}"#;
    assert_eq!(check(ingest(reference), &signer), 1);
    for (attributes, flagged) in [
        (r#"{"a":1,"b":"x\u0001\"\\"}"#, true),
        (r#"{"a":0.0001,"b":123.456,"c":-1}"#, true),
        // Keys JCS writes or sorts otherwise.
        (r#"{"a\"b":1}"#, false),
        (r#"{"x":{"a\nb":1}}"#, false),
        (r#"{"\ue000":1,"😀":2}"#, false),
        (r#"{"x":[{"\uffff":1}]}"#, false),
        // A key that had an escape but needs none is written plainly: canonical.
        (r#"{"\u0061":1}"#, true),
        // Floats JCS writes otherwise.
        (r#"{"a":1.0}"#, false),
        (r#"{"a":-0}"#, false),
        (r#"{"a":1e300}"#, false),
        (r#"{"a":0.0000001}"#, false),
        (r#"{"a":1234567890.1234567}"#, false),
    ] {
        let body = format!(r#"{{"event_type":"x","attributes":{attributes}}}"#);
        let events = ingest(&body);
        assert_eq!(events.len(), 1, "{body}");
        assert!(events[0].attributes.raw_json().is_some(), "{body}");
        assert_eq!(check(events, &signer), usize::from(flagged), "{body}");
    }
}

/// A JSON value as text: numbers in every form, strings with escapes, and objects whose keys
/// are escaped, out of order, or hold characters where UTF-8 and UTF-16 order part.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f}")),
        (-1e6f64..1e6).prop_map(|f| format!("{f}")),
        // Plain decimals, some with trailing zeros or more digits than a double holds.
        (any::<i32>(), "[0-9]{1,12}").prop_map(|(whole, fraction)| format!("{whole}.{fraction}")),
        ("-?0\\.0{0,7}[1-9]{1,3}").prop_map(String::from),
        prop::sample::select(vec![
            "1.0",
            "-0",
            "-0.0",
            "1E2",
            "0.1e-3",
            "2.50",
            "0.000001",
            "0.0000001"
        ])
        .prop_map(String::from),
        "[a-z\\\\\"\u{0}-\u{1f}\u{7f}é😀\u{e000}\u{2028}]{0,6}"
            .prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just(r#""\u00e9\/\ud83d\ude00""#.to_string()),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::btree_map(key(), inner, 0..5).prop_map(|members| {
                object(members.into_iter().rev().collect::<Vec<_>>().as_slice())
            }),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a", "b", "B", "é", "a\\\"b", "\\u0061x", "\\n", "\u{e000}", "\u{ffff}", "😀", "host", "z",
        "",
    ])
    .prop_map(String::from)
}

fn object(members: &[(String, String)]) -> String {
    let members: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!("{{{}}}", members.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_flag_is_set_only_when_the_bytes_are_canonical_and_signing_is_unchanged(
        objects in proptest::collection::vec(
            proptest::collection::btree_map(key(), json_text(), 0..7), 1..4),
    ) {
        let texts: Vec<String> = objects
            .into_iter()
            .map(|members| {
                let mut members: Vec<(String, String)> = members.into_iter().collect();
                members.push(("event_type".into(), "\"x\"".into()));
                object(&members)
            })
            .collect();
        let (signer, _dir) = signer();
        check(ingest(&format!("[{}]", texts.join(","))), &signer);
    }
}
