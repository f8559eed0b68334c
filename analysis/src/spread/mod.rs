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
//! A loaded host that received the worm (a tainted arrival, by whatever protocol) but never
//! executed it is a *carrier* (`carriers`): it is in the tree with the sender of its
//! earliest tainted arrival as its parent, its arrivals listed, and children only if it
//! sent the worm on. Carriers are never infected, never patient zero, and never count in
//! the infection figures (super infectors' direct and descendant counts, the timeline,
//! doubling, depth); each host's carriers made are counted beside its infections. If
//! carrier relays make the parent relation loop, the loop is cut at its earliest-infected
//! host, which becomes a root (and a warning says so).
//!
//! Super infectors: hosts ranked by direct infections (children in the tree), then by all
//! descendants, then by earlier infection. A host is flagged *super* when it infected at
//! least 3 hosts and at least twice the mean number infected by hosts that infected any.

mod carriers;
mod measures;
mod tree;

use std::collections::{BTreeMap, HashMap, HashSet};

use sensor_common::graph::EdgeKind;
use serde::Serialize;

use crate::index::{EdgeIx, Graph, HostIx};
use crate::select::{AutoSeeds, Selector, auto_seeds, resolve, seeds_with_copies};
use crate::taint::{Seed, Taint, propagate};
use crate::time::{Span, Timestamp};
use crate::view::{EdgeView, TransferView, TreeHost};
use measures::{auto_step, buckets, doubling, super_infectors, topology};
use carriers::{add_carriers, worm_seeds};
use tree::{Infections, Parent, Tree, cut_cycles, parents_of_infected, patient_zeros};

#[derive(Clone, Debug, Serialize)]
pub struct HostInfection {
    pub host: String,
    pub hostname: String,
    /// False for carriers (received the worm, never executed it).
    pub infected: bool,
    pub infected_at_ns: Option<u64>,
    pub infected_at: Option<String>,
    /// The sender of `via`: of the earliest arrival that led to a tainted execution here,
    /// or for a carrier of its earliest tainted arrival.
    pub parent: Option<String>,
    /// `host`, `outside`, `missing-host`, `local`.
    pub parent_kind: &'static str,
    pub via: Option<TransferView>,
    /// Every arrival that led to a tainted execution here (for a carrier: every tainted
    /// arrival), earliest first, whatever its protocol: `via` is one of them, the others
    /// entered too (a second upload, another sender) and are reported with it, not dropped.
    pub arrivals: Vec<TransferView>,
    pub first_execution: Option<EdgeView>,
    /// Hosts it infected (in infection order), then carriers it made (by id).
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
    /// Hosts it infected (children that executed the worm).
    pub direct: usize,
    /// Infected hosts anywhere below it.
    pub descendants: usize,
    /// Carriers it made (children that received the worm from it and never ran it): not
    /// counted in `direct`.
    pub carriers: usize,
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
    /// Loaded hosts that received the worm and never executed it.
    pub carriers: usize,
    pub patient_zeros: usize,
    /// Depth of the deepest infected host (a carrier relaying on the way counts as a level;
    /// carriers below add none).
    pub tree_depth: u32,
    /// Mean depth of the infected hosts.
    pub mean_depth: f64,
    /// Infected hosts that infected none (they may have made carriers).
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
    /// Infected hosts in order of infection, then the carriers by id.
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
            .map(|h| {
                let role = if zeros.contains(h.host.as_str()) {
                    "patient-zero"
                } else if h.infected {
                    "infected"
                } else {
                    "carrier"
                };
                let parent = h.parent.clone().filter(|_| h.parent_kind == "host");
                let time = h.infected_at_ns.or(h.via.as_ref().map(|v| v.ts_ns));
                TreeHost::new(&h.host, &h.hostname, role, parent, time, h.via.as_ref())
            })
            .collect()
    }
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
    let worm = worm_seeds(graph, &seeds, &taint, &executions);
    Ok(build_report(
        graph,
        &taint,
        &executions,
        &worm,
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
    worm: &[bool],
    question: String,
    step_ns: Option<u64>,
    mut warnings: Vec<String>,
) -> SpreadReport {
    let infections = Infections::per_host(graph, taint, executions);
    let mut parents = parents_of_infected(graph, taint, &infections);
    let carrier_arrivals = add_carriers(graph, taint, worm, &infections, &mut parents);
    cut_cycles(graph, &mut parents, &|h| infections.infected_at(graph, h), &mut warnings);
    let tree = Tree::new(graph, parents, &infections);
    let hosts = host_entries(graph, &tree, &infections, &carrier_arrivals);
    let patient_zeros = patient_zeros(graph, &tree, &infections);
    warnings.extend(missing_host_warnings(&hosts));
    let super_infectors = super_infectors(graph, &tree, &infections);

    let times = infections.times(graph);
    let step_ns = step_ns.unwrap_or_else(|| auto_step(&times));
    let timeline = buckets(&times, step_ns);
    let doubling = doubling(&times);
    let topology = topology(graph, &tree, &infections, &super_infectors, patient_zeros.len());

    SpreadReport {
        question,
        skew_allowance: Span(graph.skew_allowance_ns).to_string(),
        patient_zeros,
        hosts,
        super_infectors,
        step: Span(step_ns).to_string(),
        step_ns,
        timeline,
        doubling,
        topology,
        warnings,
    }
}

/// One report entry per host in the tree, in infection order.
fn host_entries(
    graph: &Graph,
    tree: &Tree,
    infections: &Infections,
    carrier_arrivals: &HashMap<HostIx, Vec<EdgeIx>>,
) -> Vec<HostInfection> {
    tree.order
        .iter()
        .map(|&h| {
            let rec = graph.host(h);
            let (parent, parent_kind, via) = describe_parent(graph, tree.parents[&h]);
            let infected_at = infections.infected_at(graph, h);
            HostInfection {
                host: rec.id.clone(),
                hostname: rec.hostname.clone(),
                infected: infections.is_infected(h),
                infected_at_ns: infected_at,
                infected_at: infected_at.map(|t| Timestamp(t).to_string()),
                parent,
                parent_kind,
                via: via.map(|t| TransferView::new(graph, t)),
                arrivals: infections
                    .arrivals
                    .get(&h)
                    .or_else(|| carrier_arrivals.get(&h))
                    .map(|a| a.iter().map(|&t| TransferView::new(graph, t)).collect())
                    .unwrap_or_default(),
                first_execution: infections.first_exec.get(&h).map(|&x| EdgeView::new(graph, x)),
                children: tree
                    .children(h)
                    .iter()
                    .map(|&c| graph.host(c).id.clone())
                    .collect(),
                depth: tree.depth.get(&h).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// (parent id, `HostInfection::parent_kind`, the transfer from it) for the report.
fn describe_parent(graph: &Graph, parent: Parent) -> (Option<String>, &'static str, Option<EdgeIx>) {
    match parent {
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
    }
}

fn missing_host_warnings(hosts: &[HostInfection]) -> impl Iterator<Item = String> + '_ {
    hosts.iter().filter(|h| h.parent_kind == "missing-host").map(|h| {
        format!(
            "{} {} {}, a host whose dump is not loaded: load it to follow the spread further back",
            h.host,
            if h.infected { "was infected from" } else { "received the worm from" },
            h.parent.as_deref().unwrap_or("?")
        )
    })
}

/// Is `kind` a tainted execution edge kind? (Used by tests and trace.)
pub fn is_execution(kind: EdgeKind) -> bool {
    matches!(kind, EdgeKind::Exec | EdgeKind::Read)
}
