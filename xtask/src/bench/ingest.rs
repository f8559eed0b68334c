//! Ingest under a worm's load: a tainted process creating files as fast as it can,
//! writing into 10,000 files, and forking 10,000 children, each with the default ring
//! buffer. Off and on rounds alternate; every on round starts a fresh sensor and counts
//! what was delivered and what the kernel dropped, how long until every event was in the
//! graph, the sensor's CPU and its peak memory.
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{Sensor, median, spread, workload};

const ROUNDS: usize = 3;
/// The longest an on round waits for the sensor to record every event of its workload.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);

struct Case {
    name: &'static str,
    /// `vtrail-workload` arguments; `DIR` is replaced by the round's tmpfs directory.
    args: &'static [&'static str],
    /// Files made first by an untainted process (`rewrites` needs them).
    prepare: Option<&'static [&'static str]>,
    /// The event kind each unit of work produces once, and how many units.
    kind: &'static str,
    events: u64,
}

const CASES: [Case; 3] = [
    Case { name: "creates 200,000 files", args: &["creates", "200000", "DIR"], prepare: None, kind: "create", events: 200_000 },
    Case {
        name: "writes into 10,000 files",
        args: &["rewrites", "10000", "DIR"],
        prepare: Some(&["creates", "10000", "DIR"]),
        kind: "write",
        events: 10_000,
    },
    Case { name: "forks 10,000 children", args: &["forks", "10000", "-"], prepare: None, kind: "fork", events: 10_000 },
];

/// One on round's figures.
struct OnRound {
    workload_s: f64,
    delivered: u64,
    dropped: u64,
    /// From the workload's start until every event was delivered or counted dropped.
    recorded_s: f64,
    cpu_s: f64,
    peak_rss_kib: u64,
    /// Peak ring use, as a fraction of its size.
    ring_peak: f64,
    queue_peak_records: u64,
}

/// A fresh tmpfs per round: ext4 slows creates in a directory emptied of many files just
/// before (its allocator skips recently deleted inodes), which would time the file system.
struct Scratch {
    dir: std::path::PathBuf,
}

impl Scratch {
    fn mount(at: &Path) -> Result<Self> {
        std::fs::create_dir_all(at)?;
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2g", "vtrail-bench"]).arg(at).status()?;
        if !status.success() {
            bail!("cannot mount a tmpfs at {}", at.display());
        }
        let dir = at.join("w");
        std::fs::create_dir(&dir)?;
        Ok(Self { dir })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(at) = self.dir.parent() {
            let _ = Command::new("umount").arg(at).status();
        }
    }
}

fn args_in(args: &[&str], dir: &Path) -> Vec<String> {
    args.iter().map(|a| if *a == "DIR" { dir.display().to_string() } else { (*a).to_owned() }).collect()
}

fn run_workload(bin: &Path, args: &[String]) -> Result<f64> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    workload(bin, &args)
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): state is the 3rd field.
    let rest = stat.rsplit_once(')').context("bad /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("bad VmHWM")?.parse()?)
}

fn on_round(case: &Case, sensor_bin: &Path, dir: &Path, tainted: &Path, workload_bin: &Path) -> Result<OnRound> {
    let scratch = Scratch::mount(&dir.join("ingest-fs"))?;
    if let Some(prepare) = case.prepare {
        run_workload(workload_bin, &args_in(prepare, &scratch.dir))?;
    }
    let sensor = Sensor::start(sensor_bin, dir, "")?;
    sensor.cli(&["taint", tainted.to_str().context("path")?])?;
    std::thread::sleep(Duration::from_secs(2));
    let pid = sensor.pid();
    let cpu0 = cpu_seconds(pid)?;
    let started = Instant::now();
    let workload_s = run_workload(tainted, &args_in(case.args, &scratch.dir))?;
    let (delivered, dropped, status) = loop {
        let status = sensor.status()?;
        let delivered = status["events_received"][case.kind].as_u64().unwrap_or(0);
        let dropped = status["kernel_drops"][format!("ringbuf_full.{}", case.kind)].as_u64().unwrap_or(0);
        if delivered + dropped >= case.events {
            break (delivered, dropped, status);
        }
        if started.elapsed() > CATCH_UP_LIMIT {
            bail!("{}: after {CATCH_UP_LIMIT:?} the sensor holds {delivered} {} events and counted {dropped} drops of {}", case.name, case.kind, case.events);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let recorded_s = started.elapsed().as_secs_f64();
    let round = OnRound {
        workload_s,
        delivered,
        dropped,
        recorded_s,
        cpu_s: cpu_seconds(pid)? - cpu0,
        peak_rss_kib: peak_rss_kib(pid)?,
        ring_peak: status["ring"]["peak_used_bytes"].as_f64().unwrap_or(0.0) / status["ring"]["size_bytes"].as_f64().unwrap_or(f64::INFINITY),
        queue_peak_records: status["ring"]["peak_queued_records"].as_u64().unwrap_or(0),
    };
    if delivered + dropped != case.events {
        bail!("{}: {delivered} delivered + {dropped} dropped != {} {} events", case.name, case.events, case.kind);
    }
    drop(sensor);
    let _ = std::fs::remove_dir_all(dir.join("db"));
    Ok(round)
}

fn off_round(case: &Case, dir: &Path, tainted: &Path, workload_bin: &Path) -> Result<f64> {
    let scratch = Scratch::mount(&dir.join("ingest-fs"))?;
    if let Some(prepare) = case.prepare {
        run_workload(workload_bin, &args_in(prepare, &scratch.dir))?;
    }
    run_workload(tainted, &args_in(case.args, &scratch.dir))
}

pub fn run(sensor_bin: &Path, workload_bin: &Path, dir: &Path, tainted: &Path) -> Result<()> {
    println!("\n## ingest: a tainted process under load, default ring buffer ({ROUNDS} alternating off/on rounds; median [min-max])");
    println!("| workload | off: s (events/s) | on: s (events/s) | delivered/s | dropped | all recorded after | sensor CPU | peak RSS | ring peak | queue peak |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for case in &CASES {
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            for sensor_on in [round % 2 == 1, round % 2 == 0] {
                if sensor_on {
                    on.push(on_round(case, sensor_bin, dir, tainted, workload_bin)?);
                } else {
                    off.push(off_round(case, dir, tainted, workload_bin)?);
                }
            }
        }
        let n = case.events as f64;
        let pick = |f: fn(&OnRound) -> f64| -> Vec<f64> { on.iter().map(f).collect() };
        let rate = |s: f64| n / s;
        let off_s = median(off.clone());
        let on_s = median(pick(|r| r.workload_s));
        let delivered_rate = median(on.iter().map(|r| r.delivered as f64 / r.recorded_s).collect());
        let dropped: u64 = on.iter().map(|r| r.dropped).sum();
        println!(
            "| {} | {off_s:.3} {} ({:.0}) | {on_s:.3} {} ({:.0}) | {delivered_rate:.0} | {dropped} of {} | {:.2} s {} | {:.2} s {} | {:.0} MiB | {:.0} % | {:.0} |",
            case.name,
            spread(&off),
            rate(off_s),
            spread(&pick(|r| r.workload_s)),
            rate(on_s),
            case.events * ROUNDS as u64,
            median(pick(|r| r.recorded_s)),
            spread(&pick(|r| r.recorded_s)),
            median(pick(|r| r.cpu_s)),
            spread(&pick(|r| r.cpu_s)),
            median(pick(|r| r.peak_rss_kib as f64)) / 1024.0,
            median(pick(|r| r.ring_peak)) * 100.0,
            median(pick(|r| r.queue_peak_records as f64)),
        );
    }
    println!("(target: 0 dropped at >= 200,000 events/s or the workload's own rate; events/s = the workload's units / its seconds)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_placeholders_are_replaced_and_nothing_else() {
        assert_eq!(args_in(&["creates", "5", "DIR"], Path::new("/x")), vec!["creates", "5", "/x"]);
    }
}
