//! The fleet end to end: the real sensor on this kernel streams its graph to a real
//! nats-server (JetStream, accounts written by `vtrail-collect nats-config`), the real
//! `vtrail-collect` stores it in a real PostgreSQL, and `vtrail-analysis --db` answers
//! from there what it answers from the sensor's own export.
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{
    collector::analysis_bin,
    fleet::{Central, comparable, run_ok, this_host},
    sensor::{RunningSensor, bin_dir, serial, sh, temp_dir},
};

fn port_program_sensor(dir: &Path, extra: &str) -> (RunningSensor, String) {
    std::fs::copy("/usr/bin/cp", dir.join("portcp")).unwrap();
    let d = dir.display().to_string();
    (RunningSensor::start(dir, &format!("port_programs = [\"{d}/portcp\"]\n{extra}")), d)
}

/// `vtrail-analysis <args> --json`, parsed.
fn analysis_json(args: &[&str]) -> Value {
    let out = Command::new(analysis_bin()).args(args).arg("--json").output().unwrap();
    assert!(out.status.code() == Some(0), "vtrail-analysis {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("analysis JSON")
}

#[test]
fn records_reach_the_central_database_and_trace_agrees() {
    let _guard = serial();
    let dir = temp_dir("fleet-e2e");
    let host = this_host();
    let central = Central::start(&dir, &[&host]);
    let (sensor, d) = port_program_sensor(&dir, &central.sensor_toml(&host));
    sh(&format!("{d}/portcp /usr/bin/dash {d}/evil && chmod +x {d}/evil"));
    sh(&format!("{d}/evil -c 'echo payload > {d}/dropped; chmod +x {d}/dropped; cp {d}/evil {d}/evil2'"));
    sensor.wait_for("the tainted writes", |g| g.file(&format!("{d}/evil2")).is_some() && g.file(&format!("{d}/dropped")).is_some());
    let g = central.wait_in_sync(&sensor, &host, Duration::from_secs(30));
    let status = sensor.status();
    assert_eq!(status["fleet"]["connected"], true, "{}", status["fleet"]);
    assert_eq!(status["fleet"]["backlog_records"], 0, "{}", status["fleet"]);
    assert!(central.count(&format!("SELECT count(*) FROM edges WHERE host = '{host}' AND kind = 'exec'")) >= 1);

    // The same question, from the sensor's own export and from the central database.
    let dump = dir.join("export.jsonl");
    std::fs::write(&dump, run_ok(Command::new(tests::sensor::sensor_bin()).arg("--config").arg(&sensor.config).args(["export", "--format", "json"])))
        .unwrap();
    let flagged = format!("{d}/evil");
    let from_dump = analysis_json(&["trace", "--path", &flagged, dump.to_str().unwrap()]);
    let from_db = analysis_json(&["trace", "--path", &flagged, "--db", &central.pg.url()]);
    assert_eq!(comparable(from_db), comparable(from_dump), "trace --db differs from trace on the export ({} edges)", g.edges.len());
}

#[test]
fn nats_outage_and_sensor_restart_lose_nothing() {
    let _guard = serial();
    let dir = temp_dir("fleet-outage");
    let host = this_host();
    let mut central = Central::start(&dir, &[&host]);
    let toml = central.sensor_toml(&host);
    let (sensor, d) = port_program_sensor(&dir, &toml);
    central.wait_in_sync(&sensor, &host, Duration::from_secs(30));

    // The link is cut; a tainted process writes 10,000 files meanwhile.
    let cut = Instant::now();
    central.nats.stop();
    let workload = bin_dir().join("vtrail-workload");
    std::fs::create_dir_all(format!("{d}/out")).unwrap();
    sh(&format!("{d}/portcp {} {d}/worm && chmod +x {d}/worm && {d}/worm creates 10000 {d}/out", workload.display()));
    sensor.wait_for("10,000 creates", |g| g.edges.iter().filter(|e| e["kind"] == "create").count() >= 10_000);
    let fleet = sensor.status()["fleet"].clone();
    assert_eq!(fleet["connected"], false, "{fleet}");
    assert!(fleet["backlog_records"].as_u64().unwrap() >= 20_000, "10,000 files and their creates wait: {fleet}");
    assert!(fleet["problem"].as_str().is_some_and(|p| !p.is_empty()), "status says why: {fleet}");

    // The sensor restarts while the backlog is pending (and the link still down).
    let log = sensor.stop_keeping_kernel_state();
    assert!(log.contains("fleet: link down"), "a log line when the link goes down:\n{log}");
    let sensor = RunningSensor::start(&dir, &format!("port_programs = [\"{d}/portcp\"]\n{toml}"));
    assert!(sensor.status()["fleet"]["backlog_records"].as_u64().unwrap() >= 20_000, "the backlog survived the restart");
    if let Some(rest) = Duration::from_secs(30).checked_sub(cut.elapsed()) {
        std::thread::sleep(rest);
    }
    central.nats.resume();
    let g = central.wait_in_sync(&sensor, &host, Duration::from_secs(120));
    assert!(g.edges.len() >= 10_000);
    // Once each: (host, seq) is the key, and no edge is stored twice under two numbers.
    let distinct = central.count(&format!("SELECT count(DISTINCT (src, dst, kind, ts_ns)) FROM edges WHERE host = '{host}'"));
    let exported: std::collections::BTreeSet<String> =
        g.edges.iter().map(|e| format!("{} {} {} {}", e["src"], e["dst"], e["kind"], e["ts_ns"])).collect();
    assert_eq!(distinct, exported.len() as u64, "every recorded edge arrived once");
    assert!(sensor.log_text().contains("fleet: link up"), "a log line when the link comes back");
}

#[test]
fn credentials_of_another_host_are_refused() {
    let _guard = serial();
    let dir = temp_dir("fleet-perm");
    let host = this_host();
    let central = Central::start(&dir, &[&host, "other-host"]);
    // This sensor uses the key issued to "other-host": it may publish only on other-host's subject.
    let (sensor, _d) = port_program_sensor(&dir, &central.sensor_toml("other-host"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let fleet = loop {
        let fleet = sensor.status()["fleet"].clone();
        if fleet["publish_errors"]["permission_denied"].as_u64().unwrap_or(0) >= 1 {
            break fleet;
        }
        assert!(Instant::now() < deadline, "no permission error counted: {fleet}\n{}", sensor.log_text());
        std::thread::sleep(Duration::from_millis(250));
    };
    let problem = fleet["problem"].as_str().unwrap_or_default();
    let subject = format!("vtrail.graph.{host}");
    assert!(problem.contains("Permissions Violation") && problem.contains(&subject), "a clear reason naming the subject: {fleet}");
    assert!(fleet["backlog_records"].as_u64().unwrap() > 0, "nothing is dropped: {fleet}");
    assert!(sensor.log_text().contains("are not allowed this host's subject"), "{}", sensor.log_text());
    assert_eq!(central.count(&format!("SELECT count(*) FROM edges WHERE host = '{host}'")), 0, "nothing stored under this host");
}
