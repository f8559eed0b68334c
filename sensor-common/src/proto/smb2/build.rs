//! Builders for tests and the fuzzer's seed corpus: the layouts of [`super::field`] filled in.

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
