//! The time-stamped provenance graph: the schema shared by the sensor (which writes it
//! to sled and exports it) and `vtrail-analysis` (which reads one host's database or the
//! exported dumps of many hosts).
//!
//! Edges point the way information flows, cause -> effect:
//!
//! | edge            | src       | dst       | meaning                                          |
//! |-----------------|-----------|-----------|--------------------------------------------------|
//! | `exec`          | file      | process   | the process executed the file                    |
//! | `read`          | file      | process   | an interpreter read the (untrusted) file          |
//! | `fork`          | process   | process   | parent created child                             |
//! | `create`        | process   | file      | created or truncated at open                     |
//! | `write`         | process   | file      | wrote data                                       |
//! | `truncate`      | process   | file      | truncate/ftruncate                               |
//! | `chmod`         | process   | file      | mode change; `attrs.mode`, `attrs.executable`    |
//! | `rename`        | process   | file      | `attrs.from`, `attrs.to`                         |
//! | `link`          | process   | file      | new hard link `attrs.to`                         |
//! | `unlink`        | process   | file      | name removed                                     |
//! | `received_from` | remote    | file      | the file arrived from that node over the network |
//! | `sent_to`       | file      | remote    | the file left for that node                      |
//! | `relabel`       | actor     | file      | marked trusted/untrusted by hand                 |
//! | `block`/`unblock` | host    | remote    | quarantine rule changed                          |
//!
//! Attributes readers rely on: `received_from`/`sent_to` carry `protocol` ("smb2"|"ftp"),
//! `name` (as sent on the wire), `ip`, `port` and `verb`; `relabel` carries `to`
//! ("trusted"|"untrusted") and `by`; `exec`/`read` carry `taint_reason`.
//!
//! A `write`/`create`/`chmod`/`rename` edge whose destination is an activation point
//! (cron, systemd units, shell rc files, ...) carries `attrs.activation_point` and
//! `attrs.severity = "high"`.
//!
//! Node ids are strings that say what they are and where: `host:<host-id>`,
//! `proc:<host-id>:<tgid>:<start-ticks>`, `file:<host-id>:<dev>:<ino>`, `remote:<ip>`,
//! `user:<name>(uid <uid>)` (an operator).
//! `<start-ticks>` is the process start time in clock ticks since boot (as in
//! `/proc/PID/stat` field 22), so processes found in /proc at start-up and processes seen
//! by the kernel get the same id. `<dev>` is the kernel's `dev_t` (`MAJOR << 20 | MINOR`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; readers refuse versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;
/// First line of every dump: `{"format":"vtrail-graph", ...}`.
pub const DUMP_FORMAT: &str = "vtrail-graph";

/// Names of the sled trees.
pub mod trees {
    /// `schema_version` (u32 BE), `host` (JSON `HostInfo`), `boot_ns`.
    pub const META: &str = "meta";
    /// node id -> JSON `Node`
    pub const NODES: &str = "nodes";
    /// ts_ns (u64 BE) ++ seq (u64 BE) -> JSON `Edge`: time-ordered.
    pub const EDGES: &str = "edges";
    /// dev (u32 BE) ++ ino (u64 BE) -> JSON `TaintedFile`: what the kernel map is rebuilt from.
    pub const UNTRUSTED_FILES: &str = "untrusted_files";
    /// tgid (u32 BE) ++ start_ticks (u64 BE) -> process node id.
    pub const TAINTED_PROCS: &str = "tainted_procs";
    /// Blocked remote address (text) -> JSON `{"by", "ts_ns"}`: the quarantine the
    /// classifier's `BLOCKED` map is rebuilt from at start-up.
    pub const BLOCKED_HOSTS: &str = "blocked_hosts";
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// This host's node id: its first disk id, or `hostname-<name>` until naming lands.
    pub id: String,
    pub hostname: String,
    /// Every disk id of the host (see `ddns-updater`).
    #[serde(default)]
    pub disk_ids: Vec<String>,
}

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
        /// Every path the file was seen under, oldest first.
        paths: Vec<String>,
        untrusted: bool,
        executable: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    Remote {
        ip: String,
        /// Node ids the IP resolved to when seen (reverse DNS mapping); empty if unknown.
        #[serde(default)]
        node_ids: Vec<String>,
    },
    /// An operator who relabelled a file (`relabel` edges start here): `name(uid N)`.
    User {
        name: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    Exec,
    Read,
    Fork,
    Create,
    Write,
    Truncate,
    Chmod,
    Rename,
    Link,
    Unlink,
    ReceivedFrom,
    SentTo,
    Relabel,
    Block,
    Unblock,
    /// A tainted process opened (or, for `direction = in`, closed an accepted) TCP
    /// connection: process -> remote.
    Connect,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// Wall-clock ns since the Unix epoch when it happened (kernel time stamp).
    pub ts_ns: u64,
    pub kind: EdgeKind,
    pub src: String,
    pub dst: String,
    /// Host node id of the sensor that recorded it.
    pub host: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, serde_json::Value>,
}

/// Value of the `untrusted_files` tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaintedFile {
    pub node: String,
    pub generation: u32,
    /// Marked only because a port program (not a tainted process) wrote it: if it turns
    /// out to be the program's own state (`port_program_state`), the mark is lifted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_port_program: bool,
}

/// First line of a JSON-lines dump. Then one `DumpLine` per line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DumpHeader {
    pub format: String,
    pub schema_version: u32,
    pub host: HostInfo,
    pub exported_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ns: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpLine {
    Node(Node),
    Edge(Edge),
}

pub fn host_node_id(host_id: &str) -> String {
    format!("host:{host_id}")
}
pub fn process_node_id(host_id: &str, tgid: u32, start_ticks: u64) -> String {
    format!("proc:{host_id}:{tgid}:{start_ticks}")
}
pub fn file_node_id(host_id: &str, dev: u32, ino: u64) -> String {
    format!("file:{host_id}:{dev}:{ino}")
}
pub fn user_node_id(name: &str) -> String {
    format!("user:{name}")
}

pub fn remote_node_id(ip: &str) -> String {
    format!("remote:{ip}")
}

/// How a file path is stored (node `paths`, edge `path`/`from`/`to`): text that gives back
/// the exact bytes the kernel has. Valid UTF-8 is kept as it is, except that a backslash
/// is written `\\`; each byte that is not part of valid UTF-8 is written `\xNN` (two
/// lower-case hex digits). So `caf\xe9` is the Latin-1 name `café`, and [`path_bytes`]
/// turns any stored path back into its bytes. Control characters stay as they are here:
/// text outputs escape them when they print (`vtrail-analysis`).
pub fn path_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The bytes of a path stored by [`path_text`]; None if `text` holds an escape that
/// `path_text` never writes.
pub fn path_bytes(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'\\' {
            out.push(b);
            rest = tail;
            continue;
        }
        match tail {
            [b'\\', more @ ..] => {
                out.push(b'\\');
                rest = more;
            }
            [b'x', h, l, more @ ..] => {
                let hex = |c: u8| (c as char).to_digit(16).filter(|_| !c.is_ascii_uppercase());
                out.push((hex(*h)? * 16 + hex(*l)?) as u8);
                rest = more;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn paths_round_trip_to_their_bytes() {
        let cases: [&[u8]; 7] = [
            b"/srv/share/invoice.pdf",
            b"/srv/caf\xe9.exe",
            b"/srv/a\\b",
            b"/srv/\\x41",
            "/srv/\u{1F600} \u{1b}[2J\n".as_bytes(),
            b"/srv/\xff\xfe\x80",
            b"",
        ];
        for bytes in cases {
            let text = path_text(bytes);
            assert_eq!(path_bytes(&text).as_deref(), Some(bytes), "{text}");
        }
        assert_eq!(path_text(b"/srv/caf\xe9"), "/srv/caf\\xe9");
        assert_eq!(path_text(b"/a\\x41"), "/a\\\\x41");
        assert_eq!(path_text("/plain/ü".as_bytes()), "/plain/ü");
        assert_eq!(path_bytes("\\q"), None);
        assert_eq!(path_bytes("\\xE9"), None);
    }
}
