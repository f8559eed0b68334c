//! On-access scanning: close -> verdict latency by file size and engine, scans/s, and the
//! cost on an untainted workload (none of whose files is scanned) with scanning on and with
//! hold_until_scanned on, each against the sensor with scanning off in the same run.
use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{Sensor, median, spread, workload};

/// Latency samples per (engine, size).
const SAMPLES: usize = 11;
const SIZES: [(&str, usize); 3] = [("1 KiB", 1 << 10), ("1 MiB", 1 << 20), ("100 MiB", 100 << 20)];
/// Files the tainted workload creates for the throughput figure.
const SCANS: u64 = 2_000;
/// Files the untainted workload creates per overhead round.
const UNTAINTED_CREATES: &str = "20000";
const OVERHEAD_ROUNDS: usize = 5;

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn rules(dir: &Path) -> Result<PathBuf> {
    let rules = dir.join("scan-rules");
    std::fs::create_dir_all(&rules)?;
    std::fs::write(
        rules.join("bench.yar"),
        "rule bench_marker { strings: $a = \"VTRAIL-BENCH-MARKER\" $b = { 4D 5A 90 00 03 } condition: any of them }\n",
    )?;
    Ok(rules)
}

/// clamd from Debian's package on one signature of ours, sized for 100 MiB streams.
struct Clamd {
    child: Child,
    socket: PathBuf,
}

impl Clamd {
    fn start(dir: &Path) -> Result<Self> {
        let db = dir.join("clamdb");
        std::fs::create_dir_all(&db)?;
        std::fs::write(db.join("bench.ndb"), format!("Vtrail.Bench.Marker:0:*:{}\n", hex(b"VTRAIL-BENCH-MARKER")))?;
        let socket = dir.join("clamd.sock");
        let conf = dir.join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "LocalSocket {}\nDatabaseDirectory {}\nForeground yes\nLogFile {}/clamd.log\nBytecode no\nUser root\n\
                 StreamMaxLength 200M\nMaxFileSize 200M\nMaxScanSize 200M\n",
                socket.display(),
                db.display(),
                dir.display()
            ),
        )?;
        let child = Command::new("/usr/sbin/clamd").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().context("start clamd (Debian package clamav-daemon)")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if Instant::now() > deadline {
                bail!("clamd did not listen on {} within 60 s", socket.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(Self { child, socket })
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

/// The `scan` of the file node whose first path is `path`, from an export.
fn verdict_ts(sensor: &Sensor, path: &Path) -> Result<Option<u64>> {
    let text = sensor.cli(&["export", "--format", "json"])?;
    let want = path.display().to_string();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let node = &v["node"];
        if node["kind"] == "file" && node["paths"].as_array().is_some_and(|p| p.iter().any(|x| x == want.as_str())) {
            return Ok(node["scan"]["ts_ns"].as_u64());
        }
    }
    Ok(None)
}

/// Close -> verdict: the bench rewrites a file it marked untrusted (an untainted writer of
/// an untrusted file: its close is scanned) and reads the verdict's time off the graph.
fn latency(sensor: &Sensor, dir: &Path, size: usize) -> Result<Vec<f64>> {
    let path = dir.join(format!("latency-{size}.bin"));
    std::fs::write(&path, b"")?;
    sensor.cli(&["taint", path.to_str().context("path")?])?;
    let mut samples = Vec::new();
    for round in 0..SAMPLES {
        // Different bytes each round (a new version: no cached verdict), a marker-free body.
        let mut body = vec![b'a' + (round % 26) as u8; size];
        body[0] = b'#';
        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&path)?;
        f.write_all(&body)?;
        drop(f);
        let closed = now_ns();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(ts) = verdict_ts(sensor, &path)?
                && ts >= closed
            {
                samples.push((ts - closed) as f64 / 1e6);
                break;
            }
            if Instant::now() > deadline {
                bail!("no verdict for {} ({size} bytes) within 60 s", path.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(samples)
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[((s.len() - 1) as f64 * p).round() as usize]
}

struct Scratch(PathBuf);

impl Scratch {
    fn mount(at: &Path) -> Result<Self> {
        std::fs::create_dir_all(at)?;
        if !Command::new("mount").args(["-t", "tmpfs", "-o", "size=1g", "vtrail-scan-bench"]).arg(at).status()?.success() {
            bail!("cannot mount a tmpfs at {}", at.display());
        }
        Ok(Self(at.into()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

pub fn run(sensor_bin: &Path, workload_bin: &Path, dir: &Path, tainted: &Path) -> Result<()> {
    let rules = rules(dir)?;
    let clamd = Clamd::start(dir)?;
    let base = "network_monitoring = false\n";
    let scan_yara = format!("{base}[scan]\nyara_rules = \"{}\"\nmax_file_bytes = 134217728\n", rules.display());
    let scan_clamd = format!("{base}[scan]\nclamd_socket = \"{}\"\nmax_file_bytes = 134217728\n", clamd.socket.display());

    println!("\n## scan: close -> verdict latency ({SAMPLES} rewrites of a file marked untrusted per row; ms, median / p90 / max)");
    println!("| engine | size | median | p90 | max |");
    println!("|---|---|---|---|---|");
    for (engine, config) in [("yara-x", &scan_yara), ("clamav (clamd)", &scan_clamd)] {
        let work = dir.join("scan-latency");
        let _ = std::fs::remove_dir_all(dir.join("db"));
        let scratch = Scratch::mount(&work)?;
        let sensor = Sensor::start(sensor_bin, dir, config)?;
        for (name, size) in SIZES {
            let s = latency(&sensor, &scratch.0, size)?;
            println!("| {engine} | {name} | {:.2} | {:.2} | {:.2} |", median(s.clone()), pct(&s, 0.9), pct(&s, 1.0));
        }
        drop(sensor);
        drop(scratch);
    }

    // Throughput: a tainted process creates small files as fast as it can.
    {
        let work = dir.join("scan-rate");
        let _ = std::fs::remove_dir_all(dir.join("db"));
        let scratch = Scratch::mount(&work)?;
        let sensor = Sensor::start(sensor_bin, dir, &scan_yara)?;
        sensor.cli(&["taint", tainted.to_str().context("path")?])?;
        let started = Instant::now();
        workload(tainted, &["creates", &SCANS.to_string(), scratch.0.to_str().context("path")?])?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let scanned = loop {
            let s = sensor.status()?["scan"].clone();
            let done = s["scanned"].as_u64().unwrap_or(0) + s["not_scanned"].as_u64().unwrap_or(0);
            if done >= SCANS || Instant::now() > deadline {
                break done;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let secs = started.elapsed().as_secs_f64();
        println!("\nscans/s (yara-x, {SCANS} files of 1 byte created by a tainted process): {scanned} scanned in {secs:.2} s = {:.0}/s", scanned as f64 / secs);
    }

    // Untainted workload: nothing of it is scanned; what does watching its closes cost?
    println!("\n## scan: an untainted process creating {UNTAINTED_CREATES} files, the sensor with scanning off / on / on with hold_until_scanned ({OVERHEAD_ROUNDS} alternating rounds; s, median [min-max])");
    let hold = format!("{scan_yara}[response]\nhold_until_scanned = true\n");
    let configs = [("scanning off", base.to_owned()), ("scanning on (yara-x)", scan_yara.clone()), ("hold_until_scanned on", hold)];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for round in 0..OVERHEAD_ROUNDS {
        for i in 0..configs.len() {
            // Which configuration goes first rotates with the round.
            let c = (i + round) % configs.len();
            let work = dir.join("scan-overhead");
            let _ = std::fs::remove_dir_all(dir.join("db"));
            let scratch = Scratch::mount(&work)?;
            let sensor = Sensor::start(sensor_bin, dir, &configs[c].1)?;
            times[c].push(workload(workload_bin, &["creates", UNTAINTED_CREATES, scratch.0.to_str().context("path")?])?);
            let queued = sensor.status()?["scan"]["queued"].as_u64().unwrap_or(0);
            if queued != 0 {
                bail!("{}: {queued} files of an untainted process were queued for a scan", configs[c].0);
            }
            drop(sensor);
        }
    }
    let off = median(times[0].clone());
    println!("| sensor | s | vs scanning off |");
    println!("|---|---|---|");
    for (i, (name, _)) in configs.iter().enumerate() {
        let m = median(times[i].clone());
        println!("| {name} | {m:.3} {} | {:+.1} % |", spread(&times[i]), (m / off - 1.0) * 100.0);
    }
    drop(clamd);
    Ok(())
}
