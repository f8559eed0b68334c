//! The fleet wire format: how a sensor's records travel over NATS JetStream to the central
//! database. Each record is one line of the graph schema ([`DumpLine`] or the host's
//! [`HostInfo`]) with the host's sequence number; a message carries a batch of them.
//!
//! ```text
//! subject   <prefix>.graph.<host token>            (alerts: <prefix>.alerts.<host token>)
//! header    Nats-Msg-Id: <host>:<first seq>-<last seq>
//!           Vtrail-Schema: 2
//! body      {"format":"vtrail-fleet","schema_version":2,"host":"<host id>","first_seq":7,"last_seq":9,"records":3}
//!           {"seq":7,"node":{...}}
//!           {"seq":8,"edge":{...}}
//!           {"seq":9,"host_info":{...}}
//! ```
//!
//! Sequence numbers are per host, start at 1, and never repeat: the collector stores each
//! (host, seq) once, so a batch sent twice (a lost ack, a sensor restart) changes nothing.
//! A batch resent after a restart may cover a different range than the first attempt, so
//! the message id names the range, not only its start: JetStream's duplicate window drops
//! exact repeats and the store drops the rest.

use serde::{Deserialize, Serialize};

use super::{DumpLine, Edge, HostInfo, Node, SCHEMA_VERSION};

/// `format` of a batch's first line.
pub const FLEET_FORMAT: &str = "vtrail-fleet";
/// Default first token of every subject.
pub const DEFAULT_SUBJECT_PREFIX: &str = "vtrail";
/// Default JetStream stream holding every host's subjects.
pub const DEFAULT_STREAM: &str = "VTRAIL";
/// NATS header naming the schema version of the body (the body's first line says it too).
pub const SCHEMA_HEADER: &str = "Vtrail-Schema";
/// Largest batch body a sensor sends. NATS' default `max_payload` is 1 MiB; staying well
/// under it leaves room for headers and for servers configured lower.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Most records in one batch.
pub const MAX_BATCH_RECORDS: usize = 2048;
/// Largest body a collector accepts (anything larger is kept aside as oversized).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// One thing a sensor recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetItem {
    /// The sensor's own host (hostname, disk ids), sent when it starts and when it changes.
    HostInfo(HostInfo),
    /// A node's state as the sensor merged it: a later record of the same node replaces it.
    Node(Node),
    /// An edge (append-only).
    Edge(Edge),
}

impl From<DumpLine> for FleetItem {
    fn from(line: DumpLine) -> Self {
        match line {
            DumpLine::Node(n) => FleetItem::Node(n),
            DumpLine::Edge(e) => FleetItem::Edge(e),
        }
    }
}

/// A record with its per-host sequence number: one line of a batch, one value of the
/// sensor's outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetRecord {
    pub seq: u64,
    #[serde(flatten)]
    pub item: FleetItem,
}

/// First line of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHeader {
    pub format: String,
    pub schema_version: u32,
    /// The sending host's id (`HostInfo.id`).
    pub host: String,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Number of record lines after the header.
    pub records: u64,
}

impl BatchHeader {
    pub fn new(host: &str, first_seq: u64, last_seq: u64, records: u64) -> Self {
        Self {
            format: FLEET_FORMAT.into(),
            schema_version: SCHEMA_VERSION,
            host: host.into(),
            first_seq,
            last_seq,
            records,
        }
    }

    /// The JetStream message id of this batch.
    pub fn message_id(&self) -> String {
        format!("{}:{}-{}", self.host, self.first_seq, self.last_seq)
    }
}

/// The subject token of a host id: NATS subject tokens may not hold `.`, `*`, `>` or white
/// space, so the id is escaped: `[A-Za-z0-9-]` stay, `_` becomes `__`, any other byte `_xx`
/// (hex). Disk ids (`[a-z0-9-]`) are unchanged; `hostname-a.b` becomes `hostname-a_2eb`.
/// The mapping is one-to-one, so two hosts never share a subject (and so a key). Sensors,
/// the permission helper and the collector's subject check all use this one mapping.
pub fn subject_token(host_id: &str) -> String {
    let mut token = String::with_capacity(host_id.len());
    for b in host_id.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => token.push(b as char),
            b'_' => token.push_str("__"),
            other => token.push_str(&format!("_{other:02x}")),
        }
    }
    if token.is_empty() { "_".into() } else { token }
}

/// Whether a node id may be recorded by `host`: ids that name a host (`host:<id>`,
/// `proc:<id>:..`, `file:<id>:..`) must name this one, so that one host cannot plant
/// records on another's processes and files. `remote:` and `user:` ids are not scoped.
pub fn node_id_of_host(id: &str, host: &str) -> bool {
    use super::NodeKind;
    match NodeKind::of_id(id) {
        Some(NodeKind::Host) => id.strip_prefix("host:") == Some(host),
        Some(kind @ (NodeKind::Process | NodeKind::File)) => id
            .strip_prefix(kind.id_prefix())
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.strip_prefix(host))
            .is_some_and(|rest| rest.starts_with(':')),
        _ => true,
    }
}

/// `<prefix>.graph.<host token>`: where a host's graph records go.
pub fn graph_subject(prefix: &str, host_id: &str) -> String {
    format!("{prefix}.graph.{}", subject_token(host_id))
}

/// `<prefix>.alerts.<host token>`: where a host's detections and blocks go.
pub fn alerts_subject(prefix: &str, host_id: &str) -> String {
    format!("{prefix}.alerts.{}", subject_token(host_id))
}

/// The JetStream stream that keeps the alerts of every host (created by the collector):
/// `<graph stream>_ALERTS`, on [`alerts_filter`].
pub fn alerts_stream(graph_stream: &str) -> String {
    format!("{graph_stream}_ALERTS")
}

/// Every host's alerts subject.
pub fn alerts_filter(prefix: &str) -> String {
    format!("{prefix}.alerts.*")
}

/// The message id of an alert (JetStream drops a resend within its duplicate window).
pub fn alert_message_id(host_id: &str, key: &[u8]) -> String {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    format!("alert:{host_id}:{hex}")
}

/// The reply-subject prefix a host's connection uses (`_INBOX.<host token>`): JetStream
/// acks come back on it, so a host's credentials may subscribe to `_INBOX.<token>.>` and
/// to nothing another host receives.
pub fn inbox_prefix(host_id: &str) -> String {
    format!("_INBOX.{}", subject_token(host_id))
}

/// Whether `prefix` is a usable subject prefix: one or more dot-separated tokens of
/// `[A-Za-z0-9_-]`, no wildcards.
pub fn valid_subject_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .split('.')
            .all(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

/// Why a batch (or one of its lines) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    Empty,
    Header(String),
    Format(String),
    Schema(u32),
    SubjectMismatch { subject_token: String, host: String },
    Record { line: u64, message: String },
    SeqOutOfRange { line: u64, seq: u64 },
    Count { header: u64, found: u64 },
    RecordHost { line: u64, host: String },
    ForeignNodeId { line: u64, id: String },
}

/// The short, stable name of a refusal (counters and the dead-letter table use it).
impl BatchError {
    pub fn reason(&self) -> &'static str {
        match self {
            BatchError::Empty => "empty",
            BatchError::Header(_) => "bad_header",
            BatchError::Format(_) => "bad_format",
            BatchError::Schema(_) => "unknown_schema_version",
            BatchError::SubjectMismatch { .. } => "host_subject_mismatch",
            BatchError::Record { .. } => "bad_record",
            BatchError::SeqOutOfRange { .. } => "seq_out_of_range",
            BatchError::Count { .. } => "record_count_mismatch",
            BatchError::RecordHost { .. } => "record_host_mismatch",
            BatchError::ForeignNodeId { .. } => "foreign_node_id",
        }
    }
}

impl core::fmt::Display for BatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BatchError::Empty => write!(f, "empty message"),
            BatchError::Header(m) => write!(f, "first line is not a batch header: {m}"),
            BatchError::Format(m) => write!(f, "batch header format is {m:?}, expected {FLEET_FORMAT:?}"),
            BatchError::Schema(v) => write!(f, "schema version {v} is not one this collector knows ({SCHEMA_VERSION})"),
            BatchError::SubjectMismatch { subject_token, host } => {
                write!(f, "batch says host {host:?} but came on the subject of host token {subject_token:?}")
            }
            BatchError::Record { line, message } => write!(f, "line {line}: {message}"),
            BatchError::SeqOutOfRange { line, seq } => write!(f, "line {line}: sequence {seq} outside the header's range"),
            BatchError::Count { header, found } => write!(f, "header announces {header} records, the body holds {found} (truncated?)"),
            BatchError::RecordHost { line, host } => write!(f, "line {line}: record of host {host:?} in another host's batch"),
            BatchError::ForeignNodeId { line, id } => write!(f, "line {line}: node id {id:?} belongs to another host"),
        }
    }
}

impl std::error::Error for BatchError {}

/// Builds a batch body: the header line, then each record line as given (records are
/// stored in the outbox already serialized, so they are not encoded twice).
pub fn encode_batch(header: &BatchHeader, record_lines: &[&[u8]]) -> Vec<u8> {
    let size: usize = record_lines.iter().map(|l| l.len() + 1).sum();
    let mut body = Vec::with_capacity(size + 160);
    // A header of plain strings and integers always serializes.
    serde_json::to_writer(&mut body, header).expect("batch header serializes");
    for line in record_lines {
        body.push(b'\n');
        body.extend_from_slice(line);
    }
    body
}

/// A batch read and checked: every record is of the header's host, inside its sequence
/// range, and the count matches (a cut message fails the count).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub header: BatchHeader,
    pub records: Vec<FleetRecord>,
}

/// Reads and checks a batch that arrived on a subject whose last token is `subject_token`.
/// The whole batch is refused on the first fault: its records stay together in the
/// dead-letter store, where the reason names the line.
pub fn decode_batch(body: &[u8], subject_token_of_sender: &str) -> Result<Batch, BatchError> {
    let mut lines = body.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let first = lines.next().ok_or(BatchError::Empty)?;
    let header: BatchHeader = serde_json::from_slice(first).map_err(|e| BatchError::Header(e.to_string()))?;
    if header.format != FLEET_FORMAT {
        return Err(BatchError::Format(header.format));
    }
    if header.schema_version != SCHEMA_VERSION {
        return Err(BatchError::Schema(header.schema_version));
    }
    if subject_token(&header.host) != subject_token_of_sender {
        return Err(BatchError::SubjectMismatch { subject_token: subject_token_of_sender.into(), host: header.host });
    }
    let mut records = Vec::new();
    for (i, line) in lines.enumerate() {
        let line_no = i as u64 + 2;
        let record: FleetRecord =
            serde_json::from_slice(line).map_err(|e| BatchError::Record { line: line_no, message: e.to_string() })?;
        if record.seq < header.first_seq || record.seq > header.last_seq || record.seq == 0 {
            return Err(BatchError::SeqOutOfRange { line: line_no, seq: record.seq });
        }
        let record_host = match &record.item {
            FleetItem::HostInfo(h) => &h.id,
            FleetItem::Node(n) => &n.host,
            FleetItem::Edge(e) => &e.host,
        };
        if *record_host != header.host {
            return Err(BatchError::RecordHost { line: line_no, host: record_host.clone() });
        }
        let ids: &[&str] = match &record.item {
            FleetItem::HostInfo(_) => &[],
            FleetItem::Node(n) => &[n.id.as_str()],
            FleetItem::Edge(e) => &[e.src.as_str(), e.dst.as_str()],
        };
        if let Some(id) = ids.iter().find(|id| !node_id_of_host(id, &header.host)) {
            return Err(BatchError::ForeignNodeId { line: line_no, id: (*id).to_owned() });
        }
        records.push(record);
    }
    if records.len() as u64 != header.records {
        return Err(BatchError::Count { header: header.records, found: records.len() as u64 });
    }
    Ok(Batch { header, records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{EdgeData, NoAttrs, NodeData};

    fn edge(host: &str, ts: u64) -> Edge {
        Edge { ts_ns: ts, src: "proc:h:1:2".into(), dst: "proc:h:3:4".into(), host: host.into(), data: EdgeData::Fork(NoAttrs {}) }
    }

    fn body(host: &str, records: &[FleetRecord], announced: u64) -> Vec<u8> {
        let lines: Vec<Vec<u8>> = records.iter().map(|r| serde_json::to_vec(r).unwrap()).collect();
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let first = records.first().map_or(1, |r| r.seq);
        let last = records.last().map_or(1, |r| r.seq);
        encode_batch(&BatchHeader::new(host, first, last, announced), &refs)
    }

    #[test]
    fn batch_round_trips() {
        let node = Node {
            id: "host:h".into(),
            host: "h".into(),
            first_seen_ns: 1,
            data: NodeData::Host { hostname: "srv".into(), disk_ids: vec!["h".into()] },
        };
        let records = vec![
            FleetRecord { seq: 7, item: FleetItem::Node(node) },
            FleetRecord { seq: 8, item: FleetItem::Edge(edge("h", 5)) },
            FleetRecord { seq: 9, item: FleetItem::HostInfo(HostInfo { id: "h".into(), hostname: "srv".into(), disk_ids: vec![] }) },
        ];
        let batch = decode_batch(&body("h", &records, 3), "h").unwrap();
        assert_eq!(batch.records, records);
        assert_eq!(batch.header.message_id(), "h:7-9");
        let line = serde_json::to_string(&records[1]).unwrap();
        assert!(line.starts_with(r#"{"seq":8,"edge":{"ts_ns":5"#), "{line}");
    }

    #[test]
    fn faults_are_named() {
        let records = vec![FleetRecord { seq: 1, item: FleetItem::Edge(edge("h", 5)) }];
        let ok = body("h", &records, 1);
        assert_eq!(decode_batch(&ok, "other").unwrap_err().reason(), "host_subject_mismatch");
        assert_eq!(decode_batch(&body("h", &records, 2), "h").unwrap_err().reason(), "record_count_mismatch");
        assert_eq!(decode_batch(&ok[..ok.len() - 5], "h").unwrap_err().reason(), "bad_record");
        assert_eq!(decode_batch(b"", "h").unwrap_err().reason(), "empty");
        assert_eq!(decode_batch(b"not json\n", "h").unwrap_err().reason(), "bad_header");
        let foreign = vec![FleetRecord { seq: 1, item: FleetItem::Edge(edge("x", 5)) }];
        assert_eq!(decode_batch(&body("h", &foreign, 1), "h").unwrap_err().reason(), "record_host_mismatch");
        let v9 = String::from_utf8(ok.clone()).unwrap().replacen("\"schema_version\":2", "\"schema_version\":9", 1);
        assert_eq!(decode_batch(v9.as_bytes(), "h").unwrap_err().reason(), "unknown_schema_version");
        let outside = String::from_utf8(ok).unwrap().replacen("\"seq\":1", "\"seq\":4", 1);
        assert_eq!(decode_batch(outside.as_bytes(), "h").unwrap_err().reason(), "seq_out_of_range");
    }

    #[test]
    fn a_host_records_only_its_own_processes_and_files() {
        assert!(node_id_of_host("proc:h:1:2", "h") && node_id_of_host("file:h:3:4", "h") && node_id_of_host("host:h", "h"));
        assert!(node_id_of_host("remote:10.0.0.1", "h") && node_id_of_host("user:root(uid 0)", "h"));
        for foreign in ["proc:g:1:2", "file:hh:3:4", "file:h", "host:g", "proc:h"] {
            assert!(!node_id_of_host(foreign, "h"), "{foreign}");
        }
        let planted = Edge { ts_ns: 1, src: "proc:h:1:2".into(), dst: "file:g:3:4".into(), host: "h".into(), data: EdgeData::Fork(NoAttrs {}) };
        let records = vec![FleetRecord { seq: 1, item: FleetItem::Edge(planted) }];
        assert_eq!(decode_batch(&body("h", &records, 1), "h").unwrap_err().reason(), "foreign_node_id");
    }

    #[test]
    fn subjects_are_single_tokens() {
        assert_eq!(graph_subject("vtrail", "disk-abc123"), "vtrail.graph.disk-abc123");
        assert_eq!(alerts_subject("org.vtrail", "hostname-a.b c*"), "org.vtrail.alerts.hostname-a_2eb_20c_2a");
        assert_ne!(subject_token("a.b"), subject_token("a_b"), "one-to-one");
        assert_ne!(subject_token("a_2eb"), subject_token("a.b"));
        assert!(valid_subject_prefix("org.vtrail") && !valid_subject_prefix("a.*") && !valid_subject_prefix("a..b"));
    }
}
