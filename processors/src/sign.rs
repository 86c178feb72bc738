//! The `sign` processor.
