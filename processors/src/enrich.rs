//! The `enrich` processor.
