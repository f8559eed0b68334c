//! `vtrail-ddns`: list disk IDs, publish them in DNS, print a BIND config, resolve IPs.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use ddns_updater::bindconf::{BindConfig, NodeGrant, render_stanza, render_zone_file};
use ddns_updater::daemon::{self, DaemonOptions};
use ddns_updater::disks::{Discovery, discover_all};
use ddns_updater::error::exit;
use ddns_updater::keyfile::load_key_file;
use ddns_updater::lookup::{LookupConfig, Resolver};
use ddns_updater::names::parse_zone;
use ddns_updater::netwatch::{ifindex, publishable_addresses};
use ddns_updater::update::{RetryPolicy, UpdateConfig, Updater};

const EXIT_CODES: &str = "Exit codes: 0 ok, 2 usage, 3 bad input (key file, sysfs), 4 no disk with a serial, \
10 REFUSED (key not allowed for the name), 11 NOTAUTH (server not primary for the zone), \
12 authentication failed (BADKEY/BADSIG), 13 BADTIME (clock skew), 14 server unreachable/timeout \
after retries, 15 other server error.";

#[derive(Parser)]
#[command(name = "vtrail-ddns", version, about = "Disk-serial node IDs kept in DNS (RFC 2136 + TSIG)", after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List whole disks, their serials and node IDs.
    Ids {
        #[arg(long)]
        json: bool,
        /// Read sys/block and run/udev/data below this directory instead of /.
        #[arg(long, default_value = "/")]
        sysfs_root: PathBuf,
    },
    /// Publish this node's IDs at its global addresses (daemon, or --once).
    Update(UpdateArgs),
    /// Print a zone file and a named.conf `zone {}` stanza confining each key to its IDs.
    BindConfig {
        #[arg(long)]
        zone: String,
        /// KEYNAME=ID[,ID...]: one per node.
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
        /// Key files to print as `key {}` statements.
        #[arg(long = "key-file")]
        key_files: Vec<PathBuf>,
        /// Address of the primary (glue for ns.<zone>).
        #[arg(long, default_value = "127.0.0.1")]
        ns_addr: IpAddr,
        /// Zone file path written in the stanza (default: <zone>.zone).
        #[arg(long)]
        zone_file: Option<String>,
        #[arg(long, default_value_t = 60)]
        ttl: u32,
        /// Write <zone>.zone and <zone>.conf here instead of printing them.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Resolve IPs to node IDs through the reverse names (forward-confirmed).
    Lookup {
        #[arg(long)]
        server: SocketAddr,
        /// Zones to search in order.
        #[arg(long = "zone", required = true)]
        zones: Vec<String>,
        ips: Vec<IpAddr>,
    },
}

#[derive(clap::Args)]
struct UpdateArgs {
    /// The zone's primary, IP:PORT (TCP).
    #[arg(long)]
    server: SocketAddr,
    #[arg(long)]
    zone: String,
    /// TSIG key: BIND `key {}` file (tsig-keygen output) or bare base64 secret.
    #[arg(long)]
    key_file: PathBuf,
    /// Key name: picks a key from the file; required for a bare base64 file.
    #[arg(long)]
    key_name: Option<String>,
    #[arg(long, default_value_t = 60)]
    ttl: u32,
    /// Publish once and exit with a status (see exit codes).
    #[arg(long)]
    once: bool,
    /// Publish these addresses instead of the host's (repeatable).
    #[arg(long = "addr")]
    addrs: Vec<IpAddr>,
    /// Only addresses of these interfaces (repeatable).
    #[arg(long = "interface")]
    interfaces: Vec<String>,
    /// Publish these IDs instead of the discovered ones (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    #[arg(long, default_value = "/")]
    sysfs_root: PathBuf,
    /// Daemon: publish again this often without changes.
    #[arg(long, default_value_t = 300)]
    resync_secs: u64,
    /// Wait for a connection or a reply, per attempt.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    /// Attempts on transport errors (backoff 0.5 s doubling, max 8 s).
    #[arg(long, default_value_t = 5)]
    attempts: u32,
    /// Testing only: shift the TSIG clock by this many seconds.
    #[arg(long, default_value_t = 0, hide = true, allow_hyphen_values = true)]
    clock_offset_secs: i64,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Ids { json, sysfs_root } => cmd_ids(json, &sysfs_root),
        Cmd::Update(args) => cmd_update(args),
        Cmd::BindConfig {
            zone,
            nodes,
            key_files,
            ns_addr,
            zone_file,
            ttl,
            out_dir,
        } => cmd_bind_config(&zone, &nodes, &key_files, ns_addr, zone_file, ttl, out_dir),
        Cmd::Lookup { server, zones, ips } => cmd_lookup(server, &zones, &ips),
    };
    ExitCode::from(code as u8)
}

fn fail(code: i32, msg: impl std::fmt::Display) -> i32 {
    eprintln!("vtrail-ddns: {msg}");
    code
}

fn cmd_ids(json: bool, root: &std::path::Path) -> i32 {
    let d = match discover_all(root) {
        Ok(d) => d,
        Err(e) => return fail(exit::INPUT, e),
    };
    if json {
        match serde_json::to_string_pretty(&d) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(exit::INPUT, e),
        }
    } else {
        print_table(&d);
    }
    if d.ids().is_empty() {
        exit::NO_IDS
    } else {
        exit::OK
    }
}

fn print_table(d: &Discovery) {
    println!(
        "{:<12} {:<7} {:<28} {:<24} ID",
        "DISK", "KIND", "MODEL", "SERIAL"
    );
    for disk in &d.disks {
        let id = match (&disk.id, &disk.duplicate_of) {
            (Some(id), Some(first)) => format!("{id} (duplicate of {first}, not used)"),
            (Some(id), None) => id.clone(),
            (None, _) => "- (no serial)".into(),
        };
        println!(
            "{:<12} {:<7} {:<28} {:<24} {}",
            disk.name,
            format!("{:?}", disk.kind).to_lowercase(),
            disk.model,
            disk.serial.as_deref().unwrap_or("-"),
            id
        );
    }
    for v in &d.virtual_devices {
        println!(
            "{:<12} {:<7} members: {}",
            v.name,
            "virtual",
            v.members.join(", ")
        );
    }
    for s in &d.skipped {
        println!("{:<12} skipped: {}", s.name, s.reason);
    }
}

fn cmd_update(a: UpdateArgs) -> i32 {
    let zone = match parse_zone(&a.zone) {
        Ok(z) => z,
        Err(e) => return fail(exit::USAGE, e),
    };
    let key = match load_key_file(&a.key_file, a.key_name.as_deref()) {
        Ok(k) => k,
        Err(e) => return fail(exit::INPUT, e),
    };
    let ids = if a.ids.is_empty() {
        match discover_all(&a.sysfs_root) {
            Ok(d) => d.ids(),
            Err(e) => return fail(exit::INPUT, e),
        }
    } else {
        a.ids.clone()
    };
    if ids.is_empty() {
        return fail(
            exit::NO_IDS,
            "no disk with a serial found: no node ID to publish (see `vtrail-ddns ids`)",
        );
    }
    let mut only = Vec::new();
    for name in &a.interfaces {
        match ifindex(name) {
            Some(i) => only.push(i),
            None => return fail(exit::USAGE, format!("no interface named {name}")),
        }
    }
    let mut cfg = UpdateConfig::new(a.server, zone, key);
    cfg.ttl = a.ttl;
    cfg.timeout = Duration::from_millis(a.timeout_ms);
    cfg.retry = RetryPolicy {
        attempts: a.attempts.max(1),
        ..RetryPolicy::default()
    };
    cfg.clock_offset_secs = a.clock_offset_secs;
    let updater = match Updater::new(cfg) {
        Ok(u) => u,
        Err(e) => return fail(e.exit_code(), e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(exit::INPUT, format!("cannot start runtime: {e}")),
    };
    rt.block_on(async {
        if a.once || !a.addrs.is_empty() {
            let addrs = if a.addrs.is_empty() {
                match publishable_addresses(&only) {
                    Ok(v) => v,
                    Err(e) => {
                        return fail(
                            exit::INPUT,
                            format!("cannot read addresses via rtnetlink: {e}"),
                        );
                    }
                }
            } else {
                a.addrs.clone()
            };
            if !a.once {
                eprintln!("vtrail-ddns: --addr given: publishing once (no address watching)");
            }
            match updater.publish(&ids, &addrs).await {
                Ok(done) => {
                    if a.json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&done).unwrap_or_default()
                        );
                    } else {
                        for p in &done {
                            println!(
                                "{} {}",
                                p.name,
                                p.addresses
                                    .iter()
                                    .map(|a| a.to_string())
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            );
                        }
                    }
                    exit::OK
                }
                Err(e) => fail(e.exit_code(), e),
            }
        } else {
            let opts = DaemonOptions {
                resync: Duration::from_secs(a.resync_secs.max(1)),
                retry_after: Duration::from_secs(5),
                only_ifindex: only,
                log_success: true,
            };
            match daemon::run(&updater, &ids, &opts).await {
                Ok(()) => exit::OK,
                Err(e) => fail(exit::INPUT, format!("address watching failed: {e}")),
            }
        }
    })
}

fn cmd_bind_config(
    zone: &str,
    nodes: &[String],
    key_files: &[PathBuf],
    ns_addr: IpAddr,
    zone_file: Option<String>,
    ttl: u32,
    out_dir: Option<PathBuf>,
) -> i32 {
    let zone = match parse_zone(zone) {
        Ok(z) => z,
        Err(e) => return fail(exit::USAGE, e),
    };
    let mut grants = Vec::new();
    for n in nodes {
        match NodeGrant::parse(n) {
            Ok(g) => grants.push(g),
            Err(e) => return fail(exit::USAGE, e),
        }
    }
    let mut keys = Vec::new();
    for f in key_files {
        match load_key_file(f, None) {
            Ok(k) => keys.push(k),
            Err(e) => return fail(exit::INPUT, e),
        }
    }
    let base = zone.to_ascii().trim_end_matches('.').to_string();
    let zone_file = zone_file.unwrap_or_else(|| match &out_dir {
        Some(d) => d.join(format!("{base}.zone")).display().to_string(),
        None => format!("{base}.zone"),
    });
    let cfg = BindConfig {
        zone,
        nodes: grants,
        keys,
        ns_addr,
        zone_file,
        ttl,
    };
    let stanza = match render_stanza(&cfg) {
        Ok(s) => s,
        Err(e) => return fail(exit::USAGE, e),
    };
    let zonefile = render_zone_file(&cfg);
    match out_dir {
        None => {
            println!("; ---- zone file: {} ----\n{zonefile}", cfg.zone_file);
            println!("// ---- named.conf ----\n{stanza}");
        }
        Some(dir) => {
            for (name, text) in [
                (format!("{base}.zone"), &zonefile),
                (format!("{base}.conf"), &stanza),
            ] {
                let p = dir.join(name);
                if let Err(e) = std::fs::write(&p, text) {
                    return fail(exit::INPUT, format!("cannot write {}: {e}", p.display()));
                }
                println!("{}", p.display());
            }
        }
    }
    exit::OK
}

fn cmd_lookup(server: SocketAddr, zones: &[String], ips: &[IpAddr]) -> i32 {
    let mut zs = Vec::new();
    for z in zones {
        match parse_zone(z) {
            Ok(z) => zs.push(z),
            Err(e) => return fail(exit::USAGE, e),
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(exit::INPUT, format!("cannot start runtime: {e}")),
    };
    rt.block_on(async {
        let r = Resolver::new(LookupConfig::new(server, zs));
        let mut code = exit::OK;
        for ip in ips {
            match r.resolve(*ip).await {
                Ok(res) => println!(
                    "{ip} {}",
                    if res.ids.is_empty() {
                        "-".to_string()
                    } else {
                        res.ids.join(" ")
                    }
                ),
                Err(e) => code = fail(exit::UNREACHABLE, e),
            }
        }
        code
    })
}
