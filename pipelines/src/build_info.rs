//! What this binary is: version, git commit, build, and what is compiled in. Shown by
//! `siemrelay --version` (and `-V` in short), so an operator can tell exactly what runs.

use crate::registry::{exporter_types, processor_types, receiver_types};

/// The crate version (`0.1.0`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (12 hex digits), or `unknown` when it was built
/// outside a git checkout without `SIEMRELAY_GIT_COMMIT` set (see `pipelines/build.rs`).
pub const GIT_COMMIT: &str = env!("SIEMRELAY_GIT_COMMIT");

/// The cargo profile: `release` or `debug`.
pub const PROFILE: &str = env!("SIEMRELAY_BUILD_PROFILE");

/// The target triple, e.g. `x86_64-unknown-linux-gnu`.
pub const TARGET: &str = env!("SIEMRELAY_BUILD_TARGET");

/// `rustc --version` of the compiler that built it.
pub const RUSTC: &str = env!("SIEMRELAY_RUSTC_VERSION");

/// `siemrelay -V`: `0.1.0 (commit 0123456789ab)`.
pub fn short_version() -> String {
    format!("{VERSION} (commit {GIT_COMMIT})")
}

/// The capabilities compiled into this binary beyond the component lists: plugin loading, TLS,
/// Kafka and the allocator, each with the version of what provides it.
pub fn features() -> Vec<String> {
    let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
    vec![
        format!(
            "plugins (dlopen, ABI {})",
            siemrelay_plugin_sdk::abi::ABI_VERSION
        ),
        "tls (rustls with ring; Kafka: OpenSSL)".to_string(),
        format!("kafka (librdkafka {librdkafka}: ssl, sasl-scram, zstd)"),
        "allocator (mimalloc)".to_string(),
    ]
}

/// `siemrelay --version`: the version line, then one `key: value` line per fact.
pub fn long_version() -> String {
    format!(
        "{VERSION}\n\
         commit:     {GIT_COMMIT}\n\
         build:      {PROFILE}, {TARGET}, {RUSTC}\n\
         receivers:  {}\n\
         processors: {}\n\
         exporters:  {}\n\
         features:   {}",
        receiver_types(),
        processor_types(),
        exporter_types(),
        features().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_version_names_the_commit_and_every_component_list() {
        let text = long_version();
        assert!(text.starts_with(VERSION), "{text}");
        assert!(
            text.contains(&format!("commit:     {GIT_COMMIT}")),
            "{text}"
        );
        assert!(
            text.contains("receivers:  webhook, otlp, file, kafka"),
            "{text}"
        );
        assert!(text.contains("splunk_hec"), "{text}");
        assert!(text.contains("librdkafka 2."), "{text}");
    }
}
