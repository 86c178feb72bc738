//! The C header and the Rust ABI types agree: a C program built against
//! `include/siemrelay_plugin.h` prints every struct's size, alignment and field offsets, and the
//! same list is computed from the `#[repr(C)]` types.

use siemrelay_plugin_sdk::abi::*;
use std::mem::{align_of, offset_of, size_of};
use std::path::Path;
use std::process::Command;

macro_rules! size {
    ($out:ident, $c:literal, $t:ty) => {
        $out.push(format!(
            "size {} {} {}",
            $c,
            size_of::<$t>(),
            align_of::<$t>()
        ));
    };
}
macro_rules! field {
    ($out:ident, $c:literal, $t:ty, $rust:ident, $cfield:literal) => {
        $out.push(format!(
            "offset {}.{} {}",
            $c,
            $cfield,
            offset_of!($t, $rust)
        ));
    };
}

fn rust_layout() -> Vec<String> {
    let mut out = vec![
        format!("constant ABI_VERSION {ABI_VERSION}"),
        format!("constant ENTRY_SYMBOL {ENTRY_SYMBOL}"),
    ];
    size!(out, "siemrelay_str", RawStr);
    field!(out, "siemrelay_str", RawStr, ptr, "ptr");
    field!(out, "siemrelay_str", RawStr, len, "len");
    size!(out, "siemrelay_config_issue", RawConfigIssue);
    field!(out, "siemrelay_config_issue", RawConfigIssue, key, "key");
    field!(
        out,
        "siemrelay_config_issue",
        RawConfigIssue,
        message,
        "message"
    );
    size!(out, "siemrelay_issues", RawIssues);
    field!(out, "siemrelay_issues", RawIssues, items, "items");
    field!(out, "siemrelay_issues", RawIssues, count, "count");
    field!(out, "siemrelay_issues", RawIssues, owner, "owner");
    size!(out, "siemrelay_outcome", RawOutcome);
    field!(out, "siemrelay_outcome", RawOutcome, kind, "kind");
    field!(
        out,
        "siemrelay_outcome",
        RawOutcome,
        retry_after_ms,
        "retry_after_ms"
    );
    field!(out, "siemrelay_outcome", RawOutcome, reason, "reason");
    size!(out, "siemrelay_request", RawRequest);
    field!(out, "siemrelay_request", RawRequest, events, "events");
    field!(out, "siemrelay_request", RawRequest, bytes, "bytes");
    field!(
        out,
        "siemrelay_request",
        RawRequest,
        http_status,
        "http_status"
    );
    field!(
        out,
        "siemrelay_request",
        RawRequest,
        latency_ms,
        "latency_ms"
    );
    field!(out, "siemrelay_request", RawRequest, reply, "reply");
    size!(out, "siemrelay_delivery", RawDelivery);
    field!(out, "siemrelay_delivery", RawDelivery, batch, "batch");
    field!(out, "siemrelay_delivery", RawDelivery, outcomes, "outcomes");
    field!(
        out,
        "siemrelay_delivery",
        RawDelivery,
        outcome_count,
        "outcome_count"
    );
    field!(out, "siemrelay_delivery", RawDelivery, requests, "requests");
    field!(
        out,
        "siemrelay_delivery",
        RawDelivery,
        request_count,
        "request_count"
    );
    field!(out, "siemrelay_delivery", RawDelivery, owner, "owner");
    size!(out, "siemrelay_plugin_v1", PluginV1);
    field!(
        out,
        "siemrelay_plugin_v1",
        PluginV1,
        abi_version,
        "abi_version"
    );
    field!(
        out,
        "siemrelay_plugin_v1",
        PluginV1,
        table_size,
        "table_size"
    );
    field!(out, "siemrelay_plugin_v1", PluginV1, name, "name");
    field!(out, "siemrelay_plugin_v1", PluginV1, version, "version");
    field!(
        out,
        "siemrelay_plugin_v1",
        PluginV1,
        max_concurrency,
        "max_concurrency"
    );
    field!(out, "siemrelay_plugin_v1", PluginV1, reserved, "reserved");
    field!(out, "siemrelay_plugin_v1", PluginV1, validate, "validate");
    field!(out, "siemrelay_plugin_v1", PluginV1, create, "create");
    field!(out, "siemrelay_plugin_v1", PluginV1, deliver, "deliver");
    field!(out, "siemrelay_plugin_v1", PluginV1, release, "release");
    field!(out, "siemrelay_plugin_v1", PluginV1, destroy, "destroy");
    out
}

#[test]
fn header_matches_the_rust_definitions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile_dir();
    let exe = dir.join("layout");
    let compiled = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg(root.join("tests/layout.c"))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("run the C compiler `cc` (install gcc or set CC)");
    assert!(
        compiled.status.success(),
        "the header does not compile:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let run = Command::new(&exe).output().expect("run the layout program");
    assert!(run.status.success());
    let c_layout: Vec<String> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let rust = rust_layout();
    for (c, r) in c_layout.iter().zip(&rust) {
        assert_eq!(c, r, "C (left) and Rust (right) disagree");
    }
    assert_eq!(c_layout.len(), rust.len());
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("siemrelay-abi-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
