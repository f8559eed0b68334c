//! What to feed back into the sensors and scanners after an incident:
//! - hosts to block: one `vtrail-sensor block <ip>` argument per line, the addresses
//!   outside the loaded hosts that sent tainted files in or that tainted processes talked
//!   to. `block` takes an address, and quarantining a loaded host would cut off a victim
//!   (the one that runs the command among them), so the loaded hosts that ran or held the
//!   taint are listed apart, as hosts to clean;
//! - paths to protect: the activation points the tainted processes wrote or changed;
//! - a YARA rule matching the sha256 of the flagged file and of every file it produced. The
//!   sensor hashes an untrusted binary when it runs (`/proc/PID/exe`); a script run through
//!   its interpreter has no hash, and a YARA rule needs content: such files are named as
//!   not covered, never silently left out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use sensor_common::graph::{ConnectDirection, EdgeData, EdgeKind};
use serde::Serialize;

use crate::index::{Graph, HostIx, NodeKind};
use crate::select::{Selector, auto_seeds, resolve, seeds_with_copies};
use crate::taint::{LOCAL_ORIGIN, propagate};

// The wire types `vtrail-sensor apply-rules` reads back.
pub use sensor_common::rules::{BlockTarget, ProtectPath};

/// A loaded host that ran or holds the taint: to clean, not to block.
#[derive(Clone, Debug, Serialize)]
pub struct InfectedHost {
    pub host: String,
    pub hostname: String,
    pub reason: String,
}

/// A tainted file that was executed (or read by an interpreter) but has no content hash.
#[derive(Clone, Debug, Serialize)]
pub struct UnhashedFile {
    pub id: String,
    pub host: String,
    pub path: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RulesReport {
    pub question: String,
    pub block: Vec<BlockTarget>,
    pub infected_hosts: Vec<InfectedHost>,
    pub protect: Vec<ProtectPath>,
    pub hashes: Vec<String>,
    /// Tainted files without a recorded hash: the YARA rule cannot cover them.
    pub files_without_hash: usize,
    /// Those of them that ran: the malware itself (a script, usually) left out of the rule.
    pub executed_without_hash: Vec<UnhashedFile>,
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
                        let (port, what) = match graph.edge_data(e) {
                            EdgeData::Connect(c) if c.direction == ConnectDirection::In => {
                                (c.port.to_string(), "connected to a tainted process")
                            }
                            EdgeData::Connect(c) => (c.port.to_string(), "a tainted process connected to it"),
                            _ => ("?".into(), "a tainted process connected to it"),
                        };
                        outside.entry(remote.ip.to_string()).or_insert_with(|| {
                            format!("{what} (port {port}, host {})", graph.host(edge.host).id)
                        });
                    }
                    if edge.is_activation_point() {
                        let path = graph.label(edge.dst);
                        let point = graph.edge_data(e).activation_point().unwrap_or_default().to_owned();
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
    let infected_hosts: Vec<InfectedHost> = held
        .into_iter()
        .map(|(h, reason)| InfectedHost {
            host: graph.host(h).id.clone(),
            hostname: graph.host(h).hostname.clone(),
            reason: reason.to_owned(),
        })
        .collect();
    let mut block: Vec<BlockTarget> = Vec::new();
    for (ip, reason) in outside {
        match block_argument(&ip) {
            Some(target) => block.push(BlockTarget { target, reason }),
            None => warnings.push(format!(
                "remote `{ip}` {reason}, but is not an IP address: it is not on the block list"
            )),
        }
    }
    block.sort_by(|a, b| a.target.cmp(&b.target));
    block.dedup_by(|a, b| a.target == b.target);
    let protect: Vec<ProtectPath> = protect
        .into_iter()
        .map(|(path, (activation_point, hosts))| ProtectPath {
            path,
            activation_point,
            hosts: hosts.into_iter().collect(),
        })
        .collect();
    let hashes: Vec<String> = hashes.into_iter().collect();
    let executed_without_hash = executed_without_hash(graph, &taint);
    if files_without_hash > 0 {
        warnings.push(format!("{files_without_hash} tainted file(s) have no recorded sha256 and are not in the YARA rule"));
    }
    let yara = (!hashes.is_empty()).then(|| yara_rule(&question, &hashes));
    if let Some(note) = no_hash_note(&executed_without_hash, yara.is_some()) {
        warnings.push(note);
    } else if yara.is_none() {
        warnings
            .push("no tainted file has a recorded sha256: no YARA rule can be written".to_owned());
    }
    Ok(RulesReport {
        question,
        block,
        infected_hosts,
        protect,
        hashes,
        files_without_hash,
        executed_without_hash,
        yara,
        warnings,
    })
}

/// `vtrail-sensor block` takes an address (or `remote:<address>`) and keeps IPv4-mapped
/// IPv6 addresses as IPv4; anything else in a dump's remote node is not one.
fn block_argument(ip: &str) -> Option<String> {
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    Some(ip.to_string())
}

/// The files that ran tainted and have no hash, each once, by host and path.
fn executed_without_hash(graph: &Graph, taint: &crate::taint::Taint) -> Vec<UnhashedFile> {
    let mut files: Vec<_> = taint
        .tainted_executions(graph)
        .iter()
        .map(|&x| graph.edge(x).src)
        .filter(|&f| graph.file(f).is_some_and(|f| f.sha256.is_none()))
        .collect();
    files.sort_unstable();
    files.dedup();
    let mut files: Vec<UnhashedFile> = files
        .into_iter()
        .map(|f| UnhashedFile {
            id: graph.id(f).to_owned(),
            host: graph.host(graph.node(f).host).id.clone(),
            path: graph.label(f),
        })
        .collect();
    files.sort_by(|a, b| (&a.host, &a.path).cmp(&(&b.host, &b.path)));
    files
}

/// Says which executed files the YARA rule cannot match, and why.
pub fn no_hash_note(files: &[UnhashedFile], have_rule: bool) -> Option<String> {
    const LISTED: usize = 10;
    if files.is_empty() {
        return None;
    }
    let mut named: Vec<String> = files
        .iter()
        .take(LISTED)
        .map(|f| format!("{} on {}", f.path, f.host))
        .collect();
    if files.len() > LISTED {
        named.push(format!("and {} more", files.len() - LISTED));
    }
    Some(format!(
        "no content hash is recorded for {} executed file(s): {} (the sensor hashes a binary when \
         it runs; a script run by its interpreter has no hash){}",
        files.len(),
        named.join(", "),
        if have_rule {
            ": the YARA rule does not match them"
        } else {
            ": no YARA rule can be written, a rule needs content and the dumps hold only names"
        }
    ))
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
