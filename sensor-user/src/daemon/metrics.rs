//! The metrics endpoint (`metrics_listen`, off by default): `GET /metrics` answers the
//! Prometheus text of the daemon's status, asked of the event loop like any `status`
//! call, so a scrape and `vtrail-sensor status` read the same counters.
//!
//! Requests are parsed with `httparse`; each connection is bounded in time and size and
//! at most `MAX_CONNECTIONS` are served at once, so a scanner on the port cannot stall it.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use tracing::{info, warn};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc, oneshot},
};

use super::Call;
use crate::control::{Request, metrics, status::Status};

const MAX_CONNECTIONS: usize = 8;
const MAX_REQUEST_BYTES: usize = 8192;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` (a loopback address: `Config::validate` refuses others) and serves it in
/// the background.
pub async fn start(addr: SocketAddr, calls: mpsc::Sender<Call>) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen for metrics on {addr} (metrics_listen)"))?;
    let bound = listener.local_addr()?;
    info!("metrics: serving http://{bound}/metrics");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                drop(stream); // busy: refused rather than queued without bound
                continue;
            };
            let calls = calls.clone();
            tokio::spawn(async move {
                if tokio::time::timeout(REQUEST_TIMEOUT, serve(stream, calls)).await.is_err() {
                    warn!("metrics: a client took longer than {REQUEST_TIMEOUT:?}; closed");
                }
                drop(slot);
            });
        }
    });
    Ok(bound)
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    BadMethod,
}

/// The route of a complete request head, `None` while it is incomplete, `Err` when it is
/// not HTTP.
fn route(head: &[u8]) -> Result<Option<Route>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head)? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(_) => Ok(Some(match (req.method, req.path.map(|p| p.split('?').next().unwrap_or(p))) {
            (Some("GET"), Some("/metrics")) => Route::Metrics,
            (Some("GET"), _) => Route::NotFound,
            _ => Route::BadMethod,
        })),
    }
}

async fn serve(mut stream: TcpStream, calls: mpsc::Sender<Call>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let route = loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        head.extend_from_slice(&buf[..n]);
        match route(&head) {
            Ok(Some(r)) => break r,
            Ok(None) if head.len() < MAX_REQUEST_BYTES => continue,
            _ => {
                let _ = stream.write_all(&response("400 Bad Request", "text/plain", b"bad request\n")).await;
                return;
            }
        }
    };
    let answer = match route {
        Route::Metrics => match ask_status(&calls).await {
            Ok(status) => response("200 OK", metrics::CONTENT_TYPE, metrics::render(&status).as_bytes()),
            Err(e) => response("503 Service Unavailable", "text/plain", format!("{e:#}\n").as_bytes()),
        },
        Route::NotFound => response("404 Not Found", "text/plain", b"try /metrics\n"),
        Route::BadMethod => response("405 Method Not Allowed", "text/plain", b"GET /metrics\n"),
    };
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
}

async fn ask_status(calls: &mpsc::Sender<Call>) -> Result<Status> {
    let (reply, answer) = oneshot::channel();
    calls.send(Call { request: Request::Status, reply }).await.map_err(|_| anyhow::anyhow!("the sensor is stopping"))?;
    let bytes = answer.await.context("the sensor did not answer")?;
    serde_json::from_slice(&bytes).context("status did not decode")
}

fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_a_whole_head_and_only_metrics_is_served() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap(), Some(Route::Metrics));
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").unwrap(), Some(Route::Metrics));
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n").unwrap(), Some(Route::NotFound));
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n").unwrap(), Some(Route::BadMethod));
        assert!(route(b"\x16\x03\x01 not http\r\n\r\n").is_err());
    }
}
