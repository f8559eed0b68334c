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

/// Byte offsets from the start of the SMB2 header (public so that the TC program's
/// bounded extractor reads the same fields as this parser).
pub mod field {
    use super::Field;
    pub const PROTOCOL_ID: Field = 0..4;
    pub const STRUCTURE_SIZE: Field = 4..6;
    pub const CREDIT_CHARGE: Field = 6..8;
    pub const STATUS: Field = 8..12;
    pub const COMMAND: Field = 12..14;
    pub const CREDITS: Field = 14..16;
    pub const FLAGS: Field = 16..20;
    pub const NEXT_COMMAND: Field = 20..24;
    pub const MESSAGE_ID: Field = 24..32;
    pub const PROCESS_ID: Field = 32..36;
    pub const TREE_ID: Field = 36..40;
    pub const ASYNC_ID: Field = 32..40;
    pub const SESSION_ID: Field = 40..48;
    pub const SIGNATURE: Field = 48..64;

    pub mod transform {
        use super::Field;
        pub const PROTOCOL_ID: Field = 0..4;
        pub const SIGNATURE: Field = 4..20;
        pub const NONCE: Field = 20..36;
        pub const ORIGINAL_MESSAGE_SIZE: Field = 36..40;
        pub const FLAGS: Field = 42..44;
        pub const SESSION_ID: Field = 44..52;
    }

    /// Body offsets, from the start of the SMB2 header.
    pub mod create_req {
        use super::Field;
        pub const OPLOCK: usize = 67;
        pub const IMPERSONATION: Field = 68..72;
        pub const DESIRED_ACCESS: Field = 88..92;
        pub const FILE_ATTRIBUTES: Field = 92..96;
        pub const SHARE_ACCESS: Field = 96..100;
        pub const DISPOSITION: Field = 100..104;
        pub const OPTIONS: Field = 104..108;
        pub const NAME_OFFSET: Field = 108..110;
        pub const NAME_LENGTH: Field = 110..112;
        pub const CONTEXTS_OFFSET: Field = 112..116;
        pub const CONTEXTS_LENGTH: Field = 116..120;
        pub const BUFFER: usize = 120;
    }
    pub mod create_resp {
        use super::Field;
        pub const OPLOCK: usize = 66;
        pub const CREATE_ACTION: Field = 68..72;
        pub const END_OF_FILE: Field = 112..120;
        pub const FILE_ATTRIBUTES: Field = 120..124;
        pub const FILE_ID: Field = 128..144;
        pub const END: usize = 152;
    }
    pub mod write_req {
        use super::Field;
        pub const DATA_OFFSET: Field = 66..68;
        pub const LENGTH: Field = 68..72;
        pub const OFFSET: Field = 72..80;
        pub const FILE_ID: Field = 80..96;
        pub const FLAGS: Field = 108..112;
        pub const END: usize = 112;
    }
    pub mod read_req {
        use super::Field;
        pub const LENGTH: Field = 68..72;
        pub const OFFSET: Field = 72..80;
        pub const FILE_ID: Field = 80..96;
        pub const MINIMUM_COUNT: Field = 96..100;
        pub const END: usize = 112;
    }
    pub mod read_resp {
        use super::Field;
        pub const DATA_OFFSET: usize = 66;
        pub const DATA_LENGTH: Field = 68..72;
        pub const END: usize = 80;
    }
    pub mod write_resp {
        use super::Field;
        pub const COUNT: Field = 68..72;
        pub const END: usize = 80;
    }
    pub mod close_req {
        use super::Field;
        pub const FLAGS: Field = 66..68;
        pub const FILE_ID: Field = 72..88;
        pub const END: usize = 88;
    }
    pub mod tree_connect_req {
        use super::Field;
        pub const FLAGS: Field = 66..68;
        pub const PATH_OFFSET: Field = 68..70;
        pub const PATH_LENGTH: Field = 70..72;
        pub const END: usize = 72;
    }
    pub mod tree_connect_resp {
        use super::Field;
        pub const SHARE_TYPE: usize = 66;
        pub const SHARE_FLAGS: Field = 68..72;
        pub const CAPABILITIES: Field = 72..76;
        pub const MAXIMAL_ACCESS: Field = 76..80;
        pub const END: usize = 80;
    }
    pub mod negotiate_req {
        use super::Field;
        pub const DIALECT_COUNT: Field = 66..68;
        pub const DIALECTS: usize = 100;
    }
    pub mod negotiate_resp {
        use super::Field;
        pub const SECURITY_MODE: Field = 66..68;
        pub const DIALECT: Field = 68..70;
        pub const CAPABILITIES: Field = 88..92;
        pub const END: usize = 128;
    }
    pub mod session_setup_resp {
        use super::Field;
        pub const SESSION_FLAGS: Field = 66..68;
        pub const END: usize = 72;
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

/// A view of one SMB2 PDU: the 64-byte header and whatever follows it in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Header { buffer }
    }

    /// Checks the length (64), the protocol id and StructureSize (64).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if slice(b, field::PROTOCOL_ID) != PROTOCOL_ID {
            return Err(Error::BadMagic);
        }
        if le16(b, field::STRUCTURE_SIZE) != HEADER_LEN as u16 {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn credit_charge(&self) -> u16 {
        le16(self.buffer.as_ref(), field::CREDIT_CHARGE)
    }
    /// NTSTATUS of a response; ChannelSequence/Reserved in a request.
    pub fn status(&self) -> u32 {
        le32(self.buffer.as_ref(), field::STATUS)
    }
    pub fn command_code(&self) -> u16 {
        le16(self.buffer.as_ref(), field::COMMAND)
    }
    pub fn command(&self) -> Command {
        Command::from(self.command_code())
    }
    pub fn credits(&self) -> u16 {
        le16(self.buffer.as_ref(), field::CREDITS)
    }
    pub fn flags(&self) -> u32 {
        le32(self.buffer.as_ref(), field::FLAGS)
    }
    pub fn is_response(&self) -> bool {
        self.flags() & flags::RESPONSE != 0
    }
    pub fn is_async(&self) -> bool {
        self.flags() & flags::ASYNC_COMMAND != 0
    }
    pub fn is_related(&self) -> bool {
        self.flags() & flags::RELATED_OPERATIONS != 0
    }
    pub fn is_signed(&self) -> bool {
        self.flags() & flags::SIGNED != 0
    }
    pub fn next_command(&self) -> u32 {
        le32(self.buffer.as_ref(), field::NEXT_COMMAND)
    }
    pub fn message_id(&self) -> u64 {
        le64(self.buffer.as_ref(), field::MESSAGE_ID)
    }
    /// ProcessId of a sync header (0 when async).
    pub fn process_id(&self) -> u32 {
        if self.is_async() { 0 } else { le32(self.buffer.as_ref(), field::PROCESS_ID) }
    }
    /// TreeId of a sync header; `None` for an async one (which carries an AsyncId there).
    pub fn tree_id(&self) -> Option<u32> {
        if self.is_async() { None } else { Some(le32(self.buffer.as_ref(), field::TREE_ID)) }
    }
    /// AsyncId of an async header.
    pub fn async_id(&self) -> Option<u64> {
        if self.is_async() { Some(le64(self.buffer.as_ref(), field::ASYNC_ID)) } else { None }
    }
    pub fn session_id(&self) -> u64 {
        le64(self.buffer.as_ref(), field::SESSION_ID)
    }
    pub fn signature(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::SIGNATURE)
    }
    /// Bytes after the header (the command body and its buffer), up to the buffer's end.
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
    /// The body's StructureSize (first two bytes after the header).
    pub fn body_structure_size(&self) -> u16 {
        le16(self.buffer.as_ref(), HEADER_LEN..HEADER_LEN + 2)
    }
}

/// Iterator over the PDUs of one SMB2 message (a compound chain or a single PDU).
///
/// Each item is the PDU's bytes from its header to the next PDU (or to the end of the
/// buffer for the last one) as a checked [`Header`]. A header that does not check, or a
/// `NextCommand` that is non-zero but smaller than the header, yields one `Err` and ends
/// the walk; a `NextCommand` past the end of the buffer ends it after the current PDU
/// (see [`Pdus::truncated`]). At most [`MAX_PDUS`] PDUs are yielded (see [`Pdus::hit_limit`]),
/// so no chain can loop: offsets only grow and the count is bounded.
#[derive(Clone, Debug)]
pub struct Pdus<'a> {
    buf: &'a [u8],
    pos: usize,
    count: usize,
    done: bool,
    truncated: bool,
}

/// Walks the PDUs of an SMB2 message that starts at `buf[0]` (an NBSS payload).
pub fn pdus(buf: &[u8]) -> Pdus<'_> {
    Pdus { buf, pos: 0, count: 0, done: false, truncated: false }
}

impl<'a> Pdus<'a> {
    /// The chain pointed past the end of the buffer.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
    /// The walk stopped at [`MAX_PDUS`] while the chain went on.
    pub fn hit_limit(&self) -> bool {
        !self.done && self.count >= MAX_PDUS
    }
}

impl<'a> Iterator for Pdus<'a> {
    type Item = Result<Header<&'a [u8]>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.count >= MAX_PDUS {
            return None;
        }
        let rest = match self.buf.get(self.pos..) {
            Some(r) if !r.is_empty() => r,
            _ => {
                self.done = true;
                return None;
            }
        };
        self.count += 1;
        let h = match Header::new_checked(rest) {
            Ok(h) => h,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let next = h.next_command() as usize;
        if next == 0 {
            self.done = true;
            return Some(Ok(h));
        }
        if next < HEADER_LEN {
            self.done = true;
            return Some(Err(Error::Malformed));
        }
        match rest.get(..next) {
            Some(pdu) => {
                self.pos = self.pos.saturating_add(next);
                if self.pos >= self.buf.len() {
                    // NextCommand says another PDU follows, but the buffer ends here.
                    self.truncated = true;
                    self.done = true;
                }
                Some(Ok(Header::new_unchecked(pdu)))
            }
            None => {
                self.truncated = true;
                self.done = true;
                Some(Ok(h))
            }
        }
    }
}

/// SMB3 transform header (`0xFD 'SMB'`): the message after it is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransformHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TransformHeader<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        TransformHeader { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < TRANSFORM_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if slice(b, field::transform::PROTOCOL_ID) != TRANSFORM_PROTOCOL_ID {
            return Err(Error::BadMagic);
        }
        Ok(())
    }
    pub fn signature(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::transform::SIGNATURE)
    }
    pub fn nonce(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::transform::NONCE)
    }
    /// Size of the SMB2 message once decrypted.
    pub fn original_message_size(&self) -> u32 {
        le32(self.buffer.as_ref(), field::transform::ORIGINAL_MESSAGE_SIZE)
    }
    /// Flags (3.1.1) / EncryptionAlgorithm (3.0): 1 = encrypted.
    pub fn flags(&self) -> u16 {
        le16(self.buffer.as_ref(), field::transform::FLAGS)
    }
    pub fn session_id(&self) -> u64 {
        le64(self.buffer.as_ref(), field::transform::SESSION_ID)
    }
    /// The encrypted message.
    pub fn ciphertext(&self) -> &[u8] {
        self.buffer.as_ref().get(TRANSFORM_HEADER_LEN..).unwrap_or(&[])
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

body_view!(
    /// CREATE request (MS-SMB2 2.2.13).
    CreateRequest, Command::Create, false, 57, field::create_req::BUFFER
);

impl<T: AsRef<[u8]>> CreateRequest<T> {
    pub fn oplock_level(&self) -> u8 {
        super::u8_at(self.buffer.as_ref(), field::create_req::OPLOCK)
    }
    pub fn impersonation_level(&self) -> u32 {
        le32(self.buffer.as_ref(), field::create_req::IMPERSONATION)
    }
    pub fn desired_access(&self) -> u32 {
        le32(self.buffer.as_ref(), field::create_req::DESIRED_ACCESS)
    }
    pub fn file_attributes(&self) -> u32 {
        le32(self.buffer.as_ref(), field::create_req::FILE_ATTRIBUTES)
    }
    pub fn share_access(&self) -> u32 {
        le32(self.buffer.as_ref(), field::create_req::SHARE_ACCESS)
    }
    pub fn create_disposition(&self) -> u32 {
        le32(self.buffer.as_ref(), field::create_req::DISPOSITION)
    }
    pub fn create_options(&self) -> u32 {
        le32(self.buffer.as_ref(), field::create_req::OPTIONS)
    }
    /// Offset of the name from the start of the SMB2 header.
    pub fn name_offset(&self) -> u16 {
        le16(self.buffer.as_ref(), field::create_req::NAME_OFFSET)
    }
    /// Length of the name in bytes (UTF-16LE, so normally even).
    pub fn name_length(&self) -> u16 {
        le16(self.buffer.as_ref(), field::create_req::NAME_LENGTH)
    }
    pub fn create_contexts_offset(&self) -> u32 {
        le32(self.buffer.as_ref(), field::create_req::CONTEXTS_OFFSET)
    }
    pub fn create_contexts_length(&self) -> u32 {
        le32(self.buffer.as_ref(), field::create_req::CONTEXTS_LENGTH)
    }
    /// [`create_has_write_intent`] for this request.
    pub fn has_write_intent(&self) -> bool {
        create_has_write_intent(self.desired_access(), self.create_disposition(), self.create_options())
    }
    /// The name's UTF-16LE bytes; `Ok(&[])` for an empty name (the share root).
    /// `Err(Truncated)` if NameOffset + NameLength runs past the buffer, `Err(Malformed)`
    /// if NameOffset points into the fixed part.
    pub fn name(&self) -> Result<&[u8]> {
        let len = self.name_length() as usize;
        if len == 0 {
            return Ok(&[]);
        }
        let off = self.name_offset() as usize;
        if off < field::create_req::BUFFER {
            return Err(Error::Malformed);
        }
        region(self.buffer.as_ref(), off, len)
    }
    /// What the buffer holds of the name, and whether it was cut: for a TC program that
    /// sees only the first segment of a long CREATE.
    pub fn name_partial(&self) -> Result<(&[u8], bool)> {
        region_partial(
            self.buffer.as_ref(),
            self.name_offset() as usize,
            self.name_length() as usize,
            field::create_req::BUFFER,
        )
    }
}

body_view!(
    /// CREATE response (MS-SMB2 2.2.14). Only a success response has this layout: check
    /// `header().status()` first (an error response has StructureSize 9 and fails the check).
    CreateResponse, Command::Create, true, 89, field::create_resp::END
);

impl<T: AsRef<[u8]>> CreateResponse<T> {
    pub fn oplock_level(&self) -> u8 {
        super::u8_at(self.buffer.as_ref(), field::create_resp::OPLOCK)
    }
    /// 0 superseded, 1 opened, 2 created, 3 overwritten.
    pub fn create_action(&self) -> u32 {
        le32(self.buffer.as_ref(), field::create_resp::CREATE_ACTION)
    }
    pub fn end_of_file(&self) -> u64 {
        le64(self.buffer.as_ref(), field::create_resp::END_OF_FILE)
    }
    pub fn file_attributes(&self) -> u32 {
        le32(self.buffer.as_ref(), field::create_resp::FILE_ATTRIBUTES)
    }
    pub fn file_id(&self) -> FileId {
        FileId::from_bytes(slice(self.buffer.as_ref(), field::create_resp::FILE_ID))
    }
}

body_view!(
    /// WRITE request (MS-SMB2 2.2.21).
    WriteRequest, Command::Write, false, 49, field::write_req::END
);

impl<T: AsRef<[u8]>> WriteRequest<T> {
    /// Offset of the data from the start of the SMB2 header.
    pub fn data_offset(&self) -> u16 {
        le16(self.buffer.as_ref(), field::write_req::DATA_OFFSET)
    }
    pub fn length(&self) -> u32 {
        le32(self.buffer.as_ref(), field::write_req::LENGTH)
    }
    pub fn offset(&self) -> u64 {
        le64(self.buffer.as_ref(), field::write_req::OFFSET)
    }
    pub fn file_id(&self) -> FileId {
        FileId::from_bytes(slice(self.buffer.as_ref(), field::write_req::FILE_ID))
    }
    pub fn flags(&self) -> u32 {
        le32(self.buffer.as_ref(), field::write_req::FLAGS)
    }
    /// The data bytes present in the buffer (fewer than `length` if it is cut).
    pub fn data(&self) -> &[u8] {
        region_partial(
            self.buffer.as_ref(),
            self.data_offset() as usize,
            self.length() as usize,
            field::write_req::END,
        )
        .map(|(d, _)| d)
        .unwrap_or(&[])
    }
}

body_view!(
    /// WRITE response (MS-SMB2 2.2.22).
    WriteResponse, Command::Write, true, 17, field::write_resp::END
);

impl<T: AsRef<[u8]>> WriteResponse<T> {
    /// Bytes written.
    pub fn count(&self) -> u32 {
        le32(self.buffer.as_ref(), field::write_resp::COUNT)
    }
}

body_view!(
    /// READ request (MS-SMB2 2.2.19). Clients send StructureSize 49 with at least one
    /// byte of Buffer; the fixed part checked is the 48 bytes before it.
    ReadRequest, Command::Read, false, 49, field::read_req::END
);

impl<T: AsRef<[u8]>> ReadRequest<T> {
    pub fn length(&self) -> u32 {
        le32(self.buffer.as_ref(), field::read_req::LENGTH)
    }
    pub fn offset(&self) -> u64 {
        le64(self.buffer.as_ref(), field::read_req::OFFSET)
    }
    pub fn file_id(&self) -> FileId {
        FileId::from_bytes(slice(self.buffer.as_ref(), field::read_req::FILE_ID))
    }
    pub fn minimum_count(&self) -> u32 {
        le32(self.buffer.as_ref(), field::read_req::MINIMUM_COUNT)
    }
}

body_view!(
    /// READ response (MS-SMB2 2.2.20).
    ReadResponse, Command::Read, true, 17, field::read_resp::END
);

impl<T: AsRef<[u8]>> ReadResponse<T> {
    /// Offset of the data from the start of the SMB2 header.
    pub fn data_offset(&self) -> u8 {
        super::u8_at(self.buffer.as_ref(), field::read_resp::DATA_OFFSET)
    }
    pub fn data_length(&self) -> u32 {
        le32(self.buffer.as_ref(), field::read_resp::DATA_LENGTH)
    }
}

body_view!(
    /// CLOSE request (MS-SMB2 2.2.15).
    CloseRequest, Command::Close, false, 24, field::close_req::END
);

impl<T: AsRef<[u8]>> CloseRequest<T> {
    pub fn flags(&self) -> u16 {
        le16(self.buffer.as_ref(), field::close_req::FLAGS)
    }
    pub fn file_id(&self) -> FileId {
        FileId::from_bytes(slice(self.buffer.as_ref(), field::close_req::FILE_ID))
    }
}

body_view!(
    /// TREE_CONNECT request (MS-SMB2 2.2.9): the share path `\\server\share`, UTF-16LE.
    TreeConnectRequest, Command::TreeConnect, false, 9, field::tree_connect_req::END
);

impl<T: AsRef<[u8]>> TreeConnectRequest<T> {
    /// SMB 3.1.1: bit 0x4 means an extension is present.
    pub fn flags(&self) -> u16 {
        le16(self.buffer.as_ref(), field::tree_connect_req::FLAGS)
    }
    pub fn path_offset(&self) -> u16 {
        le16(self.buffer.as_ref(), field::tree_connect_req::PATH_OFFSET)
    }
    pub fn path_length(&self) -> u16 {
        le16(self.buffer.as_ref(), field::tree_connect_req::PATH_LENGTH)
    }
    /// The path's UTF-16LE bytes (strict: `Err(Truncated)` past the end).
    pub fn path(&self) -> Result<&[u8]> {
        let len = self.path_length() as usize;
        if len == 0 {
            return Ok(&[]);
        }
        let off = self.path_offset() as usize;
        if off < field::tree_connect_req::END {
            return Err(Error::Malformed);
        }
        region(self.buffer.as_ref(), off, len)
    }
}

body_view!(
    /// TREE_CONNECT response (MS-SMB2 2.2.10). The new TreeId is in the header.
    TreeConnectResponse, Command::TreeConnect, true, 16, field::tree_connect_resp::END
);

impl<T: AsRef<[u8]>> TreeConnectResponse<T> {
    /// 1 disk, 2 pipe, 3 print.
    pub fn share_type(&self) -> u8 {
        super::u8_at(self.buffer.as_ref(), field::tree_connect_resp::SHARE_TYPE)
    }
    pub fn share_flags(&self) -> u32 {
        le32(self.buffer.as_ref(), field::tree_connect_resp::SHARE_FLAGS)
    }
    pub fn capabilities(&self) -> u32 {
        le32(self.buffer.as_ref(), field::tree_connect_resp::CAPABILITIES)
    }
    pub fn maximal_access(&self) -> u32 {
        le32(self.buffer.as_ref(), field::tree_connect_resp::MAXIMAL_ACCESS)
    }
    pub fn encrypts_data(&self) -> bool {
        self.share_flags() & SHARE_FLAG_ENCRYPT_DATA != 0
    }
}

body_view!(
    /// NEGOTIATE request (MS-SMB2 2.2.3): the dialects the client offers.
    NegotiateRequest, Command::Negotiate, false, 36, field::negotiate_req::DIALECTS
);

impl<T: AsRef<[u8]>> NegotiateRequest<T> {
    pub fn dialect_count(&self) -> u16 {
        le16(self.buffer.as_ref(), field::negotiate_req::DIALECT_COUNT)
    }
    /// The `i`th dialect offered, if present in the buffer.
    pub fn dialect(&self, i: usize) -> Option<u16> {
        if i >= self.dialect_count() as usize {
            return None;
        }
        let at = field::negotiate_req::DIALECTS.checked_add(i.checked_mul(2)?)?;
        let b = self.buffer.as_ref().get(at..at.checked_add(2)?)?;
        Some(le16(b, 0..2))
    }
    /// Highest dialect offered among the first 16.
    pub fn max_dialect(&self) -> Option<u16> {
        let mut best: Option<u16> = None;
        for i in 0..16 {
            match self.dialect(i) {
                Some(d) if d != dialect::SMB2_WILDCARD => {
                    best = Some(match best {
                        Some(b) if b >= d => b,
                        _ => d,
                    })
                }
                Some(_) => {}
                None => break,
            }
        }
        best
    }
}

body_view!(
    /// NEGOTIATE response (MS-SMB2 2.2.4): the dialect chosen.
    NegotiateResponse, Command::Negotiate, true, 65, field::negotiate_resp::END
);

impl<T: AsRef<[u8]>> NegotiateResponse<T> {
    pub fn security_mode(&self) -> u16 {
        le16(self.buffer.as_ref(), field::negotiate_resp::SECURITY_MODE)
    }
    pub fn dialect_revision(&self) -> u16 {
        le16(self.buffer.as_ref(), field::negotiate_resp::DIALECT)
    }
    pub fn capabilities(&self) -> u32 {
        le32(self.buffer.as_ref(), field::negotiate_resp::CAPABILITIES)
    }
}

body_view!(
    /// SESSION_SETUP response (MS-SMB2 2.2.6): the new SessionId is in the header.
    SessionSetupResponse, Command::SessionSetup, true, 9, field::session_setup_resp::END
);

impl<T: AsRef<[u8]>> SessionSetupResponse<T> {
    pub fn session_flags(&self) -> u16 {
        le16(self.buffer.as_ref(), field::session_setup_resp::SESSION_FLAGS)
    }
    pub fn encrypts_data(&self) -> bool {
        self.session_flags() & SESSION_FLAG_ENCRYPT_DATA != 0
    }
}

/// Builders for tests and the fuzzer's seed corpus (std only).
#[cfg(any(test, feature = "std"))]
pub mod build {
    extern crate std;
    use std::vec::Vec;

    /// A 64-byte SMB2 header.
    pub fn header(command: u16, flags: u32, next: u32, message_id: u64, tree_id: u32, session_id: u64) -> Vec<u8> {
        let mut h = Vec::with_capacity(64);
        h.extend_from_slice(&super::PROTOCOL_ID);
        h.extend_from_slice(&64u16.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // credit charge
        h.extend_from_slice(&0u32.to_le_bytes()); // status
        h.extend_from_slice(&command.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // credits
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&next.to_le_bytes());
        h.extend_from_slice(&message_id.to_le_bytes());
        h.extend_from_slice(&0xfeffu32.to_le_bytes()); // process id
        h.extend_from_slice(&tree_id.to_le_bytes());
        h.extend_from_slice(&session_id.to_le_bytes());
        h.extend_from_slice(&[0u8; 16]);
        h
    }

    /// A CREATE request PDU with `name` (UTF-16LE bytes) right after the fixed part.
    pub fn create_request(name: &[u8], access: u32, disposition: u32, options: u32, message_id: u64) -> Vec<u8> {
        let mut p = header(5, 0, 0, message_id, 7, 0x1122);
        p.extend_from_slice(&57u16.to_le_bytes());
        p.push(0); // security flags
        p.push(0); // oplock
        p.extend_from_slice(&2u32.to_le_bytes()); // impersonation
        p.extend_from_slice(&[0u8; 16]); // create flags + reserved
        p.extend_from_slice(&access.to_le_bytes());
        p.extend_from_slice(&0x80u32.to_le_bytes()); // attributes
        p.extend_from_slice(&3u32.to_le_bytes()); // share access
        p.extend_from_slice(&disposition.to_le_bytes());
        p.extend_from_slice(&options.to_le_bytes());
        p.extend_from_slice(&120u16.to_le_bytes()); // name offset
        p.extend_from_slice(&(name.len() as u16).to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(name);
        if name.is_empty() {
            p.push(0);
        }
        p
    }

    /// A successful CREATE response PDU naming `fid`.
    pub fn create_response(message_id: u64, fid: super::FileId) -> Vec<u8> {
        let mut p = header(5, super::flags::RESPONSE, 0, message_id, 7, 0x1122);
        p.extend_from_slice(&89u16.to_le_bytes());
        p.resize(super::field::create_resp::FILE_ID.start, 0);
        p.extend_from_slice(&fid.to_bytes());
        p.resize(super::HEADER_LEN + 89, 0);
        p
    }

    /// A WRITE request PDU of `data` at offset 0 of `fid`, the data right after the fixed part.
    pub fn write_request(message_id: u64, fid: super::FileId, data: &[u8]) -> Vec<u8> {
        let mut p = header(9, 0, 0, message_id, 7, 0x1122);
        p.extend_from_slice(&49u16.to_le_bytes());
        p.extend_from_slice(&(super::field::write_req::END as u16).to_le_bytes());
        p.extend_from_slice(&(data.len() as u32).to_le_bytes());
        p.extend_from_slice(&0u64.to_le_bytes());
        p.extend_from_slice(&fid.to_bytes());
        p.resize(super::field::write_req::END, 0);
        p.extend_from_slice(data);
        p
    }

    /// A READ request PDU for `length` bytes at `offset` of `fid`.
    pub fn read_request(message_id: u64, fid: super::FileId, length: u32, offset: u64) -> Vec<u8> {
        let mut p = header(8, 0, 0, message_id, 7, 0x1122);
        p.extend_from_slice(&49u16.to_le_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&length.to_le_bytes());
        p.extend_from_slice(&offset.to_le_bytes());
        p.extend_from_slice(&fid.to_bytes());
        p.resize(super::field::read_req::END + 1, 0);
        p
    }

    /// UTF-16LE bytes of `s`.
    pub fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    /// Wraps an SMB message in an NBSS session-message header.
    pub fn nbss(msg: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(msg.len() + 4);
        v.push(0);
        v.extend_from_slice(&(msg.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(msg);
        v
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::build::*;
    use super::*;
    use std::vec::Vec;

    fn set_next(pdu: &mut [u8], next: u32) {
        pdu[20..24].copy_from_slice(&next.to_le_bytes());
    }

    #[test]
    fn header_sync_and_async() {
        let h = header(5, 0, 0, 42, 7, 0x1122);
        let v = Header::new_checked(&h[..]).unwrap();
        assert_eq!(v.command(), Command::Create);
        assert_eq!(v.message_id(), 42);
        assert_eq!(v.tree_id(), Some(7));
        assert_eq!(v.session_id(), 0x1122);
        assert!(!v.is_response());
        let h = header(15, flags::ASYNC_COMMAND | flags::RESPONSE, 0, 42, 7, 0x1122);
        let v = Header::new_checked(&h[..]).unwrap();
        assert_eq!(v.tree_id(), None);
        assert_eq!(v.async_id(), Some(0xfeff | (7u64 << 32)));
        assert!(v.is_response());
    }

    #[test]
    fn truncated_and_bad_headers() {
        let h = header(5, 0, 0, 1, 1, 1);
        for n in 0..64 {
            assert_eq!(Header::new_checked(&h[..n]).unwrap_err(), Error::Truncated);
            let u = Header::new_unchecked(&h[..n]);
            let _ = (u.message_id(), u.session_id(), u.tree_id(), u.body(), u.next_command());
        }
        let mut bad = h.clone();
        bad[0] = 0xff;
        assert_eq!(Header::new_checked(&bad[..]).unwrap_err(), Error::BadMagic);
        let mut bad = h.clone();
        bad[4] = 63;
        assert_eq!(Header::new_checked(&bad[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn create_request_fields_and_name() {
        let name = utf16("dir\\a file.txt");
        let p = create_request(&name, access::FILE_WRITE_DATA, disposition::OPEN_IF, 0x40, 9);
        let c = CreateRequest::new_checked(&p[..]).unwrap();
        assert_eq!(c.name().unwrap(), &name[..]);
        assert_eq!(c.create_disposition(), disposition::OPEN_IF);
        assert_eq!(c.desired_access(), access::FILE_WRITE_DATA);
        assert_eq!(c.create_options(), 0x40);
        assert_eq!(c.header().message_id(), 9);
        assert!(c.has_write_intent());
        assert_eq!(c.name_partial().unwrap(), (&name[..], false));
    }

    #[test]
    fn create_name_past_the_end() {
        let name = utf16("abcdef");
        let mut p = create_request(&name, 0, 1, 0, 1);
        // NameLength past the end
        p[110..112].copy_from_slice(&200u16.to_le_bytes());
        let c = CreateRequest::new_checked(&p[..]).unwrap();
        assert_eq!(c.name().unwrap_err(), Error::Truncated);
        assert_eq!(c.name_partial().unwrap(), (&name[..], true));
        // NameOffset past the end
        p[108..110].copy_from_slice(&0xfff0u16.to_le_bytes());
        p[110..112].copy_from_slice(&0xffffu16.to_le_bytes());
        let c = CreateRequest::new_checked(&p[..]).unwrap();
        assert_eq!(c.name().unwrap_err(), Error::Truncated);
        assert_eq!(c.name_partial().unwrap_err(), Error::Truncated);
        // NameOffset inside the fixed part
        p[108..110].copy_from_slice(&10u16.to_le_bytes());
        p[110..112].copy_from_slice(&4u16.to_le_bytes());
        let c = CreateRequest::new_checked(&p[..]).unwrap();
        assert_eq!(c.name().unwrap_err(), Error::Malformed);
    }

    #[test]
    fn create_zero_length_and_odd_names() {
        let p = create_request(&[], 0x80, 1, 1, 1);
        let c = CreateRequest::new_checked(&p[..]).unwrap();
        assert_eq!(c.name().unwrap(), &[] as &[u8]);
        assert!(!c.has_write_intent());
        let p = create_request(&[b'a', 0, b'b'], 0, 5, 0, 1);
        let c = CreateRequest::new_checked(&p[..]).unwrap();
        assert_eq!(c.name().unwrap().len(), 3);
        assert!(c.has_write_intent());
    }

    #[test]
    fn create_1000_byte_name() {
        let s = "x".repeat(500);
        let name = utf16(&s);
        assert_eq!(name.len(), 1000);
        let p = create_request(&name, 0, 2, 0, 1);
        let c = CreateRequest::new_checked(&p[..]).unwrap();
        assert_eq!(c.name().unwrap().len(), 1000);
        // cut after 200 bytes of name, as a TC program might see it
        let c = CreateRequest::new_checked(&p[..320]).unwrap();
        let (n, cut) = c.name_partial().unwrap();
        assert_eq!((n.len(), cut), (200, true));
    }

    #[test]
    fn create_truncated_fixed_part() {
        let p = create_request(&utf16("a"), 0, 2, 0, 1);
        for n in 0..120 {
            assert!(CreateRequest::new_checked(&p[..n]).is_err());
            let u = CreateRequest::new_unchecked(&p[..n]);
            let _ = (u.name(), u.name_partial(), u.desired_access(), u.has_write_intent());
        }
    }

    #[test]
    fn compound_chain() {
        let mut a = create_request(&utf16("testfile.txt"), 0x40000000, 2, 0, 1);
        while !a.len().is_multiple_of(8) {
            a.push(0);
        }
        let alen = a.len() as u32;
        set_next(&mut a, alen);
        let mut b = header(17, flags::RELATED_OPERATIONS, 0, 2, 7, 0x1122);
        b.extend_from_slice(&[0u8; 40]);
        set_next(&mut b, 104);
        let mut c = header(6, flags::RELATED_OPERATIONS, 0, 3, 7, 0x1122);
        c.extend_from_slice(&24u16.to_le_bytes());
        c.extend_from_slice(&[0u8; 6]);
        c.extend_from_slice(&[0xffu8; 16]);
        let msg: Vec<u8> = [a, b, c].concat();
        let got: Vec<_> = pdus(&msg).collect();
        assert_eq!(got.len(), 3);
        let cmds: Vec<_> = got.iter().map(|p| p.as_ref().unwrap().command()).collect();
        assert_eq!(cmds, [Command::Create, Command::SetInfo, Command::Close]);
        let close = CloseRequest::new_checked(got[2].unwrap().into_inner()).unwrap();
        assert!(close.file_id().is_related());
        assert!(close.header().is_related());
        let create = CreateRequest::new_checked(got[0].unwrap().into_inner()).unwrap();
        assert_eq!(create.name().unwrap(), &utf16("testfile.txt")[..]);
    }

    #[test]
    fn next_command_loops_and_garbage() {
        // NextCommand = 64 forever: each PDU is a bare header; bounded by MAX_PDUS
        let mut one = header(13, 0, 64, 1, 0, 0);
        set_next(&mut one, 64);
        let msg: Vec<u8> = core::iter::repeat_n(one, 40).flatten().collect();
        let mut it = pdus(&msg);
        assert_eq!(it.by_ref().count(), MAX_PDUS);
        assert!(it.hit_limit());
        // NextCommand smaller than a header
        let mut h = header(13, 0, 0, 1, 0, 0);
        set_next(&mut h, 8);
        let got: Vec<_> = pdus(&h).collect();
        assert_eq!(got, [Err(Error::Malformed)]);
        // NextCommand past the end
        let mut h = header(13, 0, 0, 1, 0, 0);
        set_next(&mut h, 0xffff_fff8);
        let mut it = pdus(&h);
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().is_none());
        assert!(it.truncated());
        // garbage after a valid PDU
        let mut h = header(13, 0, 0, 1, 0, 0);
        set_next(&mut h, 64);
        h.extend_from_slice(b"garbage");
        let got: Vec<_> = pdus(&h).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Err(Error::Truncated));
    }

    #[test]
    fn write_read_close_views() {
        let mut w = header(9, 0, 0, 5, 7, 1);
        w.extend_from_slice(&49u16.to_le_bytes());
        w.extend_from_slice(&112u16.to_le_bytes());
        w.extend_from_slice(&7000u32.to_le_bytes());
        w.extend_from_slice(&4096u64.to_le_bytes());
        w.extend_from_slice(&FileId { persistent: 1, volatile: 2 }.to_bytes());
        w.extend_from_slice(&[0u8; 16]);
        w.extend_from_slice(b"data");
        let v = WriteRequest::new_checked(&w[..]).unwrap();
        assert_eq!((v.length(), v.offset()), (7000, 4096));
        assert_eq!(v.file_id(), FileId { persistent: 1, volatile: 2 });
        assert_eq!(v.data(), b"data");
        assert!(ReadRequest::new_checked(&w[..]).is_err());
        assert!(WriteRequest::new_checked(&w[..100]).is_err());

        let mut r = header(8, 0, 0, 5, 7, 1);
        r.extend_from_slice(&49u16.to_le_bytes());
        r.extend_from_slice(&[0, 0]);
        r.extend_from_slice(&16u32.to_le_bytes());
        r.extend_from_slice(&0u64.to_le_bytes());
        r.extend_from_slice(&FileId::RELATED.to_bytes());
        r.extend_from_slice(&[0u8; 17]);
        let v = ReadRequest::new_checked(&r[..]).unwrap();
        assert_eq!(v.length(), 16);
        assert!(v.file_id().is_related());
    }

    #[test]
    fn tree_connect_negotiate_transform() {
        let path = utf16("\\\\srv\\share");
        let mut t = header(3, 0, 0, 5, 0, 1);
        t.extend_from_slice(&9u16.to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        t.extend_from_slice(&72u16.to_le_bytes());
        t.extend_from_slice(&(path.len() as u16).to_le_bytes());
        t.extend_from_slice(&path);
        let v = TreeConnectRequest::new_checked(&t[..]).unwrap();
        assert_eq!(v.path().unwrap(), &path[..]);
        t[70..72].copy_from_slice(&500u16.to_le_bytes());
        let v = TreeConnectRequest::new_checked(&t[..]).unwrap();
        assert_eq!(v.path().unwrap_err(), Error::Truncated);

        let mut n = header(0, flags::RESPONSE, 0, 0, 0, 0);
        n.extend_from_slice(&65u16.to_le_bytes());
        n.extend_from_slice(&1u16.to_le_bytes());
        n.extend_from_slice(&dialect::SMB3_1_1.to_le_bytes());
        n.extend_from_slice(&[0u8; 58]);
        let v = NegotiateResponse::new_checked(&n[..]).unwrap();
        assert_eq!(dialect::name(v.dialect_revision()), "3.1.1");

        let mut x = std::vec![0u8; 60];
        x[..4].copy_from_slice(&TRANSFORM_PROTOCOL_ID);
        x[44..52].copy_from_slice(&0xabcdu64.to_le_bytes());
        assert_eq!(classify(&x), Kind::Encrypted);
        let v = TransformHeader::new_checked(&x[..]).unwrap();
        assert_eq!(v.session_id(), 0xabcd);
        assert_eq!(v.ciphertext().len(), 8);
        assert_eq!(TransformHeader::new_checked(&x[..51]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn write_intent_policy() {
        use access::*;
        assert!(create_has_write_intent(0, disposition::OVERWRITE_IF, 0));
        assert!(create_has_write_intent(GENERIC_WRITE, disposition::OPEN, 0));
        assert!(!create_has_write_intent(GENERIC_READ | MAXIMUM_ALLOWED, disposition::OPEN, 0));
        assert!(!create_has_write_intent(GENERIC_ALL, disposition::CREATE, options::FILE_DIRECTORY_FILE));
    }
}
