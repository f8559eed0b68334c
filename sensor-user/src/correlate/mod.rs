//! Correlation: what the wire and the kernel saw, joined into graph facts. Network
//! attribution links SMB2/FTP transfers to the files port programs write and the files
//! served; naming turns remote addresses into node ids.
pub mod attribution;
mod ftp_session;
mod ftp_stream;
pub mod naming;
pub mod peers;
