//! The time-stamped provenance graph: the schema the sensor writes (to sled, to dumps,
//! and to the fleet) and `vtrail-analysis` reads. This module is its reference:
//! [`edge`] lists the edge kinds and the attributes of each, [`node`] the node kinds and
//! how node ids are built, [`path`] how file paths are stored, [`v1`] what changed since
//! schema version 1 and how version-1 records are read.

pub mod alert;
pub mod database;
mod edge;
mod node;
mod path;
pub mod fleet;
pub mod v1;

pub use edge::*;
pub use node::*;
pub use path::*;

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; readers refuse versions they do not know.
/// Version 2 types the edge attributes per kind ([`EdgeData`]); version 1 is still read
/// ([`v1`], [`edge_from_json`]).
pub const SCHEMA_VERSION: u32 = 2;
/// The schema versions readers accept.
pub const READABLE_SCHEMA_VERSIONS: [u32; 2] = [1, 2];
/// First line of every dump: `{"format":"vtrail-graph", ...}`.
pub const DUMP_FORMAT: &str = "vtrail-graph";

/// An edge record of schema `version` (one of [`READABLE_SCHEMA_VERSIONS`]).
pub fn edge_from_json(version: u32, json: &[u8]) -> Result<Edge, serde_json::Error> {
    if version == 1 { v1::edge_from_v1(json) } else { serde_json::from_slice(json) }
}

/// A dump line of schema `version` (one of [`READABLE_SCHEMA_VERSIONS`]).
pub fn dump_line_from_json(version: u32, json: &[u8]) -> Result<DumpLine, serde_json::Error> {
    if version == 1 { v1::dump_line_from_v1(json) } else { serde_json::from_slice(json) }
}

/// Names of the sled trees.
pub mod trees {
    /// `schema_version` (u32 BE), `host` (JSON `HostInfo`), `boot_ns`.
    pub const META: &str = "meta";
    /// node id -> JSON `Node`
    pub const NODES: &str = "nodes";
    /// Database versions 1-2: ts_ns (u64 BE) ++ seq (u64 BE) -> JSON `Edge`: time-ordered.
    pub const EDGES: &str = "edges";
    /// Database version 3: [`super::database::ChunkKey`] -> JSON lines of `Edge`.
    pub const EDGE_CHUNKS: &str = "edge_chunks";
    /// Database versions 1-2: dev (u32 BE) ++ ino (u64 BE) -> JSON `TaintedFile`: what the
    /// kernel map is rebuilt from.
    pub const UNTRUSTED_FILES: &str = "untrusted_files";
    /// Database version 3: [`super::database::bucket_key`] -> JSON array of
    /// [`super::database::BucketEntry`]: what the kernel map is rebuilt from.
    pub const UNTRUSTED_BUCKETS: &str = "untrusted_buckets";
    /// tgid (u32 BE) ++ start_ticks (u64 BE) -> process node id.
    pub const TAINTED_PROCS: &str = "tainted_procs";
    /// Blocked remote address (text) -> JSON `{"by", "ts_ns"}`: the quarantine the
    /// classifier's `BLOCKED` map is rebuilt from at start-up.
    pub const BLOCKED_HOSTS: &str = "blocked_hosts";
    /// File node id -> JSON `Edge` (its latest `received_from`): where a flagged file came
    /// from, without a walk of every edge. Written beside the edge since database version 3
    /// (older arrivals are found only in the edges).
    pub const ARRIVALS: &str = "arrivals";
    /// seq (u64 BE) -> JSON [`super::alert::Alert`], in the order raised.
    pub const ALERTS: &str = "alerts";
    /// What `apply-rules` added: `protect:<path>` -> JSON `ProtectPath`, `yara:<sha256 of
    /// the source>` -> the rule source, each with who applied it (`rules.rs` in the store).
    pub const APPLIED_RULES: &str = "applied_rules";
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

