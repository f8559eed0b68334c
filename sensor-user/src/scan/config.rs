//! `[scan]` and `[response]`: which engines look at untrusted files, and what the sensor
//! does on its own when one flags a file.
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// Directory of YARA rules (`*.yar`, `*.yara`) for YARA-X, compiled at start-up. A
    /// directory that does not exist turns YARA-X off (said at start and in `status`);
    /// a rule that does not compile stops the start, naming its file and line.
    #[serde(default)]
    pub yara_rules: Option<PathBuf>,
    /// clamd's Unix socket (Debian: /run/clamav/clamd.ctl). Unset = ClamAV off.
    #[serde(default)]
    pub clamd_socket: Option<PathBuf>,
    /// Files larger than this are not scanned (counted, and said in the verdict).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Scan threads.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Files waiting for a scan thread; past it, files wait (by name) to be queued again.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// How long clamd may take over one file, milliseconds.
    #[serde(default = "default_clamd_timeout_ms")]
    pub clamd_timeout_ms: u64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            yara_rules: None,
            clamd_socket: None,
            max_file_bytes: default_max_file_bytes(),
            workers: default_workers(),
            queue: default_queue(),
            clamd_timeout_ms: default_clamd_timeout_ms(),
        }
    }
}

impl ScanConfig {
    /// What is wrong with the section, as (key, value, why).
    pub fn problem(&self) -> Option<(&'static str, String, &'static str)> {
        if self.workers == 0 || self.workers > 64 {
            return Some(("scan.workers", self.workers.to_string(), "must be 1 to 64"));
        }
        if self.queue == 0 || self.queue > 1 << 20 {
            return Some(("scan.queue", self.queue.to_string(), "must be 1 to 1048576"));
        }
        if self.max_file_bytes == 0 {
            return Some(("scan.max_file_bytes", "0".into(), "must be above 0"));
        }
        None
    }
}

fn default_max_file_bytes() -> u64 {
    64 << 20
}
fn default_workers() -> usize {
    2
}
fn default_queue() -> usize {
    4096
}
fn default_clamd_timeout_ms() -> u64 {
    30_000
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    /// Quarantine the host a flagged file was received from (its SMB CREATEs and FTP
    /// uploads dropped; other traffic passes; `unblock` lifts it).
    #[serde(default = "yes")]
    pub block_sender: bool,
    /// Stop every later exec of the flagged file in the kernel (SIGKILL from the exec hook,
    /// before the image runs), recorded as `prevented`.
    #[serde(default = "yes")]
    pub deny_exec: bool,
    /// Kill the processes running the flagged file when it is flagged, recorded as
    /// `prevented`.
    #[serde(default)]
    pub kill: bool,
    /// No untrusted file runs before its verdict: its execs wait (fanotify permission
    /// events on that file's inode only) for the scan, `hold_timeout_ms` at most.
    #[serde(default)]
    pub hold_until_scanned: bool,
    #[serde(default = "default_hold_timeout_ms")]
    pub hold_timeout_ms: u64,
    /// What a held exec gets when no verdict came in time.
    #[serde(default)]
    pub hold_on_timeout: OnTimeout,
    /// Paths no tainted process may write: one that opens a protected file for writing,
    /// or creates a file in a protected directory, is killed in the kernel's open hook
    /// (`prevented` in the graph). `apply-rules` adds to them. Untainted processes are
    /// never affected.
    #[serde(default)]
    pub protected_paths: Vec<String>,
    /// Every alert POSTed here as its JSON document (https:// or http://), retried until
    /// the receiver takes it. Unset = off. Read at start (a change waits for a restart).
    #[serde(default)]
    pub webhook: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    Allow,
    #[default]
    Deny,
}

fn default_hold_timeout_ms() -> u64 {
    5000
}

impl Default for ResponseConfig {
    fn default() -> Self {
        Self {
            block_sender: true,
            deny_exec: true,
            kill: false,
            hold_until_scanned: false,
            hold_timeout_ms: default_hold_timeout_ms(),
            hold_on_timeout: OnTimeout::Deny,
            protected_paths: Vec::new(),
            webhook: None,
        }
    }
}

fn yes() -> bool {
    true
}
