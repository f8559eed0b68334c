//! Edges: what happened between two nodes, when, and the attributes of each kind.
//!
//! Edges point the way information flows, cause -> effect. Each kind has one attribute
//! struct; [`EdgeData`] holds the kind and its attributes together, so a writer cannot
//! put a `port` on an `exec` and a reader cannot ask for a key that is never written.
//!
//! | kind              | src     | dst     | attributes          | meaning                              |
//! |-------------------|---------|---------|---------------------|--------------------------------------|
//! | `exec`            | file    | process | [`ExecAttrs`]       | the process executed the file        |
//! | `read`            | file    | process | [`ReadAttrs`]       | an interpreter (tainted by it) or a tainted process read the untrusted file |
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

mod attrs;
mod json;
#[cfg(test)]
mod tests;

pub use attrs::*;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use json::AttrsOf;

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
    /// file -> process: an interpreter read the (untrusted) file and became tainted
    /// (`taint_reason`), or an already tainted process read it (no `taint_reason`).
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
    /// host -> file: a scan engine flagged the file (this host's scanner, at the close
    /// that ended a write of an untrusted file).
    Detected(DetectedAttrs) = "detected",
    /// file -> process: the process was stopped from running the flagged file (an exec
    /// killed in the kernel, or a running process killed when the file was flagged).
    Prevented(PreventedAttrs) = "prevented",
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

