//! `vtrail-sensor status`: what the daemon answers, as one typed record shared by the
//! daemon (which fills it) and the CLI (which prints it, or passes the JSON through).
use std::{collections::BTreeMap, fmt, path::PathBuf};

use serde::{Deserialize, Serialize};
use sensor_common::graph::HostInfo;

use crate::{
    fleet::FleetStatus,
    correlate::{attribution, naming::NamingStats},
    decode::reassembly::ReassemblyStats,
    kernel::{state::CarriedOver, strategy::Strategy},
};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub host: HostInfo,
    pub started_ns: u64,
    pub strategy: Strategy,
    /// Strategies tried before the one in use, with why each was skipped.
    pub strategy_fallbacks: Vec<String>,
    pub attached_programs: Vec<String>,
    pub missing_optional_programs: Vec<String>,
    /// Ring-buffer records decoded, by event kind.
    pub events_received: BTreeMap<String, u64>,
    pub decode_errors: u64,
    pub ingest_errors: u64,
    pub port_program_state_writes_ignored: u64,
    /// The kernel's drop counters by `reason.kind` (`ringbuf_full.create`).
    pub kernel_drops: BTreeMap<String, u64>,
    pub kernel_state: KernelStateStatus,
    /// Events a slow `events --follow` client missed (the graph has them).
    pub follower_lagged_events: u64,
    pub naming: NamingStats,
    pub network: NetworkStatus,
    pub database: DatabaseStatus,
    #[serde(default)]
    pub fleet: FleetStatus,
    #[serde(default)]
    pub ring: RingStatus,
    #[serde(default)]
    pub config: ConfigStatus,
    #[serde(default)]
    pub scan: ScanStatus,
}

/// On-access scanning: what was scanned and found, what waits, what could not be done.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScanStatus {
    pub enabled: bool,
    /// `yara-x (N rules)`, `clamav (SOCKET)`.
    pub engines: Vec<String>,
    /// Untrusted files given an inode mark: their closes are reported (no other file's).
    #[serde(default)]
    pub watched: u64,
    /// Untrusted files gone before they could be marked (removed or replaced), marks the
    /// kernel refused (max_user_marks), requests the full marking queue dropped.
    #[serde(default)]
    pub watch_gone: u64,
    #[serde(default)]
    pub watch_mark_failures: u64,
    #[serde(default)]
    pub watch_queue_full: u64,
    /// Closes after a write seen (of marked files), and untrusted files queued for a scan.
    pub closes_seen: u64,
    pub queued: u64,
    pub scanned: u64,
    pub clean: u64,
    pub detected: u64,
    /// Not scanned, and why is in the verdict: too large, unreadable, changed, engine error.
    pub not_scanned: u64,
    pub too_large: u64,
    /// Rescans skipped: the file had not changed since its verdict.
    pub cache_hits: u64,
    /// Files the full queue kept for a later try; waiting now; lost (the retry list full).
    pub queue_full: u64,
    pub waiting: u64,
    pub lost: u64,
    /// Kept files renamed or removed before their retry (scanned at their next close).
    #[serde(default)]
    pub gone: u64,
    /// Scans clamd could not answer (down, timed out): those files wait for a rescan.
    pub clamd_unavailable: u64,
    /// fanotify queue overflows (closes not seen).
    pub watch_overflows: u64,
    pub alerts: u64,
    pub responses_failed: u64,
    /// Detections of content already flagged (no second alert).
    #[serde(default)]
    pub repeated_detections: u64,
    /// hold_until_scanned: on; execs of untrusted files held, let run once clean, refused
    /// as flagged, answered by the timeout rule, answered at once (too many held).
    #[serde(default)]
    pub hold_enabled: bool,
    #[serde(default)]
    pub held_execs: u64,
    #[serde(default)]
    pub held_allowed_clean: u64,
    #[serde(default)]
    pub held_denied_malicious: u64,
    #[serde(default)]
    pub held_timed_out: u64,
    #[serde(default)]
    pub held_over_limit: u64,
    /// Untrusted files whose execs could not be held (the fanotify mark failed).
    #[serde(default)]
    pub hold_mark_failures: u64,
    /// `[response] webhook`: alerts it took, failed attempts, the last failure.
    #[serde(default)]
    pub webhook_delivered: u64,
    #[serde(default)]
    pub webhook_failures: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_last_error: Option<String>,
}

/// The configuration in effect: where it was read, when, and what the reloads (SIGHUP)
/// did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConfigStatus {
    /// `--config`; None = the embedded default alone.
    pub path: Option<PathBuf>,
    /// When the configuration in effect was read (start or last good reload), Unix ns.
    pub loaded_ns: u64,
    /// Reloads applied, and reloads refused (the file did not parse or validate: the
    /// configuration in effect was kept).
    pub reloads: u64,
    pub failed_reloads: u64,
    /// Why the last reload was refused or applied only in part; None once one succeeds.
    pub last_reload_error: Option<String>,
    /// Keys that differ in the file and wait for a restart.
    pub restart_needed: Vec<String>,
}

/// The kernel ring buffer and the queue between the thread that drains it and ingest
/// (`daemon::drain`): how close the sensor came to dropping.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RingStatus {
    pub size_bytes: u64,
    /// Written by the kernel and not yet drained, now and at most since start.
    pub used_bytes: u64,
    pub peak_used_bytes: u64,
    pub drained_records: u64,
    /// Drained and not yet in the graph, now and at most since start.
    pub queued_records: u64,
    pub queued_bytes: u64,
    pub peak_queued_records: u64,
    pub peak_queued_bytes: u64,
    pub queue_limit_bytes: u64,
    /// Times the queue was full and records were left in the ring.
    pub queue_full_waits: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KernelStateStatus {
    pub carried_over: CarriedOver,
    /// Whether the programs' links are pinned (they stay attached if the sensor dies),
    /// and those that could not be.
    #[serde(default)]
    pub links_pinned: bool,
    #[serde(default)]
    pub unpinned_links: Vec<String>,
    pub untrusted_inodes: usize,
    /// Entries and capacity of the kernel's PROCS and INODES maps: a full map stops
    /// taint from spreading in the kernel (counted as drops).
    #[serde(default)]
    pub procs_entries: usize,
    #[serde(default)]
    pub procs_capacity: usize,
    #[serde(default)]
    pub inodes_entries: usize,
    #[serde(default)]
    pub inodes_capacity: usize,
}

/// Network monitoring; `enabled: false` with `failure` set when it failed and the sensor
/// runs without it (`network_degraded_ok`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NetworkStatus {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Quarantined addresses (from the database: known even with monitoring off).
    #[serde(default)]
    pub blocked_hosts: Vec<String>,
    #[serde(default)]
    pub interfaces: Vec<String>,
    #[serde(default)]
    pub attach_failures: Vec<String>,
    /// The TC programs' counters by name (`blocked_drops`, ...).
    #[serde(default)]
    pub kernel_counters: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<attribution::Stats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassembly: Option<ReassemblyStats>,
    #[serde(default)]
    pub decode_errors: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DatabaseStatus {
    pub path: PathBuf,
    pub size_bytes: u64,
    pub nodes: usize,
    pub edges: usize,
    pub untrusted_files: usize,
    pub tainted_processes: usize,
    /// Flushes to disk (every `FLUSH_INTERVAL`, and after each operator change), their
    /// total and last duration.
    #[serde(default)]
    pub flushes: u64,
    #[serde(default)]
    pub flush_seconds: f64,
    #[serde(default)]
    pub last_flush_seconds: f64,
    /// Time spent writing events into the graph (ingest), in all.
    #[serde(default)]
    pub ingest_seconds: f64,
}

/// The human summary `vtrail-sensor status` prints: what is not enforced first.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = &self.network;
        if net.enabled {
            if net.interfaces.is_empty() {
                writeln!(f, "network:    WATCHING NO INTERFACE: blocks are not enforced, uploads not attributed")?;
            } else {
                writeln!(f, "network:    on {}", net.interfaces.join(", "))?;
            }
            for failure in &net.attach_failures {
                writeln!(f, "  FAILED:   {failure}")?;
            }
        } else if let Some(why) = &net.failure {
            writeln!(f, "network:    FAILED, running without it (network_degraded_ok): no SMB/FTP attribution, no quarantine")?;
            writeln!(f, "  FAILED:   {why}")?;
        } else {
            writeln!(f, "network:    off (no SMB/FTP attribution, no quarantine)")?;
            if !net.blocked_hosts.is_empty() {
                writeln!(f, "  NOT ENFORCED: {} blocked host(s): {}", net.blocked_hosts.len(), net.blocked_hosts.join(", "))?;
            }
        }
        writeln!(f, "strategy:   {}", self.strategy.name())?;
        for skipped in &self.strategy_fallbacks {
            writeln!(f, "  skipped:  {skipped}")?;
        }
        let ks = &self.kernel_state;
        let survive = match (ks.links_pinned, ks.unpinned_links.len()) {
            (false, _) => String::new(),
            (true, 0) => ", kept attached if the sensor dies (pinned links)".into(),
            (true, n) => format!(", {n} of them detach if the sensor dies (links not pinnable here)"),
        };
        writeln!(f, "programs:   {} attached{survive}", self.attached_programs.len())?;
        if ks.carried_over.released_links > 0 {
            writeln!(
                f,
                "  the last sensor did not stop cleanly: its {} programs were still attached (released at start); {} entries they added merged",
                ks.carried_over.released_links, ks.carried_over.late_entries
            )?;
        }
        for missing in &self.missing_optional_programs {
            writeln!(f, "  missing:  {missing} (optional)")?;
        }
        writeln!(f, "events:     {}", serde_json::to_string(&self.events_received).unwrap_or_default())?;
        let drops: Vec<String> = self.kernel_drops.iter().filter(|(_, n)| **n != 0).map(|(k, n)| format!("{k}={n}")).collect();
        writeln!(f, "drops:      {}", if drops.is_empty() { "none".into() } else { drops.join(" ") })?;
        let db = &self.database;
        writeln!(
            f,
            "database:   {} ({} bytes, {} nodes, {} edges, {} untrusted files, {} tainted processes)",
            db.path.display(),
            db.size_bytes,
            db.nodes,
            db.edges,
            db.untrusted_files,
            db.tainted_processes
        )?;
        self.fleet.fmt_line(f)?;
        self.scan.fmt_line(f)?;
        self.config.fmt_line(f)
    }
}

impl ScanStatus {
    fn fmt_line(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enabled {
            return writeln!(f, "scan:       off (no YARA rules, no clamd socket)");
        }
        writeln!(
            f,
            "scan:       {}: {} scanned, {} clean, {} FLAGGED, {} not scanned, {} waiting; {} alert(s)",
            self.engines.join(", "),
            self.scanned,
            self.clean,
            self.detected,
            self.not_scanned,
            self.waiting,
            self.alerts
        )?;
        if self.clamd_unavailable > 0 || self.lost > 0 || self.watch_overflows > 0 || self.responses_failed > 0 || self.watch_mark_failures > 0 || self.watch_queue_full > 0 {
            writeln!(
                f,
                "  PROBLEMS: clamd unavailable {} time(s), {} file(s) given up, {} fanotify overflow(s), {} failed response(s), {} file(s) not watched for rewrites ({} marks refused)",
                self.clamd_unavailable,
                self.lost,
                self.watch_overflows,
                self.responses_failed,
                self.watch_mark_failures + self.watch_queue_full,
                self.watch_mark_failures
            )?;
        }
        Ok(())
    }
}

impl ConfigStatus {
    fn fmt_line(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.as_ref().map_or("embedded default".into(), |p| p.display().to_string());
        writeln!(f, "config:     {path}, loaded at {} (Unix s), {} reload(s), {} refused", self.loaded_ns / 1_000_000_000, self.reloads, self.failed_reloads)?;
        if let Some(error) = &self.last_reload_error {
            writeln!(f, "  last reload: {error}")?;
        }
        if !self.restart_needed.is_empty() {
            writeln!(f, "  restart needed for: {}", self.restart_needed.join(", "))?;
        }
        Ok(())
    }
}

impl FleetStatus {
    fn fmt_line(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enabled {
            return writeln!(f, "fleet:      off (this host's graph stays local)");
        }
        let link = if self.connected { "connected" } else { "NOT CONNECTED" };
        let age = self.backlog_age_seconds.map(|a| format!(", oldest {a:.1} s")).unwrap_or_default();
        writeln!(
            f,
            "fleet:      {link} to {} on {}: acked up to {}, backlog {} record(s){age}",
            self.servers.join(", "),
            self.subject,
            self.acked_seq,
            self.backlog_records
        )?;
        if let Some(problem) = &self.problem {
            writeln!(f, "  problem:  {problem}")?;
        }
        let errors: Vec<String> = self.publish_errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
        if !errors.is_empty() {
            writeln!(f, "  errors:   {}", errors.join(" "))?;
        }
        if self.forced_reconnects > 0 {
            writeln!(f, "  reconnects forced (acks stopped on a link that looked up): {}", self.forced_reconnects)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn status() -> Status {
        Status {
            pid: 1,
            host: HostInfo { id: "disk-1".into(), hostname: "fs-01".into(), disk_ids: vec!["disk-1".into()] },
            started_ns: 5,
            strategy: Strategy::Tracepoint,
            strategy_fallbacks: vec!["fentry: EPERM".into()],
            attached_programs: vec!["tp_a".into(), "tp_b".into()],
            missing_optional_programs: vec![],
            events_received: [("create".to_owned(), 3)].into(),
            decode_errors: 0,
            ingest_errors: 0,
            port_program_state_writes_ignored: 0,
            kernel_drops: [("ringbuf_full.create".to_owned(), 2), ("ringbuf_full.exec".to_owned(), 0)].into(),
            kernel_state: KernelStateStatus::default(),
            follower_lagged_events: 0,
            naming: NamingStats::default(),
            network: NetworkStatus { blocked_hosts: vec!["10.0.0.9".into()], ..Default::default() },
            database: DatabaseStatus { path: "/var/lib/vtrail/db".into(), ..Default::default() },
            fleet: FleetStatus::default(),
            ring: RingStatus::default(),
            config: ConfigStatus::default(),
            scan: ScanStatus::default(),
        }
    }

    #[test]
    fn the_cli_reads_what_the_daemon_writes_and_says_what_is_not_enforced_first() {
        let json = serde_json::to_string(&status()).unwrap();
        let back: Status = serde_json::from_str(&json).unwrap();
        let text = back.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "network:    off (no SMB/FTP attribution, no quarantine)", "{text}");
        assert_eq!(lines[1], "  NOT ENFORCED: 1 blocked host(s): 10.0.0.9", "{text}");
        assert!(text.contains("strategy:   tracepoint\n  skipped:  fentry: EPERM\nprograms:   2 attached\n"), "{text}");
        assert!(text.contains("drops:      ringbuf_full.create=2\n"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["kernel_drops"]["ringbuf_full.create"], 2);
        assert_eq!(value["network"]["enabled"], false);
    }
}
