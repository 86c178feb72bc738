//! A siemrelay exporter plugin for Graylog: GELF 1.1 over HTTP.
//!
//! Built as `libsiemrelay_gelf.so` by a plain `cargo build`; load it with a `plugin` exporter:
//!
//! ```yaml
//! exporters:
//!   plugin/graylog:
//!     library: ./target/debug/libsiemrelay_gelf.so
//!     config: { endpoint: "http://graylog.example.com:12201/gelf" }
//! ```
//!
//! Each event becomes one GELF message ([`mapping`]). Graylog's GELF HTTP input takes one message
//! per `POST /gelf` (answering `202 Accepted`); with `bulk: true` a request carries the whole
//! batch, newline-separated, which needs the input's "Enable Bulk Receiving" option.

pub mod config;
pub mod mapping;
mod send;

pub use config::GelfConfig;

use siemrelay_plugin_sdk::{Batch, Delivery, Exporter, Issue};

/// The GELF exporter.
pub struct Gelf {
    sender: send::Sender,
}

impl Exporter for Gelf {
    type Config = GelfConfig;

    fn validate(config: &GelfConfig) -> Vec<Issue> {
        config.validate()
    }

    fn configure(_exporter_id: &str, config: GelfConfig) -> Result<Self, Vec<Issue>> {
        Ok(Gelf {
            sender: send::Sender::new(config),
        })
    }

    fn deliver(&self, batch: &Batch<'_>) -> Delivery {
        self.sender.deliver(batch)
    }
}

siemrelay_plugin_sdk::export_plugin!(Gelf);
