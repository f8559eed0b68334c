//! One FTP control connection as the server reads it (RFC 959 4.2): the client's commands
//! are queued in order and each final reply answers the oldest, so pipelined commands,
//! refusals and working-directory changes line up as the server saw them.
//!
//! - The working directory changes on the success reply of its CWD/CDUP, or to the path a
//!   `257` reply quotes (`""` inside the quotes is one `"`), so a STOR pipelined behind a
//!   failed CWD is resolved in the directory the server really used.
//! - A transfer (STOR, APPE, STOU, RETR) reports [`Fact::Started`] on its first `1xx` and
//!   [`Fact::Finished`] on its final reply; STOU's name is the one the server chose
//!   (`150 FILE: name`, `125 FILE: name`, or RFC 959's `250 FILE: name`).
//! - Inside a multi-line reply (`NNN-` ... `NNN `) only its last line counts.
//!
//! Live attribution acts when data begins to move ([`Fact::began`]); replay when the
//! final reply says how it ended. Both read the same [`Transfer`] and [`WorkingDir`].
use std::{collections::VecDeque, string::String, vec::Vec};

use crate::proto::ftp::{self, Request, Verb};

/// Commands waiting for their reply, at most (a client pipelines a handful).
pub const MAX_QUEUE: usize = 64;

/// `cwd` + `name` as the server resolves it: absolute names replace it, `.` and `..` are
/// applied; no leading slash (a path on disk must end with it).
pub fn join(cwd: &str, name: &str) -> String {
    let full = if name.starts_with('/') { name.into() } else { std::format!("{cwd}/{name}") };
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

/// The working directory as the server last confirmed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkingDir {
    /// Components joined with `/`, no leading slash, `.` and `..` applied.
    path: String,
    /// Known from the root (an absolute CWD, a `257` reply); otherwise relative to the
    /// directory the login put the client in, which the wire does not show.
    rooted: bool,
}

impl WorkingDir {
    /// The path without a leading slash ("" = the login directory, or the root if rooted).
    pub fn relative(&self) -> &str {
        &self.path
    }

    /// `/`-rooted path, if known.
    pub fn absolute(&self) -> Option<String> {
        self.rooted.then(|| std::format!("/{}", self.path))
    }

    /// Where `name` lands, without a leading slash: what a disk path must end with.
    pub fn join(&self, name: &str) -> String {
        join(&self.path, name)
    }

    /// The `/`-rooted path of `name`, if it can be known (`name` is absolute or this is rooted).
    pub fn resolve(&self, name: &str) -> Option<String> {
        (name.starts_with('/') || self.rooted).then(|| std::format!("/{}", self.join(name)))
    }

    fn change(&mut self, dir: &str) {
        self.rooted |= dir.starts_with('/');
        self.path = self.join(dir);
    }
}

/// A transfer command and what its replies told so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Transfer<T> {
    pub verb: Verb,
    /// The argument as sent (UTF-8, lossy); STOU may have none.
    pub arg: String,
    /// STOU: the name the server chose.
    pub stou_name: Option<String>,
    /// A `1xx` reply came: the server opened the data connection.
    pub started: bool,
    /// What the caller attached to the command (see [`FtpSession::command`]).
    pub payload: T,
}

impl<T> Transfer<T> {
    /// The name the file goes by: STOU's server-chosen name, else the argument.
    pub fn name(&self) -> &str {
        self.stou_name.as_deref().unwrap_or(&self.arg)
    }
}

/// What one reply line settled.
#[derive(Clone, Debug, PartialEq)]
pub enum Fact<T> {
    /// A CWD, CDUP or PWD reply set the working directory to this.
    Cwd(WorkingDir),
    /// A transfer's first `1xx`: data moves now, in directory `cwd`.
    Started { transfer: Transfer<T>, cwd: WorkingDir },
    /// A transfer's final reply, `code`.
    Finished { transfer: Transfer<T>, cwd: WorkingDir, code: u16 },
    /// The final reply to any other command (e.g. PASV's `227`, which names the data
    /// endpoint: the caller reads it from the line).
    Answered { verb: Verb, code: u16 },
}

impl<T> Fact<T> {
    /// The transfer whose data began to move: its first `1xx`, or a `2xx` that came
    /// without one (some servers skip it).
    pub fn began(&self) -> Option<(&Transfer<T>, &WorkingDir)> {
        match self {
            Fact::Started { transfer, cwd } => Some((transfer, cwd)),
            Fact::Finished { transfer, cwd, code } if !transfer.started && (200..300).contains(code) => Some((transfer, cwd)),
            _ => None,
        }
    }

    /// The transfer the server refused: a `4xx`/`5xx` before any `1xx`, nothing moved.
    pub fn refused(&self) -> Option<&Transfer<T>> {
        match self {
            Fact::Finished { transfer, code, .. } if !transfer.started && *code >= 400 => Some(transfer),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Queued<T> {
    Cwd(String),
    Cdup,
    Pwd,
    Transfer(Transfer<T>),
    Other(Verb),
}

#[derive(Debug)]
pub struct FtpSession<T> {
    cwd: WorkingDir,
    queue: VecDeque<Queued<T>>,
    /// The code of a multi-line reply (`NNN-`) until its last line (`NNN `).
    multi: Option<u16>,
    /// Commands forgotten because the queue was full (a client that never reads replies).
    pub overflow: u64,
}

impl<T> Default for FtpSession<T> {
    fn default() -> Self {
        Self { cwd: WorkingDir::default(), queue: VecDeque::new(), multi: None, overflow: 0 }
    }
}

impl<T: Clone> FtpSession<T> {
    /// The working directory as the server last confirmed it.
    pub fn cwd(&self) -> &WorkingDir {
        &self.cwd
    }

    /// A whole command line. `payload` is called for transfer commands only and comes back
    /// with their facts. Returns the parsed command (`None`: not a command line).
    pub fn command<'l>(&mut self, line: &'l [u8], payload: impl FnOnce(&Request<'l>) -> T) -> Option<Request<'l>> {
        let req = ftp::parse_request(line)?;
        let arg = || String::from_utf8_lossy(req.arg).into_owned();
        let queued = match req.verb {
            Verb::Cwd => Queued::Cwd(arg()),
            Verb::Cdup => Queued::Cdup,
            Verb::Pwd => Queued::Pwd,
            v if v.is_upload() || v.is_download() => {
                Queued::Transfer(Transfer { verb: v, arg: arg(), stou_name: None, started: false, payload: payload(&req) })
            }
            v => Queued::Other(v),
        };
        if self.queue.len() >= MAX_QUEUE {
            self.queue.pop_front();
            self.overflow += 1;
        }
        self.queue.push_back(queued);
        Some(req)
    }

    /// A whole reply line; what it settled, if anything.
    pub fn reply(&mut self, line: &[u8]) -> Option<Fact<T>> {
        let reply = ftp::parse_reply(line);
        if let Some(code) = self.multi {
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
            let Some(Queued::Transfer(t)) = self.queue.front_mut() else { return None };
            t.take_stou_name(&r);
            if t.started {
                return None;
            }
            t.started = true;
            return Some(Fact::Started { transfer: t.clone(), cwd: self.cwd.clone() });
        }
        // A final reply answers the oldest command (none: the greeting, or a 421).
        let answered = match self.queue.pop_front()? {
            Queued::Cwd(dir) if r.is_success() => {
                self.cwd.change(&dir);
                return Some(Fact::Cwd(self.cwd.clone()));
            }
            Queued::Cdup if r.is_success() => {
                self.cwd.change("..");
                return Some(Fact::Cwd(self.cwd.clone()));
            }
            Queued::Pwd if r.code == 257 => match ftp::pwd_reply_path(r.text) {
                Some(p) => {
                    self.cwd = WorkingDir::default();
                    self.cwd.change(&String::from_utf8_lossy(&p));
                    return Some(Fact::Cwd(self.cwd.clone()));
                }
                None => Verb::Pwd,
            },
            Queued::Transfer(mut t) => {
                t.take_stou_name(&r);
                return Some(Fact::Finished { transfer: t, cwd: self.cwd.clone(), code: r.code });
            }
            Queued::Cwd(_) => Verb::Cwd,
            Queued::Cdup => Verb::Cdup,
            Queued::Pwd => Verb::Pwd,
            Queued::Other(v) => v,
        };
        Some(Fact::Answered { verb: answered, code: r.code })
    }

    /// Transfers still waiting for their final reply, oldest first (a capture that ends
    /// mid-transfer).
    pub fn unanswered(&self) -> impl Iterator<Item = &Transfer<T>> {
        self.queue.iter().filter_map(|q| match q {
            Queued::Transfer(t) => Some(t),
            _ => None,
        })
    }
}

impl<T> Transfer<T> {
    /// STOU: the first name a reply gives.
    fn take_stou_name(&mut self, r: &ftp::Reply<'_>) {
        if self.verb == Verb::Stou && self.stou_name.is_none() {
            self.stou_name = ftp::stou_reply_name(r).map(|n| String::from_utf8_lossy(n).into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn session() -> FtpSession<u32> {
        FtpSession::default()
    }

    /// The facts of `lines` (`>` a command with its payload, `<` a reply).
    fn run(s: &mut FtpSession<u32>, lines: &[(&str, u32)]) -> Vec<Fact<u32>> {
        let mut facts = Vec::new();
        for (line, payload) in lines {
            match line.split_at(2) {
                ("> ", cmd) => {
                    s.command(cmd.as_bytes(), |_| *payload);
                }
                ("< ", reply) => facts.extend(s.reply(reply.as_bytes())),
                _ => panic!("bad test line {line}"),
            }
        }
        facts
    }

    fn transfer(verb: Verb, arg: &str, stou_name: Option<&str>, started: bool, payload: u32) -> Transfer<u32> {
        Transfer { verb, arg: arg.into(), stou_name: stou_name.map(String::from), started, payload }
    }

    #[test]
    fn pipelined_commands_are_answered_in_order() {
        let mut s = session();
        // A failed CWD before a STOR: the STOR is stored where the server stayed.
        s.command(b"CWD missing\r\n", |_| 0);
        s.command(b"STOR x.bin\r\n", |_| 7);
        assert_eq!(s.reply(b"550 Failed to change directory.\r\n"), Some(Fact::Answered { verb: Verb::Cwd, code: 550 }));
        let started = s.reply(b"150 Ok to send data.\r\n");
        let stor = transfer(Verb::Stor, "x.bin", None, true, 7);
        assert_eq!(started, Some(Fact::Started { transfer: stor.clone(), cwd: WorkingDir::default() }));
        let done = s.reply(b"226 Transfer complete.\r\n").unwrap();
        assert_eq!(done, Fact::Finished { transfer: stor, cwd: WorkingDir::default(), code: 226 });
        assert!(done.began().is_none(), "began at its 150");
        // Two RETRs: the first refused, the second served.
        s.command(b"RETR a\r\n", |_| 1);
        s.command(b"RETR b\r\n", |_| 2);
        let refused = s.reply(b"550 Failed to open file.\r\n").unwrap();
        assert_eq!(refused.refused(), Some(&transfer(Verb::Retr, "a", None, false, 1)));
        assert!(refused.began().is_none());
        let served = s.reply(b"150 Opening\r\n").unwrap();
        assert!(matches!(served.began(), Some((Transfer { payload: 2, .. }, _))));
        assert!(served.refused().is_none());
        // A failure after the 150: the data moved, it is not a refusal.
        let cut = s.reply(b"451 Transfer aborted\r\n").unwrap();
        assert!(cut.refused().is_none() && cut.began().is_none());
        // Done without a preliminary reply (some servers): it happened all the same.
        s.command(b"APPE log\r\n", |_| 3);
        let done = s.reply(b"226 ok\r\n").unwrap();
        assert!(matches!(done.began(), Some((Transfer { verb: Verb::Appe, payload: 3, .. }, _))));
    }

    #[test]
    fn working_directory_follows_the_replies() {
        let mut s = session();
        assert_eq!(s.reply(b"220 (vsFTPd 3.0.3)\r\n"), None, "the greeting answers nothing");
        s.command(b"CWD incoming\r\n", |_| 0);
        s.command(b"CWD sub\r\n", |_| 0);
        s.reply(b"250 Directory successfully changed.\r\n");
        s.reply(b"250 Directory successfully changed.\r\n");
        assert_eq!(s.cwd().relative(), "incoming/sub");
        assert_eq!(s.cwd().absolute(), None, "relative to the login directory");
        s.command(b"CDUP\r\n", |_| 0);
        s.reply(b"250 ok\r\n");
        assert_eq!(s.cwd().relative(), "incoming");
        s.command(b"PWD\r\n", |_| 0);
        s.reply(b"257 \"/srv/with \"\"quote\"\"\" is the current directory\r\n");
        assert_eq!(s.cwd().relative(), "srv/with \"quote\"");
        // A multi-line reply counts once, at its last line.
        s.command(b"STOU\r\n", |_| 5);
        s.command(b"NOOP\r\n", |_| 0);
        assert_eq!(s.reply(b"150-FILE: up.1\r\n"), None);
        assert_eq!(s.reply(b" still the same reply\r\n"), None);
        assert!(matches!(s.reply(b"150 FILE: up.1\r\n"), Some(Fact::Started { transfer: Transfer { verb: Verb::Stou, stou_name: Some(ref n), .. }, .. }) if n == "up.1"));
        assert!(matches!(s.reply(b"226 done\r\n"), Some(Fact::Finished { code: 226, .. })));
        assert_eq!(s.reply(b"200 NOOP ok\r\n"), Some(Fact::Answered { verb: Verb::Other, code: 200 }));
        assert_eq!(s.queue.len(), 0);
    }

    #[test]
    fn a_257_reply_reads_doubled_quotes_as_one() {
        let mut s = session();
        let facts = run(&mut s, &[("> PWD", 0), ("< 257 \"/a \"\"b\"\"\" is the current directory", 0)]);
        assert_eq!(s.cwd().absolute().as_deref(), Some("/a \"b\""));
        assert_eq!(facts, vec![Fact::Cwd(s.cwd().clone())]);
        // A reply without its closing quote names no directory: the old one stays.
        run(&mut s, &[("> PWD", 0), ("< 257 \"/unterminated", 0)]);
        assert_eq!(s.cwd().absolute().as_deref(), Some("/a \"b\""));
        assert_eq!(s.cwd().join("x"), "a \"b\"/x");
        assert_eq!(s.cwd().resolve("../y").as_deref(), Some("/y"));
    }

    #[test]
    fn stou_names_come_from_the_server() {
        // vsftpd: `150 FILE: name`, then `226`.
        let mut s = session();
        let facts = run(&mut s, &[("> STOU", 1), ("< 150 FILE: upload.1", 0), ("< 226 Transfer complete.", 0)]);
        let [Fact::Started { transfer: a, .. }, Fact::Finished { transfer: b, code: 226, .. }] = facts.as_slice() else { panic!("{facts:?}") };
        assert_eq!((a.name(), b.name()), ("upload.1", "upload.1"));
        // RFC 959's form: the name in the `250` that ends it, no preliminary reply.
        let facts = run(&mut s, &[("> STOU wanted.txt", 2), ("< 250 FILE: wanted.txt.1", 0)]);
        let (t, _) = facts[0].began().unwrap();
        assert_eq!((t.arg.as_str(), t.name()), ("wanted.txt", "wanted.txt.1"));
        // No name in the replies: the argument, if any.
        let facts = run(&mut s, &[("> STOU wanted.txt", 3), ("< 150 Ok to send data.", 0), ("< 226 ok", 0)]);
        assert!(facts.iter().all(|f| matches!(f, Fact::Started { transfer, .. } | Fact::Finished { transfer, .. } if transfer.name() == "wanted.txt")));
        // A STOR's reply cannot rename it.
        let facts = run(&mut s, &[("> STOR mine", 4), ("< 150 FILE: other", 0)]);
        assert_eq!(facts[0].began().unwrap().0.name(), "mine");
    }

    #[test]
    fn transfers_left_unanswered_are_listed() {
        let mut s = session();
        run(&mut s, &[("> CWD /up", 0), ("> STOR a", 1), ("> USER x", 0), ("> RETR b", 2), ("< 250 ok", 0), ("< 150 go", 0)]);
        let left: Vec<_> = s.unanswered().map(|t| (t.verb, t.started, t.payload)).collect();
        assert_eq!(left, vec![(Verb::Stor, true, 1), (Verb::Retr, false, 2)]);
        assert_eq!(s.cwd().resolve("a").as_deref(), Some("/up/a"));
    }

    #[test]
    fn a_client_that_never_reads_is_bounded() {
        let mut s = session();
        for _ in 0..1000 {
            s.command(b"NOOP\r\n", |_| 0);
        }
        assert_eq!(s.queue.len(), MAX_QUEUE);
        assert_eq!(s.overflow, 1000 - MAX_QUEUE as u64);
    }

    #[test]
    fn names_and_paths() {
        assert_eq!(join("incoming", "a b.sh"), "incoming/a b.sh");
        assert_eq!(join("incoming", "/up/x"), "up/x");
        assert_eq!(join("a/b", ".."), "a");
        let mut d = WorkingDir::default();
        assert_eq!(d.resolve("b"), None);
        d.change("b");
        assert_eq!(d.absolute(), None, "relative to a login directory not seen");
        d.change("/a/b");
        assert_eq!(d.absolute().as_deref(), Some("/a/b"));
        d.change("/a");
        d.change("b/../c");
        assert_eq!(d.absolute().as_deref(), Some("/a/c"));
        d.change("/");
        d.change("..");
        assert_eq!(d.absolute().as_deref(), Some("/"));
    }
}
