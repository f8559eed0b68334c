//! NEGOTIATE, SESSION_SETUP and TREE_CONNECT bodies: dialect, session encryption, share path.

use super::{Command, Error, Header, Result, dialect, SESSION_FLAG_ENCRYPT_DATA, SHARE_FLAG_ENCRYPT_DATA, field, le16, le32, region};
use crate::proto::u8_at;

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
        u8_at(self.buffer.as_ref(), field::tree_connect_resp::SHARE_TYPE)
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
