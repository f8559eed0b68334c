//! `vtrail-sensor`: follows untrusted files and the processes that run them.
use std::{
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sensor_user::{
    config::{Config, DEFAULT_CONFIG, StrategyChoice},
    control::{Request, client, status::Status, who_am_i},
    daemon, selftest,
    graph::{GraphStore, export::{self, Format}},
};

#[derive(Parser)]
#[command(name = "vtrail-sensor", version, about = "eBPF taint sensor for Linux file servers")]
struct Cli {
    /// Configuration file overlaying the embedded default (`vtrail-sensor config` prints it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the eBPF programs and record the graph until stopped (SIGINT/SIGTERM).
    /// SIGHUP reads --config again: what can change live does, the rest is logged.
    Run {
        /// If the database does not open, or a record a restart reads does not decode,
        /// move it aside as `<database>.corrupt-<time>` and start on a fresh one. Without
        /// it the sensor refuses to start on such a database. (A log sled itself accepts
        /// as cut short is not detected: see docs/service.md.)
        #[arg(long)]
        recover: bool,
    },
    /// Strategy, attached programs, event and drop counts, database size.
    Status {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print events as JSON lines.
    Events {
        /// Keep printing as events arrive (required: events are not stored, edges are).
        #[arg(long)]
        follow: bool,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Write the graph (from the running sensor, or from the database if it is stopped).
    Export {
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Only edges at or after T: Unix seconds, or an age such as 90s, 15m, 2h, 1d.
        #[arg(long)]
        since: Option<String>,
        /// Output file (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Permissions of the output file, octal: the graph names every path, process and
        /// peer, so it is the owner's alone unless asked otherwise.
        #[arg(long, default_value = "600")]
        mode: String,
    },
    /// Relabel a file as trusted (kernel map and graph, recorded with who did it).
    Trust {
        path: PathBuf,
        /// Trust it even though a scan flagged it (recorded as such).
        #[arg(long)]
        force: bool,
    },
    /// Mark a file untrusted by hand.
    Taint { path: PathBuf },
    /// Print the file transfers (SMB2, FTP) in a capture, through the same parsers the
    /// TC classifier uses. pcap or pcapng, gzip allowed.
    Replay {
        file: PathBuf,
        /// One JSON object per transfer.
        #[arg(long)]
        json: bool,
    },
    /// Quarantine a remote host: its SMB2 CREATEs (write intent) and FTP uploads are
    /// dropped by the TC classifier; other traffic passes. TARGET: an IP or remote:<ip>.
    Block { target: String },
    /// Lift a quarantine.
    Unblock { target: String },
    /// The files a scan engine flagged: what flagged them, where they came from and what
    /// the sensor did about it.
    Alerts {
        /// Keep printing alerts as they are raised.
        #[arg(long)]
        follow: bool,
        /// One JSON document per alert (`vtrail-alert/1`).
        #[arg(long)]
        json: bool,
    },
    /// Enforce the rules `vtrail-analysis rules --json` wrote after an incident: its block
    /// list as quarantine, its protected paths guarded against tainted writers, its YARA
    /// rule added to the scanner. Kept in the database: a restart enforces them again.
    /// Exit 1 if any part is not in force (said why).
    ApplyRules { file: PathBuf },
    /// Print the embedded default configuration.
    Config,
    /// Load each hook strategy in turn and check that it taints an untrusted exec, sees its
    /// writes and (kprobe/fentry) catches an untrusted `#!` script. Exit 0 if all pass.
    Selftest {
        /// Comma-separated: auto, fentry, kprobe, tracepoint.
        #[arg(long, default_value = "auto", value_delimiter = ',')]
        strategies: Vec<StrategyChoice>,
        /// Scratch directory.
        #[arg(long, default_value = "/tmp/vtrail-selftest")]
        work: PathBuf,
        /// Also load the TC classifiers and run them on crafted packets (no interface needed).
        #[arg(long)]
        network: bool,
    },
}

fn main() {
    sensor_common::logging::init("info");
    if let Err(e) = real_main() {
        eprintln!("vtrail-sensor: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    // Everything but printing the default config and reading a capture touches what is
    // root's alone (mode 0600/0700): say so, rather than a permission error from deep inside.
    if !matches!(cli.command, Command::Config | Command::Replay { .. } | Command::Run { .. } | Command::Selftest { .. })
        && unsafe { libc::geteuid() } != 0
    {
        bail!(
            "this command must run as root: the sensor's control socket ({}), its database ({}) and the kernel state are root's alone",
            config.socket.display(),
            config.database.display()
        );
    }
    match cli.command {
        Command::Run { recover } => run(config, cli.config.clone(), recover),
        Command::Status { json } => status(&config, json),
        Command::Events { follow, count } => events(&config, follow, count),
        Command::Export { format, since, output, mode } => export(&config, format, since.as_deref(), output.as_deref(), &mode),
        Command::Trust { path, force } => relabel(&config, path, false, force),
        Command::Taint { path } => relabel(&config, path, true, false),
        Command::Selftest { strategies, work, network } => selftest(&strategies, &work, network),
        Command::Replay { file, json } => replay(&file, json),
        Command::Block { target } => quarantine(&config, target, true),
        Command::Unblock { target } => quarantine(&config, target, false),
        Command::Alerts { follow, json } => alerts(&config, follow, json),
        Command::ApplyRules { file } => apply_rules(&config, &file),
        Command::Config => {
            print!("{DEFAULT_CONFIG}");
            Ok(())
        }
    }
}

fn run(config: Config, config_path: Option<PathBuf>, recover: bool) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(daemon::run(config, config_path, recover))
}

fn events(config: &Config, follow: bool, count: Option<u64>) -> Result<()> {
    if !follow {
        bail!("events are streamed, not stored: use `events --follow` (the graph keeps them as edges: see `export`)");
    }
    let mut seen = 0;
    let mut out = std::io::stdout().lock();
    client::call(&config.socket, &Request::Events, |line| {
        writeln!(out, "{line}")?;
        out.flush()?;
        seen += 1;
        Ok(count.is_none_or(|c| seen < c))
    })
}

/// How often `alerts --follow` asks the sensor for new alerts.
const ALERTS_POLL: std::time::Duration = std::time::Duration::from_millis(500);

fn alerts(config: &Config, follow: bool, json: bool) -> Result<()> {
    let mut after_seq = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        let mut lines = Vec::new();
        client::call(&config.socket, &Request::Alerts { since_ns: 0, after_seq }, |line| {
            lines.push(line.to_owned());
            Ok(true)
        })?;
        for line in lines.into_iter().filter(|l| !l.trim().is_empty()) {
            let alert: sensor_common::graph::alert::Alert =
                serde_json::from_str(&line).with_context(|| format!("the sensor answered {line:?}"))?;
            after_seq = after_seq.max(alert.seq);
            if json {
                writeln!(out, "{line}")?;
            } else {
                writeln!(out, "{}", alert_line(&alert))?;
            }
        }
        out.flush()?;
        if !follow {
            return Ok(());
        }
        std::thread::sleep(ALERTS_POLL);
    }
}

/// One alert for a person: when, what, which file, from where, what was done.
fn alert_line(a: &sensor_common::graph::alert::Alert) -> String {
    let found: Vec<String> = a.detections.iter().map(|d| format!("{} {}", d.engine, d.names.join(","))).collect();
    let origin = match &a.origin {
        Some(o) => format!("from {} ({}{}{})", o.ip, o.protocol, o.name.as_ref().map(|n| format!(", sent as {n:?}")).unwrap_or_default(),
            if o.node_ids.is_empty() { String::new() } else { format!(", node {}", o.node_ids.join(",")) }),
        None => "origin unknown (not received over a watched protocol)".into(),
    };
    let responses: Vec<String> = a.responses.iter().map(|r| format!("{} {}: {}", r.action, r.target, if r.ok { "done" } else { r.detail.as_str() })).collect();
    let known = a.known.as_ref().map(known_text).unwrap_or_default();
    format!(
        "{} {} {} sha256 {} {}{}{known}",
        sensor_user::replay::rfc3339(a.ts_ns),
        found.join("; "),
        a.file.path.as_deref().unwrap_or(&a.file.node),
        a.file.sha256,
        origin,
        if responses.is_empty() { String::new() } else { format!("; {}", responses.join("; ")) }
    )
}

/// What ran the file before its verdict, what that wrote, where the file went (nothing
/// when none of it happened).
fn known_text(k: &sensor_common::graph::alert::Known) -> String {
    let mut parts = Vec::new();
    if !k.ran.is_empty() {
        let ran: Vec<String> = k.ran.iter().map(|p| format!("pid {} {} ({})", p.pid.map(|n| n.to_string()).unwrap_or("?".into()), p.exe.as_deref().unwrap_or(&p.node), p.how)).collect();
        parts.push(format!("ran by {}", ran.join(", ")));
    }
    if !k.wrote.is_empty() {
        let wrote: Vec<&str> = k.wrote.iter().map(|w| w.path.as_deref().unwrap_or(&w.file)).collect();
        parts.push(format!("which wrote {}", wrote.join(", ")));
    }
    if !k.sent_to.is_empty() {
        let sent: Vec<String> = k.sent_to.iter().map(|t| format!("{} ({})", t.ip.as_deref().unwrap_or(&t.remote), t.protocol)).collect();
        parts.push(format!("sent to {}", sent.join(", ")));
    }
    if k.left_out > 0 {
        parts.push(format!("{} more in the graph", k.left_out));
    }
    if !k.complete {
        parts.push("(the graph was read in part: see vtrail-analysis trace)".into());
    }
    if parts.is_empty() { String::new() } else { format!("; {}", parts.join("; ")) }
}

/// From the running sensor, or from the database when it is stopped.
fn export(config: &Config, format: Format, since: Option<&str>, output: Option<&Path>, mode: &str) -> Result<()> {
    let since_ns = since.map(parse_since).transpose()?;
    let mut out: Box<dyn Write> = match output {
        Some(p) => Box::new(private_file(p, mode)?),
        None => Box::new(std::io::stdout().lock()),
    };
    if config.socket.exists() && client::connect(&config.socket).is_ok() {
        client::call(&config.socket, &Request::Export { format, since_ns }, |line| {
            writeln!(out, "{line}")?;
            Ok(true)
        })
    } else {
        let store = GraphStore::open(&config.database)?;
        let host = store.host()?.unwrap_or_else(daemon::host_info);
        export::export(&store, &host, format, since_ns, &mut out)
    }
}

/// `path` created or truncated with permissions `mode` (octal text), whatever it had.
fn private_file(path: &Path, mode: &str) -> Result<std::fs::File> {
    let mode = u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .with_context(|| format!("--mode {mode}: not an octal mode such as 600"))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // An existing file keeps its mode on open: set it.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(file)
}

fn selftest(strategies: &[StrategyChoice], work: &Path, network: bool) -> Result<()> {
    let outcomes = selftest::run(strategies, work)?;
    let mut ok = true;
    for o in &outcomes {
        let chosen = o.chosen.map_or("none", |s| s.name());
        let verdict = if o.failures.is_empty() { "PASS" } else { ok = false; "FAIL" };
        println!("SELFTEST {:?} -> {chosen} {verdict}: {}", o.requested, o.notes.iter().chain(&o.failures).cloned().collect::<Vec<_>>().join("; "));
    }
    if network {
        match sensor_user::kernel::testrun::selftest() {
            Ok(notes) => println!("SELFTEST network PASS: {}", notes.join("; ")),
            Err(e) => {
                ok = false;
                println!("SELFTEST network FAIL: {e:#}");
            }
        }
    }
    if !ok {
        bail!("selftest failed");
    }
    Ok(())
}

/// Exit status 3 when the capture is cut: the transfers printed are those before the cut.
fn replay(file: &Path, json: bool) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let stats = sensor_user::replay::replay_file(file, &mut out, json)?;
    out.flush()?;
    eprintln!("{} transfers, {} frames, {} parse errors", stats.transfers, stats.frames, stats.parse_errors);
    if let Some(why) = &stats.truncated {
        eprintln!("vtrail-sensor: {}: the capture is cut ({why}): the transfers above are those before the cut", file.display());
        std::process::exit(3);
    }
    Ok(())
}

fn quarantine(config: &Config, target: String, block: bool) -> Result<()> {
    sensor_user::daemon::network::parse_target(&target)?;
    let by = who_am_i();
    let request = if block { Request::Block { target, by } } else { Request::Unblock { target, by } };
    client::call(&config.socket, &request, |line| {
        println!("{line}");
        Ok(true)
    })
}

fn apply_rules(config: &Config, file: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let rules = sensor_common::rules::FedBackRules::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let source = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()).display().to_string();
    let request = Request::ApplyRules { rules, source, by: who_am_i() };
    let mut in_force = true;
    client::call(&config.socket, &request, |line| {
        println!("{line}");
        let answer: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        in_force = answer.get("ok").and_then(|v| v.as_bool()).unwrap_or(false);
        Ok(true)
    })?;
    if !in_force {
        bail!("not all of the rules are in force (see `problems` above)");
    }
    Ok(())
}

fn relabel(config: &Config, path: PathBuf, untrusted: bool, force: bool) -> Result<()> {
    if !path.exists() {
        bail!("{}: no such file", path.display());
    }
    let path = std::fs::canonicalize(&path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let path = sensor_common::graph::path_text(path.as_os_str().as_encoded_bytes());
    let by = who_am_i();
    let request = if untrusted { Request::Taint { path, by } } else { Request::Trust { path, by, force } };
    client::call(&config.socket, &request, |line| {
        println!("{line}");
        Ok(true)
    })
}

fn status(config: &Config, json: bool) -> Result<()> {
    client::call(&config.socket, &Request::Status, |line| {
        if json {
            println!("{line}");
        } else {
            let status: Status = serde_json::from_str(line).context("the sensor's status answer")?;
            print!("{status}");
        }
        Ok(true)
    })
}

/// `--since`: Unix seconds, or an age (`90s`, `15m`, `2h`, `1d`) before now.
fn parse_since(s: &str) -> Result<u64> {
    let now = sensor_user::host::procfs::now_wall_ns();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs * 1_000_000_000);
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = num.parse().with_context(|| format!("--since {s}: expected Unix seconds or an age like 15m"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => bail!("--since {s}: unit must be s, m, h or d"),
    };
    Ok(now.saturating_sub(secs * 1_000_000_000))
}
