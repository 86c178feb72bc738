//! Fake datadog server.
