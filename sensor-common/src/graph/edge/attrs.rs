//! The attribute struct of each edge kind, and the typed values they hold.

use serde::{Deserialize, Serialize};

pub(super) fn is_false(b: &bool) -> bool {
    !*b
}

/// The kinds with nothing to say beyond their two ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoAttrs {}

/// Why a process became tainted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaintReason {
    /// Rule 2: it executed an untrusted file.
    ExecUntrusted,
    /// Rule 3: an interpreter opened an untrusted file for reading.
    InterpreterRead,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecAttrs {
    /// The path given to exec (a `#!` script's own path), as [`super::path_text`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `path` is cut, or relative to a directory that could not be known.
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_incomplete: bool,
    /// Set when this exec tainted the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taint_reason: Option<TaintReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// A `#!` script's interpreter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_incomplete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taint_reason: Option<TaintReason>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    High,
}


/// How a write was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteVia {
    /// A `write`-family call.
    Write,
    /// An open for writing (no data need follow).
    OpenForWrite,
    /// A file held open for writing when its process became tainted.
    InheritedFd,
}

/// `create`, `write` and `truncate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWriteAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_incomplete: bool,
    /// Written by a port program (a server that receives files), not a tainted process.
    #[serde(default, skip_serializing_if = "is_false")]
    pub by_port_program: bool,
    /// This write made the file untrusted (the kernel's mark was new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newly_untrusted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<WriteVia>,
    /// The kernel's untrusted-inode map was full: the file is untrusted in the graph only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub kernel_map_full: bool,
    /// Rule 6: the activation point a tainted process's change reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_point: Option<String>,
    /// `high` whenever `activation_point` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChmodAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_incomplete: bool,
    /// The new permission bits in octal, without leading zeros (`755`).
    pub mode: String,
    /// Any execute bit is set.
    pub executable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_point: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// `rename` and `link`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_point: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlinkAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The application protocol an edge was seen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Smb2,
    Ftp,
    Http,
    /// A bare TCP connection (`connect` edges).
    Tcp,
}

impl Protocol {
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Smb2 => "smb2",
            Protocol::Ftp => "ftp",
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
        }
    }
}

/// What moved a file: the SMB2 operation, or the FTP command as sent on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verb {
    #[serde(rename = "create")]
    SmbCreate,
    #[serde(rename = "write")]
    SmbWrite,
    #[serde(rename = "read")]
    SmbRead,
    #[serde(rename = "STOR")]
    FtpStor,
    #[serde(rename = "APPE")]
    FtpAppe,
    #[serde(rename = "STOU")]
    FtpStou,
    #[serde(rename = "RETR")]
    FtpRetr,
}

impl Verb {
    pub const fn name(self) -> &'static str {
        match self {
            Verb::SmbCreate => "create",
            Verb::SmbWrite => "write",
            Verb::SmbRead => "read",
            Verb::FtpStor => "STOR",
            Verb::FtpAppe => "APPE",
            Verb::FtpStou => "STOU",
            Verb::FtpRetr => "RETR",
        }
    }
}

impl Verb {
    /// The FTP command that moves a file, as a transfer verb; None for the others (CWD, ...).
    pub fn of_ftp(v: crate::proto::ftp::Verb) -> Option<Verb> {
        use crate::proto::ftp::Verb as Ftp;
        match v {
            Ftp::Stor => Some(Verb::FtpStor),
            Ftp::Appe => Some(Verb::FtpAppe),
            Ftp::Stou => Some(Verb::FtpStou),
            Ftp::Retr => Some(Verb::FtpRetr),
            _ => None,
        }
    }
}

/// A `sent_to` made by a local client (this host uploaded to a remote server); absent
/// when a remote client read the file from this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferDirection {
    Upload,
}

/// How the file a transfer moved was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// The sending or serving process had it open under the name sent.
    OpenFile,
    /// Under the root of the share the SMB2 TreeId names.
    Share,
    /// Resolved where the server resolves names (the FTP server's working directory, the
    /// SMB share roots).
    Resolved,
    /// The one untrusted file known by that name.
    Name,
    /// The sending process (the one tainted process connected to that server) had opened
    /// it for reading, as the kernel recorded; it had exited before /proc could be asked.
    SenderRead,
}

/// Why an arrival is inferred rather than read from the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InferenceReason {
    /// The SMB3 session was encrypted: the file name could not be read.
    Smb3Encrypted,
}

/// How an inferred arrival's peer was known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerSeenBy {
    /// The writing process's one TCP peer, read from /proc while it ran.
    Proc,
    /// The peer of the connection the writing process closed.
    ConnectionClose,
}

/// `received_from` and `sent_to`: one file transfer over the network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferAttrs {
    /// The remote node's address (as in the `remote:` node's id). Every sensor writes it
    /// and `protocol`; a hand-made record may lack them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The remote's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// This host's port, when this host is the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// The server's address, when this host is the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<Verb>,
    /// The name as sent on the wire (UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The file's path on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// SMB2 session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<u64>,
    /// The request was cut (a name or PDU past what could be read).
    #[serde(default, skip_serializing_if = "is_false")]
    pub partial: bool,
    /// The path is exactly a share root joined with the name sent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub share_root_match: bool,
    /// Attributed without reading the file's name on the wire (see `reason`).
    #[serde(default)]
    pub inferred: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<InferenceReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_seen_by: Option<PeerSeenBy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<TransferDirection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_by: Option<MatchedBy>,
    /// The local process that sent, served or wrote the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<u32>,
    /// What the remote's address resolved to (disk ids of a vtrail host) when seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_ids: Vec<String>,
}

impl TransferAttrs {
    /// A transfer with `ip` over `protocol` and nothing else known yet.
    pub fn new(ip: impl Into<String>, protocol: Protocol) -> Self {
        Self { ip: Some(ip.into()), protocol: Some(protocol), ..Self::default() }
    }
}

/// A file's trust label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    Trusted,
    Untrusted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelabelAttrs {
    /// The label it was given.
    pub to: Trust,
    /// Who asked: `name(uid N)`.
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// One scan engine's finding on a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    /// `yara-x` or `clamav`.
    pub engine: String,
    /// The YARA rules that matched, or the ClamAV signature name.
    pub names: Vec<String>,
}

/// `detected`: what flagged the file, and the content it flagged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectedAttrs {
    /// The path the scanned file had, as [`super::path_text`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// sha256 of the bytes scanned (hex).
    pub sha256: String,
    pub size: u64,
    pub detections: Vec<Detection>,
}

/// What a `prevented` edge stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreventedAction {
    /// An exec of a flagged file, stopped in the kernel's exec hook (`deny_exec`).
    Exec,
    /// An interpreter opening a flagged file to read it - a script run as `sh FILE` or
    /// through its `#!` line - stopped in the open hook (`deny_exec`).
    Interpret,
    /// A process running a flagged image, killed when the file was flagged (`kill`).
    Kill,
    /// A tainted process opening a protected path for writing, stopped in the open hook
    /// (`apply-rules`, `protected_paths`).
    Write,
}

/// `prevented`: the sensor stopped a process from running a flagged file or writing a
/// protected path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreventedAttrs {
    pub action: PreventedAction,
    /// The path it was run by, as [`super::path_text`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The response rule that did it (`deny_exec`, `kill`).
    pub by: String,
}

/// `block` and `unblock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineAttrs {
    pub ip: String,
    /// Who asked: `name(uid N)`, or the rule that did it.
    pub by: String,
}

/// Which side opened a `connect` edge's connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectDirection {
    /// The tainted process connected out.
    Out,
    /// The tainted process closed a connection it had accepted.
    In,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectAttrs {
    pub ip: String,
    /// The remote's port.
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    pub protocol: Protocol,
    pub direction: ConnectDirection,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_ids: Vec<String>,
}

