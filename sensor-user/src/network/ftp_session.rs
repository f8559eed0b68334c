//! One FTP control connection as the server reads it, for live attribution: the client's
//! commands are queued in order and each final reply answers the oldest (RFC 959 4.2), so
//! pipelined commands, refusals and working-directory changes line up as the server saw
//! them. A transfer (STOR, APPE, STOU, RETR) counts as started on its `1xx` preliminary
//! reply and as refused on a `4xx`/`5xx` before one. Working-directory changes take effect
//! on their own success reply, so a STOR pipelined behind a failed CWD is resolved in the
//! directory the server really used.
//!
//! Lines come whole from `ftp_stream::LineStream` (both directions). The TC program sends
//! every control segment of the connection; the arguments of commands vtrail does not
//! follow (PASS among them) are never kept.
use std::collections::VecDeque;

use sensor_common::proto::ftp::{self, Verb};

use super::ftp_stream::LineStream;

/// Commands waiting for their reply, at most (a client pipelines a handful).
const MAX_QUEUE: usize = 64;

#[derive(Debug)]
enum Queued<T> {
    Cwd(String),
    Cdup,
    Pwd,
    Transfer { verb: Verb, arg: String, payload: T, started: bool },
    Other,
}

/// What a reply settled.
#[derive(Debug, PartialEq)]
pub enum Settled<T> {
    /// The server began the transfer: `cwd` is the working directory the server used,
    /// `stou_name` the name a STOU got (`150 FILE: name`).
    Started { verb: Verb, arg: String, cwd: String, stou_name: Option<String>, payload: T },
    /// The server refused it (4xx/5xx before any 1xx): nothing moved.
    Refused { verb: Verb, arg: String },
}

#[derive(Debug)]
pub struct FtpSession<T> {
    pub commands: LineStream,
    pub replies: LineStream,
    cwd: String,
    queue: VecDeque<Queued<T>>,
    /// The code of a multi-line reply (`NNN-`) until its last line (`NNN `).
    multi: Option<u16>,
    /// Commands forgotten because the queue was full (a client that never reads replies).
    pub overflow: u64,
}

impl<T> Default for FtpSession<T> {
    fn default() -> Self {
        Self { commands: LineStream::default(), replies: LineStream::default(), cwd: String::new(), queue: VecDeque::new(), multi: None, overflow: 0 }
    }
}

/// `cwd` + `name` as the server resolves it: absolute names replace it, `.` and `..` are
/// applied; no leading slash (a path on disk must end with it).
pub fn join(cwd: &str, name: &str) -> String {
    let full = if name.starts_with('/') { name.to_string() } else { format!("{cwd}/{name}") };
    let mut parts: Vec<&str> = Vec::new();
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl<T> FtpSession<T> {
    /// The working directory as the server last confirmed it ("" = where the login put it).
    pub fn cwd(&self) -> &str {
        &self.cwd
    }

    /// A whole command line; `payload` is made for transfer commands (from the verb and
    /// argument) and comes back with their outcome.
    pub fn command(&mut self, line: &[u8], payload: impl FnOnce(Verb, &str) -> T) {
        let Some(req) = ftp::parse_request(line) else { return };
        let arg = || String::from_utf8_lossy(req.arg).into_owned();
        let queued = match req.verb {
            Verb::Cwd => Queued::Cwd(arg()),
            Verb::Cdup => Queued::Cdup,
            Verb::Pwd => Queued::Pwd,
            v if v.is_upload() || v == Verb::Retr => {
                let arg = arg();
                let payload = payload(v, &arg);
                Queued::Transfer { verb: v, arg, payload, started: false }
            }
            _ => Queued::Other,
        };
        if self.queue.len() >= MAX_QUEUE {
            self.queue.pop_front();
            self.overflow += 1;
        }
        self.queue.push_back(queued);
    }

    /// A whole reply line; what it settled, if anything.
    pub fn reply(&mut self, line: &[u8]) -> Option<Settled<T>>
    where
        T: Clone,
    {
        let reply = ftp::parse_reply(line);
        if let Some(code) = self.multi {
            // Inside a multi-line reply only its last line ("NNN ") counts.
            match reply {
                Some(r) if r.code == code && r.last => self.multi = None,
                _ => return None,
            }
        }
        let r = reply?;
        if !r.last {
            self.multi = Some(r.code);
            return None;
        }
        if r.is_preliminary() {
            if let Some(Queued::Transfer { verb, arg, payload, started }) = self.queue.front_mut()
                && !*started
            {
                *started = true;
                let stou_name = ftp::stou_reply_name(&r).map(|n| String::from_utf8_lossy(n).into_owned());
                return Some(Settled::Started { verb: *verb, arg: arg.clone(), cwd: self.cwd.clone(), stou_name, payload: payload.clone() });
            }
            return None;
        }
        // A final reply answers the oldest command (none: the greeting, or a 421).
        match self.queue.pop_front()? {
            Queued::Cwd(dir) if r.is_success() => self.cwd = join(&self.cwd, &dir),
            Queued::Cdup if r.is_success() => self.cwd = join(&self.cwd, ".."),
            Queued::Pwd if r.code == 257 => {
                if let Some(p) = ftp::pwd_reply_path(r.text) {
                    self.cwd = join("", &String::from_utf8_lossy(&p));
                }
            }
            Queued::Transfer { verb, arg, started: false, .. } if r.is_failure() => return Some(Settled::Refused { verb, arg }),
            // Done without a preliminary reply (some servers): it happened all the same.
            Queued::Transfer { verb, arg, payload, started: false } if r.is_success() => {
                return Some(Settled::Started { verb, arg, cwd: self.cwd.clone(), stou_name: None, payload });
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> FtpSession<u32> {
        FtpSession::default()
    }

    #[test]
    fn pipelined_commands_are_answered_in_order() {
        let mut s = session();
        // A failed CWD before a STOR: the STOR is stored where the server stayed.
        s.command(b"CWD missing\r\n", |_, _| 0);
        s.command(b"STOR x.bin\r\n", |_, _| 7);
        assert_eq!(s.reply(b"550 Failed to change directory.\r\n"), None);
        let started = s.reply(b"150 Ok to send data.\r\n");
        assert_eq!(
            started,
            Some(Settled::Started { verb: Verb::Stor, arg: "x.bin".into(), cwd: String::new(), stou_name: None, payload: 7 })
        );
        assert_eq!(s.reply(b"226 Transfer complete.\r\n"), None);
        // Two RETRs: the first refused, the second served.
        s.command(b"RETR a\r\n", |_, _| 1);
        s.command(b"RETR b\r\n", |_, _| 2);
        assert_eq!(s.reply(b"550 Failed to open file.\r\n"), Some(Settled::Refused { verb: Verb::Retr, arg: "a".into() }));
        assert!(matches!(s.reply(b"150 Opening\r\n"), Some(Settled::Started { payload: 2, .. })));
    }

    #[test]
    fn working_directory_follows_the_replies() {
        let mut s = session();
        assert_eq!(s.reply(b"220 (vsFTPd 3.0.3)\r\n"), None, "the greeting answers nothing");
        s.command(b"CWD incoming\r\n", |_, _| 0);
        s.command(b"CWD sub\r\n", |_, _| 0);
        s.reply(b"250 Directory successfully changed.\r\n");
        s.reply(b"250 Directory successfully changed.\r\n");
        assert_eq!(s.cwd(), "incoming/sub");
        s.command(b"CDUP\r\n", |_, _| 0);
        s.reply(b"250 ok\r\n");
        assert_eq!(s.cwd(), "incoming");
        s.command(b"PWD\r\n", |_, _| 0);
        s.reply(b"257 \"/srv/with \"\"quote\"\"\" is the current directory\r\n");
        assert_eq!(s.cwd(), "srv/with \"quote\"");
        // A multi-line reply counts once, at its last line.
        s.command(b"STOU\r\n", |_, _| 5);
        s.command(b"NOOP\r\n", |_, _| 0);
        assert_eq!(s.reply(b"150-FILE: up.1\r\n"), None);
        assert_eq!(s.reply(b" still the same reply\r\n"), None);
        assert!(matches!(s.reply(b"150 FILE: up.1\r\n"), Some(Settled::Started { verb: Verb::Stou, stou_name: Some(ref n), .. }) if n == "up.1"));
        assert_eq!(s.reply(b"226 done\r\n"), None);
        assert_eq!(s.reply(b"200 NOOP ok\r\n"), None);
        assert_eq!(s.queue.len(), 0);
    }

    #[test]
    fn a_client_that_never_reads_is_bounded() {
        let mut s = session();
        for _ in 0..1000 {
            s.command(b"NOOP\r\n", |_, _| 0);
        }
        assert_eq!(s.queue.len(), MAX_QUEUE);
        assert_eq!(s.overflow, 1000 - MAX_QUEUE as u64);
    }
}
