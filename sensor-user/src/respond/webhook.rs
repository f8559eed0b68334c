//! `[response] webhook`: every alert POSTed to a URL as its JSON document
//! (`vtrail-alert/1`, `Content-Type: application/json`), for the manager's ticketing or
//! chat. Read from the alerts the database stores, with a cursor of its own, so a receiver
//! that is down or slow delays delivery and loses nothing; a restart carries on where the
//! last sensor stopped. A first start skips the alerts raised before the webhook was
//! configured (`alerts` lists them). One thread, one request at a time, in the order
//! raised; a failure is retried with a backoff (250 ms doubling to 60 s) and counted.
use std::{
    sync::{Arc, Mutex, atomic::{AtomicU64, Ordering}},
    time::Duration,
};

use tracing::{info, warn};

use crate::graph::store::AlertsFeed;

/// One request's time limit (connect, send, answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Alerts read per round.
const ROUND: usize = 16;

#[derive(Debug, Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    pub failures: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

/// Is `url` one the webhook can post to? (Checked when the configuration is read.)
pub fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or("must start with https:// or http://")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("names no host");
    }
    url.parse::<ureq::http::Uri>().map(|_| ()).map_err(|_| "is not a valid URL")
}

/// Starts the delivery thread.
pub fn start(url: String, feed: AlertsFeed) -> std::io::Result<Arc<WebhookStats>> {
    match feed.start_at_the_end_if_new() {
        Ok(0) => {}
        Ok(n) => info!("webhook {url}: first start: the {n} alert(s) raised before it are not sent (`vtrail-sensor alerts` lists them)"),
        Err(e) => warn!("webhook {url}: cannot set its cursor ({e}): the stored alerts will be sent"),
    }
    let stats = Arc::new(WebhookStats::default());
    let s = stats.clone();
    std::thread::Builder::new().name("vtrail-webhook".into()).spawn(move || run(&url, &feed, &s))?;
    Ok(stats)
}

fn run(url: &str, feed: &AlertsFeed, stats: &WebhookStats) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(true)
        .user_agent(concat!("vtrail-sensor/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut backoff = POLL;
    let mut failing = false;
    loop {
        match round(&agent, url, feed) {
            Ok(0) => std::thread::sleep(POLL),
            Ok(n) => {
                stats.delivered.fetch_add(n as u64, Ordering::Relaxed);
                if failing {
                    info!("webhook {url}: alerts are delivered again");
                    failing = false;
                }
                backoff = POLL;
            }
            Err((sent, problem)) => {
                stats.delivered.fetch_add(sent as u64, Ordering::Relaxed);
                stats.failures.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    warn!("webhook {url}: {problem}; the alert is kept and sent again (retried with a backoff up to {} s)", BACKOFF_MAX.as_secs());
                    failing = true;
                }
                if let Ok(mut last) = stats.last_error.lock() {
                    *last = Some(problem);
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Posts what waits, in order; stops at the first failure. Ok(sent) or Err((sent, why)).
fn round(agent: &ureq::Agent, url: &str, feed: &AlertsFeed) -> Result<usize, (usize, String)> {
    let waiting = feed.unpublished(ROUND).map_err(|e| (0, format!("cannot read the alerts: {e}")))?;
    let mut sent = 0;
    for (key, json) in waiting {
        agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(&json[..])
            .map_err(|e| (sent, format!("POST failed: {e}")))?;
        feed.acknowledge(&key).map_err(|e| (sent, format!("cannot record the delivery: {e}")))?;
        sent += 1;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    #[test]
    fn urls() {
        assert!(check_url("https://hooks.example.org/vtrail").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("ftp://x/y").is_err());
        assert!(check_url("https://").is_err());
        assert!(check_url("http:///x").is_err());
    }

    /// One request read off `stream`: (request line, body); answered with `status`.
    fn serve_one(stream: &mut std::net::TcpStream, status: &str) -> (String, String) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
            if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
        (line, String::from_utf8(body).unwrap())
    }

    fn accept_within(listener: &std::net::TcpListener, limit: Duration) -> std::net::TcpStream {
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + limit;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    return stream;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "no POST within {limit:?}");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// A receiver on loopback that fails the first request (500), then takes the rest:
    /// the alert is sent again, each once delivered, in order; older alerts are not sent.
    #[test]
    fn alerts_are_posted_in_order_and_a_failure_is_retried() {
        let dir = crate::graph::store::tests::tempdir();
        let store = crate::graph::GraphStore::open(&dir).unwrap();
        let alert = |n: u64| {
            let mut a: sensor_common::graph::alert::Alert =
                serde_json::from_value(serde_json::json!({"schema": "vtrail-alert/1", "ts_ns": n, "scanned_ns": n, "host": "h", "hostname": "h",
                    "file": {"node": "file:h:1:1", "dev": 1, "ino": n, "size": 1, "sha256": "00"}, "detections": [], "responses": []}))
                    .unwrap();
            store.add_alert(&mut a).unwrap();
        };
        alert(1);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let stats = start(url, store.alerts_reader(crate::graph::store::WEBHOOK_KEY)).unwrap();
        alert(2);
        alert(3);
        let mut seen = Vec::new();
        for status in ["500 Internal Server Error", "200 OK", "204 No Content"] {
            let mut stream = accept_within(&listener, Duration::from_secs(10));
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let (line, body) = serve_one(&mut stream, status);
            assert!(line.starts_with("POST /hook "), "{line}");
            let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
            seen.push(doc["ts_ns"].as_u64().unwrap());
        }
        assert_eq!(seen, vec![2, 2, 3], "the failed alert again, then the next; never the one raised before");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while stats.delivered.load(Ordering::Relaxed) < 2 {
            assert!(std::time::Instant::now() < deadline, "deliveries not counted");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(stats.failures.load(Ordering::Relaxed), 1);
        assert!(stats.last_error.lock().unwrap().as_deref().unwrap().contains("500"));
    }
}
