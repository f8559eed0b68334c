//! The taint rules on the real kernel: the real sensor binary, real processes, the graph
//! it records. Each test starts its own sensor with a private database.
//!
//! The "port program" is a copy of cp(1) configured as one, standing in for smbd/vsftpd
//! (the network tests use the real servers): what it writes becomes untrusted.
use std::path::Path;

use tests::sensor::{Graph, RunningSensor, serial, sh, temp_dir};

/// A sensor whose port program is `dir/portcp`; returns it and the dir as a string.
fn sensor_with_port_program(tag: &str, extra: &str) -> (RunningSensor, String) {
    let dir = temp_dir(tag);
    std::fs::copy("/usr/bin/cp", dir.join("portcp")).unwrap();
    let d = dir.display().to_string();
    let sensor = RunningSensor::start(&dir, &format!("port_programs = [\"{d}/portcp\"]\n{extra}"));
    (sensor, d)
}

/// "Upload" dash as `name` through the port program.
fn upload_dash(d: &str, name: &str) {
    sh(&format!("{d}/portcp /usr/bin/dash {d}/{name} && chmod +x {d}/{name}"));
}

/// A sensor, and `dir/evil` uploaded through the port program and seen as untrusted.
fn sensor_with_evil(tag: &str, extra: &str) -> (RunningSensor, String) {
    let (sensor, d) = sensor_with_port_program(tag, extra);
    upload_dash(&d, "evil");
    sensor.wait_for("evil untrusted", |g| g.is_untrusted(&format!("{d}/evil")));
    (sensor, d)
}

fn tainted_exec(g: &Graph, path: &str) -> bool {
    g.processes_that_exec(path).iter().any(|p| p["tainted"] == true)
}

#[test]
fn port_program_write_makes_file_untrusted_and_exec_taints() {
    let _guard = serial();
    let (sensor, d) = sensor_with_port_program("port", "");
    upload_dash(&d, "evil");
    let g = sensor.wait_for("evil untrusted", |g| g.is_untrusted(&format!("{d}/evil")));
    let evil = g.file(&format!("{d}/evil")).unwrap();
    let writers = g.edges_into("create", evil["id"].as_str().unwrap());
    assert!(writers.iter().any(|e| e["attrs"]["by_port_program"] == true), "create by the port program: {writers:?}");

    sh(&format!("{d}/evil -c true"));
    let g = sensor.wait_for("exec of evil taints", |g| tainted_exec(g, &format!("{d}/evil")));
    let exec = g.edges.iter().find(|e| e["kind"] == "exec" && e["src"] == evil["id"]).unwrap();
    assert_eq!(exec["attrs"]["taint_reason"], "exec_untrusted");
}

#[test]
fn three_generations_of_fork_exec_write() {
    let _guard = serial();
    let (sensor, d) = sensor_with_port_program("gens", "");
    upload_dash(&d, "gen1");
    // gen1 (untrusted upload) copies itself to gen2 and runs it; gen2 does the same to
    // gen3; gen3 writes a file. Every hop: fork, exec of an untrusted file, write.
    let script = format!(
        "{d}/gen1 -c 'cp {d}/gen1 {d}/gen2 && {d}/gen2 -c \"cp {d}/gen2 {d}/gen3 && {d}/gen3 -c \\\"echo 3 > {d}/gen3.txt\\\"\"'"
    );
    sh(&script);
    let g = sensor.wait_for("gen3.txt untrusted", |g| g.is_untrusted(&format!("{d}/gen3.txt")));
    for bin in ["gen1", "gen2", "gen3"] {
        let path = format!("{d}/{bin}");
        assert!(g.is_untrusted(&path), "{bin} untrusted");
        assert!(tainted_exec(&g, &path), "process running {bin} tainted\n{}", g.describe());
    }
    // The writer of gen3.txt is the process that executed gen3.
    let gen3_proc = g.processes_that_exec(&format!("{d}/gen3"))[0]["id"].clone();
    let out = g.file(&format!("{d}/gen3.txt")).unwrap();
    let writers: Vec<_> = g.edges.iter().filter(|e| e["dst"] == out["id"] && (e["kind"] == "create" || e["kind"] == "write")).collect();
    assert!(writers.iter().any(|e| e["src"] == gen3_proc), "gen3.txt written by gen3's process: {writers:?}");
    assert!(g.edges.iter().filter(|e| e["kind"] == "fork").count() >= 2, "fork edges recorded");
}

#[test]
fn interpreter_running_untrusted_script_is_tainted() {
    let _guard = serial();
    let (sensor, d) = sensor_with_port_program("script", "");
    std::fs::write(format!("{d}/src.sh"), format!("echo pwned > {d}/from_script.txt\n")).unwrap();
    sh(&format!("{d}/portcp {d}/src.sh {d}/evil.sh"));
    sensor.wait_for("evil.sh untrusted", |g| g.is_untrusted(&format!("{d}/evil.sh")));
    // A trusted shell, an untrusted script: `sh evil.sh`.
    sh(&format!("/bin/sh {d}/evil.sh"));
    let g = sensor.wait_for("from_script.txt untrusted", |g| g.is_untrusted(&format!("{d}/from_script.txt")));
    let script = g.file(&format!("{d}/evil.sh")).unwrap();
    // Its content is hashed (a YARA rule for a script virus needs it).
    let want = String::from_utf8(std::process::Command::new("sha256sum").arg(format!("{d}/evil.sh")).output().unwrap().stdout).unwrap();
    assert_eq!(script["sha256"].as_str(), want.split_whitespace().next(), "{script}");
    let reads = g.edges_from("read", script["id"].as_str().unwrap());
    assert!(reads.iter().any(|e| e["attrs"]["taint_reason"] == "interpreter_read"), "{reads:?}");
    // The benign source the port program copied is not tainted.
    assert!(!g.is_untrusted(&format!("{d}/src.sh")));
}

#[test]
fn what_a_tainted_process_reads_is_recorded_once_per_file() {
    let _guard = serial();
    let (sensor, d) = sensor_with_evil("reads", "");
    std::fs::write(format!("{d}/src.txt"), "an attachment\n").unwrap();
    std::fs::write(format!("{d}/plain.txt"), "trusted\n").unwrap();
    sh(&format!("{d}/portcp {d}/src.txt {d}/loot.txt"));
    sensor.wait_for("loot.txt untrusted", |g| g.is_untrusted(&format!("{d}/loot.txt")));
    // An untainted reader is no record; the tainted shell's two reads of it are one.
    sh(&format!("cat {d}/loot.txt >/dev/null"));
    sh(&format!("{d}/evil -c 'read x < {d}/loot.txt; read x < {d}/loot.txt; read x < {d}/plain.txt; echo done > {d}/out.txt'"));
    let g = sensor.wait_for("out.txt untrusted", |g| g.is_untrusted(&format!("{d}/out.txt")));
    let loot = g.file(&format!("{d}/loot.txt")).unwrap();
    let reads = g.edges_from("read", loot["id"].as_str().unwrap());
    assert_eq!(reads.len(), 1, "{}", g.describe());
    let evil = g.processes_that_exec(&format!("{d}/evil")).into_iter().find(|p| p["tainted"] == true).expect("tainted evil").clone();
    assert_eq!(reads[0]["dst"], evil["id"], "{}", g.describe());
    assert!(reads[0]["attrs"].get("taint_reason").is_none(), "already tainted: no new taint {}", reads[0]);
    assert_eq!(reads[0]["attrs"]["path"], format!("{d}/loot.txt"));
    // A trusted file it reads is nothing.
    assert!(g.file(&format!("{d}/plain.txt")).is_none_or(|f| g.edges_from("read", f["id"].as_str().unwrap()).is_empty()), "{}", g.describe());
}

#[test]
fn rename_and_hard_link_keep_taint() {
    let _guard = serial();
    let (sensor, d) = sensor_with_evil("rename", "");
    // Moved and linked by an untainted admin shell: taint follows the inode.
    sh(&format!("mv {d}/evil {d}/renamed && ln {d}/renamed {d}/linked"));
    sh(&format!("{d}/linked -c true"));
    sensor.wait_for("exec via the hard link of the renamed file taints", |g| tainted_exec(g, &format!("{d}/linked")));
}

#[test]
fn tainted_rename_makes_target_untrusted() {
    let _guard = serial();
    let (sensor, d) = sensor_with_evil("trename", "");
    std::fs::write(format!("{d}/innocent"), "data").unwrap();
    sh(&format!("{d}/evil -c 'mv {d}/innocent {d}/moved'"));
    let g = sensor.wait_for("renamed file untrusted", |g| g.is_untrusted(&format!("{d}/moved")));
    let moved = g.file(&format!("{d}/moved")).unwrap();
    let rename = g.edges_into("rename", moved["id"].as_str().unwrap());
    assert_eq!(rename[0]["attrs"]["from"], format!("{d}/innocent"));
}

#[test]
fn chmod_plus_x_by_tainted_process_is_recorded() {
    let _guard = serial();
    let (sensor, d) = sensor_with_evil("chmod", "");
    sh(&format!("{d}/evil -c 'echo x > {d}/payload; chmod 755 {d}/payload'"));
    let g = sensor.wait_for("chmod edge", |g| g.edges.iter().any(|e| e["kind"] == "chmod"));
    let payload = g.file(&format!("{d}/payload")).unwrap();
    assert_eq!(payload["executable"], true);
    let chmod = g.edges_into("chmod", payload["id"].as_str().unwrap());
    assert_eq!(chmod[0]["attrs"]["executable"], true);
    assert_eq!(chmod[0]["attrs"]["mode"], "755");
}

#[test]
fn activation_point_write_is_high_severity() {
    let _guard = serial();
    let dir = temp_dir("activation");
    let d = dir.display().to_string();
    std::fs::copy("/usr/bin/cp", dir.join("portcp")).unwrap();
    std::fs::create_dir_all(format!("{d}/cron.d")).unwrap();
    let sensor = RunningSensor::start(&dir, &format!("port_programs = [\"{d}/portcp\"]\nactivation_points = [\"{d}/cron.d/\"]"));
    upload_dash(&d, "evil");
    sensor.wait_for("evil untrusted", |g| g.is_untrusted(&format!("{d}/evil")));
    sh(&format!("{d}/evil -c 'echo \"* * * * * root {d}/evil\" > {d}/cron.d/persist'"));
    let g = sensor.wait_for("cron file untrusted", |g| g.is_untrusted(&format!("{d}/cron.d/persist")));
    let f = g.file(&format!("{d}/cron.d/persist")).unwrap();
    let e = g.edges_into("create", f["id"].as_str().unwrap());
    assert_eq!(e[0]["attrs"]["severity"], "high");
    assert_eq!(e[0]["attrs"]["activation_point"], format!("{d}/cron.d/"));
}

#[test]
fn trust_relabel_stops_propagation() {
    let _guard = serial();
    let (sensor, d) = sensor_with_evil("trust", "");
    let out = sensor.cli(&["trust", &format!("{d}/evil")]);
    assert!(out.status.success(), "trust: {}", String::from_utf8_lossy(&out.stderr));
    sh(&format!("{d}/evil -c 'echo > {d}/after_trust'"));
    // Give the kernel time to report anything, then check that nothing was.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let g = sensor.graph();
    assert!(!g.is_untrusted(&format!("{d}/evil")), "relabelled trusted");
    assert!(g.file(&format!("{d}/after_trust")).is_none(), "no taint after trust\n{}", g.describe());
    let evil = g.file(&format!("{d}/evil")).unwrap();
    let relabel = g.edges_into("relabel", evil["id"].as_str().unwrap());
    assert_eq!(relabel[0]["attrs"]["to"], "trusted");
    assert!(relabel[0]["attrs"]["by"].as_str().unwrap().contains("uid 0"), "{relabel:?}");

    // `taint` marks a file by hand: executing it taints again.
    let out = sensor.cli(&["taint", &format!("{d}/evil")]);
    assert!(out.status.success());
    sh(&format!("{d}/evil -c true"));
    sensor.wait_for("exec after manual taint", |g| tainted_exec(g, &format!("{d}/evil")));
}

#[test]
fn untainted_workload_leaves_no_trace() {
    let _guard = serial();
    let dir = temp_dir("benign");
    let sensor = RunningSensor::start(&dir, "");
    let d = dir.display();
    sh(&format!(
        "cd {d} && for i in 1 2 3 4 5 6 7 8 9 10; do echo $i > f$i; cp f$i g$i; mv g$i h$i; chmod +x h$i; ln h$i l$i; rm l$i; done; \
         /bin/sh -c 'cat f1 > /dev/null'; python3 -c 'open(\"{d}/py\", \"w\").write(\"x\")' 2>/dev/null || true"
    ));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let g = sensor.graph();
    let status = sensor.status();
    assert!(g.edges.is_empty(), "benign work recorded:\n{}", g.describe());
    assert!(status["events_received"].as_object().unwrap().is_empty(), "events: {}", status["events_received"]);
}

#[test]
fn tiny_ring_buffer_counts_every_dropped_event() {
    let _guard = serial();
    let (sensor, d) = sensor_with_evil("drops", "ring_buffer_bytes = 4096");
    let creates_before = sensor.status()["events_received"]["create"].as_u64().unwrap_or(0);
    const N: u64 = 3000;
    sh(&format!("mkdir {d}/many && cd {d}/many && {d}/evil -c 'i=0; while [ $i -lt {N} ]; do : > f$i; i=$((i+1)); done'"));
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let status = sensor.status();
    let received = status["events_received"]["create"].as_u64().unwrap_or(0) - creates_before;
    let dropped = status["kernel_drops"]["ringbuf_full.create"].as_u64().unwrap();
    assert!(dropped > 0, "a 4 KiB ring buffer must overflow under {N} creates (received {received})");
    assert_eq!(received + dropped, N, "every create is either delivered or counted: received {received}, dropped {dropped}");
    std::thread::sleep(std::time::Duration::from_secs(6)); // the drop report runs every 5 s
    let log = sensor.stop();
    assert!(log.contains("kernel dropped") && log.contains("ringbuf_full.create"), "drops reported in the log:\n{log}");
}

#[test]
fn restart_keeps_taint() {
    let _guard = serial();
    let (sensor, d) = sensor_with_evil("restart", "");
    // A tainted process that outlives the sensor and writes after the restart.
    // It waits for `go`, created only once the second sensor runs.
    sh(&format!("{d}/evil -c 'while [ ! -e {d}/go ]; do sleep 0.1; done; echo late > {d}/late.txt' > /dev/null 2>&1 &"));
    sensor.wait_for("sleeper tainted", |g| tainted_exec(g, &format!("{d}/evil")));
    drop(sensor.stop());

    let sensor = RunningSensor::start(Path::new(&d), &format!("port_programs = [\"{d}/portcp\"]"));
    let log = sensor.log_text();
    assert!(log.contains("restored 1 untrusted files and "), "{log}");
    assert!(!log.contains("and 0 live tainted processes"), "the waiting tainted shell is restored: {log}");
    std::fs::write(format!("{d}/go"), "").unwrap();
    sh(&format!("{d}/evil -c 'echo again > {d}/again.txt'"));
    sensor.wait_for("exec after restart taints", |g| g.is_untrusted(&format!("{d}/again.txt")));
    sensor.wait_for("live tainted process kept its taint across the restart", |g| g.is_untrusted(&format!("{d}/late.txt")));
}

/// What the sensor records is what `vtrail-analysis` reads: trace a real incident.
#[test]
fn analysis_traces_what_the_sensor_recorded() {
    let _guard = serial();
    let (sensor, d) = sensor_with_evil("analysis", "");
    sh(&format!("{d}/evil -c 'echo x > {d}/out.txt; cp {d}/evil {d}/evil2; {d}/evil2 -c \"echo y > {d}/out2.txt\"'"));
    sensor.wait_for("out2.txt untrusted", |g| g.is_untrusted(&format!("{d}/out2.txt")));
    let dump = format!("{d}/dump.jsonl");
    let out = sensor.cli(&["export", "-o", &dump]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let analysis = tests::sensor::bin_dir().join("vtrail-analysis");
    assert!(analysis.exists(), "{} not built (cargo xtask test builds it)", analysis.display());
    let sha = std::process::Command::new("sha256sum").arg("/usr/bin/dash").output().unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout).split_whitespace().next().unwrap().to_string();
    // Found by the hash the sensor took when it ran, traced back to the port program and
    // forward to everything it wrote, through the copy it made of itself.
    let out = std::process::Command::new(&analysis).args(["trace", "--sha256", &sha, &dump]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("{d}/portcp")), "backward reaches the port program:\n{text}");
    for written in ["out.txt", "evil2", "out2.txt"] {
        assert!(text.contains(&format!("{d}/{written}")), "forward reaches {written}:\n{text}");
    }
    assert!(text.contains("/usr/bin/cp"), "the forked cp is named by its image:\n{text}");
}

/// `./evil > out.txt`: the untainted shell opens out.txt, the tainted process only
/// writes to the descriptor it inherited.
#[test]
fn inherited_descriptor_is_marked_when_the_process_becomes_tainted() {
    let _guard = serial();
    let (sensor, d) = sensor_with_evil("inherited", "");
    std::fs::write(format!("{d}/existing.txt"), "old\n").unwrap();
    sh(&format!("{d}/evil -c 'echo pwned' > {d}/redirected.txt 3>>{d}/existing.txt"));
    let g = sensor.wait_for("redirected.txt untrusted", |g| g.is_untrusted(&format!("{d}/redirected.txt")));
    assert!(g.is_untrusted(&format!("{d}/existing.txt")), "a file held open for append is marked too");
    let f = g.file(&format!("{d}/redirected.txt")).unwrap();
    let writes = g.edges_into("write", f["id"].as_str().unwrap());
    assert!(writes.iter().any(|e| e["attrs"]["via"] == "inherited_fd"), "{writes:?}");
}

/// A tainted process opening an existing file for writing marks it, write or not.
#[test]
fn open_for_writing_by_tainted_process_marks_file() {
    let _guard = serial();
    let (sensor, d) = sensor_with_evil("openrw", "");
    std::fs::write(format!("{d}/victim.txt"), "data\n").unwrap();
    // dd with nocreat opens O_WRONLY without O_CREAT/O_TRUNC: a pure open for writing.
    sh(&format!("{d}/evil -c 'echo x | dd of={d}/victim.txt conv=notrunc,nocreat status=none'"));
    let g = sensor.wait_for("victim.txt untrusted", |g| g.is_untrusted(&format!("{d}/victim.txt")));
    let f = g.file(&format!("{d}/victim.txt")).unwrap();
    let writes = g.edges_into("write", f["id"].as_str().unwrap());
    assert!(writes.iter().any(|e| e["attrs"]["via"] == "open_for_write"), "{writes:?}");
}

/// The record is exact: paths are the files' own, whatever the process's stdin, however
/// odd the name's bytes, never a `/proc/.../fd` link; a path that cannot be known whole
/// is flagged, not stored as one of the file's paths.
#[test]
fn recorded_paths_are_exact_or_flagged() {
    let _guard = serial();
    let (sensor, d) = sensor_with_evil("exact", "");
    // A relative exec with stdin redirected from a file.
    sh(&format!("cd {d} && ./evil -c true < /etc/hostname"));
    let g = sensor.wait_for("relative exec recorded", |g| !g.processes_that_exec(&format!("{d}/evil")).is_empty());
    let bogus = g.nodes.iter().filter(|n| n["kind"] == "file").flat_map(|n| n["paths"].as_array().cloned().unwrap_or_default())
        .filter(|p| p.as_str().unwrap_or("").starts_with("/etc/hostname")).count();
    assert_eq!(bogus, 0, "a path under stdin's file:\n{}", g.describe());
    let execs: Vec<_> = g.edges.iter().filter(|e| e["kind"] == "exec").map(|e| e["attrs"]["path"].clone()).collect();
    assert!(execs.iter().all(|p| !p.as_str().unwrap_or("").starts_with("/etc/hostname")), "{execs:?}");
    let evil = g.file(&format!("{d}/evil")).unwrap();
    for e in g.edges_from("exec", evil["id"].as_str().unwrap()) {
        assert_eq!(e["attrs"]["path"], format!("{d}/evil"), "{e}");
    }
    let relative_exe: Vec<_> = g.nodes.iter().filter(|n| n["kind"] == "process" && n["exe"].as_str().is_some_and(|x| !x.is_empty() && !x.starts_with('/'))).collect();
    assert!(relative_exe.is_empty(), "{relative_exe:?}");

    // A Latin-1 name (not UTF-8), a file written through /proc/self/fd, and a file whose
    // directory is deeper than PATH_MAX.
    // (dash's `cd` stops short of PATH_MAX; Python's chdir does not.)
    std::fs::write(
        format!("{d}/deep.py"),
        "import os\nfor _ in range(25):\n    os.mkdir('d' * 200)\n    os.chdir('d' * 200)\nopen('deep.txt', 'w').write('x')\n",
    )
    .unwrap();
    sh(&format!(
        "cd {d} && ./evil -c 'printf x > \"$(printf \"caf\\351.txt\")\"; exec 3>{d}/pfd.txt; echo x > /proc/self/fd/3; python3 {d}/deep.py'"
    ));
    let g = sensor.wait_for("the odd names recorded", |g| {
        g.edges.iter().any(|e| e["attrs"]["path"] == "deep.txt") && g.file(&format!("{d}/caf\\xe9.txt")).is_some()
    });
    assert!(g.is_untrusted(&format!("{d}/caf\\xe9.txt")), "the exact bytes, escaped: {}", g.describe());
    assert!(!g.nodes.iter().any(|n| n["paths"].as_array().is_some_and(|p| p.iter().any(|x| x.as_str().unwrap_or("").contains('\u{fffd}')))), "no U+FFFD");
    let proc_paths: Vec<_> = g.nodes.iter().flat_map(|n| n["paths"].as_array().cloned().unwrap_or_default())
        .filter(|p| p.as_str().unwrap_or("").starts_with("/proc/")).collect();
    assert!(proc_paths.is_empty(), "a /proc fd link stored as a path: {proc_paths:?}");
    let pfd = g.file(&format!("{d}/pfd.txt")).expect("pfd.txt recorded");
    assert!(g.edges.iter().filter(|e| e["dst"] == pfd["id"]).count() >= 1);
    let deep_edge = g.edges.iter().find(|e| e["attrs"]["path"] == "deep.txt").unwrap();
    assert_eq!(deep_edge["attrs"]["path_incomplete"], true, "{deep_edge}");
    assert!(g.file("deep.txt").is_none(), "a bare name stored as a path");
}
