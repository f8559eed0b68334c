//! The SMB2 header, the walk over a compound chain, and the SMB3 transform header.

use super::{Command, Error, HEADER_LEN, MAX_PDUS, PROTOCOL_ID, Result, TRANSFORM_HEADER_LEN, TRANSFORM_PROTOCOL_ID, field, flags, le16, le32, le64, slice};

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
