//! The default output: sections with a heading each, one line per finding, partial results
//! and what is missing said at the end under "Warnings". Every line goes through `put!`,
//! which escapes control characters in the names it carries (see `escape`).

use std::fmt::Write;

use sensor_common::graph::{ConnectDirection, Protocol};

use super::escape;
use crate::load::LoadReport;
use crate::rules::RulesReport;
use crate::spread::{HostInfection, SpreadReport};
use crate::trace::TraceReport;

/// Lists longer than this are cut in text (the JSON output has them whole).
const LIST_LIMIT: usize = 50;

/// One report line: formatted, escaped as a whole (the templates hold no control
/// characters, so whatever is escaped came from the data), then ended.
trait Lines {
    fn put(&mut self, line: std::fmt::Arguments<'_>);
}

impl Lines for String {
    fn put(&mut self, line: std::fmt::Arguments<'_>) {
        self.push_str(&escape::text(&line.to_string()));
        self.push('\n');
    }
}

macro_rules! put {
    ($out:expr, $($line:tt)*) => {
        $out.put(format_args!($($line)*))
    };
}

fn heading(out: &mut String, title: &str) {
    out.push('\n');
    put!(out, "== {title}");
}

fn load_summary(out: &mut String, load: &LoadReport) {
    put!(
        out,
        "Loaded {} input(s): {} hosts, {} nodes, {} edges in {:.2}s",
        load.inputs.len(),
        load.hosts,
        load.nodes,
        load.edges,
        load.load_seconds
    );
    if let Some(db) = &load.database {
        put!(
            out,
            "  from the central database {}: {} node rows and {} edge rows in {} levels ({} queries)",
            db.url,
            db.node_rows,
            db.edge_rows,
            db.rounds,
            db.queries
        );
    }
    // Said before the answer, not only among the warnings at the end: an entry point or a
    // hop may be in what was lost, and the answer reads as if there were none.
    if load.partial {
        put!(
            out,
            "!! PARTIAL INPUT: records were lost; every answer below is from what could be read"
        );
        for damage in load.damage() {
            put!(out, "!!   {damage}");
        }
    }
}

fn warnings(out: &mut String, load: &LoadReport, own: &[String]) {
    if load.warnings.is_empty() && own.is_empty() {
        return;
    }
    heading(out, "Warnings (results may be partial)");
    for warning in load.warnings.iter().chain(own) {
        put!(out, "  ! {warning}");
    }
}

fn limited<T>(out: &mut String, items: &[T], mut line: impl FnMut(&mut String, &T)) {
    for item in items.iter().take(LIST_LIMIT) {
        line(out, item);
    }
    if items.len() > LIST_LIMIT {
        put!(out, "  ... {} more (see --json)", items.len() - LIST_LIMIT);
    }
}

pub fn trace(report: &TraceReport, load: &LoadReport) -> String {
    let mut out = String::new();
    load_summary(&mut out, load);
    heading(&mut out, "Flagged");
    for node in &report.flagged {
        put!(out, "  {} on host {}", node.label, node.host);
        put!(out, "    id {}", node.id);
        if let Some(hash) = &node.sha256 {
            put!(out, "    sha256 {hash}");
        }
    }

    heading(&mut out, "Backward: where it came from");
    for entry in &report.backward.entry_points {
        match &entry.transfer {
            Some(t) => {
                put!(out, "  Entry point: {}", t.sentence());
            }
            None => {
                let caveat = if load.partial {
                    "; the input is partial: the arrival may be among the lost records"
                } else {
                    ""
                };
                put!(
                    out,
                    "  Entry point: local origin (no network arrival among the causes{caveat})"
                );
                for root in &entry.local_roots {
                    put!(
                        out,
                        "    earliest cause: {} ({}) on {}, first seen {}",
                        root.label, root.kind, root.host, root.first_seen
                    );
                }
            }
        }
    }
    if !report.backward.hops.is_empty() {
        put!(out, "  Hops between hosts (latest first):");
        for hop in &report.backward.hops {
            put!(out, "    {}", hop.received.sentence());
            put!(
                out,
                "      sent by {} at {}: {}",
                hop.sent.host, hop.sent.time, hop.sent.src_label
            );
        }
    }
    if !report.backward.chain.is_empty() {
        put!(out, "  Chain, entry point first:");
        for edge in &report.backward.chain {
            put!(out, "    [{}] {}", edge.host, edge.sentence());
        }
    }
    put!(
        out,
        "  ({} causal edges on {} host(s) found{})",
        report.backward.edges.len(),
        report.backward.hosts.len(),
        if report.backward.stopped_early {
            ", search stopped early"
        } else {
            ""
        }
    );

    heading(&mut out, "Forward: what it did and where it went");
    let f = &report.forward;
    put!(out, "  Processes started ({}):", f.processes_started.len());
    limited(&mut out, &f.processes_started, |out, e| {
        put!(
            out,
            "    {} [{}] {} via {}",
            e.since,
            e.node.host,
            e.node.label,
            e.via
                .as_ref()
                .map_or("flagged".into(), |v| crate::view::edge_kind_name(v.kind))
        );
    });
    put!(
        out,
        "  Files written or infected ({}):",
        f.files_written.len()
    );
    limited(&mut out, &f.files_written, |out, e| {
        let hash = e
            .node
            .sha256
            .as_deref()
            .map(|h| format!(" sha256 {}", &h[..16]))
            .unwrap_or_default();
        put!(
            out,
            "    {} [{}] {}{hash}",
            e.since, e.node.host, e.node.label
        );
    });
    put!(
        out,
        "  Activation points touched ({}):",
        f.activation_points.len()
    );
    limited(&mut out, &f.activation_points, |out, e| {
        put!(out, "    [{}] {}", e.host, e.sentence());
    });
    put!(out, "  Sent to ({}):", f.sent_to.len());
    limited(&mut out, &f.sent_to, |out, s| {
        let to = s.to_host.clone().unwrap_or_else(|| s.to_ip.clone());
        let received = s
            .received
            .as_ref()
            .map_or(" (no matching receive loaded)".into(), |r| {
                format!(", received there at {} as {}", r.time, r.file)
            });
        put!(
            out,
            "    {} [{}] {} -> {} ({}){received}",
            s.edge.time, s.edge.host, s.edge.src_label, to, s.to_ip
        );
    });
    put!(out, "  Connections ({}):", f.connections.len());
    limited(&mut out, &f.connections, |out, c| {
        let peer = c.to_host.clone().unwrap_or_else(|| match c.to_node_ids.is_empty() {
            true => c.to_ip.clone(),
            false => format!("{} = node {}", c.to_ip, c.to_node_ids.join("/")),
        });
        let port = c.port.map(|p| format!(" port {p}")).unwrap_or_default();
        let what = match c.direction {
            ConnectDirection::In => "accepted from",
            ConnectDirection::Out => "connected to",
        };
        put!(out, "    {} [{}] {} {what} {peer}{port}", c.edge.time, c.edge.host, c.edge.src_label);
    });
    put!(out, "  Hosts reached ({}):", f.hosts_reached.len());
    limited(&mut out, &f.hosts_reached, |out, h| {
        let from = h
            .from
            .as_deref()
            .map(|f| format!(" from {f}"))
            .unwrap_or_default();
        let ran = if h.executed {
            "executed"
        } else {
            "not executed"
        };
        put!(
            out,
            "    {} {} ({}){from}, {ran}",
            h.first_tainted, h.host, h.hostname
        );
    });

    heading(&mut out, "Behaviours (what its processes did)");
    limited(&mut out, &report.behaviours, |out, e| {
        put!(out, "  [{}] {}", e.host, e.sentence());
    });
    if report.behaviours_left_out > 0 {
        put!(
            out,
            "  ... and {} later events not listed",
            report.behaviours_left_out
        );
    }
    warnings(&mut out, load, &report.warnings);
    out
}

/// Where its parent is, for a tree line: `<- host`, `<- address (kind)`, `(local origin)`.
fn parent_of(h: &HostInfection) -> String {
    match h.parent_kind {
        "host" => format!("<- {}", h.parent.as_deref().unwrap_or("?")),
        "local" => "(local origin)".to_owned(),
        kind => format!("<- {} ({kind})", h.parent.as_deref().unwrap_or("?")),
    }
}

/// `<- parent via ftp "name" at <time>` for an infected host.
fn infected_line(h: &HostInfection) -> String {
    let how = h
        .via
        .as_ref()
        .map(|v| {
            format!(
                " via {} \"{}\"",
                v.protocol.map_or("?", Protocol::name),
                v.name_as_sent.as_deref().unwrap_or("?")
            )
        })
        .unwrap_or_default();
    format!(
        "{}{how} at {}",
        parent_of(h),
        h.infected_at.as_deref().unwrap_or_default()
    )
}

/// `carrier: received "name" from <sender> at <time> via ftp, never executed`.
fn carrier_line(h: &HostInfection) -> String {
    match &h.via {
        Some(v) => {
            let sender = match h.parent_kind {
                "host" => h.parent.clone().unwrap_or_else(|| v.from_ip.clone()),
                kind => format!("{} ({kind})", h.parent.as_deref().unwrap_or(&v.from_ip)),
            };
            format!(
                "carrier: received \"{}\" from {sender} at {} via {}, never executed",
                v.name_as_sent.as_deref().unwrap_or(&v.file),
                v.time,
                v.protocol.map_or("?", Protocol::name)
            )
        }
        None => format!("carrier {}, never executed", parent_of(h)),
    }
}

pub fn spread(report: &SpreadReport, load: &LoadReport) -> String {
    let mut out = String::new();
    load_summary(&mut out, load);
    put!(
        out,
        "Question: {} (clock skew allowance ±{})",
        report.question, report.skew_allowance
    );
    heading(&mut out, "Patient zero");
    for zero in &report.patient_zeros {
        let host = report.hosts.iter().find(|h| &h.host == zero);
        put!(
            out,
            "  {zero} infected at {}",
            host.and_then(|h| h.infected_at.as_deref()).unwrap_or("?")
        );
        if let Some(via) = host.and_then(|h| h.via.as_ref()) {
            put!(out, "    entry: {}", via.sentence());
        }
        for other in host.into_iter().flat_map(|h| h.other_arrivals()) {
            put!(out, "    also entered: {}", other.sentence());
        }
    }
    heading(&mut out, "Propagation tree (host <- parent, infected at)");
    let t = &report.topology;
    put!(
        out,
        "  {} infected of {} loaded hosts, {} carrier(s), depth {}",
        t.hosts_infected, t.hosts_loaded, t.carriers, t.tree_depth
    );
    // Depth-first, children under their parent in infection order, so the tree reads as one.
    let by_id: std::collections::HashMap<&str, &HostInfection> =
        report.hosts.iter().map(|h| (h.host.as_str(), h)).collect();
    let mut stack: Vec<(&HostInfection, usize)> = report
        .hosts
        .iter()
        .filter(|h| {
            h.parent_kind != "host" || h.parent.as_deref().is_none_or(|p| !by_id.contains_key(p))
        })
        .rev()
        .map(|h| (h, 0))
        .collect();
    let mut ordered = Vec::new();
    while let Some((h, depth)) = stack.pop() {
        ordered.push((h, depth));
        for child in h
            .children
            .iter()
            .rev()
            .filter_map(|c| by_id.get(c.as_str()))
        {
            stack.push((child, depth + 1));
        }
    }
    limited(&mut out, &ordered, |out, &(h, depth)| {
        let indent = "  ".repeat(depth.min(20));
        let mut also = String::new();
        for other in h.other_arrivals() {
            let _ = write!(
                also,
                "; also entered via {} \"{}\" from {} at {}",
                other.protocol.map_or("?", Protocol::name),
                other.name_as_sent.as_deref().unwrap_or("?"),
                other.from_host.as_deref().unwrap_or(&other.from_ip),
                other.time
            );
        }
        let line = if h.infected {
            infected_line(h)
        } else {
            carrier_line(h)
        };
        put!(out, "  {indent}{} ({}) {line}{also}", h.host, h.hostname);
    });
    heading(
        &mut out,
        "Super infectors (by hosts infected directly, then all descendants)",
    );
    limited(
        &mut out,
        &report.super_infectors[..report.super_infectors.len().min(10)],
        |out, s| {
            let flag = if s.flagged_super { "  SUPER" } else { "" };
            let carriers = if s.carriers > 0 {
                format!(", {} carrier(s) made", s.carriers)
            } else {
                String::new()
            };
            put!(
                out,
                "  {:<24} infected {:>4} directly, {:>4} in all{carriers}{flag}",
                s.host, s.direct, s.descendants
            );
        },
    );
    heading(&mut out, &format!("New infections per {}", report.step));
    for bucket in &report.timeline {
        let bar = "#".repeat(bucket.new_infections.min(60));
        put!(
            out,
            "  {} {:>5} {:>6}  {bar}",
            bucket.start, bucket.new_infections, bucket.cumulative
        );
    }
    let doubling = report
        .doubling
        .median
        .as_deref()
        .unwrap_or("n/a (fewer than 2 infections)");
    put!(
        out,
        "  Doubling time (median of 1->2->4->... intervals): {doubling}"
    );
    heading(&mut out, "Topology");
    put!(
        out,
        "  tree: depth {}, mean depth {:.2}, leaves {}, max children {}, mean branching {:.2}",
        t.tree_depth, t.mean_depth, t.leaves, t.max_children, t.mean_branching
    );
    put!(
        out,
        "  contacts between loaded hosts: {} pairs, mean degree {:.2}, max degree {}, density {:.4}",
        t.contact_pairs, t.contact_mean_degree, t.contact_max_degree, t.contact_density
    );
    warnings(&mut out, load, &report.warnings);
    out
}

pub fn rules(report: &RulesReport, load: &LoadReport) -> String {
    let mut out = String::new();
    load_summary(&mut out, load);
    put!(out, "Rules for {}", report.question);
    heading(
        &mut out,
        "Hosts to block: senders outside the loaded hosts (one `vtrail-sensor block` argument per line)",
    );
    // Tab-separated for `cut -f1`: the fields are escaped one by one, the tab is ours.
    for target in &report.block {
        let _ = writeln!(
            out,
            "{}\t# {}",
            escape::text(&target.target),
            escape::text(&target.reason)
        );
    }
    heading(
        &mut out,
        "Infected loaded hosts (to clean, not to block: they are the victims)",
    );
    for host in &report.infected_hosts {
        put!(out, "  {} ({}): {}", host.host, host.hostname, host.reason);
    }
    heading(&mut out, "Paths to protect (activation points used)");
    for path in &report.protect {
        let _ = writeln!(
            out,
            "{}\t# {} on {} host(s)",
            escape::text(&path.path),
            escape::text(&path.activation_point),
            path.hosts.len()
        );
    }
    heading(&mut out, "YARA rule");
    match &report.yara {
        Some(rule) => out.push_str(rule),
        None => out.push_str("  (none: no tainted file has a recorded content hash)\n"),
    }
    for file in &report.executed_without_hash {
        put!(
            out,
            "  not covered, no content hash recorded: {} on {} ({})",
            file.path,
            file.host,
            file.id
        );
    }
    warnings(&mut out, load, &report.warnings);
    out
}
