//! What to feed back into the sensors and scanners after an incident:
//! - hosts to block: one `vtrail-sensor block <ip|node-id>` argument per line; loaded hosts
//!   that ran or held the taint by node id (stable across address changes), outside senders
//!   by IP (no node id is known for them);
//! - paths to protect: the activation points the tainted processes wrote or changed;
//! - a YARA rule matching the sha256 of the flagged file and of every file it produced.

use std::collections::{BTreeMap, BTreeSet};

use sensor_common::graph::EdgeKind;
use serde::Serialize;

use crate::index::{Graph, HostIx, NodeKind};
use crate::select::{Selector, auto_seeds, resolve, seeds_with_copies};
use crate::taint::{LOCAL_ORIGIN, propagate};

#[derive(Clone, Debug, Serialize)]
pub struct BlockTarget {
    /// The argument for `vtrail-sensor block`.
    pub target: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProtectPath {
    pub path: String,
    /// `attrs.activation_point` as recorded (cron, systemd, shell-rc, ...).
    pub activation_point: String,
    pub hosts: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RulesReport {
    pub question: String,
    pub block: Vec<BlockTarget>,
    pub protect: Vec<ProtectPath>,
    pub hashes: Vec<String>,
    /// Tainted files without a recorded hash: the YARA rule cannot cover them.
    pub files_without_hash: usize,
    pub yara: Option<String>,
    pub warnings: Vec<String>,
}

pub fn rules(
    graph: &Graph,
    selector: Option<&Selector>,
    host: Option<HostIx>,
) -> Result<RulesReport, crate::error::QueryError> {
    let (seeds, question) = match selector {
        Some(selector) => {
            let selected = resolve(graph, selector, host)?;
            (
                seeds_with_copies(graph, &selected),
                format!("the file with {selector} and what it produced"),
            )
        }
        None => (
            auto_seeds(graph).seeds,
            "every executed untrusted arrival and what it produced".to_owned(),
        ),
    };
    let mut taint = propagate(graph, &seeds);
    let mut warnings = Vec::new();
    if selector.is_none() {
        // Without a flagged file, only arrivals that were executed somewhere (directly or
        // after being passed on) are malicious; untrusted files never run are noise, not
        // rule material. Keep the seeds that led to an execution and propagate again.
        let executions = taint.tainted_executions(graph);
        if executions.is_empty() {
            return Err(crate::error::QueryError::NoInfection {
                hint: String::new(),
            });
        }
        let mut led: Vec<u32> = executions
            .iter()
            .filter_map(|&x| taint.label(graph.edge(x).src).map(|l| l.seed))
            .collect();
        led.sort_unstable();
        led.dedup();
        let kept: Vec<_> = led.iter().map(|&s| seeds[s as usize]).collect();
        taint = propagate(graph, &kept);
    }
    let mut held: BTreeMap<HostIx, &'static str> = BTreeMap::new();
    let mut outside: BTreeMap<String, String> = BTreeMap::new();
    let mut hashes: BTreeSet<String> = BTreeSet::new();
    let mut files_without_hash = 0;
    let mut protect: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for (&n, label) in &taint.labels {
        let node = graph.node(n);
        match node.kind {
            NodeKind::Process => {
                held.insert(node.host, "ran the tainted code");
                for &e in graph.out_edges_since(n, label.since_ns) {
                    let edge = graph.edge(e);
                    // A host a tainted process talked to outside the loaded hosts: a
                    // command-and-control server, a next victim, or a backdoor's client.
                    if edge.kind == EdgeKind::Connect
                        && graph.remote_host(edge.dst).is_none()
                        && let Some(remote) = graph.remote(edge.dst)
                    {
                        let port = graph.attr(e, "port").unwrap_or_else(|| "?".into());
                        let what = match graph.attr(e, "direction").as_deref() {
                            Some("in") => "connected to a tainted process",
                            _ => "a tainted process connected to it",
                        };
                        outside.entry(remote.ip.to_string()).or_insert_with(|| {
                            format!("{what} (port {port}, host {})", graph.host(edge.host).id)
                        });
                    }
                    if edge.is_activation_point() {
                        let path = graph.label(edge.dst);
                        let point = graph.attr(e, "activation_point").unwrap_or_default();
                        protect
                            .entry(path)
                            .or_insert_with(|| (point, BTreeSet::new()))
                            .1
                            .insert(graph.host(edge.host).id.clone());
                    }
                }
            }
            NodeKind::File => {
                held.entry(node.host).or_insert("holds a tainted file");
                match graph.file(n).and_then(|f| f.sha256_hex()) {
                    Some(hash) => {
                        hashes.insert(hash);
                    }
                    None => files_without_hash += 1,
                }
                if label.origin != LOCAL_ORIGIN {
                    let arrival = graph.edge(label.origin);
                    if arrival.kind == EdgeKind::ReceivedFrom
                        && graph.remote_host(arrival.src).is_none()
                        && let Some(remote) = graph.remote(arrival.src)
                    {
                        let reason = if remote.node_ids.is_empty() {
                            format!(
                                "sent tainted files into host {} (outside the loaded hosts)",
                                graph.host(arrival.host).id
                            )
                        } else {
                            format!(
                                "sent tainted files into host {} (node {}, dump not loaded)",
                                graph.host(arrival.host).id,
                                remote.node_ids.join("/")
                            )
                        };
                        outside.entry(remote.ip.to_string()).or_insert(reason);
                    }
                }
            }
            _ => {}
        }
    }
    let mut block: Vec<BlockTarget> = held
        .into_iter()
        .map(|(h, reason)| BlockTarget {
            target: graph.host(h).id.clone(),
            reason: format!("{} ({})", reason, graph.host(h).label()),
        })
        .collect();
    block.extend(
        outside
            .into_iter()
            .map(|(ip, reason)| BlockTarget { target: ip, reason }),
    );
    let protect: Vec<ProtectPath> = protect
        .into_iter()
        .map(|(path, (activation_point, hosts))| ProtectPath {
            path,
            activation_point,
            hosts: hosts.into_iter().collect(),
        })
        .collect();
    let hashes: Vec<String> = hashes.into_iter().collect();
    if files_without_hash > 0 {
        warnings.push(format!("{files_without_hash} tainted file(s) have no recorded sha256 and are not in the YARA rule"));
    }
    let yara = (!hashes.is_empty()).then(|| yara_rule(&question, &hashes));
    if yara.is_none() {
        warnings
            .push("no tainted file has a recorded sha256: no YARA rule can be written".to_owned());
    }
    Ok(RulesReport {
        question,
        block,
        protect,
        hashes,
        files_without_hash,
        yara,
        warnings,
    })
}

/// YARA rule names allow [A-Za-z0-9_], must not start with a digit, at most 128 chars.
fn yara_rule(question: &str, hashes: &[String]) -> String {
    let name = format!("vtrail_{}", &hashes[0][..12]);
    // A YARA string takes `\n`, `\t`, `\xHH` but no raw control character: the question
    // names the flagged path, which the attacker chose.
    let quoted = question.replace(['"', '\\'], "'");
    let description = crate::output::escape::text(&quoted);
    let mut rule = String::new();
    rule.push_str("import \"hash\"\n\n");
    rule.push_str(&format!("rule {name}\n{{\n    meta:\n"));
    rule.push_str(&format!(
        "        description = \"vtrail-analysis: {description}\"\n"
    ));
    rule.push_str(&format!("        hashes = {}\n", hashes.len()));
    rule.push_str("    condition:\n");
    for (i, hash) in hashes.iter().enumerate() {
        let joiner = if i + 1 < hashes.len() { " or" } else { "" };
        rule.push_str(&format!(
            "        hash.sha256(0, filesize) == \"{hash}\"{joiner}\n"
        ));
    }
    rule.push_str("}\n");
    rule
}
