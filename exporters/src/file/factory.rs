//! The `file` exporter's factory: its entry in [`crate::exporter_factories`].

use super::FileConfig;
use std::sync::Arc;

crate::exporter_factory! {
    /// Builds `file` exporters (NDJSON files, rotated daily).
    pub struct FileFactory {
        type_name: "file",
        config: FileConfig,
        takes_schema: true,
        build: |config, ctx| Ok(Arc::new(super::FileSink::new(config).with_schema(ctx.schema()))),
    }
}
