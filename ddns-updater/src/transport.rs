//! One TCP connection to a DNS server (RFC 2136 section 7.8: updates over TCP), framed by
//! hickory-net's `TcpStream`. Messages are exchanged as bytes so that the caller signs
//! and verifies them itself (and can read the TSIG error of an unverifiable reply).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_net::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_net::tcp::TcpStream;
use hickory_net::{BufDnsStreamHandle, DnsStreamHandle};
use hickory_proto::op::SerialMessage;

/// A transport failure; all of these are worth a retry.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("connect to {server}: {source}")]
    Connect {
        server: SocketAddr,
        source: io::Error,
    },
    #[error("connect to {server}: timed out after {after:?}")]
    ConnectTimeout { server: SocketAddr, after: Duration },
    #[error("no reply from {server} within {after:?}")]
    Timeout { server: SocketAddr, after: Duration },
    #[error("connection to {server} closed: {detail}")]
    Closed { server: SocketAddr, detail: String },
}

impl TransportError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::ConnectTimeout { .. } | Self::Timeout { .. })
    }
}

/// A connected DNS-over-TCP stream.
pub struct Conn {
    stream: TcpStream<AsyncIoTokioAsStd<tokio::net::TcpStream>>,
    handle: BufDnsStreamHandle,
    server: SocketAddr,
}

impl Conn {
    pub async fn connect(server: SocketAddr, timeout: Duration) -> Result<Self, TransportError> {
        let tcp = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(server)).await
        {
            Err(_) => {
                return Err(TransportError::ConnectTimeout {
                    server,
                    after: timeout,
                });
            }
            Ok(Err(source)) => return Err(TransportError::Connect { server, source }),
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        let (stream, handle) = TcpStream::from_stream(AsyncIoTokioAsStd(tcp), server);
        Ok(Self {
            stream,
            handle,
            server,
        })
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Sends one message and returns the next message received, whose ID must be `id`.
    pub async fn exchange(
        &mut self,
        message: Vec<u8>,
        id: u16,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransportError> {
        let server = self.server;
        self.handle
            .send(SerialMessage::new(message, server))
            .map_err(|e| TransportError::Closed {
                server,
                detail: e.to_string(),
            })?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await;
            match next {
                Err(_) => {
                    return Err(TransportError::Timeout {
                        server,
                        after: timeout,
                    });
                }
                Ok(None) => {
                    return Err(TransportError::Closed {
                        server,
                        detail: "closed by the server".into(),
                    });
                }
                Ok(Some(Err(e))) => {
                    return Err(TransportError::Closed {
                        server,
                        detail: e.to_string(),
                    });
                }
                Ok(Some(Ok(msg))) => {
                    let bytes = msg.into_parts().0;
                    if bytes.len() >= 2 && u16::from_be_bytes([bytes[0], bytes[1]]) == id {
                        return Ok(bytes);
                    }
                    // a late reply to an earlier, timed out request: skip it
                }
            }
        }
    }
}
