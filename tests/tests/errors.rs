//! Bad input gets a clear error and a non-zero exit, never a panic.
use std::process::Command;

use tests::sensor::{RunningSensor, require_root, sensor_bin, serial, temp_dir};

fn run_sensor(config: &str, tag: &str) -> (i32, String) {
    let dir = temp_dir(tag);
    let path = dir.join("c.toml");
    std::fs::write(&path, config.replace("DIR", &dir.display().to_string())).unwrap();
    let out = Command::new(sensor_bin()).arg("--config").arg(&path).arg("run").output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_clean_failure(code: i32, stderr: &str) {
    assert_eq!(code, 1, "exit code 1 expected: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
}

#[test]
fn bad_config_names_key_and_line() {
    let (code, err) = run_sensor("database = \"DIR/db\"\n\nhook_strategy = \"kprobes\"\n", "badcfg");
    assert_clean_failure(code, &err);
    assert!(err.contains("line 3") && err.contains("hook_strategy"), "{err}");
    let (code, err) = run_sensor("databse = \"DIR/db\"\n", "badkey");
    assert_clean_failure(code, &err);
    assert!(err.contains("databse") && err.contains("line 1"), "{err}");
    let (code, err) = run_sensor("ring_buffer_bytes = 1000\n", "badrb");
    assert_clean_failure(code, &err);
    assert!(err.contains("ring_buffer_bytes") && err.contains("power of two"), "{err}");
}

#[test]
fn missing_config_file_is_named() {
    let out = Command::new(sensor_bin()).args(["--config", "/nonexistent/vtrail.toml", "run"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_clean_failure(out.status.code().unwrap_or(-1), &err);
    assert!(err.contains("/nonexistent/vtrail.toml"), "{err}");
}

#[test]
fn unprivileged_user_is_told_to_be_root() {
    require_root();
    let dir = temp_dir("nonroot");
    std::fs::write(dir.join("c.toml"), format!("database = \"{0}/db\"\nsocket = \"{0}/s.sock\"\n", dir.display())).unwrap();
    let mut perms = std::fs::metadata(&dir).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o777);
    std::fs::set_permissions(&dir, perms).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(sensor_bin())
        .arg("--config")
        .arg(dir.join("c.toml"))
        .arg("run")
        .output()
        .expect("setpriv (util-linux) is needed for this test");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_clean_failure(out.status.code().unwrap_or(-1), &err);
    assert!(err.contains("must run as root"), "{err}");
}

#[test]
fn corrupt_database_is_a_clear_error_and_is_kept() {
    let _guard = serial();
    require_root();
    let dir = temp_dir("corrupt");
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(db.join("conf"), b"segment_size: garbage\x00\xff").unwrap();
    std::fs::write(db.join("db"), vec![0xA5u8; 1 << 16]).unwrap();
    let (code, err) = run_sensor(&format!("database = \"{}\"\nsocket = \"DIR/s.sock\"\n", db.display()), "corrupt-run");
    assert_clean_failure(code, &err);
    assert!(err.contains(&db.display().to_string()) && err.contains("run --recover"), "{err}");
    assert_eq!(err.matches("--recover").count(), 1, "the advice is given once: {err}");
    assert!(db.join("db").exists(), "the damaged database is left for inspection");

    // `run --recover` moves it aside, whole, and starts on a fresh one.
    let sensor = RunningSensor::start_with_args(&dir, "", &["--recover"]);
    let log = sensor.log_text();
    assert!(log.contains("moved aside to"), "{log}");
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "one damaged copy kept: {aside:?}");
    assert_eq!(std::fs::read(aside[0].join("db")).unwrap(), vec![0xA5u8; 1 << 16], "kept as it was");
    let status = sensor.status();
    assert_eq!(status["database"]["path"].as_str(), Some(db.to_str().unwrap()), "{status}");
    assert!(status["database"]["nodes"].as_u64().is_some_and(|n| n >= 1), "the fresh database records this host: {status}");
    sensor.stop();
}

/// A database cut short after a clean stop: sled opens what is left as if it had crashed
/// there; the sensor's flush record says records are missing, and it refuses to start
/// until told `--recover`.
#[test]
fn a_truncated_database_is_refused_until_recover() {
    let _guard = serial();
    let dir = temp_dir("truncated");
    let sensor = RunningSensor::start(&dir, "network_monitoring = false");
    let worm = dir.join("worm");
    std::fs::copy(tests::sensor::workspace_bin("vtrail-workload"), &worm).unwrap();
    assert!(sensor.cli(&["taint", worm.to_str().unwrap()]).status.success());
    std::fs::create_dir(dir.join("w")).unwrap();
    assert!(Command::new(&worm).args(["creates", "2000"]).arg(dir.join("w")).status().unwrap().success());
    let g = sensor.wait_for("2,000 files recorded", |g| g.is_untrusted(&format!("{}/w/f1999", dir.display())));
    let edges = g.edges.len();
    let config = sensor.config.clone();
    sensor.stop();
    let db = dir.join("db");
    let flushed: serde_json::Value = serde_json::from_slice(&std::fs::read(db.join("vtrail-flushed.json")).expect("the stop's flush record")).unwrap();
    assert!(flushed["edges"].as_u64().unwrap() >= edges as u64, "{flushed} vs {edges} edges in the graph");

    let log = db.join("db");
    let len = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(len / 3).unwrap();
    let out = Command::new(sensor_bin()).arg("--config").arg(&config).arg("run").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_clean_failure(out.status.code().unwrap_or(-1), &err);
    eprintln!("the refusal: {err}");
    // Either sled reads less than the flush record counts, or it cannot read the log at all.
    assert!(err.contains("damaged") && err.contains(&db.display().to_string()), "{err}");
    assert_eq!(err.matches("--recover").count(), 1, "{err}");

    let sensor = RunningSensor::start_with_args(&dir, "network_monitoring = false", &["--recover"]);
    let log = sensor.log_text();
    assert!(log.contains("moved aside to") && log.contains("damaged"), "{log}");
    let status = sensor.status();
    assert!(status["database"]["nodes"].as_u64().is_some_and(|n| n >= 1), "a fresh database: {status}");
    sensor.stop();
}

#[test]
fn cli_without_running_sensor_says_so() {
    let dir = temp_dir("nosensor");
    std::fs::write(dir.join("c.toml"), format!("socket = \"{}/none.sock\"\n", dir.display())).unwrap();
    let out = Command::new(sensor_bin()).arg("--config").arg(dir.join("c.toml")).args(["status"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_clean_failure(out.status.code().unwrap_or(-1), &err);
    assert!(err.contains("is `vtrail-sensor run` running"), "{err}");
}

/// Network monitoring on, but nothing it could watch: `run` fails and names the
/// interface, unless degraded mode is asked for, and then `status` says so first.
#[test]
fn nothing_to_watch_is_an_error_naming_the_interface() {
    let _guard = serial();
    require_root();
    let (code, err) = run_sensor("database = \"DIR/db\"\nsocket = \"DIR/s.sock\"\nkernel_state = \"/sys/fs/bpf/vtrail-test/nowatch\"\ninterfaces = [\"nonexist0\"]\n", "nowatch");
    assert_clean_failure(code, &err);
    assert!(err.contains("nonexist0") && err.contains("no such network interface"), "{err}");
    assert!(err.contains("network_degraded_ok"), "says what to do: {err}");
    // A start that fails leaves no program attached (no pinned link).
    let links = std::path::Path::new("/sys/fs/bpf/vtrail-test/nowatch/links");
    let left: Vec<_> = std::fs::read_dir(links).map(|d| d.flatten().flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten()).map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "links left pinned by a failed start: {left:?}");

    let dir = temp_dir("degraded");
    let sensor = tests::sensor::RunningSensor::start(&dir, "interfaces = [\"nonexist0\"]\nnetwork_degraded_ok = true");
    let out = sensor.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("");
    assert!(first.starts_with("network:") && first.contains("FAILED"), "first line: {text}");
    assert!(text.contains("nonexist0"), "{text}");
    let log = sensor.stop();
    assert!(log.contains("ERROR") && log.contains("nonexist0"), "{log}");
    let _ = std::fs::remove_dir_all("/sys/fs/bpf/vtrail-test/nowatch");
}

/// A running sensor, and another user on the machine: it can neither talk to the control
/// socket (status, block), nor read the database, nor reach the pinned kernel state.
#[test]
fn another_user_cannot_read_the_database_talk_to_the_socket_or_change_the_quarantine() {
    let _guard = serial();
    require_root();
    let dir = temp_dir("otheruser");
    // The user can reach the directory; what the sensor creates in it is its own.
    let mut perms = std::fs::metadata(&dir).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&dir, perms).unwrap();
    let sensor = tests::sensor::RunningSensor::start(&dir, "network_monitoring = false");
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(args)
            .output()
            .expect("setpriv (util-linux) is needed for this test")
    };
    let config = dir.join("vtrail.toml").display().to_string();
    let sensor_path = sensor_bin().display().to_string();
    for verb in [&["status"][..], &["block", "10.99.0.7"], &["export", "-o", "/tmp/vtrail-otheruser-export.jsonl"]] {
        let out = as_nobody(&[&[sensor_path.as_str(), "--config", &config][..], verb].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{verb:?} as another user succeeded: {}", String::from_utf8_lossy(&out.stdout));
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains("must run as root"), "{verb:?}: the reason is not said: {err}");
    }
    let db = dir.join("db").display().to_string();
    let out = as_nobody(&["sh", "-c", &format!("ls {db} && cat {db}/*")]);
    assert!(!out.status.success(), "another user read the database: {}", String::from_utf8_lossy(&out.stdout));
    // The quarantine is as it was.
    let status = sensor.status();
    assert!(!status.to_string().contains("10.99.0.7"), "{status}");
}
