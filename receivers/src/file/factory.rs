//! The `file` receiver's factory: its entry in [`crate::receiver_factories`].

use super::FileConfig;
use super::build;

siemrelay_core::receiver_factory! {
    /// Builds `file` receivers (the file-tail receiver).
    pub struct FileFactory {
        type_name: "file",
        config: FileConfig,
        build: |config, ctx| build(ctx.id, config.clone()).await,
    }
}
