//! The `batch` processor.
