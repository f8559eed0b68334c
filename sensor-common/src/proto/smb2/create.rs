//! CREATE request and response bodies: the name a client opens and the FileId it gets.

use super::{Command, Error, FileId, Header, Result, create_has_write_intent, field, le16, le32, le64, region, region_partial, slice};
use crate::proto::u8_at;

body_view!(
    /// CREATE request (MS-SMB2 2.2.13).
    CreateRequest, Command::Create, false, 57, field::create_req::BUFFER
);

impl<T: AsRef<[u8]>> CreateRequest<T> {
    pub fn oplock_level(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::create_req::OPLOCK)
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
        u8_at(self.buffer.as_ref(), field::create_resp::OPLOCK)
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
