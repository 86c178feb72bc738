//! Fake SIEM servers that speak the real protocols (paths, auth, batch formats, error replies)
//! and record what they accepted. Each starts on 127.0.0.1 with a free port.

pub mod azure;
pub mod cloudwatch;
pub mod datadog;
pub mod echo;
pub mod elasticsearch;
pub mod gelf;
pub mod hec;
pub mod http_sink;
pub mod qradar_http;
pub mod rsyslog;
pub mod syslog_parse;
pub mod tansu;
