//! The `sign` processor's factory: its entry in [`crate::processor_factories`].

use super::SignConfig;
use super::build;

siemrelay_core::processor_factory! {
    /// Builds `sign` processors (signs events, optionally as a hash chain).
    pub struct SignFactory {
        type_name: "sign",
        config: SignConfig,
        build: |config, ctx| Ok(Some(Box::new(build(config.clone(), ctx)?))),
    }
}
