//! Naming in the sensor (issue 4): a remote IP seen in a transfer is resolved to node ids
//! through the reverse mapping `vtrail-ddns` keeps in DNS. A real BIND 9 on loopback holds
//! the namespace client's id (published with the updater and the client's TSIG key); the
//! real sensor watches the veth and names the uploader by that id. A DNS server that is
//! down costs the name, not the record.
use std::time::{Duration, Instant};

use ddns_updater::harness::{NamedServer, free_port};
use tests::naming::{CLIENT_ID, ZONE, naming_config, publish};
use tests::net::*;
use tests::sensor::{RunningSensor, require_root, serial, temp_dir};

fn remote_ids(sensor: &RunningSensor, ip: &str) -> Vec<String> {
    sensor
        .graph()
        .node(&format!("remote:{ip}"))
        .and_then(|n| n["node_ids"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn wait_status(sensor: &RunningSensor, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = sensor.status();
        if done(&status["naming"]) {
            return status;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: naming {}\nlog:\n{}", status["naming"], sensor.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn upload_from_a_namespace_host_is_recorded_with_its_id() {
    let _guard = serial();
    require_root();
    ensure_packages();
    let _net = Net::up();
    let dir = temp_dir("naming-ok");
    let dns = NamedServer::start(ZONE, &[("client", &[CLIENT_ID])], None).unwrap_or_else(|e| panic!("cannot start BIND: {e}"));
    publish(&dns, "client", &[CLIENT_ID], &[CLIENT4]);
    assert_eq!(dns.dig(&format!("2.0.231.10.ip4.{ZONE}"), "PTR"), [format!("{CLIENT_ID}.{ZONE}.")]);
    let (_smbd, share) = start_samba(&dir);
    let sensor = sensor_with(&dir, &naming_config(&dns.addr().to_string()));

    let out = smb_put(HOST4, "share", "SMB3_11", false, "/usr/bin/dash", "named.bin");
    assert!(out.status.success(), "smbclient put: {}", String::from_utf8_lossy(&out.stderr));
    check_upload(&sensor, &format!("{}/named.bin", share.display()), CLIENT4, Some("named.bin"));
    // The lookup runs in the background: the node gets its id when DNS answers.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !remote_ids(&sensor, CLIENT4).iter().any(|id| id == CLIENT_ID) {
        assert!(Instant::now() < deadline, "remote:{CLIENT4} not named {CLIENT_ID}: status {}\ngraph:\n{}\nlog:\n{}",
            sensor.status()["naming"], sensor.graph().describe(), sensor.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let g = sensor.graph();
    let node = g.node(&format!("remote:{CLIENT4}")).unwrap();
    assert_eq!(node["ip"], CLIENT4, "the graph keeps the IP too: {node}");
    let status = wait_status(&sensor, "one resolution", |n| n["resolved"].as_u64() >= Some(1));
    assert_eq!(status["naming"]["enabled"], true);
    assert_eq!(status["naming"]["failed"], 0, "{}", status["naming"]);

    // A second upload within the TTL is named from the cache, on the edge itself.
    let out = smb_put(HOST4, "share", "SMB3_11", false, "/usr/bin/dash", "named2.bin");
    assert!(out.status.success(), "smbclient put: {}", String::from_utf8_lossy(&out.stderr));
    let path2 = format!("{}/named2.bin", share.display());
    check_upload(&sensor, &path2, CLIENT4, Some("named2.bin"));
    let g = sensor.graph();
    let edge = received_from(&g, &path2).into_iter().find(|e| e["attrs"]["ip"] == CLIENT4).unwrap().clone();
    assert_eq!(edge["attrs"]["node_ids"], serde_json::json!([CLIENT_ID]), "{edge}");
    let status = sensor.status();
    assert!(status["naming"]["cache_hits"].as_u64() >= Some(1), "{}", status["naming"]);
    assert_eq!(status["naming"]["lookups"], 1, "cached: one DNS lookup for the IP: {}", status["naming"]);
}

#[test]
fn dns_server_down_upload_still_recorded_failure_in_status() {
    let _guard = serial();
    require_root();
    ensure_packages();
    let _net = Net::up();
    let dir = temp_dir("naming-down");
    // Nothing listens on this port.
    let port = free_port().unwrap();
    let (_smbd, share) = start_samba(&dir);
    let sensor = sensor_with(&dir, &naming_config(&format!("127.0.0.1:{port}")));

    let out = smb_put(HOST4, "share", "SMB3_11", false, "/usr/bin/dash", "unnamed.bin");
    assert!(out.status.success(), "smbclient put: {}", String::from_utf8_lossy(&out.stderr));
    let path = format!("{}/unnamed.bin", share.display());
    check_upload(&sensor, &path, CLIENT4, Some("unnamed.bin"));
    let status = wait_status(&sensor, "a failed lookup", |n| n["failed"].as_u64() >= Some(1));
    let naming = &status["naming"];
    assert_eq!(naming["enabled"], true);
    assert_eq!(naming["resolved"], 0, "{naming}");
    let err = naming["last_error"].as_str().unwrap_or_default();
    assert!(err.starts_with(&format!("{CLIENT4}: ")), "{naming}");
    assert!(remote_ids(&sensor, CLIENT4).is_empty());
    // A second upload right after: recorded, no new lookup, no second warning.
    let out = smb_put(HOST4, "share", "SMB3_11", false, "/usr/bin/dash", "unnamed2.bin");
    assert!(out.status.success(), "smbclient put: {}", String::from_utf8_lossy(&out.stderr));
    check_upload(&sensor, &format!("{}/unnamed2.bin", share.display()), CLIENT4, Some("unnamed2.bin"));
    let status = sensor.status();
    assert_eq!(status["naming"]["lookups"], 1, "{}", status["naming"]);
    let log = sensor.stop();
    assert_eq!(log.matches(&format!("cannot name remote {CLIENT4}")).count(), 1, "{log}");
}
