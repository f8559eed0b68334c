//! On-access scanning with the real engines: YARA-X in the sensor, clamd from Debian's
//! package with a signature database the test writes (no internet, no freshclam), files
//! written by a tainted process and uploaded by a host in a network namespace. Checks what
//! lands in the graph and in `alerts`, and that a flagged upload's sender is blocked.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::naming::{CLIENT_ID, ZONE, naming_config, publish, slow_dns};
use tests::net::*;
use tests::sensor::{RunningSensor, require_root, sensor_bin, serial, sh, temp_dir};

/// What the test rule matches.
const PAYLOAD: &str = "VTRAIL-TEST-PAYLOAD-7f3a";
/// `vtrail-sensor alerts --follow --json`, its lines read by a thread.
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Follower {
    fn start(sensor: &RunningSensor) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(sensor_bin())
            .arg("--config")
            .arg(sensor.client_config())
            .args(["alerts", "--follow", "--json"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("alerts --follow");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    fn next(&self, limit: Duration) -> Value {
        let line = self.lines.recv_timeout(limit).unwrap_or_else(|e| panic!("alerts --follow printed nothing within {limit:?}: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("alerts --follow printed {line:?}: {e}"))
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook receiver on loopback: each POST's body, answered `200 OK`, sent on a channel
/// (a thread accepts for at most 60 s).
struct WebhookReceiver {
    url: String,
    bodies: std::sync::mpsc::Receiver<(String, String)>,
}

impl WebhookReceiver {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/vtrail-hook", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let (tx, bodies) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut request, mut length) = (String::new(), 0);
                reader.read_line(&mut request).unwrap();
                let mut header = String::new();
                while reader.read_line(&mut header).unwrap() > 0 && !header.trim().is_empty() {
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    header.clear();
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
                if tx.send((request, String::from_utf8_lossy(&body).into_owned())).is_err() {
                    return;
                }
            }
        });
        Self { url, bodies }
    }
}

/// The EICAR test file (68 bytes), the anti-virus industry's harmless test signature.
const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn rules(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("test.yar"),
        format!(
            "rule vtrail_test_payload {{ strings: $a = \"{PAYLOAD}\" condition: $a }}\n\
             rule eicar_test_file {{ strings: $a = \"EICAR-STANDARD-ANTIVIRUS-TEST-FILE\" condition: $a }}\n"
        ),
    )
    .unwrap();
    rules
}

/// The alert's response by `action` (Null if it has none).
fn response(alert: &Value, action: &str) -> Value {
    alert["responses"].as_array().into_iter().flatten().find(|r| r["action"] == action).cloned().unwrap_or_default()
}

fn alerts(sensor: &RunningSensor) -> Vec<Value> {
    let out = sensor.cli(&["alerts", "--json"]);
    assert!(out.status.success(), "alerts: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("alert JSON")).collect()
}

/// Polls `alerts` until one names `path` (an alert waits for the origin of an upload).
fn wait_alert(sensor: &RunningSensor, path: &Path, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    let path = path.display().to_string();
    loop {
        if let Some(a) = alerts(sensor).into_iter().find(|a| a["file"]["path"] == path.as_str()) {
            return a;
        }
        assert!(Instant::now() < deadline, "no alert for {path} within {limit:?}; status scan: {}\nlog:\n{}", sensor.status()["scan"], sensor.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A copy of the shell marked untrusted: what it runs is tainted, what it writes untrusted.
fn tainted_shell(sensor: &RunningSensor, dir: &Path) -> PathBuf {
    let tsh = dir.join("tsh");
    std::fs::copy("/bin/dash", &tsh).unwrap();
    let out = sensor.cli(&["taint", tsh.to_str().unwrap()]);
    assert!(out.status.success(), "taint: {}", String::from_utf8_lossy(&out.stderr));
    tsh
}

#[test]
fn yara_flags_an_untrusted_file_when_its_writer_closes_it() {
    // (Every sensor test holds the lock: a sensor with network monitoring off removes the
    // TC filters another left on an interface.)
    let _guard = serial();
    require_root();
    let dir = temp_dir("scan-yara");
    let rules = rules(&dir);
    let webhook = WebhookReceiver::start();
    let sensor = RunningSensor::start(
        &dir,
        &format!("network_monitoring = false\n[scan]\nyara_rules = \"{}\"\n[response]\nwebhook = \"{}\"\n", rules.display(), webhook.url),
    );
    assert_eq!(sensor.status()["scan"]["engines"][0], "yara-x (2 rules)");
    let tsh = tainted_shell(&sensor, &dir);
    let follower = Follower::start(&sensor);
    let (bad, good, trusted_copy) = (dir.join("dropped.bin"), dir.join("notes.txt"), dir.join("trusted.bin"));
    let started = Instant::now();
    sh(&format!("'{}' -c \"printf 'xx {PAYLOAD} yy' > '{}'; printf hello > '{}'\"", tsh.display(), bad.display(), good.display()));
    // The same bytes written by an untainted process: not untrusted, never scanned.
    sh(&format!("printf 'xx {PAYLOAD} yy' > '{}'", trusted_copy.display()));

    let alert = wait_alert(&sensor, &bad, Duration::from_secs(10));
    eprintln!("alert {:?} after the close", started.elapsed());
    assert_eq!(alert["schema"], "vtrail-alert/1");
    assert_eq!(alert["detections"][0]["engine"], "yara-x", "{alert}");
    assert_eq!(alert["detections"][0]["names"][0], "vtrail_test_payload", "{alert}");
    assert_eq!(alert["file"]["sha256"], sha256_of(&bad), "{alert}");
    // A tainted process's own file is not an arrival: no origin, answered at once.
    assert!(alert.get("origin").is_none(), "{alert}");
    assert!(alert["ts_ns"].as_u64().unwrap() - alert["scanned_ns"].as_u64().unwrap() < 2_000_000_000, "{alert}");

    let g = sensor.wait_for("detected edge", |g| g.file(&bad.display().to_string()).is_some_and(|f| !g.edges_into("detected", f["id"].as_str().unwrap()).is_empty()));
    let file = g.file(&bad.display().to_string()).unwrap();
    assert_eq!(file["malicious"], true, "{file}");
    let edge = g.edges_into("detected", file["id"].as_str().unwrap())[0];
    assert_eq!(edge["src"], g.header["host"]["id"].as_str().map(|h| format!("host:{h}")).unwrap(), "{edge}");
    assert_eq!(edge["attrs"]["detections"][0]["names"][0], "vtrail_test_payload");

    assert_eq!(file["scan"]["verdict"], "malicious", "{file}");
    let g = sensor.wait_for("clean verdict kept", |g| g.file(&good.display().to_string()).is_some_and(|f| f["scan"]["verdict"] == "clean"));
    let clean = g.file(&good.display().to_string()).unwrap();
    assert_eq!(clean["scan"]["engines"][0], "yara-x", "{clean}");
    assert_eq!(clean["scan"]["sha256"], sha256_of(&good), "{clean}");
    assert!(g.file(&trusted_copy.display().to_string()).is_none_or(|f| f.get("scan").is_none()), "a trusted file was scanned");

    let all = alerts(&sensor);
    assert_eq!(all.len(), 1, "only the tainted process's payload is flagged: {all:?}");
    let scan = &sensor.status()["scan"];
    assert!(scan["clean"].as_u64().unwrap() >= 1, "notes.txt scanned clean: {scan}");
    assert_eq!(scan["detected"], 1, "{scan}");
    assert_eq!(scan["alerts"], 1, "{scan}");
    // Only untrusted files are marked: no close of a trusted file is ever reported (a
    // file-system-wide mark would report all 200).
    assert!(scan["watched"].as_u64().unwrap() >= 2, "both untrusted files marked: {scan}");
    let seen = scan["closes_seen"].as_u64().unwrap();
    sh(&format!("for i in $(seq 200); do printf x > '{}/trusted-'$i; done", dir.display()));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sensor.status()["scan"]["closes_seen"].as_u64().unwrap(), seen, "closes of trusted files were reported");
    // `alerts --follow` printed it as it was raised.
    let followed = follower.next(Duration::from_secs(10));
    assert_eq!(followed["file"]["path"], bad.display().to_string().as_str(), "{followed}");
    let human = String::from_utf8_lossy(&sensor.cli(&["alerts"]).stdout).into_owned();
    assert!(human.contains("vtrail_test_payload") && human.contains(&bad.display().to_string()), "{human}");
    // The webhook got the same document, POSTed as JSON.
    let (request, body) = webhook.bodies.recv_timeout(Duration::from_secs(10)).expect("the webhook got no POST within 10 s");
    assert!(request.starts_with("POST /vtrail-hook "), "{request}");
    let posted: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("webhook body {body:?}: {e}"));
    assert_eq!(posted, alert, "the webhook's document is the stored alert");
    let scan = wait_status(&sensor, "webhook delivery counted", |s| s["webhook_delivered"] == 1);
    assert_eq!(scan["webhook_failures"], 0, "{scan}");

    // A writer still writing when its file was marked: the payload written after the mark
    // (and after the scan of what was there then) is found at the close, which the mark
    // reports.
    let slow = dir.join("slow.bin");
    sh(&format!("'{}' -c \"exec 3> '{}'; printf 'clean start ' >&3; sleep 1; printf 'xx {PAYLOAD} yy' >&3; exec 3>&-\"", tsh.display(), slow.display()));
    let alert = wait_alert(&sensor, &slow, Duration::from_secs(10));
    assert_eq!(alert["detections"][0]["names"][0], "vtrail_test_payload", "{alert}");

    // Written again with clean content: scanned again (a new version), and clean.
    let scanned = sensor.status()["scan"]["scanned"].as_u64().unwrap();
    sh(&format!("'{}' -c \"printf clean > '{}'\"", tsh.display(), bad.display()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while sensor.status()["scan"]["scanned"].as_u64().unwrap() <= scanned {
        assert!(Instant::now() < deadline, "a rewrite was not scanned again: {}", sensor.status()["scan"]);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A file above `max_file_bytes` is not read: counted, and its node says why.
#[test]
fn a_file_above_the_size_cap_is_not_scanned_and_says_why() {
    let _guard = serial();
    require_root();
    let dir = temp_dir("scan-cap");
    let rules = rules(&dir);
    let sensor = RunningSensor::start(&dir, &format!("network_monitoring = false\n[scan]\nyara_rules = \"{}\"\nmax_file_bytes = 1024\n", rules.display()));
    let tsh = tainted_shell(&sensor, &dir);
    let big = dir.join("big.bin");
    sh(&format!("'{}' -c \"head -c 4096 /dev/zero > '{1}'; printf '{PAYLOAD}' >> '{1}'\"", tsh.display(), big.display()));
    let g = sensor.wait_for("not_scanned verdict", |g| g.file(&big.display().to_string()).is_some_and(|f| f["scan"]["verdict"] == "not_scanned"));
    let file = g.file(&big.display().to_string()).unwrap();
    assert!(file["scan"]["reason"].as_str().unwrap().contains("larger than scan.max_file_bytes (4120 > 1024)"), "{file}");
    // (Two closes: the shell's `>` and its `>>`; each is looked at, neither read once the
    // file is past the cap. The catch-up scan made when the file is marked may have read it
    // while it was still empty, so `scanned` may be 1: clean, never a detection.)
    let scan = &sensor.status()["scan"];
    assert!(scan["too_large"].as_u64().unwrap() >= 1 && scan["detected"] == 0, "{scan}");
    assert!(alerts(&sensor).is_empty());
}

/// A large untrusted file removed as soon as it is closed: its content is still scanned
/// (through the descriptor fanotify opened); nothing breaks.
#[test]
fn a_file_removed_right_after_its_close_is_still_scanned() {
    let _guard = serial();
    require_root();
    let dir = temp_dir("scan-removed");
    let rules = rules(&dir);
    let sensor = RunningSensor::start(&dir, &format!("network_monitoring = false\n[scan]\nyara_rules = \"{}\"\n", rules.display()));
    let tsh = tainted_shell(&sensor, &dir);
    let gone = dir.join("gone.bin");
    sh(&format!("'{}' -c \"head -c 20000000 /dev/zero > '{1}'; printf '{PAYLOAD}' >> '{1}'; rm '{1}'\"", tsh.display(), gone.display()));
    let scan = wait_status(&sensor, "the removed file scanned", |s| s["detected"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(scan["lost"], 0, "{scan}");
    let flagged = alerts(&sensor);
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    // Named if the close was read before `rm`, else nameless; never "... (deleted)".
    let path = flagged[0]["file"].get("path");
    assert!(path.is_none_or(|p| p == gone.display().to_string().as_str()), "{}", flagged[0]);
    assert_eq!(flagged[0]["file"]["size"], 20_000_000 + PAYLOAD.len() as u64, "{}", flagged[0]);
}

#[test]
fn a_rule_that_does_not_compile_stops_the_start_naming_its_file_and_line() {
    require_root();
    let dir = temp_dir("scan-badrule");
    let rules = rules(&dir);
    std::fs::write(rules.join("broken.yara"), "rule broken {\n  condition:\n    no_such_identifier\n}\n").unwrap();
    let config = dir.join("c.toml");
    // (Its own kernel_state: the default is a production sensor's. The rules are compiled
    // before anything is loaded, so nothing is pinned there; checked below.)
    let kernel_state = tests::sensor::kernel_state_dir(&dir);
    std::fs::write(
        &config,
        format!(
            "database = \"{0}/db\"\nsocket = \"{0}/s.sock\"\nkernel_state = \"{2}\"\nnetwork_monitoring = false\n[scan]\nyara_rules = \"{1}\"\n",
            dir.display(),
            rules.display(),
            kernel_state.display()
        ),
    )
    .unwrap();
    let out = Command::new(sensor_bin()).arg("--config").arg(&config).arg("run").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(&format!("{} line 3", rules.join("broken.yara").display())), "{err}");
    assert!(!kernel_state.exists(), "a start refused for a bad rule pinned kernel state at {}", kernel_state.display());
    // And a key of the section that does not exist is named.
    std::fs::write(&config, format!("database = \"{0}/db\"\nkernel_state = \"{1}\"\n[scan]\nyara_rule = \"x\"\n", dir.display(), kernel_state.display())).unwrap();
    let out = Command::new(sensor_bin()).arg("--config").arg(&config).arg("run").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("yara_rule") && err.contains("line 4"), "{err}");
}

/// clamd from Debian's package, on a database of the test's own signatures.
struct Clamd {
    child: Option<std::process::Child>,
    conf: PathBuf,
    socket: PathBuf,
}

impl Clamd {
    fn configure(dir: &Path) -> Self {
        assert!(Path::new("/usr/sbin/clamd").exists(), "this test needs clamd: apt-get install clamav-daemon (cargo xtask setup --test-peers installs it)");
        let db = dir.join("clamdb");
        std::fs::create_dir_all(&db).unwrap();
        let hex: String = EICAR.bytes().map(|b| format!("{b:02x}")).collect();
        std::fs::write(db.join("vtrail-test.ndb"), format!("Vtrail.Test.EICAR:0:*:{hex}\n")).unwrap();
        let socket = dir.join("clamd.sock");
        let conf = dir.join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "LocalSocket {}\nDatabaseDirectory {}\nForeground yes\nLogFile {}/clamd.log\nPidFile {}/clamd.pid\nBytecode no\nUser root\n",
                socket.display(),
                db.display(),
                dir.display(),
                dir.display()
            ),
        )
        .unwrap();
        Self { child: None, conf, socket }
    }

    fn start(&mut self) {
        let child = Command::new("/usr/sbin/clamd").arg("-c").arg(&self.conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start clamd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(Instant::now() < deadline, "clamd did not listen on {} within 60 s", self.socket.display());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_status(sensor: &RunningSensor, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scan = sensor.status()["scan"].clone();
        if done(&scan) {
            return scan;
        }
        assert!(Instant::now() < deadline, "{what}: {scan}\n{}", sensor.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn clamd_flags_files_and_while_it_is_down_files_wait_for_a_rescan() {
    let _guard = serial();
    require_root();
    let dir = temp_dir("scan-clamd");
    let mut clamd = Clamd::configure(&dir);
    // clamd is not running yet: the sensor starts anyway, says so, keeps files for later.
    let sensor = RunningSensor::start(&dir, &format!("network_monitoring = false\n[scan]\nclamd_socket = \"{}\"\n", clamd.socket.display()));
    let tsh = tainted_shell(&sensor, &dir);
    let (source, eicar) = (dir.join("eicar.src"), dir.join("eicar.com"));
    std::fs::write(&source, EICAR).unwrap();
    sh(&format!("'{}' -c \"cat '{}' > '{}'\"", tsh.display(), source.display(), eicar.display()));
    // A program carrying the signature (a shell with EICAR appended: it still runs), run
    // before any verdict is possible; what it writes is in the alert once one comes.
    let (dropper, dropped) = (dir.join("dropper"), dir.join("dropped.out"));
    sh(&format!("'{}' -c \"cat /bin/dash '{}' > '{}'; chmod +x '{}'\"", tsh.display(), source.display(), dropper.display(), dropper.display()));
    let scan = wait_status(&sensor, "clamd down counted", |s| s["clamd_unavailable"].as_u64().unwrap_or(0) >= 1 && s["waiting"].as_u64().unwrap_or(0) >= 2);
    sh(&format!("'{}' -c \"'{}' -c 'printf pwned > {}'\"", tsh.display(), dropper.display(), dropped.display()));
    assert_eq!(std::fs::read_to_string(&dropped).unwrap(), "pwned");
    assert_eq!(scan["detected"], 0, "{scan}");
    assert!(alerts(&sensor).is_empty());

    clamd.start();
    let alert = wait_alert(&sensor, &eicar, Duration::from_secs(20));
    assert_eq!(alert["detections"][0]["engine"], "clamav", "{alert}");
    assert_eq!(alert["detections"][0]["names"][0], "Vtrail.Test.EICAR.UNOFFICIAL", "{alert}");
    assert!(alert["known"]["ran"].as_array().is_some_and(|r| r.is_empty()), "nothing ran eicar.com: {alert}");
    // The dropper's alert names the process that ran it and what that wrote.
    let alert = wait_alert(&sensor, &dropper, Duration::from_secs(20));
    eprintln!("dropper alert: {alert}");
    let known = &alert["known"];
    assert_eq!(known["ran"][0]["how"], "exec", "{alert}");
    assert_eq!(known["ran"][0]["exe"], dropper.display().to_string().as_str(), "{alert}");
    let wrote: Vec<&str> = known["wrote"].as_array().unwrap().iter().filter_map(|w| w["path"].as_str()).collect();
    assert!(wrote.contains(&dropped.display().to_string().as_str()), "{alert}");
    assert_eq!(known["complete"], true, "{alert}");
    let human = String::from_utf8_lossy(&sensor.cli(&["alerts"]).stdout).into_owned();
    assert!(human.contains(&format!("which wrote {}", dropped.display())), "{human}");
    let clean = dir.join("clean.txt");
    sh(&format!("'{}' -c \"printf 'nothing here' > '{}'\"", tsh.display(), clean.display()));
    wait_status(&sensor, "clean file scanned by clamd", |s| s["clean"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(alerts(&sensor).len(), 2);

    // clamd stopped while the sensor runs: a file written meanwhile waits, counted, and is
    // flagged once clamd is back.
    let unavailable = sensor.status()["scan"]["clamd_unavailable"].as_u64().unwrap();
    if let Some(mut c) = clamd.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let later = dir.join("later.com");
    sh(&format!("'{}' -c \"cat '{}' > '{}'\"", tsh.display(), source.display(), later.display()));
    wait_status(&sensor, "clamd stopped mid-run counted", |s| s["clamd_unavailable"].as_u64().unwrap_or(0) > unavailable && s["waiting"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(alerts(&sensor).len(), 2, "no verdict without clamd");
    clamd.start();
    wait_alert(&sensor, &later, Duration::from_secs(30));
}

/// An upload over FTP or SMB from the namespace host, flagged on arrival: the alert names
/// the sender and the name it sent, and the sender is quarantined: its next upload is
/// dropped, its other traffic passes.
#[test]
fn a_flagged_upload_gets_its_sender_blocked() {
    let _guard = serial();
    require_root();
    ensure_packages();
    let _net = Net::up();
    let dir = temp_dir("scan-block");
    let rules = rules(&dir);
    let (_smbd, share) = start_samba(&dir);
    let (_ftpd, incoming) = start_vsftpd(&dir, false);
    // The sender's node id in DNS, as vtrail-ddns publishes it, behind a server slower than
    // the scan (each answer 400 ms late): the alert waits to name the host by it.
    let dns = ddns_updater::harness::NamedServer::start(ZONE, &[("client", &[CLIENT_ID])], None).unwrap_or_else(|e| panic!("cannot start BIND: {e}"));
    publish(&dns, "client", &[CLIENT_ID], &[CLIENT4]);
    let slow = slow_dns(dns.addr(), Duration::from_millis(400), Duration::from_secs(120));
    let sensor = sensor_with(&dir, &format!("{}[scan]\nyara_rules = \"{}\"\n", naming_config(&slow.to_string()), rules.display()));
    let eicar = dir.join("eicar.com");
    std::fs::write(&eicar, EICAR).unwrap();

    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 20 -T '{}' ftp://{HOST4}/incoming/invoice.com", eicar.display()));
    assert!(out.status.success(), "curl STOR: {}", String::from_utf8_lossy(&out.stderr));
    let started = Instant::now();
    let alert = wait_alert(&sensor, &incoming.join("invoice.com"), Duration::from_secs(30));
    eprintln!("alert {:?} after the upload ended", started.elapsed());
    assert_eq!(alert["detections"][0]["names"][0], "eicar_test_file", "{alert}");
    assert_eq!(alert["origin"]["ip"], CLIENT4, "{alert}");
    assert_eq!(alert["origin"]["remote"], format!("remote:{CLIENT4}"), "{alert}");
    assert_eq!(alert["origin"]["protocol"], "ftp", "{alert}");
    assert_eq!(alert["origin"]["name"], "invoice.com", "{alert}");
    assert_eq!(alert["origin"]["node_ids"], serde_json::json!([CLIENT_ID]), "{alert}");
    assert_eq!(response(&alert, "block_sender")["ok"], true, "{alert}");

    // Blocked: the next uploads (FTP and SMB) are dropped; a listing passes.
    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 10 -T /etc/hostname ftp://{HOST4}/incoming/next.txt"));
    assert!(
        !out.status.success() && !incoming.join("next.txt").exists(),
        "an upload after the detection went through: {} {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sensor.status()["network"],
        sensor.log_text()
    );
    let out = smb_put(HOST4, "share", "SMB3_11", false, "/etc/hostname", "next.txt");
    assert!(!out.status.success() || !share.join("next.txt").exists(), "an SMB upload after the detection went through");
    assert!(!share.join("next.txt").exists());
    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 10 ftp://{HOST4}/incoming/"));
    assert!(out.status.success(), "FTP listing blocked: {}", String::from_utf8_lossy(&out.stderr));
    let g = sensor.graph();
    let blocks = g.edges_into("block", &format!("remote:{CLIENT4}"));
    assert_eq!(blocks.len(), 1, "{}", g.describe());
    assert!(blocks[0]["attrs"]["by"].as_str().unwrap().starts_with("detection: yara-x eicar_test_file in "), "{}", blocks[0]);

    // Lifted by hand, an SMB upload of the payload is flagged and blocks it again.
    assert!(sensor.cli(&["unblock", CLIENT4]).status.success());
    let out = smb_put(HOST4, "share", "SMB3_11", false, eicar.to_str().unwrap(), "report.com");
    assert!(out.status.success(), "SMB upload: {}", String::from_utf8_lossy(&out.stderr));
    let alert = wait_alert(&sensor, &share.join("report.com"), Duration::from_secs(30));
    assert_eq!(alert["origin"]["ip"], CLIENT4, "{alert}");
    assert_eq!(alert["origin"]["protocol"], "smb2", "{alert}");
    assert_eq!(alert["origin"]["name"], "report.com", "{alert}");
    assert_eq!(response(&alert, "block_sender")["ok"], true, "{alert}");
    let out = smb_put(HOST4, "share", "SMB3_11", false, "/etc/hostname", "again.txt");
    assert!(!out.status.success() || !share.join("again.txt").exists(), "an SMB upload after the second detection went through");
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_owned()
}

/// A process's exit status, waited for at most 10 s.
fn exit_of(mut child: std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process still runs after 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `deny_exec` for scripts: a flagged script is run without exec'ing it (`sh FILE`) or by
/// exec'ing its interpreter (`#!`): the interpreter is stopped at its open of the script,
/// before it reads a line, whoever runs it; a program that is no interpreter still reads
/// the file (deny_exec stops running, not reading).
#[test]
fn a_flagged_script_is_stopped_when_an_interpreter_opens_it() {
    use std::os::unix::process::ExitStatusExt;
    let _guard = serial();
    require_root();
    let dir = temp_dir("scan-deny-script");
    let rules = rules(&dir);
    let config = format!("network_monitoring = false\n[scan]\nyara_rules = \"{}\"\n", rules.display());
    let sensor = RunningSensor::start(&dir, &config);
    let tsh = tainted_shell(&sensor, &dir);
    let script = dir.join("cleanup.sh");
    sh(&format!("'{}' -c \"printf '#!/bin/sh\\necho it ran\\n# {PAYLOAD}\\n' > '{1}'; chmod +x '{1}'\"", tsh.display(), script.display()));
    let alert = wait_alert(&sensor, &script, Duration::from_secs(10));
    assert_eq!(response(&alert, "deny_exec")["ok"], true, "{alert}");

    // `sh FILE` by an untainted root shell, `./FILE` through its #! line, and `sh FILE` by
    // a tainted process: each killed before printing anything.
    let runs: [(&str, Command); 3] = [
        ("sh FILE", { let mut c = Command::new("/bin/sh"); c.arg(&script); c }),
        ("#! exec", Command::new(&script)),
        ("sh FILE from a tainted shell", { let mut c = Command::new(&tsh); c.arg("-c").arg(format!("exec /bin/sh '{}'", script.display())); c }),
    ];
    for (how, mut command) in runs {
        let out = command.output().unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{how}: the flagged script ran: {}", out.status);
        assert!(out.stdout.is_empty(), "{how}: the flagged script printed {:?}", String::from_utf8_lossy(&out.stdout));
    }
    let g = sensor.wait_for("three prevented edges", |g| g.file(&script.display().to_string()).is_some_and(|f| g.edges_from("prevented", f["id"].as_str().unwrap()).len() >= 3));
    let file = g.file(&script.display().to_string()).unwrap();
    let edges = g.edges_from("prevented", file["id"].as_str().unwrap());
    assert!(edges.iter().all(|e| e["attrs"]["by"] == "deny_exec"), "{edges:?}");
    assert!(edges.iter().any(|e| e["attrs"]["action"] == "interpret"), "{edges:?}");
    // Reading is not running: cat (no interpreter) reads it.
    let out = Command::new("/usr/bin/cat").arg(&script).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("echo it ran"), "cat: {}", out.status);
    // An untrusted script that was not flagged runs.
    let clean = dir.join("clean.sh");
    sh(&format!("'{}' -c \"printf 'echo clean ran\\n' > '{}'\"", tsh.display(), clean.display()));
    let out = Command::new("/bin/sh").arg(&clean).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "clean ran\n", "{}", out.status);

    // After a reboot (the pinned kernel maps gone: `stop` removes them), the database
    // flags it again at start.
    drop(sensor.stop());
    let sensor = RunningSensor::start(&dir, &config);
    let out = Command::new(&script).output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "after the maps were rebuilt from the database the flagged script ran: {}", out.status);
    assert!(out.stdout.is_empty(), "{:?}", String::from_utf8_lossy(&out.stdout));
    assert!(sensor.log_text().contains("(1 flagged by a scan"), "{}", sensor.log_text());
}

/// `deny_exec` (on by default): once flagged, the file is stopped in the kernel's exec hook
/// whoever runs it, and the graph says so with a `prevented` edge.
#[test]
fn a_flagged_file_is_stopped_when_it_is_run() {
    use std::os::unix::process::ExitStatusExt;
    let _guard = serial();
    require_root();
    let dir = temp_dir("scan-deny");
    let rules = rules(&dir);
    let sensor = RunningSensor::start(&dir, &format!("network_monitoring = false\n[scan]\nyara_rules = \"{}\"\n", rules.display()));
    let tsh = tainted_shell(&sensor, &dir);
    // A working program (a copy of `echo`) with the payload appended.
    let dropped = dir.join("update-helper");
    sh(&format!("'{}' -c \"cat /usr/bin/echo > '{1}'; printf '{PAYLOAD}' >> '{1}'; chmod +x '{1}'\"", tsh.display(), dropped.display()));
    let alert = wait_alert(&sensor, &dropped, Duration::from_secs(10));
    assert_eq!(response(&alert, "deny_exec")["ok"], true, "{alert}");

    // Run by an untainted root process, by path: killed before its first instruction (it
    // prints nothing).
    let out = Command::new(&dropped).arg("it ran").output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "the flagged file ran: {}", out.status);
    assert!(out.stdout.is_empty(), "the flagged program printed {:?}", String::from_utf8_lossy(&out.stdout));
    // And by a tainted process (the tainted shell runs it): the same.
    let out = Command::new(&tsh).arg("-c").arg(format!("'{}' 'it ran'", dropped.display())).output().unwrap();
    assert_eq!(out.status.code(), Some(128 + libc::SIGKILL), "run by a tainted shell: {}", out.status);
    assert!(out.stdout.is_empty(), "the flagged program printed {:?}", String::from_utf8_lossy(&out.stdout));
    let g = sensor.wait_for("prevented edge", |g| g.file(&dropped.display().to_string()).is_some_and(|f| !g.edges_from("prevented", f["id"].as_str().unwrap()).is_empty()));
    let file = g.file(&dropped.display().to_string()).unwrap();
    let edge = g.edges_from("prevented", file["id"].as_str().unwrap())[0];
    assert_eq!(edge["attrs"]["action"], "exec", "{edge}");
    assert_eq!(edge["attrs"]["by"], "deny_exec", "{edge}");
    // Other programs still run (the flag is on this inode only).
    let status = exit_of(Command::new("/usr/bin/true").spawn().unwrap());
    assert!(status.success(), "{status}");

    // Trusting a flagged file takes --force, and is recorded as such; then it runs.
    let out = sensor.cli(&["trust", dropped.to_str().unwrap()]);
    assert!(!out.status.success(), "trust of a flagged file without --force was accepted");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = sensor.cli(&["trust", "--force", dropped.to_str().unwrap()]);
    assert!(out.status.success(), "trust --force: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(&dropped).arg("it ran").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "it ran\n", "{}", out.status);
    let g = sensor.graph();
    let file = g.file(&dropped.display().to_string()).unwrap();
    let relabels = g.edges_into("relabel", file["id"].as_str().unwrap());
    assert!(relabels.iter().any(|e| e["attrs"]["by"].as_str().is_some_and(|b| b.ends_with("--force over a detection"))), "{relabels:?}");
}

/// `kill`: what already runs the file when it is flagged is killed. The file runs first
/// because clamd is down at its close; the rescan once clamd is up flags it.
#[test]
fn kill_stops_the_processes_running_a_file_when_it_is_flagged() {
    use std::os::unix::process::ExitStatusExt;
    let _guard = serial();
    require_root();
    let dir = temp_dir("scan-kill");
    let mut clamd = Clamd::configure(&dir);
    let sensor = RunningSensor::start(
        &dir,
        &format!("network_monitoring = false\n[scan]\nclamd_socket = \"{}\"\n[response]\nkill = true\n", clamd.socket.display()),
    );
    let tsh = tainted_shell(&sensor, &dir);
    let dropped = dir.join("miner");
    sh(&format!("'{}' -c \"cat /usr/bin/sleep > '{1}'; printf '{PAYLOAD}' >> '{1}'; chmod +x '{1}'\"", tsh.display(), dropped.display()));
    wait_status(&sensor, "clamd down counted", |s| s["clamd_unavailable"].as_u64().unwrap_or(0) >= 1);
    let running = Command::new(&dropped).arg("60").spawn().unwrap();
    // clamd's database names the file's md5 (`.hdb`: md5:size:name).
    let md5 = String::from_utf8_lossy(&Command::new("md5sum").arg(&dropped).output().unwrap().stdout).split_whitespace().next().unwrap().to_owned();
    let size = std::fs::metadata(&dropped).unwrap().len();
    std::fs::write(dir.join("clamdb/vtrail-miner.hdb"), format!("{md5}:{size}:Vtrail.Test.Miner\n")).unwrap();
    clamd.start();
    let alert = wait_alert(&sensor, &dropped, Duration::from_secs(20));
    let status = exit_of(running);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "the running copy was not killed: {status}; {alert}");
    assert_eq!(response(&alert, "kill")["ok"], true, "{alert}");
    let g = sensor.wait_for("prevented (kill) edge", |g| g.file(&dropped.display().to_string()).is_some_and(|f| g.edges_from("prevented", f["id"].as_str().unwrap()).iter().any(|e| e["attrs"]["action"] == "kill")));
    drop(g);
}

/// With the fleet on, an alert is published on the host's alerts subject, into the
/// collector's alerts stream, where a manager reads it.
#[test]
fn alerts_reach_the_fleets_alerts_stream() {
    use futures::StreamExt;
    use sensor_common::graph::fleet::{DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, alerts_stream, alerts_subject};
    let _guard = serial();
    require_root();
    let dir = temp_dir("scan-fleet");
    let host = tests::fleet::this_host();
    let central = tests::fleet::Central::start(&dir, &[&host]);
    let rules = rules(&dir);
    let sensor = RunningSensor::start(&dir, &format!("network_monitoring = false\n{}[scan]\nyara_rules = \"{}\"\n", central.sensor_toml(&host), rules.display()));
    let tsh = tainted_shell(&sensor, &dir);
    let bad = dir.join("payload.bin");
    sh(&format!("'{}' -c \"printf 'xx {PAYLOAD} yy' > '{}'\"", tsh.display(), bad.display()));
    wait_alert(&sensor, &bad, Duration::from_secs(10));

    let seed = std::fs::read_to_string(central.collector_key()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (subject, alert) = rt.block_on(async {
        let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
            .custom_inbox_prefix(collector::nats::COLLECTOR_INBOX_PREFIX)
            .connect(central.nats.url())
            .await
            .expect("connect as the manager");
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream(alerts_stream(DEFAULT_STREAM)).await.expect("the collector created the alerts stream");
        let consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.create_consumer(async_nats::jetstream::consumer::pull::Config::default()).await.expect("a consumer on the alerts stream");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut batch = consumer.fetch().max_messages(16).expires(Duration::from_millis(500)).messages().await.expect("fetch");
            while let Some(message) = batch.next().await {
                let message = message.expect("a message");
                let alert: Value = serde_json::from_slice(&message.payload).expect("an alert document");
                if alert["file"]["path"] == bad.display().to_string().as_str() {
                    return (message.subject.to_string(), alert);
                }
            }
            assert!(Instant::now() < deadline, "no alert on the alerts stream within 20 s; fleet status: {}", sensor.status()["fleet"]);
        }
    });
    assert_eq!(subject, alerts_subject(DEFAULT_SUBJECT_PREFIX, &host));
    assert_eq!(alert["schema"], "vtrail-alert/1");
    assert_eq!(alert["host"], host.as_str());
    assert_eq!(alert["detections"][0]["names"][0], "vtrail_test_payload", "{alert}");
    assert!(sensor.status()["fleet"]["published_alerts"].as_u64().unwrap_or(0) >= 1, "{}", sensor.status()["fleet"]);
}

/// `hold_until_scanned`: an untrusted program runs only once its scan says clean; a
/// flagged one is refused (EPERM, before the kernel's exec hook); with no verdict in time
/// the configured answer is given; a trusted program is never held.
#[test]
fn hold_until_scanned_runs_untrusted_programs_only_once_scanned() {
    let _guard = serial();
    require_root();
    let dir = temp_dir("scan-hold");
    let rules = rules(&dir);
    let hold = "[response]\nhold_until_scanned = true\nhold_timeout_ms = 1000\nhold_on_timeout = \"deny\"\n";
    let sensor = RunningSensor::start(&dir, &format!("network_monitoring = false\n[scan]\nyara_rules = \"{}\"\n{hold}", rules.display()));
    let tsh = tainted_shell(&sensor, &dir);
    let (clean, flagged) = (dir.join("tool"), dir.join("tool-payload"));
    sh(&format!("'{}' -c \"cat /usr/bin/echo > '{1}'; chmod +x '{1}'\"", tsh.display(), clean.display()));
    sh(&format!("'{}' -c \"cat /usr/bin/echo > '{1}'; printf '{PAYLOAD}' >> '{1}'; chmod +x '{1}'\"", tsh.display(), flagged.display()));
    let out = Command::new(&clean).arg("ran").output().expect("the clean untrusted program runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    let refused = Command::new(&flagged).arg("ran").output();
    assert_eq!(refused.as_ref().err().map(|e| e.kind()), Some(std::io::ErrorKind::PermissionDenied), "{refused:?}");
    let scan = wait_status(&sensor, "held execs counted", |s| s["held_allowed_clean"].as_u64().unwrap_or(0) >= 1 && s["held_denied_malicious"].as_u64().unwrap_or(0) >= 1);
    // A trusted program is not held.
    let held = scan["held_execs"].as_u64().unwrap();
    assert!(Command::new("/usr/bin/true").status().unwrap().success());
    assert_eq!(sensor.status()["scan"]["held_execs"].as_u64().unwrap(), held, "a trusted program was held");
    drop(sensor);

    // clamd configured and down: no verdict comes; the exec gets the timeout rule (deny).
    // (A fresh database, and the hold turned on by SIGHUP once the tainted shell is made:
    // `tsh` is untrusted too, and, unscanned with clamd down, it would itself be held and
    // refused.)
    let dir = temp_dir("scan-hold-clamd");
    let clamd = Clamd::configure(&dir);
    let scan = format!("network_monitoring = false\n[scan]\nclamd_socket = \"{}\"\n", clamd.socket.display());
    let sensor = RunningSensor::start(&dir, &scan);
    let tsh = tainted_shell(&sensor, &dir);
    let status = sensor.reload(&format!("{scan}{hold}"));
    assert_eq!(status["scan"]["hold_enabled"], true, "{}", status["scan"]);
    let waits = dir.join("waits");
    sh(&format!("'{}' -c \"cat /usr/bin/echo > '{1}'; chmod +x '{1}'\"", tsh.display(), waits.display()));
    let started = Instant::now();
    let refused = Command::new(&waits).arg("ran").output();
    let waited = started.elapsed();
    assert_eq!(refused.as_ref().err().map(|e| e.kind()), Some(std::io::ErrorKind::PermissionDenied), "{refused:?}");
    // (clamd answers nothing at once: no verdict can come, so the rule answers without
    // waiting out the timeout.)
    assert!(waited < Duration::from_secs(5), "held {waited:?} for a 1 s timeout");
    wait_status(&sensor, "timeout counted", |s| s["held_timed_out"].as_u64().unwrap_or(0) >= 1);
    let g = sensor.wait_for("prevented by the hold", |g| {
        g.file(&waits.display().to_string())
            .is_some_and(|f| g.edges_from("prevented", f["id"].as_str().unwrap()).iter().any(|e| e["attrs"]["by"].as_str().is_some_and(|b| b.starts_with("hold_until_scanned"))))
    });
    drop(g);
}

/// A tainted process that tries to write `path` (append, so the file is not emptied even
/// if the open goes through): its exit status.
fn tainted_write(shell: &Path, path: &Path) -> std::process::ExitStatus {
    let out = Command::new(shell).arg("-c").arg(format!("echo tainted >> '{}'", path.display())).output().unwrap();
    out.status
}

/// The loop closed: an upload that ran and planted a cron job, analysed by `vtrail-analysis
/// rules --json` from the sensor's own export, and the rules applied with `apply-rules`:
/// the sender blocked, the cron directory guarded (a tainted writer is killed there, an
/// untainted one is not), the YARA rule of the file's hash flagging the next copy - and all
/// of it still in force after a restart; `[response] protected_paths` guards a path too.
#[test]
fn apply_rules_enforces_what_the_analysis_of_an_incident_wrote() {
    use std::os::unix::process::ExitStatusExt;
    let _guard = serial();
    require_root();
    ensure_packages();
    let _net = Net::up();
    let dir = temp_dir("scan-apply-rules");
    let rules_dir = rules(&dir);
    let cron = dir.join("cron.d");
    std::fs::create_dir_all(&cron).unwrap();
    let (_ftpd, incoming) = start_vsftpd(&dir, false);
    let toml = format!("activation_points = [\"{}/\"]\n[scan]\nyara_rules = \"{}\"\n", cron.display(), rules_dir.display());
    let sensor = sensor_with(&dir, &toml);

    // The incident: a program uploaded by FTP runs and drops a cron job.
    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 20 -T /bin/dash ftp://{HOST4}/incoming/tool"));
    assert!(out.status.success(), "curl STOR: {}", String::from_utf8_lossy(&out.stderr));
    let tool = incoming.join("tool");
    sensor.wait_for("the upload", |g| !received_from(g, &tool.display().to_string()).is_empty());
    sh(&format!("chmod +x '{0}' && '{0}' -c \"echo '* * * * * root /tmp/x' > '{1}/job'; sleep 1\"", tool.display(), cron.display()));
    let job = cron.join("job");
    sensor.wait_for("the cron job's write", |g| g.file(&job.display().to_string()).is_some_and(|f| !g.edges_into("create", f["id"].as_str().unwrap()).is_empty()));

    // Analysed from the sensor's export, as a responder would.
    let dump = dir.join("dump.jsonl");
    let out = sensor.cli(&["export", "--output", dump.to_str().unwrap()]);
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(tests::collector::analysis_bin()).args(["rules", "--json"]).arg(&dump).output().unwrap();
    assert!(out.status.success(), "vtrail-analysis rules: {}", String::from_utf8_lossy(&out.stderr));
    let rules_json = dir.join("rules.json");
    std::fs::write(&rules_json, &out.stdout).unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rules"]["block"][0]["target"], CLIENT4, "{doc}");
    assert!(doc["rules"]["protect"].as_array().unwrap().iter().any(|p| p["path"] == job.display().to_string()), "{doc}");
    let yara = doc["rules"]["yara"].as_str().unwrap_or_else(|| panic!("no YARA rule: {doc}"));
    let rule_name = yara.split_whitespace().skip_while(|w| *w != "rule").nth(1).unwrap().trim_end_matches('{').to_owned();

    // A tainted shell to try the rules with (bash: the YARA rule matches dash's bytes).
    let tb = dir.join("tb");
    std::fs::copy("/bin/bash", &tb).unwrap();
    assert!(sensor.cli(&["taint", tb.to_str().unwrap()]).status.success());
    // Before the rules: a tainted process may write the cron job.
    assert!(tainted_write(&tb, &job).success());

    let out = sensor.cli(&["apply-rules", rules_json.to_str().unwrap()]);
    assert!(out.status.success(), "apply-rules: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["blocked"][0], CLIENT4, "{report}");
    assert_eq!(report["yara_rules_in_force"], 3, "{report}");
    assert!(report["protected_inodes"].as_u64().unwrap() >= 2, "the job and its directory: {report}");

    // Blocked: the sender's next upload is dropped.
    let out = run(&format!("ip netns exec {NS} curl -sS --max-time 10 -T /etc/hostname ftp://{HOST4}/incoming/next.txt"));
    assert!(!out.status.success() && !incoming.join("next.txt").exists(), "an upload after apply-rules went through");
    let g = sensor.graph();
    let blocks = g.edges_into("block", &format!("remote:{CLIENT4}"));
    assert!(blocks.iter().any(|b| b["attrs"]["by"].as_str().unwrap().starts_with("apply-rules ")), "{blocks:?}");

    // Guarded: the cron job and the directory, against tainted writers only.
    let before = std::fs::read(&job).unwrap();
    let status = tainted_write(&tb, &job);
    assert_eq!(status.code(), None, "a tainted append to the protected job was not stopped: {status}");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    assert_eq!(std::fs::read(&job).unwrap(), before, "the protected job changed");
    let other = cron.join("other");
    let status = tainted_write(&tb, &other);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "a tainted create in the protected directory: {status}");
    assert_eq!(std::fs::metadata(&other).map(|m| m.len()).unwrap_or(0), 0, "bytes reached the new file");
    let status = Command::new("sh").arg("-c").arg(format!("echo admin >> '{}'", job.display())).status().unwrap();
    assert!(status.success(), "an untainted write of the protected job failed: {status}");
    let g = sensor.wait_for("prevented writes", |g| g.file(&job.display().to_string()).is_some_and(|f| !g.edges_from("prevented", f["id"].as_str().unwrap()).is_empty()));
    let edge = g.edges_from("prevented", g.file(&job.display().to_string()).unwrap()["id"].as_str().unwrap())[0];
    assert_eq!(edge["attrs"]["action"], "write", "{edge}");
    assert_eq!(edge["attrs"]["by"], "protected path", "{edge}");

    // Scanned: a new copy of the program is flagged by the applied rule.
    let copy = dir.join("copy-of-tool");
    let status = Command::new(&tb).arg("-c").arg(format!("cat /bin/dash > '{}'", copy.display())).status().unwrap();
    assert!(status.success(), "{status}");
    let alert = wait_alert(&sensor, &copy, Duration::from_secs(15));
    assert!(alert["detections"].as_array().unwrap().iter().any(|d| d["names"].as_array().unwrap().iter().any(|n| n == rule_name.as_str())), "{rule_name}: {alert}");

    // A restart enforces them again; the configuration's protected_paths guard too.
    drop(sensor);
    let profile = dir.join("profile");
    std::fs::write(&profile, "export PATH=/usr/bin\n").unwrap();
    let sensor = sensor_with(&dir, &format!("{toml}[response]\nprotected_paths = [\"{}\"]\n", profile.display()));
    assert!(sensor.cli(&["taint", tb.to_str().unwrap()]).status.success());
    assert_eq!(tainted_write(&tb, &job).signal(), Some(libc::SIGKILL), "the applied protection did not survive the restart");
    assert_eq!(tainted_write(&tb, &profile).signal(), Some(libc::SIGKILL), "protected_paths did not guard {}", profile.display());
    assert!(sensor.status()["network"]["blocked_hosts"].as_array().unwrap().iter().any(|h| h == CLIENT4));
    // A document that is not rules is refused whole, naming what was expected.
    std::fs::write(dir.join("bad.json"), r#"{"rules":{"block":[{"target":"not-an-ip","reason":"x"}]}}"#).unwrap();
    let out = sensor.cli(&["apply-rules", dir.join("bad.json").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-an-ip"), "{}", String::from_utf8_lossy(&out.stderr));
}
