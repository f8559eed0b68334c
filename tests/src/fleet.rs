//! The fleet's central side for tests and benchmarks: PostgreSQL migrated by
//! `vtrail-collect`, a nats-server whose accounts come from `vtrail-collect nats-config`,
//! and a running collector.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    collector::{Collector, collect_bin},
    peers::{nats::Nats, postgres::Postgres},
    sensor::{Graph, RunningSensor},
};

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This machine's host id, as the sensor names it (its first disk id).
pub fn this_host() -> String {
    sensor_user::daemon::host_info().id
}

/// PostgreSQL, a nats-server whose accounts come from `vtrail-collect nats-config` for
/// `hosts`, and a running collector.
pub struct Central {
    dir: PathBuf,
    pub pg: Postgres,
    pub nats: Nats,
    keys: PathBuf,
    pub collector: Option<Collector>,
}

impl Central {
    pub fn start(dir: &Path, hosts: &[&str]) -> Self {
        Self::start_on(dir, hosts, "127.0.0.1")
    }

    /// As [`Central::start`], with the nats-server listening on `nats_host` (PostgreSQL
    /// and the collector stay on loopback).
    pub fn start_on(dir: &Path, hosts: &[&str], nats_host: &str) -> Self {
        let pg = Postgres::start(dir, "central");
        run_ok(Command::new(collect_bin()).args(["migrate", "--db", &pg.url()]));
        let keys = dir.join("nats-keys");
        let mut cmd = Command::new(collect_bin());
        cmd.args(["nats-config", "--out"]).arg(&keys);
        for h in hosts {
            cmd.args(["--host", h]);
        }
        run_ok(&mut cmd);
        let accounts = std::fs::read_to_string(keys.join("accounts.conf")).expect("nats-config wrote accounts.conf");
        let nats = Nats::start_on(dir, "central", &accounts, nats_host);
        let mut central = Self { dir: dir.into(), pg, nats, keys, collector: None };
        central.start_collector();
        central
    }

    pub fn start_collector(&mut self) {
        let key = self.keys.join("collector.nk");
        self.collector = Some(Collector::start(&self.dir, "central", &self.nats.url(), &self.pg.url(), &["--nkey", key.to_str().unwrap()]));
    }

    pub fn collector_log(&self) -> String {
        self.collector.as_ref().map(Collector::log).unwrap_or_default()
    }

    /// The collector's nkey seed (the JetStream API and its own inbox): what a manager
    /// reading the alerts stream would hold.
    pub fn collector_key(&self) -> PathBuf {
        self.keys.join("collector.nk")
    }

    pub fn host_key(&self, host: &str) -> PathBuf {
        self.keys.join("hosts").join(format!("{}.nk", sensor_common::graph::fleet::subject_token(host)))
    }

    /// Sensor configuration streaming to this central store with `host`'s key.
    pub fn sensor_toml(&self, key_of: &str) -> String {
        format!("[fleet]\nnats_url = [\"{}\"]\ncredentials = \"{}\"\n", self.nats.url(), self.host_key(key_of).display())
    }

    pub fn count(&self, sql: &str) -> u64 {
        self.pg.query(sql).parse().unwrap_or_else(|_| panic!("{sql}: not a count"))
    }

    /// Waits until the central store holds exactly what `sensor` recorded: every edge once,
    /// every node (at its latest state).
    pub fn wait_in_sync(&self, sensor: &RunningSensor, host: &str, limit: Duration) -> Graph {
        let deadline = Instant::now() + limit;
        loop {
            let g = sensor.graph();
            let edges = self.count(&format!("SELECT count(*) FROM edges WHERE host = '{host}'"));
            let nodes = self.count(&format!("SELECT count(*) FROM nodes WHERE host = '{host}'"));
            if edges == g.edges.len() as u64 && nodes == g.nodes.len() as u64 {
                return g;
            }
            assert!(
                Instant::now() < deadline,
                "central store not in sync after {limit:?}: {edges} edges / {nodes} nodes stored, the sensor has {} / {}\n\
                 sensor fleet status: {}\ncollector log:\n{}",
                g.edges.len(),
                g.nodes.len(),
                sensor.status()["fleet"],
                self.collector_log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Load-report fields that differ by nature between the two inputs, left out of the
/// comparison; everything else of the document must be equal:
/// - `inputs`: one summary per dump vs one for the database (paths, per-input counts);
/// - `nodes`, `edges`, `duplicate_edges`, `unknown_nodes`, `index_bytes`: the database
///   walk loads only the part of the graph the answer touches;
/// - `warnings`: the load's own notes (addresses never resolved, hosts missing) are
///   counted over what was loaded, so over that part too;
/// - `load_seconds`: timing;
/// - `database`: what the walk fetched, only there for the database.
pub const DIFFERING_LOAD_FIELDS: [&str; 9] = [
    "inputs",
    "nodes",
    "edges",
    "duplicate_edges",
    "unknown_nodes",
    "index_bytes",
    "warnings",
    "load_seconds",
    "database",
];

/// An analysis `--json` document without the load-report fields that describe the input.
pub fn comparable(mut document: serde_json::Value) -> serde_json::Value {
    let load = document["load"].as_object_mut().expect("a load report");
    for field in DIFFERING_LOAD_FIELDS {
        load.remove(field);
    }
    document
}
