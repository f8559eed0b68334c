//! Zero-copy protocol parsers (NBSS, SMB2, FTP control lines), shared by the TC program,
//! `vtrail-sensor replay`, unit tests and the fuzzer.
//!
//! Written in the style of smoltcp's `src/wire/`: a view such as
//! [`smb2::Header<T: AsRef<[u8]>>`](smb2::Header) wraps a byte buffer, `new_checked` does
//! the one length check up front, `mod field` names the offsets, and each field has one
//! accessor. On top of that, and unlike smoltcp, *no* accessor can panic: every read goes
//! through [`get`]-style helpers that return 0 on a short buffer, so even a view made with
//! `new_unchecked` on hostile input is safe. There is no allocation, no recursion, and every
//! loop has a fixed upper bound ([`nbss::MAX_RECORDS`], [`smb2::MAX_PDUS`],
//! [`utf16`]'s input length), so the same code can later be compiled for the BPF target.
//!
//! | module | what |
//! |---|---|
//! | [`nbss`] | NetBIOS session framing: type byte + 24-bit big-endian length, every record in a buffer |
//! | [`smb2`] | SMB2 header (sync/async), compound chains, CREATE/READ/WRITE/CLOSE/TREE_CONNECT/NEGOTIATE, transform header |
//! | [`ftp`] | FTP control lines: commands, replies, PORT/EPRT/227/229 and `150 FILE:` |
//! | [`utf16`] | UTF-16LE to UTF-8 into a caller's fixed buffer, with truncation and U+FFFD |
//! | [`quarantine`] | what a blocked sender may still send: SMB2 commands, CREATE masks, FSCTLs, FTP command lines |

pub mod ftp;
pub mod nbss;
pub mod quarantine;
pub mod smb2;
pub mod utf16;

/// Why a view could not be made. Parsers never panic; they return one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the fixed part of the structure (or than a length or
    /// offset field inside it says).
    Truncated,
    /// The magic number (protocol id) is not the one expected.
    BadMagic,
    /// A field has a value the format forbids (e.g. a StructureSize, a NextCommand that
    /// points inside the current header).
    Malformed,
}

impl Error {
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadMagic => "bad magic",
            Error::Malformed => "malformed",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// Byte range of a field, as in smoltcp.
pub(crate) type Field = core::ops::Range<usize>;

/// `buf[range]`, or an empty slice if the range does not fit (never panics).
#[inline(always)]
pub(crate) fn slice(buf: &[u8], range: Field) -> &[u8] {
    buf.get(range).unwrap_or(&[])
}

#[inline(always)]
pub(crate) fn u8_at(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

#[inline(always)]
pub(crate) fn le16(buf: &[u8], f: Field) -> u16 {
    match buf.get(f.start..f.start.saturating_add(2)) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => 0,
    }
}

#[inline(always)]
pub(crate) fn le32(buf: &[u8], f: Field) -> u32 {
    match buf.get(f.start..f.start.saturating_add(4)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

#[inline(always)]
pub(crate) fn le64(buf: &[u8], f: Field) -> u64 {
    match buf.get(f.start..f.start.saturating_add(8)) {
        Some(s) => match <[u8; 8]>::try_from(s) {
            Ok(b) => u64::from_le_bytes(b),
            Err(_) => 0,
        },
        None => 0,
    }
}
