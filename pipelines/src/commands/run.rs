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
use tokio::signal::unix::{Signal, SignalKind, signal};

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
    // Before anything starts: a signal that comes while starting up is then waited for below,
    // not fatal (the default action) and not lost.
    let mut signals = Signals::register();
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
    // Startup is done: the code only it used need not stay resident. Off the runtime's threads:
    // it syncs the binary's file and walks every mapping.
    tokio::task::spawn_blocking(|| match crate::footprint::release_startup_code() {
        Ok(bytes) => tracing::debug!(bytes, "startup code pages handed back"),
        Err(e) => tracing::debug!(error = %e, "startup code pages not handed back"),
    });
    let watchdog = notify::spawn_watchdog();
    let watcher = (watch && config_path.is_some())
        .then(|| tokio::spawn(watch_config(control.clone(), config_path.clone())));
    let mut exit = ExitCode::SUCCESS;
    tokio::select! {
        signal = signals.stop_or_reload(&control) => tracing::info!(signal = %signal, "signal received"),
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
        signal = signals.stop() => {
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

/// The signals `run` answers, registered once when it starts: from then on SIGTERM, SIGINT and
/// SIGHUP are recorded until waited for, whatever the process is doing. (Registering a stream
/// only when waiting would leave a window in which the signal's default action, ending the
/// process, applies; and one registered later than another does not see what came before it.)
struct Signals {
    /// SIGTERM and SIGINT; `None` when they could not be registered (the process can then
    /// only be killed).
    stop: Option<(Signal, Signal)>,
    /// SIGHUP; `None` when it could not be registered.
    hangup: Option<Signal>,
}

impl Signals {
    fn register() -> Signals {
        let stop = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some((term, int)),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot handle SIGTERM/SIGINT: stopping takes a kill");
                None
            }
        };
        let hangup = signal(SignalKind::hangup())
            .inspect_err(|e| tracing::warn!(error = %e, "cannot handle SIGHUP: reload through the admin API"))
            .ok();
        Signals { stop, hangup }
    }

    /// Waits for SIGINT or SIGTERM, reloading the config on every SIGHUP meanwhile.
    async fn stop_or_reload(&mut self, control: &Control) -> &'static str {
        loop {
            tokio::select! {
                signal = stop_signal(&mut self.stop) => return signal,
                _ = hangup_signal(&mut self.hangup) => {
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

    /// Waits for SIGINT or SIGTERM.
    async fn stop(&mut self) -> &'static str {
        stop_signal(&mut self.stop).await
    }
}

/// The next SIGTERM or SIGINT; never, when they are not handled.
async fn stop_signal(stop: &mut Option<(Signal, Signal)>) -> &'static str {
    match stop {
        Some((term, int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        None => std::future::pending().await,
    }
}

/// The next SIGHUP; never, when it is not handled.
async fn hangup_signal(hangup: &mut Option<Signal>) {
    match hangup {
        Some(hangup) => {
            hangup.recv().await;
        }
        None => std::future::pending().await,
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
