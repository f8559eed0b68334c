//! FTP control-session state across a capture: working directory, user, outstanding
//! commands (replies answer them in order), data-connection endpoints announced by
//! PORT/EPRT/227/229, and the bytes those data connections carry.
//!
//! A transfer (STOR, APPE, STOU, RETR) is emitted when its final reply arrives: a 2xx
//! emits it with the data bytes counted since the command, a 4xx/5xx drops it (counted in
//! the stats). The uploader is always the control connection's client, whichever side
//! opened the data connection.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sensor_common::proto::ftp::{self, Verb};
use sensor_common::session::ftp::{Fact, FtpSession, Transfer as Command, WorkingDir};

use super::{ConnKey, ReplayStats, Transfer};

pub use sensor_common::proto::ftp::MAX_LINE;

/// One control connection: the shared command/reply state (working directory, queued
/// commands, STOU names; each transfer carries its command's time) and what replay adds.
#[derive(Debug, Default)]
struct Session {
    control: FtpSession<u64>,
    user: Option<String>,
    mode: Option<&'static str>,
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
        let s = self.sessions.entry(conn).or_default();
        let Some(req) = s.control.command(line, |_| ts_ns) else {
            stats.parse_errors += 1;
            return;
        };
        match req.verb {
            Verb::Stor | Verb::Appe | Verb::Stou | Verb::Retr => {
                s.data_bytes = 0;
                s.data_seen = false;
            }
            Verb::User => s.user = Some(lossy(req.arg)),
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
    }

    fn reply(&mut self, conn: ConnKey, line: &[u8], out: &mut Vec<Transfer>, stats: &mut ReplayStats) {
        let Some(s) = self.sessions.get_mut(&conn) else { return };
        match s.control.reply(line) {
            Some(Fact::Finished { transfer, cwd, code }) if (200..300).contains(&code) => out.push(Self::record(conn, s, &transfer, &cwd, Some(code))),
            Some(Fact::Finished { .. }) => stats.ftp_failed_transfers += 1,
            Some(Fact::Answered { verb: Verb::Pasv, code: 227 }) => {
                if let Some(hp) = ftp::parse_reply(line).and_then(|r| ftp::parse_pasv_reply(r.text)) {
                    let ep = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(hp.addr)), hp.port);
                    s.mode = Some("passive");
                    self.endpoints.insert(ep, conn);
                    self.endpoints.insert(SocketAddr::new(conn.server.ip(), hp.port), conn);
                }
            }
            Some(Fact::Answered { verb: Verb::Epsv, code: 229 }) => {
                if let Some(port) = ftp::parse_reply(line).and_then(|r| ftp::parse_epsv_reply(r.text)) {
                    s.mode = Some("passive");
                    self.endpoints.insert(SocketAddr::new(conn.server.ip(), port), conn);
                }
            }
            _ => {}
        }
    }

    fn record(conn: ConnKey, s: &Session, cmd: &Command<u64>, cwd: &WorkingDir, code: Option<u16>) -> Transfer {
        let dir = if cmd.verb.is_upload() { "upload" } else { "download" };
        let mut t = Transfer::new(cmd.payload, "ftp", dir, cmd.verb.as_str(), conn);
        if cmd.verb == Verb::Stou && !cmd.arg.is_empty() {
            t.requested_name = Some(cmd.arg.clone());
        }
        // A STOU without an argument whose replies named nothing: no name is known.
        let name = Some(cmd.name()).filter(|n| cmd.verb != Verb::Stou || !n.is_empty());
        t.path = name.and_then(|n| cwd.resolve(n));
        t.name = name.map(String::from);
        t.cwd = cwd.absolute();
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
            for cmd in s.control.unanswered() {
                out.push(Self::record(k, s, cmd, s.control.cwd(), None));
            }
        }
        self.sessions.clear();
    }
}
