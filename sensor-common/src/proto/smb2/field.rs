//! Byte offsets from the start of the SMB2 header (public so that the TC program's
//! bounded extractor reads the same fields as this parser).

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
