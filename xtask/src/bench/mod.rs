//! `cargo xtask bench`: every benchmark prints a ratio against a baseline measured in the
//! same run on the same machine. Sensor overhead runs alternate off/on rounds and take the
//! median of each, so a slow moment of the machine does not land on one side only.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{capture, cargo, run, target_dir};

mod ingest;
mod scan;

/// The sections `cargo xtask bench --only NAME` runs alone.
pub const SECTIONS: [&str; 8] = ["overhead", "ingest", "scan", "analysis", "naming", "tc", "fleet", "replay"];

const ROUNDS: usize = 8;
const WRITES: u64 = 1_000_000;
const FORKEXECS: u64 = 5_000;

struct Row {
    name: String,
    off: String,
    on: String,
    ratio: String,
    target: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `[min-max]` of the rounds, printed beside a median.
fn spread(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("[{min:.2}-{max:.2}]")
}

struct Sensor {
    child: Child,
    config: PathBuf,
    bin: PathBuf,
    kernel_state: PathBuf,
}

impl Sensor {
    fn start(bin: &Path, dir: &Path, extra: &str) -> Result<Self> {
        let config = dir.join("bench.toml");
        // Its own pinned kernel state, removed when it stops: each round starts clean, and
        // a production sensor's pins are not touched.
        let kernel_state = PathBuf::from(format!("/sys/fs/bpf/vtrail-bench-{}", std::process::id()));
        std::fs::write(
            &config,
            format!("database = \"{0}/db\"\nsocket = \"{0}/s.sock\"\nkernel_state = \"{1}\"\n{extra}\n", dir.display(), kernel_state.display()),
        )?;
        let log = std::fs::File::create(dir.join("sensor.log"))?;
        let child = Command::new(bin).arg("--config").arg(&config).arg("run").stdout(Stdio::null()).stderr(log).spawn()?;
        let sensor = Self { child, config, bin: bin.into(), kernel_state };
        let deadline = Instant::now() + Duration::from_secs(30);
        while sensor.cli(&["status", "--json"]).is_err() {
            if Instant::now() > deadline {
                bail!("sensor did not start; see {}/sensor.log", dir.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(sensor)
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn cli(&self, args: &[&str]) -> Result<String> {
        capture(Command::new(&self.bin).arg("--config").arg(&self.config).args(args))
    }
    fn status(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.cli(&["status", "--json"])?)?)
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.kernel_state);
    }
}

fn workload(bin: &Path, args: &[&str]) -> Result<f64> {
    let out = capture(Command::new(bin).args(args))?;
    out.trim().parse().with_context(|| format!("workload printed {out:?}"))
}

/// Writes and fork+exec of untainted and tainted processes, sensor off vs on.
fn overhead(release: &Path, dir: &Path, tainted: &Path) -> Result<()> {
    let sensor_bin = release.join("vtrail-sensor");
    let workload_bin = release.join("vtrail-workload");
    let out_file = dir.join("writes.out");
    let out = out_file.to_str().unwrap();
    let w = WRITES.to_string();
    let f = FORKEXECS.to_string();
    let mut rows = Vec::new();

    eprintln!("bench: writes (untainted, tainted) and fork+exec, sensor off vs on ({ROUNDS} alternating rounds)");
    let (mut w_off, mut w_on, mut fe_off, mut fe_on) = (vec![], vec![], vec![], vec![]);
    let (mut p_off, mut p_on, mut t_on) = (vec![], vec![], vec![]);
    let tainted_s = tainted.to_str().context("bench path")?;
    // Off and on alternate, and so does which of them goes first in a round: on this
    // noisy 2-vCPU VM a fixed order showed up as a few percent either way by itself.
    for round in 0..ROUNDS {
        for on in [round % 2 == 1, round % 2 == 0] {
            if !on {
                w_off.push(workload(&workload_bin, &["writes", &w, out])?);
                p_off.push(workload(&workload_bin, &["writes", &w, out, "4096"])?);
                fe_off.push(workload(&workload_bin, &["forkexec", &f, "/bin/true"])?);
                continue;
            }
            let sensor = Sensor::start(&sensor_bin, dir, "")?;
            sensor.cli(&["taint", tainted_s])?;
            // Let start-up work (the /proc scan, map rebuild) finish before timing.
            std::thread::sleep(Duration::from_secs(2));
            w_on.push(workload(&workload_bin, &["writes", &w, out])?);
            t_on.push(workload(tainted, &["writes", &w, out])?);
            p_on.push(workload(&workload_bin, &["writes", &w, out, "4096"])?);
            fe_on.push(workload(&workload_bin, &["forkexec", &f, "/bin/true"])?);
            drop(sensor);
            let _ = std::fs::remove_dir_all(dir.join("db"));
        }
    }
    let push = |rows: &mut Vec<Row>, name: &str, off: f64, on: f64, target: &str| {
        rows.push(Row {
            name: name.into(),
            off: format!("{off:.3} s"),
            on: format!("{on:.3} s"),
            ratio: format!("{:.3} ({:+.1} %)", on / off, (on / off - 1.0) * 100.0),
            target: target.into(),
        })
    };
    push(&mut rows, &format!("{WRITES} writes, untainted"), median(w_off.clone()), median(w_on), "<= 3 %");
    push(&mut rows, &format!("{WRITES} writes of 4 KiB, untainted"), median(p_off), median(p_on), "context");
    push(&mut rows, &format!("{FORKEXECS} fork+exec /bin/true"), median(fe_off), median(fe_on), "<= 5 %");

    push(&mut rows, &format!("{WRITES} writes, tainted process"), median(w_off.clone()), median(t_on), "report");

    println!("\n| benchmark | sensor off | sensor on | on/off | target |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!("| {} | {} | {} | {} | {} |", r.name, r.off, r.on, r.ratio, r.target);
    }

    Ok(())
}

/// Every section, or only `only`.
pub fn run_benches(only: Option<&str>) -> Result<()> {
    if let Some(name) = only
        && !SECTIONS.contains(&name)
    {
        bail!("no bench section {name:?}; there are: {}", SECTIONS.join(", "));
    }
    let on = |name: &str| only.is_none_or(|o| o == name);
    let release = target_dir().join("release");
    let dir = std::env::temp_dir().join("vtrail-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // A copy of the workload binary, marked untrusted in each round: runs of it are tainted.
    let tainted = dir.join("tainted-workload");
    std::fs::copy(release.join("vtrail-workload"), &tainted)?;
    if on("overhead") {
        overhead(&release, &dir, &tainted)?;
    }
    if on("ingest") {
        ingest::run(&release.join("vtrail-sensor"), &release.join("vtrail-workload"), &dir, &tainted)?;
    }
    if on("scan") {
        scan::run(&release.join("vtrail-sensor"), &release.join("vtrail-workload"), &dir, &tainted)?;
    }
    if on("analysis") {
    println!("\n## analysis: load and query at 10^5, 10^6, 10^7 edges (1,000 hosts), from dumps and from PostgreSQL (--db)");
        analysis_bench(&release, &dir)?;
    }
    if on("naming") {
        println!("\n## naming: DNS update latency and rate against BIND, IP -> id lookups");
        run(&mut Command::new(release.join("ddns-bench")))?;
    }
    if on("tc") {
        println!("\n## TC classifier: ns per packet (BPF_PROG_TEST_RUN) and iperf3 across a veth, classifier off vs on");
    run(cargo()?.args(["run", "--release", "-q", "-p", "sensor-user", "--example", "tc-bench", "--", "--seconds", "2", "--rounds", "100"]))?;
    }
    if on("fleet") {
        println!("\n## fleet: the sensor with the fleet on vs off, backlog drain, lag; NATS -> collector -> PostgreSQL throughput");
    run(cargo()?.args(["test", "--release", "-q", "-p", "tests", "--test", "fleet_bench", "--", "--ignored", "--nocapture", "--test-threads", "1"]))?;
    }
    if on("replay") {
        println!("\n## replay throughput on the largest public capture");
    run(cargo()?.args(["test", "--release", "-q", "-p", "sensor-user", "--lib", "replay::tests::throughput", "--", "--ignored", "--nocapture"]))?;
    }
    Ok(())
}

/// `vtrail-analysis bench --db`: a private PostgreSQL (`vtrail-peer`, the tests' own peer)
/// for the database side, stopped when its standard input closes.
fn analysis_bench(release: &Path, dir: &Path) -> Result<()> {
    let mut peer = Command::new(release.join("vtrail-peer"))
        .arg("postgres")
        .arg(dir.join("postgres"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting vtrail-peer postgres (built by `cargo xtask bench`)")?;
    let mut url = String::new();
    if let Some(out) = peer.stdout.take() {
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut url)?;
    }
    let result = if url.trim().is_empty() {
        Err(anyhow::anyhow!("vtrail-peer postgres printed no URL"))
    } else {
        run(Command::new(release.join("vtrail-analysis"))
            .args(["bench", "--dir"])
            .arg(dir.join("analysis"))
            .args(["--db", url.trim(), "--collect"])
            .arg(release.join("vtrail-collect")))
    };
    drop(peer.stdin.take());
    let _ = peer.wait();
    result
}
