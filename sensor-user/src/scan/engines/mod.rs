//! The scan engines. Each takes the bytes of one file (read once by the scan thread, so
//! every engine sees the same content and the same sha256).
pub mod clamd;
pub mod yara;
