use super::*;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Number, json};

/// What the tree writer of `canonical` writes for `value`, and its sendable flag.
fn tree_form(value: &Value) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let sendable = write_value(value, &mut out, &mut Vec::new());
    (out, sendable)
}

/// What [`try_write_canonical_json`] appends for `json`, and its sendable flag.
fn raw_form(json: &[u8]) -> Result<(Vec<u8>, bool), InvalidJson> {
    let mut out = Vec::new();
    let sendable = try_write_canonical_json(json, &mut out, &mut CanonicalJsonScratch::default())?;
    Ok((out, sendable))
}

/// The canonical form of a JSON text as a string, and its sendable flag.
fn canonical(json: &str) -> (String, bool) {
    let (out, sendable) = raw_form(json.as_bytes()).unwrap();
    (String::from_utf8(out).unwrap(), sendable)
}

/// Checks that writing `json` gives what the tree writer gives for the value serde_json reads
/// from it, and that both reject the same texts.
fn assert_same_as_tree(json: &[u8]) -> Result<(), TestCaseError> {
    match (raw_form(json), serde_json::from_slice::<Value>(json)) {
        (Ok(ours), Ok(value)) => {
            let tree = tree_form(&value);
            prop_assert_eq!(
                (String::from_utf8_lossy(&ours.0), ours.1),
                (String::from_utf8_lossy(&tree.0), tree.1),
                "input {:?}",
                String::from_utf8_lossy(json)
            );
        }
        (Err(_), Err(_)) => {}
        (ours, theirs) => prop_assert!(
            false,
            "input {:?}: ours {:?}, serde_json {:?}",
            String::from_utf8_lossy(json),
            ours.map(|o| String::from_utf8_lossy(&o.0).into_owned()),
            theirs
        ),
    }
    Ok(())
}

/// The compact JSON text of `value` with every object's members in reverse order.
fn reversed(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let members: Vec<String> = map
                .iter()
                .rev()
                .map(|(key, value)| format!("{}:{}", Value::from(key.as_str()), reversed(value)))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(reversed).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Characters that JCS escapes, or that sort differently in UTF-16 and UTF-8, or that
/// serde_json and JCS could escape differently.
fn awkward_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'd'),
        2 => proptest::char::range('\0', '\u{1f}'),
        2 => select(vec![
            '"', '\\', '/', '\u{7f}', '\u{80}', 'é', '\u{2028}', '\u{2029}', '\u{e000}',
            '\u{fb01}', '\u{fffd}', '\u{ffff}', '\u{10000}', '\u{1f600}', '\u{10ffff}',
        ]),
        1 => any::<char>(),
    ]
}

fn awkward_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(awkward_char(), 0..6).prop_map(|chars| chars.into_iter().collect())
}

fn float(f: f64) -> Value {
    Value::Number(Number::from_f64(f).unwrap())
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        select(vec![i64::MIN, i64::MIN + 1, i64::MAX, -1, 0]).prop_map(Value::from),
        select(vec![u64::MAX, 1 << 63, (1 << 53) + 1]).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        select(vec![
            -0.0,
            0.0,
            4.0,
            -17.0,
            0.1,
            1e20,
            1e21,
            1.5e-7,
            1e-6,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            -1e300,
            9_007_199_254_740_993.0,
            18_446_744_073_709_551_616.0,
            123_456_789.125,
        ])
        .prop_map(float),
    ]
}

/// Arbitrary trees: nested objects and arrays of awkward keys, strings and numbers.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        awkward_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((awkward_text(), inner), 0..7)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Bytes that change what a JSON text means or make it invalid.
fn edit_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => select(b"\"\\{}[],:0123456789-+.eEntrufalsu/ \t\n\x01\x7f\xc3\xa9\xed\xf0".to_vec()),
        1 => any::<u8>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The raw writer over serde_json's bytes of a tree writes what the tree writer writes.
    #[test]
    fn writes_what_the_tree_writer_writes(value in value()) {
        let json = serde_json::to_vec(&value).unwrap();
        let ours = raw_form(&json);
        prop_assert!(ours.is_ok(), "rejected {:?}: {:?}", String::from_utf8_lossy(&json), ours);
        let ours = ours.unwrap();
        let tree = tree_form(&value);
        prop_assert_eq!(
            (String::from_utf8_lossy(&ours.0), ours.1),
            (String::from_utf8_lossy(&tree.0), tree.1),
            "input {:?}",
            String::from_utf8_lossy(&json)
        );
        // Whitespace changes nothing.
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        prop_assert_eq!(raw_form(&pretty).unwrap(), ours);
    }

    /// Members in another order than serde_json's (reversed at every level, as a sender's
    /// own order may be): every object goes through the sorting writer.
    #[test]
    fn members_in_any_order_are_sorted(value in value()) {
        let json = reversed(&value);
        let ours = raw_form(json.as_bytes());
        prop_assert!(ours.is_ok(), "rejected {:?}", json);
        let tree = tree_form(&value);
        prop_assert_eq!(
            ours.map(|(form, sendable)| (String::from_utf8_lossy(&form).into_owned(), sendable)),
            Ok((String::from_utf8_lossy(&tree.0).into_owned(), tree.1)),
            "input {:?}",
            json
        );
    }

    /// Corrupted texts: accepted exactly when serde_json accepts them, then written as the
    /// tree serde_json reads; never a panic.
    #[test]
    fn corrupted_text_is_read_as_serde_json_reads_it(
        value in value(),
        edits in proptest::collection::vec((any::<Index>(), edit_byte(), 0..3u8), 1..4),
    ) {
        let mut json = serde_json::to_vec(&value).unwrap();
        for (at, byte, kind) in edits {
            let at = at.index(json.len() + 1);
            match kind {
                0 => json.insert(at, byte),
                1 if at < json.len() => json[at] = byte,
                _ if at < json.len() => {
                    json.remove(at);
                }
                _ => json.push(byte),
            }
        }
        assert_same_as_tree(&json)?;
    }

    /// Random bytes: same acceptance as serde_json, no panic; the infallible writer always
    /// writes something.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
        assert_same_as_tree(&bytes)?;
        let mut out = Vec::new();
        write_canonical_json(&bytes, &mut out, &mut CanonicalJsonScratch::default());
        prop_assert!(!out.is_empty());
    }
}

/// Decimal texts around the limits of the plain-decimal shortcut: up to 18 digits on
/// either side of the point, runs of zeros after `0.`.
fn decimal_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop_oneof![Just("0".to_string()), "[1-9][0-9]{0,17}"],
        "0{0,8}[0-9]{0,12}",
    )
        .prop_map(|(negative, whole, fraction)| {
            let fraction = if fraction.is_empty() {
                "1".into()
            } else {
                fraction
            };
            format!("{}{whole}.{fraction}", if negative { "-" } else { "" })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// The shortcut says "canonical" only for texts that ryu-js writes back unchanged, and
    /// such numbers are written as the tree writer writes them, alone and in containers.
    #[test]
    fn plain_decimals_are_canonical_only_when_ryu_js_agrees(text in decimal_text()) {
        let float: f64 = text.parse().unwrap();
        let mut buffer = ryu_js::Buffer::new();
        if plain_decimal_is_canonical(text.as_bytes()) {
            prop_assert_eq!(buffer.format(float), text.as_str());
        }
        assert_same_as_tree(text.as_bytes())?;
        assert_same_as_tree(format!("[{text},{{\"a\":{text}}}]").as_bytes())?;
    }
}

#[test]
fn plain_decimal_shortcut_limits() {
    for (text, canonical) in [
        ("0.5", true),
        ("-0.5", true),
        ("87.5", true),
        ("0.000001", true),
        ("0.0000001", false),
        ("12345678901234.5", true),
        ("123456789012345.5", false),
        ("0.123456789012345", true),
        ("0.1234567890123456", false),
        ("1.10", false),
        ("1.0", false),
        ("1.5e3", false),
        ("15", false),
    ] {
        assert_eq!(
            plain_decimal_is_canonical(text.as_bytes()),
            canonical,
            "{text}"
        );
        assert_same_as_tree(format!("[{text}]").as_bytes()).unwrap();
    }
}

#[test]
fn sorts_members_by_utf16_code_units() {
    assert_eq!(
        canonical(r#"{"b":1,"a":{"d":[3,{"z":0,"y":1}],"c":null}}"#),
        (
            r#"{"a":{"c":null,"d":[3,{"y":1,"z":0}]},"b":1}"#.into(),
            true
        )
    );
    // U+10000 is a surrogate pair in UTF-16 (0xD800 …), so it sorts before U+E000 and U+FFFD,
    // unlike in UTF-8.
    let json = json!({"\u{e000}": 1, "\u{10000}": 2, "\u{fffd}": 3, "z": 4}).to_string();
    assert_eq!(
        canonical(&json).0,
        "{\"z\":4,\"\u{10000}\":2,\"\u{e000}\":1,\"\u{fffd}\":3}"
    );
}

#[test]
fn escaped_keys_sort_by_their_text() {
    // `\u0062` is `b`; `\n` (0x0A) sorts before `\\` (0x5C) and `A`, whatever the escapes' bytes.
    assert_eq!(
        canonical(r#"{"c":1,"\u0062":2,"a":3}"#).0,
        r#"{"a":3,"b":2,"c":1}"#
    );
    assert_eq!(
        canonical(r#"{"A":1,"\\":2,"\n":3}"#).0,
        r#"{"\n":3,"A":1,"\\":2}"#
    );
    assert_eq!(
        canonical(r#"{"\ud83d\ude00":1,"\ufffd":2}"#).0,
        "{\"\u{1f600}\":1,\"\u{fffd}\":2}"
    );
}

#[test]
fn strings_are_written_with_jcs_escapes() {
    assert_eq!(
        canonical(
            r#"["\/","\u00e9","\u001F","\u001f","\u0008","\b","\"\\","\u2028","\ud83d\ude00"]"#
        )
        .0,
        "[\"/\",\"é\",\"\\u001f\",\"\\u001f\",\"\\b\",\"\\b\",\"\\\"\\\\\",\"\u{2028}\",\"\u{1f600}\"]"
    );
}

/// Strings are copied as serde_json wrote them: that is only right if serde_json escapes
/// every character exactly as JCS does.
#[test]
fn serde_json_escapes_every_character_as_jcs_does() {
    let specials = [
        '\u{80}',
        '\u{a0}',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{ffff}',
        '\u{10ffff}',
    ];
    for c in ('\0'..='\u{7f}').chain(specials) {
        let text = c.to_string();
        let mut jcs = Vec::new();
        write_string(&text, &mut jcs);
        assert_eq!(
            serde_json::to_vec(&text).unwrap(),
            jcs,
            "character U+{:04X}",
            u32::from(c)
        );
    }
}

#[test]
fn numbers_are_written_as_serde_json_reads_them() {
    let cases = [
        ("0", "0", true),
        ("-1", "-1", true),
        ("18446744073709551615", "18446744073709551615", true),
        ("-9223372036854775808", "-9223372036854775808", true),
        // Beyond 64 bits serde_json reads a double.
        ("18446744073709551616", "18446744073709552000", false),
        ("-9223372036854775809", "-9223372036854776000", false),
        // `-0` is a double to serde_json.
        ("-0", "0", false),
        ("-0.0", "0", false),
        ("4.0", "4", false),
        ("1E2", "100", false),
        ("4.5", "4.5", true),
        ("0.000001", "0.000001", true),
        ("1e-7", "1e-7", true),
        ("1e21", "1e+21", true),
        ("1e20", "100000000000000000000", false),
        ("5e-324", "5e-324", true),
        ("1e-400", "0", false),
        // A double whose canonical text is this integer text: copied, and not sendable.
        ("18446744073709552000", "18446744073709552000", false),
    ];
    for (json, form, sendable) in cases {
        assert_eq!(canonical(json), (form.to_string(), sendable), "{json}");
        // Inside containers, whose text may be copied whole.
        let nested = format!(r#"{{"a":[{json}],"b":{{"c":{json}}}}}"#);
        let nested_form = format!(r#"{{"a":[{form}],"b":{{"c":{form}}}}}"#);
        assert_eq!(canonical(&nested), (nested_form, sendable), "{nested}");
        assert_same_as_tree(json.as_bytes()).unwrap();
        assert_same_as_tree(nested.as_bytes()).unwrap();
    }
}

#[test]
fn duplicate_keys_keep_the_last_value_as_serde_json_does() {
    for json in [
        r#"{"a":1,"a":2}"#,
        r#"{"a":1,"b":0,"\u0061":2}"#,
        r#"{"b":[1],"a":1,"b":{"c":2,"c":3},"a":4,"a":5}"#,
    ] {
        assert_same_as_tree(json.as_bytes()).unwrap();
    }
    assert_eq!(
        canonical(r#"{"b":[1],"a":1,"b":{"c":2,"c":3},"a":4,"a":5}"#).0,
        r#"{"a":5,"b":{"c":3}}"#
    );
}

#[test]
fn nesting_is_limited_as_serde_json_limits_it() {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_eq!(canonical(&nested(MAX_DEPTH)).0, nested(MAX_DEPTH));
    assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH + 1)).is_err());
    assert!(raw_form(nested(MAX_DEPTH + 1).as_bytes()).is_err());
    assert!(raw_form(nested(100_000).as_bytes()).is_err());
}

#[test]
fn invalid_text_is_an_error_and_appends_nothing() {
    for json in [
        "",
        " ",
        "{",
        "{\"a\"}",
        "{\"a\":1,}",
        "[1,]",
        "01",
        "1.",
        "-",
        "1e400",
        "\"\\ud800\"",
        "\"\\udc00x\"",
        "\"\\u12\"",
        "\"\x01\"",
        "\"\\x\"",
        "nul",
        "[1] 2",
        "{\"a\" 1}",
    ] {
        let mut out = b"kept".to_vec();
        let result = try_write_canonical_json(
            json.as_bytes(),
            &mut out,
            &mut CanonicalJsonScratch::default(),
        );
        assert!(result.is_err(), "{json:?} accepted");
        assert_eq!(out, b"kept", "{json:?}");
        assert!(serde_json::from_str::<Value>(json).is_err(), "{json:?}");
    }
    assert!(raw_form(b"\"\xff\"").is_err());
    // The infallible writer signs `null` and says the form cannot be sent.
    let mut out = Vec::new();
    let sendable = write_canonical_json(b"{", &mut out, &mut CanonicalJsonScratch::default());
    assert_eq!((out.as_slice(), sendable), (&b"null"[..], false));
}

#[test]
fn one_scratch_serves_many_texts() {
    let mut scratch = CanonicalJsonScratch::default();
    let mut out = Vec::new();
    for json in [
        r#"{"b":{"\u0063":[1,2.5]},"a":"\/"}"#,
        "[]",
        r#"{"x":{"y":{"z":"\u00e9"}},"w":1}"#,
        "{}",
    ] {
        // Appends after what the caller wrote, as in an event's MAC input.
        out.clear();
        out.extend_from_slice(br#"{"attributes":"#);
        let sendable = write_canonical_json(json.as_bytes(), &mut out, &mut scratch);
        let (tree, tree_sendable) = tree_form(&serde_json::from_str(json).unwrap());
        assert_eq!(&out[..14], br#"{"attributes":"#);
        assert_eq!((&out[14..], sendable), (&tree[..], tree_sendable), "{json}");
    }
}
