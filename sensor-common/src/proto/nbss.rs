//! NetBIOS Session Service framing as SMB2 uses it (RFC 1002 4.3.1, MS-SMB2 2.1).
//!
//! On TCP 445 ("direct TCP") and 139 every SMB message is preceded by 4 bytes: a type
//! byte and a 24-bit big-endian length of what follows. One TCP segment may carry several
//! records, and a record may continue in later segments; [`Records`] walks every record
//! in a buffer (at most [`MAX_RECORDS`]) and says whether each one is complete.
//!
//! ```text
//!  0        1                       4
//! +--------+-----------------------+---------------- ... --+
//! |  type  | length (24-bit BE)    | payload (length bytes) |
//! +--------+-----------------------+---------------- ... --+
//! ```
//!
//! RFC 1002 gives the length 17 bits (7 flag bits, then 1 extension bit); MS-SMB2 uses
//! all 24 bits on port 445, and no SMB2 peer sets the flag bits on 139, so the length is
//! read as 24 bits on both.

use super::{Error, Field, Result, slice, u8_at};

/// Size of the record header.
pub const HEADER_LEN: usize = 4;
/// Largest record length the header can express (2^24 - 1).
pub const MAX_LENGTH: u32 = 0x00ff_ffff;
/// [`Records`] stops after this many records, so a crafted buffer of empty keep-alives
/// costs a bounded amount of work.
pub const MAX_RECORDS: usize = 16;

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const LENGTH: Field = 1..4;
    pub const PAYLOAD: usize = 4;
}

/// The record type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 0x00: carries an SMB message.
    SessionMessage,
    /// 0x81: session request (port 139 only).
    SessionRequest,
    /// 0x82
    PositiveResponse,
    /// 0x83
    NegativeResponse,
    /// 0x84
    RetargetResponse,
    /// 0x85
    KeepAlive,
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> Self {
        match v {
            0x00 => MessageType::SessionMessage,
            0x81 => MessageType::SessionRequest,
            0x82 => MessageType::PositiveResponse,
            0x83 => MessageType::NegativeResponse,
            0x84 => MessageType::RetargetResponse,
            0x85 => MessageType::KeepAlive,
            other => MessageType::Unknown(other),
        }
    }
}

/// A view of one NBSS record at the start of `buffer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking. Accessors still never panic (short reads give 0).
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps `buffer` if it holds at least the 4-byte header. The payload may be
    /// incomplete: see [`Packet::is_complete`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN { Err(Error::Truncated) } else { Ok(()) }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> MessageType {
        MessageType::from(u8_at(self.buffer.as_ref(), field::TYPE))
    }

    /// Length of the payload as the header states it.
    pub fn length(&self) -> u32 {
        let b = slice(self.buffer.as_ref(), field::LENGTH);
        match b {
            &[a, c, d] => u32::from_be_bytes([0, a, c, d]),
            _ => 0,
        }
    }

    /// Header plus stated payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.length() as usize
    }

    /// Does the buffer hold the whole payload?
    pub fn is_complete(&self) -> bool {
        self.buffer.as_ref().len() >= self.total_len()
    }

    /// The payload: `length` bytes, or fewer if the buffer ends first.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = self.total_len().min(b.len());
        b.get(field::PAYLOAD..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, t: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::TYPE) {
            *b = t;
        }
    }
    /// Sets the 24-bit length (values above [`MAX_LENGTH`] are cut to 24 bits).
    pub fn set_length(&mut self, len: u32) {
        let be = len.to_be_bytes();
        if let Some(b) = self.buffer.as_mut().get_mut(field::LENGTH) {
            b.copy_from_slice(&be[1..4]);
        }
    }
}

/// One record found by [`Records`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Offset of the record header in the walked buffer.
    pub offset: usize,
    pub msg_type: MessageType,
    /// Payload length the header states.
    pub length: u32,
    /// The payload bytes present (all of them when `complete`).
    pub payload: &'a [u8],
    /// The whole payload is in the buffer.
    pub complete: bool,
}

/// Iterator over every NBSS record in a buffer that starts on a record boundary.
///
/// Stops at the end of the buffer, after an incomplete record (which it yields with
/// `complete == false`), at a header cut short (see [`Records::partial_header`]) or after
/// [`MAX_RECORDS`] records (see [`Records::hit_limit`]).
#[derive(Clone, Debug)]
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    count: usize,
}

/// Walks the NBSS records of `buf`.
pub fn records(buf: &[u8]) -> Records<'_> {
    Records { buf, pos: 0, count: 0 }
}

impl<'a> Records<'a> {
    /// Offset just past the last record yielded (where the next one would start).
    pub fn position(&self) -> usize {
        self.pos
    }
    /// 1 to 3 bytes of a header remain at the end: the next record starts in a later segment.
    pub fn partial_header(&self) -> bool {
        let rest = self.buf.len().saturating_sub(self.pos);
        rest > 0 && rest < HEADER_LEN
    }
    /// The walk stopped at [`MAX_RECORDS`] with bytes left.
    pub fn hit_limit(&self) -> bool {
        self.count >= MAX_RECORDS && self.pos < self.buf.len()
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.count >= MAX_RECORDS {
            return None;
        }
        let rest = self.buf.get(self.pos..)?;
        let p = Packet::new_checked(rest).ok()?;
        let end = p.total_len().min(rest.len());
        let rec = Record {
            offset: self.pos,
            msg_type: p.msg_type(),
            length: p.length(),
            payload: rest.get(field::PAYLOAD..end).unwrap_or(&[]),
            complete: p.is_complete(),
        };
        self.count += 1;
        // An incomplete record ends the walk: position then points past the buffer.
        self.pos = self.pos.saturating_add(p.total_len());
        Some(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let b = [0x00, 0x01, 0x02, 0x03, 0xaa];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), MessageType::SessionMessage);
        assert_eq!(p.length(), 0x010203);
        assert!(!p.is_complete());
        assert_eq!(p.payload(), &[0xaa]);
    }

    #[test]
    fn truncated_header() {
        for n in 0..4 {
            let b = [0u8; 4];
            assert_eq!(Packet::new_checked(&b[..n]).unwrap_err(), Error::Truncated);
            // unchecked views never panic
            let p = Packet::new_unchecked(&b[..n]);
            assert_eq!(p.length(), 0);
            assert_eq!(p.payload(), &[] as &[u8]);
        }
    }

    #[test]
    fn every_record_in_a_buffer() {
        let b = [0x85, 0, 0, 0, 0x00, 0, 0, 2, 1, 2, 0x00, 0, 0, 3, 9];
        let r: [Option<Record>; 4] = {
            let mut it = records(&b);
            [it.next(), it.next(), it.next(), it.next()]
        };
        let r0 = r[0].unwrap();
        assert_eq!((r0.msg_type, r0.length, r0.complete), (MessageType::KeepAlive, 0, true));
        let r1 = r[1].unwrap();
        assert_eq!((r1.offset, r1.payload, r1.complete), (4, &[1u8, 2][..], true));
        let r2 = r[2].unwrap();
        assert_eq!((r2.offset, r2.payload, r2.complete), (10, &[9u8][..], false));
        assert!(r[3].is_none());
    }

    #[test]
    fn partial_header_and_limit() {
        let b = [0x00, 0, 0, 1, 7, 0x00, 0];
        let mut it = records(&b);
        assert!(it.next().unwrap().complete);
        assert!(it.next().is_none());
        assert!(it.partial_header());

        let mut many = [0u8; 160];
        for c in many.chunks_mut(4) {
            c[0] = 0x85;
        }
        let mut it = records(&many);
        assert_eq!(it.by_ref().count(), MAX_RECORDS);
        assert!(it.hit_limit());
    }

    #[test]
    fn set_fields() {
        let mut b = [0u8; 4];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(0x00);
        p.set_length(0x123456);
        assert_eq!(p.length(), 0x123456);
    }
}
