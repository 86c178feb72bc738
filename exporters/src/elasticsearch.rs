//! The `elasticsearch` exporter.
