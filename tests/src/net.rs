//! The network-namespace harness of the network and naming tests: a veth pair whose
//! far end (`vtn1`, addresses CLIENT4/CLIENT6) lives in namespace `vtnet`, real Samba and
//! vsftpd bound to the near end's addresses, and the checks of an attributed upload.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use std::os::unix::process::CommandExt;

use crate::sensor::{Graph, RunningSensor, sh};

pub const NS: &str = "vtnet";
pub const HOST_IF: &str = "vtn0";
pub const HOST4: &str = "10.231.0.1";
pub const CLIENT4: &str = "10.231.0.2";
pub const HOST6: &str = "fd00:231::1";
pub const CLIENT6: &str = "fd00:231::2";

pub fn run(cmd: &str) -> std::process::Output {
    Command::new("/bin/sh").arg("-c").arg(cmd).output().unwrap()
}

/// Installs the servers and clients from Debian's packages if missing.
pub fn ensure_packages() {
    let need = [("/usr/sbin/smbd", "samba"), ("/usr/bin/smbclient", "smbclient"), ("/usr/sbin/vsftpd", "vsftpd"), ("/usr/bin/curl", "curl"), ("/usr/bin/python3", "python3")];
    let missing: Vec<&str> = need.iter().filter(|(p, _)| !Path::new(p).exists()).map(|(_, pkg)| *pkg).collect();
    if missing.is_empty() {
        return;
    }
    let out = run(&format!("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q {}", missing.join(" ")));
    assert!(
        out.status.success(),
        "these tests need the Debian packages {missing:?} and `apt-get install` failed: {}\ninstall them by hand and re-run",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The client namespace and the veth pair; removed on drop.
pub struct Net;

impl Net {
    pub fn up() -> Self {
        let _ = run(&format!("ip netns del {NS} 2>/dev/null; ip link del {HOST_IF} 2>/dev/null"));
        sh(&format!(
            "ip netns add {NS} && ip link add {HOST_IF} type veth peer name vtn1 && ip link set vtn1 netns {NS} \
             && ip addr add {HOST4}/24 dev {HOST_IF} && ip -6 addr add {HOST6}/64 dev {HOST_IF} nodad && ip link set {HOST_IF} up \
             && ip netns exec {NS} ip addr add {CLIENT4}/24 dev vtn1 && ip netns exec {NS} ip -6 addr add {CLIENT6}/64 dev vtn1 nodad \
             && ip netns exec {NS} ip link set vtn1 up && ip netns exec {NS} ip link set lo up"
        ));
        Net
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = run(&format!("ip netns del {NS}; ip link del {HOST_IF} 2>/dev/null"));
    }
}

pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        std::thread::sleep(Duration::from_millis(200));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_listening(port: u16, addr: &str) {
    wait_listening_in("", port, addr)
}

/// As [`wait_listening`], in network namespace `ns` ("" = the test's own).
pub fn wait_listening_in(ns: &str, port: u16, addr: &str) {
    let prefix = if ns.is_empty() { String::new() } else { format!("ip netns exec {ns} ") };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let out = run(&format!("{prefix}ss -Hltn 'sport = :{port}'"));
        if String::from_utf8_lossy(&out.stdout).contains(addr) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on {addr} port {port} after 15 s: {}", String::from_utf8_lossy(&run("ss -ltnp").stdout));
}

/// smbd bound to the veth addresses only, one user `root` (password vtpass), a plain
/// share and one with `smb encrypt = required`, both on `dir/share`, and `other` on
/// `dir/other`.
pub fn start_samba(dir: &Path) -> (Daemon, PathBuf) {
    let d = dir.display();
    for sub in ["lock", "state", "cache", "private", "run", "ncalrpc", "share", "other"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let conf = dir.join("smb.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\n server role = standalone server\n workgroup = VTRAIL\n interfaces = {HOST4}/24 {HOST6}/64\n\
             bind interfaces only = yes\n smb ports = 445\n disable netbios = yes\n lock directory = {d}/lock\n\
             state directory = {d}/state\n cache directory = {d}/cache\n private dir = {d}/private\n pid directory = {d}/run\n\
             ncalrpc dir = {d}/ncalrpc\n log file = {d}/log.smbd\n passdb backend = tdbsam:{d}/private/passdb.tdb\n\
             server min protocol = SMB2_10\n load printers = no\n printing = bsd\n printcap name = /dev/null\n disable spoolss = yes\n\
             [share]\n path = {d}/share\n read only = no\n\
             [enc]\n path = {d}/share\n read only = no\n smb encrypt = required\n\
             [other]\n path = {d}/other\n read only = no\n"
        ),
    )
    .unwrap();
    sh(&format!("printf 'vtpass\\nvtpass\\n' | pdbedit -s {} -a -u root -t >/dev/null", conf.display()));
    // Own process group: smbd signals its whole group when it stops.
    let child = Command::new("/usr/sbin/smbd")
        .process_group(0)
        .args(["--foreground", "--no-process-group", "-s"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("smbd.stderr")).unwrap())
        .spawn()
        .expect("start smbd");
    wait_listening(445, HOST4);
    (Daemon(child), dir.join("share"))
}

/// vsftpd (anonymous uploads into `incoming/`), one instance per address family.
pub fn start_vsftpd(dir: &Path, v6: bool) -> (Daemon, PathBuf) {
    start_vsftpd_at(dir, "", if v6 { HOST6 } else { HOST4 })
}

/// vsftpd listening on `addr` in network namespace `ns` ("" = the test's own; root
/// `dir/ftp`, else `dir/ftp-<ns>`).
pub fn start_vsftpd_at(dir: &Path, ns: &str, addr: &str) -> (Daemon, PathBuf) {
    let root = if ns.is_empty() { dir.join("ftp") } else { dir.join(format!("ftp-{ns}")) };
    std::fs::create_dir_all(root.join("incoming")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    sh(&format!("chown ftp {0}/incoming && chmod 755 {0}", root.display()));
    let listen = if addr.contains(':') { format!("listen=NO\nlisten_ipv6=YES\nlisten_address6={addr}\n") } else { format!("listen=YES\nlisten_address={addr}\n") };
    let conf = dir.join(format!("vsftpd-{addr}.conf"));
    std::fs::write(
        &conf,
        format!(
            "{listen}background=NO\nanonymous_enable=YES\nlocal_enable=NO\nwrite_enable=YES\nanon_upload_enable=YES\n\
             anon_root={}\nno_anon_password=YES\nanon_umask=022\npasv_enable=YES\npasv_min_port=40000\npasv_max_port=40100\n\
             port_enable=YES\nconnect_from_port_20=NO\nseccomp_sandbox=NO\nsecure_chroot_dir={}\nxferlog_enable=NO\n\
             pam_service_name=vsftpd\n",
            root.display(),
            dir.join("empty").display()
        ),
    )
    .unwrap();
    let mut cmd = if ns.is_empty() {
        Command::new("/usr/sbin/vsftpd")
    } else {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, "/usr/sbin/vsftpd"]);
        c
    };
    let child = cmd
        .process_group(0)
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("vsftpd-{addr}.stderr"))).unwrap())
        .spawn()
        .expect("start vsftpd");
    wait_listening_in(ns, 21, addr);
    (Daemon(child), root.join("incoming"))
}

pub fn sensor(dir: &Path) -> RunningSensor {
    sensor_with(dir, "")
}

/// A sensor watching the veth, with `extra_toml` added to its configuration.
pub fn sensor_with(dir: &Path, extra_toml: &str) -> RunningSensor {
    RunningSensor::start(
        dir,
        &format!("interfaces = [\"{HOST_IF}\"]\ninclude_loopback = false\nsmb_conf = \"{}/smb.conf\"\n{extra_toml}", dir.display()),
    )
}

pub fn received_from<'a>(g: &'a Graph, path: &str) -> Vec<&'a serde_json::Value> {
    match g.file(path) {
        Some(f) => g.edges_into("received_from", f["id"].as_str().unwrap()),
        None => Vec::new(),
    }
}

/// The file arrived untrusted from `ip` (under `name`, unless inferred), and running it taints.
pub fn check_upload(sensor: &RunningSensor, path: &str, ip: &str, name: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !received_from(&sensor.graph(), path).iter().any(|e| e["attrs"]["ip"] == ip) {
        if Instant::now() > deadline {
            eprintln!("network status: {}", sensor.status()["network"]);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let g = sensor.wait_for(&format!("received_from {ip} -> {path}"), |g| {
        received_from(g, path).iter().any(|e| e["attrs"]["ip"] == ip)
    });
    assert!(g.is_untrusted(path), "{path} untrusted");
    let edge = received_from(&g, path).into_iter().find(|e| e["attrs"]["ip"] == ip).unwrap().clone();
    assert_eq!(edge["src"], format!("remote:{ip}"));
    match name {
        Some(n) => {
            assert_eq!(edge["attrs"]["name"], n, "{edge}");
            assert_eq!(edge["attrs"]["inferred"], false, "{edge}");
        }
        None => assert_eq!(edge["attrs"]["inferred"], true, "{edge}"),
    }
    let remote = g.node(&format!("remote:{ip}")).expect("remote node");
    assert_eq!(remote["kind"], "remote");
    sh(&format!("chmod +x '{path}' && '{path}' -c true"));
    sensor.wait_for(&format!("exec of {path} tainted"), |g| g.processes_that_exec(path).iter().any(|p| p["tainted"] == true));
}

/// `smbclient get` of `name` from `share` into `dest` (in the client namespace).
pub fn smb_get(server: &str, share: &str, name: &str, dest: &str) -> std::process::Output {
    run(&format!("ip netns exec {NS} timeout 20 smbclient //vtserver/{share} -I {server} -U root%vtpass -c 'get {name} {dest}'"))
}

pub fn smb_put(server: &str, share: &str, dialect: &str, encrypt: bool, src: &str, name: &str) -> std::process::Output {
    run(&format!(
        "ip netns exec {NS} timeout 20 smbclient //vtserver/{share} -I {server} -U root%vtpass -m {dialect} \
         --option='client min protocol={dialect}' {} -c 'put {src} {name}'",
        if encrypt { "--client-protection=encrypt" } else { "" }
    ))
}


/// How `ftp_framed_put` sends its STOR.
#[derive(Clone, Copy, Debug)]
pub enum StorFraming {
    /// `ST` and `OR name` in two TCP segments.
    Split,
    /// `NOOP\r\nSTOR name` in one segment.
    Pipelined,
}

/// An anonymous FTP upload of `src` as `incoming/name` from the client namespace, with the
/// STOR framed as `framing` (curl cannot do that: a raw client in Python, TCP_NODELAY and
/// a pause between the split halves). Fails if the server did not answer 150 and 226
/// within 5 s of each command.
pub fn ftp_framed_put(server: &str, src: &str, name: &str, framing: StorFraming) -> std::process::Output {
    const CLIENT: &str = r#"
import socket, sys, time, re
host, src, name, framing = sys.argv[1:5]
c = socket.create_connection((host, 21), timeout=5)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = c.makefile('rb')
def reply():
    line = f.readline()
    while len(line) >= 4 and line[3:4] == b'-':
        line = f.readline()
    return line
def cmd(text):
    c.sendall(text)
    return reply()
reply()
cmd(b'USER anonymous\r\n'); cmd(b'PASS x\r\n'); cmd(b'TYPE I\r\n'); cmd(b'CWD incoming\r\n')
r = cmd(b'PASV\r\n')
nums = re.search(rb'\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)', r).groups()
d = socket.create_connection((host, int(nums[4]) * 256 + int(nums[5])), timeout=5)
stor = b'STOR ' + name.encode() + b'\r\n'
if framing == 'split':
    c.sendall(stor[:2]); time.sleep(0.3); c.sendall(stor[2:])
else:
    c.sendall(b'NOOP\r\n' + stor); reply()
r = reply()
if not r.startswith(b'150'):
    sys.exit('STOR refused: %r' % r)
d.sendall(open(src, 'rb').read()); d.close()
r = reply()
sys.exit(0 if r.startswith(b'226') else 'transfer failed: %r' % r)
"#;
    let framing = match framing {
        StorFraming::Split => "split",
        StorFraming::Pipelined => "pipelined",
    };
    Command::new("ip")
        .args(["netns", "exec", NS, "timeout", "30", "python3", "-c", CLIENT, server, src, name, framing])
        .output()
        .expect("run python3")
}
