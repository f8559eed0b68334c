//! Naming for the tests: a BIND zone that holds the namespace client's node id, published
//! as `vtrail-ddns update --once` does (the updater library and the client's TSIG key).
use std::net::IpAddr;

use ddns_updater::{
    harness::NamedServer,
    keyfile::load_key_file,
    names::parse_zone,
    update::{UpdateConfig, Updater},
};

pub const ZONE: &str = "nodes.test";
/// The namespace client's node id.
pub const CLIENT_ID: &str = "disk-vtnet-client1";

/// Publishes `ids` at `addrs` with `key`'s TSIG key.
pub fn publish(s: &NamedServer, key: &str, ids: &[&str], addrs: &[&str]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tsig = load_key_file(&s.key_path(key), None).unwrap();
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let addrs: Vec<IpAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
    rt.block_on(async {
        Updater::new(UpdateConfig::new(s.addr(), parse_zone(ZONE).unwrap(), tsig))
            .unwrap()
            .publish(&ids, &addrs)
            .await
            .unwrap_or_else(|e| panic!("publish {ids:?}: {e}"))
    });
}

/// The sensor's configuration lines that name remote IPs through `server`.
pub fn naming_config(server: &str) -> String {
    format!("dns_server = \"{server}\"\ndns_zones = [\"{ZONE}\"]\n")
}

/// A DNS forwarder on loopback that answers each query `delay` late (UDP; one thread per
/// query, for at most `lifetime`): a name server slower than a scan, so an alert has to
/// wait for the sender's ids.
pub fn slow_dns(upstream: std::net::SocketAddr, delay: std::time::Duration, lifetime: std::time::Duration) -> std::net::SocketAddr {
    use std::{net::UdpSocket, time::Instant};
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
    std::thread::spawn(move || {
        let end = Instant::now() + lifetime;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            let Ok((n, client)) = socket.recv_from(&mut buf) else { continue };
            let (query, reply_to) = (buf[..n].to_vec(), socket.try_clone().unwrap());
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let up = UdpSocket::bind("127.0.0.1:0").unwrap();
                up.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
                let mut answer = [0u8; 4096];
                if up.send_to(&query, upstream).is_ok()
                    && let Ok(n) = up.recv(&mut answer)
                {
                    let _ = reply_to.send_to(&answer[..n], client);
                }
            });
        }
    });
    addr
}
