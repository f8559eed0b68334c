//! The control socket protocol: one JSON request line from the client, JSON lines back.
use serde::{Deserialize, Serialize};

use crate::graph::export::Format;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Stream events as JSON lines until the client hangs up.
    Events,
    Trust { path: String, by: String },
    Taint { path: String, by: String },
    Export { format: Format, since_ns: Option<u64> },
    /// Quarantine a remote host: `target` is an IP or a `remote:<ip>` node id.
    Block { target: String, by: String },
    Unblock { target: String, by: String },
}

/// The user running a CLI command, recorded on relabels.
pub fn who_am_i() -> String {
    let uid = unsafe { libc::getuid() };
    let name = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_default();
    format!("{name}(uid {uid})")
}
