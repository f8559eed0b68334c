//! SMB2/SMB3 messages as far as vtrail needs them to name a file (MS-SMB2 2.2).
//!
//! An NBSS payload ([`super::nbss`]) holds one of:
//! - an SMB2 message: one [`Header`] PDU, or a compound chain walked by [`pdus`]
//!   (each PDU's `NextCommand` is the offset of the next one; the last has 0);
//! - a [`TransformHeader`] (`0xFD 'SMB'`): an SMB3 encrypted message; only the session
//!   id is readable, which is what makes the session "encrypted" for attribution;
//! - a compression transform (`0xFC 'SMB'`) or an SMB1 message (`0xFF 'SMB'`): recognized
//!   by [`classify`], not parsed.
//!
//! Every body view takes the *whole PDU* (header included), because offsets such as
//! CREATE's `NameOffset` count from the start of the SMB2 header.
//!
//! ```text
//! SMB2 header (64 bytes)                      CREATE request body (at 64)
//!  0 ProtocolId 0xFE 'S' 'M' 'B'               0 StructureSize (57)   24 DesiredAccess
//!  4 StructureSize (64)  6 CreditCharge        28 FileAttributes       32 ShareAccess
//!  8 Status (resp) / ChannelSequence (req)     36 CreateDisposition    40 CreateOptions
//! 12 Command            14 CreditReq/Resp      44 NameOffset (u16)     46 NameLength (u16)
//! 16 Flags              20 NextCommand         48 CreateContextsOffset 52 ...Length
//! 24 MessageId                                 56 Buffer (name, UTF-16LE)
//! 32 sync: Reserved(4) TreeId(4) | async: AsyncId(8)
//! 40 SessionId          48 Signature (16)
//! ```

use super::{Error, Field, Result, le16, le32, le64, slice};

/// Size of the SMB2 header.
pub const HEADER_LEN: usize = 64;
/// Size of the SMB3 transform header.
pub const TRANSFORM_HEADER_LEN: usize = 52;
/// [`Pdus`] yields at most this many PDUs of one compound message, so a crafted
/// `NextCommand` chain costs bounded work (real clients send 2 to 5).
pub const MAX_PDUS: usize = 16;

pub const PROTOCOL_ID: [u8; 4] = [0xfe, b'S', b'M', b'B'];
pub const TRANSFORM_PROTOCOL_ID: [u8; 4] = [0xfd, b'S', b'M', b'B'];
pub const COMPRESSION_PROTOCOL_ID: [u8; 4] = [0xfc, b'S', b'M', b'B'];
pub const SMB1_PROTOCOL_ID: [u8; 4] = [0xff, b'S', b'M', b'B'];

/// Header flags.
pub mod flags {
    /// SMB2_FLAGS_SERVER_TO_REDIR: a response.
    pub const RESPONSE: u32 = 0x0000_0001;
    /// SMB2_FLAGS_ASYNC_COMMAND: bytes 32..40 are an AsyncId, not ProcessId+TreeId.
    pub const ASYNC_COMMAND: u32 = 0x0000_0002;
    /// SMB2_FLAGS_RELATED_OPERATIONS: in a compound, this PDU uses the previous one's
    /// SessionId, TreeId and FileId (a FileId of all 0xFF means "the previous CREATE's").
    pub const RELATED_OPERATIONS: u32 = 0x0000_0004;
    pub const SIGNED: u32 = 0x0000_0008;
    pub const DFS_OPERATIONS: u32 = 0x1000_0000;
    pub const REPLAY_OPERATION: u32 = 0x2000_0000;
}

/// Command codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    Negotiate,
    SessionSetup,
    Logoff,
    TreeConnect,
    TreeDisconnect,
    Create,
    Close,
    Flush,
    Read,
    Write,
    Lock,
    Ioctl,
    Cancel,
    Echo,
    QueryDirectory,
    ChangeNotify,
    QueryInfo,
    SetInfo,
    OplockBreak,
    Unknown(u16),
}

impl From<u16> for Command {
    fn from(v: u16) -> Self {
        use Command::*;
        match v {
            0 => Negotiate,
            1 => SessionSetup,
            2 => Logoff,
            3 => TreeConnect,
            4 => TreeDisconnect,
            5 => Create,
            6 => Close,
            7 => Flush,
            8 => Read,
            9 => Write,
            10 => Lock,
            11 => Ioctl,
            12 => Cancel,
            13 => Echo,
            14 => QueryDirectory,
            15 => ChangeNotify,
            16 => QueryInfo,
            17 => SetInfo,
            18 => OplockBreak,
            other => Unknown(other),
        }
    }
}

/// NTSTATUS values the parsers and replay care about.
pub mod status {
    pub const SUCCESS: u32 = 0x0000_0000;
    pub const PENDING: u32 = 0x0000_0103;
    pub const BUFFER_OVERFLOW: u32 = 0x8000_0005;
}

/// Dialect revisions (NEGOTIATE).
pub mod dialect {
    pub const SMB2_0_2: u16 = 0x0202;
    pub const SMB2_1: u16 = 0x0210;
    pub const SMB3_0: u16 = 0x0300;
    pub const SMB3_0_2: u16 = 0x0302;
    pub const SMB3_1_1: u16 = 0x0311;
    /// Wildcard answer to an SMB1 negotiate that offered "SMB 2.???".
    pub const SMB2_WILDCARD: u16 = 0x02ff;

    /// "2.0.2", "3.1.1", ... or "unknown".
    pub const fn name(d: u16) -> &'static str {
        match d {
            SMB2_0_2 => "2.0.2",
            SMB2_1 => "2.1",
            SMB3_0 => "3.0",
            SMB3_0_2 => "3.0.2",
            SMB3_1_1 => "3.1.1",
            SMB2_WILDCARD => "2.???",
            _ => "unknown",
        }
    }
}

/// DesiredAccess bits (MS-SMB2 2.2.13.1).
pub mod access {
    pub const FILE_READ_DATA: u32 = 0x0000_0001;
    pub const FILE_WRITE_DATA: u32 = 0x0000_0002;
    pub const FILE_APPEND_DATA: u32 = 0x0000_0004;
    pub const FILE_READ_EA: u32 = 0x0000_0008;
    pub const FILE_WRITE_EA: u32 = 0x0000_0010;
    pub const FILE_EXECUTE: u32 = 0x0000_0020;
    pub const FILE_READ_ATTRIBUTES: u32 = 0x0000_0080;
    pub const FILE_WRITE_ATTRIBUTES: u32 = 0x0000_0100;
    pub const DELETE: u32 = 0x0001_0000;
    pub const READ_CONTROL: u32 = 0x0002_0000;
    pub const WRITE_DAC: u32 = 0x0004_0000;
    pub const WRITE_OWNER: u32 = 0x0008_0000;
    pub const SYNCHRONIZE: u32 = 0x0010_0000;
    pub const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
    pub const GENERIC_ALL: u32 = 0x1000_0000;
    pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
    pub const GENERIC_WRITE: u32 = 0x4000_0000;
    pub const GENERIC_READ: u32 = 0x8000_0000;
    /// Bits that let the opener change the file's content.
    pub const WRITE_CONTENT: u32 = FILE_WRITE_DATA | FILE_APPEND_DATA | GENERIC_WRITE | GENERIC_ALL;
}

/// CreateDisposition values.
pub mod disposition {
    pub const SUPERSEDE: u32 = 0;
    pub const OPEN: u32 = 1;
    pub const CREATE: u32 = 2;
    pub const OPEN_IF: u32 = 3;
    pub const OVERWRITE: u32 = 4;
    pub const OVERWRITE_IF: u32 = 5;

    /// "supersede", "open", ..., or "unknown".
    pub const fn name(d: u32) -> &'static str {
        match d {
            SUPERSEDE => "supersede",
            OPEN => "open",
            CREATE => "create",
            OPEN_IF => "open_if",
            OVERWRITE => "overwrite",
            OVERWRITE_IF => "overwrite_if",
            _ => "unknown",
        }
    }

    /// Does this disposition replace or create content whatever the access mask says?
    pub const fn replaces_content(d: u32) -> bool {
        matches!(d, SUPERSEDE | CREATE | OVERWRITE | OVERWRITE_IF)
    }
}

/// CreateOptions bits.
pub mod options {
    pub const FILE_DIRECTORY_FILE: u32 = 0x0000_0001;
    pub const FILE_WRITE_THROUGH: u32 = 0x0000_0002;
    pub const FILE_NON_DIRECTORY_FILE: u32 = 0x0000_0040;
    pub const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;
    pub const FILE_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
}

/// TREE_CONNECT response ShareFlags bit: the share requires encryption.
pub const SHARE_FLAG_ENCRYPT_DATA: u32 = 0x0000_8000;
/// SESSION_SETUP response SessionFlags bit: the session requires encryption.
pub const SESSION_FLAG_ENCRYPT_DATA: u16 = 0x0004;

/// Does a CREATE with these parameters open a file to receive content (an upload)?
///
/// Yes when it is not a directory open and either its disposition replaces or creates
/// content (SUPERSEDE, CREATE, OVERWRITE, OVERWRITE_IF) or its DesiredAccess asks for
/// write or append (`FILE_WRITE_DATA`, `FILE_APPEND_DATA`, `GENERIC_WRITE`,
/// `GENERIC_ALL`). `MAXIMUM_ALLOWED` alone does not count: Windows Explorer asks for it
/// on nearly every open. The TC program and replay both use this, so they agree.
pub const fn create_has_write_intent(desired_access: u32, disposition: u32, create_options: u32) -> bool {
    if create_options & options::FILE_DIRECTORY_FILE != 0 {
        return false;
    }
    disposition::replaces_content(disposition) || desired_access & access::WRITE_CONTENT != 0
}

/// SMB2_FILEID: persistent and volatile halves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId {
    pub persistent: u64,
    pub volatile: u64,
}

impl FileId {
    /// All 0xFF: in a related compound PDU, "the FileId the previous CREATE opened".
    pub const RELATED: FileId = FileId { persistent: u64::MAX, volatile: u64::MAX };

    pub fn from_bytes(b: &[u8]) -> FileId {
        FileId { persistent: le64(b, 0..8), volatile: le64(b, 8..16) }
    }
    pub const fn is_related(&self) -> bool {
        self.persistent == u64::MAX && self.volatile == u64::MAX
    }
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        let (p, v) = b.split_at_mut(8);
        p.copy_from_slice(&self.persistent.to_le_bytes());
        v.copy_from_slice(&self.volatile.to_le_bytes());
        b
    }
}

/// What an NBSS session-message payload holds, from its first four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Smb2,
    /// SMB3 transform header: an encrypted message.
    Encrypted,
    /// SMB3.1.1 compression transform header.
    Compressed,
    Smb1,
    Unknown,
}

pub fn classify(payload: &[u8]) -> Kind {
    match payload.get(0..4) {
        Some(m) if m == PROTOCOL_ID => Kind::Smb2,
        Some(m) if m == TRANSFORM_PROTOCOL_ID => Kind::Encrypted,
        Some(m) if m == COMPRESSION_PROTOCOL_ID => Kind::Compressed,
        Some(m) if m == SMB1_PROTOCOL_ID => Kind::Smb1,
        _ => Kind::Unknown,
    }
}

/// `buf[offset .. offset + len]` with both counted from the header start. `Err(Truncated)`
/// if it runs past the end (checked arithmetic: no overflow on any field value).
fn region(buf: &[u8], offset: usize, len: usize) -> Result<&[u8]> {
    let end = offset.checked_add(len).ok_or(Error::Truncated)?;
    buf.get(offset..end).ok_or(Error::Truncated)
}

/// Like [`region`] but clamped to the buffer: what is present of the region, and whether
/// it was cut. An offset inside the fixed header part (< `min_offset`) is malformed.
fn region_partial(buf: &[u8], offset: usize, len: usize, min_offset: usize) -> Result<(&[u8], bool)> {
    if len == 0 {
        return Ok((&[], false));
    }
    if offset < min_offset {
        return Err(Error::Malformed);
    }
    let end = offset.saturating_add(len);
    let avail_end = end.min(buf.len());
    match buf.get(offset..avail_end) {
        Some(s) if !s.is_empty() => Ok((s, avail_end < end)),
        _ => Err(Error::Truncated),
    }
}

/// Declares a body view over a whole PDU: checks the header, the command, the response
/// flag, the body StructureSize and that the fixed part (`$end` bytes from the header
/// start) is present.
macro_rules! body_view {
    ($(#[$m:meta])* $name:ident, $cmd:expr, $resp:expr, $size:expr, $end:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Body StructureSize this view expects.
            pub const STRUCTURE_SIZE: u16 = $size;

            pub const fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }
            pub fn new_checked(buffer: T) -> Result<Self> {
                let v = Self::new_unchecked(buffer);
                v.check_len()?;
                Ok(v)
            }
            pub fn check_len(&self) -> Result<()> {
                let h = Header::new_checked(self.buffer.as_ref())?;
                if h.command() != $cmd || h.is_response() != $resp {
                    return Err(Error::Malformed);
                }
                if self.buffer.as_ref().len() < $end {
                    return Err(Error::Truncated);
                }
                if h.body_structure_size() != $size {
                    return Err(Error::Malformed);
                }
                Ok(())
            }
            pub fn header(&self) -> Header<&[u8]> {
                Header::new_unchecked(self.buffer.as_ref())
            }
            pub fn as_bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }
    };
}

mod connect;
mod create;
pub mod field;
mod header;
mod io;

pub use connect::{NegotiateRequest, NegotiateResponse, SessionSetupResponse, TreeConnectRequest, TreeConnectResponse};
pub use create::{CreateRequest, CreateResponse};
pub use header::{Header, Pdus, TransformHeader, pdus};
pub use io::{CloseRequest, ReadRequest, ReadResponse, WriteRequest, WriteResponse};

/// Builders for tests and the fuzzer's seed corpus (std only).
#[cfg(any(test, feature = "std"))]
pub mod build;

#[cfg(test)]
mod tests;
