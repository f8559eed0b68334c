//! Who infected whom: each host's first infection and the arrivals behind it, its parent
//! (a loaded host, an outside address, or a local origin), loops cut, and the tree they
//! make with the carriers (`carriers`).

use std::collections::HashMap;

use crate::index::{EdgeIx, Graph, HostIx};
use crate::taint::{LOCAL_ORIGIN, Taint};

/// Where a host's taint came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Parent {
    Host(HostIx, EdgeIx),
    /// The transfer came from an address that is no loaded host.
    Outside(EdgeIx),
    Local,
}

/// Per infected host: its first tainted execution, the earliest transfer that led to any
/// tainted execution there, and every transfer that led to one.
pub(super) struct Infections {
    pub(super) first_exec: HashMap<HostIx, EdgeIx>,
    earliest_transfer: HashMap<HostIx, EdgeIx>,
    /// Earliest first, each once.
    pub(super) arrivals: HashMap<HostIx, Vec<EdgeIx>>,
}

impl Infections {
    pub(super) fn per_host(graph: &Graph, taint: &Taint, executions: &[EdgeIx]) -> Self {
        let mut first_exec: HashMap<HostIx, EdgeIx> = HashMap::new();
        let mut earliest_transfer: HashMap<HostIx, EdgeIx> = HashMap::new();
        let mut arrivals: HashMap<HostIx, Vec<EdgeIx>> = HashMap::new();
        for &x in executions {
            let edge = graph.edge(x);
            let host = edge.host;
            arrivals
                .entry(host)
                .or_default()
                .extend(taint.arrivals_before(graph, x));
            first_exec
                .entry(host)
                .and_modify(|f| {
                    if graph.edge(*f).ts_ns > edge.ts_ns {
                        *f = x
                    }
                })
                .or_insert(x);
            let origin = taint.label(edge.src).map_or(LOCAL_ORIGIN, |l| l.origin);
            if origin != LOCAL_ORIGIN {
                earliest_transfer
                    .entry(host)
                    .and_modify(|t| {
                        if (graph.edge(origin).ts_ns, origin) < (graph.edge(*t).ts_ns, *t) {
                            *t = origin
                        }
                    })
                    .or_insert(origin);
            }
        }
        for list in arrivals.values_mut() {
            list.sort_unstable_by_key(|&t| (graph.edge(t).ts_ns, t));
            list.dedup();
        }
        Infections {
            first_exec,
            earliest_transfer,
            arrivals,
        }
    }

    pub(super) fn is_infected(&self, h: HostIx) -> bool {
        self.first_exec.contains_key(&h)
    }

    /// The first tainted execution on `h`, on its own clock.
    pub(super) fn infected_at(&self, graph: &Graph, h: HostIx) -> Option<u64> {
        self.first_exec.get(&h).map(|&x| graph.edge(x).ts_ns)
    }

    /// Every infection time, earliest first.
    pub(super) fn times(&self, graph: &Graph) -> Vec<u64> {
        let mut times: Vec<u64> = self.first_exec.values().map(|&x| graph.edge(x).ts_ns).collect();
        times.sort_unstable();
        times
    }
}

/// Each infected host's parent: local when its first tainted execution has a local origin,
/// else the sender of its earliest tainted transfer (a loaded host or an outside address).
pub(super) fn parents_of_infected(graph: &Graph, taint: &Taint, infections: &Infections) -> HashMap<HostIx, Parent> {
    let parent_of = |host: HostIx| -> Parent {
        let first = infections.first_exec[&host];
        let first_origin = taint
            .label(graph.edge(first).src)
            .map_or(LOCAL_ORIGIN, |l| l.origin);
        if first_origin == LOCAL_ORIGIN {
            return Parent::Local;
        }
        let transfer = infections.earliest_transfer[&host];
        match graph.remote_host(graph.edge(transfer).src) {
            Some(sender) if sender != host => Parent::Host(sender, transfer),
            _ => Parent::Outside(transfer),
        }
    };
    infections.first_exec.keys().map(|&h| (h, parent_of(h))).collect()
}

/// The propagation tree over infected hosts and carriers, without loops.
pub(super) struct Tree {
    pub(super) parents: HashMap<HostIx, Parent>,
    /// In infection order.
    children: HashMap<HostIx, Vec<HostIx>>,
    /// Every host in the tree in infection order (carriers last), then by id.
    pub(super) order: Vec<HostIx>,
    /// 0 for roots.
    pub(super) depth: HashMap<HostIx, u32>,
}

impl Tree {
    pub(super) fn new(graph: &Graph, parents: HashMap<HostIx, Parent>, infections: &Infections) -> Self {
        let mut children: HashMap<HostIx, Vec<HostIx>> = HashMap::new();
        for (&h, p) in &parents {
            if let Parent::Host(parent, _) = p {
                children.entry(*parent).or_default().push(h);
            }
        }
        let sort_key = |h: &HostIx| {
            (
                infections.infected_at(graph, *h).unwrap_or(u64::MAX),
                graph.host(*h).id.clone(),
            )
        };
        for list in children.values_mut() {
            list.sort_by_key(sort_key);
        }
        let mut order: Vec<HostIx> = parents.keys().copied().collect();
        order.sort_by_key(sort_key);

        let mut depth: HashMap<HostIx, u32> = HashMap::new();
        let mut stack: Vec<(HostIx, u32)> = order
            .iter()
            .filter(|h| !matches!(parents[h], Parent::Host(..)))
            .map(|&h| (h, 0))
            .collect();
        while let Some((h, d)) = stack.pop() {
            depth.insert(h, d);
            for &c in children.get(&h).map(Vec::as_slice).unwrap_or(&[]) {
                stack.push((c, d + 1));
            }
        }
        Tree {
            parents,
            children,
            order,
            depth,
        }
    }

    pub(super) fn children(&self, h: HostIx) -> &[HostIx] {
        self.children.get(&h).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Infected hosts anywhere below `h`.
    pub(super) fn infected_descendants(&self, h: HostIx, infections: &Infections) -> usize {
        let mut count = 0;
        let mut stack = vec![h];
        while let Some(x) = stack.pop() {
            for &c in self.children(x) {
                count += usize::from(infections.is_infected(c));
                stack.push(c);
            }
        }
        count
    }

    /// Whether an infected host is above `h` (a carrier does not count: it held the file
    /// but never ran it).
    pub(super) fn has_infected_ancestor(&self, h: HostIx, infections: &Infections) -> bool {
        let mut at = h;
        let mut steps = 0;
        while let Some(Parent::Host(p, _)) = self.parents.get(&at).copied() {
            if infections.is_infected(p) {
                return true;
            }
            at = p;
            steps += 1;
            if steps > self.parents.len() {
                break;
            }
        }
        false
    }
}

/// Infected hosts with no infected ancestor, in infection order.
pub(super) fn patient_zeros(graph: &Graph, tree: &Tree, infections: &Infections) -> Vec<String> {
    tree.order
        .iter()
        .filter(|&&h| infections.is_infected(h) && !tree.has_infected_ancestor(h, infections))
        .map(|&h| graph.host(h).id.clone())
        .collect()
}

pub(super) fn cut_cycles(
    graph: &Graph,
    parents: &mut HashMap<HostIx, Parent>,
    infected_at: &dyn Fn(HostIx) -> Option<u64>,
    warnings: &mut Vec<String>,
) {
    let hosts: Vec<HostIx> = parents.keys().copied().collect();
    for start in hosts {
        let mut seen = vec![start];
        let mut at = start;
        while let Some(Parent::Host(p, _)) = parents.get(&at).copied() {
            if let Some(pos) = seen.iter().position(|&s| s == p) {
                let cycle = &seen[pos..];
                let cut = *cycle
                    .iter()
                    .min_by_key(|&&h| (infected_at(h).unwrap_or(u64::MAX), h))
                    .unwrap_or(&p);
                let names: Vec<_> = cycle.iter().map(|&h| graph.host(h).id.clone()).collect();
                warnings.push(format!(
                    "hosts {} pass the taint around in a loop (carriers relaying it); {} is taken as a root",
                    names.join(" -> "),
                    graph.host(cut).id
                ));
                parents.insert(cut, Parent::Local);
                break;
            }
            seen.push(p);
            at = p;
        }
    }
}
