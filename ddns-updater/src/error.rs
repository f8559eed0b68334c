//! Errors of DNS updates, one variant per thing a caller or an operator acts on differently,
//! and the process exit code for each.

use std::net::SocketAddr;

use crate::keyfile::KeyError;
use crate::names::NameError;

/// Exit codes of `vtrail-ddns` (also documented in `--help`).
pub mod exit {
    pub const OK: i32 = 0;
    /// Bad command line or configuration (clap also uses 2).
    pub const USAGE: i32 = 2;
    /// Key file or sysfs input could not be used.
    pub const INPUT: i32 = 3;
    /// No disk with a serial: nothing to publish.
    pub const NO_IDS: i32 = 4;
    pub const REFUSED: i32 = 10;
    pub const NOTAUTH: i32 = 11;
    pub const AUTH: i32 = 12;
    pub const BADTIME: i32 = 13;
    pub const UNREACHABLE: i32 = 14;
    pub const SERVER: i32 = 15;
}

/// An update (or the lookup of the current records before it) failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(
        "REFUSED by {server}: key \"{key}\" may not change {name} (check the zone's update-policy grants this key that name)"
    )]
    Refused {
        server: SocketAddr,
        key: String,
        name: String,
    },

    #[error(
        "NOTAUTH from {server}: it is not authoritative (primary) for zone {zone} (wrong --zone or --server?)"
    )]
    NotAuth { server: SocketAddr, zone: String },

    #[error(
        "authentication failed at {server}: the server does not know key \"{key}\" (BADKEY): check the key name and that the key is in named.conf"
    )]
    BadKey { server: SocketAddr, key: String },

    #[error(
        "authentication failed at {server}: bad signature with key \"{key}\" (BADSIG): the secret or algorithm differs from the server's"
    )]
    BadSig { server: SocketAddr, key: String },

    #[error("authentication failed at {server} with key \"{key}\": {detail}")]
    AuthFailed {
        server: SocketAddr,
        key: String,
        detail: String,
    },

    #[error(
        "BADTIME from {server}: our clock is {skew_secs} s off the server's (negative = behind; server time {server_time}, ours {our_time}, allowed +-{fudge} s): fix the clock (NTP)"
    )]
    BadTime {
        server: SocketAddr,
        skew_secs: i64,
        server_time: u64,
        our_time: u64,
        fudge: u16,
    },

    #[error("no answer from {server} after {attempts} attempts: {last}")]
    Timeout {
        server: SocketAddr,
        attempts: u32,
        last: String,
    },

    #[error("cannot reach {server} after {attempts} attempts: {last}")]
    Unreachable {
        server: SocketAddr,
        attempts: u32,
        last: String,
    },

    #[error("{server} answered {rcode} for {name}")]
    Server {
        server: SocketAddr,
        rcode: String,
        name: String,
    },

    #[error("bad reply from {server}: {detail}")]
    Protocol { server: SocketAddr, detail: String },

    #[error(transparent)]
    Name(#[from] NameError),

    #[error(transparent)]
    Key(#[from] KeyError),
}

impl UpdateError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Refused { .. } => exit::REFUSED,
            Self::NotAuth { .. } => exit::NOTAUTH,
            Self::BadKey { .. } | Self::BadSig { .. } | Self::AuthFailed { .. } => exit::AUTH,
            Self::BadTime { .. } => exit::BADTIME,
            Self::Timeout { .. } | Self::Unreachable { .. } => exit::UNREACHABLE,
            Self::Server { .. } | Self::Protocol { .. } => exit::SERVER,
            Self::Name(_) => exit::USAGE,
            Self::Key(_) => exit::INPUT,
        }
    }

    /// True for authentication failures of any kind.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Self::BadKey { .. } | Self::BadSig { .. } | Self::AuthFailed { .. }
        )
    }
}
