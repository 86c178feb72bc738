//! siemrelay's pipelines crate: config loading and validation, the component registry, the
//! pipeline graph and runtime, and the commands of the `siemrelay` binary.

pub mod admin;
pub mod admin_page;
pub mod allocator;
pub mod build_info;
pub mod commands;
pub mod config;
pub mod footprint;
pub mod registry;
pub mod runtime;
