//! A restart forgets nothing and a crash loses nothing acknowledged: the kernel's taint
//! decisions outlive the daemon (pinned maps), and an operator's change is on disk before
//! its "ok". The real sensor, killed with SIGTERM or SIGKILL between two runs.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use tests::sensor::{Graph, RunningSensor, sensor_bin, serial, sh, temp_dir};

fn port_program_config(d: &str, extra: &str) -> String {
    format!("port_programs = [\"{d}/portcp\"]\n{extra}")
}

/// Running `path` (a script: exec'd, then read by its interpreter) tainted the process.
fn running_taints(g: &Graph, path: &str) -> bool {
    let Some(file) = g.file(path) else { return false };
    g.edges
        .iter()
        .filter(|e| e["src"] == file["id"] && (e["kind"] == "exec" || e["kind"] == "read"))
        .filter_map(|e| g.node(e["dst"].as_str()?))
        .any(|p| p["tainted"] == true)
}

/// The graph as the stopped sensor's database holds it (`export` reads it directly).
fn graph_on_disk(config: &Path) -> Graph {
    let out = Command::new(sensor_bin()).arg("--config").arg(config).args(["export", "--format", "json"]).output().unwrap();
    assert!(out.status.success(), "export from the database: {}", String::from_utf8_lossy(&out.stderr));
    Graph::parse(&String::from_utf8_lossy(&out.stdout))
}

/// With a 4 KiB ring buffer most create events of a burst are dropped (counted), yet the
/// kernel marked every file untrusted. After a graceful restart and after a `kill -9`,
/// running one of the files whose event was lost still taints.
#[test]
fn kernel_taint_outlives_the_daemon_even_for_dropped_events() {
    let _guard = serial();
    let dir = temp_dir("ktaint");
    std::fs::copy("/usr/bin/cp", dir.join("portcp")).unwrap();
    let d = dir.display().to_string();
    let extra = "ring_buffer_bytes = 4096";
    let sensor = RunningSensor::start(&dir, &port_program_config(&d, extra));
    std::fs::write(format!("{d}/payload.sh"), "#!/bin/sh\ntrue\n").unwrap();
    const N: usize = 300;
    // The port program writes N scripts while the daemon is stopped: the ring overflows.
    sensor.paused(|| sh(&format!("mkdir {d}/many && i=0; while [ $i -lt {N} ]; do {d}/portcp {d}/payload.sh {d}/many/s$i; i=$((i+1)); done")));
    sh(&format!("chmod +x {d}/many/*"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = sensor.status();
    assert!(status["kernel_drops"]["ringbuf_full.create"].as_u64().unwrap_or(0) > 0, "the 4 KiB ring must overflow: {}", status["kernel_drops"]);
    let untrusted_in_kernel = status["kernel_state"]["untrusted_inodes"].as_u64().unwrap();
    assert!(untrusted_in_kernel >= N as u64, "the kernel marked all {N}: {}", status["kernel_state"]);
    let g = sensor.graph();
    let lost: Vec<String> = (0..N).map(|i| format!("{d}/many/s{i}")).filter(|p| g.file(p).is_none()).collect();
    assert!(lost.len() >= 2, "some create events were lost: {} of {N}", lost.len());

    let log = sensor.stop_keeping_kernel_state();
    assert!(!log.contains("panicked"), "{log}");
    let sensor = RunningSensor::start(&dir, &port_program_config(&d, extra));
    let carried = &sensor.status()["kernel_state"]["carried_over"];
    assert!(carried["inodes"].as_u64().unwrap() >= N as u64, "{carried}");
    sh(&lost[0]);
    sensor.wait_for("a file whose event was lost still taints after a restart", |g| running_taints(g, &lost[0]));

    // A tainted process that exits while no sensor runs leaves its kernel entry behind:
    // it is not carried over (its pid may be another process's by then).
    // It runs until the sensor is stopped (a `go` file, bounded to 60 s): exiting while the
    // sensor still ran would let its exit hook remove the entry.
    std::fs::write(format!("{d}/sleeper.src"), format!("#!/bin/sh\nfor i in $(seq 600); do [ -e {d}/go ] && exit 0; sleep 0.1; done\n")).unwrap();
    sh(&format!("{d}/portcp {d}/sleeper.src {d}/sleeper.sh && chmod +x {d}/sleeper.sh"));
    // Our own child, reaped below (PID 1 here may leave an orphan a zombie, whose pid is
    // still taken).
    let mut sleeper = Command::new(format!("{d}/sleeper.sh")).spawn().unwrap();
    sensor.wait_for("the sleeper tainted", |g| running_taints(g, &format!("{d}/sleeper.sh")));
    sensor.stop_keeping_kernel_state();
    std::fs::write(format!("{d}/go"), "").unwrap();
    sleeper.wait().unwrap();
    let sensor = RunningSensor::start(&dir, &port_program_config(&d, extra));
    let carried = &sensor.status()["kernel_state"]["carried_over"];
    assert!(carried["stale_procs"].as_u64().unwrap() >= 1, "the exited tainted process is left out: {carried}");

    sensor.kill9();
    let sensor = RunningSensor::start(&dir, &port_program_config(&d, extra));
    sh(&lost[1]);
    sensor.wait_for("and after a kill -9", |g| running_taints(g, &lost[1]));
}

/// `taint`, `trust` and `block` answered ok are in the database even when the sensor is
/// killed the moment it answered.
#[test]
fn operator_changes_survive_a_kill_right_after_the_answer() {
    let _guard = serial();
    let dir = temp_dir("durable");
    std::fs::copy("/usr/bin/cp", dir.join("portcp")).unwrap();
    let d = dir.display().to_string();
    // `block` needs network monitoring: on loopback, which every machine has.
    let extra = "interfaces = [\"lo\"]\ninclude_loopback = true";
    let config: PathBuf = dir.join("vtrail.toml");
    for round in 0..3 {
        let file = format!("{d}/manual{round}.bin");
        std::fs::write(&file, "x").unwrap();
        let sensor = RunningSensor::start(&dir, &port_program_config(&d, extra));
        let out = sensor.cli(&["taint", &file]);
        assert!(out.status.success(), "taint: {}", String::from_utf8_lossy(&out.stderr));
        let ip = format!("192.0.2.{}", 10 + round);
        let out = sensor.cli(&["block", &ip]);
        assert!(out.status.success(), "block: {}", String::from_utf8_lossy(&out.stderr));
        sensor.kill9();
        let g = graph_on_disk(&config);
        assert!(g.is_untrusted(&file), "round {round}: taint acknowledged, then killed: lost\n{}", g.describe());
        let node = g.file(&file).unwrap()["id"].clone();
        let relabel = g.edges.iter().find(|e| e["kind"] == "relabel" && e["dst"] == node).expect("this round's relabel edge");
        let by = relabel["attrs"]["by"].as_str().unwrap();
        assert!(!by.starts_with('('), "the user is named: {by}");
        let actor = g.node(relabel["src"].as_str().unwrap()).unwrap_or_else(|| panic!("the relabel's user node is exported: {}", g.describe()));
        assert_eq!(actor["kind"], "user");
        assert_eq!(g.edges_into("block", &format!("remote:{ip}")).len(), 1, "round {round}: block acknowledged, then killed: lost");
    }
    // And trust, the other way.
    let file = format!("{d}/manual0.bin");
    let sensor = RunningSensor::start(&dir, &port_program_config(&d, extra));
    let out = sensor.cli(&["trust", &file]);
    assert!(out.status.success(), "trust: {}", String::from_utf8_lossy(&out.stderr));
    sensor.kill9();
    assert!(!graph_on_disk(&config).is_untrusted(&file), "trust acknowledged, then killed: lost");
    // A clean stop takes away the filters and the qdisc the killed sensors left on lo.
    let log = RunningSensor::start(&dir, &port_program_config(&d, extra)).stop();
    assert!(log.contains("left by an earlier vtrail sensor is reused"), "{log}");
    let qdisc = String::from_utf8_lossy(&Command::new("tc").args(["qdisc", "show", "dev", "lo"]).output().unwrap().stdout).into_owned();
    assert!(!qdisc.contains("clsact"), "clsact left on lo: {qdisc}");
}

/// The record is private: the database directory is root's alone, and an export file too.
#[test]
fn the_record_is_not_readable_by_other_users() {
    use std::os::unix::fs::PermissionsExt;
    let _guard = serial();
    let dir = temp_dir("private");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sensor = RunningSensor::start(&dir, "network_monitoring = false");
    let db = dir.join("db");
    assert_eq!(std::fs::metadata(&db).unwrap().permissions().mode() & 0o777, 0o700, "database directory");
    for entry in walk(&db) {
        let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.display());
    }
    let export = dir.join("dump.jsonl");
    std::fs::write(&export, "old").unwrap();
    std::fs::set_permissions(&export, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sensor.cli(&["export", "--format", "json", "-o", export.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::metadata(&export).unwrap().permissions().mode() & 0o777, 0o600, "export file");
    // As an unprivileged user: neither the database nor the export can be read.
    for target in [db.join("conf"), export.clone()] {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(&target)
            .output()
            .unwrap();
        assert!(!out.status.success(), "nobody read {}", target.display());
    }
    drop(sensor);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// How often the sensor flushes the graph (`daemon::FLUSH_INTERVAL`): a crash loses at
/// most what was ingested this long before it.
const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Creates recorded (delivered) and dropped (counted) so far.
fn creates_seen(status: &serde_json::Value) -> (u64, u64) {
    (status["events_received"]["create"].as_u64().unwrap_or(0), status["kernel_drops"]["ringbuf_full.create"].as_u64().unwrap_or(0))
}

/// `kill -9` while a tainted process writes 20,000 files: the database opens again; every
/// file recorded longer than the flush interval before the kill is in it, untrusted; the
/// untrusted files and the live tainted process are back in the kernel (running one of
/// the files taints; the process's next write is untrusted).
#[test]
fn a_kill_during_a_burst_of_20000_files_loses_nothing_older_than_the_flush_interval() {
    use std::time::{Duration, Instant};
    let _guard = serial();
    let dir = temp_dir("burst");
    let d = dir.display().to_string();
    let sensor = RunningSensor::start(&dir, "network_monitoring = false");
    let worm = dir.join("worm");
    std::fs::copy(tests::sensor::workspace_bin("vtrail-workload"), &worm).unwrap();
    assert!(sensor.cli(&["taint", worm.to_str().unwrap()]).status.success());
    // A tainted process that lives across the crash, and writes once told to.
    std::fs::write(format!("{d}/sleeper.sh"), format!("#!/bin/sh\nfor i in $(seq 600); do [ -e {d}/go ] && break; sleep 0.1; done\necho after > {d}/after.txt\n")).unwrap();
    sh(&format!("chmod +x {d}/sleeper.sh"));
    assert!(sensor.cli(&["taint", &format!("{d}/sleeper.sh")]).status.success());
    let mut sleeper = Command::new(format!("{d}/sleeper.sh")).spawn().unwrap();
    sensor.wait_for("the sleeper tainted", |g| running_taints(g, &format!("{d}/sleeper.sh")));

    // The first 20,000: all recorded, then longer than the flush interval passes.
    const N: u64 = 20_000;
    std::fs::create_dir(dir.join("a")).unwrap();
    let out = Command::new(&worm).args(["creates", &N.to_string()]).arg(dir.join("a")).output().unwrap();
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(120);
    let (delivered, dropped) = loop {
        let (delivered, dropped) = creates_seen(&sensor.status());
        if delivered + dropped >= N {
            break (delivered, dropped);
        }
        assert!(Instant::now() < deadline, "20,000 creates not recorded in 120 s: {delivered} + {dropped} dropped");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(dropped, 0, "the default ring and the drain thread keep up with 20,000 creates");
    std::thread::sleep(FLUSH_INTERVAL + Duration::from_millis(500));

    // The next 20,000, killed in the middle.
    std::fs::create_dir(dir.join("b")).unwrap();
    let mut burst = Command::new(&worm).args(["creates", &N.to_string()]).arg(dir.join("b")).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while creates_seen(&sensor.status()).0 < delivered + 1000 {
        assert!(Instant::now() < deadline, "the second burst was never seen");
        std::thread::sleep(Duration::from_millis(5));
    }
    let log = sensor.kill9();
    assert!(!log.contains("panicked"), "{log}");
    burst.wait().unwrap();

    let sensor = RunningSensor::start(&dir, "network_monitoring = false");
    let status = sensor.status();
    assert!(status["kernel_state"]["untrusted_inodes"].as_u64().unwrap() >= N, "untrusted files back in the kernel: {}", status["kernel_state"]);
    let g = sensor.graph();
    // (Paths indexed once: a lookup per file through 40,000 nodes took minutes.)
    let mut untrusted = std::collections::HashSet::new();
    let mut known = std::collections::HashSet::new();
    for n in g.nodes.iter().filter(|n| n["kind"] == "file") {
        for p in n["paths"].as_array().into_iter().flatten().filter_map(|p| p.as_str()) {
            known.insert(p.to_owned());
            if n["untrusted"] == true {
                untrusted.insert(p.to_owned());
            }
        }
    }
    let missing: Vec<u64> = (0..N).filter(|i| !untrusted.contains(&format!("{d}/a/f{i}"))).collect();
    assert!(missing.is_empty(), "{} of the first burst's files missing or trusted after the crash (first: a/f{})", missing.len(), missing[0]);
    let second = (0..N).filter(|i| known.contains(&format!("{d}/b/f{i}"))).count();
    eprintln!("second burst: {second} of {N} files were recorded before the kill");

    // A restored untrusted file, run after the restart, taints its process.
    sh(&format!("sh {d}/a/f7 2>/dev/null || true"));
    sensor.wait_for("a restored untrusted file taints its reader", |g| running_taints(g, &format!("{d}/a/f7")));
    // The tainted process that lived through the crash: what it writes now is untrusted.
    std::fs::write(format!("{d}/go"), "").unwrap();
    sleeper.wait().unwrap();
    sensor.wait_for("the surviving tainted process's write is untrusted", |g| g.is_untrusted(&format!("{d}/after.txt")));
}

/// Subdirectories of `links` (one per sensor whose programs are pinned) that hold links.
fn pinned_link_sets(links: &Path) -> usize {
    std::fs::read_dir(links)
        .map(|d| d.flatten().filter(|e| std::fs::read_dir(e.path()).is_ok_and(|mut l| l.next().is_some())).count())
        .unwrap_or(0)
}

/// A crash does not blind the kernel side: the programs' links are pinned, so they stay
/// attached while no sensor runs. A process started from an untrusted file meanwhile is
/// tainted, and the file it writes is untrusted; the next sensor carries both over and
/// releases the dead sensor's programs once its own are attached. A graceful stop
/// detaches them.
#[test]
fn while_a_crashed_sensor_is_down_its_programs_go_on_tainting() {
    use std::time::{Duration, Instant};
    let _guard = serial();
    let dir = temp_dir("downtime");
    let d = dir.display().to_string();
    let sensor = RunningSensor::start(&dir, "network_monitoring = false");
    let links = tests::sensor::kernel_state_dir(&dir).join("links");
    assert_eq!(pinned_link_sets(&links), 1, "the running sensor's links are pinned under {}", links.display());
    std::fs::write(
        format!("{d}/payload.sh"),
        format!("#!/bin/sh\nprintf '#!/bin/sh\\ntrue\\n' > {d}/dropped.sh\nchmod +x {d}/dropped.sh\nfor i in $(seq 600); do [ -e {d}/go ] && break; sleep 0.1; done\necho after > {d}/after.txt\n"),
    )
    .unwrap();
    sh(&format!("chmod +x {d}/payload.sh"));
    assert!(sensor.cli(&["taint", &format!("{d}/payload.sh")]).status.success());
    sensor.kill9();

    // No sensor runs: the payload starts and drops a script.
    let mut payload = Command::new(format!("{d}/payload.sh")).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&format!("{d}/dropped.sh")).exists() {
        assert!(Instant::now() < deadline, "the payload did not run");
        std::thread::sleep(Duration::from_millis(50));
    }

    let sensor = RunningSensor::start(&dir, "network_monitoring = false");
    let carried = sensor.status()["kernel_state"]["carried_over"].clone();
    assert!(carried["released_links"].as_u64().unwrap_or(0) >= 1, "the crashed sensor's programs were still attached: {carried}");
    assert_eq!(pinned_link_sets(&links), 1, "only the new sensor's links are left");
    let text = String::from_utf8_lossy(&sensor.cli(&["status"]).stdout).into_owned();
    assert!(text.contains("kept attached if the sensor dies") && text.contains("the last sensor did not stop cleanly"), "{text}");
    // Tainted while no sensor ran: what it writes now is untrusted.
    std::fs::write(format!("{d}/go"), "").unwrap();
    payload.wait().unwrap();
    sensor.wait_for("the payload started while no sensor ran is tainted", |g| g.is_untrusted(&format!("{d}/after.txt")));
    // Written while no sensor ran, untrusted in the kernel: running it taints.
    sh(&format!("{d}/dropped.sh"));
    sensor.wait_for("the script dropped while no sensor ran taints", |g| running_taints(g, &format!("{d}/dropped.sh")));

    sensor.stop_keeping_kernel_state();
    assert_eq!(pinned_link_sets(&links), 0, "a graceful stop detaches the programs");
    let _ = std::fs::remove_dir_all(tests::sensor::kernel_state_dir(&dir));
}
