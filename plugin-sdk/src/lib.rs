//! Write siemrelay exporter plugins in Rust.
//!
//! A plugin is a `cdylib` that siemrelay loads at run time (`type: plugin` exporters). The
//! boundary is a versioned C ABI ([`abi`], `include/siemrelay_plugin.h`): no Rust type crosses
//! it, so a plugin need not be built with siemrelay's compiler. This crate hides the ABI:
//!
//! ```
//! use siemrelay_plugin_sdk::{Batch, Delivery, Exporter, Issue, Outcome};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { endpoint: String }
//!
//! struct MyExporter { endpoint: String }
//!
//! impl Exporter for MyExporter {
//!     type Config = Config;
//!     fn configure(_exporter_id: &str, config: Config) -> Result<Self, Vec<Issue>> {
//!         Ok(MyExporter { endpoint: config.endpoint })
//!     }
//!     fn deliver(&self, batch: &Batch<'_>) -> Delivery {
//!         Delivery::all(Outcome::Delivered)
//!     }
//! }
//!
//! siemrelay_plugin_sdk::export_plugin!(MyExporter);
//! ```
//!
//! The generated entry points parse the config (errors name the key), catch panics (a panic in
//! `deliver` becomes a retryable outcome carrying the panic message; in `validate`/`configure` a
//! config issue) and own every buffer handed to siemrelay until it releases it.

pub mod abi;
mod batch;
mod delivery;
#[doc(hidden)]
pub mod ffi;
mod time;

pub use batch::{Batch, BatchError, Event};
pub use delivery::{Delivery, Outcome, Outcomes, Request};
pub use time::parse_rfc3339;

use serde::de::DeserializeOwned;

/// A configuration problem: a dotted key path inside the plugin's `config:` block and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// `endpoint`, `headers.Authorization`; empty for the block itself.
    pub key: String,
    /// What is wrong (never a secret value).
    pub message: String,
}

impl Issue {
    /// An issue at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Issue {
        Issue {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// What a plugin implements: a config type, how to build an exporter from it, and delivery.
///
/// `deliver` runs on a siemrelay thread outside its async runtime and may block (blocking HTTP
/// is fine). It may run on several threads at once unless [`Exporter::MAX_CONCURRENCY`] is 1.
pub trait Exporter: Send + Sync + Sized + 'static {
    /// The `config:` block, deserialized from JSON (use `#[serde(deny_unknown_fields)]`).
    type Config: DeserializeOwned;

    /// Most `deliver` calls at once on one instance: 0 = no limit, 1 = serialized.
    const MAX_CONCURRENCY: u32 = 0;

    /// Semantic checks beyond deserialization (bad URL, out-of-range value). No side effects:
    /// it runs during `siemrelay validate`.
    fn validate(_config: &Self::Config) -> Vec<Issue> {
        Vec::new()
    }

    /// Builds the exporter for exporter `exporter_id` (e.g. `plugin/graylog`) from a config that
    /// passed [`Exporter::validate`].
    fn configure(exporter_id: &str, config: Self::Config) -> Result<Self, Vec<Issue>>;

    /// Sends a batch and reports an outcome for it or for each event.
    fn deliver(&self, batch: &Batch<'_>) -> Delivery;
}

/// Parses and validates a config the way siemrelay's `validate` call does (for plugin tests).
pub fn check_config<E: Exporter>(config_json: &[u8]) -> Result<E::Config, Vec<Issue>> {
    ffi::parse_config::<E>(config_json)
}

/// Exports `$exporter` (a type implementing [`Exporter`]) as a siemrelay plugin: defines the
/// `siemrelay_plugin_entry` symbol returning the ABI table. Use it once, in a `cdylib` crate.
/// The plugin's name and version in the table are the crate's package name and version.
#[macro_export]
macro_rules! export_plugin {
    ($exporter:ty) => {
        /// The siemrelay plugin entry point (ABI table).
        #[unsafe(no_mangle)]
        pub extern "C" fn siemrelay_plugin_entry(
            _host_abi_version: u32,
        ) -> *const $crate::abi::PluginV1 {
            static TABLE: $crate::abi::PluginV1 = $crate::abi::PluginV1 {
                abi_version: $crate::abi::ABI_VERSION,
                table_size: ::core::mem::size_of::<$crate::abi::PluginV1>() as u32,
                name: concat!(env!("CARGO_PKG_NAME"), "\0").as_ptr().cast(),
                version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast(),
                max_concurrency: <$exporter as $crate::Exporter>::MAX_CONCURRENCY,
                reserved: 0,
                validate: Some($crate::ffi::validate::<$exporter>),
                create: Some($crate::ffi::create::<$exporter>),
                deliver: Some($crate::ffi::deliver::<$exporter>),
                release: Some($crate::ffi::release),
                destroy: Some($crate::ffi::destroy::<$exporter>),
            };
            &TABLE
        }
    };
}
