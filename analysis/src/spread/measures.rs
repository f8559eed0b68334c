//! The figures drawn from the tree: super infectors, infections over time, doubling
//! time, and the shape of the tree and of the contact network.

use std::collections::{HashMap, HashSet};

use super::tree::{Infections, Tree};
use super::{Doubling, SuperInfector, TimeBucket, Topology};
use crate::index::{Graph, HostIx};
use crate::time::{NS_PER_SEC, Span, Timestamp};

/// Hosts that infected any, ranked by direct infections, then all descendants, then
/// earlier infection; flagged super as the module says. Carriers made are counted apart.
pub(super) fn super_infectors(graph: &Graph, tree: &Tree, infections: &Infections) -> Vec<SuperInfector> {
    let mut ranking: Vec<SuperInfector> = tree
        .order
        .iter()
        .filter_map(|&h| {
            let children = tree.children(h);
            let direct = children.iter().filter(|&&c| infections.is_infected(c)).count();
            (direct > 0).then(|| SuperInfector {
                host: graph.host(h).id.clone(),
                direct,
                descendants: tree.infected_descendants(h, infections),
                carriers: children.len() - direct,
                flagged_super: false,
            })
        })
        .collect();
    let mean = if ranking.is_empty() {
        0.0
    } else {
        ranking.iter().map(|s| s.direct).sum::<usize>() as f64 / ranking.len() as f64
    };
    for s in &mut ranking {
        s.flagged_super = s.direct >= 3 && s.direct as f64 >= 2.0 * mean;
    }
    // `order` is already by infection time, and the sort is stable: that is the last tie-break.
    ranking.sort_by(|a, b| {
        b.direct
            .cmp(&a.direct)
            .then(b.descendants.cmp(&a.descendants))
    });
    ranking
}

/// A round step that gives at most 40 buckets.
pub(super) fn auto_step(times: &[u64]) -> u64 {
    let span = times
        .last()
        .copied()
        .unwrap_or(0)
        .saturating_sub(times.first().copied().unwrap_or(0));
    const STEPS_S: [u64; 12] = [
        1,
        5,
        10,
        30,
        60,
        300,
        600,
        1800,
        3600,
        6 * 3600,
        86_400,
        7 * 86_400,
    ];
    STEPS_S
        .iter()
        .map(|s| s * NS_PER_SEC)
        .find(|&s| span / s < 40)
        .unwrap_or(30 * 86_400 * NS_PER_SEC)
}

pub(super) fn buckets(times: &[u64], step_ns: u64) -> Vec<TimeBucket> {
    let Some(&first) = times.first() else {
        return Vec::new();
    };
    let step_ns = step_ns.max(1);
    let start = first - first % step_ns;
    let mut out: Vec<TimeBucket> = Vec::new();
    let mut cumulative = 0;
    let last_bucket = (times[times.len() - 1] - start) / step_ns;
    let mut i = 0;
    for b in 0..=last_bucket {
        let bucket_start = start + b * step_ns;
        let mut new = 0;
        while i < times.len() && times[i] < bucket_start + step_ns {
            new += 1;
            i += 1;
        }
        cumulative += new;
        out.push(TimeBucket {
            start_ns: bucket_start,
            start: Timestamp(bucket_start).to_string(),
            new_infections: new,
            cumulative,
        });
    }
    out
}

/// Times for the infected count to double: 1 -> 2 -> 4 -> ...; the median is the figure
/// to quote (early doublings are noisy, late ones slow as the network saturates).
pub(super) fn doubling(times: &[u64]) -> Doubling {
    let mut intervals = Vec::new();
    let mut count = 1usize;
    while count * 2 <= times.len() {
        intervals.push(times[count * 2 - 1] - times[count - 1]);
        count *= 2;
    }
    let median = if intervals.is_empty() {
        None
    } else {
        let mut sorted = intervals.clone();
        sorted.sort_unstable();
        Some(sorted[sorted.len() / 2])
    };
    Doubling {
        intervals_ns: intervals,
        median_ns: median,
        median: median.map(|m| Span(m).to_string()),
    }
}

/// The shape of the infection tree (carriers are counted, but add no depth and no leaves)
/// and of the contact network.
pub(super) fn topology(
    graph: &Graph,
    tree: &Tree,
    infections: &Infections,
    ranking: &[SuperInfector],
    patient_zeros: usize,
) -> Topology {
    let mut contacts: HashSet<(HostIx, HostIx)> = HashSet::new();
    for &(a, b) in graph.transfers.keys() {
        if a != b {
            contacts.insert((a.min(b), a.max(b)));
        }
    }
    let mut degree: HashMap<HostIx, usize> = HashMap::new();
    for &(a, b) in &contacts {
        *degree.entry(a).or_default() += 1;
        *degree.entry(b).or_default() += 1;
    }
    let n = graph.hosts.len();
    let infected: Vec<HostIx> = tree
        .order
        .iter()
        .copied()
        .filter(|&h| infections.is_infected(h))
        .collect();
    let depth = |h: &HostIx| tree.depth.get(h).copied().unwrap_or(0);
    Topology {
        hosts_loaded: n,
        hosts_infected: infected.len(),
        carriers: tree.order.len() - infected.len(),
        patient_zeros,
        tree_depth: infected.iter().map(depth).max().unwrap_or(0),
        mean_depth: if infected.is_empty() {
            0.0
        } else {
            infected.iter().map(|h| f64::from(depth(h))).sum::<f64>() / infected.len() as f64
        },
        leaves: infected
            .iter()
            .filter(|&&h| tree.infected_descendants(h, infections) == 0)
            .count(),
        max_children: ranking.iter().map(|s| s.direct).max().unwrap_or(0),
        mean_branching: if ranking.is_empty() {
            0.0
        } else {
            ranking.iter().map(|s| s.direct).sum::<usize>() as f64 / ranking.len() as f64
        },
        contact_pairs: contacts.len(),
        contact_mean_degree: if n == 0 {
            0.0
        } else {
            2.0 * contacts.len() as f64 / n as f64
        },
        contact_max_degree: degree.values().copied().max().unwrap_or(0),
        contact_density: if n < 2 {
            0.0
        } else {
            2.0 * contacts.len() as f64 / (n as f64 * (n as f64 - 1.0))
        },
    }
}
