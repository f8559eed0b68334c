//! The kprobe and fentry strategies, which this host's kernel cannot load, checked on
//! Debian's 6.1 kernel under QEMU: the real sensor binary runs `selftest` in the guest,
//! with the TC classifiers on crafted packets (`--network`).
use std::time::Duration;

use tests::{qemu, sensor::sensor_bin};

#[test]
fn kprobe_and_fentry_strategies_work_on_debian_6_1() {
    let run = qemu::run_in_guest(
        &sensor_bin(),
        &["selftest", "--strategies", "auto,kprobe,fentry,tracepoint", "--work", "/tmp/selftest", "--network"],
        &[],
        &[],
        Duration::from_secs(300),
    )
    .expect("boot Debian 6.1 under QEMU (qemu-system-x86, busybox-static and the kernel package are installed by the harness)");
    let console = &run.console;
    for line in [
        "SELFTEST Auto -> fentry PASS",
        "SELFTEST Kprobe -> kprobe PASS",
        "SELFTEST Fentry -> fentry PASS",
        "SELFTEST Tracepoint -> tracepoint PASS",
        "SELFTEST network PASS",
    ] {
        assert!(console.contains(line), "expected `{line}` in the guest console:\n{console}");
    }
    assert!(console.contains("`#!` script caught by security_bprm_check"), "{console}");
    // The kprobe and fentry strategies hook syscall wrappers, never syscall tracepoints.
    assert_eq!(console.matches("no syscall tracepoint attached").count(), 3, "{console}");
    assert_eq!(console.matches("tainted rename + chmod seen").count(), 4, "{console}");
    // 6.1 has no fchmodat2 (6.6), so each strategy prints it missing (as its own kind of
    // hook); the connection hook must load.
    let missing: Vec<&str> = console.lines().filter(|l| l.contains("optional hooks not attached:")).collect();
    assert_eq!(missing.len(), 4, "{console}");
    for (line, hook) in missing.iter().zip(["fx_sys_fchmodat2", "kp_sys_fchmodat2, kr_sys_fchmodat2", "fx_sys_fchmodat2", "tp_sys_enter_fchmodat2"]) {
        assert!(line.contains(hook) && !line.contains("inet_sock_set_state"), "expected {hook} in {line}");
    }
    assert_eq!(run.exit_marker, Some(0), "{console}");
}
