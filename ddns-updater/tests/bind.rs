//! End-to-end tests against a real BIND 9 (`named`) started on loopback (or in a network
//! namespace) with keys from `tsig-keygen` and the config of `bind-config`. Records are
//! checked with `dig`. Needs root and the Debian packages bind9, bind9-dnsutils (dig,
//! nsupdate) and iproute2: a missing tool FAILS the test with the package to install.

use std::net::IpAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ddns_updater::error::{UpdateError, exit};
use ddns_updater::harness::{NamedServer, NetNs, require_tool};
use ddns_updater::keyfile::load_key_file;
use ddns_updater::lookup::{LookupConfig, Resolver};
use ddns_updater::names::parse_zone;
use ddns_updater::update::{RetryPolicy, UpdateConfig, Updater};

const ZONE: &str = "nodes.test";
const A_IDS: &[&str] = &["disk-a1", "disk-a2"];
const B_IDS: &[&str] = &["disk-b1"];

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vtrail-ddns")
}

fn start() -> NamedServer {
    NamedServer::start(ZONE, &[("node-a", A_IDS), ("node-b", B_IDS)], None)
        .unwrap_or_else(|e| panic!("cannot start BIND: {e}"))
}

/// `vtrail-ddns update --once` with the node's key.
fn update(s: &NamedServer, key: &str, ids: &[&str], addrs: &[&str], extra: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.args([
        "update",
        "--once",
        "--server",
        &s.addr().to_string(),
        "--zone",
        ZONE,
        "--key-file",
    ])
    .arg(s.key_path(key));
    for id in ids {
        c.args(["--id", id]);
    }
    for a in addrs {
        c.args(["--addr", a]);
    }
    c.args(extra).output().expect("run vtrail-ddns")
}

fn code_and_err(o: &Output) -> (Option<i32>, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn fqdn(id: &str) -> String {
    format!("{id}.{ZONE}.")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn create_change_address_several_disks_and_lookup() {
    let s = start();
    let o = update(&s, "node-a", A_IDS, &["192.0.2.10", "2001:db8::10"], &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for id in A_IDS {
        assert_eq!(s.dig(&fqdn(id), "A"), ["192.0.2.10"]);
        assert_eq!(s.dig(&fqdn(id), "AAAA"), ["2001:db8::10"]);
    }
    assert_eq!(
        s.dig("10.2.0.192.ip4.nodes.test", "PTR"),
        [fqdn("disk-a1"), fqdn("disk-a2")]
    );
    let v6_rev = "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.nodes.test";
    assert_eq!(s.dig(v6_rev, "PTR"), [fqdn("disk-a1"), fqdn("disk-a2")]);

    // IP change: the first addresses go away, with their reverse entries
    let o = update(&s, "node-a", A_IDS, &["192.0.2.11"], &["--ttl", "30"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(s.dig(&fqdn("disk-a1"), "A"), ["192.0.2.11"]);
    assert!(s.dig(&fqdn("disk-a1"), "AAAA").is_empty());
    assert!(s.dig("10.2.0.192.ip4.nodes.test", "PTR").is_empty());
    assert!(s.dig(v6_rev, "PTR").is_empty());
    assert_eq!(
        s.dig("11.2.0.192.ip4.nodes.test", "PTR"),
        [fqdn("disk-a1"), fqdn("disk-a2")]
    );

    // another node behind the same address
    let o = update(&s, "node-b", B_IDS, &["192.0.2.11"], &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // node-b forges a reverse entry claiming 192.0.2.99 is disk-a1: the PTR is written
    // (shared reverse names) but forward confirmation rejects it.
    let nsupdate = require_tool("nsupdate", "bind9-dnsutils").unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(nsupdate)
        .arg("-k")
        .arg(s.key_path("node-b"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    write!(
        child.stdin.take().unwrap(),
        "server 127.0.0.1 {}\nzone {ZONE}\nupdate add 99.2.0.192.ip4.{ZONE} 60 PTR disk-a1.{ZONE}.\nsend\n",
        s.port
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nsupdate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.dig("99.2.0.192.ip4.nodes.test", "PTR"), [fqdn("disk-a1")]);

    rt().block_on(async {
        let r = Resolver::new(LookupConfig::new(s.addr(), vec![parse_zone(ZONE).unwrap()]));
        let first = r.resolve("192.0.2.11".parse().unwrap()).await.unwrap();
        assert_eq!(first.ids, ["disk-a1", "disk-a2", "disk-b1"]);
        assert!(!first.cached);
        assert_eq!(
            first.ttl,
            Duration::from_secs(30),
            "smallest TTL seen (node-a's 30 s)"
        );
        let again = r.resolve("192.0.2.11".parse().unwrap()).await.unwrap();
        assert!(again.cached);
        assert_eq!(again.ids, first.ids);
        let forged = r.resolve("192.0.2.99".parse().unwrap()).await.unwrap();
        assert!(forged.ids.is_empty(), "forged PTR accepted: {forged:?}");
        let unknown = r.resolve("198.51.100.1".parse().unwrap()).await.unwrap();
        assert!(unknown.ids.is_empty());
    });

    // the lookup command gives the same answer
    let out = Command::new(bin())
        .args([
            "lookup",
            "--server",
            &s.addr().to_string(),
            "--zone",
            ZONE,
            "192.0.2.11",
            "192.0.2.99",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "192.0.2.11 disk-a1 disk-a2 disk-b1\n192.0.2.99 -\n"
    );
}

#[test]
fn another_nodes_name_is_refused() {
    let s = start();
    assert_eq!(
        update(&s, "node-b", B_IDS, &["192.0.2.20"], &[])
            .status
            .code(),
        Some(0)
    );
    let o = update(&s, "node-a", B_IDS, &["192.0.2.66"], &[]);
    let (code, err) = code_and_err(&o);
    assert_eq!(code, Some(exit::REFUSED), "{err}");
    assert!(
        err.contains("REFUSED") && err.contains("node-a") && err.contains("disk-b1.nodes.test"),
        "{err}"
    );
    assert_eq!(
        s.dig(&fqdn("disk-b1"), "A"),
        ["192.0.2.20"],
        "record must be unchanged"
    );
    // an ID nobody was granted
    assert_eq!(
        update(&s, "node-a", &["disk-zz"], &["192.0.2.66"], &[])
            .status
            .code(),
        Some(exit::REFUSED)
    );
}

#[test]
fn out_of_zone_is_notauth() {
    let s = start();
    let mut c = Command::new(bin());
    c.args([
        "update",
        "--once",
        "--server",
        &s.addr().to_string(),
        "--zone",
        "elsewhere.test",
        "--key-file",
    ])
    .arg(s.key_path("node-a"))
    .args(["--id", "disk-a1", "--addr", "192.0.2.1"]);
    let (code, err) = code_and_err(&c.output().unwrap());
    assert_eq!(code, Some(exit::NOTAUTH), "{err}");
    assert!(
        err.contains("NOTAUTH") && err.contains("elsewhere.test"),
        "{err}"
    );
}

#[test]
fn wrong_key_fails_authentication() {
    let s = start();
    let keygen = require_tool("tsig-keygen", "bind9").unwrap_or_else(|e| panic!("{e}"));
    let mk = |name: &str, file: &str| {
        let out = Command::new(&keygen)
            .args(["-a", "hmac-sha256", name])
            .output()
            .unwrap();
        let p = s.dir.join(file);
        std::fs::write(&p, out.stdout).unwrap();
        p
    };
    // right name, wrong secret -> BADSIG
    let wrong_secret = mk("node-a", "wrong-secret.key");
    let o = Command::new(bin())
        .args([
            "update",
            "--once",
            "--server",
            &s.addr().to_string(),
            "--zone",
            ZONE,
            "--key-file",
        ])
        .arg(&wrong_secret)
        .args(["--id", "disk-a1", "--addr", "192.0.2.1"])
        .output()
        .unwrap();
    let (code, err) = code_and_err(&o);
    assert_eq!(code, Some(exit::AUTH), "{err}");
    assert!(
        err.contains("authentication failed") && err.contains("BADSIG"),
        "{err}"
    );
    // a key the server does not have -> BADKEY
    let unknown = mk("node-x", "unknown.key");
    let o = Command::new(bin())
        .args([
            "update",
            "--once",
            "--server",
            &s.addr().to_string(),
            "--zone",
            ZONE,
            "--key-file",
        ])
        .arg(&unknown)
        .args(["--id", "disk-a1", "--addr", "192.0.2.1"])
        .output()
        .unwrap();
    let (code, err) = code_and_err(&o);
    assert_eq!(code, Some(exit::AUTH), "{err}");
    assert!(err.contains("BADKEY") && err.contains("node-x"), "{err}");
    assert!(s.dig(&fqdn("disk-a1"), "A").is_empty());

    // the library error is matchable
    rt().block_on(async {
        let key = load_key_file(&wrong_secret, None).unwrap();
        let u = Updater::new(UpdateConfig::new(s.addr(), parse_zone(ZONE).unwrap(), key)).unwrap();
        let e = u
            .publish(&["disk-a1".into()], &["192.0.2.1".parse().unwrap()])
            .await
            .unwrap_err();
        assert!(
            matches!(e, UpdateError::BadSig { .. }) && e.is_auth(),
            "{e}"
        );
    });
}

#[test]
fn clock_skew_is_badtime_with_the_skew() {
    let s = start();
    let o = update(
        &s,
        "node-a",
        &["disk-a1"],
        &["192.0.2.1"],
        &["--clock-offset-secs", "-3600"],
    );
    let (code, err) = code_and_err(&o);
    assert_eq!(code, Some(exit::BADTIME), "{err}");
    // Our clock is read when the answer arrives, the server's when it signed: a second
    // boundary between the two makes it -3599 or -3601.
    assert!(err.contains("BADTIME") && ["-3599 s", "-3600 s", "-3601 s"].iter().any(|s| err.contains(s)), "{err}");
    rt().block_on(async {
        let key = load_key_file(&s.key_path("node-a"), None).unwrap();
        let mut cfg = UpdateConfig::new(s.addr(), parse_zone(ZONE).unwrap(), key);
        cfg.clock_offset_secs = 1000;
        let e = Updater::new(cfg)
            .unwrap()
            .publish(&["disk-a1".into()], &["192.0.2.1".parse().unwrap()])
            .await
            .unwrap_err();
        match e {
            UpdateError::BadTime {
                skew_secs, fudge, ..
            } => {
                assert!((skew_secs - 1000).abs() <= 2, "skew {skew_secs}");
                assert_eq!(fudge, 300);
            }
            other => panic!("expected BadTime, got {other}"),
        }
    });
    // within the fudge: accepted
    assert_eq!(
        update(
            &s,
            "node-a",
            &["disk-a1"],
            &["192.0.2.1"],
            &["--clock-offset-secs", "120"]
        )
        .status
        .code(),
        Some(0)
    );
}

#[test]
fn server_stopped_then_restarted() {
    let mut s = start();
    s.stop();
    // down for good: retries, then exit 14 naming the attempts
    let t0 = Instant::now();
    let o = update(
        &s,
        "node-a",
        &["disk-a1"],
        &["192.0.2.5"],
        &["--attempts", "2", "--timeout-ms", "500"],
    );
    let (code, err) = code_and_err(&o);
    assert_eq!(code, Some(exit::UNREACHABLE), "{err}");
    assert!(err.contains("after 2 attempts"), "{err}");
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "no backoff between attempts"
    );

    // down, then back while the client retries: success
    let child = Command::new(bin())
        .args([
            "update",
            "--once",
            "--server",
            &s.addr().to_string(),
            "--zone",
            ZONE,
            "--key-file",
        ])
        .arg(s.key_path("node-a"))
        .args([
            "--id",
            "disk-a1",
            "--addr",
            "192.0.2.5",
            "--attempts",
            "6",
            "--timeout-ms",
            "1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    s.restart().unwrap_or_else(|e| panic!("restart named: {e}"));
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.dig(&fqdn("disk-a1"), "A"), ["192.0.2.5"]);

    // library: the attempt count is reported
    s.stop();
    let addr = s.addr();
    let key = load_key_file(&s.key_path("node-a"), None).unwrap();
    let handle = std::thread::spawn(move || {
        rt().block_on(async {
            let mut cfg = UpdateConfig::new(addr, parse_zone(ZONE).unwrap(), key);
            cfg.retry = RetryPolicy {
                attempts: 8,
                initial_backoff: Duration::from_millis(300),
                max_backoff: Duration::from_secs(1),
            };
            Updater::new(cfg)
                .unwrap()
                .publish(&["disk-a1".into()], &["192.0.2.6".parse().unwrap()])
                .await
        })
    });
    std::thread::sleep(Duration::from_millis(900));
    s.restart().unwrap();
    let published = handle.join().unwrap().unwrap();
    assert!(published[0].attempts > 1, "{published:?}");
    assert_eq!(
        published[0].removed,
        ["192.0.2.5".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(s.dig(&fqdn("disk-a1"), "A"), ["192.0.2.6"]);
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(
    s: &NamedServer,
    name: &str,
    rtype: &str,
    want: &[&str],
    within: Duration,
) -> Result<Duration, Vec<String>> {
    let t0 = Instant::now();
    loop {
        let got = s.dig(name, rtype);
        if got == want {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > within {
            return Err(got);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn daemon_follows_netlink_address_changes() {
    let ns =
        NetNs::create("daemon").unwrap_or_else(|e| panic!("cannot create network namespace: {e}"));
    let s = NamedServer::start(ZONE, &[("node-a", A_IDS)], Some(&ns.name))
        .unwrap_or_else(|e| panic!("cannot start BIND: {e}"));
    let log = s.dir.join("daemon.log");
    let daemon = ns
        .command(std::path::Path::new(bin()))
        .args([
            "update",
            "--server",
            &s.addr().to_string(),
            "--zone",
            ZONE,
            "--key-file",
        ])
        .arg(s.key_path("node-a"))
        .args([
            "--id",
            "disk-a1",
            "--interface",
            &ns.iface,
            "--resync-secs",
            "3600",
        ])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _daemon = KillOnDrop(daemon);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let ten = Duration::from_secs(10);

    ns.ip_in(&["addr", "add", "192.0.2.1/24", "dev", &ns.iface])
        .unwrap();
    wait_for(&s, &fqdn("disk-a1"), "A", &["192.0.2.1"], ten)
        .unwrap_or_else(|got| panic!("got {got:?}\n{}", logs()));

    // second address added, first removed (another subnet: removing a primary address
    // also removes the secondaries of its subnet)
    ns.ip_in(&["addr", "add", "198.51.100.2/24", "dev", &ns.iface])
        .unwrap();
    ns.ip_in(&["addr", "del", "192.0.2.1/24", "dev", &ns.iface])
        .unwrap();
    let latency = wait_for(&s, &fqdn("disk-a1"), "A", &["198.51.100.2"], ten)
        .unwrap_or_else(|got| panic!("got {got:?}\n{}", logs()));
    eprintln!("address change visible in dig after {latency:?}");
    assert!(s.dig("1.2.0.192.ip4.nodes.test", "PTR").is_empty());
    assert_eq!(
        s.dig("2.100.51.198.ip4.nodes.test", "PTR"),
        [fqdn("disk-a1")]
    );

    // a deprecated IPv6 address is not published, a preferred one is
    ns.ip_in(&[
        "addr",
        "add",
        "2001:db8::7/64",
        "dev",
        &ns.iface,
        "nodad",
        "preferred_lft",
        "0",
    ])
    .unwrap();
    ns.ip_in(&["addr", "add", "2001:db8::5/64", "dev", &ns.iface, "nodad"])
        .unwrap();
    wait_for(&s, &fqdn("disk-a1"), "AAAA", &["2001:db8::5"], ten)
        .unwrap_or_else(|got| panic!("got {got:?}\n{}", logs()));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        s.dig(&fqdn("disk-a1"), "AAAA"),
        ["2001:db8::5"],
        "deprecated address published"
    );
    assert_eq!(s.dig(&fqdn("disk-a1"), "A"), ["198.51.100.2"]);
}

#[test]
fn missing_tool_is_a_failure_naming_the_package() {
    // The harness turns a missing named/dig/tsig-keygen into an error (and the tests into
    // a panic), never a silent skip.
    let e = require_tool("vtrail-no-such-tool", "bind9").unwrap_err();
    assert!(
        e.contains("vtrail-no-such-tool") && e.contains("apt-get install bind9"),
        "{e}"
    );
}
