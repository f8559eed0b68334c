//! What a quarantined (blocked) sender may still send on the file-transfer ports.
//!
//! The quarantine fails closed by construction: a request from a blocked sender passes
//! only when it is *proven* harmless, i.e. it can neither write, create, rename nor
//! delete anything nor hide what it does. Everything else - an encrypted or compressed
//! SMB message, an SMB1 message, a command these lists do not know, a CREATE whose
//! access mask or disposition could lead to a change whatever its spelling (specific,
//! generic or `MAXIMUM_ALLOWED` rights), a cut header, an FTP segment that is not one
//! complete, known-harmless command line - is dropped. The TC program decides with these
//! functions; the unit tests below pin the lists, and `docs` in the README state them.
//!
//! Everything here is `const fn` on plain integers and fixed arrays: it runs unchanged in
//! the kernel.
use super::smb2::{access, disposition, options};

/// How the quarantine treats an SMB2 request command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Smb2Request {
    /// Cannot change a file: passes.
    Harmless,
    /// Judged by its access mask, disposition and options ([`create_may_modify`]).
    Create,
    /// Judged by its control code ([`ioctl_is_harmless`]).
    Ioctl,
    /// WRITE, SET_INFO (rename, delete, truncate, attributes), unknown commands: dropped.
    Modifies,
}

/// The quarantine's class of SMB2 command `code` (a request).
pub const fn smb2_request(code: u16) -> Smb2Request {
    match code {
        // NEGOTIATE, SESSION_SETUP, LOGOFF, TREE_CONNECT, TREE_DISCONNECT.
        0..=4 => Smb2Request::Harmless,
        5 => Smb2Request::Create,
        // CLOSE, FLUSH (data already written), READ, LOCK.
        6..=8 | 10 => Smb2Request::Harmless,
        11 => Smb2Request::Ioctl,
        // CANCEL, ECHO, QUERY_DIRECTORY, CHANGE_NOTIFY, QUERY_INFO.
        12..=16 => Smb2Request::Harmless,
        // OPLOCK_BREAK (acknowledgement).
        18 => Smb2Request::Harmless,
        // 9 WRITE, 17 SET_INFO, and anything newer than this list.
        _ => Smb2Request::Modifies,
    }
}

/// Access bits that only read, list, traverse or wait. Any other bit - write, append,
/// extended attributes or attributes written, DELETE, WRITE_DAC, WRITE_OWNER,
/// ACCESS_SYSTEM_SECURITY, `MAXIMUM_ALLOWED` (which grants write where the ACL allows),
/// `GENERIC_ALL`, `GENERIC_WRITE`, or a reserved bit - may lead to a change.
pub const READ_ONLY_ACCESS: u32 = access::FILE_READ_DATA
    | access::FILE_READ_EA
    | access::FILE_EXECUTE
    | access::FILE_READ_ATTRIBUTES
    | access::READ_CONTROL
    | access::SYNCHRONIZE
    | access::GENERIC_READ
    | access::GENERIC_EXECUTE;

/// Can a CREATE with these parameters lead to writing, creating, renaming or deleting?
///
/// It cannot only when it opens an existing file or directory (`FILE_OPEN`), asks for
/// nothing beyond [`READ_ONLY_ACCESS`], and does not ask for deletion on close. Stricter
/// than [`super::smb2::create_has_write_intent`], which decides whether a CREATE is an
/// upload for attribution (where a `MAXIMUM_ALLOWED` open is followed by its WRITEs).
pub const fn create_may_modify(desired_access: u32, create_disposition: u32, create_options: u32) -> bool {
    create_disposition != disposition::OPEN
        || desired_access & !READ_ONLY_ACCESS != 0
        || create_options & options::FILE_DELETE_ON_CLOSE != 0
}

/// FSCTL codes a blocked client may send: the ones a connection needs to come up and
/// find its share (MS-SMB2 3.2.5.14.12, 3.3.5.15). Pipe transceive (RPC), server-side
/// copy (COPYCHUNK), sparse, zero-data, reparse-point and every other code are dropped.
pub const fn ioctl_is_harmless(ctl_code: u32) -> bool {
    matches!(
        ctl_code,
        fsctl::VALIDATE_NEGOTIATE_INFO | fsctl::QUERY_NETWORK_INTERFACE_INFO | fsctl::DFS_GET_REFERRALS | fsctl::DFS_GET_REFERRALS_EX
    )
}

/// FSCTL codes named above (MS-FSCC 2.3, MS-SMB2 2.2.31).
pub mod fsctl {
    pub const VALIDATE_NEGOTIATE_INFO: u32 = 0x0014_0204;
    pub const QUERY_NETWORK_INTERFACE_INFO: u32 = 0x0014_01fc;
    pub const DFS_GET_REFERRALS: u32 = 0x0006_0194;
    pub const DFS_GET_REFERRALS_EX: u32 = 0x0006_01b0;
    pub const PIPE_TRANSCEIVE: u32 = 0x0011_c017;
    pub const SRV_COPYCHUNK: u32 = 0x0014_40f2;
    pub const SRV_COPYCHUNK_WRITE: u32 = 0x0014_80f2;
}

/// Offset of an IOCTL request's CtlCode from the start of its SMB2 header.
pub const IOCTL_CTL_CODE_AT: usize = super::smb2::HEADER_LEN + 4;

/// How an FTP command verb is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FtpCommand {
    /// Harmless, and nothing vtrail records (login, settings, listings, keep-alive).
    Quiet,
    /// Harmless, and recorded (directory changes, downloads, data-connection set-up).
    Followed,
    /// Uploads, deletes, renames, directories made or removed, SITE, AUTH (it would hide
    /// the commands after it), MDTM (with two arguments it sets a file's time: vsftpd's
    /// `mdtm_write`), and every verb not listed here: dropped from a blocked sender.
    Modifies,
}

impl FtpCommand {
    pub const fn is_harmless(self) -> bool {
        !matches!(self, FtpCommand::Modifies)
    }
}

/// The class of the verb whose first `len` bytes (at most 4, any case) are in `v`.
pub const fn ftp_command(v: [u8; 4], len: usize) -> FtpCommand {
    let u = [v[0].to_ascii_uppercase(), v[1].to_ascii_uppercase(), v[2].to_ascii_uppercase(), v[3].to_ascii_uppercase()];
    if len == 3 {
        return match [u[0], u[1], u[2]] {
            [b'C', b'W', b'D'] | [b'P', b'W', b'D'] => FtpCommand::Followed,
            _ => FtpCommand::Modifies,
        };
    }
    if len != 4 {
        return FtpCommand::Modifies;
    }
    match u {
        [b'U', b'S', b'E', b'R']
        | [b'P', b'A', b'S', b'S']
        | [b'A', b'C', b'C', b'T']
        | [b'N', b'O', b'O', b'P']
        | [b'T', b'Y', b'P', b'E']
        | [b'M', b'O', b'D', b'E']
        | [b'S', b'T', b'R', b'U']
        | [b'S', b'Y', b'S', b'T']
        | [b'F', b'E', b'A', b'T']
        | [b'O', b'P', b'T', b'S']
        | [b'H', b'E', b'L', b'P']
        | [b'S', b'T', b'A', b'T']
        | [b'Q', b'U', b'I', b'T']
        | [b'A', b'B', b'O', b'R']
        | [b'R', b'E', b'S', b'T']
        | [b'L', b'I', b'S', b'T']
        | [b'N', b'L', b'S', b'T']
        | [b'M', b'L', b'S', b'D']
        | [b'M', b'L', b'S', b'T']
        | [b'S', b'I', b'Z', b'E']
        | [b'C', b'L', b'N', b'T']
        | [b'L', b'A', b'N', b'G']
        | [b'H', b'O', b'S', b'T'] => FtpCommand::Quiet,
        [b'X', b'C', b'W', b'D']
        | [b'C', b'D', b'U', b'P']
        | [b'X', b'C', b'U', b'P']
        | [b'X', b'P', b'W', b'D']
        | [b'R', b'E', b'T', b'R']
        | [b'P', b'O', b'R', b'T']
        | [b'P', b'A', b'S', b'V']
        | [b'E', b'P', b'R', b'T']
        | [b'E', b'P', b'S', b'V'] => FtpCommand::Followed,
        _ => FtpCommand::Modifies,
    }
}

/// The verb at the start of a command line: up to 4 bytes before a space or line end
/// (`len` is 5 for a longer run: no known verb).
pub const fn ftp_verb(head: [u8; 4]) -> ([u8; 4], usize) {
    let mut len = 0;
    while len < 4 && !matches!(head[len], b' ' | b'\r' | b'\n') {
        len += 1;
    }
    (head, len)
}

/// What one FTP control segment from a client holds, as far as the TC program can tell:
/// `single_line` when the segment is exactly one complete command line - its only LF is
/// its last byte, a CR only right before it, no other control byte (a NUL, a lone CR that
/// a server may take for a line end) - and fits what the kernel reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FtpSegment {
    pub single_line: bool,
    pub command: FtpCommand,
}

impl FtpSegment {
    /// From a blocked sender: dropped unless one whole line of a harmless command.
    pub const fn blocked_must_drop(self) -> bool {
        !(self.single_line && self.command.is_harmless())
    }
}

/// The class of the command a line starts with, from its first 5 bytes (spaces past the
/// end of a shorter segment): a verb of 4 letters followed by more letters is no verb
/// this list knows.
pub const fn ftp_head_command(head: [u8; 5]) -> FtpCommand {
    let (verb, len) = ftp_verb([head[0], head[1], head[2], head[3]]);
    if len == 4 && !matches!(head[4], b' ' | b'\r' | b'\n') {
        return FtpCommand::Modifies;
    }
    ftp_command(verb, len)
}

/// Is a segment whose bytes hold `lfs` LFs, `crs` CRs and `others` other control bytes,
/// ending with `before_last`, `last`, one whole command line (its only LF last, a CR only
/// right before it)?
pub const fn ftp_single_line(lfs: u32, crs: u32, others: u32, before_last: u8, last: u8) -> bool {
    lfs == 1 && last == b'\n' && others == 0 && (crs == 0 || (crs == 1 && before_last == b'\r'))
}

/// [`FtpSegment`] of a segment's bytes (userspace and tests; the TC program counts in its
/// own bounded loop and calls the same two judgements).
pub fn ftp_segment(bytes: &[u8], max_len: usize) -> FtpSegment {
    let mut head = [b' '; 5];
    for (h, b) in head.iter_mut().zip(bytes) {
        *h = *b;
    }
    let count = |f: fn(u8) -> bool| bytes.iter().filter(|&&b| f(b)).count() as u32;
    let at_end = |k: usize| if bytes.len() >= k { bytes[bytes.len() - k] } else { 0 };
    let single_line = bytes.len() <= max_len
        && ftp_single_line(count(|b| b == b'\n'), count(|b| b == b'\r'), count(is_other_control), at_end(2), at_end(1));
    FtpSegment { single_line, command: ftp_head_command(head) }
}

/// A control byte other than CR and LF (and DEL): never part of a harmless command line.
pub const fn is_other_control(b: u8) -> bool {
    (b < 0x20 && b != b'\r' && b != b'\n') || b == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_that_could_change_anything_is_not_harmless() {
        use access::*;
        // Read-only opens: harmless.
        assert!(!create_may_modify(FILE_READ_DATA, disposition::OPEN, 0));
        assert!(!create_may_modify(GENERIC_READ | SYNCHRONIZE, disposition::OPEN, options::FILE_NON_DIRECTORY_FILE));
        assert!(!create_may_modify(0x0010_0081, disposition::OPEN, options::FILE_DIRECTORY_FILE)); // smbclient ls
        // Every spelling of write, and the dispositions that create or replace.
        for mask in [MAXIMUM_ALLOWED, GENERIC_ALL, GENERIC_WRITE, FILE_WRITE_DATA, FILE_APPEND_DATA, FILE_WRITE_EA,
                     FILE_WRITE_ATTRIBUTES, DELETE, WRITE_DAC, WRITE_OWNER, 0x0100_0000 /* ACCESS_SYSTEM_SECURITY */,
                     0x0000_0200 /* reserved */] {
            assert!(create_may_modify(mask | FILE_READ_DATA, disposition::OPEN, 0), "{mask:#x}");
        }
        for d in [disposition::SUPERSEDE, disposition::CREATE, disposition::OPEN_IF, disposition::OVERWRITE,
                  disposition::OVERWRITE_IF, 6, 0xffff_ffff] {
            assert!(create_may_modify(FILE_READ_DATA, d, 0), "disposition {d}");
        }
        assert!(create_may_modify(FILE_READ_DATA, disposition::OPEN, options::FILE_DELETE_ON_CLOSE));
        // The attribution test is looser: MAXIMUM_ALLOWED + OPEN is not an upload by itself.
        assert!(!super::super::smb2::create_has_write_intent(MAXIMUM_ALLOWED, disposition::OPEN, 0));
    }

    #[test]
    fn smb2_commands_and_ioctls() {
        assert_eq!(smb2_request(9), Smb2Request::Modifies); // WRITE
        assert_eq!(smb2_request(17), Smb2Request::Modifies); // SET_INFO
        assert_eq!(smb2_request(19), Smb2Request::Modifies);
        assert_eq!(smb2_request(0xffff), Smb2Request::Modifies);
        assert_eq!(smb2_request(5), Smb2Request::Create);
        assert_eq!(smb2_request(11), Smb2Request::Ioctl);
        for harmless in [0, 1, 2, 3, 4, 6, 7, 8, 10, 12, 13, 14, 15, 16, 18] {
            assert_eq!(smb2_request(harmless), Smb2Request::Harmless, "{harmless}");
        }
        assert!(ioctl_is_harmless(fsctl::VALIDATE_NEGOTIATE_INFO));
        assert!(!ioctl_is_harmless(fsctl::PIPE_TRANSCEIVE));
        assert!(!ioctl_is_harmless(fsctl::SRV_COPYCHUNK_WRITE));
        assert!(!ioctl_is_harmless(fsctl::SRV_COPYCHUNK));
    }

    #[test]
    fn ftp_segments() {
        let seg = |b: &[u8]| ftp_segment(b, 256);
        assert!(!seg(b"LIST\r\n").blocked_must_drop());
        assert!(!seg(b"retr a file.txt\r\n").blocked_must_drop());
        assert!(!seg(b"CWD /x\n").blocked_must_drop());
        assert!(!seg(b"PASS secret\r\n").blocked_must_drop());
        // Uploads, however framed: one segment, split, pipelined, lower case.
        for s in [&b"STOR x\r\n"[..], b"stor x\r\n", b"ST", b"OR x\r\n", b"NOOP\r\nSTOR x\r\n", b"NOOP\r\nSTOR x",
                  b"NOOP\r\n\r\n", b"STORE x\r\n", b"AUTH TLS\r\n", b"DELE a\r\n", b"RNFR a\r\n", b"MKD d\r\n",
                  b"SITE CHMOD 777 a\r\n", b"", b"\r\n", b"LIST", b"NOOP\rSTOR x\r\n", b"RETR a\0b\r\n",
                  b"RETR a\r\r\n", b"MDTM 20240101000000 a\r\n", b" STOR x\r\n", b"\xff\xf4STOR x\r\n"] {
            assert!(seg(s).blocked_must_drop(), "{:?}", core::str::from_utf8(s));
        }
        // Longer than the kernel reads: not proven.
        let long = [b"RETR ".as_slice(), &[b'a'; 300], b"\r\n"].concat();
        assert!(seg(&long).blocked_must_drop());
    }
}
