//! Protocol session state (userspace only): what earlier messages of a connection mean for
//! the later ones. Live attribution (`sensor-user/src/network`) and `vtrail-sensor replay`
//! both feed their messages here and act on what comes back, so a capture replayed and
//! the same traffic seen live are read the same way.
//!
//! | module | state | facts out |
//! |---|---|---|
//! | [`ftp`] | working directory (RFC 959 quoting), queued commands, STOU names | cwd changed, transfer started / finished with its reply code |
//! | [`smb`] | TreeId -> share, CREATE request -> response -> FileId, named pipes | the open (name, share, access, pipe or file) a FileId names |
//!
//! The parsing of single messages stays in [`crate::proto`] (no_std, shared with the
//! kernel); this module needs `std` for its maps and strings.

pub mod ftp;
pub mod smb;
