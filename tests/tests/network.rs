//! Network monitoring end to end: the real sensor with its TC classifiers on one end of a
//! veth pair, real Samba and vsftpd servers in the root namespace bound to that veth's
//! addresses only, and the clients (smbclient, curl) in a network namespace. All traffic
//! stays on the veth pair. Also the loaded TC program on crafted malformed packets
//! through BPF_PROG_TEST_RUN.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use std::os::unix::process::CommandExt;

use sensor_common::proto::smb2::build;
use sensor_user::network::testrun::{TcTestRun, tcp_packet};
use tests::sensor::{Graph, RunningSensor, require_root, serial, sh, temp_dir};

const NS: &str = "vtnet";
const HOST_IF: &str = "vtn0";
const HOST4: &str = "10.231.0.1";
const CLIENT4: &str = "10.231.0.2";
const HOST6: &str = "fd00:231::1";
const CLIENT6: &str = "fd00:231::2";

fn run(cmd: &str) -> std::process::Output {
    Command::new("/bin/sh").arg("-c").arg(cmd).output().unwrap()
}

/// Installs the servers and clients from Debian's packages if missing.
fn ensure_packages() {
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
struct Net;

impl Net {
    fn up() -> Self {
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

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        std::thread::sleep(Duration::from_millis(200));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let out = run(&format!("ss -Hltn 'sport = :{port}'"));
        if String::from_utf8_lossy(&out.stdout).contains(addr) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on {addr} port {port} after 15 s: {}", String::from_utf8_lossy(&run("ss -ltnp").stdout));
}

/// smbd bound to the veth addresses only, one user `root` (password vtpass), a plain
/// share and one with `smb encrypt = required`, both on `dir/share`.
fn start_samba(dir: &Path) -> (Daemon, PathBuf) {
    let d = dir.display();
    for sub in ["lock", "state", "cache", "private", "run", "ncalrpc", "share"] {
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
             [enc]\n path = {d}/share\n read only = no\n smb encrypt = required\n"
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
fn start_vsftpd(dir: &Path, v6: bool) -> (Daemon, PathBuf) {
    let root = dir.join("ftp");
    std::fs::create_dir_all(root.join("incoming")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    sh(&format!("chown ftp {0}/incoming && chmod 755 {0}", root.display()));
    let listen = if v6 { format!("listen=NO\nlisten_ipv6=YES\nlisten_address6={HOST6}\n") } else { format!("listen=YES\nlisten_address={HOST4}\n") };
    let conf = dir.join(if v6 { "vsftpd6.conf" } else { "vsftpd.conf" });
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
    let child = Command::new("/usr/sbin/vsftpd")
        .process_group(0)
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(if v6 { "vsftpd6.stderr" } else { "vsftpd.stderr" })).unwrap())
        .spawn()
        .expect("start vsftpd");
    wait_listening(21, if v6 { HOST6 } else { HOST4 });
    (Daemon(child), root.join("incoming"))
}

fn sensor(dir: &Path) -> RunningSensor {
    RunningSensor::start(
        dir,
        &format!("interfaces = [\"{HOST_IF}\"]\ninclude_loopback = false\nsmb_conf = \"{}/smb.conf\"\n", dir.display()),
    )
}

fn received_from<'a>(g: &'a Graph, path: &str) -> Vec<&'a serde_json::Value> {
    match g.file(path) {
        Some(f) => g.edges_into("received_from", f["id"].as_str().unwrap()),
        None => Vec::new(),
    }
}

/// The file arrived untrusted from `ip` (under `name`, unless inferred), and running it taints.
fn check_upload(sensor: &RunningSensor, path: &str, ip: &str, name: Option<&str>) {
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

fn smb_put(server: &str, share: &str, dialect: &str, encrypt: bool, src: &str, name: &str) -> std::process::Output {
    run(&format!(
        "ip netns exec {NS} timeout 20 smbclient //vtserver/{share} -I {server} -U root%vtpass -m {dialect} \
         --option='client min protocol={dialect}' {} -c 'put {src} {name}'",
        if encrypt { "--client-protection=encrypt" } else { "" }
    ))
}

#[test]
fn smb_uploads_are_attributed_to_the_sender() {
    let _guard = serial();
    require_root();
    ensure_packages();
    let _net = Net::up();
    let dir = temp_dir("net-smb");
    let (_smbd, share) = start_samba(&dir);
    let sensor = sensor(&dir);
    let cases = [
        ("SMB3_11", "enc", true, HOST4, CLIENT4),
        ("SMB2_10", "share", false, HOST4, CLIENT4),
        ("SMB3_00", "share", false, HOST4, CLIENT4),
        ("SMB3_11", "share", false, HOST4, CLIENT4),
        ("SMB3_11", "share", false, HOST6, CLIENT6),
        ("SMB3_11", "enc", true, HOST4, CLIENT4),
    ];
    for (i, (dialect, sh_name, encrypt, server, client)) in cases.iter().enumerate() {
        let name = format!("up{i}-{dialect}.bin");
        let out = smb_put(server, sh_name, dialect, *encrypt, "/usr/bin/dash", &name);
        assert!(out.status.success(), "smbclient {dialect} put failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let path = format!("{}/{name}", share.display());
        check_upload(&sensor, &path, client, if *encrypt { None } else { Some(&name) });
    }
    let status = sensor.status();
    assert!(status["network"]["attribution"]["encrypted_sessions"].as_u64().unwrap_or(0) >= 1, "{}", status["network"]);
    let log = sensor.stop();
    assert!(log.contains("TC classifiers detached from vtn0"), "{log}");
    let qdisc = String::from_utf8_lossy(&run(&format!("tc qdisc show dev {HOST_IF}")).stdout).into_owned();
    assert!(!qdisc.contains("clsact"), "clsact left behind: {qdisc}");
}

#[test]
fn ftp_uploads_active_and_passive_ipv4_and_ipv6() {
    let _guard = serial();
    require_root();
    ensure_packages();
    let _net = Net::up();
    let dir = temp_dir("net-ftp");
    let sensor = sensor(&dir);
    let (_ftpd, incoming) = start_vsftpd(&dir, false);
    let (_ftpd6, _) = start_vsftpd(&dir, true);
    let cases = [("passive", "", HOST4, CLIENT4), ("active", "--ftp-port -", HOST4, CLIENT4), ("passive6", "", HOST6, CLIENT6), ("active6", "--ftp-port -", HOST6, CLIENT6)];
    for (mode, flag, server, client) in cases {
        let name = format!("ftp-{mode}.bin");
        let host = if server.contains(':') { format!("[{server}]") } else { server.to_string() };
        let out = run(&format!("ip netns exec {NS} curl -g -sS --max-time 20 {flag} -T /usr/bin/dash ftp://{host}/incoming/{name}"));
        assert!(out.status.success(), "curl {mode} STOR failed: {}", String::from_utf8_lossy(&out.stderr));
        check_upload(&sensor, &format!("{}/{name}", incoming.display()), client, Some(&name));
    }
}

#[test]
fn blocked_host_cannot_upload_but_other_traffic_passes() {
    let _guard = serial();
    require_root();
    ensure_packages();
    let _net = Net::up();
    let dir = temp_dir("net-block");
    let (_smbd, share) = start_samba(&dir);
    let sensor = sensor(&dir);
    let (_ftpd, incoming) = start_vsftpd(&dir, false);
    let web = Daemon(
        Command::new("python3").args(["-m", "http.server", "8080", "--bind", HOST4]).current_dir(&dir).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    wait_listening(8080, HOST4);

    let out = sensor.cli(&["block", CLIENT4]);
    assert!(out.status.success(), "block: {}", String::from_utf8_lossy(&out.stderr));
    let out = smb_put(HOST4, "share", "SMB3_11", false, "/usr/bin/dash", "blocked.bin");
    assert!(!out.status.success() || !share.join("blocked.bin").exists(), "SMB upload from a blocked host went through");
    assert!(!share.join("blocked.bin").exists());
    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 10 -T /usr/bin/dash ftp://{HOST4}/incoming/blocked.bin"));
    assert!(!out.status.success(), "FTP upload from a blocked host went through");
    assert!(!incoming.join("blocked.bin").exists());
    // Other traffic: an FTP listing, an SMB directory listing, HTTP on another port.
    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 10 ftp://{HOST4}/incoming/"));
    assert!(out.status.success(), "FTP listing blocked: {}", String::from_utf8_lossy(&out.stderr));
    let out = run(&format!("ip netns exec {NS} timeout 20 smbclient //vtserver/share -I {HOST4} -U root%vtpass -c ls"));
    assert!(out.status.success(), "SMB ls blocked: {}", String::from_utf8_lossy(&out.stderr));
    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 10 -o /dev/null http://{HOST4}:8080/"));
    assert!(out.status.success(), "TCP 8080 blocked: {}", String::from_utf8_lossy(&out.stderr));
    let status = sensor.status();
    assert!(status["network"]["kernel_counters"]["blocked_drops"].as_u64().unwrap_or(0) >= 2, "{}", status["network"]);

    let out = sensor.cli(&["unblock", &format!("remote:{CLIENT4}")]);
    assert!(out.status.success(), "unblock: {}", String::from_utf8_lossy(&out.stderr));
    let out = smb_put(HOST4, "share", "SMB3_11", false, "/usr/bin/dash", "after.bin");
    assert!(out.status.success(), "upload after unblock: {}", String::from_utf8_lossy(&out.stderr));
    let g = sensor.graph();
    let remote = format!("remote:{CLIENT4}");
    assert_eq!(g.edges_into("block", &remote).len(), 1, "{}", g.describe());
    assert_eq!(g.edges_into("unblock", &remote).len(), 1, "{}", g.describe());
    drop(web);
}

/// The loaded classifier on crafted packets: never a crash, malformed input counted.
#[test]
fn tc_program_on_crafted_packets() {
    let _guard = serial();
    require_root();
    let mut t = TcTestRun::load().expect("load the TC program");
    let c: IpAddr = "10.9.0.2".parse().unwrap();
    let s: IpAddr = "10.9.0.1".parse().unwrap();
    let mut sport = 50000u16;
    let mut case = |t: &mut TcTestRun, what: &str, payload: &[u8], dport: u16| {
        sport += 1;
        let before = t.counters();
        let r = t.run(&tcp_packet(c, s, sport, dport, 1000, payload), 1).unwrap_or_else(|e| panic!("{what}: {e:#}"));
        let after = t.counters();
        let delta: std::collections::BTreeMap<String, u64> =
            after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).filter(|(_, v)| *v > 0).collect();
        (r.retval, delta, t.drain_events())
    };
    let create = |name: &[u8], access: u32, disposition: u32| build::create_request(name, access, disposition, 0x40, 7);

    // Plain traffic passes untouched.
    let (rv, d, ev) = case(&mut t, "http", b"GET / HTTP/1.1\r\n\r\n", 80);
    assert_eq!((rv, d.len(), ev.len()), (0, 0, 0));

    // A good CREATE: the event carries the name and ids.
    let (rv, _, ev) = case(&mut t, "create", &build::nbss(&create(&build::utf16("dir\\a.exe"), 0x12_0116, 5)), 445);
    assert_eq!(rv, 0);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].name, "dir\\a.exe");
    assert!(ev[0].write_intent);
    assert_eq!(ev[0].message_id, 7);

    // Truncated NBSS header, truncated SMB2 header.
    let (rv, d, _) = case(&mut t, "short nbss", &[0, 0], 445);
    assert_eq!(rv, 0);
    assert!(d.contains_key("truncated_header"), "{d:?}");
    let mut short = build::nbss(&create(&build::utf16("x"), 0x2, 5));
    short.truncate(40);
    let (rv, d, _) = case(&mut t, "short smb2", &short, 445);
    assert_eq!(rv, 0);
    assert!(d.contains_key("truncated_header"), "{d:?}");

    // NameOffset / NameLength past the end of the record.
    let mut bad = create(&build::utf16("abc"), 0x2, 5);
    bad[108..110].copy_from_slice(&0xfff0u16.to_le_bytes());
    let (rv, d, _) = case(&mut t, "name offset", &build::nbss(&bad), 445);
    assert_eq!(rv, 0);
    assert!(d.contains_key("name_out_of_bounds"), "{d:?}");
    let mut bad = create(&build::utf16("abc"), 0x2, 5);
    bad[110..112].copy_from_slice(&0x4000u16.to_le_bytes());
    let (rv, d, _) = case(&mut t, "name length", &build::nbss(&bad), 445);
    assert_eq!(rv, 0);
    assert!(d.contains_key("name_out_of_bounds"), "{d:?}");

    // NextCommand pointing backwards (a loop) and a chain longer than the limit.
    let mut looped = create(&build::utf16("loop"), 0x2, 5);
    looped[20..24].copy_from_slice(&8u32.to_le_bytes());
    let (rv, d, _) = case(&mut t, "next loop", &build::nbss(&looped), 445);
    assert_eq!(rv, 0);
    assert!(d.contains_key("bad_next_command"), "{d:?}");
    let mut chain = Vec::new();
    for i in 0..40u64 {
        let mut p = build::header(13, 0, 64, i, 1, 1); // ECHO-like headers, 64 bytes each
        if i == 39 {
            p[20..24].copy_from_slice(&0u32.to_le_bytes());
        }
        chain.extend_from_slice(&p);
    }
    let (rv, d, _) = case(&mut t, "long chain", &build::nbss(&chain), 445);
    assert_eq!(rv, 0);
    assert!(d.contains_key("pdu_limit"), "{d:?}");

    // Zero-length name, a 4-byte surrogate pair, a 1,000-byte name.
    let (rv, _, ev) = case(&mut t, "empty name", &build::nbss(&create(&[], 0x1, 1)), 445);
    assert_eq!((rv, ev.len()), (0, 1));
    assert_eq!(ev[0].name, "");
    let (rv, _, ev) = case(&mut t, "surrogates", &build::nbss(&create(&build::utf16("\u{1F600}.exe"), 0x2, 5)), 445);
    assert_eq!(rv, 0);
    assert_eq!(ev[0].name, "\u{1F600}.exe");
    let long = "n".repeat(500);
    let (rv, d, ev) = case(&mut t, "long name", &build::nbss(&create(&build::utf16(&long), 0x2, 5)), 445);
    assert_eq!(rv, 0);
    assert!(ev[0].name_truncated && d.contains_key("name_truncated"), "{d:?}");
    assert_eq!(ev[0].name, "n".repeat(128));

    // Garbage on port 445 and on 21.
    let (rv, _, _) = case(&mut t, "garbage", &[0xffu8; 300], 445);
    assert_eq!(rv, 0);
    let (rv, _, ev) = case(&mut t, "ftp garbage", &[0u8; 3], 21);
    assert_eq!((rv, ev.len()), (0, 0));

    // Quarantine: write-intent CREATE and STOR from a blocked source are dropped; a
    // read-only CREATE and an FTP LIST pass.
    t.block(c).unwrap();
    let (rv, _, ev) = case(&mut t, "blocked create", &build::nbss(&create(&build::utf16("up.exe"), 0x2, 5)), 445);
    assert_eq!(rv, 2, "TC_ACT_SHOT");
    assert!(ev[0].blocked);
    let (rv, _, _) = case(&mut t, "blocked read create", &build::nbss(&create(&build::utf16("r.txt"), 0x1, 1)), 445);
    assert_eq!(rv, 0);
    let (rv, _, _) = case(&mut t, "blocked stor", b"stor up.exe\r\n", 21);
    assert_eq!(rv, 2);
    let (rv, _, _) = case(&mut t, "blocked list", b"LIST\r\n", 21);
    assert_eq!(rv, 0);
}
