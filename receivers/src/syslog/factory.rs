//! The `syslog` receiver's factory: its entry in [`crate::receiver_factories`].

use super::{SyslogConfig, build};

siemrelay_core::receiver_factory! {
    /// Builds `syslog` receivers (syslog over UDP, TCP and TLS).
    pub struct SyslogFactory {
        type_name: "syslog",
        config: SyslogConfig,
        build: |config, ctx| build(ctx.id, config.clone()).await,
    }
}
