//! `vtrail-sensor apply-rules FILE`: the rules `vtrail-analysis rules --json` wrote after an
//! incident, enforced. Everything in the document is checked before anything is applied
//! (an address that does not parse or a YARA rule that does not compile refuses the whole
//! file); then the block list becomes quarantine (recorded as `block` edges naming the
//! file and the reason), the protected paths are stored and marked in the kernel, and the
//! YARA rule is stored and compiled into the running scanner. All of it is kept in the
//! database, so a restart enforces it again.
use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use sensor_common::rules::{FedBackRules, ProtectPath};
use serde::Serialize;
use tracing::{info, warn};

use crate::{
    config::Config,
    daemon::{network::{Monitor, parse_target}, scanning::Scanning},
    graph::{GraphWriter, store::{Applied, GraphStore}},
    host::procfs,
    kernel::sensor::Sensor,
    respond::protect,
    scan::engines::yara::{RuleSource, Yara},
};

/// What was applied; `problems` is empty when all of it is in force.
#[derive(Debug, Default, Serialize)]
pub struct ApplyReport {
    pub ok: bool,
    pub blocked: Vec<String>,
    pub protected_paths: usize,
    pub protected_inodes: usize,
    /// sha256 of the YARA rule source, when there was one.
    pub yara: Option<String>,
    /// Rules YARA-X now holds, when the rule is in force in the running scanner.
    pub yara_rules_in_force: Option<usize>,
    pub notes: Vec<String>,
    pub problems: Vec<String>,
}

/// The parts of the daemon the rules change.
pub struct Targets<'s, 'a> {
    pub graph: &'s GraphWriter<'a>,
    pub sensor: &'s mut Sensor,
    pub net: Option<&'s mut Monitor>,
    pub scanning: Option<&'s mut Scanning>,
    pub config: &'s Config,
}

pub fn apply(rules: &FedBackRules, source: &str, by: &str, t: Targets) -> Result<ApplyReport> {
    if rules.is_empty() {
        bail!("{source}: no block list, protected path or YARA rule in it: nothing to apply");
    }
    // Checked first, applied after: a bad entry refuses the file whole.
    let blocks: Vec<(IpAddr, &str)> = rules
        .block
        .iter()
        .map(|b| parse_target(&b.target).map(|ip| (ip, b.reason.as_str())).with_context(|| format!("{source}: block")))
        .collect::<Result<_>>()?;
    if let Some(text) = &rules.yara {
        let check = [RuleSource { origin: format!("{source} (yara)"), text: text.clone() }];
        Yara::compile(None, &check).with_context(|| format!("{source}: the YARA rule does not compile"))?;
    }
    let store = t.graph.store();
    let now = procfs::now_wall_ns();
    let mut report = ApplyReport::default();

    match t.net {
        Some(net) => {
            for (ip, reason) in blocks {
                let why = format!("apply-rules {source} by {by}: {reason}");
                match net.block_sender(t.graph, ip, &why) {
                    Ok(_) => report.blocked.push(ip.to_string()),
                    Err(e) => report.problems.push(format!("block {ip}: {e:#}")),
                }
            }
        }
        None if !blocks.is_empty() => report.problems.push(format!(
            "{} host(s) to block, but network monitoring is off: the block list is NOT enforced",
            blocks.len()
        )),
        None => {}
    }

    for p in &rules.protect {
        let applied = Applied { rule: p.clone(), by: by.to_owned(), source: source.to_owned(), ts_ns: now };
        store.add_protected(&applied)?;
    }
    report.protected_paths = rules.protect.len();
    if !rules.protect.is_empty() {
        let (marked, notes) = enforce_protected(t.sensor, t.config, store)?;
        report.protected_inodes = marked;
        report.notes.extend(notes);
    }

    if let Some(text) = &rules.yara {
        let applied = Applied { rule: text.clone(), by: by.to_owned(), source: source.to_owned(), ts_ns: now };
        report.yara = Some(store.add_yara_rule(&applied)?);
        match t.scanning {
            Some(scanning) => match scanning.reload_yara(t.config, store) {
                Ok(count) => report.yara_rules_in_force = Some(count),
                Err(e) => report.problems.push(format!("the YARA rule is stored but not in force: {e:#}")),
            },
            None => report.problems.push(
                "the YARA rule is stored, but scanning is off (no engine was configured when the sensor started): it is in force after a restart".into(),
            ),
        }
    }
    report.ok = report.problems.is_empty();
    info!(
        "apply-rules {source} by {by}: {} blocked, {} protected path(s) ({} inodes), YARA rule {}",
        report.blocked.len(),
        report.protected_paths,
        report.protected_inodes,
        report.yara.as_deref().map_or("none".into(), |s| format!("sha256 {}", &s[..12.min(s.len())]))
    );
    for p in &report.problems {
        warn!("apply-rules {source}: {p}");
    }
    Ok(report)
}

/// Every protected path (`[response] protected_paths` and those applied) resolved and
/// marked in the kernel, and only those. At start, at each reload, after `apply-rules`.
/// Returns the inodes marked and why some paths mark less than asked.
pub fn enforce_protected(sensor: &mut Sensor, config: &Config, store: &GraphStore) -> Result<(usize, Vec<String>)> {
    let applied = store.protected_paths().context("cannot read the protected paths from the database")?;
    let paths: Vec<&str> = config
        .response
        .protected_paths
        .iter()
        .map(String::as_str)
        .chain(applied.iter().map(|a: &Applied<ProtectPath>| a.rule.path.as_str()))
        .collect();
    let resolved = protect::resolve(paths, config);
    let marked = sensor.set_protected(&resolved.inodes).context("protected paths not (all) marked in the kernel")?;
    for note in &resolved.notes {
        warn!("protected paths: {note}");
    }
    Ok((marked, resolved.notes))
}
