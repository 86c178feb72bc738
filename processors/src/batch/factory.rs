//! The `batch` processor's factory: its entry in [`crate::processor_factories`]. It builds no
//! running processor: its settings are exporter batch settings (see the module doc of
//! [`super`]), lifted by the pipelines crate.

use super::BatchConfig;

siemrelay_core::processor_factory! {
    /// Reads `batch` processors (kept for compatibility; they have no running part).
    pub struct BatchFactory {
        type_name: "batch",
        config: BatchConfig,
        build: |_config, _ctx| Ok(None),
    }
}
