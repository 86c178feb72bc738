//! Records the commit siemrelay is built from, for `siemrelay --version` and the
//! `siemrelay_build_info{version,commit}` metric: `$SIEMRELAY_COMMIT` when set (builds from a
//! source archive or a container context without `.git`), else `git rev-parse --short=12 HEAD`,
//! else `unknown`. Reruns only when HEAD moves (or the variable changes).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SIEMRELAY_COMMIT");
    let from_env = std::env::var("SIEMRELAY_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let commit = match from_env {
        Some(commit) => commit.trim().to_string(),
        None => {
            // HEAD, and the branch it points to (worktree-aware), so a new commit rebuilds.
            let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watched.push(git(&["rev-parse", "--git-path", &branch]));
                watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
            }
            for path in watched.into_iter().flatten() {
                if std::path::Path::new(&path).exists() {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=SIEMRELAY_COMMIT={commit}");
}
