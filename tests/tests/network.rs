//! Network monitoring end to end: the real sensor with its TC classifiers on one end of a
//! veth pair, real Samba and vsftpd servers in the root namespace bound to that veth's
//! addresses only, and the clients (smbclient, curl) in a network namespace. All traffic
//! stays on the veth pair. Also the loaded TC program on crafted malformed packets
//! through BPF_PROG_TEST_RUN.
use std::{
    net::IpAddr,
    process::{Command, Stdio},
};

use sensor_common::proto::smb2::build;
use sensor_user::network::testrun::{TcTestRun, tcp_packet};
use tests::net::*;
use tests::sensor::{require_root, serial, temp_dir};

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
