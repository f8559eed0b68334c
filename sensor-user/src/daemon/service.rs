//! Telling the service manager how the daemon is doing (systemd `Type=notify`): READY=1
//! once the programs are attached, the kernel maps restored and the socket listening;
//! STOPPING=1 when it begins to stop. Without `$NOTIFY_SOCKET` (not under systemd) these
//! do nothing; a socket that cannot be reached is logged, never fatal.
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
