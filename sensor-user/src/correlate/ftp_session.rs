//! One FTP control connection as live attribution reads it: each direction's segments
//! joined into whole lines (`ftp_stream::LineStream`: split, pipelined, retransmitted),
//! then read by the state machine replay uses too (`sensor_common::session::ftp`), so a
//! live session and its capture agree on the working directory and on which transfers the
//! server started or refused.
//!
//! The TC program sends every control segment of the connection; the arguments of
//! commands vtrail does not follow (PASS among them) are never kept.
use sensor_common::session::ftp::FtpSession;

use super::ftp_stream::LineStream;

#[derive(Debug)]
pub struct FtpConn<T> {
    pub commands: LineStream,
    pub replies: LineStream,
    pub session: FtpSession<T>,
}

impl<T> Default for FtpConn<T> {
    fn default() -> Self {
        Self { commands: LineStream::default(), replies: LineStream::default(), session: FtpSession::default() }
    }
}
