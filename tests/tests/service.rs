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

/// On-access scanning on (YARA-X, a rule matching `SCAN_ME`): what it needs - fanotify,
/// executable pages for the compiled rules - must be in the unit too.
fn scan_section(dir: &Path) -> String {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("t.yar"), "rule scan_me { strings: $a = \"SCAN_ME\" condition: $a }\n").unwrap();
    format!("[scan]\nyara_rules = \"{}\"\n", rules.display())
}

/// The evil process's write is scanned and flagged, under the unit's restrictions.
fn check_scanned(sensor: &RunningSensor, d: &str) {
    sh(&format!("{d}/evil -c 'echo SCAN_ME > {d}/flagged'"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while sensor.status()["scan"]["detected"].as_u64().unwrap_or(0) < 1 {
        assert!(Instant::now() < deadline, "the scan did not flag {d}/flagged: {}\n{}", sensor.status()["scan"], sensor.log_text());
        std::thread::sleep(Duration::from_millis(100));
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
        &format!("port_programs = [\"{d}/portcp\"]\nnetwork_monitoring = false\n{}", scan_section(&dir)),
        &["setpriv", "--bounding-set", &caps, "--inh-caps", "-all", "--"],
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")],
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

    // WatchdogSec=1s: a ping every half second from the event loop.
    let pings = messages("WATCHDOG=1\nWATCHDOG=1");
    assert!(pings.matches("WATCHDOG=1").count() >= 2, "no watchdog pings: {pings:?}");

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
    check_scanned(&sensor, &d);

    let log = sensor.stop();
    let stopping = messages("STOPPING=1");
    assert!(stopping.contains("STOPPING=1"), "no STOPPING=1 on SIGTERM: {stopping:?}\n{log}");
}

/// The syscalls `SystemCallFilter=` allows, its `@groups` expanded as this systemd
/// expands them (`systemd-analyze syscall-filter`).
fn allowed_syscalls(unit: &str) -> std::collections::BTreeSet<String> {
    fn expand(group: &str, into: &mut std::collections::BTreeSet<String>) {
        let out = Command::new("systemd-analyze").args(["syscall-filter", group]).output().expect("systemd-analyze");
        assert!(out.status.success(), "systemd-analyze syscall-filter {group}: {}", String::from_utf8_lossy(&out.stderr));
        // The first line names the group; the rest are syscalls, groups and `#` comments.
        for entry in String::from_utf8_lossy(&out.stdout).lines().skip(1).map(str::trim) {
            match entry {
                "" => {}
                e if e.starts_with('#') => {}
                e if e.starts_with('@') => expand(e, into),
                e => {
                    into.insert(e.to_owned());
                }
            }
        }
    }
    let mut allowed = std::collections::BTreeSet::new();
    let lines: Vec<&str> = unit.lines().filter_map(|l| l.strip_prefix("SystemCallFilter=")).collect();
    assert!(!lines.is_empty(), "the unit has a SystemCallFilter=");
    for entry in lines.iter().flat_map(|l| l.split_whitespace()) {
        assert!(!entry.starts_with('~'), "an allow list is expected, not a deny list: {entry}");
        match entry.strip_prefix('@') {
            Some(_) => expand(entry, &mut allowed),
            None => {
                allowed.insert(entry.to_owned());
            }
        }
    }
    allowed
}

/// Every syscall the sensor makes - from loading its programs to its last flush on SIGTERM,
/// recording in between - is one the unit's `SystemCallFilter=` allows. PID 1 here is not
/// systemd, so the filter is checked against what `strace -f` saw the sensor (with the
/// unit's capabilities) call: a syscall missing from the list would kill the service.
#[test]
fn the_units_syscall_filter_allows_every_syscall_the_sensor_makes() {
    let _guard = serial();
    let dir = temp_dir("syscalls");
    let d = dir.display().to_string();
    let unit = std::fs::read_to_string(unit_dir().join("vtrail-sensor.service")).unwrap();
    let allowed = allowed_syscalls(&unit);
    let trace = dir.join("strace.txt");
    std::fs::copy("/usr/bin/cp", dir.join("portcp")).unwrap();
    let caps = bounding_set(&unit);
    let sensor = RunningSensor::start_as(
        &dir,
        &format!("port_programs = [\"{d}/portcp\"]\n{}", scan_section(&dir)),
        &["strace", "-f", "-qq", "-o", trace.to_str().unwrap(), "--", "setpriv", "--bounding-set", &caps, "--inh-caps", "-all", "--"],
        &[],
    );
    sh(&format!("{d}/portcp /usr/bin/dash {d}/evil && chmod +x {d}/evil"));
    sensor.wait_for("evil untrusted", |g| g.is_untrusted(&format!("{d}/evil")));
    sh(&format!("{d}/evil -c 'echo x > {d}/out'"));
    sensor.wait_for("out untrusted", |g| g.is_untrusted(&format!("{d}/out")));
    check_scanned(&sensor, &d);
    assert!(sensor.cli(&["block", "192.0.2.7"]).status.success());

    // SIGTERM to the sensor itself (strace's child), then wait for it to be gone, so the
    // trace holds its shutdown too.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", sensor.pid())).unwrap();
    let traced: i32 = children.split_whitespace().next().expect("strace's child").parse().unwrap();
    unsafe { libc::kill(traced, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Path::new(&format!("/proc/{traced}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = sensor.stop();
    let text = std::fs::read_to_string(&trace).unwrap();
    // `PID name(args) = ret`, `PID <... name resumed> ...`, `PID --- SIGTERM ... ---`.
    // From the sensor's exec on: setpriv's own calls before it (capset, prctl) are not
    // the service's, systemd makes them.
    let from_exec = text.lines().skip_while(|l| !(l.contains("execve(\"") && l.contains("vtrail-sensor\"")));
    let mut used = std::collections::BTreeSet::new();
    for line in from_exec {
        let rest = line.split_once(' ').map_or(line, |(_, r)| r).trim_start();
        let name = match rest.strip_prefix("<... ") {
            Some(r) => r.split(' ').next(),
            None if rest.starts_with("---") || rest.starts_with("+++") => None,
            None => rest.split('(').next(),
        };
        if let Some(n) = name.filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
            used.insert(n.to_owned());
        }
    }
    assert!(used.contains("bpf") && used.len() > 20, "the trace holds the sensor's syscalls: {used:?}\n{log}");
    let missing: Vec<&String> = used.iter().filter(|s| !allowed.contains(*s)).collect();
    assert!(missing.is_empty(), "syscalls the sensor made that SystemCallFilter= does not allow: {missing:?}");
}
