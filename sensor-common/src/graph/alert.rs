//! The alert a sensor publishes when a scan engine flags a file: one JSON document, the
//! same on `vtrail-sensor alerts --json`, in the journal and (later) on the fleet's alerts
//! subject. Fields are only ever added; `schema` changes if one changes meaning.

use serde::{Deserialize, Serialize};

use super::Detection;

/// The value of [`Alert::schema`].
pub const ALERT_SCHEMA: &str = "vtrail-alert/1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub schema: String,
    /// This host's alert number: increasing in the order raised, whatever the clock does
    /// (`alerts --follow` and the fleet's cursor go by it).
    #[serde(default)]
    pub seq: u64,
    /// When the alert was raised (ns since the epoch): after the responses.
    pub ts_ns: u64,
    /// When the scan reached its verdict.
    pub scanned_ns: u64,
    /// The node id and name of the host that scanned the file.
    pub host: String,
    pub hostname: String,
    pub file: AlertFile,
    pub detections: Vec<Detection>,
    /// Where the file came from, when the graph knows (a `received_from` edge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// What the sensor did about it, by the `[response]` policy.
    #[serde(default)]
    pub responses: Vec<ResponseTaken>,
    /// What the graph already held about the file when the alert was raised (it was run,
    /// or sent on, before its verdict). Absent from alerts raised before this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known: Option<Known>,
}

/// What happened to a flagged file before its verdict, from this host's edges since the
/// file was first seen: the processes that ran it (and the ones they started), what those
/// wrote, and the hosts the file was sent to. Usually empty: a file is scanned when its
/// writer closes it; a rescan (clamd was down, the file was written again) or a rule
/// added later (`apply-rules`) finds more. Each list holds at most [`KNOWN_LIST_MAX`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    #[serde(default)]
    pub ran: Vec<KnownProcess>,
    #[serde(default)]
    pub wrote: Vec<KnownWrite>,
    #[serde(default)]
    pub sent_to: Vec<KnownTransfer>,
    /// Entries past a list's cap, not listed (the graph has them).
    #[serde(default)]
    pub left_out: u64,
    /// Edges read to find these.
    #[serde(default)]
    pub edges_read: u64,
    /// False when the reading stopped at its budget (edges or time) before the present:
    /// the graph (`vtrail-analysis trace`) has the rest.
    #[serde(default)]
    pub complete: bool,
}

/// The most entries a [`Known`] list holds.
pub const KNOWN_LIST_MAX: usize = 32;

/// A process that ran the flagged file, or was started by one that did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownProcess {
    pub node: String,
    /// `exec`, `script` (an interpreter read it and became tainted) or `fork`.
    pub how: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    pub ts_ns: u64,
}

/// A file one of those processes created, wrote, truncated, renamed, linked or chmodded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownWrite {
    pub process: String,
    pub file: String,
    /// The edge kind (`create`, `write`, ...).
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The activation point it reached (cron, a unit, a shell rc file), if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_point: Option<String>,
    pub ts_ns: u64,
}

/// A host the flagged file was sent to (its `sent_to` edges).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownTransfer {
    pub remote: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub ts_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertFile {
    /// The file's graph node id.
    pub node: String,
    /// The path it had when scanned, as [`super::path_text`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub dev: u32,
    pub ino: u64,
    pub size: u64,
    pub sha256: String,
}

/// The sender of a flagged file, from its `received_from` edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// `remote:<ip>`.
    pub remote: String,
    pub ip: String,
    /// What the address resolved to (disk-serial node ids), if naming is on.
    #[serde(default)]
    pub node_ids: Vec<String>,
    pub protocol: String,
    /// The name the sender gave the file, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Attributed from the connection rather than a parsed request.
    #[serde(default)]
    pub inferred: bool,
    /// When the transfer was seen.
    pub ts_ns: u64,
}

/// One automatic response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseTaken {
    /// `block_sender`, ...
    pub action: String,
    /// What it acted on (the sender's IP for `block_sender`).
    pub target: String,
    pub ok: bool,
    /// Why it failed or was not taken, or what it did.
    pub detail: String,
}
