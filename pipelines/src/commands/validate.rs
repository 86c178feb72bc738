//! `siemrelay validate`.

use std::path::Path;
use std::process::ExitCode;

/// Prints every error (exit 1) or a summary of the valid config with its warnings (exit 0).
/// The admin API's overlay (`<storage>/admin/overlay.yaml`) is applied, so this shows what
/// `run` would run. Never prints secret values.
pub fn validate(path: &Path) -> ExitCode {
    match crate::admin::overlay::load(Some(path)) {
        Ok(loaded) => {
            println!("{}: configuration is valid", loaded.file);
            for (kind, ids) in [
                (
                    "receivers",
                    loaded
                        .receivers
                        .iter()
                        .map(|(id, _)| id.id.clone())
                        .collect::<Vec<_>>(),
                ),
                (
                    "processors",
                    loaded
                        .processors
                        .iter()
                        .map(|(id, _)| id.id.clone())
                        .collect(),
                ),
                (
                    "exporters",
                    loaded
                        .exporters
                        .iter()
                        .map(|(id, _)| id.id.clone())
                        .collect(),
                ),
            ] {
                println!(
                    "  {kind}: {}",
                    if ids.is_empty() {
                        "-".to_string()
                    } else {
                        ids.join(", ")
                    }
                );
            }
            for (name, pipeline) in &loaded.service.pipelines {
                println!(
                    "  pipeline {name}: [{}] → [{}] → [{}]",
                    pipeline.receivers.join(", "),
                    pipeline.processors.join(", "),
                    pipeline.exporters.join(", ")
                );
            }
            for warning in &loaded.warnings {
                println!("warning: {}: {warning}", loaded.file);
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::from(1)
        }
    }
}
