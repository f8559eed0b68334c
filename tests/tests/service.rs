//! Running as a service: the systemd units pass `systemd-analyze verify`, and the sensor
//! started the way its unit starts it - only the unit's capabilities (its
//! `CapabilityBoundingSet`, applied with setpriv, since this machine's PID 1 is not
//! systemd), `$NOTIFY_SOCKET` set - loads, tells the manager READY=1 once it records,
//! records a tainted exec and write, and says STOPPING=1 on SIGTERM.
use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use tests::sensor::{RunningSensor, bin_dir, serial, sh, temp_dir};

fn unit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd")
}

/// A unit as installed: `@BINDIR@` and `@DOCDIR@` filled in.
fn installed_unit(name: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(unit_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let text = text.replace("@BINDIR@", &bin_dir().display().to_string()).replace("@DOCDIR@", env!("CARGO_MANIFEST_DIR"));
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_units_verify() {
    let dir = temp_dir("units");
    for unit in ["vtrail-sensor.service", "vtrail-ddns.service", "vtrail-collect.service"] {
        let path = installed_unit(unit, &dir);
        let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze (Debian package systemd)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.trim().is_empty(), "{unit}: systemd-analyze verify: {}\n{stderr}", out.status);
    }
}

/// `CAP_BPF CAP_NET_ADMIN` -> `-all,+bpf,+net_admin` (setpriv's form).
fn bounding_set(unit: &str) -> String {
    let line = unit.lines().find_map(|l| l.strip_prefix("CapabilityBoundingSet=")).expect("the unit sets CapabilityBoundingSet");
    let caps: Vec<String> = line.split_whitespace().map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase())).collect();
    format!("-all,{}", caps.join(","))
}

/// Bit numbers of the capabilities (linux/capability.h) the unit may name.
fn cap_bit(name: &str) -> u32 {
    match name {
        "CAP_DAC_READ_SEARCH" => 2,
        "CAP_NET_ADMIN" => 12,
        "CAP_SYS_ADMIN" => 21,
        "CAP_SYS_PTRACE" => 19,
        "CAP_SYS_RESOURCE" => 24,
        "CAP_PERFMON" => 38,
        "CAP_BPF" => 39,
        other => panic!("add {other} to cap_bit"),
    }
}

#[test]
fn the_sensor_runs_with_only_its_units_capabilities_and_notifies_readiness() {
    let _guard = serial();
    let dir = temp_dir("service");
    let d = dir.display().to_string();
    let unit = std::fs::read_to_string(unit_dir().join("vtrail-sensor.service")).unwrap();
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    std::fs::copy("/usr/bin/cp", dir.join("portcp")).unwrap();
    let caps = bounding_set(&unit);
    let sensor = RunningSensor::start_as(
        &dir,
        &format!("port_programs = [\"{d}/portcp\"]\nnetwork_monitoring = false"),
        &["setpriv", "--bounding-set", &caps, "--inh-caps", "-all", "--"],
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    let messages = |until: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        while !got.contains(until) && Instant::now() < deadline {
            if let Ok(n) = notify.recv(&mut buf) {
                got.push_str(&String::from_utf8_lossy(&buf[..n]));
                got.push('\n');
            }
        }
        got
    };
    let ready = messages("READY=1");
    assert!(ready.contains("READY=1") && ready.contains("STATUS=recording"), "no READY=1 from the sensor: {ready:?}\n{}", sensor.log_text());

    // Exactly the unit's capabilities, nothing more (of those this machine grants at all:
    // this VM's own bounding set lacks CAP_SYS_RESOURCE, which 6.18 does not need since maps
    // are charged to the memory cgroup, not RLIMIT_MEMLOCK).
    let caps_of = |pid: &str, field: &str| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status.lines().find_map(|l| l.strip_prefix(field)).map(|v| u64::from_str_radix(v.trim(), 16).unwrap()).unwrap()
    };
    let eff = caps_of(&sensor.pid().to_string(), "CapEff:");
    let unit_set = unit.lines().find_map(|l| l.strip_prefix("CapabilityBoundingSet=")).unwrap().split_whitespace().fold(0u64, |m, c| m | 1 << cap_bit(c));
    assert_eq!(eff, unit_set & caps_of("self", "CapBnd:"), "the sensor's effective capabilities are not the unit's set");

    // And with them it records: an upload by the port program, its exec, what that writes.
    sh(&format!("{d}/portcp /usr/bin/dash {d}/evil && chmod +x {d}/evil"));
    sensor.wait_for("evil untrusted", |g| g.is_untrusted(&format!("{d}/evil")));
    sh(&format!("{d}/evil -c 'echo x > {d}/out'"));
    sensor.wait_for("out untrusted", |g| g.is_untrusted(&format!("{d}/out")));

    let log = sensor.stop();
    let stopping = messages("STOPPING=1");
    assert!(stopping.contains("STOPPING=1"), "no STOPPING=1 on SIGTERM: {stopping:?}\n{log}");
}
