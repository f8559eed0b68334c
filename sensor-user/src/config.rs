//! Sensor configuration: an embedded default (`default-config.toml`) overlaid by an
//! optional file. A bad file is reported with the key and line at fault.
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::fleet::config::FleetConfig;
pub use crate::scan::config::{ResponseConfig, ScanConfig};

pub const DEFAULT_CONFIG: &str = include_str!("default-config.toml");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StrategyChoice {
    Auto,
    Fentry,
    Kprobe,
    Tracepoint,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database: PathBuf,
    pub socket: PathBuf,
    pub hook_strategy: StrategyChoice,
    pub ring_buffer_bytes: u32,
    pub taint_survives_exec: bool,
    pub dedup_writes: bool,
    pub port_programs: Vec<PathBuf>,
    pub interpreters: Vec<PathBuf>,
    pub activation_points: Vec<String>,
    /// Port programs' own state (databases, caches, logs), as `path_pattern`s: what a port
    /// program writes there is not an arrival. Samba's, from smb.conf, is added at start.
    #[serde(default)]
    pub port_program_state: Vec<String>,
    /// Network monitoring (TC classifiers for SMB2/FTP) on or off.
    #[serde(default = "yes")]
    pub network_monitoring: bool,
    /// Interfaces to attach to; empty = every non-loopback interface (rescanned).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Also attach to `lo` (tests, or servers used through localhost).
    #[serde(default)]
    pub include_loopback: bool,
    /// Run on when network monitoring is on but watches nothing (its programs do not
    /// load, or no interface could be attached). Off: `run` fails instead.
    #[serde(default)]
    pub network_degraded_ok: bool,
    /// bpffs directory where the kernel's decisions (untrusted files, tainted processes,
    /// blocked hosts) are pinned so that a restart or crash of the daemon loses none.
    #[serde(default = "default_kernel_state")]
    pub kernel_state: PathBuf,
    /// Where SMB share roots are read from (`path =` lines), to mark exact matches.
    #[serde(default)]
    pub smb_conf: Option<PathBuf>,
    /// DNS server ("ip:port") holding the node-id reverse mapping of `vtrail-ddns`;
    /// with `dns_zones`, remote IPs are named by node id. Unset = naming off.
    #[serde(default)]
    pub dns_server: Option<std::net::SocketAddr>,
    /// Where the Prometheus metrics are served (`GET /metrics`), a loopback address:
    /// unset = off. The metrics say what the sensor sees; expose them further only
    /// through a proxy that authenticates.
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Zones (most specific first) whose reverse names map IPs to node ids.
    #[serde(default)]
    pub dns_zones: Vec<String>,
    /// Remote hosts quarantined by the configuration (as `vtrail-sensor block` does, but
    /// recorded as by `config`: a host leaves the quarantine when it leaves this list;
    /// blocks made through the socket are not touched).
    #[serde(default)]
    pub blocked_hosts: Vec<std::net::IpAddr>,
    /// Streaming this host's graph to the fleet's central database (off by default).
    #[serde(default)]
    pub fleet: FleetConfig,
    /// On-access scanning of untrusted files (YARA-X, clamd).
    #[serde(default)]
    pub scan: ScanConfig,
    /// What the sensor does by itself when a scan flags a file.
    #[serde(default)]
    pub response: ResponseConfig,
}

/// Applies `$what!(field)` to every key a running sensor takes on at SIGHUP.
macro_rules! live_keys {
    ($what:ident) => {
        $what!(taint_survives_exec, dedup_writes, port_programs, interpreters, activation_points,
               port_program_state, blocked_hosts, response)
    };
}

/// ... and to every key that takes effect at the next start only: the database, socket
/// and pins are open, the ring buffer and the hooks are loaded, the interfaces, naming,
/// metrics listener and fleet link are set up once.
macro_rules! restart_keys {
    ($what:ident) => {
        $what!(database, socket, hook_strategy, ring_buffer_bytes, network_monitoring, interfaces,
               include_loopback, network_degraded_ok, kernel_state, smb_conf, dns_server,
               metrics_listen, dns_zones, fleet, scan)
    };
}

/// Does `path` match `pattern`? `DIR/`: below DIR; `*/NAME`: a file NAME anywhere;
/// `*/DIR/`: below a directory DIR anywhere; otherwise the exact path.
pub fn path_pattern(pattern: &str, path: &str) -> bool {
    if let Some(name) = pattern.strip_prefix("*/") {
        // (Without building "/NAME" strings: every write of a tainted process asks.)
        match name.strip_suffix('/') {
            Some(dir) => path.match_indices('/').any(|(at, _)| path[at + 1..].strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))),
            None => path.rsplit('/').next() == Some(name) || path.strip_suffix(name).is_some_and(|rest| rest.ends_with('/')),
        }
    } else if pattern.ends_with('/') {
        path.starts_with(pattern)
    } else {
        path == pattern
    }
}

/// toml's error (several lines, with a caret under the column) as one: the line number,
/// the key on that line, what is wrong, and the line itself.
fn one_line(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim();
    let Some(start) = e.span().and_then(|span| text.get(..span.start)) else { return message.to_string() };
    let number = start.matches('\n').count() + 1;
    let line = text.lines().nth(number - 1).unwrap_or("").trim();
    match line.split_once('=') {
        Some((key, _)) => format!("line {number}, key `{}`: {message} (`{line}`)", key.trim()),
        None => format!("line {number}: {message} (`{line}`)"),
    }
}

fn yes() -> bool {
    true
}

fn default_kernel_state() -> PathBuf {
    "/sys/fs/bpf/vtrail".into()
}

/// A file overlay: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overlay {
    database: Option<PathBuf>,
    socket: Option<PathBuf>,
    hook_strategy: Option<StrategyChoice>,
    ring_buffer_bytes: Option<u32>,
    taint_survives_exec: Option<bool>,
    dedup_writes: Option<bool>,
    port_programs: Option<Vec<PathBuf>>,
    interpreters: Option<Vec<PathBuf>>,
    activation_points: Option<Vec<String>>,
    port_program_state: Option<Vec<String>>,
    network_monitoring: Option<bool>,
    interfaces: Option<Vec<String>>,
    include_loopback: Option<bool>,
    network_degraded_ok: Option<bool>,
    kernel_state: Option<PathBuf>,
    smb_conf: Option<PathBuf>,
    dns_server: Option<std::net::SocketAddr>,
    metrics_listen: Option<std::net::SocketAddr>,
    dns_zones: Option<Vec<String>>,
    blocked_hosts: Option<Vec<std::net::IpAddr>>,
    fleet: Option<FleetConfig>,
    scan: Option<ScanConfig>,
    response: Option<ResponseConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {key} = {value}: {why}")]
    Invalid { key: &'static str, value: String, why: &'static str },
}

impl Config {
    pub fn embedded_default() -> Self {
        toml::from_str(DEFAULT_CONFIG).expect("the embedded default configuration parses")
    }

    /// The default, overlaid by `path` if given.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = Self::embedded_default();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.into(), source })?;
            config.apply(&text, path)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Applies a TOML overlay. Errors name the file, the line and the key, on one line
    /// (a log line at reload, an error at start).
    pub fn apply(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let overlay: Overlay =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: one_line(&e, text) })?;
        macro_rules! take {
            ($($field:ident),*) => {$( if let Some(v) = overlay.$field { self.$field = v; } )*};
        }
        take!(database, socket, hook_strategy, ring_buffer_bytes, taint_survives_exec,
              dedup_writes, port_programs, interpreters, activation_points, port_program_state,
              network_monitoring, interfaces, include_loopback, network_degraded_ok, kernel_state, dns_zones,
              blocked_hosts);
        if let Some(v) = overlay.smb_conf { self.smb_conf = Some(v); }
        if let Some(v) = overlay.dns_server { self.dns_server = Some(v); }
        if let Some(v) = overlay.metrics_listen { self.metrics_listen = Some(v); }
        if let Some(v) = overlay.fleet { self.fleet = v; }
        if let Some(v) = overlay.scan { self.scan = v; }
        if let Some(v) = overlay.response { self.response = v; }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let rb = self.ring_buffer_bytes;
        if rb < 4096 || !rb.is_power_of_two() {
            return Err(ConfigError::Invalid {
                key: "ring_buffer_bytes",
                value: rb.to_string(),
                why: "must be a power of two and at least 4096 (one page)",
            });
        }
        if let Some(addr) = self.metrics_listen
            && !addr.ip().is_loopback()
        {
            return Err(ConfigError::Invalid {
                key: "metrics_listen",
                value: addr.to_string(),
                why: "must be a loopback address (127.0.0.1 or [::1]): the metrics describe what the sensor sees; publish them further through an authenticating proxy",
            });
        }
        for p in self.port_programs.iter().chain(&self.interpreters) {
            if !p.is_absolute() {
                return Err(ConfigError::Invalid {
                    key: "port_programs/interpreters",
                    value: p.display().to_string(),
                    why: "program paths must be absolute",
                });
            }
        }
        if let Some(p) = self.response.protected_paths.iter().find(|p| !p.starts_with('/')) {
            return Err(ConfigError::Invalid { key: "response.protected_paths", value: p.clone(), why: "paths must be absolute" });
        }
        if let Some(url) = &self.response.webhook
            && let Err(why) = crate::respond::webhook::check_url(url)
        {
            return Err(ConfigError::Invalid { key: "response.webhook", value: url.clone(), why });
        }
        if let Some((key, value, why)) = self.fleet.problem().or_else(|| self.scan.problem()) {
            return Err(ConfigError::Invalid { key, value, why });
        }
        Ok(())
    }

    /// What a reload from `self` to `new` changes: (keys applied live, keys that wait for a
    /// restart), in the file's terms.
    pub fn changes(&self, new: &Config) -> (Vec<&'static str>, Vec<&'static str>) {
        let mut changed = (Vec::new(), Vec::new());
        macro_rules! live {
            ($($field:ident),*) => {$( if self.$field != new.$field { changed.0.push(stringify!($field)); } )*};
        }
        macro_rules! restart {
            ($($field:ident),*) => {$( if self.$field != new.$field { changed.1.push(stringify!($field)); } )*};
        }
        live_keys!(live);
        restart_keys!(restart);
        changed
    }

    /// `new` with the keys that need a restart kept as they are in `self`: the
    /// configuration a running sensor is under after a reload.
    pub fn reloaded(&self, new: &Config) -> Config {
        let mut running = new.clone();
        macro_rules! keep {
            ($($field:ident),*) => {$( running.$field = self.$field.clone(); )*};
        }
        restart_keys!(keep);
        running
    }

    /// Rule 6: the activation point `path` falls under, if any.
    pub fn activation_point(&self, path: &str) -> Option<&str> {
        self.activation_points.iter().map(String::as_str).find(|pattern| path_pattern(pattern, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_served_on_loopback_only() {
        let mut c = Config::embedded_default();
        c.apply("metrics_listen = \"0.0.0.0:9464\"", Path::new("t.toml")).unwrap();
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.contains("metrics_listen") && msg.contains("loopback"), "{msg}");
        c.apply("metrics_listen = \"[::1]:9464\"", Path::new("t.toml")).unwrap();
        c.validate().unwrap();
        assert!(Config::embedded_default().metrics_listen.is_none(), "off by default");
    }

    #[test]
    fn embedded_default_is_valid() {
        Config::embedded_default().validate().unwrap();
    }

    #[test]
    fn bad_key_names_key_and_line() {
        let mut c = Config::embedded_default();
        let err = c.apply("database = \"/x\"\nhook_stratgy = \"kprobe\"\n", Path::new("t.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("hook_stratgy") && msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn fleet_section_is_off_by_default_and_checked() {
        assert!(!Config::embedded_default().fleet.enabled());
        let mut c = Config::embedded_default();
        c.apply("[fleet]\nnats_url = \"nats://10.0.0.1:4222\"\n", Path::new("t.toml")).unwrap();
        assert_eq!(c.fleet.nats_url, vec!["nats://10.0.0.1:4222"]);
        assert_eq!(c.fleet.subject_prefix, "vtrail");
        c.apply("[fleet]\nnats_url = [\"nats://a:1\", \"tls://b:2\"]\nsubject_prefix = \"org.vtrail\"\n", Path::new("t.toml")).unwrap();
        assert_eq!(c.fleet.nats_url.len(), 2);
        c.validate().unwrap();
        for (bad, names) in [
            ("[fleet]\nnats_url = \"nats://a:1\"\nsubject_prefix = \"a.*\"\n", "fleet.subject_prefix"),
            ("[fleet]\nnats_url = \"http://a:1\"\n", "fleet.nats_url"),
            ("[fleet]\nnats_url = \"nats://a:1\"\ncredentials = \"host.nk\"\n", "absolute"),
            ("[fleet.tls]\ncert = \"/c.pem\"\n", "both `cert` and `key`"),
        ] {
            let mut c = Config::embedded_default();
            c.apply(bad, Path::new("t.toml")).unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(names), "{bad:?}: {err}");
        }
        let mut c = Config::embedded_default();
        let err = c.apply("[fleet]\nnats_urls = \"nats://a:1\"\n", Path::new("t.toml")).unwrap_err().to_string();
        assert!(err.contains("nats_urls"), "{err}");
    }

    #[test]
    fn bad_value_type_names_line() {
        let mut c = Config::embedded_default();
        let err = c.apply("\n\nring_buffer_bytes = \"big\"\n", Path::new("t.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("key `ring_buffer_bytes`") && msg.contains("line 3") && !msg.contains('\n'), "{msg}");
    }

    #[test]
    fn dns_naming_keys() {
        let mut c = Config::embedded_default();
        assert!(c.dns_server.is_none() && c.dns_zones.is_empty());
        c.apply("dns_server = \"127.0.0.1:5353\"\ndns_zones = [\"nodes.test\"]\n", Path::new("t.toml")).unwrap();
        assert_eq!(c.dns_server.unwrap().to_string(), "127.0.0.1:5353");
        assert_eq!(c.dns_zones, ["nodes.test"]);
        assert!(c.apply("dns_server = \"nodes.test\"\n", Path::new("t.toml")).is_err());
    }

    #[test]
    fn ring_buffer_must_be_power_of_two() {
        let mut c = Config::embedded_default();
        c.apply("ring_buffer_bytes = 5000", Path::new("t.toml")).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("power of two"));
    }

    #[test]
    fn every_key_is_either_live_or_restart_only() {
        // A key missing from both lists would be neither applied nor reported by a reload:
        // count the fields through an exhaustive destructuring, which a new key breaks.
        let Config {
            database: _, socket: _, hook_strategy: _, ring_buffer_bytes: _, taint_survives_exec: _,
            dedup_writes: _, port_programs: _, interpreters: _, activation_points: _,
            port_program_state: _, network_monitoring: _, interfaces: _, include_loopback: _,
            network_degraded_ok: _, kernel_state: _, smb_conf: _, dns_server: _, metrics_listen: _,
            dns_zones: _, blocked_hosts: _, fleet: _, scan: _, response: _,
        } = Config::embedded_default();
        let mut n = 0;
        macro_rules! count {
            ($($field:ident),*) => {$( let _ = stringify!($field); n += 1; )*};
        }
        live_keys!(count);
        restart_keys!(count);
        assert_eq!(n, 23, "each of Config's 23 keys in exactly one of live_keys! and restart_keys!");
    }

    #[test]
    fn a_reload_applies_live_keys_and_keeps_restart_keys() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.apply("interpreters = [\"/opt/x/sh\"]\nring_buffer_bytes = 8192\nblocked_hosts = [\"10.0.0.9\"]\n", Path::new("t.toml")).unwrap();
        assert_eq!(old.changes(&new), (vec!["interpreters", "blocked_hosts"], vec!["ring_buffer_bytes"]));
        let running = old.reloaded(&new);
        assert_eq!(running.interpreters, new.interpreters);
        assert_eq!(running.ring_buffer_bytes, old.ring_buffer_bytes, "needs a restart");
        assert_eq!(running.changes(&new), (vec![], vec!["ring_buffer_bytes"]), "still waiting at the next reload");
        assert_eq!(old.changes(&old), (vec![], vec![]));
    }

    #[test]
    fn activation_points_match() {
        let c = Config::embedded_default();
        assert_eq!(c.activation_point("/etc/cron.d/evil"), Some("/etc/cron.d/"));
        assert_eq!(c.activation_point("/root/.bashrc"), Some("*/.bashrc"));
        assert_eq!(c.activation_point("/home/a/.ssh/authorized_keys"), Some("*/.ssh/authorized_keys"));
        assert_eq!(c.activation_point("/etc/ld.so.preload"), Some("/etc/ld.so.preload"));
        assert_eq!(c.activation_point("/home/a/.config/systemd/user/x.service"), Some("*/.config/systemd/user/"));
        assert_eq!(c.activation_point("/srv/share/notes.txt"), None);
        assert_eq!(c.activation_point("/etc/cron.dx"), None);
    }

    /// The matcher without allocation agrees with the obvious one (strings built per
    /// call), overlapping and repeated directory names included.
    #[test]
    fn path_pattern_agrees_with_the_string_building_one() {
        fn reference(pattern: &str, path: &str) -> bool {
            if let Some(name) = pattern.strip_prefix("*/") {
                match name.strip_suffix('/') {
                    Some(dir) => path.contains(&format!("/{dir}/")),
                    None => path.rsplit('/').next() == Some(name) || path.ends_with(&format!("/{name}")),
                }
            } else if pattern.ends_with('/') {
                path.starts_with(pattern)
            } else {
                path == pattern
            }
        }
        let patterns = ["*/a/a/", "*/a/", "*/.ssh/authorized_keys", "*/.bashrc", "*//", "*/", "/etc/cron.d/", "*/x/y/"];
        let paths = ["/ba/a/a/x", "/a/a/a/a", "/a", "a/", "/root/.bashrc", "x.bashrc", "/h/.ssh/authorized_keys", "//", "/x/y/x/y/z", "/etc/cron.d/j", ""];
        for pattern in patterns {
            for path in paths {
                assert_eq!(path_pattern(pattern, path), reference(pattern, path), "{pattern} ~ {path}");
            }
        }
    }
}
