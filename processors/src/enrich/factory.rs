//! The `enrich` processor's factory: its entry in [`crate::processor_factories`].

use super::EnrichConfig;
use super::build;

siemrelay_core::processor_factory! {
    /// Builds `enrich` processors (adds or rewrites attributes).
    pub struct EnrichFactory {
        type_name: "enrich",
        config: EnrichConfig,
        build: |config, ctx| Ok(Some(Box::new(build(config.clone(), ctx)?))),
    }
}
