//! Property tests of the JSON parser every receiver uses (issue 20 §6): adversarial bodies
//! (deep nesting, many tiny objects, repeated keys, integers wider than 64 bits, broken UTF-8,
//! token soup) never panic, the events limit and the memory budget always hold, repeated keys
//! lose nothing, and a wide integer is always refused.

use proptest::prelude::*;
use siemrelay_core::admission::MemoryBudget;
use siemrelay_core::ingest::{
    BodyErrorKind, BodyFormat, FieldMapping, IngestOptions, Limits, event_from_object, parse_body,
};
use siemrelay_core::{Timestamp, Value};

/// A JSON value as text, possibly with keys repeated inside its objects.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-1e300f64..1e300).prop_map(|f| format!("{f:e}")),
        "[a-z\\\\\"\u{0}-\u{1f}😀]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(6, 64, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5)
                .prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::vec(
                (
                    prop::sample::select(vec!["a", "b", "_duplicate", "event_id", "attributes"]),
                    inner
                ),
                0..5
            )
            .prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// An object (one event) as text.
fn object_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (
            prop::sample::select(vec![
                "event_type",
                "event_id",
                "observed_timestamp",
                "user",
                "user",
                "severity",
                "attributes",
                "tags",
            ]),
            json_text(),
        ),
        0..6,
    )
    .prop_map(|members| {
        let members: Vec<String> = members
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", members.join(","))
    })
}

fn sender_options() -> IngestOptions {
    IngestOptions::for_receiver("webhook/prop", FieldMapping::default(), false)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_events_limit_holds(objects in proptest::collection::vec(object_text(), 0..30), max in 1usize..20) {
        let body = format!("[{}]", objects.join(","));
        let ndjson = objects.join("\n");
        for (text, format) in [(&body, BodyFormat::Json), (&ndjson, BodyFormat::Ndjson)] {
            let limits = Limits::new(max);
            match parse_body(text.as_bytes(), format, &limits) {
                Ok(parsed) => {
                    prop_assert!(parsed.len() <= max);
                    prop_assert_eq!(parsed.len(), objects.len());
                    for object in parsed {
                        let _ = event_from_object(object, &sender_options(), Timestamp(1));
                    }
                }
                Err(error) => match &error.kind {
                    BodyErrorKind::TooManyEvents { limit } => {
                        prop_assert_eq!(*limit, max);
                        prop_assert!(objects.len() > max);
                        prop_assert!(limits.events() <= max + 1, "the parser stopped at the first event over");
                    }
                    other => prop_assert!(false, "{other:?}: {error}"),
                },
            }
        }
    }

    #[test]
    fn repeated_keys_lose_nothing(
        users in proptest::collection::vec(json_text(), 1..5),
        nested in proptest::collection::vec(json_text(), 1..4),
        other in json_text(),
    ) {
        let mut members: Vec<String> = users.iter().map(|u| format!("\"user\":{u}")).collect();
        members.insert(members.len() / 2, format!("\"other\":{other}"));
        let tags: Vec<String> = nested.iter().map(|v| format!("\"env\":{v}")).collect();
        members.push(format!("\"tags\":{{{}}}", tags.join(",")));
        let text = format!("{{{}}}", members.join(","));
        let objects = parse_body(text.as_bytes(), BodyFormat::Json, &Limits::unlimited()).unwrap();
        let event = event_from_object(objects.into_iter().next().unwrap(), &sender_options(), Timestamp(1)).unwrap().event;
        let value = |text: &String| {
            parse_body(format!("{{\"v\":{text}}}").as_bytes(), BodyFormat::Json, &Limits::unlimited())
                .unwrap()
                .remove(0)
                .0
                .remove(0)
                .1
        };
        prop_assert_eq!(&event.attributes["user"], &value(&users[0]));
        let later: Vec<Value> = users[1..].iter().map(value).collect();
        let kept = event.attributes.get("_duplicate").and_then(|d| d.get("user")).cloned();
        if later.is_empty() {
            prop_assert!(kept.is_none());
        } else {
            prop_assert_eq!(kept, Some(Value::Array(later)));
        }
        let tags = &event.attributes["tags"];
        prop_assert_eq!(&tags["env"], &value(&nested[0]));
        let later: Vec<Value> = nested[1..].iter().map(value).collect();
        if !later.is_empty() {
            prop_assert_eq!(&tags["_duplicate"]["env"], &Value::Array(later));
        }
        // Strict mode refuses instead.
        let strict = parse_body(text.as_bytes(), BodyFormat::Json, &Limits::unlimited().strict(true));
        if users.len() > 1 || nested.len() > 1 {
            let refused = match strict {
                Err(error) => error.kind == BodyErrorKind::RepeatedKey,
                Ok(objects) => {
                    let options = IngestOptions { strict: true, ..sender_options() };
                    event_from_object(objects.into_iter().next().unwrap(), &options, Timestamp(1)).is_err()
                }
            };
            prop_assert!(refused);
        }
    }

    #[test]
    fn the_memory_budget_holds_while_parsing(objects in proptest::collection::vec(object_text(), 1..20), budget_kib in 1usize..64) {
        let budget = MemoryBudget::new(budget_kib * 1024);
        let body = format!("[{}]", objects.join(","));
        {
            let reservation = budget.empty_reservation();
            let limits = Limits::new(10_000).charging(&reservation);
            match parse_body(body.as_bytes(), BodyFormat::Json, &limits) {
                Ok(_) => prop_assert!(limits.charged() <= budget_kib * 1024),
                Err(error) => prop_assert!(matches!(error.kind, BodyErrorKind::Memory(_)), "{error}"),
            }
            prop_assert!(budget.used() <= budget_kib * 1024);
        }
        prop_assert_eq!(budget.used(), 0, "every byte is given back");
    }

    #[test]
    fn integers_wider_than_64_bits_are_always_refused(object in object_text(), digits in "[1-9][0-9]{20,40}", negative in any::<bool>(), at in any::<prop::sample::Index>()) {
        let wide = if negative { format!("-{digits}") } else { digits };
        // Put the wide integer in place of one value (or add it as a member).
        let body = match object.match_indices(':').nth(at.index(object.matches(':').count().max(1))) {
            Some((i, _)) => {
                let rest = &object[i + 1..];
                let end = rest.find([',', '}']).unwrap_or(rest.len());
                if rest[..end].chars().all(|c| c.is_ascii_digit() || c == '-' || c == 'e' || c == '.' || c == '+' || c.is_ascii_alphabetic()) && !rest[..end].is_empty() && !rest.starts_with('"') {
                    format!("{}:{}{}", &object[..i], wide, &rest[end..])
                } else {
                    format!("{{\"w\":{wide}}}")
                }
            }
            None => format!("{{\"w\":{wide}}}"),
        };
        let error = parse_body(body.as_bytes(), BodyFormat::Json, &Limits::unlimited()).unwrap_err();
        prop_assert_eq!(&error.kind, &BodyErrorKind::WideInteger, "{}: {}", body, error);
        prop_assert!(error.message.contains(&wide));
    }

    #[test]
    fn adversarial_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        soup in proptest::collection::vec(prop::sample::select(vec!["{", "}", "[", "]", ",", ":", "\"a\"", "\"\\u0000\"", "\"\\ud800\"", "1", "-0", "1e999", "99999999999999999999999", "null", "\n", "\r\n", " ", "\u{feff}", "\u{0}"]), 0..200),
        depth in 0usize..300,
    ) {
        let soup = soup.concat();
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let deep_objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        for text in [&bytes[..], soup.as_bytes(), deep.as_bytes(), deep_objects.as_bytes()] {
            for format in [BodyFormat::Json, BodyFormat::Ndjson] {
                for strict in [false, true] {
                    let limits = Limits::new(50).strict(strict);
                    if let Ok(objects) = parse_body(text, format, &limits) {
                        prop_assert!(objects.len() <= 50);
                        for object in objects {
                            let options = IngestOptions { strict, ..sender_options() };
                            let _ = event_from_object(object, &options, Timestamp(1));
                        }
                    }
                }
            }
        }
    }
}
