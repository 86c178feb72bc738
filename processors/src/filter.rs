//! The `filter` processor.
