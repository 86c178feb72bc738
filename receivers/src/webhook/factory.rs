//! The `webhook` receiver's factory: its entry in [`crate::receiver_factories`].

use super::WebhookConfig;
use super::build;

siemrelay_core::receiver_factory! {
    /// Builds `webhook` receivers (the HTTP webhook receiver).
    pub struct WebhookFactory {
        type_name: "webhook",
        config: WebhookConfig,
        build: |config, ctx| build(ctx.id, config.clone()).await,
    }
}
