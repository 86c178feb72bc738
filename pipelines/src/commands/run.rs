//! `siemrelay run`.

use crate::config::{self, LoadedConfig};
use crate::runtime::Runtime;
use std::path::Path;
use std::process::ExitCode;

/// Loads the config (or the embedded default), runs until SIGINT/SIGTERM, then shuts down
/// cleanly. A second signal during shutdown exits at once.
pub fn run(config_path: Option<&Path>) -> ExitCode {
    let loaded = match config_path {
        Some(path) => config::load_file(path),
        None => config::load_str(config::DEFAULT_CONFIG, "<embedded default config>"),
    };
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(1);
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{}: {warning}", loaded.file);
    }
    let runtime = match super::tokio_runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(loaded))
}

async fn serve(loaded: LoadedConfig) -> ExitCode {
    let file = loaded.file.clone();
    let pipelines: Vec<String> = loaded.service.pipelines.keys().cloned().collect();
    let mut running = match Runtime::start(loaded).await {
        Ok(running) => running,
        Err(e) => {
            tracing::error!(config = %file, "cannot start: {e:#}");
            eprintln!("error: cannot start: {e:#}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(config = %file, pipelines = ?pipelines, version = env!("CARGO_PKG_VERSION"), "siemrelay is running");
    let mut exit = ExitCode::SUCCESS;
    tokio::select! {
        signal = wait_for_signal() => tracing::info!(signal, "signal received"),
        (receiver, result) = running.wait_for_receiver_failure() => {
            tracing::error!(receiver = %receiver, error = ?result.err(), "a receiver stopped unexpectedly; shutting down");
            exit = ExitCode::from(1);
        }
    }
    // A second signal during the drain stops at once.
    let report = tokio::select! {
        report = running.shutdown() => report,
        signal = wait_for_signal() => {
            tracing::error!(signal, "second signal: exiting without finishing the drain (memory queues lose what they hold)");
            return ExitCode::from(130);
        }
    };
    if report.undrained.is_empty() {
        tracing::info!("shutdown complete: every accepted event was handled");
    }
    exit
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the process can only be killed; run until then.
        std::future::pending::<()>().await;
        return "none";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
