//! The `splunk_hec` exporter.
