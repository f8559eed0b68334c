//! The metrics endpoint of a real sensor: scraped over HTTP on loopback, its counters
//! move with a tainted workload and agree with `status` (one set of counters).
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    time::Duration,
};

use tests::sensor::{RunningSensor, serial, temp_dir, workspace_bin};

/// `GET path` on `addr`: (status line, body).
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("metrics on {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP head: {answer:?}"));
    (head.lines().next().unwrap_or("").to_owned(), body.to_owned())
}

/// The value of the sample `series` (name and labels, as written) in a scrape.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

#[test]
fn scraped_counters_move_with_a_workload_and_agree_with_status() {
    let _guard = serial();
    let dir = temp_dir("metrics");
    // A free loopback port, released for the sensor to take.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let sensor = RunningSensor::start(&dir, &format!("network_monitoring = false\nmetrics_listen = \"{addr}\""));

    let (status_line, body) = get(&addr, "/metrics");
    assert_eq!(status_line, "HTTP/1.1 200 OK", "{body}");
    for family in ["vtrail_events_total", "vtrail_kernel_drops_total", "vtrail_ring_buffer_used_bytes", "vtrail_kernel_map_entries", "vtrail_database_size_bytes"] {
        assert!(body.contains(&format!("# TYPE {family} ")), "{family} missing:\n{body}");
    }
    let before = sample(&body, "vtrail_events_total{kind=\"create\"}").unwrap_or(0.0);

    let tainted = dir.join("tainted-workload");
    std::fs::copy(workspace_bin("vtrail-workload"), &tainted).unwrap();
    let out = sensor.cli(&["taint", tainted.to_str().unwrap()]);
    assert!(out.status.success(), "taint: {}", String::from_utf8_lossy(&out.stderr));
    let files = dir.join("files");
    std::fs::create_dir(&files).unwrap();
    const N: f64 = 300.0;
    let out = std::process::Command::new(&tainted).args(["creates", "300"]).arg(&files).output().unwrap();
    assert!(out.status.success(), "workload: {}", String::from_utf8_lossy(&out.stderr));

    // Every create delivered or counted dropped, then one scrape and one status.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (_, body) = get(&addr, "/metrics");
        let seen = sample(&body, "vtrail_events_total{kind=\"create\"}").unwrap_or(0.0)
            + sample(&body, "vtrail_kernel_drops_total{reason=\"ringbuf_full\",kind=\"create\"}").unwrap_or(0.0);
        if seen >= before + N {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "the scrape never showed the {N} creates:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = sensor.status();
    let scraped = sample(&body, "vtrail_events_total{kind=\"create\"}").unwrap();
    assert_eq!(scraped, status["events_received"]["create"].as_f64().unwrap(), "metrics and status disagree");
    // The map walk behind this gauge is done at most once a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let untrusted = sample(&get(&addr, "/metrics").1, "vtrail_kernel_untrusted_inodes").unwrap();
        if untrusted >= N {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the kernel holds the {N} new files untrusted: {untrusted}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let db = sample(&body, "vtrail_database_records{tree=\"untrusted_files\"}").unwrap();
    assert!(db >= N, "the graph holds them: {db}");

    assert_eq!(get(&addr, "/").0, "HTTP/1.1 404 Not Found");
    // Not HTTP: refused, and the endpoint still answers.
    let mut junk = TcpStream::connect(&addr).unwrap();
    junk.write_all(&[0x16, 0x03, 0x01, 0x00, 0xff, b'\r', b'\n', b'\r', b'\n']).unwrap();
    let mut answer = String::new();
    let _ = junk.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert_eq!(get(&addr, "/metrics").0, "HTTP/1.1 200 OK");
    let log = sensor.stop();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("entry by entry"), "the maps are read in batches on this kernel: {log}");
}
