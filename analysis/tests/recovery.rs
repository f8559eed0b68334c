//! Ground truth: on simulated incidents, `spread` must recover patient zero, the infected
//! set, every host's parent and infection time, and the carriers (hosts that received the
//! worm and never ran it) with the sender of their earliest copy, exactly; `trace` and
//! `rules` must agree.

mod common;

use std::collections::BTreeMap;

use analysis::load::{LoadOptions, load};
use analysis::select::Selector;
use analysis::simulate::{Shape, Truth};
use analysis::time::NS_PER_SEC;

fn options() -> LoadOptions {
    LoadOptions {
        skew_allowance_ns: 2 * NS_PER_SEC,
    }
}

fn truth_tree(truth: &Truth) -> BTreeMap<String, (Option<String>, u64)> {
    truth
        .hosts
        .iter()
        .filter(|h| h.infected)
        .map(|h| {
            (
                h.id.clone(),
                (
                    h.parent.clone(),
                    h.infected_at_ns.expect("infected host has a time"),
                ),
            )
        })
        .collect()
}

/// Carrier -> the sender of its earliest copy.
fn truth_carriers(truth: &Truth) -> BTreeMap<String, Option<String>> {
    truth
        .hosts
        .iter()
        .filter(|h| h.carrier)
        .map(|h| (h.id.clone(), h.parent.clone()))
        .collect()
}

fn check_recovery(seed: u64, hosts: usize, shape: Shape) {
    let (_dir, truth, inputs) = common::simulated(
        &format!("recovery-{seed}-{hosts}-{shape:?}"),
        seed,
        hosts,
        shape,
        false,
    );
    let (graph, report) = load(&inputs, options()).expect("load");
    assert_eq!(report.hosts, hosts);
    assert!(
        truth.infected >= 2,
        "seed {seed}: the worm should spread (infected {})",
        truth.infected
    );
    assert!(truth.carriers >= 1, "seed {seed}: some neighbours are not vulnerable");

    for selector in [None, Some(Selector::Sha256(truth.worm_sha256.clone()))] {
        let spread =
            analysis::spread::spread(&graph, selector.as_ref(), None, None).expect("spread");
        assert_eq!(
            spread.patient_zeros, truth.patient_zero,
            "seed {seed} {shape:?} {selector:?}: patient zero"
        );
        let found: BTreeMap<String, (Option<String>, u64)> = spread
            .hosts
            .iter()
            .filter(|h| h.infected)
            .map(|h| {
                let parent = if h.parent_kind == "host" {
                    h.parent.clone()
                } else {
                    None
                };
                (h.host.clone(), (parent, h.infected_at_ns.expect("time")))
            })
            .collect();
        assert_eq!(
            found,
            truth_tree(&truth),
            "seed {seed} {shape:?} {selector:?}: tree"
        );
        let carriers: BTreeMap<String, Option<String>> = spread
            .hosts
            .iter()
            .filter(|h| !h.infected)
            .map(|h| {
                assert_eq!(h.parent_kind, "host", "seed {seed}: carrier {} got it from a loaded host", h.host);
                assert!(h.children.is_empty(), "seed {seed}: carrier {} sent nothing on", h.host);
                assert_eq!(h.via.as_ref().map(|v| v.ts_ns), h.arrivals.first().map(|a| a.ts_ns));
                (h.host.clone(), h.parent.clone())
            })
            .collect();
        assert_eq!(
            carriers,
            truth_carriers(&truth),
            "seed {seed} {shape:?} {selector:?}: carriers"
        );
        assert_eq!(spread.topology.carriers, truth.carriers);
        assert_eq!(spread.topology.hosts_infected, truth.infected);
        // A carrier made is not an infection: the direct counts are the truth's children.
        for s in &spread.super_infectors {
            let children = truth.hosts.iter().filter(|h| h.parent.as_deref() == Some(&s.host));
            let (infected, carried): (Vec<_>, Vec<_>) = children.partition(|h| h.infected);
            assert_eq!((s.direct, s.carriers), (infected.len(), carried.len()), "seed {seed}: {}", s.host);
        }
        let zero = spread
            .hosts
            .iter()
            .find(|h| h.host == truth.patient_zero[0])
            .expect("patient zero listed");
        let via = zero.via.as_ref().expect("patient zero's entry transfer");
        assert_eq!(via.from_ip, truth.worm_entry_ip);
        assert_eq!(via.protocol, Some(sensor_common::graph::Protocol::Ftp));
    }
}

#[test]
fn recovers_scale_free_incidents() {
    for seed in [1, 2, 3, 7] {
        check_recovery(seed, 60, Shape::ScaleFree);
    }
}

#[test]
fn recovers_small_world_incidents() {
    for seed in [1, 4, 5, 11] {
        check_recovery(seed, 60, Shape::SmallWorld);
    }
}

#[test]
fn recovers_from_gzip_dumps() {
    let (_dir, truth, inputs) = common::simulated("gzip", 9, 40, Shape::ScaleFree, true);
    let (graph, _) = load(&inputs, options()).expect("load gzip");
    let spread = analysis::spread::spread(&graph, None, None, None).expect("spread");
    assert_eq!(spread.patient_zeros, truth.patient_zero);
}

#[test]
fn trace_from_a_leaf_reaches_the_entry_point_across_hosts() {
    let (_dir, truth, inputs) = common::simulated("trace", 3, 50, Shape::SmallWorld, false);
    let (graph, _) = load(&inputs, options()).expect("load");
    // The last host infected: its chain back must pass through every ancestor to patient zero.
    let leaf = truth
        .hosts
        .iter()
        .filter(|h| h.infected)
        .max_by_key(|h| h.infected_at_ns)
        .expect("a leaf");
    let leaf_host = graph.host_by_id(&leaf.id).expect("leaf loaded");
    let node = graph
        .file_nodes()
        .find(|&n| {
            graph.node(n).host == leaf_host
                && graph.file(n).is_some_and(|f| {
                    f.first_path().is_some_and(|p| p.starts_with("/srv/"))
                        && f.sha256_hex().as_deref() == Some(&truth.worm_sha256)
                })
        })
        .expect("the worm copy on the leaf");
    let report = analysis::trace::trace(&graph, &Selector::Node(graph.id(node).to_owned()), None)
        .expect("trace");

    let entry = report
        .backward
        .entry_points
        .first()
        .and_then(|e| e.transfer.as_ref())
        .expect("an entry transfer");
    assert_eq!(entry.host, truth.patient_zero[0]);
    assert_eq!(entry.from_ip, truth.worm_entry_ip);
    assert_eq!(
        entry.name_as_sent.as_deref(),
        Some("invoice-2023-11.pdf.sh")
    );

    let mut ancestors = Vec::new();
    let by_id: BTreeMap<&str, &analysis::simulate::TruthHost> =
        truth.hosts.iter().map(|h| (h.id.as_str(), h)).collect();
    let mut at = leaf.id.as_str();
    while let Some(parent) = by_id[at].parent.as_deref() {
        ancestors.push(parent.to_owned());
        at = parent;
    }
    let hop_senders: Vec<String> = report
        .backward
        .hops
        .iter()
        .map(|h| h.sent.host.clone())
        .collect();
    for ancestor in &ancestors {
        assert!(
            hop_senders.contains(ancestor),
            "ancestor {ancestor} missing from hops {hop_senders:?}"
        );
    }
    let chain_hosts: Vec<&str> = report
        .backward
        .chain
        .iter()
        .map(|e| e.host.as_str())
        .collect();
    assert_eq!(
        chain_hosts.first().copied(),
        Some(truth.patient_zero[0].as_str())
    );
    assert_eq!(chain_hosts.last().copied(), Some(leaf.id.as_str()));

    // Forward: the leaf's worm persisted in cron.
    assert!(
        report
            .forward
            .activation_points
            .iter()
            .any(|e| e.dst_label == "/etc/cron.d/sysupdate")
    );
    assert!(!report.behaviours.is_empty());
}

#[test]
fn trace_forward_from_patient_zero_reaches_every_infected_host() {
    let (_dir, truth, inputs) = common::simulated("forward", 2, 50, Shape::ScaleFree, false);
    let (graph, _) = load(&inputs, options()).expect("load");
    let zero = graph
        .host_by_id(&truth.patient_zero[0])
        .expect("patient zero");
    let report = analysis::trace::trace(
        &graph,
        &Selector::Path("/srv/ftp/incoming/invoice-2023-11.pdf.sh".into()),
        Some(zero),
    )
    .expect("trace");
    let reached: Vec<&str> = report
        .forward
        .hosts_reached
        .iter()
        .filter(|h| h.executed)
        .map(|h| h.host.as_str())
        .collect();
    for host in truth.hosts.iter().filter(|h| h.infected) {
        assert!(
            reached.contains(&host.id.as_str()),
            "{} not reached forward",
            host.id
        );
    }
    assert_eq!(reached.len(), truth.infected);
}

#[test]
fn rules_name_infected_hosts_block_the_source_and_hash_the_worm() {
    let (_dir, truth, inputs) = common::simulated("rules", 5, 40, Shape::ScaleFree, false);
    let (graph, _) = load(&inputs, options()).expect("load");
    let rules = analysis::rules::rules(&graph, None, None).expect("rules");
    let targets: Vec<&str> = rules.block.iter().map(|b| b.target.as_str()).collect();
    let infected: Vec<&str> = rules
        .infected_hosts
        .iter()
        .map(|h| h.host.as_str())
        .collect();
    // Infected loaded hosts are named, to be cleaned; they are victims, not blocked.
    for host in truth.hosts.iter().filter(|h| h.infected) {
        assert!(
            infected.contains(&host.id.as_str()),
            "{} not named",
            host.id
        );
        assert!(!targets.contains(&host.id.as_str()), "{} blocked", host.id);
        assert!(!targets.contains(&host.ip.as_str()), "{} blocked", host.ip);
    }
    assert!(targets.contains(&truth.worm_entry_ip.as_str()));
    // Benign downloads are untrusted too, but never ran: their source is not blocked.
    assert!(!targets.contains(&"198.51.100.20"));
    assert!(rules.hashes.contains(&truth.worm_sha256));
    assert!(
        rules
            .protect
            .iter()
            .any(|p| p.path == "/etc/cron.d/sysupdate")
    );
    let yara = rules.yara.expect("a YARA rule");
    assert!(yara.contains(&truth.worm_sha256));
    assert!(yara.starts_with("import \"hash\""));
}
