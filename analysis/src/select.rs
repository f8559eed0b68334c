//! Which nodes a question starts from: the flagged file named on the command line, or,
//! without one, every untrusted arrival (for `spread` and `rules` over a whole incident).

use sensor_common::graph::{EdgeData, EdgeKind, RelabelAttrs, Trust};

use crate::error::QueryError;
use crate::index::{Graph, HostIx, NodeIx, NodeKind};
use crate::taint::{LOCAL_ORIGIN, Seed};

#[derive(Clone, Debug)]
pub enum Selector {
    Path(String),
    Sha256(String),
    Node(String),
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Path(p) => write!(f, "path `{p}`"),
            Selector::Sha256(h) => write!(f, "sha256 {h}"),
            Selector::Node(n) => write!(f, "node `{n}`"),
        }
    }
}

pub fn resolve_host(graph: &Graph, id: &str) -> Result<HostIx, QueryError> {
    graph.host_by_id(id).ok_or_else(|| QueryError::UnknownHost {
        id: id.to_owned(),
        loaded: loaded_hosts(graph),
    })
}

fn loaded_hosts(graph: &Graph) -> String {
    let mut names: Vec<_> = graph.hosts.iter().take(10).map(|h| h.id.clone()).collect();
    if graph.hosts.len() > 10 {
        names.push(format!("... {} in all", graph.hosts.len()));
    }
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// The nodes the selector names, on `host` if given. Never empty on success.
pub fn resolve(
    graph: &Graph,
    selector: &Selector,
    host: Option<HostIx>,
) -> Result<Vec<NodeIx>, QueryError> {
    let on_host = |n: NodeIx| host.is_none_or(|h| graph.node(n).host == h);
    let found: Vec<NodeIx> = match selector {
        Selector::Node(id) => {
            let n = graph.lookup(id).filter(|&n| on_host(n));
            if let Some(n) = n {
                let kind = graph.node(n).kind;
                if !matches!(kind, NodeKind::File | NodeKind::Process) {
                    return Err(QueryError::NotTraceable {
                        id: id.clone(),
                        kind: kind.name(),
                    });
                }
            }
            n.into_iter().collect()
        }
        Selector::Path(path) => graph
            .file_nodes()
            .filter(|&n| on_host(n) && graph.file(n).is_some_and(|f| f.paths().any(|p| p == path)))
            .collect(),
        Selector::Sha256(hash) => {
            let wanted = crate::index::parse_sha256(hash);
            graph
                .file_nodes()
                .filter(|&n| {
                    on_host(n)
                        && wanted.is_some()
                        && graph.file(n).is_some_and(|f| f.sha256 == wanted)
                })
                .collect()
        }
    };
    if found.is_empty() {
        let files = graph.file_nodes().count();
        return Err(QueryError::FileNotInGraph {
            selector: selector.to_string(),
            scope: host
                .map(|h| format!(" on host {}", graph.host(h).id))
                .unwrap_or_default(),
            files,
            hosts: graph.hosts.len(),
        });
    }
    Ok(found)
}

/// A flagged file is tainted from when it came to be: its earliest incoming edge or first
/// sighting. Its origin is its earliest `received_from`, if it arrived over the network.
pub fn seed_for(graph: &Graph, n: NodeIx) -> Seed {
    let first_in = graph.in_edges(n).first().map(|&e| graph.edge(e).ts_ns);
    let since_ns = first_in.map_or(graph.node(n).first_seen_ns, |t| {
        t.min(graph.node(n).first_seen_ns)
    });
    let origin = graph
        .in_edges(n)
        .iter()
        .copied()
        .find(|&e| graph.edge(e).kind == EdgeKind::ReceivedFrom)
        .unwrap_or(LOCAL_ORIGIN);
    Seed {
        node: n,
        since_ns,
        origin,
    }
}

/// Seeds for the selected nodes and, for files with a known hash, every other copy of the
/// same content on any host: the same malware is the same bytes wherever it lands.
pub fn seeds_with_copies(graph: &Graph, selected: &[NodeIx]) -> Vec<Seed> {
    let hashes: Vec<[u8; 32]> = selected
        .iter()
        .filter_map(|&n| graph.file(n)?.sha256)
        .collect();
    let mut nodes: Vec<NodeIx> = selected.to_vec();
    if !hashes.is_empty() {
        nodes.extend(graph.file_nodes().filter(|&n| {
            graph
                .file(n)
                .and_then(|f| f.sha256)
                .is_some_and(|h| hashes.contains(&h))
        }));
    }
    nodes.sort_unstable();
    nodes.dedup();
    nodes.into_iter().map(|n| seed_for(graph, n)).collect()
}

/// Without a flagged file: everything untrusted that entered the loaded set of hosts.
/// - files received from an address that is not a loaded host (outside, or a host whose
///   dump is missing), tainted from the receive;
/// - files relabeled untrusted by hand, from the relabel;
/// - files recorded as untrusted that have no recorded cause at all (local origin: USB,
///   pre-existing), from their first sighting.
///
/// Receives from a loaded host are not seeds: they are tainted only if the matching send
/// was, which propagation decides. Those with no matching send are counted in `unmatched`.
pub struct AutoSeeds {
    pub seeds: Vec<Seed>,
    pub unmatched_receives: Vec<u32>,
}

pub fn auto_seeds(graph: &Graph) -> AutoSeeds {
    let mut seeds = Vec::new();
    let mut unmatched_receives = Vec::new();
    for (e, edge) in graph.edges().iter().enumerate() {
        let e = e as u32;
        match edge.kind {
            EdgeKind::ReceivedFrom => {
                if graph.remote_host(edge.src).is_none() {
                    seeds.push(Seed {
                        node: edge.dst,
                        since_ns: edge.ts_ns,
                        origin: e,
                    });
                } else if graph.matching_send(e).is_none() {
                    unmatched_receives.push(e);
                }
            }
            EdgeKind::Relabel
                if matches!(graph.edge_data(e), EdgeData::Relabel(RelabelAttrs { to: Trust::Untrusted, .. })) =>
            {
                seeds.push(Seed {
                    node: edge.dst,
                    since_ns: edge.ts_ns,
                    origin: LOCAL_ORIGIN,
                });
            }
            _ => {}
        }
    }
    for n in graph.file_nodes() {
        let untrusted = graph.file(n).is_some_and(|f| f.untrusted);
        let has_cause = graph.in_edges(n).iter().any(|&e| {
            matches!(
                graph.edge(e).kind,
                EdgeKind::ReceivedFrom | EdgeKind::Create | EdgeKind::Write
            )
        });
        if untrusted && !has_cause {
            seeds.push(Seed {
                node: n,
                since_ns: graph.node(n).first_seen_ns,
                origin: LOCAL_ORIGIN,
            });
        }
    }
    AutoSeeds {
        seeds,
        unmatched_receives,
    }
}
