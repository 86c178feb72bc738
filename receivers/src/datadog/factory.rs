//! The `datadog` receiver's factory: its entry in [`crate::receiver_factories`].

use super::{DatadogConfig, bind};

siemrelay_core::receiver_factory! {
    /// Builds `datadog` receivers (Datadog's log intake).
    pub struct DatadogFactory {
        type_name: "datadog",
        config: DatadogConfig,
        build: |config, ctx| Ok(Box::new(bind(ctx.id, config.clone()).await?)),
    }
}
