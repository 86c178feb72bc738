//! Fake hec server.
