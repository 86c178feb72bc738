//! `siemrelay run`.

use super::notify;
use crate::admin::overlay;
use crate::admin::telemetry::Metrics;
use crate::admin::{AdminServer, Control};
use crate::config::LoadedConfig;
use crate::runtime::Runtime;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often `service.watch_config` looks at the file's modification time.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Loads the config (or the embedded default) with the admin overlay, runs until SIGINT/SIGTERM,
/// then shuts down cleanly. SIGHUP reloads the config. A second SIGINT/SIGTERM during shutdown
/// exits at once. Under systemd (`Type=notify`) it reports readiness, reloads, the drain and
/// watchdog keep-alives (see [`notify`]).
pub fn run(config_path: Option<&Path>) -> ExitCode {
    let loaded = match overlay::load(config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(1);
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{}: {warning}", loaded.file);
    }
    if let Err(e) = crate::allocator::start_collector() {
        tracing::warn!(error = %e, "cannot start the allocator's collector thread; freed memory may be returned to the OS later");
    }
    let runtime = match super::tokio_runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(loaded, config_path.map(Path::to_path_buf)))
}

async fn serve(loaded: LoadedConfig, config_path: Option<PathBuf>) -> ExitCode {
    let file = loaded.file.clone();
    let pipelines: Vec<String> = loaded.service.pipelines.keys().cloned().collect();
    let admin = loaded.service.admin.clone();
    let watch = loaded.service.watch_config;
    let shutdown_timeout = loaded.service.shutdown_timeout.0;
    let metrics = match &admin {
        Some(_) => match Metrics::install() {
            Ok(metrics) => Some(metrics),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "metrics are not exposed");
                None
            }
        },
        None => None,
    };
    let running = match Runtime::start(loaded).await {
        Ok(running) => running,
        Err(e) => {
            tracing::error!(config = %file, "cannot start: {e:#}");
            eprintln!("error: cannot start: {e:#}");
            return ExitCode::from(1);
        }
    };
    let control = Arc::new(Control::new(
        running.clone(),
        config_path.clone(),
        admin.clone(),
        metrics,
    ));
    let admin_server = match &admin {
        Some(config) => match AdminServer::start(config, control.clone()).await {
            Ok(server) => Some(server),
            Err(e) => {
                tracing::error!("cannot start: {e:#}");
                eprintln!("error: cannot start: {e:#}");
                running.shutdown().await;
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    tracing::info!(config = %file, pipelines = %pipelines.join(","), version = %env!("CARGO_PKG_VERSION"), "siemrelay is running");
    // Every receiver listens (Runtime::start bound them) and the admin listener serves.
    notify::ready(&format!("running {} pipeline(s)", pipelines.len()));
    // Startup is done: the code only it used need not stay resident.
    match crate::footprint::release_startup_code() {
        Ok(bytes) => tracing::debug!(bytes, "startup code pages handed back"),
        Err(e) => tracing::debug!(error = %e, "startup code pages not handed back"),
    }
    let watchdog = notify::spawn_watchdog();
    let watcher = (watch && config_path.is_some())
        .then(|| tokio::spawn(watch_config(control.clone(), config_path.clone())));
    let mut exit = ExitCode::SUCCESS;
    tokio::select! {
        signal = wait_for_stop_signal(&control) => tracing::info!(signal = %signal, "signal received"),
        (receiver, result) = running.wait_for_receiver_failure() => {
            let error = result.err().map_or_else(|| "it returned without an error".to_string(), |e| format!("{e:#}"));
            tracing::error!(receiver = %receiver, error = %error, "a receiver stopped unexpectedly; shutting down");
            exit = ExitCode::from(1);
        }
    }
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    notify::stopping(shutdown_timeout);
    // A second signal during the drain stops at once.
    let report = tokio::select! {
        report = running.shutdown() => report,
        signal = wait_for_signal() => {
            tracing::error!(signal = %signal, "second signal: exiting without finishing the drain (memory queues lose what they hold)");
            return ExitCode::from(130);
        }
    };
    if let Some(server) = admin_server {
        server.stop().await;
    }
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    if report.undrained.is_empty() {
        tracing::info!("shutdown complete: every accepted event was handled");
    }
    exit
}

/// Waits for SIGINT or SIGTERM, reloading the config on every SIGHUP meanwhile.
async fn wait_for_stop_signal(control: &Control) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return wait_for_signal().await;
    };
    let stop = wait_for_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            signal = &mut stop => return signal,
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                notify::reloading();
                // The outcome is logged and counted by the reload itself.
                let _ = control.reload("SIGHUP").await;
                // Listener certificates too (each outcome is logged).
                siemrelay_core::listener_tls::reload_all();
                notify::ready("running (reloaded)");
            }
        }
    }
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process can only be killed; run until then.
        std::future::pending::<()>().await;
        return "none";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// `service.watch_config`: reloads when the file's modification time changes.
async fn watch_config(control: Arc<Control>, path: Option<PathBuf>) {
    let Some(path) = path else { return };
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut last: Option<SystemTime> = modified(&path);
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    loop {
        tick.tick().await;
        let now = modified(&path);
        if now.is_some() && now != last {
            last = now;
            tracing::info!(file = %path.display(), "the config file changed: reloading");
            let _ = control.reload("watch_config").await;
        }
    }
}
