//! The start-up shared by the commands that work on one exporter (`send`, `test`, `dlq`): load
//! the config (with the admin API's overlay), find the exporter, start an async runtime, and
//! print errors with every secret of the config scrubbed.

use crate::config::{self, ComponentId, LoadedConfig};
use crate::registry::ExporterSpec;
use std::path::Path;
use std::process::ExitCode;

/// Whether the command needs the exporter to be in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// It sends through the exporter: a missing one is an error listing the defined ones.
    Exporter,
    /// It only reads the exporter's files (dead letters of a removed exporter stay reachable):
    /// a missing one is a warning.
    FilesOnly,
}

/// A loaded config and the exporter a command works on.
pub struct ExporterCommand {
    /// The config.
    pub loaded: LoadedConfig,
    /// The exporter id as given.
    pub exporter: String,
}

impl ExporterCommand {
    /// Loads the config and looks the exporter up; on failure the reason is printed and the
    /// exit code returned.
    pub fn load(config_path: &Path, exporter: &str, needs: Needs) -> Result<Self, ExitCode> {
        let loaded = crate::admin::overlay::load(Some(config_path)).map_err(|errors| {
            eprint!("{errors}");
            ExitCode::from(1)
        })?;
        if loaded.exporter(exporter).is_none() {
            let known: Vec<&str> = loaded
                .exporters
                .iter()
                .map(|(id, _)| id.id.as_str())
                .collect();
            match needs {
                Needs::Exporter => {
                    eprintln!(
                        "error: no exporter {exporter:?} in {}; defined: {}",
                        loaded.file,
                        known.join(", ")
                    );
                    return Err(ExitCode::from(1));
                }
                Needs::FilesOnly => eprintln!(
                    "warning: no exporter {exporter:?} in {}; using its dead-letter file anyway",
                    loaded.file
                ),
            }
        }
        Ok(ExporterCommand {
            loaded,
            exporter: exporter.to_string(),
        })
    }

    /// The exporter's id and spec; `None` only when loaded with [`Needs::FilesOnly`].
    pub fn spec(&self) -> Option<(&ComponentId, &ExporterSpec)> {
        self.loaded
            .exporter(&self.exporter)
            .map(|(id, spec)| (id, spec))
    }

    /// `text` with every secret of the config replaced.
    pub fn scrub(&self, text: &str) -> String {
        config::expand::scrub(text, &self.loaded.secrets)
    }

    /// Prints `error: <prefix><error, scrubbed>` and returns exit code 1.
    pub fn fail(&self, prefix: &str, error: &anyhow::Error) -> ExitCode {
        eprintln!("error: {prefix}{}", self.scrub(&format!("{error:#}")));
        ExitCode::from(1)
    }
}

/// The command's async runtime; on failure the reason is printed and exit code 1 returned.
pub fn async_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    super::tokio_runtime().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::from(1)
    })
}
