//! The `qradar` exporter's factory: its entry in [`crate::exporter_factories`].

use super::QradarConfig;

crate::exporter_factory! {
    /// Builds `qradar` exporters (IBM QRadar, LEEF over syslog or HTTP).
    pub struct QradarFactory {
        type_name: "qradar",
        config: QradarConfig,
        build: |config, ctx| super::build(ctx.id, config.clone(), ctx.timeout()),
    }
}
