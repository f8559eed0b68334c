//! Seeded generator of synthetic incidents in the sensor's own schema (written with the
//! `sensor_common::graph` types, one JSON-lines dump per host), plus `truth.json` with the
//! real propagation tree and patient zero.
//!
//! The story: a worm arrives at patient zero from outside (FTP), is executed, persists in
//! cron (and sometimes a shell rc file), copies itself to /var/tmp, and uploads that copy to
//! its network neighbours over SMB or FTP. A vulnerable receiver executes every copy it gets
//! while not yet infected, in arrival order (so the copy that infects it is its earliest
//! executed arrival - the same rule `spread` uses); once infected it re-runs later copies
//! only sometimes. Non-vulnerable receivers keep the copy and never run it.
//! Noise: cron jobs running trusted binaries that write logs (the bulk of the edges),
//! benign document transfers between hosts, untrusted downloads never executed, an
//! installer relabeled trusted by an admin and then run, files relabeled untrusted.
//! Each host's clock is off by up to ±400 ms and transfers take up to 300 ms, so sends and
//! receives pair up within the default 2 s skew allowance. DNS fails for a quarter of the
//! remote addresses a host records (empty `node_ids`), but every address is resolved by at
//! least one host, so merging by address recovers it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sensor_common::graph::{
    ChmodAttrs, DUMP_FORMAT, DumpHeader, DumpLine, Edge, EdgeData, ExecAttrs, FileWriteAttrs, HostInfo, NoAttrs,
    Node, NodeData, Protocol, ReadAttrs, RelabelAttrs, SCHEMA_VERSION, Severity, TransferAttrs, Trust,
    file_node_id, host_node_id, process_node_id, remote_node_id,
};
use serde::Serialize;

use crate::index::hex;
use crate::time::NS_PER_SEC;

const EPOCH_NS: u64 = 1_700_000_000 * NS_PER_SEC;
const WORM_START_NS: u64 = EPOCH_NS + 600 * NS_PER_SEC;
const OUTSIDE_WORM_IP: &str = "203.0.113.66";
const OUTSIDE_DOWNLOAD_IP: &str = "198.51.100.20";
const DEV: u32 = (8 << 20) | 1;
const CLOCK_TICKS_PER_SEC: u64 = 100;
const MS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    ScaleFree,
    SmallWorld,
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "scale-free" => Ok(Shape::ScaleFree),
            "small-world" => Ok(Shape::SmallWorld),
            other => Err(format!(
                "unknown shape `{other}`: use scale-free or small-world"
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub hosts: usize,
    pub shape: Shape,
    pub out: PathBuf,
    /// Total edges to aim for across all dumps (noise fills up to it); at least the incident.
    pub target_edges: u64,
    pub gzip: bool,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct TruthHost {
    pub id: String,
    pub hostname: String,
    pub ip: String,
    pub vulnerable: bool,
    pub clock_skew_ns: i64,
    pub infected: bool,
    /// First execution of the worm, on this host's (skewed) clock, as the sensor records it.
    pub infected_at_ns: Option<u64>,
    /// Host id of the sender of the copy that infected it; `None` for patient zero.
    pub parent: Option<String>,
    pub neighbours: Vec<String>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Truth {
    pub seed: u64,
    pub shape: String,
    pub patient_zero: Vec<String>,
    pub worm_sha256: String,
    pub worm_entry_ip: String,
    pub infected: usize,
    pub edges_written: u64,
    pub dumps: Vec<String>,
    pub hosts: Vec<TruthHost>,
}

/// SplitMix64: tiny, fast, and fixed forever, so a seed means the same incident in every build.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    pub fn exp_ns(&mut self, mean_s: f64) -> u64 {
        (-mean_s * (1.0 - self.unit()).ln() * 1e9) as u64
    }
    pub fn sha(&mut self) -> String {
        let bytes: Vec<u8> = (0..4).flat_map(|_| self.next_u64().to_be_bytes()).collect();
        hex(&bytes)
    }
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

struct SimHost {
    id: String,
    hostname: String,
    ip: String,
    skew_ns: i64,
    vulnerable: bool,
    boot_ns: u64,
}

impl SimHost {
    fn clock(&self, true_ns: u64) -> u64 {
        true_ns.saturating_add_signed(self.skew_ns)
    }
}

/// One host's records, built up in memory then written sorted.
#[derive(Default)]
struct HostLog {
    nodes: BTreeMap<String, Node>,
    edges: Vec<Edge>,
    next_tgid: u32,
    next_ino: u64,
    /// Remote addresses recorded: (ip, host index if a simulated host).
    remotes: BTreeMap<String, Option<usize>>,
    base: Option<BaseProcesses>,
}

#[derive(Clone)]
struct BaseProcesses {
    cron: String,
    smbd: String,
    ftpd: String,
    admin_shell: String,
    binaries: Vec<(String, String)>, // (file id, path)
}

impl HostLog {
    fn file(
        &mut self,
        host: &SimHost,
        path: &str,
        untrusted: bool,
        executable: bool,
        sha256: Option<String>,
        at: u64,
    ) -> String {
        self.next_ino += 1;
        let id = file_node_id(&host.id, DEV, 100_000 + self.next_ino);
        self.nodes.insert(
            id.clone(),
            Node {
                id: id.clone(),
                host: host.id.clone(),
                first_seen_ns: host.clock(at),
                data: NodeData::File {
                    dev: DEV,
                    ino: 100_000 + self.next_ino,
                    paths: vec![path.to_owned()],
                    untrusted,
                    executable,
                    sha256,
                },
            },
        );
        id
    }

    fn process(&mut self, host: &SimHost, exe: &str, uid: u32, tainted: bool, at: u64) -> String {
        self.next_tgid += 1;
        let tgid = 1000 + self.next_tgid;
        let ticks = (at.saturating_sub(host.boot_ns)) / (NS_PER_SEC / CLOCK_TICKS_PER_SEC);
        let id = process_node_id(&host.id, tgid, ticks);
        let comm: String = exe
            .rsplit('/')
            .next()
            .unwrap_or(exe)
            .chars()
            .take(15)
            .collect();
        self.nodes.insert(
            id.clone(),
            Node {
                id: id.clone(),
                host: host.id.clone(),
                first_seen_ns: host.clock(at),
                data: NodeData::Process {
                    tgid,
                    start_ticks: ticks,
                    exe: exe.to_owned(),
                    comm,
                    uid,
                    tainted,
                },
            },
        );
        id
    }

    fn remote(&mut self, ip: &str, sim_host: Option<usize>) -> String {
        self.remotes.insert(ip.to_owned(), sim_host);
        remote_node_id(ip)
    }

    fn edge(&mut self, host: &SimHost, at: u64, src: &str, dst: &str, data: EdgeData) {
        self.edges.push(Edge {
            ts_ns: host.clock(at),
            src: src.to_owned(),
            dst: dst.to_owned(),
            host: host.id.clone(),
            data,
        });
    }

    fn base(&mut self, host: &SimHost) -> BaseProcesses {
        if let Some(base) = &self.base {
            return base.clone();
        }
        let boot = host.boot_ns;
        let mut binaries = Vec::new();
        for path in [
            "/usr/bin/bash",
            "/usr/bin/sh",
            "/usr/bin/python3",
            "/usr/bin/tar",
            "/usr/bin/rsync",
            "/usr/sbin/logrotate",
            "/usr/bin/find",
            "/usr/bin/gzip",
        ] {
            // Same distribution everywhere: a trusted binary has the same hash on every host.
            let sha = hex(&path.bytes().cycle().take(32).collect::<Vec<_>>());
            binaries.push((
                self.file(host, path, false, true, Some(sha), boot),
                path.to_owned(),
            ));
        }
        let systemd = self.process(host, "/usr/lib/systemd/systemd", 0, false, boot);
        let daemon = |log: &mut HostLog, exe: &str, uid: u32| {
            let p = log.process(host, exe, uid, false, boot + 2 * NS_PER_SEC);
            log.edge(host, boot + 2 * NS_PER_SEC, &systemd, &p, EdgeData::Fork(NoAttrs {}));
            p
        };
        let base = BaseProcesses {
            cron: daemon(self, "/usr/sbin/cron", 0),
            smbd: daemon(self, "/usr/sbin/smbd", 0),
            ftpd: daemon(self, "/usr/sbin/vsftpd", 0),
            admin_shell: daemon(self, "/usr/bin/bash", 0),
            binaries,
        };
        self.base = Some(base.clone());
        base
    }
}

/// A `received_from` from `ip`: what a receiving sensor records (protocol, name sent).
fn transfer_from(ip: &str, protocol: Protocol, name: &str) -> EdgeData {
    EdgeData::ReceivedFrom(TransferAttrs { name: Some(name.to_owned()), ..TransferAttrs::new(ip, protocol) })
}

/// A `sent_to` to `ip`.
fn transfer_to(ip: &str, protocol: Protocol, name: &str) -> EdgeData {
    EdgeData::SentTo(TransferAttrs { name: Some(name.to_owned()), ..TransferAttrs::new(ip, protocol) })
}

/// The `chmod +x` before a run.
fn executable_mode() -> ChmodAttrs {
    ChmodAttrs { mode: "755".into(), executable: true, ..Default::default() }
}

/// An operator's relabel by the admin's shell.
fn relabel(to: Trust) -> EdgeData {
    EdgeData::Relabel(RelabelAttrs { to, by: "root(uid 0)".into(), path: None })
}

/// What happens on the wire: recorded as `sent_to` on the sender and `received_from` on the receiver.
struct Transfer {
    from: Option<usize>,
    to: usize,
    sent_at: u64,
    received_at: u64,
    protocol: Protocol,
    name: String,
    worm: bool,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrive {
        transfer: usize,
    },
    Execute {
        host: usize,
        file: String,
        path: String,
        sender: Option<usize>,
    },
}

pub fn simulate(config: &SimConfig) -> std::io::Result<Truth> {
    let n = config.hosts.max(1);
    let mut rng = Rng::new(config.seed);
    let adjacency = network(config.shape, n, &mut rng);
    let worm_sha = rng.sha();
    let hosts: Vec<SimHost> = (0..n)
        .map(|i| SimHost {
            id: format!("disk-{:016x}", rng.next_u64()),
            hostname: format!("fs-{i:04}"),
            ip: format!(
                "10.{}.{}.{}",
                (i + 1) >> 16 & 255,
                (i + 1) >> 8 & 255,
                (i + 1) & 255
            ),
            skew_ns: rng.range(0, 800) as i64 * MS as i64 - 400 * MS as i64,
            vulnerable: rng.chance(0.85),
            boot_ns: EPOCH_NS - rng.range(3600, 30 * 86_400) * NS_PER_SEC,
        })
        .collect();
    let patient_zero = rng.below(n as u64) as usize;
    let mut hosts = hosts;
    hosts[patient_zero].vulnerable = true; // the incident starts with an execution
    let mut logs: Vec<HostLog> = (0..n).map(|_| HostLog::default()).collect();
    let mut transfers: Vec<Transfer> = Vec::new();
    let mut queue: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
    let mut sequence = 0u64;
    let mut push = |queue: &mut BinaryHeap<_>, at: u64, event: Event| {
        sequence += 1;
        queue.push(Reverse((at, sequence, event)));
    };

    // The worm enters from outside at patient zero.
    transfers.push(Transfer {
        from: None,
        to: patient_zero,
        sent_at: WORM_START_NS,
        received_at: WORM_START_NS,
        protocol: Protocol::Ftp,
        name: "invoice-2023-11.pdf.sh".to_owned(),
        worm: true,
    });
    push(&mut queue, WORM_START_NS, Event::Arrive { transfer: 0 });

    let mut infected_at: Vec<Option<u64>> = vec![None; n];
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let mut last_execution: Vec<u64> = vec![0; n];
    let mut worm_copy: Vec<Option<String>> = vec![None; n];
    let mut end_ns = WORM_START_NS;

    while let Some(Reverse((at, _, event))) = queue.pop() {
        end_ns = end_ns.max(at);
        match event {
            Event::Arrive { transfer } => {
                let t = &transfers[transfer];
                let to = t.to;
                let host = &hosts[to];
                let directory = if t.protocol == Protocol::Smb2 {
                    "/srv/samba/share"
                } else {
                    "/srv/ftp/incoming"
                };
                let path = format!("{directory}/{}", t.name);
                let sha = if t.worm {
                    Some(worm_sha.clone())
                } else {
                    Some(rng.sha())
                };
                let log = &mut logs[to];
                let file = log.file(host, &path, true, false, sha, t.received_at);
                let from_ip = t
                    .from
                    .map_or(OUTSIDE_WORM_IP.to_owned(), |f| hosts[f].ip.clone());
                let remote = log.remote(&from_ip, t.from);
                log.edge(host, t.received_at, &remote, &file, transfer_from(&from_ip, t.protocol, &t.name));
                if let Some(from) = t.from {
                    let sender = &hosts[from];
                    let source = if t.worm {
                        worm_copy[from].clone().unwrap_or_default()
                    } else {
                        let doc = format!("/srv/samba/share/docs/{}", t.name);
                        logs[from].file(
                            sender,
                            &doc,
                            false,
                            false,
                            Some(rng.sha()),
                            t.sent_at - 3600 * NS_PER_SEC,
                        )
                    };
                    let remote = logs[from].remote(&host.ip, Some(to));
                    logs[from].edge(sender, t.sent_at, &source, &remote, transfer_to(&host.ip, t.protocol, &t.name));
                }
                let already = infected_at[to].is_some();
                if t.worm && host.vulnerable && (!already || rng.chance(0.5)) {
                    // Copies run in arrival order: the trigger (share scan, ftp hook) is a queue.
                    let run_at = (t.received_at + rng.range(20, 120) * NS_PER_SEC)
                        .max(last_execution[to] + NS_PER_SEC);
                    last_execution[to] = run_at;
                    push(
                        &mut queue,
                        run_at,
                        Event::Execute {
                            host: to,
                            file,
                            path,
                            sender: t.from,
                        },
                    );
                }
            }
            Event::Execute {
                host: h,
                file,
                path,
                sender,
            } => {
                let host = &hosts[h];
                let log = &mut logs[h];
                let base = log.base(host);
                let trigger = match sender {
                    None => &base.admin_shell,
                    Some(_) if rng.chance(0.5) => &base.smbd,
                    Some(_) => &base.ftpd,
                };
                log.edge(host, at - 2 * MS, trigger, &file, EdgeData::Chmod(executable_mode()));
                let worm = log.process(host, &path, 0, true, at - MS);
                log.edge(host, at - MS, trigger, &worm, EdgeData::Fork(NoAttrs {}));
                log.edge(host, at, &file, &worm, EdgeData::Exec(ExecAttrs::default()));
                if infected_at[h].is_some() {
                    continue; // a re-run: the running copy's mutex makes it exit at once
                }
                infected_at[h] = Some(at);
                parent[h] = sender;
                worm_behaviour(
                    host,
                    log,
                    &worm,
                    &base,
                    at,
                    &worm_sha,
                    &mut rng,
                    &mut worm_copy[h],
                );
                // Spread to neighbours, one upload each, spaced out.
                let mut next = at + 30 * NS_PER_SEC;
                let mut targets = adjacency[h].clone();
                shuffle(&mut targets, &mut rng);
                for target in targets {
                    if !rng.chance(0.8) {
                        continue;
                    }
                    let smb = rng.chance(0.5);
                    let sent_at = next;
                    transfers.push(Transfer {
                        from: Some(h),
                        to: target,
                        sent_at,
                        received_at: sent_at + rng.range(20, 300) * MS,
                        protocol: if smb { Protocol::Smb2 } else { Protocol::Ftp },
                        name: if smb {
                            "quarterly-report.pdf.sh".to_owned()
                        } else {
                            "update.bin".to_owned()
                        },
                        worm: true,
                    });
                    push(
                        &mut queue,
                        transfers[transfers.len() - 1].received_at,
                        Event::Arrive {
                            transfer: transfers.len() - 1,
                        },
                    );
                    next += 5 * NS_PER_SEC + rng.exp_ns(60.0);
                }
            }
        }
    }

    let horizon = end_ns.max(EPOCH_NS + 7200 * NS_PER_SEC) + 600 * NS_PER_SEC;
    benign_incidents(&hosts, &adjacency, &mut logs, &mut rng, horizon);
    let resolved = dns_resolution(&hosts, &logs, &mut rng);

    std::fs::create_dir_all(&config.out)?;
    let incident_edges: u64 = logs.iter().map(|l| l.edges.len() as u64).sum();
    let bulk_per_host = config.target_edges.saturating_sub(incident_edges) / n as u64;
    let mut edges_written = 0;
    let mut dumps = Vec::new();
    for (i, mut log) in logs.into_iter().enumerate() {
        let host = &hosts[i];
        let mut host_rng = Rng::new(config.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        background(host, &mut log, &mut host_rng, bulk_per_host, horizon);
        let name = format!(
            "{}.jsonl{}",
            host.hostname,
            if config.gzip { ".gz" } else { "" }
        );
        edges_written += write_dump(
            &config.out.join(&name),
            host,
            &mut log,
            &hosts,
            &resolved,
            horizon,
            config.gzip,
        )?;
        dumps.push(name);
    }

    let truth = Truth {
        seed: config.seed,
        shape: match config.shape {
            Shape::ScaleFree => "scale-free".into(),
            Shape::SmallWorld => "small-world".into(),
        },
        patient_zero: vec![hosts[patient_zero].id.clone()],
        worm_sha256: worm_sha,
        worm_entry_ip: OUTSIDE_WORM_IP.to_owned(),
        infected: infected_at.iter().filter(|t| t.is_some()).count(),
        edges_written,
        dumps,
        hosts: hosts
            .iter()
            .enumerate()
            .map(|(i, h)| TruthHost {
                id: h.id.clone(),
                hostname: h.hostname.clone(),
                ip: h.ip.clone(),
                vulnerable: h.vulnerable,
                clock_skew_ns: h.skew_ns,
                infected: infected_at[i].is_some(),
                infected_at_ns: infected_at[i].map(|t| h.clock(t)),
                parent: parent[i].map(|p| hosts[p].id.clone()),
                neighbours: adjacency[i].iter().map(|&j| hosts[j].id.clone()).collect(),
            })
            .collect(),
    };
    let file = File::create(config.out.join("truth.json"))?;
    serde_json::to_writer_pretty(BufWriter::new(file), &truth)?;
    Ok(truth)
}

#[allow(clippy::too_many_arguments)]
fn worm_behaviour(
    host: &SimHost,
    log: &mut HostLog,
    worm: &str,
    base: &BaseProcesses,
    at: u64,
    worm_sha: &str,
    rng: &mut Rng,
    copy: &mut Option<String>,
) {
    let cron_file = log.file(
        host,
        "/etc/cron.d/sysupdate",
        false,
        false,
        None,
        at + 2 * NS_PER_SEC,
    );
    let persist = FileWriteAttrs { activation_point: Some("cron".into()), severity: Some(Severity::High), ..Default::default() };
    log.edge(host, at + 2 * NS_PER_SEC, worm, &cron_file, EdgeData::Create(persist.clone()));
    log.edge(host, at + 2 * NS_PER_SEC + MS, worm, &cron_file, EdgeData::Write(persist.clone()));
    if rng.chance(0.5) {
        let rc = log.file(host, "/root/.bashrc", false, false, None, host.boot_ns);
        let attrs = FileWriteAttrs { activation_point: Some("shell-rc".into()), severity: Some(Severity::High), ..Default::default() };
        log.edge(host, at + 2500 * MS, worm, &rc, EdgeData::Write(attrs));
    }
    let copy_id = log.file(
        host,
        "/var/tmp/.sysupdate",
        true,
        true,
        Some(worm_sha.to_owned()),
        at + 3 * NS_PER_SEC,
    );
    log.edge(host, at + 3 * NS_PER_SEC, worm, &copy_id, EdgeData::Create(FileWriteAttrs::default()));
    log.edge(host, at + 3 * NS_PER_SEC + MS, worm, &copy_id, EdgeData::Write(FileWriteAttrs::default()));
    log.edge(host, at + 3 * NS_PER_SEC + 2 * MS, worm, &copy_id, EdgeData::Chmod(executable_mode()));
    *copy = Some(copy_id);
    // A shell child that collects host information.
    let child = log.process(host, "/usr/bin/sh", 0, true, at + 4 * NS_PER_SEC);
    log.edge(host, at + 4 * NS_PER_SEC, worm, &child, EdgeData::Fork(NoAttrs {}));
    let sh = base
        .binaries
        .iter()
        .find(|b| b.1 == "/usr/bin/sh")
        .map(|b| b.0.clone())
        .unwrap_or_default();
    log.edge(host, at + 4 * NS_PER_SEC + MS, &sh, &child, EdgeData::Exec(ExecAttrs::default()));
    let loot = log.file(
        host,
        "/tmp/.hostinfo",
        true,
        false,
        None,
        at + 5 * NS_PER_SEC,
    );
    log.edge(host, at + 5 * NS_PER_SEC, &child, &loot, EdgeData::Create(FileWriteAttrs::default()));
}

fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// Benign transfers, untrusted downloads never run, a relabeled-and-run installer, relabels.
fn benign_incidents(
    hosts: &[SimHost],
    adjacency: &[Vec<usize>],
    logs: &mut [HostLog],
    rng: &mut Rng,
    horizon: u64,
) {
    let n = hosts.len();
    for from in 0..n {
        for k in 0..3 {
            let Some(&to) =
                adjacency[from].get(rng.below(adjacency[from].len().max(1) as u64) as usize)
            else {
                continue;
            };
            let sent_at =
                EPOCH_NS + rng.range(60, (horizon - EPOCH_NS) / NS_PER_SEC - 60) * NS_PER_SEC;
            let received_at = sent_at + rng.range(20, 300) * MS;
            let (sender, receiver) = (&hosts[from], &hosts[to]);
            let name = format!("report-{from}-{k}.pdf");
            let protocol = if rng.chance(0.5) { Protocol::Smb2 } else { Protocol::Ftp };
            let doc = logs[from].file(
                sender,
                &format!("/srv/samba/share/docs/{name}"),
                false,
                false,
                Some(rng.sha()),
                EPOCH_NS,
            );
            let remote = logs[from].remote(&receiver.ip, Some(to));
            logs[from].edge(sender, sent_at, &doc, &remote, transfer_to(&receiver.ip, protocol, &name));
            let copy = logs[to].file(
                receiver,
                &format!("/srv/samba/share/{name}"),
                true,
                false,
                Some(rng.sha()),
                received_at,
            );
            let remote = logs[to].remote(&sender.ip, Some(from));
            logs[to].edge(receiver, received_at, &remote, &copy, transfer_from(&sender.ip, protocol, &name));
        }
    }
    for (i, host) in hosts.iter().enumerate() {
        let log = &mut logs[i];
        let base = log.base(host);
        // An untrusted download that nobody runs.
        let at = EPOCH_NS + rng.range(60, 7000) * NS_PER_SEC;
        let download = log.file(
            host,
            &format!("/root/Downloads/tool-{i}.tar.gz"),
            true,
            false,
            Some(rng.sha()),
            at,
        );
        let remote = log.remote(OUTSIDE_DOWNLOAD_IP, None);
        log.edge(host, at, &remote, &download, transfer_from(OUTSIDE_DOWNLOAD_IP, Protocol::Http, &format!("tool-{i}.tar.gz")));
        if i % 5 == 0 {
            // An installer the admin vouches for, then runs: not an infection.
            let at = EPOCH_NS + rng.range(60, 7000) * NS_PER_SEC;
            let installer = log.file(
                host,
                "/root/Downloads/agent-installer.sh",
                true,
                false,
                Some(rng.sha()),
                at,
            );
            log.edge(host, at, &remote, &installer, transfer_from(OUTSIDE_DOWNLOAD_IP, Protocol::Http, "agent-installer.sh"));
            log.edge(host, at + 30 * NS_PER_SEC, &base.admin_shell, &installer, relabel(Trust::Trusted));
            let run = log.process(host, "/usr/bin/sh", 0, false, at + 40 * NS_PER_SEC);
            log.edge(host, at + 40 * NS_PER_SEC, &base.admin_shell, &run, EdgeData::Fork(NoAttrs {}));
            log.edge(host, at + 40 * NS_PER_SEC + MS, &installer, &run, EdgeData::Read(ReadAttrs::default()));
            let agent = log.file(
                host,
                "/opt/agent/agent.conf",
                false,
                false,
                None,
                at + 41 * NS_PER_SEC,
            );
            log.edge(host, at + 41 * NS_PER_SEC, &run, &agent, EdgeData::Create(FileWriteAttrs::default()));
        }
        if i % 7 == 3 {
            // A file the admin distrusts by hand but never runs; and one from a USB stick.
            let at = EPOCH_NS + rng.range(60, 7000) * NS_PER_SEC;
            let odd = log.file(
                host,
                "/srv/samba/share/old-macro.xlsm",
                false,
                false,
                Some(rng.sha()),
                EPOCH_NS,
            );
            log.edge(host, at, &base.admin_shell, &odd, relabel(Trust::Untrusted));
            log.file(
                host,
                "/media/usb/photos.zip",
                true,
                false,
                Some(rng.sha()),
                at,
            );
        }
    }
}

/// Which (recorder, address) pairs got a node id from DNS: 3 in 4, and every simulated host's
/// address by at least one recorder.
fn dns_resolution(hosts: &[SimHost], logs: &[HostLog], rng: &mut Rng) -> HashSet<(usize, usize)> {
    let mut resolved = HashSet::new();
    let mut by_target: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (recorder, log) in logs.iter().enumerate() {
        for target in log.remotes.values().flatten() {
            by_target.entry(*target).or_default().push(recorder);
        }
    }
    for (target, recorders) in by_target {
        let before = resolved.len();
        for &recorder in &recorders {
            if rng.below(4) != 0 {
                resolved.insert((recorder, target));
            }
        }
        if resolved.len() == before {
            resolved.insert((recorders[0], target));
        }
    }
    let _ = hosts;
    resolved
}

/// Cron jobs running trusted binaries that append to logs: the bulk of a real graph.
fn background(host: &SimHost, log: &mut HostLog, rng: &mut Rng, budget: u64, horizon: u64) {
    let base = log.base(host);
    let logs: Vec<String> = (0..12)
        .map(|k| {
            log.file(
                host,
                &format!("/var/log/job-{k}.log"),
                false,
                false,
                None,
                host.boot_ns,
            )
        })
        .collect();
    let mut spent = 0u64;
    let span = (horizon - EPOCH_NS) / NS_PER_SEC;
    while spent < budget {
        let start = EPOCH_NS + rng.below(span) * NS_PER_SEC + rng.below(1000) * MS;
        let (binary, path) = &base.binaries[rng.below(base.binaries.len() as u64) as usize];
        let job = log.process(host, path, 0, false, start);
        log.edge(host, start, &base.cron, &job, EdgeData::Fork(NoAttrs {}));
        log.edge(host, start + MS, binary, &job, EdgeData::Exec(ExecAttrs::default()));
        let target = &logs[rng.below(logs.len() as u64) as usize];
        let writes = rng
            .range(5, 60)
            .min(budget.saturating_sub(spent + 2).max(1));
        for w in 0..writes {
            log.edge(host, start + (w + 2) * 10 * MS, &job, target, EdgeData::Write(FileWriteAttrs::default()));
        }
        spent += 2 + writes;
    }
}

fn write_dump(
    path: &Path,
    host: &SimHost,
    log: &mut HostLog,
    hosts: &[SimHost],
    resolved: &HashSet<(usize, usize)>,
    horizon: u64,
    gzip: bool,
) -> std::io::Result<u64> {
    let file = File::create(path)?;
    let mut out: Box<dyn Write> = if gzip {
        Box::new(BufWriter::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        )))
    } else {
        Box::new(BufWriter::with_capacity(1 << 16, file))
    };
    let me = hosts.iter().position(|h| h.id == host.id).unwrap_or(0);
    let header = DumpHeader {
        format: DUMP_FORMAT.to_owned(),
        schema_version: SCHEMA_VERSION,
        host: HostInfo {
            id: host.id.clone(),
            hostname: host.hostname.clone(),
            disk_ids: vec![host.id.clone()],
        },
        exported_ns: host.clock(horizon),
        since_ns: None,
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let host_node = Node {
        id: host_node_id(&host.id),
        host: host.id.clone(),
        first_seen_ns: host.boot_ns,
        data: NodeData::Host {
            hostname: host.hostname.clone(),
            disk_ids: vec![host.id.clone()],
        },
    };
    let remote_nodes = log.remotes.iter().map(|(ip, target)| Node {
        id: remote_node_id(ip),
        host: host.id.clone(),
        first_seen_ns: host.clock(EPOCH_NS),
        data: NodeData::Remote {
            ip: ip.clone(),
            node_ids: target
                .filter(|&t| resolved.contains(&(me, t)))
                .map(|t| vec![hosts[t].id.clone()])
                .unwrap_or_default(),
        },
    });
    let nodes = std::mem::take(&mut log.nodes);
    for node in std::iter::once(host_node)
        .chain(remote_nodes)
        .chain(nodes.into_values())
    {
        serde_json::to_writer(&mut out, &DumpLine::Node(node))?;
        out.write_all(b"\n")?;
    }
    let mut edges = std::mem::take(&mut log.edges);
    edges.sort_by_key(|e| e.ts_ns);
    for edge in &edges {
        serde_json::to_writer(&mut out, &DumpLine::Edge(edge.clone()))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(edges.len() as u64)
}
