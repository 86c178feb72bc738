//! Property tests of the config loader (issue 20 §6): any text, any YAML shape and any value
//! under any key (including the listener keys this issue adds) gives a config or a list of
//! errors that name their key; never a panic.

use proptest::prelude::*;
use siemrelay_pipelines::config::load_str;

/// YAML scalars that stress the loader: sizes, durations, numbers as text, huge and negative
/// numbers, `${…}` references, CIDRs, paths, and nonsense.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("1e999".to_string()),
        Just("\"10MiB\"".to_string()),
        Just("\"0s\"".to_string()),
        Just("\"${env:NOPE}\"".to_string()),
        Just("\"${file:/nonexistent}\"".to_string()),
        Just("[\"10.0.0.0/8\", \"::1\", \"300.1.1.1/33\"]".to_string()),
        Just("{ cert_file: /nonexistent, key_file: \"\" }".to_string()),
        Just("~".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        "[a-z0-9 ./:-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

/// Keys of the network receivers, old and new.
fn receiver_key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "endpoint",
        "path",
        "max_body_size",
        "max_events_per_request",
        "allowed_cidrs",
        "tls",
        "limits",
        "strict",
        "auth",
        "verify",
        "mapping",
        "unknown_key",
    ])
}

fn limits_key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "max_connections",
        "max_concurrent_requests",
        "header_read_timeout",
        "min_body_rate",
        "idle_timeout",
        "nope",
    ])
}

fn config(
    webhook: Vec<(&'static str, String)>,
    limits: Vec<(&'static str, String)>,
    otlp: Vec<(&'static str, String)>,
    memory_limit: String,
) -> String {
    let mut text = String::from("receivers:\n  webhook:\n    endpoint: 127.0.0.1:0\n");
    for (key, value) in webhook {
        text.push_str(&format!("    {key}: {value}\n"));
    }
    text.push_str("    limits:\n      header_read_timeout: 5s\n");
    for (key, value) in limits {
        text.push_str(&format!("      {key}: {value}\n"));
    }
    text.push_str("  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\n");
    for (key, value) in otlp {
        text.push_str(&format!("        {key}: {value}\n"));
    }
    text.push_str(&format!(
        "exporters:\n  file: {{ path: ./out.ndjson }}\nservice:\n  memory_limit: {memory_limit}\n  pipelines:\n    p: {{ receivers: [webhook, otlp], exporters: [file] }}\n"
    ));
    text
}

fn check(text: &str) -> Result<(), TestCaseError> {
    match load_str(text, "prop.yaml") {
        Ok(_) => Ok(()),
        Err(errors) => {
            prop_assert!(
                !errors.errors.is_empty(),
                "a failed load names at least one error"
            );
            let rendered = errors.to_string();
            prop_assert!(rendered.contains("prop.yaml"), "{rendered}");
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_value_under_any_listener_key_loads_or_is_reported(
        webhook in proptest::collection::vec((receiver_key(), scalar()), 0..5),
        limits in proptest::collection::vec((limits_key(), scalar()), 0..4),
        otlp in proptest::collection::vec((receiver_key(), scalar()), 0..4),
        memory_limit in scalar(),
    ) {
        // Later duplicates of a key make the YAML invalid, which must be reported too.
        check(&config(webhook, limits, otlp, memory_limit))?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        check(&text)?;
    }

    #[test]
    fn yaml_shaped_noise_never_panics(
        lines in proptest::collection::vec(("[ ]{0,6}", "[a-z_./]{1,10}", "[:\\-]", scalar()), 0..12)
    ) {
        let text: String = lines
            .into_iter()
            .map(|(indent, key, sep, value)| format!("{indent}{key}{sep} {value}\n"))
            .collect();
        check(&text)?;
    }
}

#[test]
fn listener_keys_have_their_errors_named() {
    let text = config(
        vec![
            ("max_events_per_request", "0".into()),
            ("allowed_cidrs", "[\"10.0.0.0/33\"]".into()),
        ],
        vec![("max_connections", "0".into())],
        vec![("max_events_per_request", "0".into())],
        "0".into(),
    );
    let errors = load_str(&text, "x.yaml").expect_err("invalid").to_string();
    for key in ["service.memory_limit", "receivers.webhook"] {
        assert!(errors.contains(key), "{key} not named in:\n{errors}");
    }
    assert!(errors.contains("10.0.0.0/33"), "{errors}");
}
