//! Trace one flagged file: where it came from (backward), what it did and where it went
//! (forward), and what its processes did (behaviours).
//!
//! Backward is BackTracker (King and Chen, SOSP 2003): starting from the flagged nodes, an
//! incoming edge counts only if it happened no later than the latest time its effect
//! matters (for the flagged node: the end of the recording; for a cause found on the way:
//! the time of the edge it caused). Data flow edges are followed (`exec`, `read`, `fork`,
//! `create`, `write`); metadata edges (`chmod`, `rename`, `link`, `unlink`, `truncate`,
//! `relabel`) are listed but their actors are not followed, since they carry no content.
//! A `received_from` is an entry point; if the sender is a loaded host, the matching
//! `sent_to` is found (within the skew allowance) and the search goes on there, so the
//! chain runs across hosts back to the first entry into the loaded set.

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use sensor_common::graph::{ConnectDirection, EdgeData, EdgeKind};
use serde::Serialize;

use crate::index::{EdgeIx, Graph, HostIx, NodeIx, NodeKind};
use crate::select::{Selector, resolve, seed_for};
use crate::taint::{LOCAL_ORIGIN, NO_EDGE, Seed, Taint, propagate};
use crate::time::{Span, Timestamp};
use crate::view::{EdgeView, NodeView, TransferView, TreeHost};

/// Backward searches stop after this many edges: past it a dependency explosion is being
/// listed, not a cause (the report says it stopped).
const BACKWARD_EDGE_LIMIT: usize = 200_000;
/// Behaviour timelines longer than this are cut (the report says how many were left out).
const TIMELINE_LIMIT: usize = 5_000;

#[derive(Clone, Debug, Serialize)]
pub struct EntryPoint {
    /// `received_from` (from outside the loaded hosts or from a host whose dump is missing),
    /// or `local` (no network arrival in the causes: created on the host itself).
    pub kind: &'static str,
    pub transfer: Option<TransferView>,
    /// For a local origin: the earliest causes found.
    pub local_roots: Vec<NodeView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Hop {
    /// The arrival on the receiving host.
    pub received: TransferView,
    /// The matching send on the sending host.
    pub sent: EdgeView,
}

#[derive(Clone, Debug, Serialize)]
pub struct Backward {
    pub entry_points: Vec<EntryPoint>,
    /// Host-to-host hops on the way back, latest first.
    pub hops: Vec<Hop>,
    /// One path from the earliest entry point to the flagged file, in time order.
    pub chain: Vec<EdgeView>,
    /// Every edge found, in time order.
    pub edges: Vec<EdgeView>,
    pub hosts: Vec<String>,
    pub stopped_early: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Effect {
    pub node: NodeView,
    pub since: String,
    pub since_ns: u64,
    /// The edge that carried the taint to it.
    pub via: Option<EdgeView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SendView {
    pub edge: EdgeView,
    pub to_ip: String,
    pub to_node_ids: Vec<String>,
    pub to_host: Option<String>,
    /// Receive on the other side, when its dump is loaded and the times pair up.
    pub received: Option<TransferView>,
}

/// A TCP connection of a tainted process (`connect` edge): a host it reached, or that
/// reached it (`direction = in`: a connection it accepted).
#[derive(Clone, Debug, Serialize)]
pub struct ConnectView {
    pub edge: EdgeView,
    pub to_ip: String,
    pub to_node_ids: Vec<String>,
    pub to_host: Option<String>,
    pub port: Option<u16>,
    pub direction: ConnectDirection,
}

/// (ip, node ids, loaded host) of a `remote:` node.
fn remote_names(graph: &Graph, n: NodeIx) -> (String, Vec<String>, Option<String>) {
    let remote = graph.remote(n);
    (
        remote.map(|r| r.ip.to_string()).unwrap_or_default(),
        remote
            .map(|r| r.node_ids.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
        graph.remote_host(n).map(|h| graph.host(h).id.clone()),
    )
}

#[derive(Clone, Debug, Serialize)]
pub struct HostReach {
    pub host: String,
    pub hostname: String,
    pub first_tainted_ns: u64,
    pub first_tainted: String,
    pub executed: bool,
    /// Host the taint came from (None for the flagged file's own host).
    pub from: Option<String>,
    pub via: Option<TransferView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Forward {
    pub files_written: Vec<Effect>,
    pub processes_started: Vec<Effect>,
    pub activation_points: Vec<EdgeView>,
    pub sent_to: Vec<SendView>,
    /// TCP connections the tainted processes made or accepted.
    pub connections: Vec<ConnectView>,
    pub hosts_reached: Vec<HostReach>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TraceReport {
    pub flagged: Vec<NodeView>,
    pub skew_allowance: String,
    pub backward: Backward,
    pub forward: Forward,
    /// What the flagged file's processes (and their descendants) did, in time order.
    pub behaviours: Vec<EdgeView>,
    pub behaviours_left_out: usize,
    pub warnings: Vec<String>,
}

impl TraceReport {
    /// Hosts the taint reached, drawn as a tree by first tainting transfer.
    pub fn tree(&self) -> Vec<TreeHost> {
        self.forward
            .hosts_reached
            .iter()
            .map(|h| {
                let role = if h.from.is_none() {
                    "flagged"
                } else if h.executed {
                    "infected"
                } else {
                    "reached"
                };
                TreeHost::new(&h.host, &h.hostname, role, h.from.clone(), Some(h.first_tainted_ns), h.via.as_ref())
            })
            .collect()
    }
}

pub fn trace(
    graph: &Graph,
    selector: &Selector,
    host: Option<HostIx>,
) -> Result<TraceReport, crate::error::QueryError> {
    let flagged = resolve(graph, selector, host)?;
    let mut warnings = Vec::new();
    if flagged.len() > 1 {
        warnings.push(format!(
            "{selector} matches {} nodes (on {} hosts); all are traced together (use --host or --node to pick one)",
            flagged.len(),
            flagged.iter().map(|&n| graph.node(n).host).collect::<HashSet<_>>().len()
        ));
    }
    let backward = backward(graph, &flagged, &mut warnings);
    let seeds: Vec<Seed> = flagged.iter().map(|&n| seed_for(graph, n)).collect();
    let taint = propagate(graph, &seeds);
    let forward = forward(graph, &flagged, &taint, &mut warnings);
    let (behaviours, behaviours_left_out) = behaviours(graph, &taint);
    Ok(TraceReport {
        flagged: flagged.iter().map(|&n| NodeView::new(graph, n)).collect(),
        skew_allowance: Span(graph.skew_allowance_ns).to_string(),
        backward,
        forward,
        behaviours,
        behaviours_left_out,
        warnings,
    })
}

/// The step that first reached a node in the backward search, pointing towards the flagged node.
#[derive(Clone, Copy)]
struct Step {
    edge: EdgeIx,
    /// For a cross-host step (`sent_to` on the sender), the receive it pairs with.
    received: EdgeIx,
}

fn backward(graph: &Graph, flagged: &[NodeIx], warnings: &mut Vec<String>) -> Backward {
    // deadline[n]: the latest time at which n's state can still explain what was found.
    let mut deadline: HashMap<NodeIx, u64> = HashMap::new();
    let mut toward_flagged: HashMap<NodeIx, Step> = HashMap::new();
    let mut queue: BinaryHeap<(u64, NodeIx)> = BinaryHeap::new();
    let mut found: Vec<EdgeIx> = Vec::new();
    let mut found_set: HashSet<EdgeIx> = HashSet::new();
    let mut entries: Vec<EdgeIx> = Vec::new();
    let mut hops: Vec<(EdgeIx, EdgeIx)> = Vec::new();
    let mut stopped_early = false;

    for &n in flagged {
        deadline.insert(n, u64::MAX);
        queue.push((u64::MAX, n));
    }
    let mut reach = |deadline: &mut HashMap<NodeIx, u64>,
                     queue: &mut BinaryHeap<_>,
                     node: NodeIx,
                     by: u64,
                     step: Step| {
        let better = deadline.get(&node).is_none_or(|&d| by > d);
        if better {
            deadline.insert(node, by);
            toward_flagged.entry(node).or_insert(step);
            queue.push((by, node));
        }
    };
    'search: while let Some((by, node)) = queue.pop() {
        if deadline[&node] != by {
            continue;
        }
        for &e in graph.in_edges_until(node, by) {
            if !found_set.insert(e) {
                continue;
            }
            if found.len() >= BACKWARD_EDGE_LIMIT {
                stopped_early = true;
                break 'search;
            }
            found.push(e);
            let edge = *graph.edge(e);
            match edge.kind {
                EdgeKind::Exec
                | EdgeKind::Read
                | EdgeKind::Fork
                | EdgeKind::Create
                | EdgeKind::Write => {
                    reach(
                        &mut deadline,
                        &mut queue,
                        edge.src,
                        edge.ts_ns,
                        Step {
                            edge: e,
                            received: NO_EDGE,
                        },
                    );
                }
                EdgeKind::ReceivedFrom => match graph.matching_send(e) {
                    Some(sent) => {
                        hops.push((e, sent));
                        if found_set.insert(sent) {
                            found.push(sent);
                        }
                        let sent_edge = graph.edge(sent);
                        reach(
                            &mut deadline,
                            &mut queue,
                            sent_edge.src,
                            sent_edge.ts_ns,
                            Step {
                                edge: sent,
                                received: e,
                            },
                        );
                    }
                    None => entries.push(e),
                },
                _ => {}
            }
        }
    }
    if stopped_early {
        warnings.push(format!(
            "backward search stopped after {BACKWARD_EDGE_LIMIT} edges (dependency explosion); entry points may be missing"
        ));
    }

    entries.sort_by_key(|&e| (graph.edge(e).ts_ns, e));
    let mut entry_points: Vec<EntryPoint> = entries
        .iter()
        .map(|&e| EntryPoint {
            kind: "received_from",
            transfer: Some(TransferView::new(graph, e)),
            local_roots: Vec::new(),
        })
        .collect();
    for entry in &entry_points {
        if let Some(t) = &entry.transfer {
            if t.from_host.is_some() {
                warnings.push(format!(
                    "{}: the sender is loaded but has no matching send within ±{}: check clock skew (--skew-allowance)",
                    t.sentence(),
                    Span(graph.skew_allowance_ns)
                ));
            } else if !t.from_node_ids.is_empty() {
                warnings.push(format!(
                    "the file came from {} = node {}, whose dump is not loaded: load it to trace further back",
                    t.from_ip,
                    t.from_node_ids.join("/")
                ));
            }
        }
    }
    // Walk from the earliest entry point (or the earliest local root) toward the flagged node.
    let chain_start = match entries.first() {
        Some(&e) => Some((graph.edge(e).dst, vec![e])),
        None => {
            let roots = local_roots(graph, &deadline, flagged);
            let start = roots.first().copied();
            entry_points.push(EntryPoint {
                kind: "local",
                transfer: None,
                local_roots: roots
                    .iter()
                    .take(10)
                    .map(|&n| NodeView::new(graph, n))
                    .collect(),
            });
            start.map(|n| (n, Vec::new()))
        }
    };
    let mut chain = Vec::new();
    if let Some((mut node, mut edges)) = chain_start {
        let mut guard = 0;
        while let Some(step) = toward_flagged.get(&node) {
            edges.push(step.edge);
            let next = if step.received != NO_EDGE {
                edges.push(step.received);
                graph.edge(step.received).dst
            } else {
                graph.edge(step.edge).dst
            };
            node = next;
            guard += 1;
            if guard > 100_000 {
                break;
            }
        }
        chain = edges.into_iter().map(|e| EdgeView::new(graph, e)).collect();
    }

    found.sort_unstable_by_key(|&e| (graph.edge(e).ts_ns, e));
    let mut hosts: Vec<String> = found
        .iter()
        .map(|&e| graph.edge(e).host)
        .chain(flagged.iter().map(|&n| graph.node(n).host))
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|h| graph.host(h).id.clone())
        .collect();
    hosts.sort();
    Backward {
        entry_points,
        hops: hops
            .iter()
            .rev()
            .map(|&(r, s)| Hop {
                received: TransferView::new(graph, r),
                sent: EdgeView::new(graph, s),
            })
            .collect(),
        chain,
        edges: found.iter().map(|&e| EdgeView::new(graph, e)).collect(),
        hosts,
        stopped_early,
    }
}

/// Nodes reached backward that have no cause themselves, earliest first.
fn local_roots(graph: &Graph, deadline: &HashMap<NodeIx, u64>, flagged: &[NodeIx]) -> Vec<NodeIx> {
    let mut roots: Vec<NodeIx> = deadline
        .iter()
        .filter(|&(&n, &by)| {
            !graph.in_edges_until(n, by).iter().any(|&e| {
                matches!(
                    graph.edge(e).kind,
                    EdgeKind::Exec
                        | EdgeKind::Read
                        | EdgeKind::Fork
                        | EdgeKind::Create
                        | EdgeKind::Write
                        | EdgeKind::ReceivedFrom
                )
            })
        })
        .map(|(&n, _)| n)
        .collect();
    if roots.is_empty() {
        roots = flagged.to_vec();
    }
    roots.sort_by_key(|&n| (graph.node(n).first_seen_ns, n));
    roots
}

fn forward(
    graph: &Graph,
    flagged: &[NodeIx],
    taint: &Taint,
    warnings: &mut Vec<String>,
) -> Forward {
    let mut files_written = Vec::new();
    let mut processes_started = Vec::new();
    let mut activation_points = Vec::new();
    let mut sent_to = Vec::new();
    let mut connections = Vec::new();
    let mut first_on_host: BTreeMap<HostIx, (u64, EdgeIx)> = BTreeMap::new();
    let mut executed_on: HashSet<HostIx> = HashSet::new();

    let mut labeled: Vec<(&NodeIx, &crate::taint::Label)> = taint.labels.iter().collect();
    labeled.sort_by_key(|(n, l)| (l.since_ns, **n));
    for (&n, label) in labeled {
        let node = graph.node(n);
        let entry = first_on_host
            .entry(node.host)
            .or_insert((label.since_ns, label.origin));
        if label.since_ns < entry.0 {
            *entry = (label.since_ns, label.origin);
        }
        let effect = || Effect {
            node: NodeView::new(graph, n),
            since: Timestamp(label.since_ns).to_string(),
            since_ns: label.since_ns,
            via: (label.via != NO_EDGE).then(|| EdgeView::new(graph, label.via)),
        };
        match node.kind {
            NodeKind::Process => {
                processes_started.push(effect());
                for &e in graph.out_edges_since(n, label.since_ns) {
                    let edge = graph.edge(e);
                    if edge.is_activation_point() {
                        activation_points.push(EdgeView::new(graph, e));
                    }
                    if edge.kind == EdgeKind::Connect {
                        let connect = match graph.edge_data(e) {
                            EdgeData::Connect(c) => Some(c),
                            _ => None,
                        };
                        let (to_ip, to_node_ids, to_host) = remote_names(graph, edge.dst);
                        connections.push(ConnectView {
                            edge: EdgeView::new(graph, e),
                            to_ip,
                            to_node_ids,
                            to_host,
                            port: connect.as_ref().map(|c| c.port),
                            direction: connect.map_or(ConnectDirection::Out, |c| c.direction),
                        });
                    }
                }
                executed_on.insert(node.host);
            }
            NodeKind::File => {
                if !flagged.contains(&n) {
                    files_written.push(effect());
                }
                for &e in graph.out_edges_since(n, label.since_ns) {
                    let edge = graph.edge(e);
                    if edge.kind == EdgeKind::SentTo
                        && !graph.relabeled_trusted(n, label.since_ns, edge.ts_ns)
                    {
                        let (to_ip, to_node_ids, to_host) = remote_names(graph, edge.dst);
                        sent_to.push(SendView {
                            edge: EdgeView::new(graph, e),
                            to_ip,
                            to_node_ids,
                            to_host,
                            received: graph
                                .matching_receive(e)
                                .map(|r| TransferView::new(graph, r)),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    activation_points.sort_by_key(|v| v.ts_ns);
    sent_to.sort_by_key(|s| s.edge.ts_ns);
    connections.sort_by_key(|c| c.edge.ts_ns);
    for send in &sent_to {
        if send.received.is_none() {
            warnings.push(match &send.to_host {
                Some(h) => format!(
                    "sent to host {h} at {} but no matching receive there within ±{}",
                    send.edge.time,
                    Span(graph.skew_allowance_ns)
                ),
                None if !send.to_node_ids.is_empty() => format!(
                    "sent to {} = node {} at {}: its dump is not loaded, spread past it is unknown",
                    send.to_ip,
                    send.to_node_ids.join("/"),
                    send.edge.time
                ),
                None => format!(
                    "sent to {} at {} (outside the loaded hosts)",
                    send.to_ip, send.edge.time
                ),
            });
        }
    }
    let mut hosts_reached: Vec<HostReach> = first_on_host
        .into_iter()
        .map(|(h, (since, origin))| {
            let via = (origin != LOCAL_ORIGIN).then(|| TransferView::new(graph, origin));
            HostReach {
                host: graph.host(h).id.clone(),
                hostname: graph.host(h).hostname.clone(),
                first_tainted_ns: since,
                first_tainted: Timestamp(since).to_string(),
                executed: executed_on.contains(&h),
                from: via
                    .as_ref()
                    .and_then(|v| v.from_host.clone())
                    .filter(|f| *f != graph.host(h).id),
                via,
            }
        })
        .collect();
    hosts_reached.sort_by_key(|h| h.first_tainted_ns);
    Forward {
        files_written,
        processes_started,
        activation_points,
        sent_to,
        connections,
        hosts_reached,
    }
}

fn behaviours(graph: &Graph, taint: &Taint) -> (Vec<EdgeView>, usize) {
    let mut edges: Vec<EdgeIx> = Vec::new();
    for (&n, label) in &taint.labels {
        if graph.node(n).kind != NodeKind::Process {
            continue;
        }
        edges.extend_from_slice(graph.out_edges_since(n, label.since_ns));
        edges.extend(
            graph
                .in_edges(n)
                .iter()
                .filter(|&&e| matches!(graph.edge(e).kind, EdgeKind::Exec | EdgeKind::Fork)),
        );
    }
    edges.sort_unstable_by_key(|&e| (graph.edge(e).ts_ns, e));
    edges.dedup();
    let left_out = edges.len().saturating_sub(TIMELINE_LIMIT);
    edges.truncate(TIMELINE_LIMIT);
    (
        edges.into_iter().map(|e| EdgeView::new(graph, e)).collect(),
        left_out,
    )
}
