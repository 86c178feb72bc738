//! Build facts for `siemrelay --version` (and anything else that reports the build):
//! `SIEMRELAY_GIT_COMMIT` (the commit the binary was built from: the `SIEMRELAY_GIT_COMMIT`
//! environment variable when set, as packagers building from a tarball do, else `git rev-parse`,
//! else `unknown`), `SIEMRELAY_BUILD_PROFILE`, `SIEMRELAY_BUILD_TARGET` and
//! `SIEMRELAY_RUSTC_VERSION`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(&manifest_dir)
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    };

    println!("cargo:rerun-if-env-changed=SIEMRELAY_GIT_COMMIT");
    let commit = std::env::var("SIEMRELAY_GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SIEMRELAY_GIT_COMMIT={commit}");

    // Rebuild when HEAD moves: HEAD itself, the branch it points to, and packed refs. Only files
    // that exist are named (cargo reruns a build script on every build for a missing one).
    let mut watched = Vec::new();
    for file in ["HEAD", "packed-refs"] {
        watched.extend(git(&["rev-parse", "--git-path", file]));
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(&["rev-parse", "--git-path", &branch]));
    }
    for path in watched {
        let path = absolute(&manifest_dir, &path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rerun-if-changed=build.rs");

    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=SIEMRELAY_BUILD_PROFILE={profile}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=SIEMRELAY_BUILD_TARGET={target}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "rustc (unknown version)".into());
    println!("cargo:rustc-env=SIEMRELAY_RUSTC_VERSION={rustc_version}");
}

fn absolute(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}
