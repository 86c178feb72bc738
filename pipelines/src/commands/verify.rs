//! `siemrelay verify`.

use crate::config;
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

/// Checks every event's signature (and the chain with `--chain`); prints the first failure with
/// its line number and reason. Exit 0 only when all pass.
pub fn verify(keys_path: &Path, chain: bool, events: &Path) -> ExitCode {
    let keys = match load_keys(keys_path) {
        Ok(keys) => keys,
        Err(message) => {
            eprintln!("error: {}: {message}", keys_path.display());
            return ExitCode::from(2);
        }
    };
    let input: Box<dyn BufRead> = if events.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        match std::fs::File::open(events) {
            Ok(file) => Box::new(std::io::BufReader::new(file)),
            Err(e) => {
                eprintln!("error: {}: {e}", events.display());
                return ExitCode::from(2);
            }
        }
    };
    let report = siemrelay_processors::sign::verify_stream(input, &keys, chain);
    for note in &report.notes {
        println!("note: {note}");
    }
    match &report.failure {
        None => {
            println!(
                "OK: {} events verified{}",
                report.events_checked,
                if chain { ", chain intact" } else { "" }
            );
            ExitCode::SUCCESS
        }
        Some(failure) => {
            println!("FAILED at line {}: {}", failure.line, failure.reason);
            ExitCode::from(1)
        }
    }
}

fn load_keys(path: &Path) -> Result<siemrelay_processors::sign::Keyring, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut value: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("not valid YAML: {e}"))?;
    let mut secrets = Vec::new();
    let mut errors = Vec::new();
    config::expand::expand_tree(&mut value, "", &mut secrets, &mut errors);
    if let Some(error) = errors.first() {
        return Err(format!("{}: {}", error.path, error.message));
    }
    let file: siemrelay_processors::sign::KeysFile = config::deserialize_at(value, "")
        .map_err(|e| config::expand::scrub(&format!("{}: {}", e.path, e.message), &secrets))?;
    file.keyring().map_err(|issues| {
        let text: Vec<String> = issues
            .iter()
            .map(|i| format!("{}: {}", i.key, i.message))
            .collect();
        config::expand::scrub(&text.join("; "), &secrets)
    })
}
