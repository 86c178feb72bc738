//! Issue 26: the README's "Deploying" blocks are what the test command checks. A YAML block
//! headed `# excerpt of FILE` is a verbatim excerpt of that (validated) manifest; every path a
//! shell block names exists; image tags are this version; the `podman run` mounts and ports are
//! the image's volume, config path and exposed ports; the systemd block installs the config
//! where the unit reads it and the unit where systemd looks.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fenced blocks of the README's `## Deploying` section: (language, text).
fn deploying_blocks() -> Vec<(String, String)> {
    let readme = read("README.md");
    let start = readme
        .find("\n## Deploying\n")
        .expect("README has a `## Deploying` section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let section = &rest[..end];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(language) = line.strip_prefix("```") {
            let mut text = String::new();
            for line in lines.by_ref() {
                if line.starts_with("```") {
                    break;
                }
                text.push_str(line);
                text.push('\n');
            }
            blocks.push((language.to_string(), text));
        }
    }
    blocks
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Whether `excerpt`'s lines appear consecutively in `file`, all shifted by one indentation.
fn contains_excerpt(file: &str, excerpt: &[&str]) -> bool {
    let lines: Vec<&str> = file.lines().collect();
    let first = excerpt[0];
    (0..lines.len()).any(|start| {
        let candidate = lines[start];
        if candidate.trim_start() != first.trim_start() || indent(candidate) < indent(first) {
            return false;
        }
        let shift = " ".repeat(indent(candidate) - indent(first));
        excerpt.iter().enumerate().all(|(i, line)| {
            lines.get(start + i).is_some_and(|l| {
                if line.trim().is_empty() {
                    l.trim().is_empty()
                } else {
                    *l == format!("{shift}{line}")
                }
            })
        })
    })
}

#[test]
fn yaml_blocks_are_verbatim_excerpts_of_the_checked_manifests() {
    let mut checked = 0;
    for (language, text) in deploying_blocks() {
        if language != "yaml" {
            continue;
        }
        let mut lines: Vec<&str> = text.lines().collect();
        let header = lines.remove(0);
        let path = header
            .strip_prefix("# excerpt of ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| {
                panic!("a Deploying YAML block must start with `# excerpt of FILE`: {header}")
            });
        assert!(path.starts_with("deploy/"), "{path}");
        assert!(
            contains_excerpt(&read(path), &lines),
            "the README block is not an excerpt of {path} (copy it again):\n{text}"
        );
        checked += 1;
    }
    assert!(checked >= 1, "no YAML excerpt checked");
}

#[test]
fn shell_blocks_name_files_that_exist_and_this_version() {
    let version = env!("CARGO_PKG_VERSION");
    let mut paths = 0;
    for (language, text) in deploying_blocks() {
        if language != "sh" {
            continue;
        }
        for word in text.split_whitespace() {
            let word = word.trim_matches(|c| c == '\\' || c == '"' || c == '\'');
            if word.starts_with("deploy/") || word.starts_with("scripts/") {
                assert!(
                    repo().join(word).exists(),
                    "the README names {word}, which does not exist"
                );
                paths += 1;
            }
            if let Some((_, tag)) = word.split_once("siemrelay:")
                && word.contains('/')
                && !word.starts_with('/')
            {
                assert_eq!(tag, version, "image tag in {word}");
            }
        }
    }
    assert!(paths >= 5, "paths checked: {paths}");
}

#[test]
fn the_podman_run_lines_use_the_images_volume_config_path_and_ports() {
    let containerfile = read("Containerfile");
    let blocks = deploying_blocks();
    let text = blocks
        .iter()
        .find(|(_, text)| text.contains("podman run"))
        .map(|(_, text)| text.replace("\\\n", " "))
        .expect("a podman run block");
    let mut runs = 0;
    for line in text.lines().filter(|l| l.contains("podman run")) {
        runs += 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            match pair[0] {
                "-v" => {
                    let inside = pair[1].split(':').nth(1).expect("volume target");
                    assert!(
                        containerfile.contains(&format!("VOLUME [\"{inside}\"]"))
                            || containerfile.contains(&format!("\"--config\", \"{inside}\"")),
                        "-v {}: {inside} is neither the image's volume nor its config path",
                        pair[1]
                    );
                }
                "-p" => {
                    let port = pair[1].rsplit(':').next().expect("port");
                    assert!(
                        containerfile
                            .lines()
                            .any(|l| l.starts_with("EXPOSE") && l.contains(&format!("{port}/tcp"))),
                        "-p {}: the image does not expose {port}",
                        pair[1]
                    );
                }
                _ => {}
            }
        }
    }
    assert!(runs >= 2, "podman run lines: {runs}");
    // The default pipeline's webhook is the published port.
    assert!(read("deploy/container/siemrelay.yaml").contains("endpoint: 0.0.0.0:8088"));
}

#[test]
fn the_systemd_block_installs_what_the_unit_runs() {
    let unit = read("deploy/systemd/siemrelay.service");
    let blocks = deploying_blocks();
    let text = blocks
        .iter()
        .find(|(_, text)| text.contains("systemctl"))
        .map(|(_, text)| text.clone())
        .expect("a systemd block");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = exec.split_whitespace();
    let binary = words.next().expect("binary");
    let config = exec
        .split("--config ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("--config in ExecStart");
    let installs: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("install "))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            Some((words[words.len() - 2], *words.last()?))
        })
        .collect();
    for (wanted, what) in [
        (binary, "the binary ExecStart runs"),
        (config, "the config ExecStart reads"),
        ("/etc/systemd/system/siemrelay.service", "the unit"),
    ] {
        assert!(
            installs.iter().any(|(_, target)| *target == wanted),
            "the README's systemd block does not install {what} at {wanted}: {installs:?}"
        );
    }
    assert!(
        installs
            .iter()
            .any(|(source, _)| *source == "deploy/systemd/siemrelay.yaml"),
        "{installs:?}"
    );
}
