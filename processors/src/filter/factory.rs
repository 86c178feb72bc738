//! The `filter` processor's factory: its entry in [`crate::processor_factories`].

use super::FilterConfig;
use super::build;

siemrelay_core::processor_factory! {
    /// Builds `filter` processors (keeps or drops events by type and severity).
    pub struct FilterFactory {
        type_name: "filter",
        config: FilterConfig,
        build: |config, ctx| Ok(Some(Box::new(build(config.clone(), ctx)?))),
    }
}
