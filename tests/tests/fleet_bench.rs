//! Fleet benchmarks, run by `cargo xtask bench` (they are `#[ignore]`d in the test suite):
//! what the fleet costs the sensor (on vs off, alternating rounds on the same workloads),
//! how fast a sensor's backlog reaches the central database, and the lag from a record to
//! the moment it can be queried there. Real sensor, nats-server, collector and PostgreSQL.
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use tests::{
    fleet::{Central, this_host},
    sensor::{RunningSensor, bin_dir, serial, temp_dir},
};

const ROUNDS: usize = 5;
const TAINTED_CREATES: u64 = 20_000;
const UNTAINTED_WRITES: u64 = 200_000;
const BACKLOG_CREATES: u64 = 50_000;
const LAG_SAMPLES: usize = 20;

fn workload(bin: &Path, args: &[&str]) -> f64 {
    let out = Command::new(bin).args(args).output().expect("run vtrail-workload");
    assert!(out.status.success(), "{bin:?} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("workload prints seconds")
}

/// Median, and the spread (min..max) of the rounds.
fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn row(name: &str, off: Vec<f64>, on: Vec<f64>, unit: &str) {
    let (off, off_lo, off_hi) = summary(off);
    let (on, on_lo, on_hi) = summary(on);
    println!(
        "| {name} | {off:.3} {unit} ({off_lo:.3}..{off_hi:.3}) | {on:.3} {unit} ({on_lo:.3}..{on_hi:.3}) | {:.3} ({:+.1} %) |",
        on / off,
        (on / off - 1.0) * 100.0
    );
}

/// A sensor on `dir` whose tainted workload is `dir/tainted-workload` (marked by hand).
fn sensor(dir: &Path, extra: &str) -> (RunningSensor, std::path::PathBuf) {
    let tainted = dir.join("tainted-workload");
    std::fs::copy(bin_dir().join("vtrail-workload"), &tainted).unwrap();
    let sensor = RunningSensor::start(dir, &format!("network_monitoring = false\n{extra}"));
    let out = sensor.cli(&["taint", tainted.to_str().unwrap()]);
    assert!(out.status.success(), "taint: {}", String::from_utf8_lossy(&out.stderr));
    // Let start-up work (the /proc scan, the first publish) finish before timing.
    std::thread::sleep(Duration::from_secs(2));
    (sensor, tainted)
}

#[test]
#[ignore = "benchmark: cargo xtask bench"]
fn fleet_costs_and_speeds() {
    let _guard = serial();
    let dir = temp_dir("fleet-bench");
    let host = this_host();
    let central = Central::start(&dir, &[&host]);
    let plain = bin_dir().join("vtrail-workload");
    let (mut creates_off, mut creates_on, mut writes_off, mut writes_on) = (vec![], vec![], vec![], vec![]);
    let (mut rate_off, mut rate_on) = (vec![], vec![]);
    let (n_creates, n_writes) = (TAINTED_CREATES.to_string(), UNTAINTED_WRITES.to_string());
    for round in 0..ROUNDS {
        for on in [round % 2 == 1, round % 2 == 0] {
            let run_dir = dir.join(format!("round{round}-{}", if on { "on" } else { "off" }));
            std::fs::create_dir_all(run_dir.join("out")).unwrap();
            let (sensor, tainted) = sensor(&run_dir, &if on { central.sensor_toml(&host) } else { String::new() });
            let out = run_dir.join("out");
            let secs = workload(&tainted, &["creates", &n_creates, out.to_str().unwrap()]);
            let writes = workload(&plain, &["writes", &n_writes, run_dir.join("w.out").to_str().unwrap()]);
            std::thread::sleep(Duration::from_secs(1));
            let delivered = sensor.status()["events_received"]["create"].as_u64().unwrap_or(0) as f64;
            let (creates, w, rate) = if on { (&mut creates_on, &mut writes_on, &mut rate_on) } else { (&mut creates_off, &mut writes_off, &mut rate_off) };
            creates.push(secs);
            w.push(writes);
            rate.push(delivered / secs);
            drop(sensor);
            let _ = std::fs::remove_dir_all(&run_dir);
        }
    }
    println!("\n## fleet: the sensor with the fleet off vs on ({ROUNDS} alternating rounds; median (min..max))\n");
    println!("| workload | fleet off | fleet on | on/off |");
    println!("|---|---|---|---|");
    row(&format!("tainted process creating {TAINTED_CREATES} files"), creates_off, creates_on, "s");
    row(&format!("{UNTAINTED_WRITES} writes, untainted"), writes_off, writes_on, "s");
    row("create events delivered per second of workload", rate_off, rate_on, "/s");

    // A backlog built while the link is cut, then sent: sensor outbox -> JetStream ->
    // collector -> PostgreSQL, timed until the database holds every record.
    // A central store of its own: the rounds above stored this host's records already.
    drop(central);
    let run_dir = dir.join("drain");
    std::fs::create_dir_all(run_dir.join("out")).unwrap();
    let mut central = Central::start(&run_dir, &[&host]);
    let (sensor, tainted) = sensor(&run_dir, &central.sensor_toml(&host));
    central.wait_in_sync(&sensor, &host, Duration::from_secs(60));
    central.nats.stop();
    workload(&tainted, &["creates", &BACKLOG_CREATES.to_string(), run_dir.join("out").to_str().unwrap()]);
    std::thread::sleep(Duration::from_secs(2));
    let backlog = sensor.status()["fleet"]["backlog_records"].as_u64().unwrap_or(0);
    central.nats.resume();
    let started = Instant::now();
    central.wait_in_sync(&sensor, &host, Duration::from_secs(600));
    let secs = started.elapsed().as_secs_f64();
    println!(
        "\nbacklog of {backlog} records (a tainted process creating {BACKLOG_CREATES} files with the link cut): in PostgreSQL \
         {secs:.2} s after the link came back ({:.0} records/s, reconnect included)",
        backlog as f64 / secs
    );

    // Lag: an operator's relabel (one edge) until it can be queried centrally.
    let mut db = postgres::Client::connect(&central.pg.url(), postgres::NoTls).expect("connect to PostgreSQL");
    let relabels = |db: &mut postgres::Client| -> i64 {
        db.query_one("SELECT count(*) FROM edges WHERE host = $1 AND kind = 'relabel'", &[&host]).unwrap().get(0)
    };
    let mut lags = Vec::new();
    for i in 0..LAG_SAMPLES {
        let file = run_dir.join(format!("lag{i}"));
        std::fs::write(&file, b"x").unwrap();
        let before = relabels(&mut db);
        let t = Instant::now();
        let out = sensor.cli(&["taint", file.to_str().unwrap()]);
        assert!(out.status.success());
        let deadline = t + Duration::from_secs(30);
        while relabels(&mut db) == before {
            assert!(Instant::now() < deadline, "the relabel never reached the database");
            std::thread::sleep(Duration::from_millis(1));
        }
        lags.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (median, lo, hi) = summary(lags.clone());
    lags.sort_by(f64::total_cmp);
    println!(
        "lag from a record to queryable in PostgreSQL ({LAG_SAMPLES} relabels, idle sensor): median {median:.1} ms, \
         p90 {:.1} ms, range {lo:.1}..{hi:.1} ms (the `vtrail-sensor taint` call included)",
        lags[LAG_SAMPLES * 9 / 10]
    );
}

/// NATS -> collector -> PostgreSQL on its own: `vtrail-collect bench` publishes edges of
/// 100 hosts in the wire format as fast as JetStream acknowledges (and, for the lag, at a
/// paced rate below the collector's capacity) into a private server and database.
#[test]
#[ignore = "benchmark: cargo xtask bench"]
fn collector_throughput() {
    let dir = temp_dir("collector-bench");
    let nats = tests::peers::nats::Nats::start(&dir, "bench", "");
    for (run, (edges, rate)) in [("100000", "0"), ("1000000", "0"), ("300000", "20000")].into_iter().enumerate() {
        // A fresh database each run: the figure is for an empty store, as in a new day's partition.
        let pg = tests::peers::postgres::Postgres::start(&dir, &format!("bench-{edges}-{rate}"));
        let out = Command::new(tests::collector::collect_bin())
            .args(["bench", "--nats", &nats.url(), "--db", &pg.url(), "--edges", edges, "--rate", rate])
            // A stream of its own each run: a work-queue stream takes one consumer per subject.
            .args(["--stream", &format!("VTRAIL_BENCH{run}"), "--subject-prefix", &format!("vtrailbench{run}")])
            .output()
            .expect("run vtrail-collect bench");
        assert!(out.status.success(), "vtrail-collect bench: {}", String::from_utf8_lossy(&out.stderr));
        println!("\n### {edges} edges, rate {}\n{}", if rate == "0" { "unpaced".into() } else { format!("{rate}/s") }, String::from_utf8_lossy(&out.stdout));
    }
}
