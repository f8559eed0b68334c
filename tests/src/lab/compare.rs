//! Ground truth against what `vtrail-analysis` recovered from the records (the guests'
//! dumps, and the fleet's central database): patient zero, the tree, the carriers, the
//! order of infections, the super infector, the trace back to the outside, the rules, and
//! the naming across the address change. Every difference is listed; the table shows both
//! sides.
use std::collections::BTreeMap;

use serde_json::Value;

use super::scenario::{ACTIVATION_POINT, OUTSIDE_IP, Scenario};
use super::truth::{Source, Truth};

/// What the analysis answered, from one source (dumps or the central database).
pub struct Recovered {
    pub source: &'static str,
    pub spread: Value,
    pub trace: Value,
    pub rules: Value,
}

#[derive(Default)]
pub struct Comparison {
    pub table: String,
    pub differences: Vec<String>,
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// `(a, b)` of each element of the array `v`.
fn pairs(v: &Value, a: impl Fn(&Value) -> &Value, b: impl Fn(&Value) -> &Value) -> Vec<(String, String)> {
    v.as_array().into_iter().flatten().map(|e| (s(a(e)).to_string(), s(b(e)).to_string())).collect()
}

impl Comparison {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.differences.push(what());
        }
    }
}

/// One host as `spread` reported it: (infected, parent host id or `outside`, infected at).
fn spread_hosts(spread: &Value) -> BTreeMap<String, (bool, String, Option<u64>)> {
    spread["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let parent = match s(&h["parent_kind"]) {
                "host" => s(&h["parent"]).to_string(),
                "outside" => format!("outside {}", s(&h["via"]["from_ip"])),
                other => other.to_string(),
            };
            (s(&h["host"]).to_string(), (h["infected"] == true, parent, h["infected_at_ns"].as_u64()))
        })
        .collect()
}

fn truth_parent(source: &Option<Source>) -> String {
    match source {
        Some(Source::Outside) => format!("outside {OUTSIDE_IP}"),
        Some(Source::Host(h)) => h.clone(),
        None => "unknown".into(),
    }
}

pub fn compare(scenario: &Scenario, truth: &Truth, recovered: &[Recovered], remotes: &[(String, Vec<String>)]) -> Comparison {
    let mut c = Comparison::default();
    let name_of = |id: &str| scenario.hosts.iter().find(|h| h.id == id).map(|h| h.name.clone()).unwrap_or_else(|| id.to_string());
    let short = |p: &str| if p.starts_with("outside") { p.to_string() } else { name_of(p) };

    // The plan is what the lab meant; the truth is what happened. A difference there is the
    // lab's failure (a lost upload, a user that did not run), named before anything else.
    for (i, plan) in scenario.hosts.iter().enumerate() {
        let t = &truth.hosts[i];
        c.check(t.infected_at_ns.is_some() == plan.runs_worm && (plan.runs_worm || t.carrier), || {
            format!("lab: {} was meant to {} but its logs say infected={} carrier={}", plan.name,
                if plan.runs_worm { "run the worm" } else { "only carry it" }, t.infected_at_ns.is_some(), t.carrier)
        });
    }

    // Times are each host's own clock, shown as seconds after patient zero's infection.
    let zero_at = |at: &dyn Fn(&str) -> Option<u64>| truth.patient_zero.first().and_then(|z| at(z));
    let since = |t: Option<u64>, zero: Option<u64>| match (t, zero) {
        (Some(t), Some(z)) => format!(" +{:.1} s", (t as i128 - z as i128) as f64 / 1e9),
        _ => String::new(),
    };
    let truth_at = |id: &str| truth.hosts.iter().find(|h| h.id == id).and_then(|h| h.infected_at_ns);
    let truth_zero = zero_at(&truth_at);
    let mut header = vec!["host".to_string(), "disk id".into(), "truth".into()];
    header.extend(recovered.iter().map(|r| format!("spread ({})", r.source)));
    let mut rows = vec![header];
    for t in &truth.hosts {
        let role = if truth.patient_zero.contains(&t.id) {
            "zero"
        } else if t.infected_at_ns.is_some() {
            "infected"
        } else if t.carrier {
            "carrier"
        } else {
            "untouched"
        };
        let mut row = vec![
            t.name.clone(),
            t.id.clone(),
            format!("{role} <- {} as {}{}", short(&truth_parent(&t.source)), t.via_name.as_deref().unwrap_or("-"), since(t.infected_at_ns, truth_zero)),
        ];
        for r in recovered {
            let hosts = spread_hosts(&r.spread);
            let zero = zero_at(&|id: &str| hosts.get(id).and_then(|h| h.2));
            row.push(match hosts.get(&t.id) {
                Some((infected, parent, at)) => {
                    let zeros: Vec<&str> = r.spread["patient_zeros"].as_array().into_iter().flatten().map(s).collect();
                    let role = if zeros.contains(&t.id.as_str()) { "zero" } else if *infected { "infected" } else { "carrier" };
                    format!("{role} <- {}{}", short(parent), since(*at, zero))
                }
                None => "untouched".to_string(),
            });
        }
        rows.push(row);
    }
    let mut table = crate::table::aligned(&rows);

    let truth_order = truth.infection_order();
    let direct = truth.direct_infections();
    // The most direct infections, and every host that made that many (a chain or a tree
    // has ties: any of them is the right answer).
    let top_count = direct.values().copied().max();
    let top: Option<(Vec<String>, usize)> = top_count.map(|n| (direct.iter().filter(|(_, m)| **m == n).map(|(h, _)| h.clone()).collect(), n));
    let last = truth_order.last().cloned();
    for r in recovered {
        let src = r.source;
        let zeros: Vec<String> = r.spread["patient_zeros"].as_array().into_iter().flatten().map(|v| s(v).to_string()).collect();
        c.check(zeros == truth.patient_zero, || format!("{src}: patient zero {zeros:?}, truth {:?}", truth.patient_zero));
        let hosts = spread_hosts(&r.spread);
        for t in &truth.hosts {
            let want = if t.infected_at_ns.is_some() || t.carrier { Some((t.infected_at_ns.is_some(), truth_parent(&t.source))) } else { None };
            let got = hosts.get(&t.id).map(|(i, p, _)| (*i, p.clone()));
            c.check(want == got, || format!("{src}: {} ({}) recovered as {got:?}, truth {want:?} (infected, parent)", t.name, t.id));
        }
        for id in hosts.keys() {
            c.check(truth.host(id).is_some(), || format!("{src}: spread names host {id}, which is not a lab guest"));
        }
        let mut order: Vec<(u64, String)> =
            hosts.iter().filter_map(|(h, (infected, _, at))| if *infected { Some((at.unwrap_or(0), h.clone())) } else { None }).collect();
        order.sort();
        let order: Vec<String> = order.into_iter().map(|(_, h)| h).collect();
        c.check(order == truth_order, || format!("{src}: infection order {order:?}, truth {truth_order:?}"));
        if let Some((hubs, n)) = &top {
            let first = &r.spread["super_infectors"][0];
            c.check(hubs.iter().any(|h| h == s(&first["host"])) && first["direct"].as_u64() == Some(*n as u64), || {
                format!("{src}: top infector {} with {} direct, truth one of {hubs:?} with {n}", first["host"], first["direct"])
            });
        }

        // trace from the last infected host's copy back to the outside, hop by hop.
        if let Some(last) = &last {
            let mut want_hops = Vec::new();
            let mut at = last.clone();
            while let Some(Source::Host(p)) = truth.host(&at).and_then(|h| h.source.clone()) {
                want_hops.push((p.clone(), at.clone()));
                at = p;
            }
            // `trace` lists the hops from the origin outwards.
            want_hops.reverse();
            let got_hops = pairs(&r.trace["backward"]["hops"], |h| &h["received"]["from_host"], |h| &h["received"]["host"]);
            c.check(got_hops == want_hops, || format!("{src}: trace hops (from, to) {got_hops:?}, truth {want_hops:?}"));
            let entries = pairs(&r.trace["backward"]["entry_points"], |e| &e["transfer"]["from_ip"], |e| &e["transfer"]["host"]);
            c.check(entries == [(OUTSIDE_IP.to_string(), at.clone())], || {
                format!("{src}: trace entry points (from ip, host) {entries:?}, truth [({OUTSIDE_IP}, {at})]")
            });
        }

        let block: Vec<&str> = r.rules["block"].as_array().into_iter().flatten().map(|b| s(&b["target"])).collect();
        c.check(block == [OUTSIDE_IP], || format!("{src}: rules block {block:?}, truth [{OUTSIDE_IP}]"));
        let protect: Vec<&str> = r.rules["protect"].as_array().into_iter().flatten().map(|p| s(&p["path"])).collect();
        c.check(protect.contains(&ACTIVATION_POINT), || format!("{src}: rules protect {protect:?}, lacks the worm's {ACTIVATION_POINT}"));
    }

    // The records name the host that moved by its disk id at both addresses.
    if let Some(mover) = scenario.mover() {
        for ip in [mover.ip.clone(), mover.moves_to.clone().unwrap_or_default()] {
            let named: Vec<&Vec<String>> = remotes.iter().filter(|(r, _)| *r == ip).map(|(_, ids)| ids).collect();
            c.check(!named.is_empty() && named.iter().all(|ids| ids.contains(&mover.id)), || {
                format!("naming: remote:{ip} (an address of {}) is named {named:?} in the records, not {}", mover.name, mover.id)
            });
        }
    }
    // Trace and rules, side by side as well.
    if let Some(last) = &last {
        let mut chain = vec![name_of(last)];
        let mut at = last.clone();
        while let Some(source) = truth.host(&at).and_then(|h| h.source.clone()) {
            match source {
                Source::Host(p) => {
                    chain.push(name_of(&p));
                    at = p;
                }
                Source::Outside => {
                    chain.push(format!("outside {OUTSIDE_IP}"));
                    break;
                }
            }
        }
        table.push_str(&format!("trace of {}'s copy back to its origin:\n  truth: {}\n", name_of(last), chain.join(" <- ")));
        for r in recovered {
            // Hops come origin first; the chain is read back from the copy.
            let mut got: Vec<String> = pairs(&r.trace["backward"]["hops"], |h| &h["received"]["host"], |h| &h["received"]["from_host"])
                .into_iter()
                .rev()
                .map(|(to, _)| name_of(&to))
                .collect();
            got.extend(pairs(&r.trace["backward"]["entry_points"], |e| &e["transfer"]["host"], |e| &e["transfer"]["from_ip"]).into_iter().flat_map(|(h, ip)| [name_of(&h), format!("outside {ip}")]));
            table.push_str(&format!("  {}: {}\n", r.source, got.join(" <- ")));
        }
    }
    table.push_str(&format!("rules:\n  truth: block [{OUTSIDE_IP}], protect {ACTIVATION_POINT}\n"));
    for r in recovered {
        let block: Vec<&str> = r.rules["block"].as_array().into_iter().flatten().map(|b| s(&b["target"])).collect();
        let protect: Vec<&str> = r.rules["protect"].as_array().into_iter().flatten().map(|p| s(&p["path"])).collect();
        table.push_str(&format!("  {}: block {block:?}, protect {protect:?}\n", r.source));
    }
    c.table = table;
    c
}
