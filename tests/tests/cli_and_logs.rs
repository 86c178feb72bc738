//! What a newcomer reads first, with the real binary: `--help` says what siemrelay is, required
//! arguments look required, `--log-format` is explained once, and log values read as an operator
//! would write them (`address=127.0.0.1:8088`, not `address=Some(127.0.0.1:8088)`).

use siemrelay_e2e::{Siemrelay, free_port, run_cli};
use std::net::SocketAddr;
use std::time::Duration;

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn help(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run_cli(args, dir.path());
    assert!(output.status.success(), "{args:?}: {}", text(&output));
    text(&output)
}

#[test]
fn help_starts_with_what_siemrelay_is_and_explains_the_log_format_once() {
    let top = help(&["--help"]);
    let first = top.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("siemrelay forwards security events"),
        "the help starts with {first:?}"
    );
    assert!(
        !top.contains("config loading and validation"),
        "the crate description leaks into --help:\n{top}"
    );
    assert_eq!(
        top.matches("--log-format").count(),
        1,
        "--log-format is explained once at the top:\n{top}"
    );
    for command in [
        &["run", "--help"][..],
        &["validate", "--help"],
        &["test", "--help"],
        &["status", "--help"],
        &["dlq", "replay", "--help"],
        &["verify", "--help"],
    ] {
        let text = help(command);
        assert!(
            !text.contains("--log-format"),
            "{command:?} repeats the --log-format block:\n{text}"
        );
    }
}

#[test]
fn the_exporter_id_is_shown_as_required_and_both_spellings_work() {
    for command in [
        &["test", "--help"][..],
        &["dlq", "list", "--help"],
        &["dlq", "replay", "--help"],
        &["dlq", "purge", "--help"],
    ] {
        let text = help(command);
        assert!(
            text.contains("<EXPORTER_ID>") && !text.contains("[EXPORTER"),
            "{command:?} shows the exporter id as optional:\n{text}"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("siemrelay.yaml");
    std::fs::write(
        &config,
        "receivers: { webhook: { endpoint: \"127.0.0.1:1\" } }\nexporters: { file: {} }\n\
         service: { pipelines: { p: { receivers: [webhook], exporters: [file] } } }\n",
    )
    .expect("write config");
    let config = config.display().to_string();
    for args in [
        vec!["test", "nope", "--config", &config],
        vec!["test", "--exporter", "nope", "--config", &config],
        vec!["test", "--config", &config, "--exporter=nope"],
    ] {
        let output = run_cli(&args, dir.path());
        let said = text(&output);
        assert!(
            !output.status.success() && said.contains("no exporter \"nope\""),
            "{args:?}: {said}"
        );
    }
    let output = run_cli(&["test", "--config", &config], dir.path());
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("<EXPORTER_ID>"));
}

/// The logs without terminal colour codes.
fn plain(logs: &str) -> String {
    let mut out = String::with_capacity(logs.len());
    let mut chars = logs.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn log_values_read_as_an_operator_writes_them() {
    let (webhook, admin) = (free_port(), free_port());
    let yaml = format!(
        r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook}" }}
exporters:
  file: {{ path: "./out/events.ndjson" }}
service:
  shutdown_timeout: 5s
  admin: {{ endpoint: "127.0.0.1:{admin}" }}
  pipelines:
    security: {{ receivers: [webhook], exporters: [file] }}
    audit: {{ receivers: [webhook], exporters: [file] }}
"#
    );
    let mut relay = Siemrelay::start(&yaml);
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], webhook)));
    relay.wait_ready(SocketAddr::from(([127, 0, 0, 1], admin)));
    let status = relay.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{}", relay.logs());
    let logs = plain(&relay.logs());
    assert!(
        logs.contains(&format!("address=127.0.0.1:{webhook}")),
        "the listening address is not written plainly:\n{logs}"
    );
    assert!(
        logs.contains("pipelines=security,audit"),
        "lists are not written as an operator writes them:\n{logs}"
    );
    for debug_form in ["Some(", "=None", "=[\"", "=\"", "signal=\""] {
        assert!(
            !logs.contains(debug_form),
            "a log value is printed in Rust debug form ({debug_form}):\n{logs}"
        );
    }
}
