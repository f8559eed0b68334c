//! ClamAV through clamd's Unix socket (INSTREAM, by `clamav-client`), every call bounded by
//! a timeout: a clamd that hangs delays one scan thread, never the sensor.
use std::{io, os::unix::net::UnixStream, path::PathBuf, time::Duration};

pub struct Clamd {
    socket: PathBuf,
    timeout: Duration,
}

/// `clamav_client`'s transport, with read and write timeouts on the socket.
struct Socket<'a>(&'a Clamd);

impl clamav_client::TransportProtocol for Socket<'_> {
    type Stream = UnixStream;
    fn connect(&self) -> io::Result<UnixStream> {
        let stream = UnixStream::connect(&self.0.socket)?;
        stream.set_read_timeout(Some(self.0.timeout))?;
        stream.set_write_timeout(Some(self.0.timeout))?;
        Ok(stream)
    }
}

/// One scan's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum ClamdAnswer {
    Clean,
    Found(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ClamdError {
    /// clamd is not there or not answering: the file waits for a rescan.
    #[error("clamd at {socket}: {source}")]
    Unavailable { socket: PathBuf, source: io::Error },
    /// clamd answered, with an error about this file (size limit, ...).
    #[error("clamd: {0}")]
    Refused(String),
}

impl Clamd {
    pub fn new(socket: PathBuf, timeout: Duration) -> Self {
        Self { socket, timeout }
    }

    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Is clamd up (PING -> PONG)?
    pub fn ping(&self) -> Result<(), ClamdError> {
        let answer = clamav_client::ping(Socket(self)).map_err(|source| self.unavailable(source))?;
        match answer.as_slice() {
            b"PONG\0" | b"PONG" | b"PONG\n" => Ok(()),
            other => Err(ClamdError::Refused(format!("PING answered {:?}", String::from_utf8_lossy(other)))),
        }
    }

    pub fn scan(&self, data: &[u8]) -> Result<ClamdAnswer, ClamdError> {
        let answer = clamav_client::scan_buffer(data, Socket(self), None).map_err(|source| self.unavailable(source))?;
        parse_answer(&answer)
    }

    fn unavailable(&self, source: io::Error) -> ClamdError {
        ClamdError::Unavailable { socket: self.socket.clone(), source }
    }
}

/// `stream: OK`, `stream: NAME FOUND`, `... ERROR` (NUL- or newline-terminated).
fn parse_answer(raw: &[u8]) -> Result<ClamdAnswer, ClamdError> {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\0', '\n']).trim();
    let body = text.strip_prefix("stream:").unwrap_or(text).trim();
    if body == "OK" {
        Ok(ClamdAnswer::Clean)
    } else if let Some(name) = body.strip_suffix(" FOUND") {
        Ok(ClamdAnswer::Found(name.trim().to_owned()))
    } else {
        Err(ClamdError::Refused(if body.is_empty() { "empty answer".into() } else { body.to_owned() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read() {
        assert_eq!(parse_answer(b"stream: OK\0").unwrap(), ClamdAnswer::Clean);
        assert_eq!(parse_answer(b"stream: Win.Test.EICAR_HDB-1 FOUND\0").unwrap(), ClamdAnswer::Found("Win.Test.EICAR_HDB-1".into()));
        assert!(matches!(parse_answer(b"INSTREAM size limit exceeded. ERROR\0"), Err(ClamdError::Refused(m)) if m.contains("size limit")));
        assert!(matches!(parse_answer(b""), Err(ClamdError::Refused(_))));
    }

    #[test]
    fn a_missing_clamd_is_unavailable_not_clean() {
        let clamd = Clamd::new("/nonexistent/clamd.ctl".into(), Duration::from_millis(100));
        assert!(matches!(clamd.scan(b"x"), Err(ClamdError::Unavailable { .. })));
    }
}
