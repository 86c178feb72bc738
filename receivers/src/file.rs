//! The `file` receiver.
