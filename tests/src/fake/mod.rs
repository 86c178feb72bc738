//! Fake SIEM servers that speak the real protocols (paths, auth, batch formats, error replies)
//! and record what they accepted. Each starts on 127.0.0.1 with a free port.

pub mod datadog;
pub mod elasticsearch;
pub mod hec;
pub mod http_sink;
