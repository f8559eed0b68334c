//! The outbreak lab: several QEMU guests on Debian's kernel, each with its own disk serial,
//! sensor (fentry or kprobe strategy), vtrail-ddns and vsftpd, on one bridged LAN with the
//! lab host's BIND (naming), NATS and PostgreSQL (fleet); a worm enters one guest from an
//! outside host and spreads over FTP as the seeded scenario says; scripted users open what
//! arrives (carriers never do); one guest changes its address mid-run. At the end the
//! ground truth (from the worm's and users' own logs) is compared with what
//! `vtrail-analysis` recovers from the guests' dumps and from the central database.
//!
//! `cargo xtask lab [--hosts N --topology chain|star|tree --seed S]` runs it by hand;
//! `tests/tests/lab.rs` runs it in the suite. See docs/lab.md.
mod compare;
mod guest;
mod network;
pub mod scenario;
mod truth;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use ddns_updater::harness::NamedServer;

pub use compare::Comparison;
pub use guest::GUEST_MEMORY_MIB;
use guest::{Guest, GuestInputs, lab_host_addr, stripped};
use network::{LabNet, NETNS};
pub use scenario::{Scenario, Topology};
use scenario::{INCOMING, LAB_HOST_IP, ZONE};
use truth::{GuestLogs, OutsideUpload, Truth, parse_log};

use crate::collector::analysis_bin;
use crate::qemu::tail;
use crate::fleet::Central;
use crate::sensor::{sensor_bin, workspace_bin};

#[derive(Clone, Debug)]
pub struct LabOptions {
    pub hosts: usize,
    pub topology: Topology,
    pub seed: u64,
    /// Where everything is written (kept after the run: consoles, dumps, logs, answers).
    pub work: PathBuf,
}

pub struct LabOutcome {
    pub comparison: Comparison,
    /// What the lab printed: the phases with their times, the table, the differences.
    pub report: String,
    pub elapsed: Duration,
}

/// How long the outbreak may take once the worm is in (TCG, delays of 3-6 s per hop).
const OUTBREAK_LIMIT: Duration = Duration::from_secs(300);
/// How long a guest may take to come up: boot, sensor load, naming, fleet.
const READY_LIMIT: Duration = Duration::from_secs(guest::SENSOR_START_S as u64 + 120);
/// Shutting down: fleet drain, export, results tar.
const STOP_LIMIT: Duration = Duration::from_secs(240);

struct Log {
    started: Instant,
    text: String,
}

impl Log {
    fn say(&mut self, line: impl AsRef<str>) {
        let line = format!("[lab {:>6.1} s] {}", self.started.elapsed().as_secs_f64(), line.as_ref());
        eprintln!("{line}");
        self.text.push_str(&line);
        self.text.push('\n');
    }
}

fn preflight() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(unsafe { libc::geteuid() } == 0, "the lab must run as root: it creates namespaces, tap devices and guests");
    ensure!(Path::new("/dev/net/tun").exists(), "/dev/net/tun is missing: the guests' tap devices need the tun driver");
    for (tool, package) in [
        ("/usr/sbin/vsftpd", "vsftpd"),
        ("/usr/sbin/named", "bind9"),
        ("/usr/sbin/nats-server", "nats-server"),
        ("/usr/bin/strip", "binutils"),
        ("/usr/bin/tar", "tar"),
    ] {
        ensure!(Path::new(tool).exists(), "{tool} is missing: install the Debian package {package} (`cargo xtask setup --test-peers` does)");
    }
    Ok(())
}

/// Runs the whole lab and compares; an `Err` is the lab failing to run (a guest that did
/// not boot, a sensor that did not load, a missing package), named with its reason.
pub fn run(options: &LabOptions) -> Result<LabOutcome> {
    let mut log = Log { started: Instant::now(), text: String::new() };
    preflight()?;
    let scenario = Scenario::plan(options.hosts, options.topology, options.seed)?;
    let work = &options.work;
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    log.say(format!(
        "{} hosts, topology {}, seed {}: patient zero {}, carriers {:?}, moving {:?}; work in {}",
        scenario.hosts.len(),
        scenario.topology.name(),
        scenario.seed,
        scenario.hosts[scenario.zero].name,
        scenario.hosts.iter().filter(|h| !h.runs_worm).map(|h| h.name.as_str()).collect::<Vec<_>>(),
        scenario.mover().map(|h| format!("{} {} -> {}", h.name, h.ip, h.moves_to.as_deref().unwrap_or(""))),
        work.display()
    ));
    for h in &scenario.hosts {
        let targets: Vec<&str> = h.targets.iter().map(|&t| scenario.hosts[t].name.as_str()).collect();
        log.say(format!("  {} {} serial {} id {} {} -> {:?}", h.name, h.ip, h.serial, h.id, h.strategy.name(), targets));
    }

    let kernel = crate::qemu::ensure_prerequisites(&crate::qemu::default_cache_dir()?)?;
    let net = LabNet::up(&scenario.hosts)?;
    // One TSIG key per guest, named after it, allowed to publish its one disk id.
    let ids: Vec<[&str; 1]> = scenario.hosts.iter().map(|h| [h.id.as_str()]).collect();
    let nodes: Vec<(&str, &[&str])> = scenario.hosts.iter().zip(&ids).map(|(h, id)| (h.name.as_str(), &id[..])).collect();
    let dns = NamedServer::start_on(ZONE, &nodes, None, LAB_HOST_IP.parse()?, None).map_err(|e| anyhow::anyhow!("cannot start BIND: {e}"))?;
    let ids: Vec<&str> = ids.iter().map(|[id]| *id).collect();
    let central = Central::start_on(work, &ids, LAB_HOST_IP);
    log.say(format!("lab host: BIND {}:{} zone {ZONE}, NATS {}, PostgreSQL {}", LAB_HOST_IP, dns.port, central.nats.url(), central.pg.url()));

    let bins = work.join("bin");
    std::fs::create_dir_all(&bins)?;
    let sensor = stripped(&sensor_bin(), &bins)?;
    let ddns = stripped(&workspace_bin("vtrail-ddns"), &bins)?;
    let clock = stripped(&workspace_bin("vtrail-lab-clock"), &bins)?;
    let mut guests = Vec::new();
    for h in &scenario.hosts {
        let inputs = GuestInputs {
            sensor: &sensor,
            ddns: &ddns,
            clock: &clock,
            ddns_key: dns.key_path(&h.name),
            fleet_key: central.host_key(&h.id),
            dns: lab_host_addr(dns.port),
            nats_url: central.nats.url(),
        };
        guests.push(Guest::boot(&kernel, &scenario, h, &inputs, NETNS, &work.join(&h.name))?);
    }
    log.say(format!("{} guests booting ({} MiB each, 1 vCPU, TCG)", guests.len(), GUEST_MEMORY_MIB));

    let ready_at = wait_all(&mut guests, READY_LIMIT, "come up", |g, console| agent_said(console, &g.plan.name, "ready"))?;
    for (g, t) in guests.iter().zip(&ready_at) {
        log.say(format!("  {} ready after {:.0} s ({})", g.plan.name, t.as_secs_f64(), g.plan.strategy.name()));
    }
    log.say(format!("clock offsets (guest - lab host): {}", clock_offsets(&guests)?));

    // The outside host: the documents first, then the worm to patient zero.
    let mut outside = Vec::new();
    let files = work.join("outside");
    std::fs::create_dir_all(&files)?;
    for (to, name) in &scenario.outside_docs {
        let path = files.join(name);
        std::fs::write(&path, format!("{name}: prices, nothing to run\n"))?;
        net.outside_upload(&scenario.hosts[*to].ip, &path, name)?;
        outside.push(OutsideUpload { to_ip: scenario.hosts[*to].ip.clone(), name: name.clone() });
    }
    let zero = &scenario.hosts[scenario.zero];
    let worm = files.join(&zero.lure);
    std::fs::write(&worm, scenario.worm_script())?;
    // The hash the sensors record for it.
    let worm_sha = sensor_user::host::procfs::sha256_file(&worm).context("hashing the worm")?;
    net.outside_upload(&zero.ip, &worm, &zero.lure)?;
    outside.push(OutsideUpload { to_ip: zero.ip.clone(), name: zero.lure.clone() });
    log.say(format!("outside {} uploaded the worm (sha256 {worm_sha}) to {} as {}", scenario::OUTSIDE_IP, zero.name, zero.lure));

    let done = wait_all(&mut guests, OUTBREAK_LIMIT, "play their part in the outbreak", |g, console| {
        let p = &g.plan;
        let worm_done = !p.runs_worm || console_has(console, &format!("VTLAB worm {} ", p.name), " done");
        let ignored = p.runs_worm || console_has(console, &format!("VTLAB user {} ", p.name), " ignored ");
        let docs = console_count(console, &format!("VTLAB user {} ", p.name), " sent-doc") >= p.sends_docs.len();
        worm_done && ignored && docs
    })?;
    log.say(format!("outbreak over {:.0} s after the guests were ready", done.iter().max().unwrap_or(&Duration::ZERO).saturating_sub(*ready_at.iter().max().unwrap_or(&Duration::ZERO)).as_secs_f64()));

    for g in &guests {
        g.command("stop")?;
    }
    let mut dumps = Vec::new();
    let mut logs = Vec::new();
    let mut finished = Vec::new();
    for g in guests {
        let name = g.plan.name.clone();
        let (run, out) = g.finish(STOP_LIMIT)?;
        ensure!(run.console.contains(&format!("VTLAB agent {name} ")) && run.console.contains(" results-written"), "{name}: did not write its results:\n{}", tail(&run.console, 40));
        dumps.push(out.join("dump.jsonl"));
        logs.push(GuestLogs {
            worm: parse_log(&std::fs::read_to_string(out.join("worm.log")).unwrap_or_default()),
            user: parse_log(&std::fs::read_to_string(out.join("user.log")).unwrap_or_default()),
        });
        finished.push(name);
    }
    log.say(format!("guests stopped and exported: {}", finished.join(", ")));

    let truth = Truth::from_logs(&scenario, &logs, &outside)?;
    wait_central_in_sync(&central, &scenario, &dumps)?;
    log.say("central database holds every guest's records");

    let last = truth.infection_order().last().cloned().context("the worm infected nobody: see the guests' consoles")?;
    let last_host = scenario.hosts.iter().find(|h| h.id == last).expect("a lab host");
    let copy = format!("{INCOMING}/{}", last_host.lure);
    let db = central.pg.url();
    let mut recovered = Vec::new();
    for (source, inputs) in [("dumps", dumps.iter().map(|d| d.display().to_string()).collect::<Vec<_>>()), ("db", vec!["--db".to_string(), db.clone()])] {
        let ask = |args: &[&str]| -> Result<serde_json::Value> {
            let out = Command::new(analysis_bin()).args(args).arg("--json").args(&inputs).output()?;
            ensure!(out.status.success(), "vtrail-analysis {} ({source}) failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            std::fs::write(work.join(format!("{}-{source}.json", args[0])), serde_json::to_string_pretty(&v)?)?;
            Ok(v[args[0]].clone())
        };
        recovered.push(compare::Recovered {
            source,
            spread: ask(&["spread", "--sha256", &worm_sha])?,
            trace: ask(&["trace", "--path", &copy, "--host", &last])?,
            rules: ask(&["rules", "--sha256", &worm_sha])?,
        });
    }
    let remotes = remote_names(&dumps)?;
    let comparison = compare::compare(&scenario, &truth, &recovered, &remotes);
    log.say(format!("ground truth vs recovered:\n{}", comparison.table));
    if comparison.differences.is_empty() {
        log.say("no difference");
    } else {
        log.say(format!("{} difference(s):\n  {}", comparison.differences.len(), comparison.differences.join("\n  ")));
    }
    let elapsed = log.started.elapsed();
    log.say(format!("lab took {:.0} s", elapsed.as_secs_f64()));
    std::fs::write(work.join("report.txt"), &log.text)?;
    drop(net);
    Ok(LabOutcome { comparison, report: log.text, elapsed })
}

fn agent_said(console: &str, host: &str, what: &str) -> bool {
    console_has(console, &format!("VTLAB agent {host} "), &format!(" {what}"))
}

fn console_has(console: &str, prefix: &str, needle: &str) -> bool {
    console_count(console, prefix, needle) > 0
}

fn console_count(console: &str, prefix: &str, needle: &str) -> usize {
    console.lines().filter(|l| l.find(prefix).is_some_and(|i| l[i..].contains(needle))).count()
}

/// Waits until `done` holds for every guest; fails at the first guest whose agent says
/// FAILED or whose QEMU exits, or at the time limit, naming the guests and why.
fn wait_all(guests: &mut [Guest], limit: Duration, what: &str, done: impl Fn(&Guest, &str) -> bool) -> Result<Vec<Duration>> {
    let started = Instant::now();
    let mut at: Vec<Option<Duration>> = vec![None; guests.len()];
    let mut rounds = 0u64;
    loop {
        rounds += 1;
        for (i, g) in guests.iter_mut().enumerate() {
            let console = g.console();
            if rounds % 20 == 0 {
                // For whoever watches a long run: the consoles as they stand.
                let _ = std::fs::write(g.dir.join("console.log"), &console);
            }
            if let Some(line) = console.lines().find(|l| l.contains(&format!("VTLAB agent {} ", g.plan.name)) && l.contains(" FAILED ")) {
                bail!("{}: {}\nlast console lines:\n{}", g.plan.name, line.trim(), tail(&console, 60));
            }
            if let Some(status) = g.vm().exited() {
                bail!(
                    "{}: QEMU exited ({status}) before the guest could {what}:\n{}\nQEMU said: {}",
                    g.plan.name,
                    tail(&console, 60),
                    g.qemu_stderr().trim()
                );
            }
            if at[i].is_none() && done(g, &console) {
                at[i] = Some(g.vm().elapsed());
            }
        }
        if at.iter().all(Option::is_some) {
            return Ok(at.into_iter().map(Option::unwrap).collect());
        }
        if started.elapsed() > limit {
            let late: Vec<String> = guests
                .iter()
                .zip(&at)
                .filter(|(_, t)| t.is_none())
                .map(|(g, _)| format!("{}:\n{}", g.plan.name, tail(&g.console(), 30)))
                .collect();
            bail!("guests did not {what} within {limit:?}:\n{}", late.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Each guest's clock against the lab host's: it prints its time on `clock`; the offset is
/// taken against the middle of the round trip.
fn clock_offsets(guests: &[Guest]) -> Result<String> {
    let mut out = Vec::new();
    for g in guests {
        let prefix = format!("VTLAB agent {} ", g.plan.name);
        let before = console_count(&g.console(), &prefix, " clock");
        let sent = now_ns();
        g.command("clock")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let line = loop {
            let console = g.console();
            let lines: Vec<&str> = console.lines().filter(|l| l.contains(&prefix) && l.trim_end().ends_with(" clock")).collect();
            if lines.len() > before {
                break lines[before].to_string();
            }
            ensure!(Instant::now() < deadline, "{}: no answer to `clock` within 20 s", g.plan.name);
            std::thread::sleep(Duration::from_millis(20));
        };
        let received = now_ns();
        let guest_ns: i128 = line[line.find(&prefix).unwrap() + prefix.len()..].split_whitespace().next().and_then(|t| t.parse().ok()).unwrap_or(0);
        let offset_ms = (guest_ns - (sent as i128 + received as i128) / 2) as f64 / 1e6;
        out.push(format!("{} {offset_ms:+.0} ms (round trip {:.0} ms)", g.plan.name, (received - sent) as f64 / 1e6));
    }
    Ok(out.join(", "))
}

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Waits (at most 120 s) until the central database holds as many edges of each host as
/// its dump.
fn wait_central_in_sync(central: &Central, scenario: &Scenario, dumps: &[PathBuf]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    for (h, dump) in scenario.hosts.iter().zip(dumps) {
        let text = std::fs::read_to_string(dump)?;
        let edges = text.lines().filter(|l| l.starts_with("{\"edge\"")).count() as u64;
        loop {
            let stored = central.count(&format!("SELECT count(*) FROM edges WHERE host = '{}'", h.id));
            if stored == edges {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{}: the central database holds {stored} of its {edges} edges after 120 s; collector log:\n{}",
                h.name,
                tail(&central.collector_log(), 30)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(())
}

/// Every `remote:` node of every dump with the node ids it was named by.
fn remote_names(dumps: &[PathBuf]) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for d in dumps {
        for line in std::fs::read_to_string(d)?.lines().filter(|l| l.starts_with("{\"node\"")) {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let node = &v["node"];
            if let Some(ip) = node["id"].as_str().and_then(|id| id.strip_prefix("remote:")) {
                let ids = node["node_ids"].as_array().into_iter().flatten().filter_map(|i| i.as_str().map(str::to_string)).collect();
                out.push((ip.to_string(), ids));
            }
        }
    }
    Ok(out)
}
