//! FTP control-channel lines (RFC 959, RFC 2428 for EPRT/EPSV, RFC 1123).
//!
//! A line is one command (client to server) or one reply line (server to client), with or
//! without its CRLF (a bare LF is accepted too). Nothing here allocates or panics; loops
//! are bounded by the line length or by small constants.
//!
//! - [`parse_request`]: the verb, case-insensitive (`stor`, `Stor`, `STOR`), and its
//!   argument, everything after the first space, inner and trailing spaces kept (file
//!   names may hold spaces). `STOU` may come with or without an argument.
//! - [`parse_reply`]: the 3-digit code, whether it is the last line of the reply
//!   (`"226 "` vs `"226-"`), and the text.
//! - Address helpers: [`parse_port`] (`PORT h1,h2,h3,h4,p1,p2` and the `227` reply through
//!   [`parse_pasv_reply`]), [`parse_eprt`] (`EPRT |2|::1|5282|`), [`parse_epsv_reply`]
//!   (`229 ... (|||6446|)`), and [`stou_reply_name`] for `150 FILE: name` / `125 FILE: name` / `250 FILE: name`.

/// Control-channel ports vtrail watches by default.
pub const PORT: u16 = 21;
/// Longest control line a reader buffers while waiting for its end of line (live and
/// replay alike); a longer one is cut and counted.
pub const MAX_LINE: usize = 8192;

/// Commands the sensor acts on; everything else is [`Verb::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Upload: store a file under the given name.
    Stor,
    /// Upload: append to a file.
    Appe,
    /// Upload: store under a unique name the server chooses (reply `150 FILE: name`).
    Stou,
    /// Download.
    Retr,
    Cwd,
    Cdup,
    Pwd,
    Port,
    Pasv,
    Eprt,
    Epsv,
    User,
    Rnfr,
    Rnto,
    Dele,
    Quit,
    Other,
}

impl Verb {
    /// Upper-case name ("STOR"), "OTHER" for [`Verb::Other`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Stor => "STOR",
            Verb::Appe => "APPE",
            Verb::Stou => "STOU",
            Verb::Retr => "RETR",
            Verb::Cwd => "CWD",
            Verb::Cdup => "CDUP",
            Verb::Pwd => "PWD",
            Verb::Port => "PORT",
            Verb::Pasv => "PASV",
            Verb::Eprt => "EPRT",
            Verb::Epsv => "EPSV",
            Verb::User => "USER",
            Verb::Rnfr => "RNFR",
            Verb::Rnto => "RNTO",
            Verb::Dele => "DELE",
            Verb::Quit => "QUIT",
            Verb::Other => "OTHER",
        }
    }

    /// Does the command send a file to the server?
    pub const fn is_upload(self) -> bool {
        matches!(self, Verb::Stor | Verb::Appe | Verb::Stou)
    }

    /// Does the command send a file to the client?
    pub const fn is_download(self) -> bool {
        matches!(self, Verb::Retr)
    }

    /// Recognizes a verb, ignoring ASCII case. Also accepts the RFC 775 `XCWD`/`XPWD` forms.
    pub fn from_bytes(v: &[u8]) -> Verb {
        let mut up = [0u8; 4];
        let n = v.len();
        if n == 0 || n > 4 {
            return Verb::Other;
        }
        for (o, b) in up.iter_mut().zip(v.iter()) {
            *o = b.to_ascii_uppercase();
        }
        match up.get(..n).unwrap_or(&[]) {
            b"STOR" => Verb::Stor,
            b"APPE" => Verb::Appe,
            b"STOU" => Verb::Stou,
            b"RETR" => Verb::Retr,
            b"CWD" | b"XCWD" => Verb::Cwd,
            b"CDUP" | b"XCUP" => Verb::Cdup,
            b"PWD" | b"XPWD" => Verb::Pwd,
            b"PORT" => Verb::Port,
            b"PASV" => Verb::Pasv,
            b"EPRT" => Verb::Eprt,
            b"EPSV" => Verb::Epsv,
            b"USER" => Verb::User,
            b"RNFR" => Verb::Rnfr,
            b"RNTO" => Verb::Rnto,
            b"DELE" => Verb::Dele,
            b"QUIT" => Verb::Quit,
            _ => Verb::Other,
        }
    }
}

/// A command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub verb: Verb,
    /// The verb as sent (for [`Verb::Other`]).
    pub verb_bytes: &'a [u8],
    /// Everything after the first space, without the line ending; empty if none.
    pub arg: &'a [u8],
}

/// A reply line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    pub code: u16,
    /// `"NNN "` or `"NNN"` alone: the last line of the reply. `"NNN-"` starts a multi-line reply.
    pub last: bool,
    /// Text after the code and its separator, without the line ending.
    pub text: &'a [u8],
}

impl Reply<'_> {
    /// 1xx: the server will answer again (e.g. 150 before a transfer).
    pub const fn is_preliminary(&self) -> bool {
        self.code >= 100 && self.code < 200
    }
    pub const fn is_success(&self) -> bool {
        self.code >= 200 && self.code < 300
    }
    pub const fn is_failure(&self) -> bool {
        self.code >= 400
    }
}

/// `line` without one trailing LF or CRLF (a lone trailing CR is dropped too).
pub fn trim_eol(line: &[u8]) -> &[u8] {
    let l = match line {
        [rest @ .., b'\n'] => rest,
        other => other,
    };
    match l {
        [rest @ .., b'\r'] => rest,
        other => other,
    }
}

/// Parses a command line. `None` for an empty line or a verb that is not 1 to 4 ASCII letters.
pub fn parse_request(line: &[u8]) -> Option<Request<'_>> {
    let line = trim_eol(line);
    let (verb_bytes, arg) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => (line.get(..sp)?, line.get(sp.saturating_add(1)..)?),
        None => (line, &[][..]),
    };
    if verb_bytes.is_empty() || verb_bytes.len() > 4 || !verb_bytes.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    Some(Request { verb: Verb::from_bytes(verb_bytes), verb_bytes, arg })
}

/// Parses a reply line: three digits, then a space, a hyphen or the end of the line.
/// `None` for a continuation line of a multi-line reply (no code at its start).
pub fn parse_reply(line: &[u8]) -> Option<Reply<'_>> {
    let line = trim_eol(line);
    let code = match line.get(..3)? {
        &[a, b, c] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            (a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16
        }
        _ => return None,
    };
    match line.get(3) {
        None => Some(Reply { code, last: true, text: &[] }),
        Some(b' ') => Some(Reply { code, last: true, text: line.get(4..).unwrap_or(&[]) }),
        Some(b'-') => Some(Reply { code, last: false, text: line.get(4..).unwrap_or(&[]) }),
        Some(_) => None,
    }
}

/// An IPv4 address and port from `PORT` or a `227` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub addr: [u8; 4],
    pub port: u16,
}

/// Reads a decimal number of at most 5 digits from the start of `s`; returns it and the
/// number of bytes read.
fn number(s: &[u8]) -> Option<(u32, usize)> {
    let mut v: u32 = 0;
    let mut n = 0usize;
    for &b in s.iter().take(5) {
        if !b.is_ascii_digit() {
            break;
        }
        v = v * 10 + (b - b'0') as u32;
        n += 1;
    }
    if n == 0 || s.get(n).is_some_and(u8::is_ascii_digit) { None } else { Some((v, n)) }
}

/// Parses `h1,h2,h3,h4,p1,p2` at the start of `s` (spaces around commas allowed).
fn six_numbers(s: &[u8]) -> Option<HostPort> {
    let mut vals = [0u8; 6];
    let mut pos = 0usize;
    for (i, v) in vals.iter_mut().enumerate() {
        while s.get(pos) == Some(&b' ') {
            pos += 1;
        }
        let (n, used) = number(s.get(pos..)?)?;
        *v = u8::try_from(n).ok()?;
        pos = pos.saturating_add(used);
        while s.get(pos) == Some(&b' ') {
            pos += 1;
        }
        if i < 5 {
            if s.get(pos) != Some(&b',') {
                return None;
            }
            pos += 1;
        }
    }
    let [a, b, c, d, p1, p2] = vals;
    Some(HostPort { addr: [a, b, c, d], port: u16::from_be_bytes([p1, p2]) })
}

/// `PORT` argument: `h1,h2,h3,h4,p1,p2`.
pub fn parse_port(arg: &[u8]) -> Option<HostPort> {
    six_numbers(arg)
}

/// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`: the six numbers after the first `(`,
/// or (for servers that omit the parentheses) starting at the first digit of the text.
pub fn parse_pasv_reply(text: &[u8]) -> Option<HostPort> {
    let start = match text.iter().position(|&b| b == b'(') {
        Some(p) => p.saturating_add(1),
        None => text.iter().position(u8::is_ascii_digit)?,
    };
    six_numbers(text.get(start..)?)
}

/// `229 Entering Extended Passive Mode (|||port|)`: the port. The delimiter is whatever
/// character follows `(` (RFC 2428 recommends `|`).
pub fn parse_epsv_reply(text: &[u8]) -> Option<u16> {
    let open = text.iter().position(|&b| b == b'(')?;
    let rest = text.get(open.saturating_add(1)..)?;
    let d = *rest.first()?;
    if rest.get(1) != Some(&d) || rest.get(2) != Some(&d) {
        return None;
    }
    let (port, used) = number(rest.get(3..)?)?;
    if rest.get(3usize.saturating_add(used)) != Some(&d) {
        return None;
    }
    u16::try_from(port).ok()
}

/// An `EPRT` argument: `<d>proto<d>address<d>port<d>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eprt<'a> {
    /// 1 = IPv4, 2 = IPv6.
    pub family: u8,
    /// The address as text (parse with `core::net` in userspace).
    pub addr: &'a [u8],
    pub port: u16,
}

/// Parses `EPRT |2|fd00::3|40467|` (any delimiter).
pub fn parse_eprt(arg: &[u8]) -> Option<Eprt<'_>> {
    let d = *arg.first()?;
    let rest = arg.get(1..)?;
    let mut parts = rest.splitn(4, |&b| b == d);
    let fam = parts.next()?;
    let addr = parts.next()?;
    let port = parts.next()?;
    let family = match fam {
        b"1" => 1,
        b"2" => 2,
        _ => return None,
    };
    let (p, used) = number(port)?;
    if used != port.len() || addr.is_empty() {
        return None;
    }
    Some(Eprt { family, addr, port: u16::try_from(p).ok()? })
}

/// The name in a `STOU` reply `150 FILE: name` or `125 FILE: name` (RFC 1123 4.1.2.9),
/// or in the `250` that RFC 959 had carry it (servers written to it still send that),
/// `FILE:` in any case and the name trimmed of surrounding spaces.
pub fn stou_reply_name<'a>(reply: &Reply<'a>) -> Option<&'a [u8]> {
    if !matches!(reply.code, 125 | 150 | 250) {
        return None;
    }
    let t = reply.text;
    let tag = t.get(..5)?;
    if !tag.eq_ignore_ascii_case(b"FILE:") {
        return None;
    }
    let name = trim_spaces(t.get(5..)?);
    if name.is_empty() { None } else { Some(name) }
}

/// `s` without leading and trailing spaces.
pub fn trim_spaces(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ').map_or(start, |e| e.saturating_add(1));
    s.get(start..end).unwrap_or(&[])
}

/// The path in a `257 "/dir" is current directory` reply, `""` read as one quote (RFC
/// 959 appendix II). Live attribution and replay both read the working directory here.
#[cfg(any(test, feature = "std"))]
pub fn pwd_reply_path(text: &[u8]) -> Option<std::vec::Vec<u8>> {
    let start = text.iter().position(|&b| b == b'"')? + 1;
    let mut out = std::vec::Vec::new();
    let mut i = start;
    while let Some(&b) = text.get(i) {
        if b == b'"' {
            if text.get(i + 1) == Some(&b'"') {
                out.push(b'"');
                i += 2;
                continue;
            }
            return Some(out);
        }
        out.push(b);
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_any_case_crlf_lf() {
        for line in [&b"STOR index.html\r\n"[..], b"stor index.html\n", b"Stor index.html"] {
            let r = parse_request(line).unwrap();
            assert_eq!(r.verb, Verb::Stor);
            assert_eq!(r.arg, b"index.html");
        }
        assert_eq!(parse_request(b"appe a b  c.txt \r\n").unwrap().arg, b"a b  c.txt ");
        assert_eq!(parse_request(b"RETR my file.bin\r\n").unwrap().verb, Verb::Retr);
        let s = parse_request(b"STOU\r\n").unwrap();
        assert_eq!((s.verb, s.arg), (Verb::Stou, &b""[..]));
        let s = parse_request(b"STOU name.txt\r\n").unwrap();
        assert_eq!((s.verb, s.arg), (Verb::Stou, &b"name.txt"[..]));
        assert_eq!(parse_request(b"XCWD /tmp\r\n").unwrap().verb, Verb::Cwd);
        assert_eq!(parse_request(b"NOOP\r\n").unwrap().verb, Verb::Other);
        assert_eq!(parse_request(b"\r\n"), None);
        assert_eq!(parse_request(b""), None);
        assert_eq!(parse_request(b"STORE x"), None);
        assert_eq!(parse_request(b"S\xffOR x"), None);
        assert_eq!(parse_request(b" STOR x"), None);
    }

    #[test]
    fn replies() {
        let r = parse_reply(b"226 Transfer complete.\r\n").unwrap();
        assert_eq!((r.code, r.last, r.text), (226, true, &b"Transfer complete."[..]));
        let r = parse_reply(b"230-Welcome\r\n").unwrap();
        assert!(!r.last);
        assert_eq!(parse_reply(b"221").unwrap().code, 221);
        assert_eq!(parse_reply(b"    continuation"), None);
        assert_eq!(parse_reply(b"22"), None);
        assert_eq!(parse_reply(b"2261"), None);
    }

    #[test]
    fn port_pasv_eprt_epsv() {
        assert_eq!(
            parse_port(b"172,23,0,3,139,43"),
            Some(HostPort { addr: [172, 23, 0, 3], port: 139 * 256 + 43 })
        );
        assert_eq!(parse_port(b"172, 23, 0, 3, 139, 43"), parse_port(b"172,23,0,3,139,43"));
        assert_eq!(parse_port(b"256,1,1,1,1,1"), None);
        assert_eq!(parse_port(b"1,1,1,1,1"), None);
        assert_eq!(parse_port(b"1,1,1,1,1,99999999"), None);
        assert_eq!(
            parse_pasv_reply(b"Entering Passive Mode (172,23,0,2,82,11)."),
            Some(HostPort { addr: [172, 23, 0, 2], port: 82 * 256 + 11 })
        );
        assert_eq!(parse_pasv_reply(b"Entering Passive Mode 10,0,0,1,4,0"), Some(HostPort { addr: [10, 0, 0, 1], port: 1024 }));
        assert_eq!(parse_pasv_reply(b"nothing"), None);
        assert_eq!(parse_epsv_reply(b"Entering Extended Passive Mode (|||57086|)"), Some(57086));
        assert_eq!(parse_epsv_reply(b"Entering extended passive mode (!!!21008!)."), Some(21008));
        assert_eq!(parse_epsv_reply(b"(|||99999|)"), None);
        assert_eq!(parse_epsv_reply(b"(||57086|)"), None);
        assert_eq!(parse_epsv_reply(b"(|||"), None);
        let e = parse_eprt(b"|2|fd00:10:16:1::3|40467|").unwrap();
        assert_eq!((e.family, e.addr, e.port), (2, &b"fd00:10:16:1::3"[..], 40467));
        let e = parse_eprt(b"|1|132.235.1.2|6275|").unwrap();
        assert_eq!((e.family, e.port), (1, 6275));
        assert_eq!(parse_eprt(b"|3|x|1|"), None);
        assert_eq!(parse_eprt(b"|1||1|"), None);
        assert_eq!(parse_eprt(b"|1|x|"), None);
        assert_eq!(parse_eprt(b""), None);
    }

    #[test]
    fn stou_reply() {
        let r = parse_reply(b"150 FILE: upload.1\r\n").unwrap();
        assert_eq!(stou_reply_name(&r), Some(&b"upload.1"[..]));
        let r = parse_reply(b"125 file:  name with spaces.txt \r\n").unwrap();
        assert_eq!(stou_reply_name(&r), Some(&b"name with spaces.txt"[..]));
        let r = parse_reply(b"150 Ok to send data.\r\n").unwrap();
        assert_eq!(stou_reply_name(&r), None);
        let r = parse_reply(b"226 FILE: x\r\n").unwrap();
        assert_eq!(stou_reply_name(&r), None);
        let r = parse_reply(b"150 FILE:\r\n").unwrap();
        assert_eq!(stou_reply_name(&r), None);
        let r = parse_reply(b"250 FILE: unique.2\r\n").unwrap();
        assert_eq!(stou_reply_name(&r), Some(&b"unique.2"[..]));
    }

    #[test]
    fn pwd_path() {
        assert_eq!(pwd_reply_path(b"\"/with \"\"quote\"\"\" is current").as_deref(), Some(&b"/with \"quote\""[..]));
        assert_eq!(pwd_reply_path(b"no quotes"), None);
    }

    #[test]
    fn trim() {
        assert_eq!(trim_spaces(b"  a b  "), b"a b");
        assert_eq!(trim_spaces(b"   "), b"");
        assert_eq!(trim_eol(b"x\r\n"), b"x");
        assert_eq!(trim_eol(b"x\n"), b"x");
        assert_eq!(trim_eol(b"x\r"), b"x");
        assert_eq!(trim_eol(b"\n"), b"");
    }
}
