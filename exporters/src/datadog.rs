//! The `datadog` exporter.
