//! Network monitoring end to end: the real sensor with its TC classifiers on one end of a
//! veth pair, real Samba and vsftpd servers in the root namespace bound to that veth's
//! addresses only, and the clients (smbclient, curl) in a network namespace. All traffic
//! stays on the veth pair. Also the loaded TC program on crafted malformed packets
//! through BPF_PROG_TEST_RUN.
use std::{
    collections::BTreeMap,
    net::IpAddr,
    process::{Command, Stdio},
};

use sensor_common::proto::smb2::build;
use sensor_user::kernel::testrun::{TcTestRun, tcp_packet, tcp_syn};
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
    // The same with the sensor's userspace stopped during the transfer: smbd's session
    // process has exited before its records are read, so neither /proc nor its dirfd can
    // answer. The path comes from the file's handle, the peer from the kernel's record of
    // the connection smbd closed.
    for (i, (server, client, encrypt)) in [(HOST4, CLIENT4, true), (HOST6, CLIENT6, false)].into_iter().enumerate() {
        let name = format!("late{i}.bin");
        let out = sensor.paused(|| smb_put(server, if encrypt { "enc" } else { "share" }, "SMB3_11", encrypt, "/usr/bin/dash", &name));
        assert!(out.status.success(), "smbclient put {name} failed: {}", String::from_utf8_lossy(&out.stderr));
        let path = format!("{}/{name}", share.display());
        check_upload(&sensor, &path, client, if encrypt { None } else { Some(&name) });
        let g = sensor.graph();
        let edge = received_from(&g, &path)[0].clone();
        assert_eq!(edge["attrs"]["path"], path, "{edge}");
        if encrypt {
            assert_eq!(edge["attrs"]["peer_seen_by"], "connection_close", "{edge}");
        }
    }
    let status = sensor.status();
    assert!(status["network"]["attribution"]["encrypted_sessions"].as_u64().unwrap_or(0) >= 1, "{}", status["network"]);
    // smbd's own databases and log are not arrivals.
    let g = sensor.graph();
    let d = dir.display().to_string();
    let state: Vec<_> = g.nodes.iter()
        .filter(|n| n["kind"] == "file" && n["untrusted"] == true)
        .filter(|n| n["paths"].as_array().into_iter().flatten().any(|p| {
            let p = p.as_str().unwrap_or("");
            ["lock/", "state/", "cache/", "private/", "log.smbd"].iter().any(|s| p.starts_with(&format!("{d}/{s}")))
        }))
        .collect();
    assert!(state.is_empty(), "smbd's state recorded as arrivals: {state:?}");
    assert!(status["port_program_state_writes_ignored"].as_u64().unwrap_or(0) > 0, "{status}");

    // The same name in two shares: a read from one is a sent_to of that file only.
    let both = "same-name.bin";
    for sh_name in ["share", "other"] {
        let out = smb_put(HOST4, sh_name, "SMB3_11", false, "/usr/bin/dash", both);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let in_share = format!("{}/{both}", share.display());
    let in_other = format!("{}/other/{both}", dir.display());
    sensor.wait_for("both copies untrusted", |g| g.is_untrusted(&in_share) && g.is_untrusted(&in_other));
    let out = smb_get(HOST4, "other", both, "/dev/null");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sent_of = |g: &tests::sensor::Graph, path: &str| -> usize {
        g.file(path).map_or(0, |f| g.edges_from("sent_to", f["id"].as_str().unwrap()).len())
    };
    sensor.wait_for("sent_to of the copy read", |g| sent_of(g, &in_other) == 1);
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(sent_of(&sensor.graph(), &in_share), 0, "the copy in the other share was not read");

    // After a restart, a read of a file the database knows (not seen this run) is a sent_to.
    sensor.stop();
    let sensor = tests::net::sensor(&dir);
    let restored = format!("{}/up1-SMB2_10.bin", share.display());
    let out = smb_get(HOST4, "share", "up1-SMB2_10.bin", "/dev/null");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sensor.wait_for("sent_to of a file restored from the database", |g| sent_of(g, &restored) == 1);
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
    // A download (RETR) of an untrusted file is a sent_to of that file.
    let path = format!("{}/ftp-passive.bin", incoming.display());
    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 20 -o /dev/null ftp://{HOST4}/incoming/ftp-passive.bin"));
    assert!(out.status.success(), "curl RETR failed: {}", String::from_utf8_lossy(&out.stderr));
    let g = sensor.wait_for("sent_to for the RETR", |g| {
        g.file(&path).is_some_and(|f| g.edges_from("sent_to", f["id"].as_str().unwrap()).iter().any(|e| e["attrs"]["verb"] == "RETR"))
    });
    let f = g.file(&path).unwrap();
    let sent = g.edges_from("sent_to", f["id"].as_str().unwrap());
    assert!(sent.iter().all(|e| e["dst"] == format!("remote:{CLIENT4}")), "{sent:?}");
}

/// After a `kill -9` the clsact qdisc and filters stay behind: the next sensor reuses
/// them (they are vtrail's), watches and enforces, and its clean stop removes them.
#[test]
fn a_killed_sensor_does_not_blind_the_next_one() {
    let _guard = serial();
    require_root();
    ensure_packages();
    let _net = Net::up();
    let dir = temp_dir("net-kill9");
    let (_smbd, share) = start_samba(&dir);
    let sensor = sensor(&dir);
    sensor.kill9();
    let qdisc = String::from_utf8_lossy(&run(&format!("tc qdisc show dev {HOST_IF}")).stdout).into_owned();
    assert!(qdisc.contains("clsact"), "a killed sensor leaves its qdisc: {qdisc}");
    let sensor = tests::net::sensor(&dir);
    let status = sensor.status();
    assert_eq!(status["network"]["interfaces"], serde_json::json!([HOST_IF]), "{}", status["network"]);
    assert_eq!(status["network"]["attach_failures"], serde_json::json!([]), "{}", status["network"]);
    assert!(sensor.log_text().contains("left by an earlier vtrail sensor is reused"), "{}", sensor.log_text());
    // It enforces and attributes.
    let out = sensor.cli(&["block", CLIENT4]);
    assert!(out.status.success());
    let out = smb_put(HOST4, "share", "SMB3_11", false, "/usr/bin/dash", "after-crash.bin");
    assert!(!out.status.success() || !share.join("after-crash.bin").exists(), "upload from a blocked host after a crash");
    let out = sensor.cli(&["unblock", CLIENT4]);
    assert!(out.status.success());
    let out = smb_put(HOST4, "share", "SMB3_11", false, "/usr/bin/dash", "attributed.bin");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check_upload(&sensor, &format!("{}/attributed.bin", share.display()), CLIENT4, Some("attributed.bin"));
    sensor.stop();
    let qdisc = String::from_utf8_lossy(&run(&format!("tc qdisc show dev {HOST_IF}")).stdout).into_owned();
    assert!(!qdisc.contains("clsact"), "the reused qdisc is removed at a clean stop: {qdisc}");
}

/// A STOR split across two segments, or pipelined behind another command, is read as
/// vsftpd reads it: the upload is attributed to its sender.
#[test]
fn ftp_uploads_framed_any_way_are_attributed() {
    let _guard = serial();
    require_root();
    ensure_packages();
    let _net = Net::up();
    let dir = temp_dir("net-ftp-framed");
    let sensor = sensor(&dir);
    let (_ftpd, incoming) = start_vsftpd(&dir, false);
    for framing in [StorFraming::Split, StorFraming::Pipelined] {
        let name = format!("framed-{framing:?}.bin");
        let out = ftp_framed_put(HOST4, "/usr/bin/dash", &name, framing);
        assert!(out.status.success(), "{framing:?} STOR failed: {}", String::from_utf8_lossy(&out.stderr));
        check_upload(&sensor, &format!("{}/{name}", incoming.display()), CLIENT4, Some(&name));
    }
}

/// Where it goes next: an uploaded (untrusted) client run here is tainted, and the TCP
/// connection it opens to another host is a `connect` edge from its process to that host.
#[test]
fn dropper_connections_and_outbound_uploads_are_recorded() {
    let _guard = serial();
    require_root();
    ensure_packages();
    let _net = Net::up();
    let dir = temp_dir("net-connect");
    let sensor = sensor(&dir);
    let (_ftpd, incoming) = start_vsftpd(&dir, false);
    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 20 -T /usr/bin/curl ftp://{HOST4}/incoming/dropper"));
    assert!(out.status.success(), "curl STOR failed: {}", String::from_utf8_lossy(&out.stderr));
    let dropper = format!("{}/dropper", incoming.display());
    sensor.wait_for("dropper received from the client", |g| received_from(g, &dropper).iter().any(|e| e["attrs"]["ip"] == CLIENT4));
    let web = Daemon(
        Command::new("ip")
            .args(["netns", "exec", NS, "python3", "-m", "http.server", "8081", "--bind", CLIENT6])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening_in(NS, 8081, CLIENT6);
    let out = run(&format!("chmod +x '{dropper}' && '{dropper}' -gsS --max-time 10 -o /dev/null http://[{CLIENT6}]:8081/"));
    assert!(out.status.success(), "dropper could not reach {CLIENT6}: {}", String::from_utf8_lossy(&out.stderr));
    let remote = format!("remote:{CLIENT6}");
    let g = sensor.wait_for("connect edge to the client host", |g| !g.edges_into("connect", &remote).is_empty());
    let edge = g.edges_into("connect", &remote)[0].clone();
    let runner = g.processes_that_exec(&dropper).into_iter().find(|p| p["tainted"] == true).expect("tainted dropper process").clone();
    assert_eq!(edge["src"], runner["id"], "{}", g.describe());
    assert_eq!(edge["attrs"]["port"], 8081, "{edge}");
    assert_eq!(edge["attrs"]["direction"], "out", "{edge}");
    assert_eq!(g.edges_into("connect", &remote).len(), 1, "the close of an outbound connection is not a second edge");
    // Untainted processes' connections are not recorded.
    let out = run(&format!("curl -gsS --max-time 10 -o /dev/null http://[{CLIENT6}]:8081/"));
    assert!(out.status.success());
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(sensor.graph().edges_into("connect", &remote).len(), 1);
    drop(web);

    // The dropper copies itself to an FTP server on the other host: an egress STOR by a
    // local client, so the untrusted file gets a `sent_to` edge to that host.
    let (_remote_ftpd, remote_incoming) = start_vsftpd_at(&dir, NS, CLIENT4);
    let out = run(&format!("'{dropper}' -sS --max-time 20 -T '{dropper}' ftp://{CLIENT4}/incoming/dropper"));
    assert!(out.status.success(), "dropper STOR to {CLIENT4} failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(remote_incoming.join("dropper").exists());
    let file = sensor.graph().file(&dropper).expect("dropper node")["id"].as_str().unwrap().to_string();
    let g = sensor.wait_for("sent_to edge to the other host", |g| {
        g.edges_from("sent_to", &file).iter().any(|e| e["dst"] == format!("remote:{CLIENT4}"))
    });
    let sent = g.edges_from("sent_to", &file).into_iter().find(|e| e["dst"] == format!("remote:{CLIENT4}")).unwrap().clone();
    assert_eq!((sent["attrs"]["direction"].as_str(), sent["attrs"]["verb"].as_str(), sent["attrs"]["name"].as_str()), (Some("upload"), Some("STOR"), Some("dropper")), "{sent}");
    eprintln!("outbound upload recorded as {sent}");
    assert_eq!(sent["attrs"]["port"], 21, "{sent}");
    // Held open while /proc was asked, or (the dropper already gone) the file the kernel saw
    // the tainted sender open: never a guess by name.
    assert!(sent["attrs"]["matched_by"] == "open_file" || sent["attrs"]["matched_by"] == "sender_read", "{sent}");
    assert!(sent["attrs"]["process"].as_u64().is_some(), "{sent}");
    // Under another name, by an untainted client slow enough to be asked while it runs:
    // found by the file it holds open, not by name.
    let out = run(&format!("curl -sS --max-time 30 --limit-rate 60k -T '{dropper}' ftp://{CLIENT4}/incoming/innocent.bin"));
    assert!(out.status.success(), "curl STOR failed: {}", String::from_utf8_lossy(&out.stderr));
    let g = sensor.wait_for("sent_to as innocent.bin", |g| g.edges_from("sent_to", &file).iter().any(|e| e["attrs"]["name"] == "innocent.bin"));
    let sent = g.edges_from("sent_to", &file).into_iter().find(|e| e["attrs"]["name"] == "innocent.bin").unwrap().clone();
    assert_eq!(sent["attrs"]["matched_by"], "open_file", "{sent}");
    assert!(sent["attrs"]["process"].as_u64().is_some(), "{sent}");
    // Refused by the server (553: the FTP root is not writable): nothing was sent.
    let out = run(&format!("'{dropper}' -sS --max-time 20 -T '{dropper}' ftp://{CLIENT4}/refused.bin"));
    assert!(!out.status.success(), "the STOR was refused");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let g = sensor.graph();
    assert!(!g.edges.iter().any(|e| e["kind"] == "sent_to" && e["attrs"]["name"] == "refused.bin"), "{}", g.describe());
    // The dropper's inherited stdout/stderr (a log it writes) is not what it sends.
    let log = format!("{}/dropper.log", dir.display());
    let out = run(&format!("'{dropper}' -sS --max-time 20 -T /etc/hostname ftp://{CLIENT4}/incoming/hostname.txt > '{log}' 2>&1"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(std::time::Duration::from_secs(1));
    let g = sensor.graph();
    if let Some(l) = g.file(&log) {
        assert!(g.edges_from("sent_to", l["id"].as_str().unwrap()).is_empty(), "the log on stdout was sent: {}", g.describe());
    }

    // The analysis names the host the dropper reached and puts it on the block list.
    let dump = format!("{}/dump.jsonl", dir.display());
    let out = sensor.cli(&["export", "-o", &dump]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let analysis = tests::sensor::bin_dir().join("vtrail-analysis");
    let out = Command::new(&analysis).args(["trace", "--path", &dropper, &dump]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("connected to {CLIENT6} port 8081")) && text.contains(&format!("connected to {CLIENT4} port 21")), "{text}");
    assert!(text.contains("Sent to (2)") && text.contains(&format!("({CLIENT4})")), "{text}");
    let out = Command::new(&analysis).args(["rules", "--path", &dropper, "--json", &dump]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rules: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reached = rules["rules"]["block"].as_array().unwrap_or_else(|| panic!("{rules}")).iter().find(|b| b["target"] == CLIENT6);
    assert!(reached.is_some_and(|b| b["reason"].as_str().unwrap().contains("tainted process connected to it (port 8081")), "{rules}");
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
    // The client asking for encryption itself (the share does not require it), and STOR
    // framed around the check: all refused.
    let out = smb_put(HOST4, "share", "SMB3_11", true, "/usr/bin/dash", "blocked-enc.bin");
    assert!(!out.status.success() || !share.join("blocked-enc.bin").exists(), "encrypted SMB upload from a blocked host went through");
    assert!(!share.join("blocked-enc.bin").exists());
    for framing in [StorFraming::Split, StorFraming::Pipelined] {
        let name = format!("blocked-{framing:?}.bin");
        let out = ftp_framed_put(HOST4, "/usr/bin/dash", &name, framing);
        assert!(!out.status.success(), "{framing:?} STOR from a blocked host went through");
        assert!(!incoming.join(&name).exists(), "{name}");
    }
    // Other traffic: an FTP listing, an SMB directory listing, HTTP on another port.
    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 10 ftp://{HOST4}/incoming/"));
    assert!(out.status.success(), "FTP listing blocked: {}", String::from_utf8_lossy(&out.stderr));
    let out = run(&format!("ip netns exec {NS} timeout 20 smbclient //vtserver/share -I {HOST4} -U root%vtpass -c ls"));
    assert!(out.status.success(), "SMB ls blocked: {}", String::from_utf8_lossy(&out.stderr));
    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 10 -o /dev/null http://{HOST4}:8080/"));
    assert!(out.status.success(), "TCP 8080 blocked: {}", String::from_utf8_lossy(&out.stderr));
    let status = sensor.status();
    assert!(status["network"]["kernel_counters"]["blocked_drops"].as_u64().unwrap_or(0) >= 2, "{}", status["network"]);

    // A restart keeps the quarantine.
    sensor.stop();
    let sensor = tests::net::sensor(&dir);
    assert!(sensor.log_text().contains(&format!("quarantine restored: 1 blocked host(s): {CLIENT4}")), "{}", sensor.log_text());
    let out = smb_put(HOST4, "share", "SMB3_11", false, "/usr/bin/dash", "blocked2.bin");
    assert!(!out.status.success() || !share.join("blocked2.bin").exists(), "SMB upload went through after a restart");
    assert!(!share.join("blocked2.bin").exists());

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
/// A kernel program's rare-path diagnostic reaches userspace's log through aya-log: a
/// failed tail call (the SMB step program missing), rate-limited by its counter.
#[test]
fn kernel_diagnostics_reach_the_log() {
    let _guard = serial();
    require_root();
    let mut t = TcTestRun::load().expect("load the TC program");
    let c: IpAddr = "10.9.0.2".parse().unwrap();
    let s: IpAddr = "10.9.0.1".parse().unwrap();
    let create = build::nbss(&build::create_request(&build::utf16("a.txt"), 0x0012_0089, 1, 0, 7));
    t.run(&tcp_packet(c, s, 40100, 445, 1, &create), 1).unwrap();
    assert!(t.kernel_log().iter().all(|l| !l.contains("tail call")), "nothing to report while the step program is installed");
    t.remove_step_program(0).unwrap();
    for i in 0..8 {
        t.run(&tcp_packet(c, s, 40101 + i, 445, 1, &create), 1).unwrap();
    }
    let log = t.kernel_log();
    let failed: Vec<_> = log.iter().filter(|l| l.contains("tail call to tc_smb_step failed")).collect();
    // Counted 8 times, logged when a CPU's count reaches a power of two: 4 times on one
    // CPU (1, 2, 4, 8), at most 6 when the runs were spread over two.
    assert!((1..=6).contains(&failed.len()), "{log:?}");
    assert!(failed[0].starts_with("WARN"), "{log:?}");
    assert_eq!(t.counters().get("no_step_program"), Some(&8));
}

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
        // Each case is a new connection, seen from its SYN (a blocked sender's flows are
        // judged only from their first byte on).
        t.run(&tcp_syn(c, s, sport, dport, 999), 1).unwrap();
        let before = t.counters();
        let r = t.run(&tcp_packet(c, s, sport, dport, 1000, payload), 1).unwrap_or_else(|e| panic!("{what}: {e:#}"));
        (r.retval, delta(&before, &t.counters()), t.drain_events())
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
    // Too short to tell its command: kept for the next segment (see below), not counted.
    // Long enough: a cut CREATE, held for its continuation in userspace.
    let mut short = build::nbss(&create(&build::utf16("x"), 0x2, 5));
    short.truncate(16);
    let (rv, d, ev) = case(&mut t, "short smb2", &short, 445);
    assert_eq!(rv, 0);
    assert!(!d.contains_key("truncated_header") && ev.is_empty(), "{d:?} {ev:?}");
    let mut short = build::nbss(&create(&build::utf16("x"), 0x2, 5));
    short.truncate(40);
    let (rv, d, ev) = case(&mut t, "cut create", &short, 445);
    assert_eq!(rv, 0);
    assert!(!d.contains_key("truncated_header") && ev.is_empty(), "{d:?} {ev:?}");

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
    // Not a whole quiet line: it may start a command split across segments, so it goes
    // to userspace (which reassembles the stream and finds no command in it).
    let (rv, _, ev) = case(&mut t, "ftp garbage", &[0u8; 3], 21);
    assert_eq!((rv, ev.len()), (0, 1));
    // Every command goes up (replies answer commands in order); the line is not part of
    // the event's JSON, and the session keeps nothing of a PASS.
    let (rv, _, ev) = case(&mut t, "ftp pass", b"PASS secret\r\n", 21);
    assert_eq!((rv, ev.len()), (0, 1));
    assert!(!serde_json::to_string(&ev[0]).unwrap().contains("secret"));

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
    quarantine_fails_closed(&mut t, c, s);

    // A CREATE whose name is cut by the end of its segment (odd cut: inside a UTF-16
    // unit): the kernel sends the next segment's first bytes and userspace completes the
    // name. Without the continuation (a lost segment) the CREATE still goes out, partial.
    let other: IpAddr = "10.9.0.3".parse().unwrap();
    let name = "share\\dir\\dropper.exe";
    let whole = build::nbss(&create(&build::utf16(name), 0x12_0116, 5));
    let cut = whole.len() - 9;
    let ev = in_two_segments(&mut t, (other, 52000), (s, 445), 5000, &whole, cut);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].name, name);
    assert!(!ev[0].partial && !ev[0].name_truncated && ev[0].write_intent, "{:?}", ev[0]);
    // A retransmission of the cut segment asks again; a segment at another sequence
    // number does not complete it.
    t.run(&tcp_packet(other, s, 52001, 445, 9000, &whole[..cut]), 1).unwrap();
    t.run(&tcp_packet(other, s, 52001, 445, 9000 + cut as u32 + 100, &whole[cut..]), 1).unwrap();
    assert!(t.drain_events().is_empty());
    t.run(&tcp_packet(other, s, 52001, 445, 9000 + cut as u32, &whole[cut..]), 1).unwrap();
    let ev = t.drain_events();
    assert_eq!((ev.len(), ev[0].name.as_str()), (1, name), "{ev:?}");

    // Cut inside the CREATE's fixed part (after NBSS 4 + header 64 + 30 bytes): the raw
    // bytes of both segments are parsed together in userspace.
    let cut = 4 + 64 + 30;
    let ev = in_two_segments(&mut t, (other, 52002), (s, 445), 7000, &whole, cut);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].name, name);
    assert!(!ev[0].partial && ev[0].write_intent && ev[0].message_id == 7, "{:?}", ev[0]);
    // Cut inside the SMB2 header, after its command and flags (NBSS 4 + 24 bytes): the ids
    // come from userspace's parse too.
    let cut = 4 + 24;
    let ev = in_two_segments(&mut t, (other, 52004), (s, 445), 6000, &whole, cut);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!((ev[0].name.as_str(), ev[0].message_id, ev[0].partial), (name, 7, false), "{:?}", ev[0]);
    // From a blocked sender a CREATE cut before its intent is known is dropped: splitting
    // a request at a segment boundary does not get around the quarantine.
    let (rv, ev) = run_from(&mut t, c, 52003, &whole[..cut]);
    assert_eq!(rv, 2, "TC_ACT_SHOT");
    assert!(ev.len() == 1 && ev[0].blocked && ev[0].name.is_empty(), "{ev:?}");
    // A header cut where not even the command can be read (inside the NBSS header, in the
    // protocol id, in the first 20 bytes of the SMB2 header): its bytes wait in the flow
    // state and the kernel's walk goes on in step in the next segment, so the CREATE there
    // and the one after it are read in the kernel, and a blocked sender's write-intent
    // CREATE is dropped there (its retransmission too) while a read-only one passes. The
    // cut CREATE follows a whole ECHO in the same packet, as pipelined requests do.
    let mut echo = build::header(13, 0, 0, 6, 1, 1);
    echo.extend_from_slice(&[4, 0, 0, 0]);
    let echo = build::nbss(&echo);
    let second = build::nbss(&create(&build::utf16("next.txt"), 0x1, 1));
    let read_only = build::nbss(&create(&build::utf16("look.txt"), 0x1, 1));
    let mut sport = 52020u16;
    for (from, cut, rest_of) in [
        (other, 1usize, &whole),
        (other, 3, &whole),
        (other, 4 + 2, &whole),
        (other, 4, &whole),
        (other, 4 + 10, &whole),
        (other, 4 + 19, &whole),
        (c, 2, &whole),
        (c, 4 + 10, &whole),
        (c, 4 + 10, &read_only),
    ] {
        sport += 1;
        let what = format!("cut at {cut}, {from}, {}", if rest_of == &whole { "write" } else { "read-only" });
        let before = t.counters();
        let first = [&echo[..], &rest_of[..cut]].concat();
        let (rv, ev) = run_from(&mut t, from, sport, &first);
        assert_eq!((rv, ev.len()), (0, 0), "{what}: the first segment passes");
        let rest = [&rest_of[cut..], &second[..]].concat();
        let blocked_write = from == c && rest_of == &whole;
        for attempt in 0..if blocked_write { 2 } else { 1 } {
            let p = tcp_packet(from, s, sport, 445, 3000 + first.len() as u32, &rest);
            let rv = t.run(&p, 1).unwrap().retval;
            let ev = t.drain_events();
            if blocked_write {
                assert_eq!(rv, 2, "{what}, attempt {attempt}: dropped");
                assert!(ev.iter().any(|e| e.blocked && e.name == name), "{what}: {ev:?}");
            } else {
                assert_eq!(rv, 0, "{what}");
                let names: Vec<_> = ev.iter().map(|e| (e.name.as_str(), e.message_id, e.partial)).collect();
                let expect = if rest_of == &whole { name } else { "look.txt" };
                assert_eq!(names, [(expect, 7, false), ("next.txt", 7, false)], "{what}");
            }
        }
        let d = delta(&before, &t.counters());
        assert!(d.keys().all(|k| k == "packets_inspected" || k == "blocked_drops"), "{what}: in step: {d:?}");
    }

    // A known flow whose next segment starts no record (out of step): counted; from a
    // blocked sender dropped, whether the check before the walk sees it (8 bytes or more)
    // or the walk's first step does.
    for (from, garbage_len) in [(other, 100usize), (c, 100), (other, 6), (c, 6)] {
        sport += 1;
        let (rv, _) = run_from(&mut t, from, sport, &echo);
        assert_eq!(rv, 0);
        let before = t.counters();
        let p = tcp_packet(from, s, sport, 445, 3000 + echo.len() as u32, &vec![0xffu8; garbage_len]);
        let rv = t.run(&p, 1).unwrap().retval;
        let d = delta(&before, &t.counters());
        let want = if from == c { 2 } else { 0 };
        assert_eq!(rv, want, "{garbage_len} bytes out of step from {from}");
        assert!(d.contains_key("bad_magic"), "{garbage_len} bytes from {from}: {d:?}");
    }

    // A WRITE and a READ whose fixed parts are cut before the FileId, and a CREATE
    // response cut before its FileId: completed in userspace from the next segment.
    let fid = sensor_common::proto::smb2::FileId { persistent: 0x77, volatile: 0x88 };
    let write = build::nbss(&build::write_request(40, fid, &[0x5a; 2000]));
    let read = build::nbss(&build::read_request(41, fid, 65536, 0));
    let response = build::nbss(&build::create_response(42, fid));
    for (what, bytes, cut, server_sends, port) in [
        ("write", &write, 4 + 64 + 10, false, 52030),
        ("read", &read, 4 + 30, false, 52031),
        ("create_response", &response, 4 + 64 + 40, true, 52032),
    ] {
        let (from, to) = if server_sends { ((s, 445), (other, port)) } else { ((other, port), (s, 445)) };
        let ev = in_two_segments(&mut t, from, to, 8000, bytes, cut);
        assert_eq!(ev.len(), 1, "{what}: {ev:?}");
        assert_eq!((serde_json::to_value(ev[0].verb).unwrap(), ev[0].file_id_raw, ev[0].partial), (serde_json::json!(what), fid.to_bytes(), false), "{what}: {:?}", ev[0]);
    }
}

/// From a blocked sender only what is proven harmless passes, however the request is
/// spelt or framed; the same requests from another sender pass (and FTP commands split
/// or pipelined reach userspace whole).
fn quarantine_fails_closed(t: &mut TcTestRun, blocked: IpAddr, server: IpAddr) {
    use sensor_common::proto::{quarantine::fsctl, smb2::{access::*, disposition::*, options::*}};
    let free: IpAddr = "10.9.0.4".parse().unwrap();
    let mut sport = 53000u16;
    let mut verdict = |t: &mut TcTestRun, from: IpAddr, dport: u16, seq: u32, payload: &[u8], new_flow: bool| {
        if new_flow {
            sport += 1;
            t.run(&tcp_syn(from, server, sport, dport, seq - 1), 1).unwrap();
        }
        let r = t.run(&tcp_packet(from, server, sport, dport, seq, payload), 1).unwrap();
        (r.retval, t.drain_events())
    };
    let create = |access: u32, disposition: u32, options: u32| build::nbss(&build::create_request(&build::utf16("q.exe"), access, disposition, options, 9));
    let with_body = |command: u16, body: &[u8]| {
        let mut p = build::header(command, 0, 0, 11, 1, 1);
        p.extend_from_slice(body);
        build::nbss(&p)
    };
    let ioctl = |code: u32| {
        let mut body = vec![0u8; 56];
        body[0..2].copy_from_slice(&57u16.to_le_bytes());
        body[4..8].copy_from_slice(&code.to_le_bytes());
        with_body(11, &body)
    };
    let mut transform = vec![0xfd, b'S', b'M', b'B'];
    transform.extend_from_slice(&[0u8; 48]);
    transform.extend_from_slice(&[0x55; 100]);
    let mut smb1 = vec![0xff, b'S', b'M', b'B'];
    smb1.extend_from_slice(&[0u8; 60]);
    let mut compressed = vec![0xfc, b'S', b'M', b'B'];
    compressed.extend_from_slice(&[0u8; 60]);
    let fid = sensor_common::proto::smb2::FileId { persistent: 1, volatile: 2 };
    let must_drop: Vec<(&str, Vec<u8>)> = vec![
        ("MAXIMUM_ALLOWED open_if", create(MAXIMUM_ALLOWED, OPEN_IF, 0)),
        ("MAXIMUM_ALLOWED open", create(MAXIMUM_ALLOWED, OPEN, 0)),
        ("GENERIC_ALL open", create(GENERIC_ALL, OPEN, 0)),
        ("DELETE open", create(DELETE | FILE_READ_DATA, OPEN, 0)),
        ("WRITE_DAC open", create(WRITE_DAC, OPEN, 0)),
        ("read-only create", create(FILE_READ_DATA, CREATE, 0)),
        ("delete on close", create(FILE_READ_DATA, OPEN, FILE_DELETE_ON_CLOSE)),
        ("directory open_if", create(FILE_READ_DATA, OPEN_IF, FILE_DIRECTORY_FILE)),
        ("encrypted", build::nbss(&transform)),
        ("smb1", build::nbss(&smb1)),
        ("compressed", build::nbss(&compressed)),
        ("write on an open handle", build::nbss(&build::write_request(12, fid, &[1; 64]))),
        ("set_info", with_body(17, &[0u8; 40])),
        ("unknown command", with_body(0x30, &[0u8; 8])),
        ("pipe transceive", ioctl(fsctl::PIPE_TRANSCEIVE)),
        ("server-side copy", ioctl(fsctl::SRV_COPYCHUNK_WRITE)),
        ("ioctl cut before its code", with_body(11, &[57, 0])),
    ];
    for (what, payload) in &must_drop {
        let (rv, _) = verdict(t, blocked, 445, 100, payload, true);
        assert_eq!(rv, 2, "blocked {what}: dropped");
        let (rv, _) = verdict(t, free, 445, 100, payload, true);
        assert_eq!(rv, 0, "{what} from another host passes");
    }
    let harmless: Vec<(&str, Vec<u8>)> = vec![
        ("read-only open", create(FILE_READ_DATA | READ_CONTROL | SYNCHRONIZE, OPEN, FILE_NON_DIRECTORY_FILE)),
        ("directory listing open", create(0x0010_0081, OPEN, FILE_DIRECTORY_FILE)),
        ("read", build::nbss(&build::read_request(13, fid, 4096, 0))),
        ("echo", with_body(13, &[4, 0, 0, 0])),
        ("validate negotiate", ioctl(fsctl::VALIDATE_NEGOTIATE_INFO)),
    ];
    for (what, payload) in &harmless {
        let (rv, _) = verdict(t, blocked, 445, 100, payload, true);
        assert_eq!(rv, 0, "blocked {what}: passes");
    }
    // What the walk cannot finish (a compound chain or a packet of records past its
    // limits) and what it cannot read (IP fragments, IPv6 extension headers).
    let mut chain = Vec::new();
    for i in 0..40u64 {
        let mut p = build::header(13, 0, if i == 39 { 0 } else { 64 }, i, 1, 1);
        p.truncate(64);
        chain.extend_from_slice(&p);
    }
    let chain = build::nbss(&chain);
    let echo = with_body(13, &[4, 0, 0, 0]);
    let records: Vec<u8> = std::iter::repeat_n(echo.clone(), 12).flatten().collect();
    for (what, payload) in [("40-PDU chain", &chain), ("12 records in one packet", &records)] {
        let (rv, _) = verdict(t, blocked, 445, 100, payload, true);
        assert_eq!(rv, 2, "blocked {what}: the rest is not judged, dropped");
        let (rv, _) = verdict(t, free, 445, 100, payload, true);
        assert_eq!(rv, 0, "{what} from another host passes");
    }
    let blocked6: IpAddr = "fd00:9::2".parse().unwrap();
    let server6: IpAddr = "fd00:9::1".parse().unwrap();
    t.block(blocked6).unwrap();
    let read_only = create(FILE_READ_DATA, OPEN, 0);
    for (from, to) in [(blocked, server), (blocked6, server6)] {
        let mut p = tcp_packet(from, to, 54000, 445, 1, &read_only);
        if from.is_ipv4() {
            p[14 + 6] = 0x20; // more fragments
        } else {
            p[14 + 6] = 44; // a fragment header follows
        }
        let r = t.run(&p, 1).unwrap();
        assert_eq!(r.retval, 2, "unreadable packet from blocked {from}: dropped");
        let free_from: IpAddr = if from.is_ipv4() { free } else { "fd00:9::3".parse().unwrap() };
        let mut p = tcp_packet(free_from, to, 54000, 445, 1, &read_only);
        p[14 + 6] = if from.is_ipv4() { 0x20 } else { 44 };
        assert_eq!(t.run(&p, 1).unwrap().retval, 0, "unreadable packet from {free_from} passes");
    }
    t.drain_events();

    // A packet of an unknown flow that starts no record: its record's header was never
    // judged, so from a blocked sender it is dropped.
    let (rv, _) = verdict(t, blocked, 445, 100, &[0x41; 200], true);
    assert_eq!(rv, 2, "blocked, mid-record of an unknown flow");
    // A connection whose SYN was not seen (open before the block): nothing of it passes,
    // not even a harmless request.
    let echo_req = with_body(13, &[4, 0, 0, 0]);
    for dport in [445, 21] {
        let payload: &[u8] = if dport == 445 { &echo_req } else { b"NOOP\r\n" };
        let r = t.run(&tcp_packet(blocked, server, 55000, dport, 10, payload), 1).unwrap();
        assert_eq!(r.retval, 2, "blocked, flow not seen from its SYN, port {dport}");
    }
    // In order only: a harmless line, then the same bytes again with a STOR behind them
    // (overlapping: the server reads only what is new), a segment ahead of the flow, and
    // an SMB header cut after byte 20 (its NextCommand, hence the rest of the chain, would
    // go unread).
    let (rv, _) = verdict(t, blocked, 21, 1000, b"NOOP\r\n", true);
    assert_eq!(rv, 0);
    let (rv, _) = verdict(t, blocked, 21, 1001, b"NOOP STOR x\r\n", false);
    assert_eq!(rv, 2, "blocked, overlapping retransmission");
    let (rv, _) = verdict(t, blocked, 21, 1100, b"NOOP\r\n", false);
    assert_eq!(rv, 2, "blocked, segment ahead of the flow");
    let (rv, _) = verdict(t, blocked, 21, 1006, b"PWD\r\n", false);
    assert_eq!(rv, 0, "blocked, next in order: passes");
    let (rv, _) = verdict(t, blocked, 445, 2000, &echo_req[..4 + 30], true);
    assert_eq!(rv, 2, "blocked, an SMB2 header cut after byte 20");
    // Padding after the IP packet is no data: a STOR split as `ST` + `OR x` is joined from
    // what the packets carry, not from their padding.
    let p = [tcp_packet(free, server, 55100, 21, 5000, b"ST"), vec![0; 30]].concat();
    t.run(&p, 1).unwrap();
    let ev = t.drain_events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].line, b"ST", "the padding is not part of the segment");

    // FTP: however an upload is framed.
    for (what, segments) in [
        ("split STOR", vec![&b"ST"[..], b"OR up.exe\r\n"]),
        ("pipelined", vec![&b"NOOP\r\nSTOR up.exe\r\n"[..]]),
        ("pipelined, unterminated", vec![&b"NOOP\r\nSTOR up.exe"[..]]),
        ("lower case", vec![&b"stor up.exe\r\n"[..]]),
        ("APPE", vec![&b"APPE up.exe\r\n"[..]]),
        ("STOU", vec![&b"STOU\r\n"[..]]),
        ("AUTH hides the rest", vec![&b"AUTH TLS\r\n"[..]]),
        ("rename", vec![&b"RNFR a\r\n"[..]]),
        ("delete", vec![&b"DELE a\r\n"[..]]),
        ("SITE", vec![&b"SITE CHMOD 777 a\r\n"[..]]),
        ("unknown verb", vec![&b"XSTR a\r\n"[..]]),
    ] {
        let mut seq = 500u32;
        for (i, seg) in segments.iter().enumerate() {
            let (rv, ev) = verdict(t, blocked, 21, seq, seg, i == 0);
            assert_eq!(rv, 2, "blocked FTP {what}, segment {i}: dropped");
            assert!(ev.iter().all(|e| e.blocked), "{what}: {ev:?}");
            seq += seg.len() as u32;
        }
    }
    for harmless in [&b"NOOP\r\n"[..], b"RETR a b.txt\r\n", b"CWD /incoming\r\n", b"PASV\r\n", b"TYPE I\r\n", b"USER ftp\r\n"] {
        let (rv, _) = verdict(t, blocked, 21, 500, harmless, true);
        assert_eq!(rv, 0, "blocked FTP {:?}: passes", String::from_utf8_lossy(harmless));
    }
    // Not blocked: a split and a pipelined upload both reach userspace, with the
    // sequence numbers that let it join them.
    let (rv, first) = verdict(t, free, 21, 700, b"ST", true);
    let (rv2, second) = verdict(t, free, 21, 702, b"OR up.exe\r\n", false);
    assert_eq!((rv, rv2, first.len(), second.len()), (0, 0, 1, 1), "{first:?} {second:?}");
    assert_eq!((first[0].line.as_slice(), first[0].tcp_seq, second[0].tcp_seq), (&b"ST"[..], 700, 702));
    let (_, piped) = verdict(t, free, 21, 800, b"NOOP\r\nSTOR up.exe\r\n", true);
    assert_eq!(piped.len(), 1, "{piped:?}");
}

/// `bytes` from `from` to `to` as two segments cut at `cut`, through the loaded
/// classifier: nothing may come out of the first alone (what it cut waits for its
/// continuation); returns what the second one completes.
fn in_two_segments(
    t: &mut TcTestRun,
    (src, sport): (IpAddr, u16),
    (dst, dport): (IpAddr, u16),
    seq: u32,
    bytes: &[u8],
    cut: usize,
) -> Vec<sensor_user::decode::net::NetFileEvent> {
    t.run(&tcp_packet(src, dst, sport, dport, seq, &bytes[..cut]), 1).unwrap();
    let held = t.drain_events();
    assert!(held.is_empty(), "cut at {cut}: waits for its continuation, yet {held:?}");
    t.run(&tcp_packet(src, dst, sport, dport, seq + cut as u32, &bytes[cut..]), 1).unwrap();
    t.drain_events()
}

/// Counters that moved between two readings.
fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).filter(|(_, v)| *v > 0).collect()
}

/// One SMB packet from `from` to 10.9.0.1:445 through the loaded classifier: its verdict
/// and the events it produced.
fn run_from(t: &mut TcTestRun, from: IpAddr, sport: u16, payload: &[u8]) -> (u32, Vec<sensor_user::decode::net::NetFileEvent>) {
    let server: IpAddr = "10.9.0.1".parse().unwrap();
    t.run(&tcp_syn(from, server, sport, 445, 2999), 1).unwrap();
    let r = t.run(&tcp_packet(from, server, sport, 445, 3000, payload), 1).unwrap();
    (r.retval, t.drain_events())
}
