//! Issue 26: a binary that introduces itself. `siemrelay --version` names the version, the git
//! commit, the build and what is compiled in; `siemrelay completions bash|zsh|fish` prints
//! scripts that the real shells parse and complete with; `siemrelay man` prints a man page that
//! `man` renders, and `man --dir` writes one page per command.

use siemrelay_e2e::run_cli;
use std::path::Path;
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
}

fn cli(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run_cli(args, dir.path());
    assert!(
        output.status.success(),
        "siemrelay {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// The value of a `key:   value` line of `--version`.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{key}:` line in:\n{text}"))
}

fn shell_exists(shell: &str) -> bool {
    Command::new(shell)
        .args(["-c", "exit 0"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn require_shell(shell: &str) {
    assert!(
        shell_exists(shell),
        "{shell} is not installed: run `bash scripts/setup-test-env.sh` (tests/apt-packages.txt lists it)"
    );
}

#[test]
fn version_names_version_commit_build_components_and_features() {
    let text = stdout(&cli(&["--version"]));
    let first = text.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!("siemrelay {}", env!("CARGO_PKG_VERSION")),
        "{text}"
    );

    let commit = field(&text, "commit");
    assert!(
        commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "commit {commit:?} should be 12 hex digits:\n{text}"
    );
    // It names a commit of this repository (where git and the history are at hand).
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(repo())
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if git(&["rev-parse", "--git-dir"]) {
        assert!(
            git(&["cat-file", "-e", &format!("{commit}^{{commit}}")]),
            "{commit} is not a commit of this repository"
        );
    }

    let build = field(&text, "build");
    assert!(
        build.contains("x86_64") || build.contains("aarch64"),
        "{build}"
    );
    assert!(build.contains("rustc "), "{build}");
    let receivers = field(&text, "receivers");
    assert!(
        receivers.starts_with("webhook, otlp, file, kafka"),
        "{text}"
    );
    for receiver in ["datadog", "elasticsearch", "splunk_hec", "syslog"] {
        assert!(receivers.contains(receiver), "{receiver}: {text}");
    }
    assert_eq!(
        field(&text, "processors"),
        "filter, enrich, batch, sign",
        "{text}"
    );
    let exporters = field(&text, "exporters");
    for exporter in [
        "splunk_hec",
        "datadog",
        "elasticsearch",
        "cloudwatch_logs",
        "sentinel",
        "qradar",
        "webhook",
        "kafka",
        "plugin",
    ] {
        assert!(exporters.contains(exporter), "{exporter}: {exporters}");
    }
    let features = field(&text, "features");
    assert!(features.contains("plugins (dlopen, ABI 1)"), "{features}");
    assert!(features.contains("librdkafka 2."), "{features}");

    let short = stdout(&cli(&["-V"]));
    assert_eq!(
        short.trim(),
        format!("siemrelay {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bash_completion_parses_and_completes_subcommands_and_shells() {
    require_shell("bash");
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("siemrelay.bash");
    std::fs::write(&script, cli(&["completions", "bash"]).stdout).expect("write");
    let parse = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash -n");
    assert!(
        parse.status.success(),
        "{}",
        String::from_utf8_lossy(&parse.stderr)
    );
    let complete = |words: &str, cword: usize| -> String {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; \
             _siemrelay siemrelay \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
             echo \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let output = Command::new("bash")
            .args(["-c", &program])
            .output()
            .expect("bash");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    assert_eq!(complete("siemrelay val", 1), "validate");
    let shells = complete("siemrelay completions ''", 2);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.split(' ').any(|w| w == shell), "{shells}");
    }
}

#[test]
fn zsh_and_fish_completions_parse_in_the_real_shells() {
    require_shell("zsh");
    require_shell("fish");
    let dir = tempfile::tempdir().expect("tempdir");
    let zsh = dir.path().join("_siemrelay");
    let zsh_script = cli(&["completions", "zsh"]).stdout;
    assert!(zsh_script.starts_with(b"#compdef siemrelay"));
    std::fs::write(&zsh, zsh_script).expect("write");
    let parse = Command::new("zsh")
        .arg("-n")
        .arg(&zsh)
        .output()
        .expect("zsh -n");
    assert!(
        parse.status.success(),
        "{}",
        String::from_utf8_lossy(&parse.stderr)
    );

    let fish = dir.path().join("siemrelay.fish");
    std::fs::write(&fish, cli(&["completions", "fish"]).stdout).expect("write");
    let parse = Command::new("fish")
        .arg("--no-execute")
        .arg(&fish)
        .output()
        .expect("fish --no-execute");
    assert!(
        parse.status.success(),
        "{}",
        String::from_utf8_lossy(&parse.stderr)
    );
    let complete = Command::new("fish")
        .args([
            "-c",
            &format!("source {}; complete -C 'siemrelay val'", fish.display()),
        ])
        .output()
        .expect("fish complete");
    let text = String::from_utf8_lossy(&complete.stdout);
    assert!(text.starts_with("validate\t"), "{text}");
}

#[test]
fn man_page_renders_and_names_every_command() {
    let page = stdout(&cli(&["man"]));
    assert!(page.contains(".TH siemrelay 1"), "{page}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("siemrelay.1");
    std::fs::write(&file, &page).expect("write");
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANWIDTH", "100")
        .output()
        .expect("man -l (install man-db)");
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(rendered.status.success(), "{text}");
    let commands = [
        "run",
        "validate",
        "test",
        "send",
        "status",
        "dlq",
        "queue",
        "verify",
        "completions",
        "man",
    ];
    for command in commands {
        assert!(
            text.contains(&format!("siemrelay-{command}(1)")),
            "man page lacks {command}:\n{text}"
        );
    }

    let pages = dir.path().join("man1");
    std::fs::create_dir(&pages).expect("dir");
    cli(&["man", "--dir", pages.to_str().expect("utf-8")]);
    for command in commands {
        let page = pages.join(format!("siemrelay-{command}.1"));
        assert!(page.exists(), "{} was not written", page.display());
    }
    assert!(pages.join("siemrelay.1").exists());

    let unwritable = run_cli(&["man", "--dir", "/proc/siemrelay-no-such-dir"], dir.path());
    assert!(!unwritable.status.success());
    assert!(
        String::from_utf8_lossy(&unwritable.stderr).contains("cannot write the man page"),
        "{}",
        String::from_utf8_lossy(&unwritable.stderr)
    );
}
