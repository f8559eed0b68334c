//! The fleet's real peers, started privately by each test: a PostgreSQL cluster in a temp
//! directory (run as the unprivileged `postgres` user, TCP on loopback only) and a
//! nats-server with JetStream storing under the test's directory.
pub mod nats;
pub mod postgres;

use std::{
    net::{Ipv4Addr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("bind a loopback port").port()
}

/// Waits (at most `limit`) until something accepts on 127.0.0.1:`port`.
pub fn wait_port(port: u16, limit: Duration, what: &str) {
    wait_port_on(Ipv4Addr::LOCALHOST, port, limit, what)
}

/// Waits until something accepts TCP connections on `host:port`.
pub fn wait_port_on(host: Ipv4Addr, port: u16, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect_timeout(&(host, port).into(), Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {host}:{port} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
