//! Edges: what happened between two nodes, when, and the attributes of each kind.
//!
//! Edges point the way information flows, cause -> effect. Each kind has one attribute
//! struct; [`EdgeData`] holds the kind and its attributes together, so a writer cannot
//! put a `port` on an `exec` and a reader cannot ask for a key that is never written.
//!
//! | kind              | src     | dst     | attributes          | meaning                              |
//! |-------------------|---------|---------|---------------------|--------------------------------------|
//! | `exec`            | file    | process | [`ExecAttrs`]       | the process executed the file        |
//! | `read`            | file    | process | [`ReadAttrs`]       | an interpreter read the untrusted file |
//! | `fork`            | process | process | [`NoAttrs`]         | parent created child                 |
//! | `create`          | process | file    | [`FileWriteAttrs`]  | created or truncated at open         |
//! | `write`           | process | file    | [`FileWriteAttrs`]  | wrote data                           |
//! | `truncate`        | process | file    | [`FileWriteAttrs`]  | truncate/ftruncate                   |
//! | `chmod`           | process | file    | [`ChmodAttrs`]      | mode change                          |
//! | `rename`          | process | file    | [`RenameAttrs`]     | `from` -> `to`                       |
//! | `link`            | process | file    | [`RenameAttrs`]     | new hard link `to`                   |
//! | `unlink`          | process | file    | [`UnlinkAttrs`]     | name removed                         |
//! | `received_from`   | remote  | file    | [`TransferAttrs`]   | the file arrived from that node      |
//! | `sent_to`         | file    | remote  | [`TransferAttrs`]   | the file left for that node          |
//! | `relabel`         | user    | file    | [`RelabelAttrs`]    | marked trusted/untrusted by hand     |
//! | `block`/`unblock` | host    | remote  | [`QuarantineAttrs`] | quarantine rule changed              |
//! | `connect`         | process | remote  | [`ConnectAttrs`]    | a tainted process reached a remote   |
//!
//! In JSON an edge is `{"ts_ns", "kind", "src", "dst", "host", "attrs": {...}}`: the kind
//! is a plain string and the attributes an object, so dumps stay readable and greppable
//! (`grep '"kind":"received_from"'`).

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor},
    ser::SerializeStruct,
};

#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// Wall-clock ns since the Unix epoch when it happened (kernel time stamp).
    pub ts_ns: u64,
    pub src: String,
    pub dst: String,
    /// Host node id of the sensor that recorded it.
    pub host: String,
    /// The kind and its attributes.
    pub data: EdgeData,
}

impl Edge {
    pub fn kind(&self) -> EdgeKind {
        self.data.kind()
    }
}

/// Declares [`EdgeKind`] and [`EdgeData`] from one list, so that the kinds, their JSON
/// names and their attribute types cannot drift apart.
macro_rules! edge_kinds {
    ($( $(#[$doc:meta])* $variant:ident($attrs:ty) = $name:literal, )*) => {
        /// The kind of an edge without its attributes (`kind` in the JSON).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum EdgeKind {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )*
        }

        /// An edge's kind with the attributes of that kind.
        #[derive(Clone, Debug, PartialEq)]
        pub enum EdgeData {
            $( $(#[$doc])* $variant($attrs), )*
        }

        impl EdgeKind {
            /// Every kind, in declaration order.
            pub const ALL: &[EdgeKind] = &[$(EdgeKind::$variant,)*];

            /// The JSON name (`received_from`).
            pub const fn name(self) -> &'static str {
                match self { $(EdgeKind::$variant => $name,)* }
            }
        }

        impl EdgeData {
            pub fn kind(&self) -> EdgeKind {
                match self { $(EdgeData::$variant(_) => EdgeKind::$variant,)* }
            }

            fn serialize_attrs<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self { $(EdgeData::$variant(a) => a.serialize(s),)* }
            }

            /// The attributes of an edge of `kind`, from their own (de)serializer.
            pub fn deserialize_attrs<'de, D: Deserializer<'de>>(kind: EdgeKind, d: D) -> Result<Self, D::Error> {
                match kind { $(EdgeKind::$variant => <$attrs>::deserialize(d).map(EdgeData::$variant),)* }
            }
        }
    };
}

edge_kinds! {
    /// file -> process: the process executed the file.
    Exec(ExecAttrs) = "exec",
    /// file -> process: an interpreter read the (untrusted) file.
    Read(ReadAttrs) = "read",
    /// process -> process: parent created child.
    Fork(NoAttrs) = "fork",
    /// process -> file: created or truncated at open.
    Create(FileWriteAttrs) = "create",
    /// process -> file: wrote data.
    Write(FileWriteAttrs) = "write",
    /// process -> file: truncate/ftruncate.
    Truncate(FileWriteAttrs) = "truncate",
    /// process -> file: mode change.
    Chmod(ChmodAttrs) = "chmod",
    /// process -> file: renamed (`from` -> `to`).
    Rename(RenameAttrs) = "rename",
    /// process -> file: a new hard link `to`.
    Link(RenameAttrs) = "link",
    /// process -> file: a name removed.
    Unlink(UnlinkAttrs) = "unlink",
    /// remote -> file: the file arrived from that node over the network.
    ReceivedFrom(TransferAttrs) = "received_from",
    /// file -> remote: the file left for that node.
    SentTo(TransferAttrs) = "sent_to",
    /// user -> file: marked trusted/untrusted by an operator.
    Relabel(RelabelAttrs) = "relabel",
    /// host -> remote: the remote was quarantined.
    Block(QuarantineAttrs) = "block",
    /// host -> remote: the quarantine was lifted.
    Unblock(QuarantineAttrs) = "unblock",
    /// process -> remote: a tainted process opened (`direction = out`) or closed an
    /// accepted (`direction = in`) TCP connection.
    Connect(ConnectAttrs) = "connect",
}

impl EdgeData {
    /// Rule 6: the activation point (cron, systemd units, shell rc files, ...) a change by a
    /// tainted process reached, if it did.
    pub fn activation_point(&self) -> Option<&str> {
        match self {
            EdgeData::Create(a) | EdgeData::Write(a) | EdgeData::Truncate(a) => a.activation_point.as_deref(),
            EdgeData::Chmod(a) => a.activation_point.as_deref(),
            EdgeData::Rename(a) | EdgeData::Link(a) => a.activation_point.as_deref(),
            _ => None,
        }
    }

    /// The network transfer of a `received_from` or `sent_to` edge.
    pub fn transfer(&self) -> Option<&TransferAttrs> {
        match self {
            EdgeData::ReceivedFrom(a) | EdgeData::SentTo(a) => Some(a),
            _ => None,
        }
    }

    /// The attributes alone, as the JSON object an edge record holds under `attrs`.
    pub fn attrs_to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(&AttrsOf(self))
    }

    /// An edge of `kind`'s attributes from [`EdgeData::attrs_to_json`]'s text.
    pub fn from_attrs_json(kind: EdgeKind, json: &str) -> serde_json::Result<Self> {
        Self::deserialize_attrs(kind, &mut serde_json::Deserializer::from_str(json))
    }

    /// Whether the kind has no attributes at all (`fork`): nothing to store beside it.
    pub fn has_attrs(&self) -> bool {
        !matches!(self, EdgeData::Fork(_))
    }
}

fn is_false(b: &bool) -> bool {
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

/// Rule 6: the `(activation_point, severity)` of a change by a tainted process that reached
/// `point` - always high severity.
pub fn activation(point: Option<String>) -> (Option<String>, Option<Severity>) {
    let severity = point.as_ref().map(|_| Severity::High);
    (point, severity)
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
    #[serde(default)]
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

// The edge is (de)serialized by hand rather than with `#[serde(flatten)]` on `data`:
// flatten buffers every field of every record before parsing it again, and loading
// millions of edges is the analysis's hot path. Here the attributes are parsed straight
// into their kind's struct when `kind` comes first, as every vtrail writer puts it.

struct AttrsOf<'a>(&'a EdgeData);

impl Serialize for AttrsOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_attrs(s)
    }
}

impl Serialize for Edge {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let with_attrs = self.data.has_attrs();
        let mut st = s.serialize_struct("Edge", 5 + usize::from(with_attrs))?;
        st.serialize_field("ts_ns", &self.ts_ns)?;
        st.serialize_field("kind", &self.data.kind())?;
        st.serialize_field("src", &self.src)?;
        st.serialize_field("dst", &self.dst)?;
        st.serialize_field("host", &self.host)?;
        if with_attrs {
            st.serialize_field("attrs", &AttrsOf(&self.data))?;
        } else {
            st.skip_field("attrs")?;
        }
        st.end()
    }
}

struct AttrsSeed(EdgeKind);

impl<'de> DeserializeSeed<'de> for AttrsSeed {
    type Value = EdgeData;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<EdgeData, D::Error> {
        EdgeData::deserialize_attrs(self.0, d)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum EdgeField {
    TsNs,
    Kind,
    Src,
    Dst,
    Host,
    Attrs,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Edge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EdgeVisitor;
        impl<'de> Visitor<'de> for EdgeVisitor {
            type Value = Edge;
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("an edge object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Edge, A::Error> {
                let (mut ts_ns, mut kind, mut src, mut dst, mut host) = (None, None, None, None, None);
                let mut data = None;
                // `attrs` before `kind` (a hand-written record): kept until the kind is known.
                let mut early_attrs: Option<serde_json::Value> = None;
                while let Some(field) = map.next_key::<EdgeField>()? {
                    match field {
                        EdgeField::TsNs => ts_ns = Some(map.next_value()?),
                        EdgeField::Kind => kind = Some(map.next_value::<EdgeKind>()?),
                        EdgeField::Src => src = Some(map.next_value()?),
                        EdgeField::Dst => dst = Some(map.next_value()?),
                        EdgeField::Host => host = Some(map.next_value()?),
                        EdgeField::Attrs => match kind {
                            Some(k) => data = Some(map.next_value_seed(AttrsSeed(k))?),
                            None => early_attrs = Some(map.next_value()?),
                        },
                        EdgeField::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
                let data = match data {
                    Some(data) => data,
                    None => {
                        let attrs = early_attrs.unwrap_or_else(|| serde_json::Value::Object(Default::default()));
                        EdgeData::deserialize_attrs(kind, attrs)
                            .map_err(|e| de::Error::custom(format_args!("{} attributes: {e}", kind.name())))?
                    }
                };
                Ok(Edge {
                    ts_ns: ts_ns.ok_or_else(|| de::Error::missing_field("ts_ns"))?,
                    src: src.ok_or_else(|| de::Error::missing_field("src"))?,
                    dst: dst.ok_or_else(|| de::Error::missing_field("dst"))?,
                    host: host.ok_or_else(|| de::Error::missing_field("host"))?,
                    data,
                })
            }
        }
        d.deserialize_struct("Edge", &["ts_ns", "kind", "src", "dst", "host", "attrs"], EdgeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(data: EdgeData) -> Edge {
        Edge { ts_ns: 5, src: "a".into(), dst: "b".into(), host: "h".into(), data }
    }

    #[test]
    fn every_kind_round_trips_and_keeps_its_json_name() {
        let transfer = {
            let mut t = TransferAttrs::new("10.0.0.2", Protocol::Smb2);
            t.verb = Some(Verb::SmbCreate);
            t.name = Some("dir\\x.exe".into());
            t.node_ids = vec!["d2".into()];
            t
        };
        let samples = [
            EdgeData::Exec(ExecAttrs { path: Some("/x".into()), taint_reason: Some(TaintReason::ExecUntrusted), ..Default::default() }),
            EdgeData::Read(ReadAttrs::default()),
            EdgeData::Fork(NoAttrs {}),
            EdgeData::Create(FileWriteAttrs { activation_point: Some("/etc/cron.d/".into()), severity: Some(Severity::High), ..Default::default() }),
            EdgeData::Write(FileWriteAttrs { via: Some(WriteVia::InheritedFd), ..Default::default() }),
            EdgeData::Truncate(FileWriteAttrs::default()),
            EdgeData::Chmod(ChmodAttrs { mode: "755".into(), executable: true, ..Default::default() }),
            EdgeData::Rename(RenameAttrs { from: Some("/a".into()), to: "/b".into(), ..Default::default() }),
            EdgeData::Link(RenameAttrs { to: "/c".into(), ..Default::default() }),
            EdgeData::Unlink(UnlinkAttrs { path: Some("/d".into()) }),
            EdgeData::ReceivedFrom(transfer.clone()),
            EdgeData::SentTo(transfer),
            EdgeData::Relabel(RelabelAttrs { to: Trust::Untrusted, by: "root(uid 0)".into(), path: None }),
            EdgeData::Block(QuarantineAttrs { ip: "10.0.0.9".into(), by: "root(uid 0)".into() }),
            EdgeData::Unblock(QuarantineAttrs { ip: "10.0.0.9".into(), by: "root(uid 0)".into() }),
            EdgeData::Connect(ConnectAttrs {
                ip: "10.0.0.3".into(),
                port: 4444,
                local_port: None,
                protocol: Protocol::Tcp,
                direction: ConnectDirection::Out,
                node_ids: vec![],
            }),
        ];
        assert_eq!(samples.len(), EdgeKind::ALL.len(), "a sample per kind");
        for data in samples {
            let e = edge(data);
            let json = serde_json::to_value(&e).unwrap();
            assert_eq!(json["kind"], e.kind().name(), "{json}");
            assert_eq!(json.get("attrs").is_some(), e.data.has_attrs(), "{json}");
            let back: Edge = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(back, e, "{json}");
        }
    }

    #[test]
    fn json_keeps_the_readable_layout() {
        let mut t = TransferAttrs::new("10.0.0.2", Protocol::Ftp);
        t.verb = Some(Verb::FtpStor);
        t.port = Some(21);
        let text = serde_json::to_string(&edge(EdgeData::ReceivedFrom(t))).unwrap();
        assert_eq!(
            text,
            r#"{"ts_ns":5,"kind":"received_from","src":"a","dst":"b","host":"h","attrs":{"ip":"10.0.0.2","port":21,"protocol":"ftp","verb":"STOR","inferred":false}}"#
        );
        let chmod = serde_json::to_string(&edge(EdgeData::Chmod(ChmodAttrs {
            mode: "755".into(),
            executable: true,
            activation_point: Some("/etc/cron.d/".into()),
            severity: Some(Severity::High),
            ..Default::default()
        })))
        .unwrap();
        assert!(chmod.contains(r#""attrs":{"mode":"755","executable":true,"activation_point":"/etc/cron.d/","severity":"high"}"#), "{chmod}");
    }

    #[test]
    fn attributes_before_the_kind_and_missing_ones_are_read() {
        let e: Edge = serde_json::from_str(r#"{"attrs":{"to":"/b"},"ts_ns":1,"kind":"rename","src":"p","dst":"f","host":"h","extra":[1]}"#).unwrap();
        assert_eq!(e.data, EdgeData::Rename(RenameAttrs { to: "/b".into(), ..Default::default() }));
        let e: Edge = serde_json::from_str(r#"{"ts_ns":1,"kind":"fork","src":"p","dst":"c","host":"h"}"#).unwrap();
        assert_eq!(e.kind(), EdgeKind::Fork);
        let e: Edge = serde_json::from_str(r#"{"ts_ns":1,"kind":"write","src":"p","dst":"f","host":"h"}"#).unwrap();
        assert_eq!(e.data, EdgeData::Write(FileWriteAttrs::default()));
    }

    #[test]
    fn attributes_that_do_not_fit_the_kind_are_refused() {
        for bad in [
            r#"{"ts_ns":1,"kind":"relabel","src":"u","dst":"f","host":"h","attrs":{"to":"maybe","by":"x"}}"#,
            r#"{"ts_ns":1,"kind":"connect","src":"p","dst":"r","host":"h","attrs":{"ip":"1.2.3.4","port":"http","protocol":"tcp","direction":"out"}}"#,
            r#"{"ts_ns":1,"kind":"received_from","src":"r","dst":"f","host":"h","attrs":{"protocol":"smb1"}}"#,
            r#"{"ts_ns":1,"kind":"teleport","src":"r","dst":"f","host":"h"}"#,
            r#"{"attrs":{"to":1},"ts_ns":1,"kind":"relabel","src":"u","dst":"f","host":"h"}"#,
        ] {
            assert!(serde_json::from_str::<Edge>(bad).is_err(), "{bad}");
        }
    }
}
