//! Every config in `examples/` passes `siemrelay validate` (with placeholder secrets in the
//! environment), so the examples the README points to cannot rot.

use std::path::{Path, PathBuf};
use std::process::Command;

fn example_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("examples/ exists").flatten() {
        let path = entry.path();
        if path.is_dir() {
            example_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_config_validates() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    example_files(&root.join("examples"), &mut files);
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the example configs, found {files:?}"
    );
    let mut failures = Vec::new();
    for file in &files {
        // Plugin examples need the plugin library built; the plugin tests cover them.
        if file.to_string_lossy().contains("plugin") {
            continue;
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_siemrelay"));
        command
            .args(["validate", "--config"])
            .arg(file)
            .current_dir(&root);
        // Every ${env:NAME} without a default gets a placeholder value.
        let text = std::fs::read_to_string(file).expect("read example");
        for reference in text.split("${env:").skip(1) {
            let name: String = reference
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !reference[name.len()..].starts_with(":-") {
                command.env(&name, "placeholder-secret-value");
            }
        }
        let out = command.output().expect("run siemrelay validate");
        if !out.status.success() {
            failures.push(format!(
                "{}:\n{}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "examples that do not validate:\n{}",
        failures.join("\n")
    );
}
