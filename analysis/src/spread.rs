//! Spread across hosts: who was infected, by whom, when, and how fast.
//!
//! A host is *infected* at its first tainted execution (`exec` or interpreter `read` of a
//! tainted file), on its own clock. Its *parent* is the sender of the earliest transfer
//! that led to a tainted execution there: every tainted execution carries the origin of
//! its taint (the `received_from` edge that brought it onto the host); the earliest such
//! transfer wins. Every other arrival that led to a tainted execution there (the same
//! worm by another protocol or sender, or uploaded again over the first copy) is kept in
//! the host's `arrivals` and reported with the entry: no protocol is preferred, and an
//! arrival is never dropped for not being the earliest.
//! A host whose first tainted execution has a local origin, or whose
//! transfer came from outside the loaded hosts, is a root. *Patient zeros* are the infected
//! hosts with no infected ancestor (usually the roots).
//! A loaded host that sent the taint but never executed it is a *carrier*; it appears in
//! the tree only as a parent. If carrier relays make the parent relation loop, the loop is
//! cut at its earliest-infected host, which becomes a root (and a warning says so).
//!
//! Super infectors: hosts ranked by direct infections (children in the tree), then by all
//! descendants, then by earlier infection. A host is flagged *super* when it infected at
//! least 3 hosts and at least twice the mean number infected by hosts that infected any.

use std::collections::{BTreeMap, HashMap, HashSet};

use sensor_common::graph::{EdgeKind, Protocol};
use serde::Serialize;

use crate::index::{EdgeIx, Graph, HostIx};
use crate::select::{AutoSeeds, Selector, auto_seeds, resolve, seeds_with_copies};
use crate::taint::{LOCAL_ORIGIN, Seed, Taint, propagate};
use crate::time::{NS_PER_SEC, Span, Timestamp};
use crate::view::{EdgeView, TransferView, TreeHost};

#[derive(Clone, Debug, Serialize)]
pub struct HostInfection {
    pub host: String,
    pub hostname: String,
    /// False for carriers (sent the taint on, never executed it).
    pub infected: bool,
    pub infected_at_ns: Option<u64>,
    pub infected_at: Option<String>,
    pub parent: Option<String>,
    /// `host`, `outside`, `missing-host`, `local`.
    pub parent_kind: &'static str,
    pub via: Option<TransferView>,
    /// Every arrival that led to a tainted execution here, earliest first, whatever its
    /// protocol: `via` is one of them, the others entered too (a second upload, another
    /// sender) and are reported with it, not dropped.
    pub arrivals: Vec<TransferView>,
    pub first_execution: Option<EdgeView>,
    pub children: Vec<String>,
    pub depth: u32,
}

impl HostInfection {
    /// The arrivals that led to an execution here besides `via`.
    pub fn other_arrivals(&self) -> impl Iterator<Item = &TransferView> {
        self.arrivals.iter().filter(move |a| {
            self.via.as_ref().is_none_or(|v| {
                (v.ts_ns, &v.file_id, &v.from_ip, &v.protocol)
                    != (a.ts_ns, &a.file_id, &a.from_ip, &a.protocol)
            })
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SuperInfector {
    pub host: String,
    pub direct: usize,
    pub descendants: usize,
    pub flagged_super: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct TimeBucket {
    pub start_ns: u64,
    pub start: String,
    pub new_infections: usize,
    pub cumulative: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Doubling {
    /// Time from 2^(k-1) to 2^k infected hosts, for each k reached.
    pub intervals_ns: Vec<u64>,
    pub median_ns: Option<u64>,
    pub median: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Topology {
    pub hosts_loaded: usize,
    pub hosts_infected: usize,
    pub carriers: usize,
    pub patient_zeros: usize,
    pub tree_depth: u32,
    pub mean_depth: f64,
    pub leaves: usize,
    pub max_children: usize,
    /// Mean children of hosts that infected at least one.
    pub mean_branching: f64,
    /// Distinct pairs of loaded hosts with any transfer between them (either way).
    pub contact_pairs: usize,
    pub contact_mean_degree: f64,
    pub contact_max_degree: usize,
    pub contact_density: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SpreadReport {
    pub question: String,
    pub skew_allowance: String,
    pub patient_zeros: Vec<String>,
    /// Infected hosts (and carriers that are parents) in order of infection.
    pub hosts: Vec<HostInfection>,
    pub super_infectors: Vec<SuperInfector>,
    pub step: String,
    pub step_ns: u64,
    pub timeline: Vec<TimeBucket>,
    pub doubling: Doubling,
    pub topology: Topology,
    pub warnings: Vec<String>,
}

impl SpreadReport {
    pub fn tree(&self) -> Vec<TreeHost> {
        let zeros: HashSet<&str> = self.patient_zeros.iter().map(String::as_str).collect();
        self.hosts
            .iter()
            .map(|h| TreeHost {
                id: h.host.clone(),
                label: if h.hostname.is_empty() {
                    h.host.clone()
                } else {
                    h.hostname.clone()
                },
                parent: h.parent.clone().filter(|_| h.parent_kind == "host"),
                time_ns: h.infected_at_ns,
                time: h.infected_at.clone(),
                role: if zeros.contains(h.host.as_str()) {
                    "patient-zero"
                } else if h.infected {
                    "infected"
                } else {
                    "carrier"
                },
                via: h.via.as_ref().map(|v| {
                    format!(
                        "{} {}",
                        v.protocol.map_or("?", Protocol::name),
                        v.name_as_sent.as_deref().unwrap_or("?")
                    )
                }),
            })
            .collect()
    }
}

/// Where a host's taint came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parent {
    Host(HostIx, EdgeIx),
    /// The transfer came from an address that is no loaded host.
    Outside(EdgeIx),
    Local,
}

/// The seeds the question starts from, and what to call the question.
pub fn seeds_for_question(
    graph: &Graph,
    selector: Option<&Selector>,
    host: Option<HostIx>,
) -> Result<(Vec<Seed>, String, Vec<String>), crate::error::QueryError> {
    match selector {
        Some(selector) => {
            let selected = resolve(graph, selector, host)?;
            Ok((
                seeds_with_copies(graph, &selected),
                format!("spread of the file with {selector} and its copies"),
                Vec::new(),
            ))
        }
        None => {
            let AutoSeeds {
                seeds,
                unmatched_receives,
            } = auto_seeds(graph);
            let mut warnings = Vec::new();
            if !unmatched_receives.is_empty() {
                let e = unmatched_receives[0];
                warnings.push(format!(
                    "{} receive(s) from loaded hosts have no matching send within ±{} (first: {}); they are \
                     not followed. If hosts' clocks are further apart, raise --skew-allowance",
                    unmatched_receives.len(),
                    Span(graph.skew_allowance_ns),
                    TransferView::new(graph, e).sentence()
                ));
            }
            Ok((
                seeds,
                "spread of every untrusted arrival that was executed".to_owned(),
                warnings,
            ))
        }
    }
}

pub fn spread(
    graph: &Graph,
    selector: Option<&Selector>,
    host: Option<HostIx>,
    step_ns: Option<u64>,
) -> Result<SpreadReport, crate::error::QueryError> {
    let (seeds, question, mut warnings) = seeds_for_question(graph, selector, host)?;
    let taint = propagate(graph, &seeds);
    let executions = taint.tainted_executions(graph);
    if executions.is_empty() {
        return Err(crate::error::QueryError::NoInfection {
            hint: if selector.is_some() {
                " downstream of the flagged file".into()
            } else {
                String::new()
            },
        });
    }
    warnings.extend(unmatched_send_warnings(graph, &taint));
    Ok(build_report(
        graph,
        &taint,
        &executions,
        question,
        step_ns,
        warnings,
    ))
}

fn unmatched_send_warnings(graph: &Graph, taint: &Taint) -> Vec<String> {
    let mut missing: BTreeMap<String, usize> = BTreeMap::new();
    for &e in &taint.unmatched_sends {
        let edge = graph.edge(e);
        let target = match (graph.remote(edge.dst), graph.remote_host(edge.dst)) {
            (_, Some(h)) => format!(
                "host {} (loaded, but no matching receive within ±{})",
                graph.host(h).id,
                Span(graph.skew_allowance_ns)
            ),
            (Some(r), None) if !r.node_ids.is_empty() => {
                format!("{} = node {} (dump not loaded)", r.ip, r.node_ids.join("/"))
            }
            (Some(r), None) => format!("{} (outside the loaded hosts)", r.ip),
            (None, None) => graph.id(edge.dst).to_owned(),
        };
        *missing.entry(target).or_default() += 1;
    }
    missing
        .into_iter()
        .map(|(target, count)| {
            format!("tainted file(s) sent {count} time(s) to {target}: spread past it is unknown")
        })
        .collect()
}

fn build_report(
    graph: &Graph,
    taint: &Taint,
    executions: &[EdgeIx],
    question: String,
    step_ns: Option<u64>,
    mut warnings: Vec<String>,
) -> SpreadReport {
    // First tainted execution per host, the earliest transfer that led to any, and every
    // transfer that led to one.
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
    let parent_of = |host: HostIx| -> Parent {
        let first = first_exec[&host];
        let first_origin = taint
            .label(graph.edge(first).src)
            .map_or(LOCAL_ORIGIN, |l| l.origin);
        if first_origin == LOCAL_ORIGIN {
            return Parent::Local;
        }
        let transfer = earliest_transfer[&host];
        match graph.remote_host(graph.edge(transfer).src) {
            Some(sender) if sender != host => Parent::Host(sender, transfer),
            _ => Parent::Outside(transfer),
        }
    };
    let mut parents: HashMap<HostIx, Parent> =
        first_exec.keys().map(|&h| (h, parent_of(h))).collect();
    for list in arrivals.values_mut() {
        list.sort_unstable_by_key(|&t| (graph.edge(t).ts_ns, t));
        list.dedup();
    }

    // Carriers: parents that never executed; their own parent is the sender of their
    // earliest tainted arrival.
    let mut pending: Vec<HostIx> = parents
        .values()
        .filter_map(|p| match p {
            Parent::Host(h, _) => Some(*h),
            _ => None,
        })
        .collect();
    while let Some(h) = pending.pop() {
        if parents.contains_key(&h) {
            continue;
        }
        let arrival = earliest_tainted_arrival(graph, taint, h);
        let parent = match arrival {
            Some(t) => match graph.remote_host(graph.edge(t).src) {
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

    let infected_at = |h: HostIx| first_exec.get(&h).map(|&x| graph.edge(x).ts_ns);
    cut_cycles(graph, &mut parents, &infected_at, &mut warnings);

    let mut children: HashMap<HostIx, Vec<HostIx>> = HashMap::new();
    for (&h, p) in &parents {
        if let Parent::Host(parent, _) = p {
            children.entry(*parent).or_default().push(h);
        }
    }
    let sort_key = |h: &HostIx| {
        (
            infected_at(*h).unwrap_or(u64::MAX),
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
    let descendants = |h: HostIx| {
        let mut count = 0;
        let mut stack = vec![h];
        while let Some(x) = stack.pop() {
            for &c in children.get(&x).map(Vec::as_slice).unwrap_or(&[]) {
                count += usize::from(first_exec.contains_key(&c));
                stack.push(c);
            }
        }
        count
    };

    let hosts: Vec<HostInfection> = order
        .iter()
        .map(|&h| {
            let rec = graph.host(h);
            let parent = parents[&h];
            let (parent_id, parent_kind, via) = match parent {
                Parent::Host(p, t) => (Some(graph.host(p).id.clone()), "host", Some(t)),
                Parent::Outside(t) => {
                    let remote = graph.remote(graph.edge(t).src);
                    let missing = remote.is_some_and(|r| !r.node_ids.is_empty());
                    let id = remote.map(|r| {
                        if missing {
                            format!("{} ({})", r.node_ids.join("/"), r.ip)
                        } else {
                            r.ip.to_string()
                        }
                    });
                    (
                        id,
                        if missing { "missing-host" } else { "outside" },
                        Some(t),
                    )
                }
                Parent::Local => (None, "local", None),
            };
            HostInfection {
                host: rec.id.clone(),
                hostname: rec.hostname.clone(),
                infected: first_exec.contains_key(&h),
                infected_at_ns: infected_at(h),
                infected_at: infected_at(h).map(|t| Timestamp(t).to_string()),
                parent: parent_id,
                parent_kind,
                via: via.map(|t| TransferView::new(graph, t)),
                arrivals: arrivals
                    .get(&h)
                    .map(|a| a.iter().map(|&t| TransferView::new(graph, t)).collect())
                    .unwrap_or_default(),
                first_execution: first_exec.get(&h).map(|&x| EdgeView::new(graph, x)),
                children: children
                    .get(&h)
                    .map(|c| c.iter().map(|&c| graph.host(c).id.clone()).collect())
                    .unwrap_or_default(),
                depth: depth.get(&h).copied().unwrap_or(0),
            }
        })
        .collect();

    // Patient zeros: infected hosts with no infected ancestor (a carrier above them does
    // not count: it held the file but never ran it).
    let has_infected_ancestor = |h: HostIx| {
        let mut at = h;
        let mut steps = 0;
        while let Some(Parent::Host(p, _)) = parents.get(&at).copied() {
            if first_exec.contains_key(&p) {
                return true;
            }
            at = p;
            steps += 1;
            if steps > parents.len() {
                break;
            }
        }
        false
    };
    let patient_zeros: Vec<String> = order
        .iter()
        .filter(|&&h| first_exec.contains_key(&h) && !has_infected_ancestor(h))
        .map(|&h| graph.host(h).id.clone())
        .collect();
    for h in hosts.iter().filter(|h| h.parent_kind == "missing-host") {
        warnings.push(format!(
            "{} was infected from {}, a host whose dump is not loaded: load it to follow the spread further back",
            h.host,
            h.parent.as_deref().unwrap_or("?")
        ));
    }

    let mut ranking: Vec<SuperInfector> = order
        .iter()
        .filter_map(|&h| {
            let direct = children.get(&h).map_or(0, |c| {
                c.iter().filter(|c| first_exec.contains_key(c)).count()
            });
            (direct > 0).then(|| SuperInfector {
                host: graph.host(h).id.clone(),
                direct,
                descendants: descendants(h),
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

    let mut times: Vec<u64> = first_exec.values().map(|&x| graph.edge(x).ts_ns).collect();
    times.sort_unstable();
    let step_ns = step_ns.unwrap_or_else(|| auto_step(&times));
    let timeline = buckets(&times, step_ns);
    let doubling = doubling(&times);
    let topology = topology(graph, &hosts, &ranking, &first_exec, patient_zeros.len());

    SpreadReport {
        question,
        skew_allowance: Span(graph.skew_allowance_ns).to_string(),
        patient_zeros,
        hosts,
        super_infectors: ranking,
        step: Span(step_ns).to_string(),
        step_ns,
        timeline,
        doubling,
        topology,
        warnings,
    }
}

fn earliest_tainted_arrival(graph: &Graph, taint: &Taint, host: HostIx) -> Option<EdgeIx> {
    taint
        .labels
        .values()
        .filter(|l| l.origin != LOCAL_ORIGIN && graph.edge(l.origin).host == host)
        .map(|l| l.origin)
        .min_by_key(|&t| (graph.edge(t).ts_ns, t))
}

fn cut_cycles(
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

/// A round step that gives at most 40 buckets.
fn auto_step(times: &[u64]) -> u64 {
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

fn buckets(times: &[u64], step_ns: u64) -> Vec<TimeBucket> {
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
fn doubling(times: &[u64]) -> Doubling {
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

fn topology(
    graph: &Graph,
    hosts: &[HostInfection],
    ranking: &[SuperInfector],
    first_exec: &HashMap<HostIx, EdgeIx>,
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
    let infected: Vec<&HostInfection> = hosts.iter().filter(|h| h.infected).collect();
    Topology {
        hosts_loaded: n,
        hosts_infected: first_exec.len(),
        carriers: hosts.len() - infected.len(),
        patient_zeros,
        tree_depth: hosts.iter().map(|h| h.depth).max().unwrap_or(0),
        mean_depth: if infected.is_empty() {
            0.0
        } else {
            infected.iter().map(|h| f64::from(h.depth)).sum::<f64>() / infected.len() as f64
        },
        leaves: hosts.iter().filter(|h| h.children.is_empty()).count(),
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

/// Is `kind` a tainted execution edge kind? (Used by tests and trace.)
pub fn is_execution(kind: EdgeKind) -> bool {
    matches!(kind, EdgeKind::Exec | EdgeKind::Read)
}
