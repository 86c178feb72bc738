//! The `splunk_hec` receiver's factory: its entry in [`crate::receiver_factories`].

use super::{SplunkHecConfig, build};

siemrelay_core::receiver_factory! {
    /// Builds `splunk_hec` receivers (a Splunk HTTP Event Collector endpoint).
    pub struct SplunkHecFactory {
        type_name: "splunk_hec",
        config: SplunkHecConfig,
        build: |config, ctx| build(ctx.id, config.clone()).await,
    }
}
