//! The `otlp` receiver's factory: its entry in [`crate::receiver_factories`].

use super::OtlpConfig;
use super::build;

siemrelay_core::receiver_factory! {
    /// Builds `otlp` receivers (the OTLP gRPC/HTTP receiver).
    pub struct OtlpFactory {
        type_name: "otlp",
        config: OtlpConfig,
        build: |config, ctx| build(ctx.id, config.clone()).await,
    }
}
