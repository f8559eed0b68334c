//! Telling the service manager how the daemon is doing (systemd `Type=notify`): READY=1
//! once the programs are attached, the kernel maps restored and the socket listening;
//! STOPPING=1 when it begins to stop; WATCHDOG=1 from the event loop while it is healthy,
//! when the unit sets `WatchdogSec=`. Without `$NOTIFY_SOCKET` (not under systemd) these
//! do nothing; a socket that cannot be reached is logged, never fatal.
use std::time::Duration;

use tracing::warn;
use sd_notify::NotifyState;

pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        warn!("cannot notify the service manager ($NOTIFY_SOCKET): {e}");
    }
}

/// How often to send WATCHDOG=1: half the manager's timeout (`$WATCHDOG_USEC`, for this
/// process if `$WATCHDOG_PID` says so), or never.
/// (As sd_watchdog_enabled(3): an unset `$WATCHDOG_PID` means this process; sd-notify's
/// helper requires it.)
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok().filter(|&u| u > 0)?;
    match std::env::var("WATCHDOG_PID").ok().map(|p| p.parse::<u32>()) {
        Some(Ok(pid)) if pid != std::process::id() => None,
        Some(Err(_)) => None,
        _ => Some(Duration::from_micros(usec / 2)),
    }
}

/// The event loop is alive and the ring is being drained: the manager's timer restarts.
pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}
