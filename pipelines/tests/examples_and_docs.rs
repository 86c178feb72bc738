//! What a newcomer copies first is right: every example config validates (given its secrets),
//! binds loopback only, and takes its secrets from the environment without a placeholder
//! default; every processor type has its section in docs/processors.md.

use serde_yaml::Value;
use siemrelay_pipelines::config;
use siemrelay_pipelines::registry::processor_types;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the pipelines crate lives in the repository")
        .to_path_buf()
}

/// Every `*.yaml` under `examples/` (recursively), sorted.
fn example_configs() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read examples/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("examples"), &mut out);
    out.sort();
    assert!(out.len() >= 10, "only {} example configs found", out.len());
    out
}

/// Config keys whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "token",
    "bearer_token",
    "api_key",
    "client_secret",
    "password",
    "secret",
    "secrets",
    "authorization",
];

/// Calls `visit(key path, key, value)` for every mapping entry of `value`, depth first.
fn walk_yaml(value: &Value, path: &str, visit: &mut dyn FnMut(&str, &str, &Value)) {
    match value {
        Value::Mapping(map) => {
            for (key, item) in map {
                let key = key.as_str().unwrap_or_default();
                let child = format!("{path}.{key}");
                visit(&child, key, item);
                walk_yaml(item, &child, visit);
            }
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                walk_yaml(item, &format!("{path}[{index}]"), visit);
            }
        }
        _ => {}
    }
}

fn strings_in(value: &Value) -> Vec<String> {
    match value {
        Value::String(text) => vec![text.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings_in).collect(),
        Value::Mapping(map) => map.values().flat_map(strings_in).collect(),
        _ => Vec::new(),
    }
}

fn parse(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read example");
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Addresses that listen on every interface.
fn binds_everywhere(endpoint: &str) -> bool {
    let host = endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    host.starts_with("0.0.0.0") || host.starts_with("[::]") || host.starts_with(":::")
}

#[test]
fn every_example_listens_on_loopback_only() {
    let mut wrong = Vec::new();
    for path in example_configs() {
        let root = parse(&path);
        walk_yaml(&root, "", &mut |at, key, value| {
            if key == "endpoint"
                && let Some(text) = value.as_str()
                && binds_everywhere(text)
                && (at.starts_with(".receivers") || at.starts_with(".service.admin"))
            {
                wrong.push(format!("{}: {at} = {text}", path.display()));
            }
        });
    }
    // YAML shown in the docs is copied as often as the examples.
    let docs = [
        "README.md",
        "docs/receivers/webhook.md",
        "docs/receivers/otlp.md",
        "docs/receivers/datadog.md",
        "docs/receivers/elasticsearch.md",
    ];
    for doc in docs {
        let text = std::fs::read_to_string(repo().join(doc)).expect("read doc");
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.contains("endpoint:")
                && let Some(value) = line.split("endpoint:").nth(1)
                && binds_everywhere(value.trim().trim_matches(['"', '{', ' ']))
            {
                wrong.push(format!("{doc}:{}: {line}", number + 1));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "examples must bind loopback (127.0.0.1), not every interface:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn examples_take_secrets_from_the_environment_without_a_default() {
    let mut wrong = Vec::new();
    for path in example_configs() {
        let root = parse(&path);
        walk_yaml(&root, "", &mut |at, key, value| {
            if !SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
                return;
            }
            for text in strings_in(value) {
                let from_env_or_file = text.contains("${env:") || text.contains("${file:");
                if !from_env_or_file {
                    wrong.push(format!(
                        "{}: {at} is written in the file; use ${{env:NAME}}",
                        path.display()
                    ));
                } else if text.contains(":-") {
                    wrong.push(format!(
                        "{}: {at} = {text}: a secret must have no default (a placeholder passes `validate`)",
                        path.display()
                    ));
                }
            }
        });
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The `${env:NAME}` references without a default in `text`.
fn required_variables(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for piece in text.split("${env:").skip(1) {
        let Some(reference) = piece.split('}').next() else {
            continue;
        };
        if !reference.contains(":-") {
            names.push(reference.to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_example_is_valid_once_its_variables_are_set() {
    let mut failures = Vec::new();
    for path in example_configs() {
        let text = std::fs::read_to_string(&path).expect("read example");
        if text.contains("plugin/") {
            // Needs the plugin library built; tests/tests/plugin_gelf.rs runs this example.
            continue;
        }
        for name in required_variables(&text) {
            // SAFETY: nextest runs each test in its own process; nothing else reads the
            // environment concurrently here.
            unsafe {
                std::env::set_var(&name, format!("{}-value-0123456789", name.to_lowercase()))
            };
        }
        if let Err(errors) = config::load_file(&path) {
            failures.push(errors.to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_processor_type_has_its_section_in_the_processor_docs() {
    let docs = std::fs::read_to_string(repo().join("docs/processors.md")).expect("read docs");
    let types = processor_types();
    let missing: Vec<&str> = types
        .split(", ")
        .filter(|kind| !docs.lines().any(|l| l.trim() == format!("### {kind}")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/processors.md has no `### <type>` section for {missing:?}"
    );
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("read README");
    for key in ["send_batch_size", "send_batch_max_size", "timeout"] {
        assert!(
            docs.contains(&format!("`{key}`")),
            "docs/processors.md does not document batch's `{key}`"
        );
    }
    assert!(readme.contains("(docs/processors.md)"));
}
