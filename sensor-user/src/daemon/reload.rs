//! SIGHUP: the configuration file read again. A file that does not parse or validate is
//! refused whole (logged with its file, line and key; the configuration in effect stays);
//! one that does is compared with the configuration in effect, key by key
//! (`Config::changes`). Keys the sensor can take on while running are applied (kernel
//! maps, ingest rules, the configured quarantine); keys it cannot (what was opened or
//! loaded once at start) keep their running value and are named in one log line that says
//! a restart is needed.
use std::{path::PathBuf, sync::Arc};

use tracing::{error, info, warn};

use crate::{
    config::Config,
    control::status::ConfigStatus,
    daemon::network::Monitor,
    graph::ingest::{Ingest, PortState},
    host::procfs,
    kernel::Sensor,
};

/// What a reload changes, borrowed from the event loop for the length of one reload.
pub(crate) struct Live<'s, 'a> {
    pub(crate) sensor: &'s mut Sensor,
    pub(crate) ingest: &'s mut Ingest<'a>,
    pub(crate) net: Option<&'s mut Monitor>,
}

pub(crate) struct Reloader {
    path: Option<PathBuf>,
    /// smb.conf as read at start (`smb_conf` needs a restart): the port programs' state
    /// it names is added to `port_program_state` again at each reload.
    smb_conf: Option<String>,
    pub(crate) status: ConfigStatus,
}

impl Reloader {
    pub(crate) fn new(path: Option<PathBuf>, smb_conf: Option<String>, loaded_ns: u64) -> Self {
        let status = ConfigStatus { path: path.clone(), loaded_ns, ..Default::default() };
        Self { path, smb_conf, status }
    }

    pub(crate) fn port_state(&self, config: &Config) -> PortState {
        PortState::new(config, self.smb_conf.as_deref())
    }

    fn file(&self) -> String {
        self.path.as_ref().map_or("the embedded default".into(), |p| p.display().to_string())
    }

    /// Reads the file again and applies what can change live. Returns the configuration
    /// now in effect, or None when the file was refused (`running` stays in effect).
    pub(crate) fn reload(&mut self, running: &Config, live: Live) -> Option<Arc<Config>> {
        let file = match Config::load(self.path.as_deref()) {
            Ok(file) => file,
            Err(e) => {
                self.status.failed_reloads += 1;
                self.status.last_reload_error = Some(e.to_string());
                error!("configuration NOT reloaded, the one in effect is kept: {e}");
                return None;
            }
        };
        let (applied, restart) = running.changes(&file);
        let new = Arc::new(running.reloaded(&file));
        let problems = apply(running, &new, &applied, live, self.port_state(&new));

        self.status.reloads += 1;
        self.status.loaded_ns = procfs::now_wall_ns();
        self.status.restart_needed = restart.iter().map(|k| (*k).to_owned()).collect();
        self.status.last_reload_error = (!problems.is_empty()).then(|| problems.join("; "));
        let file = self.file();
        if applied.is_empty() {
            info!("configuration reloaded from {file}: nothing to apply");
        } else {
            info!("configuration reloaded from {file}: applied {}", applied.join(", "));
        }
        if !restart.is_empty() {
            warn!(
                "configuration reloaded from {file}, but {} changed and need(s) a restart (systemctl restart vtrail-sensor): running on with the value(s) in effect",
                restart.join(", ")
            );
        }
        Some(new)
    }
}

/// Applies the live keys that changed (`applied`), from `old` to `new`. Returns what the
/// kernel or the database refused (logged).
fn apply(old: &Config, new: &Arc<Config>, applied: &[&str], live: Live, port_state: PortState) -> Vec<String> {
    let mut problems = Vec::new();
    let changed = |key: &str| applied.contains(&key);
    if (changed("taint_survives_exec") || changed("dedup_writes"))
        && let Err(e) = live.sensor.set_rules(new)
    {
        problems.push(format!("taint_survives_exec/dedup_writes not applied in the kernel: {e:#}"));
    }
    if changed("port_programs") || changed("interpreters") {
        match live.sensor.seed_programs(new) {
            Ok(mut skipped) => {
                // Those already missing were logged at start or by an earlier reload.
                skipped.retain(|path| !old.port_programs.iter().chain(&old.interpreters).any(|p| p.display().to_string() == *path));
                if !skipped.is_empty() {
                    warn!("newly configured programs not present on this host (ignored): {}", skipped.join(", "));
                }
            }
            Err(e) => problems.push(format!("port_programs/interpreters applied in part in the kernel: {e:#}")),
        }
        live.sensor.seed_running_programs();
    }
    if old.response.webhook != new.response.webhook {
        problems.push("response.webhook changed: the webhook is set up at start; restart the sensor for the new one".into());
    }
    // (Also when the activation points change: a protected file's directory may be one.)
    if changed("response") || changed("activation_points") {
        let store = live.ingest.store();
        if let Err(e) = crate::respond::apply::enforce_protected(live.sensor, new, store) {
            problems.push(format!("protected paths not applied in the kernel: {e:#}"));
        }
    }
    // Activation points and the port programs' state are read by ingest at each event.
    live.ingest.reconfigure(new.clone(), port_state);
    if changed("blocked_hosts") {
        match live.net {
            Some(net) => problems.extend(net.sync_configured_blocks(live.ingest.graph(), &new.blocked_hosts)),
            None => problems.push("blocked_hosts changed but network monitoring is off: the quarantine is NOT enforced".into()),
        }
    }
    for p in &problems {
        error!("reload: {p}");
    }
    problems
}
