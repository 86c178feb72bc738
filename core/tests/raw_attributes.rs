//! Attributes kept raw (issue 24): the webhook's raw ingest (`parse_body_raw` +
//! `event_from_received`) gives exactly the events and errors of the tree path (`parse_body` +
//! `event_from_object`), with the attributes held as `serde_json::to_vec` of the tree's map;
//! shown over the product samples and over arbitrary JSON.

use proptest::prelude::*;
use siemrelay_core::ingest::{
    BodyFormat, FieldMapping, IngestOptions, Limits, event_from_object, event_from_received,
    parse_body, parse_body_raw,
};
use siemrelay_core::{Event, Timestamp};

type Outcome = Result<Vec<(Event, usize)>, String>;

fn tree_path(body: &[u8], format: BodyFormat, options: &IngestOptions) -> Outcome {
    let limits = Limits::new(10_000).strict(options.strict);
    let objects = parse_body(body, format, &limits).map_err(|e| e.message)?;
    objects
        .into_iter()
        .enumerate()
        .map(|(index, object)| {
            event_from_object(object, options, Timestamp(1_700_000_000_000_000_000))
                .map(|ingested| (ingested.event, ingested.mapping_errors))
                .map_err(|e| format!("{index}: {e}"))
        })
        .collect()
}

fn raw_path(body: &[u8], format: BodyFormat, options: &IngestOptions) -> Outcome {
    let limits = Limits::new(10_000).strict(options.strict);
    let objects = parse_body_raw(body, format, &limits, &options.mapping).map_err(|e| e.message)?;
    objects
        .into_iter()
        .enumerate()
        .map(|(index, object)| {
            event_from_received(object, options, Timestamp(1_700_000_000_000_000_000))
                .map(|ingested| (ingested.event, ingested.mapping_errors))
                .map_err(|e| format!("{index}: {e}"))
        })
        .collect()
}

/// Checks that both paths agree on `body`; returns how many events the raw path kept raw.
fn assert_same(body: &[u8], format: BodyFormat, options: &IngestOptions) -> usize {
    let tree = tree_path(body, format, options);
    let raw = raw_path(body, format, options);
    let (tree, raw) = match (tree, raw) {
        (Err(tree), Err(raw)) => {
            assert_eq!(tree, raw, "the same error");
            return 0;
        }
        (Ok(tree), Ok(raw)) => (tree, raw),
        (tree, raw) => panic!("tree {tree:?} but raw {raw:?}"),
    };
    assert_eq!(tree.len(), raw.len());
    let mut kept_raw = 0;
    for ((tree, tree_errors), (mut raw, raw_errors)) in tree.into_iter().zip(raw) {
        assert_eq!(tree_errors, raw_errors);
        // An event without an id gets a random UUIDv7 on each path.
        if tree.event_id.get_version_num() == 7 && raw.event_id.get_version_num() == 7 {
            raw.event_id = tree.event_id;
        }
        if let Some(json) = raw.attributes.raw_json() {
            kept_raw += 1;
            assert_eq!(
                String::from_utf8_lossy(json),
                serde_json::to_string(&*tree.attributes).unwrap(),
                "raw attributes are serde_json's form of the tree"
            );
            for (key, value) in tree.attributes.iter() {
                let text = serde_json::to_vec(value).unwrap();
                assert_eq!(raw.attributes.raw_member(key), Some(&text[..]), "{key}");
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&raw.to_json_bytes()),
            String::from_utf8_lossy(&tree.to_json_bytes()),
            "the same JSON form"
        );
        assert_eq!(raw, tree);
    }
    kept_raw
}

fn options() -> Vec<IngestOptions> {
    let mapping: FieldMapping = serde_json::from_value(serde_json::json!({
        "event_type": "type", "summary": "meta.msg", "severity": "level"}))
    .unwrap();
    vec![
        IngestOptions::for_receiver("webhook/raw", FieldMapping::default(), false),
        IngestOptions::for_receiver("webhook/raw", FieldMapping::default(), true),
        IngestOptions::for_receiver("webhook/raw", mapping.clone(), false),
        IngestOptions::for_receiver("webhook/raw", mapping, true),
        IngestOptions::default(),
    ]
}

#[test]
fn the_product_samples_are_ingested_raw_and_equal_to_the_tree_path() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/samples");
    for (name, format) in [
        ("keeptrusts.ndjson", BodyFormat::Ndjson),
        ("toktra.ndjson", BodyFormat::Ndjson),
        ("truthlocks.json", BodyFormat::Json),
        ("neuraltrust.json", BodyFormat::Json),
    ] {
        let body = std::fs::read(dir.join(name)).unwrap();
        let events = tree_path(&body, format, &options()[0]).unwrap().len();
        assert!(events > 0, "{name}");
        for (index, options) in options().iter().enumerate() {
            let kept_raw = assert_same(&body, format, options);
            if options.mapping.is_empty() {
                assert_eq!(kept_raw, events, "{name}: every event kept raw ({index})");
            } else {
                assert_eq!(kept_raw, 0, "{name}: a mapping works on trees");
            }
        }
    }
}

#[test]
fn what_the_raw_form_cannot_hold_takes_the_tree_path() {
    let sender = &options()[0];
    for (body, raw) in [
        (&br#"{"event_type":"x","b":1,"a":{"z":[1,{"y":2,"x":3}],"c":"\u00e9\n"}}"#[..], 1),
        (br#"{"u":"ann","u":"bob"}"#, 0),
        (br#"{"u":{"k":1,"k":2}}"#, 0),
        (br#"{"u":[{"k":1,"k":2}]}"#, 0),
        (br#"{"attributes":{"a":1},"a":2}"#, 0),
        (br#"{"attributes":{"a":1},"b":{"a":2}}"#, 1),
        (br#"{"c":0,"attributes":{"b":1,"a":[{"y":1,"x":2}]},"b2":{"a":2}}"#, 1),
        (br#"{"attributes":{"a":1}}"#, 1),
        (br#"{"attributes":{"a":1},"attributes":{"b":1}}"#, 0),
        (br#"{"attributes":[],"b":1}"#, 0),
        (br#"{"attributes":"x"}"#, 0),
        (br#"{"event_id":"evt-1","attributes":{"event_id":"mine"}}"#, 0),
        (br#"{"event_id":"evt-1","observed_timestamp":"2020-01-01T00:00:00Z","z":1}"#, 1),
        (br#"{"severity":"severe","z":1}"#, 0),
        (br#"{"event_type":"x","event_type":"y","z":1}"#, 0),
        (br#"{"mapping_error":"mine","severity":7,"z":1}"#, 1),
        (br#"{"n":1.0,"m":1e3,"o":-0.0,"p":12345678901234567890,"q":-9223372036854775808,"r":1.5e300}"#, 1),
        (r#"{"esc\"aped":"\ud83d\ude00\u0001\/","a\\b":1,"a":2,"\u00e9":3,"éx":5,"z":4}"#.as_bytes(), 1),
    ] {
        assert_eq!(
            assert_same(body, BodyFormat::Json, sender),
            raw,
            "{}",
            String::from_utf8_lossy(body)
        );
        for options in options() {
            assert_same(body, BodyFormat::Json, &options);
        }
    }
    // Errors are the tree path's, found at the same place.
    for body in [
        &br#"{"a":1,"b":123456789012345678901234567890}"#[..],
        br#"{"a":{"b":1,"b":2},"c":}"#,
        br#"{"a":[1,2"#,
        br#"[{"a":1},3]"#,
        br#"{"attributes":{"a":null,"\u0061":null},"severity":{"a":{"host":null,"host":null}}}"#,
    ] {
        for options in options() {
            assert_same(body, BodyFormat::Json, &options);
        }
    }
}

/// A JSON value as text, with keys repeated, escaped or out of order inside its objects.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        (-1e6f64..1e6).prop_map(|f| format!("{f}")),
        prop::sample::select(vec![
            "1.0",
            "-0",
            "-0.0",
            "1E2",
            "0.1e-3",
            "100000000000000000000"
        ])
        .prop_map(String::from),
        "[a-z\\\\\"\u{0}-\u{1f}\u{7f}é😀\u{2028}]{0,8}"
            .prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just(r#""\u00e9\/\ud83d\ude00""#.to_string()),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5)
                .prop_map(|items| format!("[{}]", items.join(" , "))),
            proptest::collection::vec((key(), inner), 0..5).prop_map(|members| object(&members)),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a",
        "b",
        "B",
        "é",
        "a\\\"b",
        "\\u0061",
        "_duplicate",
        "event_id",
        "attributes",
        "host",
        "severity",
        "z",
    ])
    .prop_map(String::from)
}

fn object(members: &[(String, String)]) -> String {
    let members: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    format!("{{{}}}", members.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn raw_ingest_gives_the_tree_paths_events_and_errors(
        objects in proptest::collection::vec(proptest::collection::vec((key(), json_text()), 0..7), 1..4),
        ndjson in any::<bool>(),
    ) {
        let texts: Vec<String> = objects.iter().map(|members| object(members)).collect();
        let (body, format) = if ndjson {
            (texts.join("\n"), BodyFormat::Ndjson)
        } else {
            (format!("[{}]", texts.join(",")), BodyFormat::Json)
        };
        for options in options() {
            assert_same(body.as_bytes(), format, &options);
        }
    }
}
