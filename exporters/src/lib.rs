//! siemrelay exporters and the delivery layer they all share.
//!
//! An exporter only encodes events into requests and classifies the replies (it implements
//! [`delivery::Sink`]); queueing, batching, retries with backoff, dead-letter files, status and
//! delivery history live once, in [`delivery`].

pub mod cloudwatch_logs;
pub mod datadog;
pub mod delivery;
pub mod elasticsearch;
pub mod file;
pub mod kafka;
pub mod plugin;
pub mod qradar;
pub mod sentinel;
pub mod splunk_hec;
pub mod stdout;
pub mod syslog;
pub mod webhook;
