//! `vtrail-sensor selftest`: loads one hook strategy at a time, marks a copy of a shell
//! untrusted, runs it and an untrusted `#!` script, and checks from the raw events that
//! the exec was tainted and the tainted write seen. No database, no socket: it is what
//! runs inside the QEMU guests that have kprobes and fentry, which this host lacks.
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use sensor_common::{event::EventKind, maps::INODE_UNTRUSTED};

use crate::{
    config::{Config, StrategyChoice},
    decode::events::{self, SensorEvent},
    host::procfs::{self, WallClock},
    kernel::{
        sensor::{self, Sensor},
        strategy::Strategy,
    },
};

/// A shell to copy as the "virus": busybox in the guest, dash on a Debian host.
fn shell_binary() -> Result<(PathBuf, bool)> {
    for (path, busybox) in [("/usr/bin/dash", false), ("/bin/busybox", true)] {
        if Path::new(path).exists() {
            return Ok((path.into(), busybox));
        }
    }
    bail!("no shell to copy (/usr/bin/dash, /bin/busybox)")
}

pub struct Outcome {
    pub requested: StrategyChoice,
    pub chosen: Option<Strategy>,
    pub failures: Vec<String>,
    pub notes: Vec<String>,
}

pub fn run(choices: &[StrategyChoice], work: &Path) -> Result<Vec<Outcome>> {
    sensor::preflight()?;
    std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let mut outcomes = Vec::new();
    for &choice in choices {
        outcomes.push(run_one(choice, work));
    }
    Ok(outcomes)
}

fn run_one(choice: StrategyChoice, work: &Path) -> Outcome {
    let mut outcome = Outcome { requested: choice, chosen: None, failures: Vec::new(), notes: Vec::new() };
    if let Err(e) = check(choice, work, &mut outcome) {
        outcome.failures.push(format!("{e:#}"));
    }
    outcome
}

fn check(choice: StrategyChoice, work: &Path, outcome: &mut Outcome) -> Result<()> {
    let mut config = Config::embedded_default();
    config.hook_strategy = choice;
    config.port_programs.clear();
    config.interpreters.clear(); // scripts must be caught by the exec hook itself
    let mut sensor = Sensor::load(&config, None)?;
    outcome.chosen = Some(sensor.strategy);
    if !sensor.missing.is_empty() {
        outcome.notes.push(format!("optional hooks not attached: {}", sensor.missing.join(", ")));
    }
    let largest: Vec<String> = sensor
        .program_sizes()
        .into_iter()
        .take(3)
        .map(|(name, verified, bytes)| {
            let verified = verified.map_or("?".to_string(), |n| n.to_string());
            format!("{name} {verified} insns {} B", bytes.unwrap_or(0))
        })
        .collect();
    outcome.notes.push(format!("{} programs attached, largest (verified insns, translated bytes): {}", sensor.attached.len(), largest.join(", ")));
    let tag = format!("{:?}", sensor.strategy).to_lowercase();
    let (shell, busybox) = shell_binary()?;

    // A directory per strategy; the copy keeps its name (busybox dispatches on argv[0]).
    let work = &work.join(&tag);
    std::fs::create_dir_all(work)?;
    let evil = work.join(shell.file_name().context("shell path has no file name")?);
    std::fs::copy(&shell, &evil)?;
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755))?;
    let script = work.join(format!("evil-{tag}.sh"));
    let script_out = work.join(format!("script-out-{tag}"));
    let interpreter = if busybox { format!("{} sh", shell.display()) } else { shell.display().to_string() };
    std::fs::write(&script, format!("#!{interpreter}\necho s > {}\n", script_out.display()))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    for file in [&evil, &script] {
        let (key, generation) = procfs::inode_of(file)?;
        sensor.add_inode_flags(key, INODE_UNTRUSTED, generation)?;
    }

    let out = work.join(format!("out-{tag}"));
    let moved = work.join(format!("moved-{tag}"));
    // Through the untrusted copy (busybox runs its applets when named as argv[1]), so that
    // the rename and chmod come from tainted processes whatever the guest has in PATH.
    let tool = |name: &str| if busybox { format!("{} {name}", evil.display()) } else { name.to_string() };
    let mut cmd = Command::new(&evil);
    if busybox {
        cmd.arg("sh");
    }
    let commands = format!(
        "echo hi > {out} && {mv} {out} {moved} && {chmod} 755 {moved}",
        out = out.display(),
        moved = moved.display(),
        mv = tool("mv"),
        chmod = tool("chmod"),
    );
    let status = cmd.arg("-c").arg(commands).status()?;
    if !status.success() {
        bail!("{} failed: {status}", evil.display());
    }
    let status = Command::new(&script).status()?;
    if !status.success() {
        bail!("{} failed: {status}", script.display());
    }

    let events = drain(&mut sensor, Duration::from_secs(2));
    let evil_s = evil.display().to_string();
    let exec = events.iter().find(|e| e.kind == EventKind::Exec && e.path.as_deref() == Some(&evil_s) && e.taint_reason == Some(sensor_common::graph::TaintReason::ExecUntrusted));
    let Some(exec) = exec else {
        bail!("no tainted exec of {evil_s} among {} events: {:?}", events.len(), events.iter().map(|e| (e.kind, e.path.clone())).collect::<Vec<_>>());
    };
    let out_s = out.display().to_string();
    let moved_s = moved.display().to_string();
    // The path of a create is where the file is when userspace reads the record: by then
    // `mv` may have moved it (a host that can search for the inode reports the new name).
    let wrote = events.iter().any(|e| {
        e.tgid == exec.tgid && e.tainted && e.kind == EventKind::Create && (e.path.as_deref() == Some(&out_s) || e.path.as_deref() == Some(&moved_s))
    });
    if !wrote {
        bail!(
            "the tainted process did not report creating {out_s}: {:?}",
            events.iter().map(|e| (e.kind, e.tgid, e.tainted, e.path.clone())).collect::<Vec<_>>()
        );
    }
    outcome.notes.push(format!("tainted exec + create seen ({} events)", events.len()));
    let renamed = events.iter().any(|e| {
        e.kind == EventKind::Rename && e.tainted && e.path.as_deref() == Some(&out_s) && e.path2.as_deref() == Some(&moved_s)
    });
    let chmodded = events.iter().any(|e| e.kind == EventKind::Chmod && e.tainted && e.path.as_deref() == Some(&moved_s));
    if !renamed || !chmodded {
        bail!("tainted rename seen: {renamed}, tainted chmod seen: {chmodded} (of {out_s} -> {moved_s})");
    }
    outcome.notes.push("tainted rename + chmod seen".into());
    // The point of hooking syscall wrappers: no syscall tracepoint, so the syscalls this
    // sensor does not follow (write(2) above all) stay on the kernel's fast path.
    let syscall_tracepoints: Vec<&String> = sensor.attached.iter().filter(|p| p.starts_with("tp_sys_")).collect();
    match (sensor.strategy, syscall_tracepoints.is_empty()) {
        (Strategy::Tracepoint, _) => {}
        (_, true) => outcome.notes.push("no syscall tracepoint attached".into()),
        (_, false) => bail!("{:?} attached syscall tracepoints: {syscall_tracepoints:?}", sensor.strategy),
    }

    let script_s = script.display().to_string();
    let script_caught = events.iter().any(|e| e.kind == EventKind::Exec && e.path.as_deref() == Some(&script_s) && e.tainted);
    match (sensor.strategy, script_caught) {
        (Strategy::Kprobe | Strategy::Fentry, true) => outcome.notes.push("`#!` script caught by security_bprm_check".into()),
        (Strategy::Kprobe | Strategy::Fentry, false) => bail!("untrusted `#!` script {script_s} not caught by the bprm hook"),
        (Strategy::Tracepoint, caught) => outcome.notes.push(format!(
            "`#!` script with no interpreter rule: {} (tracepoints rely on rule 3)",
            if caught { "caught" } else { "not caught" }
        )),
    }
    if matches!(sensor.strategy, Strategy::Kprobe | Strategy::Fentry) {
        // Only these strategies hook vfs_write (the tracepoint one marks files at open).
        let via_vfs_write = events.iter().any(|e| e.tgid == exec.tgid && e.kind == EventKind::Write && e.write_via == Some(sensor_common::graph::WriteVia::Write));
        if !via_vfs_write {
            bail!("no write reported by the vfs_write hook");
        }
        outcome.notes.push("write seen by vfs_write".into());
    }
    Ok(())
}

fn drain(sensor: &mut Sensor, quiet: Duration) -> Vec<SensorEvent> {
    let clock = WallClock::now();
    let mut out = Vec::new();
    let Some(mut ring) = sensor.take_events() else { return out };
    let deadline = Instant::now() + quiet;
    while Instant::now() < deadline {
        while let Some(item) = ring.next() {
            if let Ok(raw) = events::parse(&item) {
                out.push(events::decode(&raw, &clock));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    out
}
