//! The `stdout` exporter's factory: its entry in [`crate::exporter_factories`].

use super::StdoutConfig;
use std::sync::Arc;

crate::exporter_factory! {
    /// Builds `stdout` exporters (NDJSON on standard output).
    pub struct StdoutFactory {
        type_name: "stdout",
        config: StdoutConfig,
        build: |_config, _ctx| Ok(Arc::new(super::StdoutSink)),
    }
}
