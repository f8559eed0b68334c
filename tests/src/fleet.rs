//! The fleet's central side for tests and benchmarks: PostgreSQL migrated by
//! `vtrail-collect`, a nats-server whose accounts come from `vtrail-collect nats-config`,
//! and a running collector.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    peers::{nats::Nats, postgres::Postgres},
    sensor::{Graph, RunningSensor, bin_dir},
};

pub fn tool(name: &str) -> PathBuf {
    let bin = bin_dir().join(name);
    assert!(bin.exists(), "{} not found: build the workspace first (`cargo xtask test` does)", bin.display());
    bin
}

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
    pub collector: Option<Child>,
}

impl Central {
    pub fn start(dir: &Path, hosts: &[&str]) -> Self {
        let pg = Postgres::start(dir, "central");
        run_ok(Command::new(tool("vtrail-collect")).args(["migrate", "--db", &pg.url()]));
        let keys = dir.join("nats-keys");
        let mut cmd = Command::new(tool("vtrail-collect"));
        cmd.args(["nats-config", "--out"]).arg(&keys);
        for h in hosts {
            cmd.args(["--host", h]);
        }
        run_ok(&mut cmd);
        let accounts = std::fs::read_to_string(keys.join("accounts.conf")).expect("nats-config wrote accounts.conf");
        let nats = Nats::start(dir, "central", &accounts);
        let mut central = Self { dir: dir.into(), pg, nats, keys, collector: None };
        central.start_collector();
        central
    }

    pub fn start_collector(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("collector.log")).unwrap();
        let child = Command::new(tool("vtrail-collect"))
            .args(["run", "--nats", &self.nats.url(), "--db", &self.pg.url(), "--nkey"])
            .arg(self.keys.join("collector.nk"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn vtrail-collect run");
        self.collector = Some(child);
    }

    pub fn collector_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("collector.log")).unwrap_or_default()
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

impl Drop for Central {
    fn drop(&mut self) {
        if let Some(mut c) = self.collector.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

