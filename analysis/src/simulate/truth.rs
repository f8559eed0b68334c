//! `truth.json`: what really happened, to check the analysis against.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::outbreak::Outbreak;
use super::topology::SimHost;
use super::{OUTSIDE_WORM_IP, SimConfig};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TruthHost {
    pub id: String,
    pub hostname: String,
    pub ip: String,
    pub vulnerable: bool,
    pub clock_skew_ns: i64,
    pub infected: bool,
    /// First execution of the worm, on this host's (skewed) clock, as the sensor records it.
    pub infected_at_ns: Option<u64>,
    /// Host id of the sender of the copy that infected it, or for a carrier of the earliest
    /// copy it received (as `spread` reports both); `None` for patient zero and for hosts
    /// no copy reached.
    pub parent: Option<String>,
    /// Received at least one copy of the worm and never executed it (not vulnerable).
    #[serde(default)]
    pub carrier: bool,
    pub neighbours: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Truth {
    pub seed: u64,
    pub shape: String,
    pub patient_zero: Vec<String>,
    pub worm_sha256: String,
    pub worm_entry_ip: String,
    pub infected: usize,
    /// Hosts with `carrier` set.
    #[serde(default)]
    pub carriers: usize,
    pub edges_written: u64,
    pub dumps: Vec<String>,
    pub hosts: Vec<TruthHost>,
}

impl Truth {
    pub(super) fn new(
        config: &SimConfig,
        hosts: &[SimHost],
        adjacency: &[Vec<usize>],
        outbreak: Outbreak,
        dumps: Vec<String>,
        edges_written: u64,
    ) -> Self {
        let Outbreak {
            patient_zero,
            worm_sha,
            infected_at,
            parent,
            carrier,
            ..
        } = outbreak;
        Truth {
            seed: config.seed,
            shape: config.shape.name().into(),
            patient_zero: vec![hosts[patient_zero].id.clone()],
            worm_sha256: worm_sha,
            worm_entry_ip: OUTSIDE_WORM_IP.to_owned(),
            infected: infected_at.iter().filter(|t| t.is_some()).count(),
            carriers: carrier.iter().filter(|&&c| c).count(),
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
                    carrier: carrier[i],
                    neighbours: adjacency[i].iter().map(|&j| hosts[j].id.clone()).collect(),
                })
                .collect(),
        }
    }

    /// Writes `truth.json` into `dir`.
    pub(super) fn write(&self, dir: &Path) -> std::io::Result<()> {
        let file = File::create(dir.join("truth.json"))?;
        serde_json::to_writer_pretty(BufWriter::new(file), self)?;
        Ok(())
    }
}
