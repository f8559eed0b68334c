//! Time-respecting taint propagation: the forward half of multi-host causality.
//!
//! An entity (file or process) is tainted from a time on. An edge out of it carries the
//! taint only if it happened at or after that time (BackTracker's rule, King and Chen,
//! SOSP 2003, run forwards). Data flow edges carry taint: `exec`/`read` (file -> process),
//! `fork`, `create`/`write` (process -> file). A `sent_to` carries it to the matching
//! `received_from` on the receiving host (King et al., NDSS 2005), paired within the skew
//! allowance; the received file is tainted from its own receive time on its own clock, so
//! clock skew never compares two hosts' times except in that pairing.
//! A hand relabel to trusted stops a file's taint from that moment (until relabeled back).
//!
//! Each taint label remembers its origin: the `received_from` edge that brought the taint
//! onto the host it is on, or `LOCAL_ORIGIN` if it started there. Labels are earliest-time
//! (label-correcting search: a cross-host hop can go back in time by up to the skew).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use sensor_common::graph::EdgeKind;

use crate::index::{EdgeIx, Graph, NodeIx, NodeKind};

pub const LOCAL_ORIGIN: EdgeIx = EdgeIx::MAX;
pub const NO_EDGE: EdgeIx = EdgeIx::MAX;

#[derive(Clone, Copy, Debug)]
pub struct Seed {
    pub node: NodeIx,
    pub since_ns: u64,
    pub origin: EdgeIx,
}

#[derive(Clone, Copy, Debug)]
pub struct Label {
    pub since_ns: u64,
    /// `received_from` edge that brought the taint onto this host, or `LOCAL_ORIGIN`.
    pub origin: EdgeIx,
    /// Edge that tainted this entity first, `NO_EDGE` for seeds.
    pub via: EdgeIx,
    /// Index of the seed this taint descends from.
    pub seed: u32,
}

#[derive(Default)]
pub struct Taint {
    pub labels: HashMap<NodeIx, Label>,
    /// Tainted `sent_to` edges whose receive is not in the loaded graph.
    pub unmatched_sends: Vec<EdgeIx>,
}

impl Taint {
    pub fn label(&self, n: NodeIx) -> Option<&Label> {
        self.labels.get(&n)
    }

    /// Does `file`'s taint reach an edge out of it at `at`? (Tainted before, not relabeled trusted.)
    pub fn file_tainted_at(&self, graph: &Graph, file: NodeIx, at: u64) -> Option<&Label> {
        let label = self.labels.get(&file)?;
        (label.since_ns <= at && !graph.relabeled_trusted(file, label.since_ns, at))
            .then_some(label)
    }

    /// Every network arrival that may have brought what `execution` (a tainted `exec` or
    /// `read`) ran, earliest first: the origin of the executed file's taint, and any later
    /// arrival into that same file before it ran - a second upload over the first, by
    /// whatever protocol - that carried taint itself (from outside the loaded hosts, or the
    /// receive of a tainted send). Labels keep one origin, the earliest; this is all of them.
    pub fn arrivals_before(&self, graph: &Graph, execution: EdgeIx) -> Vec<EdgeIx> {
        let run = graph.edge(execution);
        self.arrivals_into(graph, run.src, run.ts_ns, |_| true)
    }

    /// The network arrivals into `file` up to `until` that carried taint `counts` accepts,
    /// earliest first: its label's origin, and every later receive into it that carried
    /// taint itself (judged by the file's label for a receive from outside the loaded
    /// hosts, by the sent file's label for the receive of a send).
    pub fn arrivals_into(&self, graph: &Graph, file: NodeIx, until: u64, counts: impl Fn(&Label) -> bool) -> Vec<EdgeIx> {
        let Some(label) = self.labels.get(&file) else {
            return Vec::new();
        };
        let carried_taint = |r: EdgeIx| match graph.remote_host(graph.edge(r).src) {
            None => counts(label),
            Some(_) => graph.matching_send(r).is_some_and(|s| {
                let sent = graph.edge(s);
                self.file_tainted_at(graph, sent.src, sent.ts_ns).is_some_and(&counts)
            }),
        };
        let mut arrivals: Vec<EdgeIx> = graph
            .in_edges_until(file, until)
            .iter()
            .copied()
            .filter(|&r| {
                let edge = graph.edge(r);
                edge.kind == EdgeKind::ReceivedFrom
                    && edge.ts_ns >= label.since_ns
                    && carried_taint(r)
            })
            .collect();
        if label.origin != LOCAL_ORIGIN && counts(label) {
            arrivals.push(label.origin);
        }
        arrivals.sort_unstable_by_key(|&r| (graph.edge(r).ts_ns, r));
        arrivals.dedup();
        arrivals
    }

    /// `exec`/`read` edges of tainted files: the tainted executions, in time order.
    pub fn tainted_executions(&self, graph: &Graph) -> Vec<EdgeIx> {
        let mut executions = Vec::new();
        for (&n, label) in &self.labels {
            if graph.node(n).kind != NodeKind::File {
                continue;
            }
            for &e in graph.out_edges_since(n, label.since_ns) {
                let edge = graph.edge(e);
                if matches!(edge.kind, EdgeKind::Exec | EdgeKind::Read)
                    && !graph.relabeled_trusted(n, label.since_ns, edge.ts_ns)
                {
                    executions.push(e);
                }
            }
        }
        executions.sort_unstable();
        executions
    }
}

pub fn propagate(graph: &Graph, seeds: &[Seed]) -> Taint {
    let mut taint = Taint::default();
    let mut queue = BinaryHeap::new();
    let relax = |taint: &mut Taint, queue: &mut BinaryHeap<_>, node: NodeIx, label: Label| {
        let better = taint
            .labels
            .get(&node)
            .is_none_or(|old| label.since_ns < old.since_ns);
        if better {
            taint.labels.insert(node, label);
            queue.push(Reverse((label.since_ns, node)));
        }
    };
    for (index, seed) in seeds.iter().enumerate() {
        let label = Label {
            since_ns: seed.since_ns,
            origin: seed.origin,
            via: NO_EDGE,
            seed: index as u32,
        };
        relax(&mut taint, &mut queue, seed.node, label);
    }
    while let Some(Reverse((since_ns, node))) = queue.pop() {
        let label = taint.labels[&node];
        if label.since_ns != since_ns {
            continue; // superseded by an earlier label
        }
        let kind = graph.node(node).kind;
        for &e in graph.out_edges_since(node, since_ns) {
            let edge = *graph.edge(e);
            // Within the host: tainted from the edge on, with the same origin.
            let along = Label {
                since_ns: edge.ts_ns,
                origin: label.origin,
                via: e,
                seed: label.seed,
            };
            match (kind, edge.kind) {
                (NodeKind::File, EdgeKind::Exec | EdgeKind::Read)
                    if !graph.relabeled_trusted(node, since_ns, edge.ts_ns) =>
                {
                    relax(&mut taint, &mut queue, edge.dst, along);
                }
                (NodeKind::File, EdgeKind::SentTo) => {
                    if graph.relabeled_trusted(node, since_ns, edge.ts_ns) {
                        continue;
                    }
                    match graph.matching_receive(e) {
                        Some(received) => {
                            // On the receiver: its arrival is the new origin.
                            let arrival = graph.edge(received);
                            let onto = Label {
                                since_ns: arrival.ts_ns,
                                origin: received,
                                via: received,
                                seed: label.seed,
                            };
                            relax(&mut taint, &mut queue, arrival.dst, onto);
                        }
                        None => taint.unmatched_sends.push(e),
                    }
                }
                (
                    NodeKind::Process | NodeKind::Unknown,
                    EdgeKind::Fork | EdgeKind::Create | EdgeKind::Write,
                ) => {
                    relax(&mut taint, &mut queue, edge.dst, along);
                }
                _ => {}
            }
        }
    }
    taint.unmatched_sends.sort_unstable();
    taint.unmatched_sends.dedup();
    taint
}
