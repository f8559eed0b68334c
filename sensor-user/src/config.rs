//! Sensor configuration: an embedded default (`default-config.toml`) overlaid by an
//! optional file. A bad file is reported with the key and line at fault.
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::fleet::config::FleetConfig;

pub const DEFAULT_CONFIG: &str = include_str!("default-config.toml");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StrategyChoice {
    Auto,
    Fentry,
    Kprobe,
    Tracepoint,
}

#[derive(Clone, Debug, Deserialize)]
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
    /// Streaming this host's graph to the fleet's central database (off by default).
    #[serde(default)]
    pub fleet: FleetConfig,
}

/// Does `path` match `pattern`? `DIR/`: below DIR; `*/NAME`: a file NAME anywhere;
/// `*/DIR/`: below a directory DIR anywhere; otherwise the exact path.
pub fn path_pattern(pattern: &str, path: &str) -> bool {
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
    fleet: Option<FleetConfig>,
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

    /// Applies a TOML overlay. Errors name the file, the line and the key (toml's
    /// message carries line, column and the offending key).
    pub fn apply(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let overlay: Overlay = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string().trim_end().to_string(),
        })?;
        macro_rules! take {
            ($($field:ident),*) => {$( if let Some(v) = overlay.$field { self.$field = v; } )*};
        }
        take!(database, socket, hook_strategy, ring_buffer_bytes, taint_survives_exec,
              dedup_writes, port_programs, interpreters, activation_points, port_program_state,
              network_monitoring, interfaces, include_loopback, network_degraded_ok, kernel_state, dns_zones);
        if let Some(v) = overlay.smb_conf { self.smb_conf = Some(v); }
        if let Some(v) = overlay.dns_server { self.dns_server = Some(v); }
        if let Some(v) = overlay.metrics_listen { self.metrics_listen = Some(v); }
        if let Some(v) = overlay.fleet { self.fleet = v; }
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
        if let Some((key, value, why)) = self.fleet.problem() {
            return Err(ConfigError::Invalid { key, value, why });
        }
        Ok(())
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
        assert!(msg.contains("ring_buffer_bytes") && msg.contains("line 3"), "{msg}");
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
}
