//! The `otlp` receiver.
