//! The `siemrelay` command line: `validate` output and exit codes, `--version`, `--help`.
//! (Having an integration test here also makes cargo build the binary the e2e tests start.)

use std::process::Command;

fn siemrelay() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siemrelay"))
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn validate_accepts_a_good_file_and_lists_every_error_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.yaml",
        "receivers: { webhook: { endpoint: \"127.0.0.1:18300\", auth: { bearer_token: \"${env:SIEMRELAY_CLI_TOKEN}\" } } }\nexporters: { file: {}, stdout: {} }\nservice: { pipelines: { p: { receivers: [webhook], exporters: [file] } } }\n",
    );
    let out = siemrelay()
        .args(["validate", "--config"])
        .arg(&good)
        .env("SIEMRELAY_CLI_TOKEN", "tok-very-secret-1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(
        stdout.contains("exporters.stdout is defined but not used"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("tok-very-secret-1"),
        "validate printed a secret: {stdout}"
    );

    let bad = write(
        dir.path(),
        "bad.yaml",
        "receivers: { webhook: { endpiont: \"127.0.0.1:18300\" } }\nexporters: { file: { retry: { max_interval: forever } } }\nservice: { pipelines: { p: { receivers: [webhook], exporters: [file, nope] } } }\n",
    );
    let out = siemrelay()
        .args(["validate", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("receivers.webhook.endpiont"), "{stderr}");
    assert!(
        stderr.contains("exporters.file.retry.max_interval"),
        "{stderr}"
    );
    assert!(
        stderr.contains("service.pipelines.p.exporters[1]"),
        "{stderr}"
    );
    assert!(stderr.contains("bad.yaml"), "the file is named: {stderr}");
}

#[test]
fn validate_reports_an_unset_variable_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "env.yaml",
        "receivers: { webhook: { auth: { bearer_token: \"${env:SIEMRELAY_CLI_UNSET_VAR}\" } } }\nexporters: { file: {} }\nservice: { pipelines: { p: { receivers: [webhook], exporters: [file] } } }\n",
    );
    let out = siemrelay()
        .args(["validate", "--config"])
        .arg(&path)
        .env_remove("SIEMRELAY_CLI_UNSET_VAR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("receivers.webhook.auth.bearer_token"),
        "{stderr}"
    );
    assert!(
        stderr.contains("SIEMRELAY_CLI_UNSET_VAR is not set"),
        "{stderr}"
    );
}

#[test]
fn version_and_help_with_examples() {
    let out = siemrelay().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("siemrelay "));
    let out = siemrelay().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Examples:") && help.contains("siemrelay validate --config"),
        "{help}"
    );
}
