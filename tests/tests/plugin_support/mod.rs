//! Building plugin libraries for the plugin tests: Rust SDK plugins with `cargo build -p`, C
//! plugins from `tests/plugins/<name>/plugin.c` with `cc`; and talking to the webhook receiver.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
}

/// Builds a workspace plugin package once per test binary and returns `lib<lib_name>.so`.
/// (`cargo test` does not build the cdylib of a package that no test target depends on.)
pub fn cargo_plugin(package: &str, lib_name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.get(package) {
        return path.clone();
    }
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("target dir");
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args(["build", "-p", package, "--target-dir"])
        .arg(target_dir)
        .current_dir(repo());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    let status = command.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p {package} failed");
    let path = profile_dir.join(format!("lib{lib_name}.so"));
    assert!(path.exists(), "{} was not built", path.display());
    built.insert(package.to_string(), path.clone());
    path
}

/// `target/<profile>/libsiemrelay_gelf.so`, built if needed.
pub fn gelf_plugin() -> PathBuf {
    cargo_plugin("siemrelay-gelf", "siemrelay_gelf")
}

/// `target/<profile>/libsiemrelay_plugin_testkit.so`, built if needed.
pub fn testkit_plugin() -> PathBuf {
    cargo_plugin("siemrelay-plugin-testkit", "siemrelay_plugin_testkit")
}

/// Compiles `tests/plugins/<name>/plugin.c` against the plugin header into `<dir>/lib<name>.so`.
pub fn c_plugin(name: &str, dir: &Path) -> PathBuf {
    let out = dir.join(format!("lib{name}.so"));
    let output = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c11", "-Wall", "-Werror", "-shared", "-fPIC", "-I"])
        .arg(repo().join("plugin-sdk/include"))
        .arg(repo().join(format!("tests/plugins/{name}/plugin.c")))
        .arg("-o")
        .arg(&out)
        .output()
        .expect(
            "run the C compiler `cc` (install gcc: it is in tests/apt-packages.txt, or set CC)",
        );
    assert!(
        output.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// One NDJSON event for the webhook receiver.
pub fn event_line(id: &str, summary: &str) -> String {
    format!(
        "{{\"event_id\":\"{id}\",\"timestamp\":\"2026-11-20T09:00:00.250Z\",\"event_type\":\"policy_violation\",\"severity\":\"high\",\"source\":\"toktra\",\"summary\":\"{summary}\",\"user\":{{\"email\":\"ann@example.com\"}},\"blocked\":true}}\n"
    )
}

/// Posts `requests` bodies of `per_request` events each (summary `event <n>`); returns the ids.
pub async fn post_events(port: u16, requests: usize, per_request: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut ids = Vec::new();
    for r in 0..requests {
        let mut body = String::new();
        for i in 0..per_request {
            let id = uuid::Uuid::new_v4().to_string();
            body.push_str(&event_line(&id, &format!("event {r}-{i}")));
            ids.push(id);
        }
        bodies.push(body);
    }
    siemrelay_e2e::post_ndjson_bodies(port, bodies).await;
    ids
}

/// Reads a dead-letter file (possibly still being written), waiting until it has `n` lines.
pub async fn wait_dead_letters(
    path: &Path,
    n: usize,
    timeout: std::time::Duration,
) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("dead-letter line is JSON"))
            .collect();
        if lines.len() >= n || tokio::time::Instant::now() >= deadline {
            return lines;
        }
        // Another process writes the file: poll it.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `config` with `service.plugins.directory` set to the directory of its `library:` (plugins
/// load only from that directory).
pub fn in_plugins_dir(config: &str) -> String {
    let library = config
        .lines()
        .find_map(|line| line.trim().strip_prefix("library: \""))
        .and_then(|rest| rest.split_once('"'))
        .map(|(path, _)| PathBuf::from(path))
        .expect("the config names a plugin library");
    let directory = library.parent().expect("the library's directory");
    config.replacen(
        "\nservice:\n",
        &format!(
            "\nservice:\n  plugins: {{ directory: \"{}\" }}\n",
            directory.display()
        ),
        1,
    )
}
