//! Seeded generator of synthetic incidents in the sensor's own schema (written with the
//! `sensor_common::graph` types, one JSON-lines dump per host), plus `truth.json` with the
//! real propagation tree, patient zero and the carriers (hosts that received the worm and
//! never ran it).
//!
//! The story: a worm arrives at patient zero from outside (FTP), is executed, persists in
//! cron (and sometimes a shell rc file), copies itself to /var/tmp, and uploads that copy to
//! its network neighbours over SMB or FTP (`worm`, `outbreak`). Around it, the noise of
//! ordinary file servers (`noise`). Each host's clock is off by up to ±800 ms (as the
//! outbreak lab's QEMU guests were) and transfers take up to 300 ms, so sends and receives
//! pair up within the default 2 s skew allowance (1.6 s + 300 ms at worst).
//! Some remote addresses are left unresolved, as a failed DNS lookup leaves them (`dump`).
//!
//! Every random choice comes from one seeded `Rng`, drawn in a fixed order: topology, hosts,
//! patient zero, the outbreak, benign noise, DNS, then each host's background from a seed
//! of its own. A seed therefore means the same incident, byte for byte, in every build.

mod dump;
mod host_log;
mod noise;
mod outbreak;
mod rng;
mod topology;
mod truth;
mod worm;

use std::path::PathBuf;

use serde::Serialize;

pub use rng::Rng;
pub use topology::network;
pub use truth::{Truth, TruthHost};

use crate::time::NS_PER_SEC;
use host_log::HostLog;

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

impl Shape {
    /// The name `--shape` takes and `truth.json` records.
    pub fn name(self) -> &'static str {
        match self {
            Shape::ScaleFree => "scale-free",
            Shape::SmallWorld => "small-world",
        }
    }
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Shape::ScaleFree, Shape::SmallWorld]
            .into_iter()
            .find(|shape| shape.name() == s)
            .ok_or_else(|| format!("unknown shape `{s}`: use scale-free or small-world"))
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

/// Writes one incident into `config.out`: a dump per host and `truth.json`.
pub fn simulate(config: &SimConfig) -> std::io::Result<Truth> {
    let n = config.hosts.max(1);
    let mut rng = Rng::new(config.seed);
    let adjacency = network(config.shape, n, &mut rng);
    let worm_sha = rng.sha();
    let mut hosts = topology::hosts(n, &mut rng);
    let patient_zero = rng.below(n as u64) as usize;
    hosts[patient_zero].vulnerable = true; // the incident starts with an execution
    let mut logs: Vec<HostLog> = (0..n).map(|_| HostLog::default()).collect();
    let outbreak = outbreak::run(&hosts, &adjacency, &mut logs, patient_zero, worm_sha, &mut rng);

    let horizon = outbreak.end_ns.max(EPOCH_NS + 7200 * NS_PER_SEC) + 600 * NS_PER_SEC;
    noise::benign_incidents(&hosts, &adjacency, &mut logs, &mut rng, horizon);
    let resolved = dump::dns_resolution(&logs, &mut rng);

    std::fs::create_dir_all(&config.out)?;
    let incident_edges: u64 = logs.iter().map(|l| l.edges.len() as u64).sum();
    let bulk_per_host = config.target_edges.saturating_sub(incident_edges) / n as u64;
    let mut edges_written = 0;
    let mut dumps = Vec::new();
    for (i, mut log) in logs.into_iter().enumerate() {
        let host = &hosts[i];
        let mut host_rng = Rng::new(config.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        noise::background(host, &mut log, &mut host_rng, bulk_per_host, horizon);
        let name = format!(
            "{}.jsonl{}",
            host.hostname,
            if config.gzip { ".gz" } else { "" }
        );
        edges_written += dump::write_dump(
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

    let truth = Truth::new(config, &hosts, &adjacency, outbreak, dumps, edges_written);
    truth.write(&config.out)?;
    Ok(truth)
}
