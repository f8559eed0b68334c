//! Carriers: loaded hosts that received the worm and never ran it. They are the hosts to
//! clean before somebody opens the file, and the relays when the worm passes through a
//! host that only stores it (a file server copying a share on).
//!
//! "The worm" is the taint of the seeds that reached a tainted execution, and of every
//! other seed with the same content: without a flagged file every untrusted arrival is a
//! seed, and an untrusted download that nobody ran anywhere makes no carrier; a copy of
//! what ran does, wherever it landed (with a flagged file, its copies are seeds too).

use std::collections::{HashMap, HashSet};

use super::tree::{Infections, Parent};
use crate::index::{EdgeIx, Graph, HostIx, NodeKind};
use crate::taint::{Seed, Taint};

/// Per seed (by index, as `Label::seed`): is its taint the worm?
pub(super) fn worm_seeds(graph: &Graph, seeds: &[Seed], taint: &Taint, executions: &[EdgeIx]) -> Vec<bool> {
    let mut worm = vec![false; seeds.len()];
    for &x in executions {
        if let Some(label) = taint.label(graph.edge(x).src) {
            worm[label.seed as usize] = true;
        }
    }
    let sha256 = |seed: &Seed| graph.file(seed.node).and_then(|f| f.sha256);
    let ran: HashSet<[u8; 32]> = seeds
        .iter()
        .zip(&worm)
        .filter(|&(_, &w)| w)
        .filter_map(|(s, _)| sha256(s))
        .collect();
    for (seed, w) in seeds.iter().zip(&mut worm) {
        *w = *w || sha256(seed).is_some_and(|h| ran.contains(&h));
    }
    worm
}

/// Every host that is not infected but received the worm: its tainted arrivals (whichever
/// protocol, into whichever file), earliest first.
fn carrier_arrivals(
    graph: &Graph,
    taint: &Taint,
    worm: &[bool],
    infections: &Infections,
) -> HashMap<HostIx, Vec<EdgeIx>> {
    let mut arrivals: HashMap<HostIx, Vec<EdgeIx>> = HashMap::new();
    for &n in taint.labels.keys() {
        let host = graph.node(n).host;
        if graph.node(n).kind != NodeKind::File || infections.is_infected(host) {
            continue;
        }
        let into = taint.arrivals_into(graph, n, u64::MAX, |l| worm[l.seed as usize]);
        if !into.is_empty() {
            arrivals.entry(host).or_default().extend(into);
        }
    }
    for list in arrivals.values_mut() {
        list.sort_unstable_by_key(|&t| (graph.edge(t).ts_ns, t));
        list.dedup();
    }
    arrivals
}

/// Adds every carrier to `parents`: the sender of its earliest tainted arrival (a loaded
/// host or an outside address). A sender in the tree that neither ran the worm nor
/// received it (its taint started there: a hand relabel, a file of unknown cause) is a
/// carrier with a local origin. Returns each carrier's tainted arrivals, earliest first.
pub(super) fn add_carriers(
    graph: &Graph,
    taint: &Taint,
    worm: &[bool],
    infections: &Infections,
    parents: &mut HashMap<HostIx, Parent>,
) -> HashMap<HostIx, Vec<EdgeIx>> {
    let arrivals = carrier_arrivals(graph, taint, worm, infections);
    let mut pending: Vec<HostIx> = arrivals
        .keys()
        .copied()
        .chain(parents.values().filter_map(|p| match p {
            Parent::Host(h, _) => Some(*h),
            _ => None,
        }))
        .collect();
    while let Some(h) = pending.pop() {
        if parents.contains_key(&h) {
            continue;
        }
        let parent = match arrivals.get(&h).and_then(|a| a.first()) {
            Some(&t) => match graph.remote_host(graph.edge(t).src) {
                Some(sender) if sender != h => {
                    pending.push(sender);
                    Parent::Host(sender, t)
                }
                _ => Parent::Outside(t),
            },
            None => Parent::Local,
        };
        parents.insert(h, parent);
    }
    arrivals
}
