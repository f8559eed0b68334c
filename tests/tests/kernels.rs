//! One binary on the kernels file servers run: the real sensor binary runs `selftest` with
//! every hook strategy, and with the TC classifiers on crafted packets (`--network`), in
//! Debian's 5.10, 6.1 and 6.12 under QEMU (this host's 6.18 allows tracepoints only; its
//! own row is `cargo xtask kernels`). One guest at a time: two TCG guests on two cores
//! would each take twice as long.
use std::sync::Mutex;

use tests::{
    kernel_matrix::{self, KernelResult},
    qemu::kernels::{self, GuestKernel},
    sensor::sensor_bin,
};

static ONE_GUEST_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Boots `kernel`, prints its rows of the table, and requires every strategy to pass.
fn selftest_on(kernel: &GuestKernel) -> KernelResult {
    let _one = ONE_GUEST_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let result = kernel_matrix::run_kernel(&sensor_bin(), kernel);
    let table = kernel_matrix::table(std::slice::from_ref(&result));
    eprintln!("{table}");
    assert!(result.error.is_none(), "{}: {}", kernel.name, result.error.as_deref().unwrap_or(""));
    for check in &result.checks {
        assert!(check.passed, "{} {}: {}\n{table}\n{}", kernel.name, check.requested, check.notes.join("; "), result.console);
    }
    result
}

/// The console lines that say which optional hooks were not attached, one per strategy.
fn missing_hooks(console: &str) -> Vec<&str> {
    console.lines().filter(|l| l.contains("optional hooks not attached:")).collect()
}

fn common_checks(r: &KernelResult, auto: &str) {
    let console = &r.console;
    assert!(console.contains(&format!("SELFTEST Auto -> {auto} PASS")), "{console}");
    for line in ["SELFTEST Kprobe -> kprobe PASS", "SELFTEST Fentry -> fentry PASS", "SELFTEST Tracepoint -> tracepoint PASS", "SELFTEST network PASS"] {
        assert!(console.contains(line), "expected `{line}` in the guest console:\n{console}");
    }
    assert!(console.contains("`#!` script caught by security_bprm_check"), "{console}");
    // The kprobe and fentry strategies hook syscall wrappers, never syscall tracepoints.
    assert_eq!(console.matches("no syscall tracepoint attached").count(), 3, "{console}");
    assert_eq!(console.matches("tainted rename + chmod seen").count(), 4, "{console}");
    assert_eq!(console.matches("programs attached, largest").count(), 4, "{console}");
}

/// Before 6.6 there is no fchmodat2: each strategy reports it missing (as its own kind of
/// hook), and nothing else; the connection hook must load.
fn only_fchmodat2_missing(r: &KernelResult) {
    let missing = missing_hooks(&r.console);
    assert_eq!(missing.len(), 4, "{}", r.console);
    for (line, hook) in missing.iter().zip(["fx_sys_fchmodat2", "kp_sys_fchmodat2, kr_sys_fchmodat2", "fx_sys_fchmodat2", "tp_sys_enter_fchmodat2"]) {
        assert!(line.contains(hook) && !line.contains("inet_sock_set_state"), "expected {hook} in {line}");
    }
}

#[test]
fn every_strategy_works_on_debian_5_10() {
    let r = selftest_on(&kernels::BULLSEYE);
    common_checks(&r, "fentry");
    only_fchmodat2_missing(&r);
}

#[test]
fn every_strategy_works_on_debian_6_1() {
    let r = selftest_on(&kernels::BOOKWORM);
    common_checks(&r, "fentry");
    only_fchmodat2_missing(&r);
}

#[test]
fn every_strategy_works_on_debian_6_12() {
    let r = selftest_on(&kernels::TRIXIE);
    common_checks(&r, "fentry");
    // fchmodat2 (6.6) is there: every hook of every strategy attaches.
    assert_eq!(missing_hooks(&r.console), Vec::<&str>::new(), "{}", r.console);
    // 6.12 reports what the verifier processed (5.16+): the sizes are known.
    assert!(!r.checks.iter().filter_map(|c| c.programs()).any(|p| p.contains("? insns")), "{}", r.console);
}
