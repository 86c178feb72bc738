//! The `webhook` exporter.
