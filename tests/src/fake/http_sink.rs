//! Fake http_sink server.
