//! `cargo run --release -p ddns-updater --bin ddns-bench`: measures, against a real BIND 9
//! started in a throwaway network namespace (root, bind9, bind9-dnsutils, iproute2):
//! - update latency: address change on an interface -> daemon (rtnetlink) -> UPDATE ->
//!   record visible to a query;
//! - updates/s: signed publishes (query old + atomic UPDATE) one ID per call, and many IDs
//!   over one connection;
//! - IP -> ID lookups/s, uncached (PTR + forward-confirm queries) and cached.
//!
//! Every number printed is measured in this run. Loops are bounded in count and time.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ddns_updater::daemon::{self, DaemonOptions};
use ddns_updater::harness::{NamedServer, NetNs};
use ddns_updater::keyfile::load_key_file;
use ddns_updater::lookup::{LookupConfig, Resolver};
use ddns_updater::names::parse_zone;
use ddns_updater::netwatch::ifindex;
use ddns_updater::update::{UpdateConfig, Updater};

const ZONE: &str = "bench.test";
const LATENCY_ROUNDS: usize = 20;
const UPDATE_ROUNDS: usize = 200;
const MANY_IDS: usize = 50;
const UNCACHED_LOOKUPS: usize = 500;
const CACHED_LOOKUPS: usize = 200_000;

fn main() {
    if let Err(e) = run() {
        eprintln!("ddns-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let many: Vec<String> = (0..MANY_IDS).map(|i| format!("bench-{i}")).collect();
    let mut ids_a: Vec<&str> = vec!["node-a1"];
    ids_a.extend(many.iter().map(String::as_str));
    let ns = NetNs::create("bench")?;
    let server = NamedServer::start(ZONE, &[("node-a", &ids_a)], Some(&ns.name))?;
    let key = load_key_file(&server.key_path("node-a"), None).map_err(|e| e.to_string())?;
    let addr = server.addr();
    let ns_name = ns.name.clone();
    let iface = ns.iface.clone();

    // Everything network-facing runs on one thread moved into the namespace.
    let worker = std::thread::spawn(move || -> Result<(), String> {
        let f = std::fs::File::open(format!("/run/netns/{ns_name}"))
            .map_err(|e| format!("open netns: {e}"))?;
        // SAFETY: setns on a valid namespace fd; affects only this thread.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(bench(addr, key, &ns_name, &iface))
    });
    worker
        .join()
        .map_err(|_| "bench thread panicked".to_string())??;
    drop(server);
    drop(ns);
    Ok(())
}

async fn bench(
    addr: std::net::SocketAddr,
    key: ddns_updater::keyfile::TsigKey,
    ns: &str,
    iface: &str,
) -> Result<(), String> {
    let zone = parse_zone(ZONE).map_err(|e| e.to_string())?;
    let mut cfg = UpdateConfig::new(addr, zone.clone(), key);
    cfg.ttl = 300;
    let updater = Arc::new(Updater::new(cfg).map_err(|e| e.to_string())?);
    let resolver = Resolver::new(LookupConfig::new(addr, vec![zone.clone()]));
    let fwd = ddns_updater::names::forward_name("node-a1", &zone).map_err(|e| e.to_string())?;

    // 1. latency: interface address change -> visible in a query
    let idx = ifindex(iface).ok_or("no bench interface")?;
    let opts = DaemonOptions {
        resync: Duration::from_secs(3600),
        retry_after: Duration::from_secs(1),
        only_ifindex: vec![idx],
        log_success: false,
    };
    let u = updater.clone();
    let daemon =
        tokio::spawn(async move { daemon::run(&u, &["node-a1".to_string()], &opts).await });
    let mut lat = Vec::new();
    let mut current: Option<String> = None;
    for round in 0..LATENCY_ROUNDS {
        let new = format!("198.51.100.{}", 10 + round);
        ip(ns, &["addr", "add", &format!("{new}/32"), "dev", iface])?;
        if let Some(old) = current.take() {
            ip(ns, &["addr", "del", &format!("{old}/32"), "dev", iface])?;
        }
        let t0 = Instant::now();
        let want: IpAddr = new.parse().map_err(|_| "addr")?;
        loop {
            let mut conn = ddns_updater::transport::Conn::connect(addr, Duration::from_secs(2))
                .await
                .map_err(|e| e.to_string())?;
            let got =
                ddns_updater::update::current_addresses(&mut conn, &fwd, Duration::from_secs(2))
                    .await
                    .map_err(|e| e.to_string())?;
            if got == [want] {
                lat.push(t0.elapsed());
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "round {round}: {new} not visible after 10 s (have {got:?})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        current = Some(new);
    }
    daemon.abort();
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "update latency (ip addr change -> rtnetlink -> UPDATE -> visible in a TCP query), {} rounds: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        lat.len(),
        ms(lat[0]),
        ms(lat[lat.len() / 2]),
        ms(lat[lat.len() - 1])
    );

    // 2. updates/s
    let t0 = Instant::now();
    for i in 0..UPDATE_ROUNDS {
        let a: IpAddr = format!("203.0.113.{}", 1 + (i % 200))
            .parse()
            .map_err(|_| "addr")?;
        updater
            .publish(&["node-a1".to_string()], &[a])
            .await
            .map_err(|e| e.to_string())?;
    }
    let dt = t0.elapsed();
    println!(
        "updates/s, one ID per publish (new TCP connection, query A+AAAA, signed UPDATE): {:.0} ({UPDATE_ROUNDS} in {:.2} s)",
        UPDATE_ROUNDS as f64 / dt.as_secs_f64(),
        dt.as_secs_f64()
    );
    let many: Vec<String> = (0..MANY_IDS).map(|i| format!("bench-{i}")).collect();
    let mut n = 0;
    let t0 = Instant::now();
    for round in 0..4 {
        let a: IpAddr = format!("203.0.113.{}", 201 + round)
            .parse()
            .map_err(|_| "addr")?;
        n += updater
            .publish(&many, &[a])
            .await
            .map_err(|e| e.to_string())?
            .len();
    }
    let dt = t0.elapsed();
    println!(
        "updates/s, {MANY_IDS} IDs per publish over one connection: {:.0} ({n} in {:.2} s)",
        n as f64 / dt.as_secs_f64(),
        dt.as_secs_f64()
    );

    // 3. lookups
    let ip: IpAddr = "203.0.113.204".parse().map_err(|_| "addr")?;
    let r = resolver
        .resolve_uncached(ip)
        .await
        .map_err(|e| e.to_string())?;
    if r.ids.len() != MANY_IDS {
        return Err(format!(
            "lookup found {} IDs, expected {MANY_IDS}",
            r.ids.len()
        ));
    }
    let single: IpAddr = format!("203.0.113.{}", 1 + ((UPDATE_ROUNDS - 1) % 200))
        .parse()
        .map_err(|_| "addr")?;
    let t0 = Instant::now();
    for _ in 0..UNCACHED_LOOKUPS {
        let r = resolver
            .resolve_uncached(single)
            .await
            .map_err(|e| e.to_string())?;
        if r.ids != ["node-a1"] {
            return Err(format!("uncached lookup of {single}: {:?}", r.ids));
        }
    }
    let dt = t0.elapsed();
    println!(
        "IP->ID lookups/s uncached (UDP: PTR + forward-confirm A, 1 ID): {:.0} ({UNCACHED_LOOKUPS} in {:.2} s)",
        UNCACHED_LOOKUPS as f64 / dt.as_secs_f64(),
        dt.as_secs_f64()
    );
    resolver.resolve(single).await.map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    for _ in 0..CACHED_LOOKUPS {
        let r = resolver.resolve(single).await.map_err(|e| e.to_string())?;
        if !r.cached {
            return Err("cache miss in cached loop".into());
        }
    }
    let dt = t0.elapsed();
    println!(
        "IP->ID lookups/s cached: {:.0} ({CACHED_LOOKUPS} in {:.3} s)",
        CACHED_LOOKUPS as f64 / dt.as_secs_f64(),
        dt.as_secs_f64()
    );
    Ok(())
}

fn ip(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut v = vec!["-n", ns];
    v.extend_from_slice(args);
    let out = std::process::Command::new("ip")
        .args(&v)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {} failed: {}",
            v.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}
