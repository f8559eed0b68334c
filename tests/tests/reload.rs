//! SIGHUP on the real sensor and kernel: live keys take effect in the kernel, restart-only
//! keys are named in the log and keep their running value, a broken file is refused with
//! its line and key and the configuration in effect goes on working. The port programs
//! are copies of cp(1) (`portcp`, `portcp2`: two binaries, two inodes), as in
//! `taint.rs`.
use tests::sensor::{RunningSensor, serial, sh, temp_dir};

/// Copies dash to `d/name` through `program`.
fn upload(d: &str, program: &str, name: &str) {
    sh(&format!("{d}/{program} /usr/bin/dash {d}/{name}"));
}

/// `program` uploads `probe`, then `sync` (a configured port program) uploads `marker`;
/// once `marker` is untrusted in the graph, `probe`'s create has been ingested too (the
/// ring is read in order). Returns whether `probe` became untrusted.
fn made_untrusted(sensor: &RunningSensor, d: &str, program: &str, probe: &str, sync: &str, marker: &str) -> bool {
    upload(d, program, probe);
    upload(d, sync, marker);
    let g = sensor.wait_for(&format!("{marker} untrusted"), |g| g.is_untrusted(&format!("{d}/{marker}")));
    g.is_untrusted(&format!("{d}/{probe}"))
}

fn blocked(status: &serde_json::Value) -> Vec<String> {
    let hosts = status["network"]["blocked_hosts"].as_array().cloned().unwrap_or_default();
    hosts.iter().filter_map(|h| h.as_str().map(str::to_owned)).collect()
}

#[test]
fn sighup_applies_port_programs_and_blocks_live_and_names_restart_only_keys() {
    let _guard = serial();
    let dir = temp_dir("reload");
    for program in ["portcp", "portcp2"] {
        std::fs::copy("/usr/bin/cp", dir.join(program)).unwrap();
    }
    let d = dir.display().to_string();
    let sensor = RunningSensor::start(&dir, &format!("port_programs = [\"{d}/portcp2\"]\nblocked_hosts = [\"10.99.0.2\"]"));
    let out = sensor.cli(&["block", "10.99.0.1"]);
    assert!(out.status.success(), "operator block: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(blocked(&sensor.status()), ["10.99.0.1", "10.99.0.2"]);
    assert!(!made_untrusted(&sensor, &d, "portcp", "before", "portcp2", "sync1"), "portcp is not a port program yet");
    let ring_bytes = sensor.status()["ring"]["size_bytes"].clone();
    assert_ne!(ring_bytes, 8388608, "the reload below must ask for another size");

    // Live: portcp becomes a port program, the configured block moves from .2 to .3.
    // Restart-only: the ring buffer's size.
    let status = sensor.reload(&format!(
        "port_programs = [\"{d}/portcp\", \"{d}/portcp2\"]\nblocked_hosts = [\"10.99.0.3\"]\nring_buffer_bytes = 8388608"
    ));
    assert_eq!(status["config"]["reloads"], 1, "{status}");
    assert_eq!(status["config"]["restart_needed"], serde_json::json!(["ring_buffer_bytes"]), "{status}");
    assert!(status["config"]["last_reload_error"].is_null(), "{status}");
    assert_eq!(status["ring"]["size_bytes"], ring_bytes, "the ring keeps its size until a restart");
    assert_eq!(blocked(&status), ["10.99.0.1", "10.99.0.3"], "the operator's block stays, the configured one moved");
    assert!(made_untrusted(&sensor, &d, "portcp", "after", "portcp2", "sync2"), "portcp is a port program after SIGHUP");
    let log = sensor.log_text();
    let restart_line = log.lines().find(|l| l.contains("need(s) a restart")).unwrap_or_else(|| panic!("no restart line:\n{log}"));
    assert!(restart_line.contains("ring_buffer_bytes") && !restart_line.contains("port_programs"), "{restart_line}");
    assert!(log.contains("applied port_programs, blocked_hosts"), "{log}");

    // Removed from the list: portcp is ordinary again.
    let status = sensor.reload(&format!("port_programs = [\"{d}/portcp2\"]\nblocked_hosts = [\"10.99.0.3\"]\nring_buffer_bytes = 8388608"));
    assert_eq!(status["config"]["reloads"], 2, "{status}");
    assert!(!made_untrusted(&sensor, &d, "portcp", "removed", "portcp2", "sync3"), "portcp left port_programs");

    let log = sensor.stop();
    assert!(!log.contains('\x1b'), "no terminal escape codes in a redirected log:\n{log:?}");
}

#[test]
fn a_broken_config_is_refused_with_its_line_and_key_and_the_running_one_kept() {
    let _guard = serial();
    let dir = temp_dir("reload-bad");
    for program in ["portcp", "portcp2"] {
        std::fs::copy("/usr/bin/cp", dir.join(program)).unwrap();
    }
    let d = dir.display().to_string();
    let good = format!("port_programs = [\"{d}/portcp\", \"{d}/portcp2\"]");
    let sensor = RunningSensor::start(&dir, &good);
    let loaded_ns = sensor.status()["config"]["loaded_ns"].as_u64().unwrap();
    assert!(loaded_ns > 0);

    // Line 5 of the file: its own three lines, then port_programs, then the bad key. The
    // port_programs line alone would have dropped portcp: nothing of it may be applied.
    let status = sensor.reload(&format!("port_programs = [\"{d}/portcp2\"]\ninterpreters = 5"));
    let error = status["config"]["last_reload_error"].as_str().unwrap_or_default().to_owned();
    assert_eq!((status["config"]["reloads"].as_u64(), status["config"]["failed_reloads"].as_u64()), (Some(0), Some(1)), "{status}");
    assert!(error.contains("line 5") && error.contains("interpreters") && error.contains("vtrail.toml"), "{error}");
    assert_eq!(status["config"]["loaded_ns"].as_u64(), Some(loaded_ns), "the configuration in effect is the one loaded at start");
    let log = sensor.log_text();
    let line = log.lines().find(|l| l.contains("NOT reloaded")).unwrap_or_else(|| panic!("no refusal in the log:\n{log}"));
    assert!(line.contains("ERROR") && line.contains("vtrail.toml"), "{line}");
    assert!(log.contains("line 5") && log.contains("interpreters = 5"), "{log}");
    assert!(made_untrusted(&sensor, &d, "portcp", "still", "portcp2", "sync"), "the running configuration still has portcp");

    // A value that parses but does not validate is refused the same way.
    let status = sensor.reload("ring_buffer_bytes = 5000");
    assert_eq!(status["config"]["failed_reloads"], 2, "{status}");
    assert!(status["config"]["last_reload_error"].as_str().unwrap_or_default().contains("ring_buffer_bytes"), "{status}");

    // Fixed: the next reload goes through and clears the error.
    let status = sensor.reload(&good);
    assert_eq!(status["config"]["reloads"], 1, "{status}");
    assert!(status["config"]["last_reload_error"].is_null(), "{status}");
    assert!(status["config"]["loaded_ns"].as_u64().unwrap() > loaded_ns);
    let log = sensor.stop();
    assert!(!log.contains("panicked"), "{log}");
}

/// What a reload unflags, a restart must unflag too: the pinned INODES map carries the
/// flags of the last sensor's port programs over, and a binary left out of the new file
/// must lose its role, and so must a process still running it.
#[test]
fn a_restart_drops_the_roles_of_programs_no_longer_configured() {
    let _guard = serial();
    let dir = temp_dir("reload-restart");
    for program in ["portcp", "portcp2"] {
        std::fs::copy("/usr/bin/cp", dir.join(program)).unwrap();
    }
    let d = dir.display().to_string();
    let sensor = RunningSensor::start(&dir, &format!("port_programs = [\"{d}/portcp\", \"{d}/portcp2\"]"));
    assert!(made_untrusted(&sensor, &d, "portcp", "first", "portcp2", "sync1"), "portcp is configured");
    // A long-lived portcp (blocked reading a fifo) that outlives the restart.
    sh(&format!("mkfifo {d}/fifo"));
    let waiting = std::process::Command::new(format!("{d}/portcp")).arg(format!("{d}/fifo")).arg(format!("{d}/late"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut waiting = KillOnDrop(waiting);
    sensor.stop_keeping_kernel_state();

    let sensor = RunningSensor::start(&dir, &format!("port_programs = [\"{d}/portcp2\"]"));
    assert!(!made_untrusted(&sensor, &d, "portcp", "second", "portcp2", "sync2"), "portcp left port_programs while stopped");
    sh(&format!("echo x > {d}/fifo"));
    waiting.0.wait().unwrap();
    upload(&d, "portcp2", "sync3");
    let g = sensor.wait_for("sync3 untrusted", |g| g.is_untrusted(&format!("{d}/sync3")));
    assert!(!g.is_untrusted(&format!("{d}/late")), "the portcp that ran across the restart lost its role");
}

/// A child that does not outlive a failed test (it would hold the test's output open).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
