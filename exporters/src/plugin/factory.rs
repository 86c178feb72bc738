//! The `plugin` exporter's factory: its entry in [`crate::exporter_factories`].

use super::PluginConfig;

crate::exporter_factory! {
    /// Builds `plugin` exporters (third-party exporters loaded from a library).
    pub struct PluginFactory {
        type_name: "plugin",
        config: PluginConfig,
        build: |config, ctx| super::build(ctx.id, config, ctx.delivery.sending.concurrency),
    }
}
