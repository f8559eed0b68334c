//! The simulated hosts and who is whose network neighbour.

use std::collections::BTreeSet;

use super::rng::Rng;
use super::{EPOCH_NS, MS, Shape};
use crate::time::NS_PER_SEC;

/// One simulated file server.
pub(super) struct SimHost {
    pub id: String,
    pub hostname: String,
    pub ip: String,
    pub skew_ns: i64,
    pub vulnerable: bool,
    pub boot_ns: u64,
}

impl SimHost {
    /// `true_ns` as this host's (skewed) clock records it.
    pub fn clock(&self, true_ns: u64) -> u64 {
        true_ns.saturating_add_signed(self.skew_ns)
    }
}

/// `n` hosts, numbered from 10.0.0.1: each clock off by up to ±800 ms (as far apart as the
/// outbreak lab's QEMU guests were: offsets from -1359 to +431 ms against the lab host,
/// 1.66 s between two guests; see docs/lab.md), 85% vulnerable.
pub(super) fn hosts(n: usize, rng: &mut Rng) -> Vec<SimHost> {
    (0..n)
        .map(|i| SimHost {
            id: format!("disk-{:016x}", rng.next_u64()),
            hostname: format!("fs-{i:04}"),
            ip: format!(
                "10.{}.{}.{}",
                (i + 1) >> 16 & 255,
                (i + 1) >> 8 & 255,
                (i + 1) & 255
            ),
            skew_ns: rng.range(0, 1600) as i64 * MS as i64 - 800 * MS as i64,
            vulnerable: rng.chance(0.85),
            boot_ns: EPOCH_NS - rng.range(3600, 30 * 86_400) * NS_PER_SEC,
        })
        .collect()
}

/// Barabási-Albert (m = 2) or Watts-Strogatz (k = 4, p = 0.1); undirected, sorted lists.
pub fn network(shape: Shape, n: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut adjacency: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let link = |a: usize, b: usize, adjacency: &mut Vec<BTreeSet<usize>>| {
        if a != b {
            adjacency[a].insert(b);
            adjacency[b].insert(a);
        }
    };
    match shape {
        Shape::ScaleFree => {
            let mut ends: Vec<usize> = Vec::new();
            for i in 1..n.min(3) {
                link(i - 1, i, &mut adjacency);
                ends.extend([i - 1, i]);
            }
            for i in 3..n {
                let mut chosen = BTreeSet::new();
                while chosen.len() < 2 {
                    chosen.insert(ends[rng.below(ends.len() as u64) as usize]);
                }
                for t in chosen {
                    link(i, t, &mut adjacency);
                    ends.extend([i, t]);
                }
            }
        }
        Shape::SmallWorld => {
            for i in 0..n {
                for step in 1..=2 {
                    if n > step {
                        let j = (i + step) % n;
                        if rng.chance(0.1) && n > 5 {
                            let mut k = rng.below(n as u64) as usize;
                            while k == i || adjacency[i].contains(&k) {
                                k = rng.below(n as u64) as usize;
                            }
                            link(i, k, &mut adjacency);
                        } else {
                            link(i, j, &mut adjacency);
                        }
                    }
                }
            }
        }
    }
    adjacency
        .into_iter()
        .map(|s| s.into_iter().collect())
        .collect()
}
