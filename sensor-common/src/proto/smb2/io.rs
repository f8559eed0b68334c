//! WRITE, READ and CLOSE bodies: what happens to an open FileId.

use super::{Command, Error, FileId, Header, Result, field, le16, le32, le64, region_partial, slice};
use crate::proto::u8_at;

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
        u8_at(self.buffer.as_ref(), field::read_resp::DATA_OFFSET)
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
