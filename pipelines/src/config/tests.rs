//! Validation: every error kind, each with its exact key path.

use super::*;
use crate::registry;

fn errors_of(yaml: &str) -> Vec<ConfigError> {
    match load_str(yaml, "test.yaml") {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(errors) => errors.errors,
    }
}

fn has(errors: &[ConfigError], path: &str, needle: &str) -> bool {
    errors
        .iter()
        .any(|e| e.path == path && e.message.contains(needle))
}

const GOOD: &str = r#"
receivers:
  webhook: { endpoint: "127.0.0.1:18088" }
exporters:
  file: { path: "./out-%Y-%m-%d.ndjson" }
service:
  pipelines:
    security: { receivers: [webhook], processors: [], exporters: [file] }
"#;

#[test]
fn the_default_and_a_minimal_config_are_valid() {
    let loaded = load_str(DEFAULT_CONFIG, "<default>").unwrap();
    assert_eq!(loaded.receivers[0].0.id, "webhook");
    assert_eq!(loaded.exporters[0].0.id, "file");
    let loaded = load_str(GOOD, "good.yaml").unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.service.shutdown_timeout.0, Duration::from_secs(30));
}

#[test]
fn unknown_keys_are_named_with_their_full_path() {
    let errors = errors_of(&GOOD.replace("endpoint:", "endpiont:"));
    assert!(
        has(&errors, "receivers.webhook.endpiont", "unknown field"),
        "{errors:?}"
    );
    let errors = errors_of(&GOOD.replace(
        "exporters:\n  file: { path",
        "exporters:\n  file: { retry: { initial_intervall: 1s }, path",
    ));
    assert!(
        has(
            &errors,
            "exporters.file.retry.initial_intervall",
            "unknown field"
        ),
        "{errors:?}"
    );
    let errors = errors_of(&format!("{GOOD}\nextensions: {{}}\n"));
    assert!(
        has(&errors, "extensions", "unknown top-level key"),
        "{errors:?}"
    );
    let errors = errors_of(&GOOD.replace("pipelines:", "shutdown_timout: 5s\n  pipelines:"));
    assert!(
        has(&errors, "service.shutdown_timout", "unknown field"),
        "{errors:?}"
    );
}

#[test]
fn unknown_types_and_undefined_references() {
    let errors = errors_of(&GOOD.replace("  file: {", "  splunk/prod: {}\n  file: {"));
    assert!(
        has(
            &errors,
            "exporters.splunk/prod",
            "unknown exporter type `splunk`"
        ),
        "{errors:?}"
    );
    let errors = errors_of(&GOOD.replace("exporters: [file]", "exporters: [file, stdout]"));
    assert!(
        has(
            &errors,
            "service.pipelines.security.exporters[1]",
            "stdout is not defined"
        ),
        "{errors:?}"
    );
    let errors = errors_of(&GOOD.replace("processors: []", "processors: [filter/x]"));
    assert!(
        has(
            &errors,
            "service.pipelines.security.processors[0]",
            "filter/x is not defined"
        ),
        "{errors:?}"
    );
    let errors = errors_of(&GOOD.replace("  webhook:", "  web hook:"));
    assert!(
        has(&errors, "receivers.web hook", "invalid component id"),
        "{errors:?}"
    );
}

#[test]
fn pipelines_need_a_receiver_and_an_exporter() {
    let errors = errors_of(
        &GOOD
            .replace("receivers: [webhook]", "receivers: []")
            .replace("exporters: [file]", "exporters: []"),
    );
    assert!(
        has(
            &errors,
            "service.pipelines.security.receivers",
            "at least one receiver"
        ),
        "{errors:?}"
    );
    assert!(
        has(
            &errors,
            "service.pipelines.security.exporters",
            "at least one exporter"
        ),
        "{errors:?}"
    );
    let errors = errors_of("receivers: {}\nexporters: {}\nservice: { pipelines: {} }\n");
    assert!(
        has(&errors, "service.pipelines", "no pipeline"),
        "{errors:?}"
    );
}

#[test]
fn bad_ports_durations_and_sizes() {
    let errors = errors_of(&GOOD.replace("127.0.0.1:18088", "127.0.0.1:70000"));
    assert!(
        has(&errors, "receivers.webhook.endpoint", "out of range"),
        "{errors:?}"
    );
    let errors = errors_of(&GOOD.replace(
        "path: \"./out",
        "retry: { max_interval: 5 parsecs }, path: \"./out",
    ));
    assert!(
        has(
            &errors,
            "exporters.file.retry.max_interval",
            "invalid duration"
        ),
        "{errors:?}"
    );
    let errors =
        errors_of(&GOOD.replace("path: \"./out", "queue: { max_size: lots }, path: \"./out"));
    assert!(
        has(&errors, "exporters.file.queue.max_size", "invalid size"),
        "{errors:?}"
    );
    let errors = errors_of(&GOOD.replace("pipelines:", "shutdown_timeout: soon\n  pipelines:"));
    assert!(
        has(&errors, "service.shutdown_timeout", "invalid duration"),
        "{errors:?}"
    );
}

#[test]
fn every_error_is_listed_not_just_the_first() {
    let yaml = GOOD
        .replace("endpoint:", "endpiont:")
        .replace(
            "path: \"./out",
            "retry: { max_interval: never }, path: \"./out",
        )
        .replace("exporters: [file]", "exporters: [file, nope]");
    let errors = errors_of(&yaml);
    assert!(errors.len() >= 3, "{errors:?}");
}

#[test]
fn every_error_of_a_block_and_the_references_behind_an_invalid_service_are_listed() {
    // The round trip of the issue: four rounds of fixes to see all of these.
    let yaml = r#"
receivers:
  webhook: { endpoint: "127.0.0.1:18088", max_body_size: lots, pathh: /x }
processors:
  batch: { timeout: 5, send_batch_size: many }
exporters:
  file: { path: "./out-%Y-%m-%d.ndjson", fsync: sometimes, sending: { timeout: 5 }, queue: { max_size: 10.5 } }
service:
  shutdown_timeout: forever
  pipelines:
    security: { receivers: [webhook, otlp], processors: [batch], exporters: [file, splunk_hec/prod] }
"#;
    let errors = errors_of(yaml);
    for (path, needle) in [
        ("receivers.webhook.pathh", "unknown field"),
        ("processors.batch.timeout", "write 5s"),
        ("processors.batch.send_batch_size", "invalid type"),
        ("exporters.file.fsync", "unknown variant"),
        ("exporters.file.sending.timeout", "write 5s"),
        ("exporters.file.queue.max_size", "10MiB"),
        ("service.shutdown_timeout", "invalid duration"),
        (
            "service.pipelines.security.receivers[1]",
            "otlp is not defined",
        ),
        (
            "service.pipelines.security.exporters[1]",
            "splunk_hec/prod is not defined",
        ),
    ] {
        assert!(has(&errors, path, needle), "{path}: {needle}: {errors:#?}");
    }
}

#[test]
fn a_service_that_cannot_be_read_still_gets_its_references_checked() {
    let yaml = GOOD
        .replace("service:", "service:\n  admin: [1]\n  storage: 3")
        .replace("exporters: [file]", "exporters: [file, nope]");
    let errors = errors_of(&yaml);
    assert!(has(&errors, "service.admin", "invalid type"), "{errors:#?}");
    assert!(
        has(&errors, "service.storage", "invalid type"),
        "{errors:#?}"
    );
    assert!(
        has(
            &errors,
            "service.pipelines.security.exporters[1]",
            "nope is not defined"
        ),
        "{errors:#?}"
    );
}

#[test]
fn an_unset_secret_gets_no_default_hint_and_a_default_path_is_shown() {
    // SAFETY: this test process is the only user of this variable name.
    unsafe { std::env::remove_var("SIEMRELAY_TEST_UNSET_SECRET") };
    let yaml = GOOD.replace(
        "  webhook: { endpoint: \"127.0.0.1:18088\" }",
        "  webhook: { endpoint: \"127.0.0.1:18088\", auth: { bearer_token: \"${env:SIEMRELAY_TEST_UNSET_SECRET}\" } }",
    );
    let errors = errors_of(&yaml);
    let error = errors
        .iter()
        .find(|e| e.path == "receivers.webhook.auth.bearer_token")
        .unwrap_or_else(|| panic!("{errors:#?}"));
    assert!(
        error
            .message
            .contains("SIEMRELAY_TEST_UNSET_SECRET is not set")
            && !error.message.contains(":-"),
        "{}",
        error.message
    );
    let yaml = GOOD.replace(
        "  file: { path: \"./out-%Y-%m-%d.ndjson\" }",
        "  file: { path: \"./out-%Y-%m-%d.ndjson\" }\n  plugin/x: { library: \"${env:SIEMRELAY_TEST_UNSET_SECRET:-./no/such/libx.so}\" }",
    ).replace("exporters: [file]", "exporters: [file, plugin/x]");
    let errors = errors_of(&yaml);
    assert!(
        errors
            .iter()
            .any(|e| e.path.starts_with("exporters.plugin/x")
                && e.message.contains("./no/such/libx.so")),
        "a missing plugin library names its path: {errors:#?}"
    );
}

#[test]
fn unused_components_are_warnings() {
    let loaded = load_str(
        &GOOD.replace("  file: {", "  stdout: {}\n  file: {"),
        "x.yaml",
    )
    .unwrap();
    assert_eq!(
        loaded.warnings,
        vec!["exporters.stdout is defined but not used by any pipeline".to_string()]
    );
}

#[test]
fn env_and_file_expansion_with_the_unset_variable_error() {
    // SAFETY: variable names unique to this test.
    unsafe {
        std::env::set_var("SIEMRELAY_CFG_TEST_PORT_ADDR", "127.0.0.1:18123");
        std::env::remove_var("SIEMRELAY_CFG_TEST_MISSING");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("path.txt");
    std::fs::write(&file, "./from-file.ndjson\n").unwrap();
    let yaml = GOOD
        .replace(
            "\"127.0.0.1:18088\"",
            "\"${env:SIEMRELAY_CFG_TEST_PORT_ADDR}\"",
        )
        .replace(
            "\"./out-%Y-%m-%d.ndjson\"",
            &format!("\"${{file:{}}}\"", file.display()),
        );
    let loaded = load_str(&yaml, "x.yaml").unwrap();
    let webhook = loaded.receivers[0]
        .1
        .config_as::<siemrelay_receivers::webhook::WebhookConfig>()
        .expect("a webhook receiver");
    assert!(format!("{webhook:?}").contains("18123"), "{webhook:?}");
    let yaml = GOOD.replace(
        "\"127.0.0.1:18088\"",
        "\"${env:SIEMRELAY_CFG_TEST_MISSING}\"",
    );
    let errors = errors_of(&yaml);
    assert!(
        has(
            &errors,
            "receivers.webhook.endpoint",
            "SIEMRELAY_CFG_TEST_MISSING is not set"
        ),
        "{errors:?}"
    );
    let yaml = GOOD.replace(
        "\"127.0.0.1:18088\"",
        "\"${env:SIEMRELAY_CFG_TEST_MISSING:-127.0.0.1:18124}\"",
    );
    assert!(load_str(&yaml, "x.yaml").is_ok());
}

#[test]
fn secrets_from_the_environment_never_appear_in_errors() {
    unsafe {
        std::env::set_var("SIEMRELAY_CFG_TEST_SECRET", "super-secret-token-value");
    }
    // A secret put where a port belongs: the error must not echo it.
    let yaml = GOOD.replace(
        "\"127.0.0.1:18088\"",
        "\"${env:SIEMRELAY_CFG_TEST_SECRET}\"",
    );
    let errors = load_str(&yaml, "x.yaml").unwrap_err();
    let text = errors.to_string();
    assert!(text.contains("receivers.webhook.endpoint"), "{text}");
    assert!(!text.contains("super-secret-token-value"), "{text}");
}

#[test]
fn yaml_syntax_errors_name_the_position() {
    let errors = errors_of("receivers: [unclosed\n");
    assert!(errors[0].message.contains("line"), "{errors:?}");
}

#[test]
fn numeric_and_boolean_settings_can_come_from_the_environment() {
    // SAFETY: variable names unique to this test.
    unsafe {
        std::env::set_var("SIEMRELAY_CFG_TEST_QUEUE_MAX", "4321");
        std::env::set_var("SIEMRELAY_CFG_TEST_NOT_A_NUMBER", "lots");
    }
    let yaml = GOOD.replace(
        "path: \"./out-%Y-%m-%d.ndjson\"",
        "path: \"./out.ndjson\", queue: { max_events: \"${env:SIEMRELAY_CFG_TEST_QUEUE_MAX}\" }",
    );
    let loaded = load_str(&yaml, "x.yaml").unwrap();
    assert_eq!(loaded.exporters[0].1.delivery.queue.max_events, 4321);
    let yaml = yaml.replace(
        "SIEMRELAY_CFG_TEST_QUEUE_MAX",
        "SIEMRELAY_CFG_TEST_NOT_A_NUMBER",
    );
    let errors = errors_of(&yaml);
    assert!(
        has(
            &errors,
            "exporters.file.queue.max_events",
            "invalid type: string"
        ),
        "{errors:?}"
    );
}

const CLOUDWATCH: &str = r#"
receivers:
  webhook: { endpoint: "127.0.0.1:18088" }
exporters:
  cloudwatch_logs:
    region: eu-west-1
    log_group: /security/siemrelay
    tls: { insecure_skip_verify: false }
service:
  pipelines:
    security: { receivers: [webhook], exporters: [cloudwatch_logs] }
"#;

#[test]
fn shared_keys_an_exporter_cannot_honour_are_errors_naming_the_key() {
    // `tls` is honoured.
    load_str(CLOUDWATCH, "cw.yaml").unwrap();
    let errors = errors_of(&CLOUDWATCH.replace(
        "    tls:",
        "    compression: gzip\n    signing: { secret: k }\n    tls:",
    ));
    assert!(
        has(
            &errors,
            "exporters.cloudwatch_logs.compression",
            "cannot send compressed bodies"
        ),
        "{errors:?}"
    );
    assert!(
        has(
            &errors,
            "exporters.cloudwatch_logs.signing",
            "cannot add a payload signature"
        ),
        "{errors:?}"
    );
    // Not an HTTP exporter: the key is simply not one of its own.
    let errors = errors_of(&GOOD.replace("file: { path", "file: { compression: gzip, path"));
    assert!(
        has(&errors, "exporters.file.compression", "unknown field"),
        "{errors:?}"
    );
}

#[test]
fn every_type_comes_from_the_factory_lists() {
    let lists = [
        registry::receiver_types(),
        registry::processor_types(),
        registry::exporter_types(),
    ];
    for list in &lists {
        let names: Vec<&str> = list.split(", ").collect();
        let unique: std::collections::HashSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "a type is listed twice: {list}");
    }
    assert!(lists[2].contains("splunk_hec") && lists[2].contains("cloudwatch_logs"));
    let errors = errors_of(
        &GOOD
            .replace("file: { path", "nope: { path")
            .replace("exporters: [file]", "exporters: [nope]"),
    );
    assert!(
        has(
            &errors,
            "exporters.nope",
            &format!("known types: {}", lists[2])
        ),
        "{errors:?}"
    );
}

const SHARED_EXPORTER: &str = r#"
receivers:
  webhook: { endpoint: "127.0.0.1:18088" }
processors:
  batch/small: { send_batch_size: 100, timeout: 1s }
  batch/large: { send_batch_size: 5000 }
exporters:
  file: { path: "./out-%Y-%m-%d.ndjson" }
service:
  pipelines:
    first: { receivers: [webhook], processors: [batch/small], exporters: [file] }
    second: { receivers: [webhook], processors: [batch/large], exporters: [file] }
"#;

#[test]
fn batch_settings_are_exporter_settings_lifted_from_batch_processors() {
    let yaml = SHARED_EXPORTER.replace(
        "batch/large: { send_batch_size: 5000 }",
        "batch/large: { send_batch_size: 100, timeout: 1000ms }",
    );
    let loaded = load_str(&yaml, "x.yaml").unwrap();
    let sending = &loaded.exporter("file").unwrap().1.delivery.sending;
    assert_eq!(sending.batch_size, Some(100));
    assert_eq!(sending.batch_max_size, Some(0));
    assert_eq!(
        sending.batch_timeout.map(|t| t.0),
        Some(Duration::from_secs(1))
    );
    // The exporter's own keys, without any batch processor.
    let loaded = load_str(
        &GOOD.replace(
            "file: { path",
            "file: { sending: { batch_size: 10, batch_timeout: 50ms }, path",
        ),
        "x.yaml",
    )
    .unwrap();
    let policy = loaded
        .exporter("file")
        .unwrap()
        .1
        .delivery
        .sending
        .batch_policy();
    assert_eq!(
        (policy.min_events, policy.max_events, policy.linger),
        (10, 0, Duration::from_millis(50))
    );
    let errors = errors_of(&GOOD.replace(
        "file: { path",
        "file: { sending: { batch_size: 0, batch_max_size: 5 }, path",
    ));
    assert!(
        has(&errors, "exporters.file.sending.batch_size", "at least 1"),
        "{errors:?}"
    );
    let errors = errors_of(&GOOD.replace(
        "file: { path",
        "file: { sending: { batch_size: 10, batch_max_size: 5 }, path",
    ));
    assert!(
        has(
            &errors,
            "exporters.file.sending.batch_max_size",
            "at least sending.batch_size"
        ),
        "{errors:?}"
    );
}

#[test]
fn two_pipelines_giving_one_exporter_different_batch_settings_is_an_error_naming_both() {
    let errors = errors_of(SHARED_EXPORTER);
    let error = errors
        .iter()
        .find(|e| e.path == "service.pipelines.second.processors[0]")
        .unwrap_or_else(|| panic!("{errors:?}"));
    for needle in [
        "exporter file",
        "pipeline second (processor batch/large)",
        "pipeline first (processor batch/small)",
        "batch_size 5000",
        "batch_size 100",
    ] {
        assert!(
            error.message.contains(needle),
            "{needle}: {}",
            error.message
        );
    }
    // The exporter's own setting against a pipeline's batch processor.
    let errors = errors_of(
        &SHARED_EXPORTER
            .replace(
                "file: { path",
                "file: { sending: { batch_size: 100, batch_timeout: 1s }, path",
            )
            .replace("processors: [batch/small], ", ""),
    );
    assert!(
        has(
            &errors,
            "service.pipelines.second.processors[0]",
            "but (batch_size 100, batch_max_size 0, batch_timeout 1s) from exporters.file.sending"
        ),
        "{errors:?}"
    );
}
