//! Turns a stream of schema records (from any number of dumps and databases) into a `Graph`.
//! Records may come in any order: an edge may name a node whose record comes later, or
//! never (then the node stays `Unknown`). The same node seen in two inputs is merged.

use std::collections::HashMap;

use sensor_common::graph::{Edge, EdgeData, EdgeKind, HostInfo, Node, NodeData, RelabelAttrs, Trust};

use super::{
    EdgeRec, FLAG_ACTIVATION_POINT, FileDetail, Graph, HostIx, HostRec, NO_ATTRS, NodeIx, NodeKind,
    NodeRec, PATH_SEPARATOR, ProcDetail, RemoteDetail, TransferLists, interner::Interner,
    parse_sha256,
};
use crate::error::LoadError;

#[derive(Default)]
pub struct GraphBuilder {
    ids: Interner,
    nodes: Vec<NodeRec>,
    files: Vec<FileDetail>,
    procs: Vec<ProcDetail>,
    remotes: Vec<RemoteDetail>,
    symbols: Interner,
    edges: Vec<EdgeRec>,
    attrs: Vec<Box<str>>,
    hosts: Vec<HostRec>,
    host_lookup: HashMap<String, HostIx>,
    /// sha256 fields that were not 64 hex digits (kept as "no hash").
    pub bad_hashes: u64,
}

/// What `finish` found worth telling the user.
#[derive(Debug, Default)]
pub struct MergeNotes {
    pub duplicate_edges: u64,
    pub unknown_nodes: u64,
    /// Remote addresses whose DNS node ids name hosts that were not loaded: (ip, node ids).
    pub missing_hosts: Vec<(String, Vec<String>)>,
    /// Remote addresses nobody resolved to a node id.
    pub unresolved_remotes: Vec<String>,
}

fn too_many(what: &'static str, bits: u32) -> LoadError {
    LoadError::TooMany {
        what,
        limit: (1u64 << bits) - 1,
        bits,
    }
}

impl GraphBuilder {
    pub fn reserve_edges(&mut self, additional: usize) {
        self.edges.reserve_exact(additional);
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// The host's index, creating an entry (without info) the first time an id is named.
    pub fn host(&mut self, id: &str) -> Result<HostIx, LoadError> {
        let id = id.strip_prefix("host:").unwrap_or(id);
        if let Some(&h) = self.host_lookup.get(id) {
            return Ok(h);
        }
        let h = HostIx::try_from(self.hosts.len()).map_err(|_| too_many("hosts", 16))?;
        self.hosts.push(HostRec {
            id: id.to_owned(),
            ..HostRec::default()
        });
        self.host_lookup.insert(id.to_owned(), h);
        Ok(h)
    }

    /// Records a host's own description (dump header, sled meta, or `host:` node).
    pub fn add_host_info(
        &mut self,
        info: &HostInfo,
        source: Option<&str>,
    ) -> Result<HostIx, LoadError> {
        let h = self.host(&info.id)?;
        let rec = &mut self.hosts[h as usize];
        rec.has_info = true;
        if rec.hostname.is_empty() {
            rec.hostname = info.hostname.clone();
        }
        for disk in &info.disk_ids {
            if !rec.disk_ids.contains(disk) {
                rec.disk_ids.push(disk.clone());
            }
        }
        if let Some(source) = source
            && !rec.sources.iter().any(|s| s == source)
        {
            rec.sources.push(source.to_owned());
        }
        // Other hosts' DNS may name this machine by any of its disk ids.
        for disk in &info.disk_ids {
            self.host_lookup.entry(disk.clone()).or_insert(h);
        }
        Ok(h)
    }

    fn node_ix(&mut self, id: &str, host: HostIx, seen_ns: u64) -> Result<NodeIx, LoadError> {
        let (n, new) = self
            .ids
            .intern(id)
            .ok_or_else(|| too_many("node ids", 32))?;
        if new {
            self.nodes.push(NodeRec {
                first_seen_ns: seen_ns,
                detail: 0,
                host,
                kind: NodeKind::Unknown,
            });
        } else if self.nodes[n as usize].kind == NodeKind::Unknown {
            let rec = &mut self.nodes[n as usize];
            rec.first_seen_ns = rec.first_seen_ns.min(seen_ns);
        }
        Ok(n)
    }

    pub fn add_node(&mut self, node: Node) -> Result<(), LoadError> {
        let host = self.host(&node.host)?;
        let n = self.node_ix(&node.id, host, node.first_seen_ns)?;
        let existing = self.nodes[n as usize];
        let kind = NodeKind::from(node.data.kind());
        if existing.kind != NodeKind::Unknown && existing.kind != kind {
            // Same id, different kind: ids say their kind, so this is a corrupt record. Keep the first.
            return Ok(());
        }
        let merging = existing.kind == kind;
        let rec = &mut self.nodes[n as usize];
        rec.first_seen_ns = if merging {
            rec.first_seen_ns.min(node.first_seen_ns)
        } else {
            node.first_seen_ns
        };
        rec.host = host;
        rec.kind = kind;
        match node.data {
            // The id names the user; nothing more to keep.
            NodeData::User { .. } => {}
            NodeData::Host { hostname, disk_ids } => {
                let id = node.id.strip_prefix("host:").unwrap_or(&node.id).to_owned();
                let h = self.add_host_info(
                    &HostInfo {
                        id,
                        hostname,
                        disk_ids,
                    },
                    None,
                )?;
                self.nodes[n as usize].detail = u32::from(h);
            }
            NodeData::Process {
                tgid,
                exe,
                comm,
                uid,
                tainted,
                ..
            } => {
                if !merging {
                    let exe = self
                        .symbols
                        .intern(&exe)
                        .ok_or_else(|| too_many("names", 32))?
                        .0;
                    let comm = self
                        .symbols
                        .intern(&comm)
                        .ok_or_else(|| too_many("names", 32))?
                        .0;
                    self.nodes[n as usize].detail = self.procs.len() as u32;
                    self.procs.push(ProcDetail {
                        exe,
                        comm,
                        uid,
                        tgid,
                        tainted,
                    });
                } else {
                    self.procs[existing.detail as usize].tainted |= tainted;
                }
            }
            NodeData::File {
                paths,
                untrusted,
                executable,
                sha256,
                ..
            } => {
                let sha = sha256.as_deref().and_then(|s| {
                    let parsed = parse_sha256(s);
                    if parsed.is_none() {
                        self.bad_hashes += 1;
                    }
                    parsed
                });
                if merging {
                    let file = &mut self.files[existing.detail as usize];
                    let mut joined = file.paths.to_string();
                    for path in paths {
                        if !file.paths().any(|p| p == path) {
                            if !joined.is_empty() {
                                joined.push_str(PATH_SEPARATOR);
                            }
                            joined.push_str(&path);
                        }
                    }
                    file.paths = joined.into_boxed_str();
                    file.sha256 = file.sha256.or(sha);
                    file.untrusted |= untrusted;
                    file.executable |= executable;
                } else {
                    self.nodes[n as usize].detail = self.files.len() as u32;
                    self.files.push(FileDetail {
                        paths: paths.join(PATH_SEPARATOR).into_boxed_str(),
                        sha256: sha,
                        untrusted,
                        executable,
                    });
                }
            }
            NodeData::Remote { ip, node_ids } => {
                if merging {
                    let remote = &mut self.remotes[existing.detail as usize];
                    for id in node_ids {
                        if !remote.node_ids.iter().any(|known| **known == *id) {
                            remote.node_ids.push(id.into_boxed_str());
                        }
                    }
                } else {
                    self.nodes[n as usize].detail = self.remotes.len() as u32;
                    self.remotes.push(RemoteDetail {
                        ip: ip.into_boxed_str(),
                        node_ids: node_ids.into_iter().map(String::into_boxed_str).collect(),
                        resolved: None,
                    });
                }
            }
        }
        Ok(())
    }

    pub fn add_edge(&mut self, edge: Edge) -> Result<(), LoadError> {
        let host = self.host(&edge.host)?;
        let src = self.node_ix(&edge.src, host, edge.ts_ns)?;
        let dst = self.node_ix(&edge.dst, host, edge.ts_ns)?;
        let mut flags = 0;
        if edge.data.activation_point().is_some() {
            flags |= FLAG_ACTIVATION_POINT;
        }
        // (Writing these structs to a String cannot fail: no maps, no non-string keys.)
        let text = edge.data.attrs_to_json().unwrap_or_default();
        // Most edges (forks, plain writes and execs) carry nothing: no text kept for them,
        // `Graph::edge_data` gives their kind's defaults back.
        let attrs = if text == "{}" {
            NO_ATTRS
        } else {
            let index = u32::try_from(self.attrs.len())
                .ok()
                .filter(|&i| i != NO_ATTRS);
            let index = index.ok_or_else(|| too_many("edges with attributes", 32))?;
            self.attrs.push(text.into_boxed_str());
            index
        };
        if self.edges.len() >= u32::MAX as usize {
            return Err(too_many("edges", 32));
        }
        self.edges.push(EdgeRec {
            ts_ns: edge.ts_ns,
            src,
            dst,
            attrs,
            host,
            kind: edge.kind(),
            flags,
        });
        Ok(())
    }

    /// Sorts and deduplicates edges, builds adjacency, resolves remotes and pairs transfers.
    pub fn finish(self, skew_allowance_ns: u64) -> (Graph, MergeNotes) {
        let GraphBuilder {
            ids,
            nodes,
            files,
            procs,
            mut remotes,
            mut symbols,
            mut edges,
            mut attrs,
            mut hosts,
            mut host_lookup,
            bad_hashes: _,
        } = self;
        let mut notes = MergeNotes::default();

        // Hosts and nodes are numbered by id, not by the order the records came in: answers
        // break ties by these numbers, and must be the same whichever order the dumps were
        // named in, and whether the records came from dumps or from the central database.
        let host_of_old = renumber_hosts(&mut hosts, &mut host_lookup);
        let (mut ids, node_of_old) = ids.sorted();
        let placeholder = NodeRec {
            first_seen_ns: 0,
            detail: 0,
            host: 0,
            kind: NodeKind::Unknown,
        };
        let mut renumbered = vec![placeholder; nodes.len()];
        for (old, mut rec) in nodes.into_iter().enumerate() {
            rec.host = host_of_old[rec.host as usize];
            if rec.kind == NodeKind::Host {
                rec.detail = u32::from(host_of_old[rec.detail as usize]);
            }
            renumbered[node_of_old[old] as usize] = rec;
        }
        let nodes = renumbered;
        for edge in &mut edges {
            edge.host = host_of_old[edge.host as usize];
            edge.src = node_of_old[edge.src as usize];
            edge.dst = node_of_old[edge.dst as usize];
        }

        // Time order first: every query walks edges in time order. The rest of the key makes
        // records of the same event from two inputs (a dump and the database it came from) adjacent.
        edges.sort_unstable_by_key(|e| (e.ts_ns, e.host, e.src, e.dst, e.kind));
        let before = edges.len();
        edges.dedup_by(|later, earlier| {
            later.ts_ns == earlier.ts_ns
                && later.host == earlier.host
                && later.src == earlier.src
                && later.dst == earlier.dst
                && later.kind == earlier.kind
                && attr_text(&attrs, later.attrs) == attr_text(&attrs, earlier.attrs)
        });
        notes.duplicate_edges = (before - edges.len()) as u64;
        edges.shrink_to_fit();
        attrs.shrink_to_fit();
        ids.shrink_to_fit();
        symbols.shrink_to_fit();
        notes.unknown_nodes = nodes.iter().filter(|n| n.kind == NodeKind::Unknown).count() as u64;

        let (out_start, out_list) = csr(nodes.len(), &edges, |e| e.src);
        let (in_start, in_list) = csr(nodes.len(), &edges, |e| e.dst);

        for remote in &mut remotes {
            // In id order, like the nodes: several hosts' records of one address merge to
            // the same list whichever was read first.
            remote.node_ids.sort_unstable();
            remote.resolved = remote
                .node_ids
                .iter()
                .find_map(|id| host_lookup.get(&**id).copied());
            if remote.resolved.is_none() {
                if remote.node_ids.is_empty() {
                    notes.unresolved_remotes.push(remote.ip.to_string());
                } else {
                    let ids = remote.node_ids.iter().map(|s| s.to_string()).collect();
                    notes.missing_hosts.push((remote.ip.to_string(), ids));
                }
            }
        }

        let mut graph = Graph {
            ids,
            nodes,
            files,
            procs,
            remotes,
            symbols,
            edges,
            attrs,
            out_start,
            out_list,
            in_start,
            in_list,
            hosts,
            host_lookup,
            transfers: HashMap::new(),
            relabels: HashMap::new(),
            skew_allowance_ns,
        };
        let mut transfers: HashMap<(HostIx, HostIx), TransferLists> = HashMap::new();
        let mut relabels: HashMap<NodeIx, Vec<(u64, bool)>> = HashMap::new();
        for (e, edge) in graph.edges.iter().enumerate() {
            let e = e as u32;
            match edge.kind {
                EdgeKind::SentTo => {
                    if let Some(to) = graph.remote_host(edge.dst) {
                        transfers.entry((edge.host, to)).or_default().sends.push(e);
                    }
                }
                EdgeKind::ReceivedFrom => {
                    if let Some(from) = graph.remote_host(edge.src) {
                        transfers
                            .entry((from, edge.host))
                            .or_default()
                            .receives
                            .push(e);
                    }
                }
                EdgeKind::Relabel => {
                    if let EdgeData::Relabel(RelabelAttrs { to, .. }) = graph.edge_data(e) {
                        relabels
                            .entry(edge.dst)
                            .or_default()
                            .push((edge.ts_ns, to == Trust::Trusted));
                    }
                }
                _ => {}
            }
        }
        graph.transfers = transfers;
        graph.relabels = relabels;
        (graph, notes)
    }
}

/// Sorts `hosts` by id and points `lookup` at the new places; returns each old index's new one.
fn renumber_hosts(hosts: &mut Vec<HostRec>, lookup: &mut HashMap<String, HostIx>) -> Vec<HostIx> {
    let mut order: Vec<usize> = (0..hosts.len()).collect();
    order.sort_by(|&a, &b| hosts[a].id.cmp(&hosts[b].id));
    let mut new_of_old = vec![0 as HostIx; hosts.len()];
    for (new, &old) in order.iter().enumerate() {
        // At most `HostIx::MAX + 1` hosts were ever numbered, so `new` fits.
        new_of_old[old] = new as HostIx;
    }
    let mut taken: Vec<Option<HostRec>> = std::mem::take(hosts).into_iter().map(Some).collect();
    *hosts = order.iter().filter_map(|&old| taken[old].take()).collect();
    for h in lookup.values_mut() {
        *h = new_of_old[*h as usize];
    }
    new_of_old
}

fn attr_text(attrs: &[Box<str>], index: u32) -> Option<&str> {
    (index != NO_ATTRS).then(|| &*attrs[index as usize])
}

/// Compressed adjacency: `start[n]..start[n + 1]` indexes `list`, which holds edge indices
/// in the order of `edges` (time order).
fn csr(
    node_count: usize,
    edges: &[EdgeRec],
    endpoint: impl Fn(&EdgeRec) -> NodeIx,
) -> (Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; node_count + 1];
    for edge in edges {
        start[endpoint(edge) as usize + 1] += 1;
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    let mut fill = start.clone();
    let mut list = vec![0u32; edges.len()];
    for (e, edge) in edges.iter().enumerate() {
        let slot = &mut fill[endpoint(edge) as usize];
        list[*slot as usize] = e as u32;
        *slot += 1;
    }
    (start, list)
}
