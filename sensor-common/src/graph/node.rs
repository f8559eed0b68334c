//! Nodes: hosts, processes, files, remote addresses and operators, and their ids.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    /// Host node id (`HostInfo.id`) of the sensor that recorded it.
    pub host: String,
    /// Wall-clock ns since the Unix epoch.
    pub first_seen_ns: u64,
    #[serde(flatten)]
    pub data: NodeData,
}

/// What a node is; `kind` in the JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeData {
    Host {
        hostname: String,
        #[serde(default)]
        disk_ids: Vec<String>,
    },
    Process {
        tgid: u32,
        start_ticks: u64,
        exe: String,
        comm: String,
        uid: u32,
        tainted: bool,
    },
    File {
        dev: u32,
        ino: u64,
        /// Every path the file was seen under, oldest first (stored as [`super::path_text`]).
        paths: Vec<String>,
        untrusted: bool,
        executable: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        /// A scan engine flagged it (a `detected` edge says which and when).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        malicious: bool,
        /// The verdict of its latest scan (on-access scanning).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scan: Option<FileScan>,
    },
    Remote {
        ip: String,
        /// Node ids the IP resolved to when seen (reverse DNS mapping); empty if unknown.
        #[serde(default)]
        node_ids: Vec<String>,
    },
    /// An operator who relabelled a file (`relabel` edges start here): `name(uid N)`.
    User { name: String },
}

/// What the latest scan of a file found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileScan {
    pub verdict: ScanVerdict,
    /// Why it was not scanned, or what an engine could not do (`not_scanned`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The engines that looked at it (`yara-x`, `clamav`).
    #[serde(default)]
    pub engines: Vec<String>,
    /// sha256 and size of the content scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub size: u64,
    pub ts_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanVerdict {
    Clean,
    Malicious,
    /// Too large, unreadable, changed while read, an engine error: see `reason`.
    NotScanned,
}

/// The kind of a node without its data, for indexes and filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Host,
    Process,
    File,
    Remote,
    User,
}

impl NodeData {
    pub fn kind(&self) -> NodeKind {
        match self {
            NodeData::Host { .. } => NodeKind::Host,
            NodeData::Process { .. } => NodeKind::Process,
            NodeData::File { .. } => NodeKind::File,
            NodeData::Remote { .. } => NodeKind::Remote,
            NodeData::User { .. } => NodeKind::User,
        }
    }
}

impl NodeKind {
    /// The prefix of this kind's node ids (`proc` for `proc:<host>:<tgid>:<ticks>`).
    pub const fn id_prefix(self) -> &'static str {
        match self {
            NodeKind::Host => "host",
            NodeKind::Process => "proc",
            NodeKind::File => "file",
            NodeKind::Remote => "remote",
            NodeKind::User => "user",
        }
    }

    /// The kind a node id names by its prefix; None for an id no sensor writes.
    pub fn of_id(id: &str) -> Option<NodeKind> {
        let prefix = id.split(':').next()?;
        [NodeKind::Host, NodeKind::Process, NodeKind::File, NodeKind::Remote, NodeKind::User]
            .into_iter()
            .find(|k| k.id_prefix() == prefix)
    }
}

/// Node ids are strings that say what they are and where; these build every one of them.
pub fn host_node_id(host_id: &str) -> String {
    format!("host:{host_id}")
}
/// `<start_ticks>` is the process start time in clock ticks since boot (`/proc/PID/stat`
/// field 22), so processes found in /proc at start-up and those seen by the kernel agree.
pub fn process_node_id(host_id: &str, tgid: u32, start_ticks: u64) -> String {
    format!("proc:{host_id}:{tgid}:{start_ticks}")
}
/// `<dev>` is the kernel's `dev_t` (`MAJOR << 20 | MINOR`).
pub fn file_node_id(host_id: &str, dev: u32, ino: u64) -> String {
    format!("file:{host_id}:{dev}:{ino}")
}
pub fn user_node_id(name: &str) -> String {
    format!("user:{name}")
}
pub fn remote_node_id(ip: &str) -> String {
    format!("remote:{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_kind() {
        let ids = [
            (host_node_id("d1"), NodeKind::Host),
            (process_node_id("d1", 7, 9), NodeKind::Process),
            (file_node_id("d1", 1, 2), NodeKind::File),
            (remote_node_id("10.0.0.1"), NodeKind::Remote),
            (user_node_id("root(uid 0)"), NodeKind::User),
        ];
        for (id, kind) in ids {
            assert_eq!(NodeKind::of_id(&id), Some(kind), "{id}");
        }
        assert_eq!(NodeKind::of_id("disk:x"), None);
    }
}
