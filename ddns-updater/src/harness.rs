//! A throwaway BIND 9 primary for tests and `ddns-bench` (not for production use).
//!
//! Starts `named -g` as root in a fresh temp directory on 127.0.0.1 and a free port
//! (optionally inside a network namespace), with TSIG keys made by `tsig-keygen` and the
//! zone file and stanza of [`crate::bindconf`]. Missing tools are errors naming the Debian
//! package, so a test that needs them fails loudly instead of skipping.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bindconf::{BindConfig, NodeGrant, render_stanza, render_zone_file};
use crate::keyfile::{TsigKey, load_key_file};
use crate::names::parse_zone;

/// Finds a tool in PATH, /usr/sbin or /sbin; the error names the Debian package.
pub fn require_tool(tool: &str, package: &str) -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("`{tool}` not found: this test needs a real BIND 9; install it with `apt-get install {package}`"))
}

/// A TCP+UDP port on 127.0.0.1 free right now (in the current network namespace).
pub fn free_port() -> Result<u16, String> {
    for _ in 0..50 {
        let tcp = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| format!("probe port: {e}"))?;
        let port = tcp.local_addr().map_err(|e| e.to_string())?.port();
        if std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port on 127.0.0.1".into())
}

/// A running `named`.
pub struct NamedServer {
    pub dir: PathBuf,
    pub port: u16,
    pub zone: String,
    /// The address it listens on.
    pub listen: Ipv4Addr,
    netns: Option<String>,
    named: PathBuf,
    dig: PathBuf,
    child: Option<Child>,
    keep_dir: bool,
}

impl NamedServer {
    /// Starts a primary for `zone` with one generated key per node. `netns`: run inside that
    /// (existing) network namespace.
    pub fn start(
        zone: &str,
        nodes: &[(&str, &[&str])],
        netns: Option<&str>,
    ) -> Result<Self, String> {
        Self::start_on(zone, nodes, netns, Ipv4Addr::LOCALHOST, None)
    }

    /// As [`NamedServer::start`], listening on `listen` (an address of the namespace it
    /// runs in) and on `port` (default: a free one).
    pub fn start_on(
        zone: &str,
        nodes: &[(&str, &[&str])],
        netns: Option<&str>,
        listen: Ipv4Addr,
        port: Option<u16>,
    ) -> Result<Self, String> {
        let named = require_tool("named", "bind9")?;
        let keygen = require_tool("tsig-keygen", "bind9 (bind9-utils on newer Debian)")?;
        let dig = require_tool("dig", "bind9-dnsutils")?;
        if netns.is_some() {
            require_tool("ip", "iproute2")?;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("the BIND tests start `named` and must run as root".into());
        }
        let port = match (port, netns) {
            (Some(port), _) => port,
            (None, None) => free_port()?,
            (None, Some(_)) => 20000 + (std::process::id() % 20000) as u16,
        };
        let dir = std::env::temp_dir().join(format!(
            "vtrail-ddns-bind-{}-{port}-{}",
            std::process::id(),
            nanos()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;

        let zone_name = parse_zone(zone).map_err(|e| e.to_string())?;
        let mut keys: Vec<TsigKey> = Vec::new();
        let mut grants = Vec::new();
        for (key, ids) in nodes {
            let out = Command::new(&keygen)
                .args(["-a", "hmac-sha256", key])
                .output()
                .map_err(|e| format!("run tsig-keygen: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "tsig-keygen {key} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let path = dir.join(format!("{key}.key"));
            std::fs::write(&path, &out.stdout).map_err(|e| e.to_string())?;
            keys.push(load_key_file(&path, None).map_err(|e| e.to_string())?);
            grants.push(
                NodeGrant::parse(&format!("{key}={}", ids.join(","))).map_err(|e| e.to_string())?,
            );
        }
        let base = zone_name.to_ascii().trim_end_matches('.').to_string();
        let cfg = BindConfig {
            zone: zone_name,
            nodes: grants,
            keys,
            ns_addr: IpAddr::V4(listen),
            zone_file: dir.join(format!("{base}.zone")).display().to_string(),
            ttl: 60,
        };
        std::fs::write(dir.join(format!("{base}.zone")), render_zone_file(&cfg))
            .map_err(|e| e.to_string())?;
        std::fs::write(
            dir.join(format!("{base}.conf")),
            render_stanza(&cfg).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let d = dir.display();
        let conf = format!(
            "options {{\n\tdirectory \"{d}\";\n\tlisten-on port {port} {{ {listen}; }};\n\tlisten-on-v6 {{ none; }};\n\
             \tpid-file \"{d}/named.pid\";\n\tsession-keyfile \"{d}/session.key\";\n\trecursion no;\n\tnotify no;\n\
             \tdnssec-validation no;\n}};\ncontrols {{ }};\ninclude \"{d}/{base}.conf\";\n"
        );
        std::fs::write(dir.join("named.conf"), conf).map_err(|e| e.to_string())?;

        let mut s = Self {
            dir,
            port,
            zone: base,
            listen,
            netns: netns.map(str::to_string),
            named,
            dig,
            child: None,
            keep_dir: std::env::var_os("VTRAIL_KEEP_BIND").is_some(),
        };
        s.restart()?;
        Ok(s)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.listen, self.port))
    }

    pub fn key_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.key"))
    }

    fn command(&self, prog: &Path) -> Command {
        match &self.netns {
            None => Command::new(prog),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(prog);
                c
            }
        }
    }

    /// Starts `named` (again, if stopped) and waits until it answers the zone's SOA.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("named.log"))
            .map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = self
            .command(&self.named.clone())
            .args(["-g", "-c"])
            .arg(self.dir.join("named.conf"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("start named: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!(
                    "named exited ({status}) at start:\n{}",
                    self.log_tail()
                ));
            }
            if !self.dig(&self.zone.clone(), "SOA").is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "named did not answer within 15 s:\n{}",
            self.log_tail()
        ))
    }

    /// Kills `named` and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("named.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `dig +short` answer lines for `name` `rtype` (TCP, one try).
    pub fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        let out = self
            .command(&self.dig.clone())
            .args([
                "+short",
                "+tcp",
                "+tries=1",
                "+time=1",
                "-p",
                &self.port.to_string(),
                &format!("@{}", self.listen),
                name,
                rtype,
            ])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with(';'))
                    .map(str::to_string)
                    .collect();
                v.sort();
                v
            }
            _ => Vec::new(),
        }
    }
}

impl Drop for NamedServer {
    fn drop(&mut self) {
        self.stop();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A network namespace with `lo` up and a veth pair `vt0`/`vt1` (both ends inside, up),
/// deleted on drop. (A veth, not a dummy: some kernels lack the dummy driver.)
pub struct NetNs {
    pub name: String,
    pub iface: String,
}

impl NetNs {
    pub fn create(tag: &str) -> Result<Self, String> {
        require_tool("ip", "iproute2")?;
        let name = format!("vtrail-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ns = Self {
            name,
            iface: "vt0".into(),
        };
        ns.ip(&["netns", "add", &ns.name.clone()])?;
        ns.ip_in(&["link", "set", "lo", "up"])?;
        ns.ip_in(&["link", "add", "vt0", "type", "veth", "peer", "name", "vt1"])?;
        ns.ip_in(&["link", "set", "vt0", "up"])?;
        ns.ip_in(&["link", "set", "vt1", "up"])?;
        Ok(ns)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "ip {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// Runs `ip -n <ns> ARGS`.
    pub fn ip_in(&self, args: &[&str]) -> Result<(), String> {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        self.ip(&v)
    }

    /// A command run inside the namespace.
    pub fn command(&self, prog: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(prog);
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
