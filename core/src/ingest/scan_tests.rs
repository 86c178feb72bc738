//! The scanner against the serde_json raw path it stands in for: over the reference events
//! (which it must take) and, differentially, over generated bodies, valid and broken, under
//! limits small enough to stop them.

use super::*;
use crate::admission::MemoryBudget;
use crate::ingest::BodyError;
use crate::ingest::parse::{parse_body_raw, parse_body_raw_serde};
use proptest::prelude::*;

/// The limits a body is parsed under.
#[derive(Clone, Copy, Debug)]
struct Config {
    max_events: usize,
    strict: bool,
    /// A memory budget to charge (none: unlimited).
    budget: Option<usize>,
}

const LOOSE: Config = Config {
    max_events: 10_000,
    strict: false,
    budget: None,
};

/// Everything a parse reports: the objects or the error, and what `Limits` and the
/// reservation say afterwards.
#[derive(Debug, PartialEq)]
struct Outcome<'b> {
    result: Result<Vec<Object<'b>>, BodyError>,
    events: usize,
    charged: usize,
    stop: Option<super::super::parse::Stop>,
    reserved: Option<usize>,
}

fn run<'b>(body: &'b [u8], format: BodyFormat, config: Config, scanner: bool) -> Outcome<'b> {
    let budget = config.budget.map(MemoryBudget::new);
    let reservation = budget.as_ref().map(|budget| budget.empty_reservation());
    let mut limits = Limits::new(config.max_events).strict(config.strict);
    if let Some(reservation) = &reservation {
        limits = limits.charging(reservation);
    }
    let mapping = Default::default();
    // A body the scanner leaves gets the serde_json path's objects: compared in the form
    // the scanner gives.
    let result = if scanner {
        parse_body_raw(body, format, &limits, &mapping)
    } else {
        parse_body_raw_serde(body, format, &limits)
    }
    .map(|objects| objects.into_iter().map(with_fields_parsed).collect());
    Outcome {
        result,
        events: limits.events(),
        charged: limits.charged(),
        stop: limits.take_stop(),
        reserved: reservation.as_ref().map(|reservation| reservation.bytes()),
    }
}

/// An object of the serde_json path as the scanner gives it: the `event_id`, `timestamp` and
/// `severity` strings that parse moved out of the members into their typed fields.
fn with_fields_parsed(mut object: Object<'_>) -> Object<'_> {
    let mut parsed = std::mem::take(&mut object.parsed);
    object.members.0.retain(|(key, value)| {
        let Some(field) = WellKnown::from_key(key) else {
            return true;
        };
        !matches!(value, Value::String(text) if parsed.take(field, text))
    });
    object.parsed = parsed;
    object
}

/// Parses `body` with and without the scanner and checks they agree; returns whether the
/// scanner took the body.
fn assert_same(body: &[u8], format: BodyFormat, config: Config) -> bool {
    let with = run(body, format, config, true);
    let without = run(body, format, config, false);
    assert_eq!(
        with,
        without,
        "body {:?} ({format:?}, {config:?})",
        String::from_utf8_lossy(body)
    );
    let limits = Limits::new(config.max_events).strict(config.strict);
    std::str::from_utf8(body)
        .ok()
        .and_then(|text| scan_body(text, format, &limits))
        .is_some()
}

/// The reference event of `bench/src/lib.rs` (what `bench/callgrind.sh` sends).
fn bench_reference_event(sequence: u64) -> String {
    let severity = if sequence.is_multiple_of(10) {
        "info"
    } else {
        "high"
    };
    format!(
        concat!(
            "{{\"event_id\":\"0193a8e5-5c1e-7d4b-9f00-{seq:012x}\",\"timestamp\":\"2026-11-20T09:00:00.123456Z\",\"event_type\":\"policy_violation\",",
            "\"severity\":\"{severity}\",\"source\":\"toktra\",",
            "\"summary\":\"User exceeded the daily token policy eng-default: 1200 of 1000 requests #{seq:08}\",",
            "\"user_email\":\"user{user}@acme.example\",",
            "\"attributes\":{{\"policy\":\"eng\",\"model\":\"gpt-x\",\"requests\":1200,\"limit\":1000,",
            "\"ratio\":1.2,\"blocked\":true,\"tags\":{{\"team\":\"sec\",\"env\":\"prod\"}}}}}}\n"
        ),
        seq = sequence,
        severity = severity,
        user = sequence % 1000,
    )
}

/// The reference event of `core/benches/ingest.rs`.
fn core_bench_reference_event(i: usize) -> String {
    let severity = if i.is_multiple_of(10) { "info" } else { "high" };
    format!(
        concat!(
            "{{\"event_id\":\"0193a8e5-5c1e-7d4b-9f00-{:012x}\",\"timestamp\":\"2026-11-20T09:00:00.123456Z\",",
            "\"event_type\":\"policy_violation\",\"severity\":\"{}\",\"source\":\"toktra\",",
            "\"summary\":\"User exceeded the daily token policy eng-default (1200 of 1000 requests) on model gpt-x #{:08}\",",
            "\"user_email\":\"user{}@acme.example\",\"attributes\":{{\"policy\":\"eng-default\",\"model\":\"gpt-x\",",
            "\"requests\":1200,\"limit\":1000,\"ratio\":1.2,\"blocked\":true,",
            "\"tags\":{{\"team\":\"platform\",\"env\":\"prod\",\"cost_center\":\"CC-100\"}}}}}}\n"
        ),
        i,
        severity,
        i,
        i % 1000
    )
}

#[test]
fn the_scanner_takes_the_reference_events() {
    let bench: String = (0..100).map(bench_reference_event).collect();
    let core: String = (0..100).map(core_bench_reference_event).collect();
    for ndjson in [bench, core] {
        let lines: Vec<&str> = ndjson.lines().collect();
        let array = format!("[{}]", lines.join(","));
        for (body, format, count) in [
            (ndjson.as_str(), BodyFormat::Ndjson, 100),
            (array.as_str(), BodyFormat::Json, 100),
            (lines[3], BodyFormat::Json, 1),
        ] {
            let limits = Limits::new(10_000);
            let scanned = scan_body(body, format, &limits).expect("the scanner takes the body");
            assert_eq!(scanned.objects.len(), count);
            assert!(scanned.objects.iter().all(canonical_or_none));
            let serde_limits = Limits::new(10_000);
            let serde: Vec<Object<'_>> =
                parse_body_raw_serde(body.as_bytes(), format, &serde_limits)
                    .unwrap()
                    .into_iter()
                    .map(with_fields_parsed)
                    .collect();
            assert_eq!(scanned.objects, serde);
            assert_eq!(limits.events(), serde_limits.events());
            assert_eq!(limits.charged(), serde_limits.charged());
            assert!(assert_same(body.as_bytes(), format, LOOSE));
        }
    }
}

#[test]
fn chosen_bodies_agree_and_the_common_ones_are_scanned() {
    // (body, whether the scanner takes it)
    let cases: &[(&str, bool)] = &[
        (r#"{"a":1}"#, true),
        (r#"{}"#, true),
        (r#"[]"#, true),
        (
            r#" [ { "b" : [ 1 , 2 ] , "a" : { "z" : null , "y" : [ ] } } ] "#,
            true,
        ),
        (r#"{"severity":"high","attributes":{},"x":"y"}"#, true),
        (r#"{"attributes":{"b":1},"a":2}"#, true),
        (
            r#"{"s":"tab\there \"q\" \\ \/ \u00e9 \ud83d\ude00 \u0001 \u2028"}"#,
            true,
        ),
        (
            r#"{"summary":"\n","n":[-0,0,-1,1.5,1e3,1E-3,-2.50,0.000001,123456789.123456789]}"#,
            true,
        ),
        (
            r#"{"u":18446744073709551615,"i":-9223372036854775808}"#,
            true,
        ),
        (
            r#"{"resource":{"b":1,"a":[true,false,null]},"event_id":7}"#,
            true,
        ),
        // Left to the current path:
        (r#"{"a\u0062":1}"#, false),
        (r#"{"a":1,"a":2}"#, false),
        (r#"{"t":{"a":1,"a":2}}"#, false),
        (r#"{"severity":"a","severity":"b"}"#, false),
        (r#"{"attributes":{"a":1},"a":2}"#, false),
        (r#"{"attributes":[1]}"#, false),
        (r#"{"attributes":{},"attributes":{}}"#, false),
        (r#"{"n":123456789012345678901234567890}"#, false),
        (r#"{"n":1e30}"#, false),
        (r#"{"n":1e400}"#, false),
        (r#"{"s":"\ud800"}"#, false),
        (r#"{"a":01}"#, false),
        (r#"{"a":1,}"#, false),
        (r#"[{"a":1},2]"#, false),
        (r#"{"a":1} x"#, false),
        ("{\"a\":\"\u{1}\"}", false),
    ];
    for &(body, scanned) in cases {
        for format in [BodyFormat::Json, BodyFormat::Ndjson] {
            if matches!(format, BodyFormat::Ndjson) && body.starts_with(['[', ' ']) {
                continue;
            }
            assert_eq!(
                assert_same(body.as_bytes(), format, LOOSE),
                scanned,
                "{body}"
            );
            let strict = Config {
                strict: true,
                ..LOOSE
            };
            assert_same(body.as_bytes(), format, strict);
        }
    }
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
    assert!(!assert_same(deep.as_bytes(), BodyFormat::Json, LOOSE));
    let ndjson = "\r\n{\"a\":1}\r\n  \n\t{\"b\":[2]} \n\n";
    assert!(assert_same(ndjson.as_bytes(), BodyFormat::Ndjson, LOOSE));
}

/// The canonical flag of an object's raw attributes; true when it has none.
fn canonical_or_none(object: &Object<'_>) -> bool {
    object.raw_attributes.as_ref().is_none_or(|raw| raw.2)
}

#[test]
fn canonical_flags_follow_the_signers_rule() {
    let flag = |body: &str| {
        let limits = Limits::unlimited();
        canonical_or_none(
            &scan_body(body, BodyFormat::Json, &limits)
                .expect("scanned")
                .objects[0],
        )
    };
    assert!(flag(
        r#"{"a":1.5,"b":{"c":[0.25,-3,"\u00e9"]},"severity":"x"}"#
    ));
    assert!(flag(r#"{"event_id":"only well-known members"}"#));
    assert!(!flag(r#"{"a":1.0}"#), "serde_json writes 1.0: JCS writes 1");
    assert!(!flag(r#"{"a":1e3}"#));
    assert!(!flag(r#"{"a":0.0000001}"#));
    assert!(!flag(
        r#"{"a":{"\u{E000}":1}}"#.replace("\\u{E000}", "\u{E000}").as_str()
    ));
    assert!(flag(r#"{"a":{"é":1}}"#), "é is below 0xEE");
}

/// Strings with and without escapes, unicode, broken escapes.
fn string_token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z ]{0,12}".prop_map(|s| format!("\"{s}\"")),
        1 => "[a-zé€😀]{0,4}".prop_map(|s| format!("\"{s}\"")),
        2 => prop::collection::vec(
            prop::sample::select(vec![
                "a", "é", "\\n", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r", "\\t", "\\u0041",
                "\\u00e9", "\\u001f", "\\u0000", "\\ud83d\\ude00", "\\u2028", "\\uffff",
                "\\uD83D\\uDE00", "\u{7f}",
            ]),
            0..5
        )
        .prop_map(|parts| format!("\"{}\"", parts.concat())),
    ]
}

/// Numbers of every kind, valid and not.
fn number_token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<i64>().prop_map(|n| n.to_string()),
        2 => any::<u64>().prop_map(|n| n.to_string()),
        2 => (-1000i32..1000, 0u32..100_000).prop_map(|(whole, fraction)| format!("{whole}.{fraction}")),
        2 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
        2 => prop::sample::select(vec![
            "0", "-0", "-0.0", "1.0", "1E5", "1e+5", "2.5e-3", "0.000001", "0.0000001",
            "18446744073709551615", "18446744073709551616", "-9223372036854775808",
            "-9223372036854775809", "123456789012345678901234567890", "1e30", "1e400",
            "1.7976931348623157e308", "5e-324", "0.1234567890123456789", "9007199254740993",
            "1.5e19", "-1.5e19",
        ]).prop_map(str::to_string),
    ]
}

/// Tokens serde_json refuses (broken strings and numbers, cut literals).
fn broken_token() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "\"\\ud800\"",
        "\"\\udc00x\"",
        "\"\\ud800\\u0041\"",
        "\"\\x\"",
        "\"\u{1}\"",
        "\"\\u12\"",
        "\"abc",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "+1",
        "1.2.3",
        "--1",
        "tru",
        "nul",
        "NaN",
        "'a'",
    ])
    .prop_map(str::to_string)
}

fn key_token() -> impl Strategy<Value = String> {
    let plain = prop::sample::select(vec![
        "\"d\"",
        "\"e\"",
        "\"f\"",
        "\"Z\"",
        "\"a\"",
        "\"b\"",
        "\"c\"",
        "\"a b\"",
        "\"é\"",
        "\"\u{E000}\"",
        "\"😀\"",
        "\"_duplicate\"",
        "\"\"",
        "\"severity\"",
        "\"attributes\"",
    ]);
    let escaped = prop::sample::select(vec!["\"a\\u0062\"", "\"\\n\""]);
    prop_oneof![40 => plain, 1 => escaped].prop_map(str::to_string)
}

/// Whitespace between tokens (mostly none).
fn space() -> impl Strategy<Value = &'static str> {
    prop_oneof![8 => Just(""), 1 => Just(" "), 1 => prop::sample::select(vec!["\t", " \r ", "  "])]
}

fn value_token() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => string_token(),
        3 => number_token(),
        1 => prop::sample::select(vec!["true", "false", "null"]).prop_map(str::to_string),
    ];
    let leaf = prop_oneof![60 => leaf, 1 => broken_token()];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            (
                prop::collection::vec((space(), inner.clone()), 0..5),
                space()
            )
                .prop_map(|(items, end)| {
                    let items: Vec<String> =
                        items.into_iter().map(|(s, v)| format!("{s}{v}")).collect();
                    format!("[{}{end}]", items.join(","))
                }),
            (
                prop::collection::vec((key_token(), space(), inner), 0..5),
                space()
            )
                .prop_map(|(members, end)| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, s, v)| format!("{s}{k}{s}:{s}{v}"))
                        .collect();
                    format!("{{{}{end}}}", members.join(","))
                }),
        ]
    })
}

/// A top-level event object: well-known members, extras, `attributes` (an object, or a misfit).
fn event_token() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        3 => (key_token(), value_token()),
        2 => (
            prop::sample::select(vec![
                "\"event_id\"", "\"timestamp\"", "\"event_type\"", "\"severity\"",
                "\"severity_number\"", "\"source\"", "\"summary\"", "\"resource\"",
                "\"signature\"", "\"observed_timestamp\"",
            ])
            .prop_map(str::to_string),
            value_token()
        ),
        2 => (
            Just("\"attributes\"".to_string()),
            prop_oneof![
                4 => prop::collection::vec((key_token(), value_token()), 0..5).prop_map(
                    |members| {
                        let members: Vec<String> =
                            members.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                        format!("{{{}}}", members.join(","))
                    }
                ),
                1 => value_token(),
            ]
        ),
    ];
    (prop::collection::vec((member, space()), 0..7), space()).prop_map(|(members, end)| {
        let members: Vec<String> = members
            .into_iter()
            .map(|((k, v), s)| format!("{s}{k}:{s}{v}"))
            .collect();
        format!("{{{}{end}}}", members.join(","))
    })
}

/// A body of events (sometimes other values) as NDJSON or JSON, maybe broken afterwards.
fn body() -> impl Strategy<Value = (Vec<u8>, BodyFormat)> {
    let element = prop_oneof![24 => event_token(), 1 => value_token()];
    let shape = prop_oneof![
        Just(BodyFormat::Ndjson),
        Just(BodyFormat::Json),
        Just(BodyFormat::Json)
    ];
    let breakage = prop_oneof![
        12 => Just(None),
        1 => (any::<prop::sample::Index>(), prop::sample::select(vec![
            b'{', b'}', b'[', b']', b'"', b',', b':', b'\\', b'x', b'\n', b' ', 1, 0xFF,
        ]))
        .prop_map(Some),
    ];
    let truncation =
        prop_oneof![16 => Just(None), 1 => any::<prop::sample::Index>().prop_map(Some)];
    (
        prop::collection::vec((element, space()), 0..6),
        shape,
        any::<bool>(),
        breakage,
        truncation,
    )
        .prop_map(|(elements, format, array, breakage, truncation)| {
            let mut text = match format {
                BodyFormat::Ndjson => elements
                    .iter()
                    .map(|(e, s)| format!("{s}{e}{s}\n"))
                    .collect::<String>(),
                BodyFormat::Json if array || elements.len() != 1 => {
                    let items: Vec<String> =
                        elements.iter().map(|(e, s)| format!("{s}{e}")).collect();
                    format!("[{}]", items.join(","))
                }
                BodyFormat::Json => elements[0].0.clone(),
            }
            .into_bytes();
            if let Some((at, byte)) = breakage {
                let at = at.index(text.len() + 1);
                text.insert(at, byte);
            }
            if let Some(at) = truncation {
                let at = at.index(text.len() + 1);
                text.truncate(at);
            }
            (text, format)
        })
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop_oneof![3 => Just(10_000usize), 1 => 0usize..4],
        prop::bool::weighted(0.25),
        prop_oneof![3 => Just(None), 1 => (500usize..6_000).prop_map(Some)],
    )
        .prop_map(|(max_events, strict, budget)| Config {
            max_events,
            strict,
            budget,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6000))]

    /// With the scanner or without it, `parse_body_raw` gives the same objects (raw bytes and
    /// starts included), the same errors and the same counts and charges.
    #[test]
    fn the_scanner_changes_nothing((body, format) in body(), config in config()) {
        assert_same(&body, format, config);
    }
}
