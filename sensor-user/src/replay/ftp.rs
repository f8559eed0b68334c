//! FTP control-session state across a capture: working directory, user, outstanding
//! commands (replies answer them in order), data-connection endpoints announced by
//! PORT/EPRT/227/229, and the bytes those data connections carry.
//!
//! A transfer (STOR, APPE, STOU, RETR) is emitted when its final reply arrives: a 2xx
//! emits it with the data bytes counted since the command, a 4xx/5xx drops it (counted in
//! the stats). The uploader is always the control connection's client, whichever side
//! opened the data connection.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sensor_common::proto::ftp::{self, Verb};

use super::{ConnKey, ReplayStats, Transfer};

/// Longest control line buffered while waiting for its end of line.
pub const MAX_LINE: usize = 8192;

#[derive(Debug)]
struct Command {
    verb: Verb,
    arg: String,
    ts_ns: u64,
    /// STOU: the name from `150 FILE: name`.
    server_name: Option<String>,
}

#[derive(Debug, Default)]
struct Session {
    cwd: Option<String>,
    user: Option<String>,
    mode: Option<&'static str>,
    queue: VecDeque<Command>,
    /// Data-connection bytes since the last transfer command.
    data_bytes: u64,
    data_seen: bool,
}

#[derive(Debug, Default)]
pub struct FtpTracker {
    sessions: HashMap<ConnKey, Session>,
    /// Announced data endpoints -> the control connection that announced them.
    endpoints: HashMap<SocketAddr, ConnKey>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `cwd` after `CWD arg` succeeded (None if it cannot be known).
fn change_dir(cwd: Option<&str>, arg: &str) -> Option<String> {
    if arg.starts_with('/') {
        return Some(normalize(arg));
    }
    let base = cwd?;
    Some(normalize(&format!("{}/{}", base.trim_end_matches('/'), arg)))
}

/// Resolves `.` and `..` in an absolute path.
fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The quoted path of a `257 "/dir" is current directory` reply (`""` is an escaped quote).
fn quoted_path(text: &[u8]) -> Option<String> {
    ftp::pwd_reply_path(text).map(|p| lossy(&p))
}

impl FtpTracker {
    /// The control connection a data endpoint belongs to, if one announced it.
    pub fn data_owner(&self, a: SocketAddr, b: SocketAddr) -> Option<ConnKey> {
        self.endpoints.get(&a).or_else(|| self.endpoints.get(&b)).copied()
    }

    /// Counts data-connection bytes for the control session `control`.
    pub fn data(&mut self, control: ConnKey, bytes: u64) {
        if let Some(s) = self.sessions.get_mut(&control) {
            s.data_bytes += bytes;
            s.data_seen = true;
        }
    }

    /// One control line (with or without its line ending).
    pub fn line(&mut self, conn: ConnKey, from_client: bool, ts_ns: u64, line: &[u8], out: &mut Vec<Transfer>, stats: &mut ReplayStats) {
        stats.ftp_lines += 1;
        if from_client {
            self.command(conn, ts_ns, line, stats);
        } else {
            self.reply(conn, line, out, stats);
        }
    }

    fn command(&mut self, conn: ConnKey, ts_ns: u64, line: &[u8], stats: &mut ReplayStats) {
        let Some(req) = ftp::parse_request(line) else {
            stats.parse_errors += 1;
            return;
        };
        let arg = lossy(req.arg);
        let s = self.sessions.entry(conn).or_default();
        match req.verb {
            Verb::Stor | Verb::Appe | Verb::Stou | Verb::Retr => {
                s.data_bytes = 0;
                s.data_seen = false;
            }
            Verb::User => s.user = Some(arg.clone()),
            Verb::Port => {
                if let Some(hp) = ftp::parse_port(req.arg) {
                    let ep = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(hp.addr)), hp.port);
                    self.endpoints.insert(ep, conn);
                    // NAT: the address in PORT may not be the one on the wire.
                    self.endpoints.insert(SocketAddr::new(conn.client.ip(), hp.port), conn);
                    s.mode = Some("active");
                }
            }
            Verb::Eprt => {
                if let Some(e) = ftp::parse_eprt(req.arg) {
                    let ip = std::str::from_utf8(e.addr).ok().and_then(|a| a.parse::<IpAddr>().ok()).unwrap_or(conn.client.ip());
                    self.endpoints.insert(SocketAddr::new(ip, e.port), conn);
                    self.endpoints.insert(SocketAddr::new(conn.client.ip(), e.port), conn);
                    s.mode = Some("active");
                }
            }
            _ => {}
        }
        s.queue.push_back(Command { verb: req.verb, arg, ts_ns, server_name: None });
        // A client that never gets answers must not grow the queue without bound.
        if s.queue.len() > 64 {
            s.queue.pop_front();
        }
    }

    fn reply(&mut self, conn: ConnKey, line: &[u8], out: &mut Vec<Transfer>, stats: &mut ReplayStats) {
        let Some(r) = ftp::parse_reply(line) else { return }; // continuation line
        if !r.last {
            return;
        }
        let Some(s) = self.sessions.get_mut(&conn) else { return };
        if r.is_preliminary() {
            if let (Some(head), Some(n)) = (s.queue.front_mut(), ftp::stou_reply_name(&r))
                && head.verb == Verb::Stou {
                    head.server_name = Some(lossy(n));
                }
            return;
        }
        let Some(cmd) = s.queue.pop_front() else { return };
        let ok = r.is_success();
        match cmd.verb {
            Verb::Stor | Verb::Appe | Verb::Stou | Verb::Retr => {
                if ok {
                    let t = Self::record(conn, s, &cmd, Some(r.code));
                    out.push(t);
                } else {
                    stats.ftp_failed_transfers += 1;
                }
            }
            Verb::Cwd if ok => s.cwd = change_dir(s.cwd.as_deref(), &cmd.arg),
            Verb::Cdup if ok => s.cwd = change_dir(s.cwd.as_deref(), ".."),
            Verb::Pwd if r.code == 257 => {
                if let Some(p) = quoted_path(r.text) {
                    s.cwd = Some(p);
                }
            }
            Verb::Pasv if r.code == 227 => {
                if let Some(hp) = ftp::parse_pasv_reply(r.text) {
                    let ep = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(hp.addr)), hp.port);
                    s.mode = Some("passive");
                    self.endpoints.insert(ep, conn);
                    self.endpoints.insert(SocketAddr::new(conn.server.ip(), hp.port), conn);
                }
            }
            Verb::Epsv if r.code == 229 => {
                if let Some(port) = ftp::parse_epsv_reply(r.text) {
                    s.mode = Some("passive");
                    self.endpoints.insert(SocketAddr::new(conn.server.ip(), port), conn);
                }
            }
            _ => {}
        }
    }

    fn record(conn: ConnKey, s: &Session, cmd: &Command, code: Option<u16>) -> Transfer {
        let dir = if cmd.verb.is_upload() { "upload" } else { "download" };
        let mut t = Transfer::new(cmd.ts_ns, "ftp", dir, cmd.verb.as_str(), conn);
        let name = if cmd.verb == Verb::Stou {
            if !cmd.arg.is_empty() {
                t.requested_name = Some(cmd.arg.clone());
            }
            cmd.server_name.clone().or_else(|| (!cmd.arg.is_empty()).then(|| cmd.arg.clone()))
        } else {
            Some(cmd.arg.clone())
        };
        if let Some(n) = &name {
            t.path = if n.starts_with('/') { Some(normalize(n)) } else { s.cwd.as_deref().and_then(|c| change_dir(Some(c), n)) };
        }
        t.name = name;
        t.cwd = s.cwd.clone();
        t.user = s.user.clone();
        t.data_mode = s.mode;
        t.bytes = s.data_seen.then_some(s.data_bytes);
        t.status = Some(match code {
            Some(c) => c.to_string(),
            None => "unanswered".into(),
        });
        t
    }

    /// End of capture: transfers still waiting for their final reply are emitted as such.
    pub fn finish(&mut self, out: &mut Vec<Transfer>) {
        let mut keys: Vec<ConnKey> = self.sessions.keys().copied().collect();
        keys.sort_by_key(|k| (k.client, k.server));
        for k in keys {
            let Some(s) = self.sessions.get(&k) else { continue };
            for cmd in &s.queue {
                if matches!(cmd.verb, Verb::Stor | Verb::Appe | Verb::Stou | Verb::Retr) {
                    out.push(Self::record(k, s, cmd, None));
                }
            }
        }
        self.sessions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories() {
        assert_eq!(change_dir(None, "/a/b"), Some("/a/b".into()));
        assert_eq!(change_dir(None, "b"), None);
        assert_eq!(change_dir(Some("/a"), "b/../c"), Some("/a/c".into()));
        assert_eq!(change_dir(Some("/"), ".."), Some("/".into()));
        assert_eq!(quoted_path(b"\"/with \"\"quote\"\"\" is current"), Some("/with \"quote\"".into()));
        assert_eq!(quoted_path(b"no quotes"), None);
    }
}
