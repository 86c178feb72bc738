//! `siemrelay verify`.

mod unshape;

use crate::config;
use siemrelay_exporters::delivery::Schema;
use std::cell::RefCell;
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;

/// Checks every event's signature (and the chain with `--chain`); prints the first failure with
/// its line number and reason. Exit 0 only when all pass. `schema` (`native`, `flat`, `ecs`,
/// `ocsf`) is the shape an exporter wrote the events in (see [`unshape`]).
pub fn verify(keys_path: &Path, chain: bool, schema: &str, events: &Path) -> ExitCode {
    let Some(schema) = Schema::parse(schema) else {
        eprintln!("error: --schema {schema:?}: expected native, flat, ecs or ocsf");
        return ExitCode::from(2);
    };
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
    let shape_failure = Rc::new(RefCell::new(None));
    let report = if schema == Schema::Native {
        siemrelay_processors::sign::verify_stream(input, &keys, chain)
    } else {
        let input = unshape::Unshaped::new(input, schema, shape_failure.clone());
        siemrelay_processors::sign::verify_stream(input, &keys, chain)
    };
    if let Some((line, reason)) = shape_failure.borrow().clone()
        && report.failure.as_ref().is_none_or(|f| f.line >= line)
    {
        for note in &report.notes {
            println!("note: {note}");
        }
        println!("FAILED at line {line}: {reason}");
        return ExitCode::from(1);
    }
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
