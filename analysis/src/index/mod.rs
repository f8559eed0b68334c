//! The loaded, merged graph in compact form.
//!
//! Node ids are interned to `u32` (`NodeIx`), edges are 24-byte `EdgeRec`s sorted by time,
//! and each node's in- and out-edges are kept as CSR lists (one offset array plus one
//! edge-index array per direction), so that a query touches only the part of the graph it
//! walks. Per-kind details (paths, hashes, executables, remote addresses) live in side
//! tables so that the per-node record stays 16 bytes. Edge attributes are rare (transfers,
//! activation points, relabels) and are kept as their JSON text, parsed only when shown.

mod builder;
pub mod interner;

use std::collections::HashMap;

use sensor_common::graph::{EdgeData, EdgeKind, NoAttrs, TransferAttrs};

pub use builder::GraphBuilder;
use interner::Interner;

pub type NodeIx = u32;
pub type EdgeIx = u32;
pub type HostIx = u16;

pub(crate) const NO_ATTRS: u32 = u32::MAX;
pub(crate) const FLAG_ACTIVATION_POINT: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    Host,
    Process,
    File,
    Remote,
    /// An operator who relabelled a file.
    User,
    /// Referenced by an edge but no node record was loaded (cut dump, missing host).
    Unknown,
}

impl From<sensor_common::graph::NodeKind> for NodeKind {
    fn from(kind: sensor_common::graph::NodeKind) -> Self {
        use sensor_common::graph::NodeKind as Recorded;
        match kind {
            Recorded::Host => NodeKind::Host,
            Recorded::Process => NodeKind::Process,
            Recorded::File => NodeKind::File,
            Recorded::Remote => NodeKind::Remote,
            Recorded::User => NodeKind::User,
        }
    }
}

impl NodeKind {
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Host => "host",
            NodeKind::Process => "process",
            NodeKind::File => "file",
            NodeKind::Remote => "remote",
            NodeKind::User => "user",
            NodeKind::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct NodeRec {
    pub first_seen_ns: u64,
    /// Index into the side table of this kind (files, procs, remotes; host index for hosts).
    pub(crate) detail: u32,
    pub host: HostIx,
    pub kind: NodeKind,
}

#[derive(Clone, Debug)]
pub struct FileDetail {
    /// Every path the file was seen under, oldest first, joined by `PATH_SEPARATOR` (one
    /// allocation).
    paths: Box<str>,
    pub sha256: Option<[u8; 32]>,
    pub untrusted: bool,
    pub executable: bool,
}

/// Joins a file's paths: NUL, the one character a Linux path cannot hold (a newline it
/// can, and a file named `a\nb` must stay one path).
pub(crate) const PATH_SEPARATOR: &str = "\0";

impl FileDetail {
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.split(PATH_SEPARATOR).filter(|p| !p.is_empty())
    }
    pub fn first_path(&self) -> Option<&str> {
        self.paths().next()
    }
    pub fn sha256_hex(&self) -> Option<String> {
        self.sha256.map(|bytes| hex(&bytes))
    }
}

#[derive(Clone, Debug)]
pub struct ProcDetail {
    pub(crate) exe: u32,
    pub(crate) comm: u32,
    pub uid: u32,
    pub tgid: u32,
    pub tainted: bool,
}

#[derive(Clone, Debug)]
pub struct RemoteDetail {
    pub ip: Box<str>,
    /// Union over every dump that recorded this address.
    pub node_ids: Vec<Box<str>>,
    /// The loaded host one of `node_ids` names, if any.
    pub resolved: Option<HostIx>,
}

#[derive(Clone, Debug, Default)]
pub struct HostRec {
    pub id: String,
    pub hostname: String,
    pub disk_ids: Vec<String>,
    /// Inputs that contributed this host's records.
    pub sources: Vec<String>,
    /// False when the host is only named by records (no dump header, meta or host node).
    pub has_info: bool,
}

impl HostRec {
    pub fn label(&self) -> &str {
        if self.hostname.is_empty() {
            &self.id
        } else {
            &self.hostname
        }
    }
}

/// One edge in 24 bytes: time, endpoints, attribute index, recording host, kind, flags.
#[derive(Clone, Copy, Debug)]
pub struct EdgeRec {
    pub ts_ns: u64,
    pub src: NodeIx,
    pub dst: NodeIx,
    pub(crate) attrs: u32,
    pub host: HostIx,
    pub kind: EdgeKind,
    pub(crate) flags: u8,
}

impl EdgeRec {
    pub fn is_activation_point(&self) -> bool {
        self.flags & FLAG_ACTIVATION_POINT != 0
    }
}

/// Transfers between one ordered pair of loaded hosts, each list sorted by time.
#[derive(Default, Debug)]
pub(crate) struct TransferLists {
    /// `sent_to` edges recorded by the sender.
    pub(crate) sends: Vec<EdgeIx>,
    /// `received_from` edges recorded by the receiver.
    pub(crate) receives: Vec<EdgeIx>,
}

pub struct Graph {
    pub(crate) ids: Interner,
    pub(crate) nodes: Vec<NodeRec>,
    pub(crate) files: Vec<FileDetail>,
    pub(crate) procs: Vec<ProcDetail>,
    pub(crate) remotes: Vec<RemoteDetail>,
    pub(crate) symbols: Interner,
    pub(crate) edges: Vec<EdgeRec>,
    pub(crate) attrs: Vec<Box<str>>,
    pub(crate) out_start: Vec<u32>,
    pub(crate) out_list: Vec<EdgeIx>,
    pub(crate) in_start: Vec<u32>,
    pub(crate) in_list: Vec<EdgeIx>,
    pub hosts: Vec<HostRec>,
    pub(crate) host_lookup: HashMap<String, HostIx>,
    pub(crate) transfers: HashMap<(HostIx, HostIx), TransferLists>,
    /// Hand relabels per file: (time, marked trusted?), in time order.
    pub(crate) relabels: HashMap<NodeIx, Vec<(u64, bool)>>,
    /// How far apart two hosts' clocks may be when a send is paired with a receive.
    pub skew_allowance_ns: u64,
}

impl Graph {
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }
    pub fn node(&self, n: NodeIx) -> &NodeRec {
        &self.nodes[n as usize]
    }
    pub fn id(&self, n: NodeIx) -> &str {
        self.ids.get(n)
    }
    pub fn lookup(&self, id: &str) -> Option<NodeIx> {
        self.ids.lookup(id)
    }
    pub fn edge(&self, e: EdgeIx) -> &EdgeRec {
        &self.edges[e as usize]
    }
    pub fn edges(&self) -> &[EdgeRec] {
        &self.edges
    }
    pub fn host(&self, h: HostIx) -> &HostRec {
        &self.hosts[h as usize]
    }
    pub fn host_by_id(&self, id: &str) -> Option<HostIx> {
        let id = id.strip_prefix("host:").unwrap_or(id);
        self.host_lookup.get(id).copied().or_else(|| {
            self.hosts
                .iter()
                .position(|h| h.hostname == id)
                .map(|h| h as HostIx)
        })
    }

    pub fn file(&self, n: NodeIx) -> Option<&FileDetail> {
        let node = self.node(n);
        (node.kind == NodeKind::File).then(|| &self.files[node.detail as usize])
    }
    pub fn process(&self, n: NodeIx) -> Option<&ProcDetail> {
        let node = self.node(n);
        (node.kind == NodeKind::Process).then(|| &self.procs[node.detail as usize])
    }
    pub fn remote(&self, n: NodeIx) -> Option<&RemoteDetail> {
        let node = self.node(n);
        (node.kind == NodeKind::Remote).then(|| &self.remotes[node.detail as usize])
    }
    pub fn exe(&self, proc: &ProcDetail) -> &str {
        self.symbols.get(proc.exe)
    }
    pub fn comm(&self, proc: &ProcDetail) -> &str {
        self.symbols.get(proc.comm)
    }
    pub fn file_nodes(&self) -> impl Iterator<Item = NodeIx> + '_ {
        (0..self.nodes.len() as NodeIx).filter(|&n| self.nodes[n as usize].kind == NodeKind::File)
    }

    /// Out-edges of `n`, oldest first.
    pub fn out_edges(&self, n: NodeIx) -> &[EdgeIx] {
        let n = n as usize;
        &self.out_list[self.out_start[n] as usize..self.out_start[n + 1] as usize]
    }
    /// In-edges of `n`, oldest first.
    pub fn in_edges(&self, n: NodeIx) -> &[EdgeIx] {
        let n = n as usize;
        &self.in_list[self.in_start[n] as usize..self.in_start[n + 1] as usize]
    }
    /// Out-edges of `n` at or after `since`.
    pub fn out_edges_since(&self, n: NodeIx, since: u64) -> &[EdgeIx] {
        let list = self.out_edges(n);
        let first = list.partition_point(|&e| self.edges[e as usize].ts_ns < since);
        &list[first..]
    }
    /// In-edges of `n` at or before `until`.
    pub fn in_edges_until(&self, n: NodeIx, until: u64) -> &[EdgeIx] {
        let list = self.in_edges(n);
        let end = list.partition_point(|&e| self.edges[e as usize].ts_ns <= until);
        &list[..end]
    }

    /// The edge's kind and attributes, typed. The index keeps attributes as their JSON
    /// text (compact, and most are never read); this parses them back.
    pub fn edge_data(&self, e: EdgeIx) -> EdgeData {
        let edge = &self.edges[e as usize];
        let parsed = match edge.attrs {
            NO_ATTRS => EdgeData::from_attrs_json(edge.kind, "{}"),
            index => EdgeData::from_attrs_json(edge.kind, &self.attrs[index as usize]),
        };
        // The text was written from an `EdgeData` of this kind when loading, so it parses;
        // a kind without required attributes is the fallback should it ever not.
        parsed.unwrap_or(EdgeData::Fork(NoAttrs {}))
    }
    /// A `received_from`/`sent_to` edge's transfer.
    pub fn transfer(&self, e: EdgeIx) -> Option<TransferAttrs> {
        match self.edge_data(e) {
            EdgeData::ReceivedFrom(t) | EdgeData::SentTo(t) => Some(t),
            _ => None,
        }
    }
    /// The attributes as a JSON object, for display and JSON output.
    pub fn attrs_json(&self, e: EdgeIx) -> Option<serde_json::Map<String, serde_json::Value>> {
        let index = self.edges[e as usize].attrs;
        if index == NO_ATTRS {
            return None;
        }
        serde_json::from_str(&self.attrs[index as usize]).ok()
    }

    /// Which loaded host a `remote:` node is, by the node ids DNS gave for its address.
    pub fn remote_host(&self, n: NodeIx) -> Option<HostIx> {
        self.remote(n).and_then(|r| r.resolved)
    }

    /// A short human label: a file's first path, a process's exe and pid, a remote's address.
    pub fn label(&self, n: NodeIx) -> String {
        let node = self.node(n);
        match node.kind {
            NodeKind::File => self.files[node.detail as usize]
                .first_path()
                .map(str::to_owned)
                .unwrap_or_else(|| self.id(n).to_owned()),
            NodeKind::Process => {
                let proc = &self.procs[node.detail as usize];
                format!("{} [{}]", self.exe(proc), proc.tgid)
            }
            NodeKind::Remote => {
                let remote = &self.remotes[node.detail as usize];
                match remote.resolved {
                    Some(h) => format!("{} ({})", remote.ip, self.host(h).label()),
                    None => remote.ip.to_string(),
                }
            }
            NodeKind::Host => self.host(node.host).label().to_owned(),
            NodeKind::User => self.id(n).strip_prefix("user:").unwrap_or(self.id(n)).to_owned(),
            NodeKind::Unknown => self.id(n).to_owned(),
        }
    }

    /// Is `file` marked trusted by hand at `at`, by a relabel after `tainted_since`?
    /// A hand relabel overrides what propagation concluded, until the next relabel.
    pub fn relabeled_trusted(&self, file: NodeIx, tainted_since: u64, at: u64) -> bool {
        let Some(relabels) = self.relabels.get(&file) else {
            return false;
        };
        relabels
            .iter()
            .rfind(|(ts, _)| *ts > tainted_since && *ts <= at)
            .is_some_and(|&(_, trusted)| trusted)
    }
    pub fn relabels(&self, file: NodeIx) -> &[(u64, bool)] {
        self.relabels.get(&file).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The receive, on the receiving host, of what `sent` (a `sent_to` edge) sent: same pair
    /// of hosts, receive time within the skew allowance of the send time. Among several, the
    /// one with the same content hash wins, then the same name, then the nearest in time.
    pub fn matching_receive(&self, sent: EdgeIx) -> Option<EdgeIx> {
        let edge = self.edge(sent);
        let to = self.remote_host(edge.dst)?;
        let lists = self.transfers.get(&(edge.host, to))?;
        self.best_partner(sent, &lists.receives)
    }

    /// The send, on the sending host, that `received` (a `received_from` edge) received.
    pub fn matching_send(&self, received: EdgeIx) -> Option<EdgeIx> {
        let edge = self.edge(received);
        let from = self.remote_host(edge.src)?;
        let lists = self.transfers.get(&(from, edge.host))?;
        self.best_partner(received, &lists.sends)
    }

    fn best_partner(&self, this: EdgeIx, candidates: &[EdgeIx]) -> Option<EdgeIx> {
        let edge = self.edge(this);
        let lo = edge.ts_ns.saturating_sub(self.skew_allowance_ns);
        let hi = edge.ts_ns.saturating_add(self.skew_allowance_ns);
        let first = candidates.partition_point(|&c| self.edge(c).ts_ns < lo);
        let file_of = |e: EdgeIx| {
            let edge = self.edge(e);
            if edge.kind == EdgeKind::SentTo {
                edge.src
            } else {
                edge.dst
            }
        };
        let this_hash = self.file(file_of(this)).and_then(|f| f.sha256);
        let this_name = self.transfer(this).and_then(|t| t.name);
        candidates[first..]
            .iter()
            .take_while(|&&c| self.edge(c).ts_ns <= hi)
            .min_by_key(|&&c| {
                let other_hash = self.file(file_of(c)).and_then(|f| f.sha256);
                let hash_differs = !(this_hash.is_some() && this_hash == other_hash);
                let name_differs = this_name.is_none() || self.transfer(c).and_then(|t| t.name) != this_name;
                (
                    hash_differs,
                    name_differs,
                    self.edge(c).ts_ns.abs_diff(edge.ts_ns),
                )
            })
            .copied()
    }

    /// Approximate heap bytes held by the index (the figure the bench compares with VmHWM).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.ids.heap_bytes()
            + self.symbols.heap_bytes()
            + self.nodes.capacity() * size_of::<NodeRec>()
            + self.edges.capacity() * size_of::<EdgeRec>()
            + (self.out_start.capacity() + self.in_start.capacity()) * 4
            + (self.out_list.capacity() + self.in_list.capacity()) * 4
            + self
                .files
                .iter()
                .map(|f| size_of::<FileDetail>() + f.paths.len())
                .sum::<usize>()
            + self.procs.capacity() * size_of::<ProcDetail>()
            + self.attrs.iter().map(|a| a.len() + 16).sum::<usize>()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(chunk[0])? * 16 + digit(chunk[1])?) as u8;
    }
    Some(out)
}
