//! The `syslog` exporter's factory: its entry in [`crate::exporter_factories`].

use super::SyslogConfig;

crate::exporter_factory! {
    /// Builds `syslog` exporters (syslog over UDP/TCP/TLS).
    pub struct SyslogFactory {
        type_name: "syslog",
        config: SyslogConfig,
        build: |config, ctx| super::build(ctx.id, config.clone(), ctx.timeout()),
    }
}
