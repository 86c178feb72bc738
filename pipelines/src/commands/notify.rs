//! Telling a service manager (systemd `Type=notify`) what `siemrelay run` is doing, through the
//! `sd_notify` protocol: `READY=1` once every receiver listens, `RELOADING=1`/`READY=1` around a
//! reload, `STOPPING=1` when the shutdown drain begins, and `WATCHDOG=1` keep-alives when the
//! unit sets `WatchdogSec=`. Without `NOTIFY_SOCKET` in the environment every call does nothing.

use sd_notify::NotifyState;
use std::time::Duration;

/// Sends `states`; a failure is logged and otherwise ignored (the service manager going away
/// must not stop the pipeline).
fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// Every receiver listens and the admin listener (if any) serves: `READY=1` with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload (SIGHUP) begins: `RELOADING=1` with the monotonic time systemd expects with it.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading, NotifyState::Status("reloading")];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// The shutdown drain begins: `STOPPING=1`, and the stop timeout extended to cover the drain
/// (`shutdown_timeout` plus a margin for closing listeners and writing dead letters), so a unit
/// whose `TimeoutStopSec=` is shorter than the drain does not SIGKILL it half-way.
pub fn stopping(shutdown_timeout: Duration) {
    let extend = shutdown_timeout + Duration::from_secs(10);
    let extend_usec = u32::try_from(extend.as_micros()).unwrap_or(u32::MAX);
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining: delivering what was accepted"),
        NotifyState::ExtendTimeoutUsec(extend_usec),
    ]);
}

/// With `WatchdogSec=` set (`WATCHDOG_USEC` for this process), sends `WATCHDOG=1` every half
/// interval from a task on the async runtime: if the runtime stops scheduling tasks (a deadlock,
/// a blocked worker pool), the keep-alives stop and systemd restarts the service.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()?;
    let period = (interval / 2).max(Duration::from_millis(10));
    tracing::info!(interval = ?interval, "systemd watchdog enabled: sending keep-alives every {period:?}");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            // Logged when keep-alives start failing, not at every tick.
            match sd_notify::notify(&[NotifyState::Watchdog]) {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot send the systemd watchdog keep-alive");
                }
                Err(_) => {}
            }
        }
    }))
}
