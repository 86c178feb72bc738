//! The `webhook` exporter's factory: its entry in [`crate::exporter_factories`].

use super::WebhookConfig;
use super::WebhookEncoder;

crate::exporter_factory! {
    /// Builds `webhook` exporters (generic HTTP webhook).
    pub struct WebhookFactory {
        type_name: "webhook",
        config: WebhookConfig,
        http: WebhookEncoder,
        takes_schema: true,
        build: |config, ctx| super::build(ctx.id, config.clone(), ctx.http, ctx.timeout()),
    }
}
