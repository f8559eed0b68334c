//! What the lab will make happen, decided from a seed before anything boots: the hosts
//! (name, disk serial and id, addresses, hook strategy), who infects whom (the topology),
//! who only carries the worm, whose address changes mid-run, the benign noise, and the
//! delays of each scripted user. Pure: the same seed gives the same plan.
use std::collections::BTreeMap;

use analysis::simulate::Rng;
use anyhow::{Result, bail, ensure};

/// The lab's LAN, `10.77.0.0/24`: the lab host's side (BIND, NATS) is `.1`, the outside
/// host (no sensor, where the worm comes from) `.254`, guest `i` (from 1) `.(10+i)`, and
/// after the re-addressing `.(110+i)`.
pub const LAN_PREFIX: &str = "10.77.0";
pub const LAN_BITS: u8 = 24;
pub const LAB_HOST_IP: &str = "10.77.0.1";
pub const OUTSIDE_IP: &str = "10.77.0.254";
/// The DNS zone the guests publish their disk ids in.
pub const ZONE: &str = "lab.vtrail.test";
/// Where vsftpd takes anonymous uploads in every guest.
pub const INCOMING: &str = "/srv/ftp/incoming";
/// The worm's payload and the activation point it touches.
pub const PAYLOAD: &str = "/var/tmp/.sysupdate";
pub const ACTIVATION_POINT: &str = "/etc/cron.d/sysupdate";
pub const MAX_HOSTS: usize = 20;

/// Names the worm travels under, one per receiving host (the lure a user clicks).
const LURES: &[&str] = &[
    "invoice-0412.pdf.sh", "payroll-update.sh", "scan_0091.sh", "printer-driver.sh", "vpn-setup.sh",
    "quarterly-report.sh", "hr-policy.sh", "backup-tool.sh", "font-pack.sh", "meeting-notes.sh",
    "tax-form.sh", "license-renewal.sh", "patch-kb5031.sh", "holiday-rota.sh", "expenses.sh",
    "photo-album.sh", "budget-2027.sh", "resume-final.sh", "shipping-label.sh", "security-fix.sh",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Each host infects the next.
    Chain,
    /// Patient zero infects every other host (the super infector).
    Star,
    /// A random recursive tree: each host is infected by one of those before it.
    Tree,
}

impl Topology {
    pub fn name(self) -> &'static str {
        match self {
            Topology::Chain => "chain",
            Topology::Star => "star",
            Topology::Tree => "tree",
        }
    }
}

impl std::str::FromStr for Topology {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "chain" => Ok(Topology::Chain),
            "star" => Ok(Topology::Star),
            "tree" => Ok(Topology::Tree),
            _ => bail!("unknown topology `{s}`: use chain, star or tree"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Fentry,
    Kprobe,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Fentry => "fentry",
            Strategy::Kprobe => "kprobe",
        }
    }
}

#[derive(Clone, Debug)]
pub struct PlannedHost {
    /// 1-based.
    pub index: usize,
    /// Its hostname, `lab<index>`.
    pub name: String,
    /// The virtio disk's serial number, and the disk id vtrail derives from it.
    pub serial: String,
    pub id: String,
    pub ip: String,
    pub strategy: Strategy,
    /// Hosts (indices into `Scenario::hosts`) its worm uploads itself to.
    pub targets: Vec<usize>,
    /// The name its copy of the worm arrives under.
    pub lure: String,
    /// Whether its user opens what arrives (false: a carrier).
    pub runs_worm: bool,
    /// How long its user waits before opening an arrival, seconds.
    pub open_delay_s: u32,
    /// After the worm arrives (and before its user opens it), the host moves to this
    /// address.
    pub moves_to: Option<String>,
    /// Benign documents its user sends to other hosts once the worm has arrived (after
    /// the move, for the host that moves): (host index, file name).
    pub sends_docs: Vec<(usize, String)>,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub topology: Topology,
    pub hosts: Vec<PlannedHost>,
    /// Index of patient zero: the host the outside uploads the worm to.
    pub zero: usize,
    /// Benign documents the outside host uploads before the worm: (host index, name).
    pub outside_docs: Vec<(usize, String)>,
}

impl Scenario {
    pub fn plan(hosts: usize, topology: Topology, seed: u64) -> Result<Self> {
        ensure!((2..=MAX_HOSTS).contains(&hosts), "the lab runs 2 to {MAX_HOSTS} hosts, not {hosts}");
        let mut rng = Rng::new(seed ^ 0x7661_6c61_6221);
        let mut order: Vec<usize> = (0..hosts).collect();
        rng.shuffle(&mut order);
        let zero = order[0];

        // parent[order[k]] for k >= 1.
        let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
        for k in 1..hosts {
            let p = match topology {
                Topology::Chain => order[k - 1],
                Topology::Star => zero,
                Topology::Tree => order[rng.below(k as u64) as usize],
            };
            parent.insert(order[k], p);
        }
        let children = |h: usize| -> Vec<usize> {
            // In infection order: the worm uploads to its targets in this order.
            order.iter().copied().filter(|c| parent.get(c) == Some(&h)).collect()
        };
        let leaves: Vec<usize> = order.iter().copied().filter(|&h| h != zero && children(h).is_empty()).collect();
        // A carrier never opens the worm, so it can only be a leaf; one per three leaves,
        // at least one when there are two hosts besides patient zero.
        let mut carrier_pool = leaves.clone();
        rng.shuffle(&mut carrier_pool);
        let carriers: Vec<usize> = if hosts >= 3 { carrier_pool.into_iter().take((leaves.len() / 3).max(1)).collect() } else { Vec::new() };
        // The host that moves: one that opens the worm, besides patient zero; one that
        // passes it on if there is any, so the worm's own records straddle the move.
        let runners: Vec<usize> = order.iter().copied().filter(|h| *h != zero && !carriers.contains(h)).collect();
        let passing: Vec<usize> = runners.iter().copied().filter(|&h| !children(h).is_empty()).collect();
        let pool = if passing.is_empty() { &runners } else { &passing };
        let mover = if pool.is_empty() { None } else { Some(pool[rng.below(pool.len() as u64) as usize]) };

        let mut lures: Vec<&str> = LURES.to_vec();
        rng.shuffle(&mut lures);
        let mut planned: Vec<PlannedHost> = (0..hosts)
            .map(|h| {
                let index = h + 1;
                let serial = format!("VTLAB{:06}H{index:02}", seed % 1_000_000);
                PlannedHost {
                    index,
                    name: format!("lab{index}"),
                    id: ddns_updater::id::node_id("virtio", &serial),
                    serial,
                    ip: format!("{LAN_PREFIX}.{}", 10 + index),
                    strategy: if index % 2 == 1 { Strategy::Fentry } else { Strategy::Kprobe },
                    targets: children(h),
                    lure: lures[h].to_string(),
                    runs_worm: !carriers.contains(&h),
                    // Far enough apart that the order of infections is not a matter of
                    // clock skew between guests.
                    open_delay_s: 3 + rng.below(4) as u32,
                    moves_to: (Some(h) == mover).then(|| format!("{LAN_PREFIX}.{}", 110 + index)),
                    sends_docs: Vec::new(),
                }
            })
            .collect();
        // Noise: the host that moves sends a document after its move (so the records
        // name it at its new address too); a few others send one each.
        for h in 0..hosts {
            let sends = Some(h) == mover || rng.chance(0.4);
            if sends {
                let to = (h + 1 + rng.below(hosts as u64 - 1) as usize) % hosts;
                if Some(to) != mover && to != h {
                    planned[h].sends_docs.push((to, format!("notes-from-lab{}.txt", h + 1)));
                }
            }
        }
        let mut outside_docs = Vec::new();
        for k in 0..(hosts / 2).max(1) {
            let to = rng.below(hosts as u64) as usize;
            outside_docs.push((to, format!("price-list-{k}.csv")));
        }
        Ok(Self { seed, topology, hosts: planned, zero, outside_docs })
    }

    /// The host that infected `h` in the plan (`None`: patient zero).
    pub fn parent_of(&self, h: usize) -> Option<usize> {
        self.hosts.iter().position(|p| p.targets.contains(&h))
    }

    /// The host that moves, if any.
    pub fn mover(&self) -> Option<&PlannedHost> {
        self.hosts.iter().find(|h| h.moves_to.is_some())
    }

    /// The worm: a busybox shell script, the same bytes on every host. It logs that it
    /// ran, writes its payload, touches the activation point and uploads itself over FTP
    /// to the hosts the topology gives the host it runs on.
    pub fn worm_script(&self) -> String {
        let mut cases = String::new();
        for h in &self.hosts {
            let targets: Vec<String> =
                h.targets.iter().map(|&t| format!("{}:{}", self.hosts[t].ip, self.hosts[t].lure)).collect();
            cases.push_str(&format!("  {}) targets=\"{}\" ;;\n", h.name, targets.join(" ")));
        }
        WORM_TEMPLATE
            .replace("@SEED@", &self.seed.to_string())
            .replace("@CASES@", &cases)
            .replace("@PAYLOAD@", PAYLOAD)
            .replace("@ACTIVATION@", ACTIVATION_POINT)
    }

    /// The guest's scripted user: watches the FTP upload folder, opens what arrives after
    /// its delay (unless a carrier), moves to its new address first if it is the one that
    /// moves, sends its documents.
    pub fn user_script(&self, h: &PlannedHost) -> String {
        let docs: Vec<String> =
            h.sends_docs.iter().map(|(to, name)| format!("{}:{}", self.hosts[*to].ip, name)).collect();
        USER_TEMPLATE
            .replace("@INCOMING@", INCOMING)
            .replace("@RUNS@", if h.runs_worm { "yes" } else { "no" })
            .replace("@DELAY@", &h.open_delay_s.to_string())
            .replace("@MOVE_TO@", h.moves_to.as_deref().unwrap_or(""))
            .replace("@OLD_IP@", &h.ip)
            .replace("@BITS@", &LAN_BITS.to_string())
            .replace("@DOCS@", &docs.join(" "))
    }
}

const WORM_TEMPLATE: &str = include_str!("guest/worm.sh");
const USER_TEMPLATE: &str = include_str!("guest/user.sh");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_reproducible_and_consistent() {
        for topology in [Topology::Chain, Topology::Star, Topology::Tree] {
            for seed in 0..20 {
                for n in [3, 4, 6] {
                    let a = Scenario::plan(n, topology, seed).unwrap();
                    let b = Scenario::plan(n, topology, seed).unwrap();
                    assert_eq!(a.worm_script(), b.worm_script());
                    // Every host but patient zero has exactly one parent; carriers pass nothing on.
                    for h in 0..n {
                        let parents = a.hosts.iter().filter(|p| p.targets.contains(&h)).count();
                        assert_eq!(parents, usize::from(h != a.zero), "{topology:?} seed {seed}");
                        if !a.hosts[h].runs_worm {
                            assert!(a.hosts[h].targets.is_empty());
                        }
                    }
                    assert!(a.hosts[a.zero].runs_worm);
                    assert!(a.hosts.iter().any(|h| !h.runs_worm), "{topology:?} seed {seed} n {n}: a carrier");
                    let mover = a.mover().expect("a host moves");
                    assert_ne!(mover.index - 1, a.zero);
                    assert!(mover.runs_worm);
                    assert!(!mover.sends_docs.is_empty(), "the mover sends after its move");
                    let ids: std::collections::BTreeSet<&str> = a.hosts.iter().map(|h| h.id.as_str()).collect();
                    assert_eq!(ids.len(), n, "distinct disk ids");
                }
            }
        }
        let star = Scenario::plan(4, Topology::Star, 1).unwrap();
        assert_eq!(star.hosts[star.zero].targets.len(), 3);
        assert!(star.worm_script().contains("ftpput"));
        assert!(Scenario::plan(1, Topology::Star, 1).is_err());
        assert!("ring".parse::<Topology>().is_err());
    }
}
