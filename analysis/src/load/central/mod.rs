//! The central database as an input (`--db postgres://...`): instead of loading every edge,
//! the graph is walked in SQL level by level from the question's starting files, and only
//! what the walk fetched goes into the same `GraphBuilder` the dumps go into. Every question
//! and output format then runs unchanged, on a graph holding the part of the fleet's
//! graph the answer touches.
//!
//! What is fetched, and why each part:
//! - every host (the loaded set: what a `remote:` resolves to, `--host`, spread's counts);
//! - every transfer (`received_from`/`sent_to`, through the transfers table) and its two
//!   endpoints: pairing a send with its receive looks at the candidates on the other host,
//!   a whole-incident question starts from every untrusted arrival, and spread's contact
//!   network counts every pair of hosts that exchanged files;
//! - every hand relabel: it may stop the taint of any file;
//! - the starting files (by path, hash or id; for spread and rules every copy of the same
//!   content), or, without a flagged file, every file recorded untrusted and its causes;
//! - forward (every question): the out-edges of each reached node from the time it is
//!   tainted on (`walk`);
//! - backward (trace): the in-edges of each reached node up to the time it matters, and
//!   the exec/fork edges into every reached process (its behaviour timeline);
//! - the node records of every endpoint, from every host that recorded them, merged as
//!   several dumps merge.
//!
//! Hosts and nodes are numbered by id in `GraphBuilder::finish`, so the answer's tie-breaks
//! are the same on this part of the graph as on the whole of it.

mod store;
mod walk;

use std::collections::HashSet;
use std::time::Instant;

use sensor_common::graph::{Edge, EdgeData, EdgeKind, HostInfo, Node, NodeData, NodeKind, RelabelAttrs, Trust};
use serde::Serialize;

use super::{InputSummary, LoadOptions, LoadReport, finish};
use crate::error::{AnalysisError, LoadError, QueryError};
use crate::index::{Graph, GraphBuilder};
use crate::select::Selector;
use store::{BadRow, EdgeRow, Store};
use walk::{Frontier, Transfers};

/// Levels a walk may take. A walk stops when no node's range grows; a chain of this many
/// hops is far past any incident, so reaching it means the walk is exploring a
/// dependency explosion: the answer is then marked partial rather than waited for.
const MAX_ROUNDS: u64 = 10_000;

/// Which question is asked, so which walks its answer needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// Backward and forward from the flagged file, and the behaviour of its processes.
    Trace,
    /// Forward from the flagged file and its copies, or from every untrusted arrival.
    Spread,
    Rules,
}

pub struct Question {
    pub selector: Option<Selector>,
    /// `--host`: the flagged file is looked for on this host only (id, disk id or name).
    pub host: Option<String>,
    pub walk: Walk,
}

/// What the walk fetched from the database (the load report's `database`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CentralFetch {
    pub url: String,
    /// Levels walked, forward and backward together.
    pub rounds: u64,
    pub queries: u64,
    pub node_rows: u64,
    pub edge_rows: u64,
}

/// The walk's state: the store, what was fetched, and the builder it went into.
struct Fetch {
    store: Store,
    builder: GraphBuilder,
    summary: InputSummary,
    stats: CentralFetch,
    edge_keys: HashSet<(String, String, i64, i64)>,
    /// Ids whose node rows were asked for (or are queued in `endpoints`).
    node_ids: HashSet<String>,
    endpoints: Vec<String>,
    transfers: Transfers,
}

impl Fetch {
    fn bad(&mut self, row: BadRow) {
        self.summary.bad_records += 1;
        if self.summary.first_bad_reasons.len() < 5 {
            self.summary.first_bad_lines.push(self.summary.bad_records);
            self.summary.first_bad_reasons.push(row.0);
        }
    }

    fn add_nodes(&mut self, rows: Vec<Result<Node, BadRow>>) -> Result<Vec<Node>, LoadError> {
        let mut nodes = Vec::with_capacity(rows.len());
        for row in rows {
            match row {
                Ok(node) => {
                    self.stats.node_rows += 1;
                    self.summary.nodes += 1;
                    self.node_ids.insert(node.id.clone());
                    self.transfers.add_node(&node.id, &node.data);
                    if let NodeData::Host { disk_ids, .. } = &node.data {
                        self.transfers.add_host(&node.id, disk_ids);
                    }
                    self.builder.add_node(node.clone())?;
                    nodes.push(node);
                }
                Err(bad) => self.bad(bad),
            }
        }
        Ok(nodes)
    }

    /// Adds the edges not fetched before; returns every edge of `rows` (the walk follows
    /// an edge whichever query brought it first).
    fn add_edges(&mut self, rows: Vec<Result<EdgeRow, BadRow>>) -> Result<Vec<Edge>, LoadError> {
        let mut edges = Vec::with_capacity(rows.len());
        for row in rows {
            match row {
                Ok(EdgeRow { key, edge }) => {
                    if self.edge_keys.insert(key) {
                        self.stats.edge_rows += 1;
                        self.summary.edges += 1;
                        for id in [&edge.src, &edge.dst] {
                            if !self.node_ids.contains(id.as_str()) {
                                self.node_ids.insert(id.clone());
                                self.endpoints.push(id.clone());
                            }
                        }
                        self.builder.add_edge(edge.clone())?;
                    }
                    edges.push(edge);
                }
                Err(bad) => self.bad(bad),
            }
        }
        Ok(edges)
    }

    /// The node rows of every endpoint met since the last call.
    fn add_endpoints(&mut self) -> Result<Vec<Node>, LoadError> {
        let ids = std::mem::take(&mut self.endpoints);
        let rows = self.store.nodes(&ids)?;
        self.add_nodes(rows)
    }

    /// Walks until no range grows (or `MAX_ROUNDS`), one batched query per level.
    fn walk(&mut self, frontier: &mut Frontier, skew_ns: u64, backward: bool) -> Result<(), LoadError> {
        let mut rounds = 0;
        while !frontier.is_done() {
            if rounds == MAX_ROUNDS {
                self.summary.truncated = Some(format!(
                    "the {} walk stopped after {MAX_ROUNDS} levels with nodes still to visit: \
                     what lies further is not in the answer",
                    if backward { "backward" } else { "forward" }
                ));
                break;
            }
            rounds += 1;
            let level = frontier.next_level();
            let rows = if backward {
                self.store.in_edges(&level)?
            } else {
                self.store.out_edges(&level)?
            };
            for edge in self.add_edges(rows)? {
                frontier.follow(&edge, &self.transfers, skew_ns);
            }
        }
        self.stats.rounds += rounds;
        Ok(())
    }
}

/// Reads the part of the central database `question` needs into a graph.
pub fn load_central(
    url: &str,
    question: &Question,
    options: LoadOptions,
) -> Result<(Graph, LoadReport), AnalysisError> {
    let started = Instant::now();
    let store = Store::open(url)?;
    let shown_url = store.shown_url.clone();
    let mut fetch = Fetch {
        summary: InputSummary {
            path: shown_url.clone(),
            format: "postgres",
            ..InputSummary::default()
        },
        stats: CentralFetch {
            url: shown_url.clone(),
            ..CentralFetch::default()
        },
        store,
        builder: GraphBuilder::default(),
        edge_keys: HashSet::new(),
        node_ids: HashSet::new(),
        endpoints: Vec::new(),
        transfers: Transfers::default(),
    };
    let skew = options.skew_allowance_ns;

    let hosts = fetch.store.hosts()?;
    for host in &hosts {
        // The collector keeps a row for a host only named by records (no header, no
        // host_info): it stays a host without info, as when loading its records from dumps.
        if host.hostname.is_empty() && host.disk_ids.is_empty() {
            fetch.builder.host(&host.id)?;
        } else {
            fetch.builder.add_host_info(host, Some(&shown_url))?;
        }
        fetch.transfers.add_host(&host.id, &host.disk_ids);
    }
    let host_nodes = fetch.store.host_nodes()?;
    fetch.add_nodes(host_nodes)?;
    let rows = fetch.store.transfers()?;
    let transfers = fetch.add_edges(rows)?;
    for edge in &transfers {
        fetch.transfers.add_edge(edge);
    }
    fetch.transfers.sort();
    let rows = fetch.store.relabels()?;
    let relabels = fetch.add_edges(rows)?;
    fetch.add_endpoints()?;

    let mut forward = Frontier::forward();
    match &question.selector {
        Some(selector) => {
            let selected = select(&mut fetch, selector, on_host(&hosts, question.host.as_deref()), hosts.len())?;
            let mut seeds: Vec<String> = selected.iter().map(|n| n.id.clone()).collect();
            if question.walk != Walk::Trace {
                // `seeds_with_copies`: every file with the same content is a seed too.
                let hashes: Vec<String> = selected.iter().filter_map(sha256_of).collect();
                if !hashes.is_empty() {
                    let rows = fetch.store.files_by_sha256(&hashes)?;
                    let copies = fetch.add_nodes(rows)?;
                    seeds.extend(copies.into_iter().map(|n| n.id));
                }
                // `seed_for` taints a seed from its earliest in-edge (trace's backward walk
                // fetches all of the flagged file's in-edges anyway).
                let rows = fetch.store.first_in_edges(&seeds)?;
                fetch.add_edges(rows)?;
            }
            // From the start of time: no later than any seed's own taint time.
            for id in &seeds {
                forward.reach(id, 0);
            }
            if question.walk == Walk::Trace {
                let mut backward = Frontier::backward();
                for id in &seeds {
                    backward.reach(id, u64::MAX);
                }
                fetch.walk(&mut backward, skew, true)?;
            }
        }
        None => auto_seeds(&mut fetch, &transfers, &relabels, &mut forward)?,
    }
    fetch.walk(&mut forward, skew, false)?;
    if question.walk == Walk::Trace {
        // `behaviours` lists the exec and fork edges into every tainted process.
        let processes: Vec<String> = forward
            .reached()
            .filter(|(id, _)| NodeKind::of_id(id) == Some(NodeKind::Process))
            .map(|(id, _)| id.to_owned())
            .collect();
        let rows = fetch.store.in_edges_of_kinds(&processes, &[EdgeKind::Exec, EdgeKind::Fork])?;
        fetch.add_edges(rows)?;
    }
    fetch.add_endpoints()?;

    fetch.stats.queries = fetch.store.queries;
    let report = LoadReport {
        inputs: vec![fetch.summary],
        database: Some(fetch.stats),
        ..LoadReport::default()
    };
    Ok(finish(fetch.builder, report, options, started))
}

fn sha256_of(node: &Node) -> Option<String> {
    match &node.data {
        NodeData::File { sha256, .. } => sha256.clone(),
        _ => None,
    }
}

/// The id of the host `--host` names, as `Graph::host_by_id` finds it: by id or disk id,
/// else by hostname. None when it names no host (the question then says so on the graph).
fn on_host(hosts: &[HostInfo], wanted: Option<&str>) -> Option<String> {
    let wanted = wanted?;
    let wanted = wanted.strip_prefix("host:").unwrap_or(wanted);
    hosts
        .iter()
        .find(|h| h.id == wanted || h.disk_ids.iter().any(|d| d == wanted))
        .or_else(|| hosts.iter().find(|h| h.hostname == wanted))
        .map(|h| h.id.clone())
}

/// The nodes the selector names, on `host` if given (`select::resolve` picks among them
/// again on the graph); none is the same error `resolve` gives, counted over the database.
fn select(
    fetch: &mut Fetch,
    selector: &Selector,
    host: Option<String>,
    hosts: usize,
) -> Result<Vec<Node>, AnalysisError> {
    let rows = match selector {
        Selector::Node(id) => fetch.store.nodes(std::slice::from_ref(id))?,
        Selector::Path(path) => fetch.store.files_by_path(path)?,
        Selector::Sha256(hash) => fetch.store.files_by_sha256(std::slice::from_ref(hash))?,
    };
    let rows = rows
        .into_iter()
        .filter(|row| match (row, &host) {
            (Ok(node), Some(host)) => node.host.strip_prefix("host:").unwrap_or(&node.host) == host,
            _ => true,
        })
        .collect();
    let nodes = fetch.add_nodes(rows)?;
    if nodes.is_empty() {
        let files = fetch.store.file_count()?;
        return Err(QueryError::FileNotInGraph {
            selector: selector.to_string(),
            scope: host.map(|h| format!(" on host {h}")).unwrap_or_default(),
            files: usize::try_from(files).unwrap_or(usize::MAX),
            hosts,
        }
        .into());
    }
    Ok(nodes)
}

/// `select::auto_seeds` over the database: receives from addresses that are no loaded
/// host, relabels to untrusted, and untrusted files with no recorded cause. Every
/// untrusted file is loaded with its causes, so that `auto_seeds` on the graph sees the
/// same causes as on the whole.
fn auto_seeds(fetch: &mut Fetch, transfers: &[Edge], relabels: &[Edge], forward: &mut Frontier) -> Result<(), LoadError> {
    let rows = fetch.store.untrusted_files()?;
    let untrusted = fetch.add_nodes(rows)?;
    // Most untrusted files arrived over the network, and their receive (a cause) is among
    // the transfers already read; only the others are asked for a create or a write, each
    // such probe visiting every time partition.
    let received: HashSet<&str> = transfers
        .iter()
        .filter(|e| e.kind() == EdgeKind::ReceivedFrom)
        .map(|e| e.dst.as_str())
        .collect();
    let mut ids: Vec<String> = untrusted
        .iter()
        .map(|n| n.id.clone())
        .filter(|id| !received.contains(id.as_str()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = fetch.store.in_edges_of_kinds(&ids, &[EdgeKind::Create, EdgeKind::Write])?;
    let caused: HashSet<String> = fetch.add_edges(rows)?.into_iter().map(|e| e.dst).collect();
    for id in ids.iter().filter(|id| !caused.contains(*id)) {
        forward.reach(id, 0);
    }
    for edge in transfers {
        if edge.kind() == EdgeKind::ReceivedFrom && fetch.transfers.hosts_of(&edge.src).is_empty() {
            forward.reach(&edge.dst, edge.ts_ns);
        }
    }
    for edge in relabels {
        if let EdgeData::Relabel(RelabelAttrs { to: Trust::Untrusted, .. }) = edge.data {
            forward.reach(&edge.dst, edge.ts_ns);
        }
    }
    Ok(())
}
