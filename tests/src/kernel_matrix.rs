//! The kernel matrix: `vtrail-sensor selftest` with every strategy (and `--network`) on
//! each Debian kernel of [`crate::qemu::kernels::MATRIX`] under QEMU and on this host's
//! kernel natively, read into one table (`cargo xtask kernels`, `tests/tests/kernels.rs`).
//!
//! Reading the console (`parse_selftest`) is apart from booting (`run_kernel`), so the
//! parser is tested on its own.
use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context, Result};

use crate::qemu::{self, GuestKernel};

/// The strategies asked for, in the order selftest runs them.
pub const STRATEGIES: &str = "auto,kprobe,fentry,tracepoint";

/// How long one guest may take: four strategies loaded one after another under TCG (about
/// 220 s for bookworm's 6.1 on this 2-core VM).
pub const GUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// One `SELFTEST` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// `Auto`, `Kprobe`, `Fentry`, `Tracepoint`, or `network`.
    pub requested: String,
    /// The strategy loaded (`none` when none could be).
    pub chosen: String,
    pub passed: bool,
    /// What it said: programs attached and the largest, hooks missing, checks passed, or why
    /// it failed.
    pub notes: Vec<String>,
}

impl Check {
    /// `N programs attached, largest ...`, if it said.
    pub fn programs(&self) -> Option<&str> {
        self.notes.iter().find(|n| n.contains("programs attached")).map(String::as_str)
    }

    /// For the table: `22, largest fx_sys_openat2 (39640 B, 12345 insns)`.
    pub fn programs_short(&self) -> String {
        let Some(note) = self.programs() else { return "-".into() };
        let count = note.split_whitespace().next().unwrap_or("?");
        let largest = note.split_once("): ").map(|(_, l)| l.split(", ").next().unwrap_or("")).unwrap_or("");
        // `name N insns B B` (N is `?` before 5.16, which does not report it).
        match largest.split_whitespace().collect::<Vec<_>>().as_slice() {
            [name, insns, "insns", bytes, "B"] => format!("{count}, largest {name} ({bytes} B, {insns} insns)"),
            _ => count.to_string(),
        }
    }

    /// A strategy this kernel does not offer (no kprobe PMU, fentry refused): not a failure
    /// of the sensor, which falls back, but a row of the table.
    pub fn unavailable(&self) -> bool {
        !self.passed && self.chosen == "none" && self.notes.iter().any(|n| n.contains("no hook strategy works on this kernel"))
    }
}

/// One kernel's results.
#[derive(Clone, Debug)]
pub struct KernelResult {
    pub kernel: String,
    pub release: String,
    pub checks: Vec<Check>,
    /// The guest did not boot, or selftest did not report every strategy: why.
    pub error: Option<String>,
    pub seconds: f64,
    /// What the guest printed (selftest's output on this host).
    pub console: String,
}

impl KernelResult {
    /// Every strategy passed or is unavailable on this kernel, the network checks passed,
    /// and `auto` chose something.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.checks.iter().all(|c| c.passed || (c.requested != "Auto" && c.requested != "network" && c.unavailable()))
            && self.checks.iter().any(|c| c.requested == "Auto" && c.passed)
            && self.checks.iter().any(|c| c.requested == "network" && c.passed)
    }
}

/// The `SELFTEST <requested> -> <chosen> <PASS|FAIL>: notes; ...` and `SELFTEST network
/// <PASS|FAIL>: ...` lines of a console, in order.
pub fn parse_selftest(console: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    for line in console.lines() {
        let Some(rest) = line.trim().strip_prefix("SELFTEST ") else { continue };
        let (head, notes) = rest.split_once(": ").unwrap_or((rest, ""));
        let words: Vec<&str> = head.split_whitespace().collect();
        let (requested, chosen, verdict) = match words.as_slice() {
            [requested, "->", chosen, verdict] => (*requested, *chosen, *verdict),
            ["network", verdict] => ("network", "tc", *verdict),
            _ => continue,
        };
        checks.push(Check {
            requested: requested.to_string(),
            chosen: chosen.to_string(),
            passed: verdict == "PASS",
            notes: notes.split("; ").filter(|n| !n.is_empty()).map(str::to_string).collect(),
        });
    }
    checks
}

fn expect_all(kernel: &str, release: &str, console: String, seconds: f64) -> KernelResult {
    let checks = parse_selftest(&console);
    let reported: Vec<&str> = checks.iter().map(|c| c.requested.as_str()).collect();
    let missing: Vec<&str> = ["Auto", "Kprobe", "Fentry", "Tracepoint", "network"].into_iter().filter(|r| !reported.contains(r)).collect();
    let error = (!missing.is_empty()).then(|| format!("selftest reported nothing for {}; last lines:\n{}", missing.join(", "), qemu::tail(&console, 40)));
    KernelResult { kernel: kernel.to_string(), release: release.to_string(), checks, error, seconds, console }
}

/// Boots `kernel` and runs the selftest there.
pub fn run_kernel(sensor: &Path, kernel: &GuestKernel) -> KernelResult {
    let started = std::time::Instant::now();
    let run = qemu::run_in_kernel(
        kernel,
        sensor,
        &["selftest", "--strategies", STRATEGIES, "--work", "/tmp/selftest", "--network"],
        &[],
        &[],
        GUEST_TIMEOUT,
    );
    let seconds = started.elapsed().as_secs_f64();
    match run {
        Ok(run) => expect_all(kernel.name, kernel.release, run.console, seconds),
        Err(e) => KernelResult {
            kernel: kernel.name.to_string(),
            release: kernel.release.to_string(),
            checks: Vec::new(),
            error: Some(format!("{e:#}")),
            seconds,
            console: String::new(),
        },
    }
}

/// The selftest on this host's own kernel.
pub fn run_native(sensor: &Path, work: &Path) -> Result<KernelResult> {
    let started = std::time::Instant::now();
    let out = Command::new(sensor)
        .args(["selftest", "--strategies", STRATEGIES, "--network", "--work"])
        .arg(work)
        .output()
        .with_context(|| format!("running {} selftest", sensor.display()))?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let console = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok(expect_all("this host", &release, console, started.elapsed().as_secs_f64()))
}

/// The table: one row per kernel and strategy.
pub fn table(results: &[KernelResult]) -> String {
    let mut rows = vec![["kernel", "strategy", "result", "programs (largest, verifier insns)", "notes"].map(String::from).to_vec()];
    for r in results {
        let kernel = format!("{} ({}, {:.0} s)", r.kernel, r.release, r.seconds);
        if let Some(e) = &r.error {
            rows.push(vec![kernel.clone(), "-".into(), "ERROR".into(), "-".into(), e.lines().next().unwrap_or("").to_string()]);
        }
        for c in &r.checks {
            let result = if c.passed {
                "PASS".to_string()
            } else if c.unavailable() {
                "unavailable".to_string()
            } else {
                "FAIL".to_string()
            };
            let strategy = if c.requested == "network" { "network (TC)".to_string() } else { format!("{} -> {}", c.requested.to_lowercase(), c.chosen) };
            let notes: Vec<&str> = c.notes.iter().map(String::as_str).filter(|n| !n.contains("programs attached")).collect();
            rows.push(vec![kernel.clone(), strategy, result, c.programs_short(), notes.join("; ")]);
        }
    }
    crate::table::aligned(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "\
[    3.1] random kernel line
SELFTEST Auto -> fentry PASS: 22 programs attached, largest (verified insns, translated bytes): fx_a 9 insns 10 B; tainted exec + create seen (12 events)
SELFTEST Kprobe -> kprobe FAIL: the tainted process did not report creating /tmp/x
SELFTEST Fentry -> none FAIL: no hook strategy works on this kernel (configured: Fentry): Fentry: EPERM
SELFTEST Tracepoint -> tracepoint PASS: optional hooks not attached: tp_sys_enter_fchmodat2
SELFTEST network PASS: tc_ingress, tc_egress loaded
VTRAIL-GUEST-EXIT=1
";

    #[test]
    fn selftest_lines_are_read_with_their_notes() {
        let checks = parse_selftest(CONSOLE);
        assert_eq!(checks.len(), 5);
        assert_eq!((checks[0].requested.as_str(), checks[0].chosen.as_str(), checks[0].passed), ("Auto", "fentry", true));
        assert!(checks[0].programs().unwrap().starts_with("22 programs attached"));
        assert_eq!(checks[0].programs_short(), "22, largest fx_a (10 B, 9 insns)");
        assert!(!checks[1].passed && !checks[1].unavailable(), "a failed check is a failure");
        assert!(checks[2].unavailable(), "a strategy the kernel lacks is a row, not a failure");
        assert_eq!(checks[3].notes, ["optional hooks not attached: tp_sys_enter_fchmodat2"]);
        assert_eq!((checks[4].requested.as_str(), checks[4].passed), ("network", true));
    }

    #[test]
    fn a_kernel_passes_only_when_every_strategy_passes_or_is_absent() {
        let result = expect_all("k", "r", CONSOLE.into(), 1.0);
        assert!(!result.ok(), "kprobe failed its checks");
        let fixed = CONSOLE.replace("Kprobe -> kprobe FAIL", "Kprobe -> kprobe PASS");
        assert!(expect_all("k", "r", fixed.clone(), 1.0).ok());
        // A strategy that never reported (the guest died) fails the kernel.
        let cut: String = fixed.lines().take(3).collect::<Vec<_>>().join("\n");
        let result = expect_all("k", "r", cut, 1.0);
        assert!(!result.ok() && result.error.as_deref().is_some_and(|e| e.contains("Tracepoint, network")), "{:?}", result.error);
        let table = table(&[result]);
        assert!(table.contains("ERROR") && table.contains("auto -> fentry"), "{table}");
    }
}
