//! Records turned into table rows: the typed checks that PostgreSQL would otherwise make
//! fail a whole transaction (integers past bigint, NUL characters in text) happen here, and
//! a record that fails them is refused alone, with a reason, instead of its whole batch.

use std::collections::BTreeMap;

use sensor_common::graph::fleet::{Batch, FleetItem};
use sensor_common::graph::{Edge, EdgeData, HostInfo, Node, NodeKind};

/// `origin` of everything a host's stream delivers (imports name their dump).
pub const STREAM_ORIGIN: &str = "";

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostRow {
    /// From a `host_info` record or a dump header; None when only the host's records came.
    pub info: Option<HostInfo>,
    /// The sequence of that `host_info` (0 for a dump header): a newer one wins.
    pub info_seq: i64,
    /// Highest stream sequence in this set (0 for imports).
    pub last_seq: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeRow {
    pub host: String,
    pub id: String,
    pub kind: &'static str,
    pub first_seen_ns: i64,
    pub seq: i64,
    pub json: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EdgeRow {
    pub host: String,
    pub origin: String,
    pub seq: i64,
    pub ts_ns: i64,
    pub kind: &'static str,
    pub src: String,
    pub dst: String,
    pub attrs: String,
}

/// A `received_from` / `sent_to` edge as spread joins it.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferRow {
    pub host: String,
    pub origin: String,
    pub seq: i64,
    pub ts_ns: i64,
    pub kind: &'static str,
    pub file: String,
    pub remote: String,
    pub ip: Option<String>,
    pub protocol: Option<&'static str>,
    pub name: Option<String>,
}

/// A record that cannot be stored, kept for the dead-letter table.
#[derive(Clone, Debug, PartialEq)]
pub struct RefusedRecord {
    pub host: String,
    pub seq: u64,
    pub reason: &'static str,
    pub detail: String,
    /// The record as JSON.
    pub record: Vec<u8>,
}

/// Rows for one transaction. Hosts are kept in key order: the writer locks them in that
/// order, so that concurrent writers cannot deadlock.
#[derive(Clone, Debug, Default)]
pub struct RowSet {
    pub hosts: BTreeMap<String, HostRow>,
    pub nodes: Vec<NodeRow>,
    pub edges: Vec<EdgeRow>,
    pub transfers: Vec<TransferRow>,
    pub refused: Vec<RefusedRecord>,
}

/// Why a value does not fit its column.
struct Unfit {
    reason: &'static str,
    detail: String,
}

fn bigint(value: u64, what: &str) -> Result<i64, Unfit> {
    i64::try_from(value).map_err(|_| Unfit {
        reason: if what == "seq" { "seq_out_of_range" } else { "ts_out_of_range" },
        detail: format!("{what} {value} is above the largest bigint ({})", i64::MAX),
    })
}

/// PostgreSQL text cannot hold NUL, nor jsonb the escape `\u0000`.
fn text_ok(value: &str, what: &str) -> Result<(), Unfit> {
    if value.contains('\0') || value.contains("\\u0000") {
        return Err(Unfit { reason: "nul_in_text", detail: format!("{what} holds a NUL character, which PostgreSQL text cannot store") });
    }
    Ok(())
}

impl RowSet {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.nodes.is_empty() && self.edges.is_empty() && self.refused.is_empty()
    }

    fn host(&mut self, host: &str) -> &mut HostRow {
        self.hosts.entry(host.to_owned()).or_default()
    }

    /// Every record of a decoded stream batch.
    pub fn add_batch(&mut self, batch: &Batch) {
        let host = &batch.header.host;
        for record in &batch.records {
            match &record.item {
                FleetItem::HostInfo(info) => self.add_host_info(info, record.seq),
                FleetItem::Node(node) => self.add_node(node, record.seq),
                FleetItem::Edge(edge) => self.add_edge(edge, STREAM_ORIGIN, record.seq),
            }
            if let Ok(seq) = i64::try_from(record.seq) {
                let row = self.host(host);
                row.last_seq = row.last_seq.max(seq);
            }
        }
    }

    fn refuse(&mut self, host: &str, seq: u64, unfit: Unfit, record: impl serde::Serialize) {
        let record = serde_json::to_vec(&record).unwrap_or_default();
        self.host(host);
        self.refused.push(RefusedRecord { host: host.into(), seq, reason: unfit.reason, detail: format!("seq {seq}: {}", unfit.detail), record });
    }

    pub fn add_host_info(&mut self, info: &HostInfo, seq: u64) {
        let checked = bigint(seq, "seq").and_then(|seq| {
            text_ok(&info.hostname, "hostname")?;
            info.disk_ids.iter().try_for_each(|d| text_ok(d, "disk id"))?;
            Ok(seq)
        });
        match checked {
            Ok(seq) => {
                let row = self.host(&info.id);
                if row.info.is_none() || seq >= row.info_seq {
                    row.info = Some(info.clone());
                    row.info_seq = seq;
                }
            }
            Err(unfit) => self.refuse(&info.id.clone(), seq, unfit, FleetItem::HostInfo(info.clone())),
        }
    }

    /// A node at `seq` (0 for imported dumps: any streamed state replaces it).
    pub fn add_node(&mut self, node: &Node, seq: u64) {
        match Self::node_row(node, seq) {
            Ok(row) => {
                self.host(&node.host);
                self.nodes.push(row);
            }
            Err(unfit) => self.refuse(&node.host.clone(), seq, unfit, FleetItem::Node(node.clone())),
        }
    }

    fn node_row(node: &Node, seq: u64) -> Result<NodeRow, Unfit> {
        let json = serde_json::to_string(node).map_err(|e| Unfit { reason: "bad_record", detail: e.to_string() })?;
        text_ok(&node.host, "host")?;
        text_ok(&node.id, "node id")?;
        text_ok(&json, "node")?;
        Ok(NodeRow {
            host: node.host.clone(),
            id: node.id.clone(),
            kind: node_kind_name(node.data.kind()),
            first_seen_ns: bigint(node.first_seen_ns, "first_seen_ns")?,
            seq: bigint(seq, "seq")?,
            json,
        })
    }

    pub fn add_edge(&mut self, edge: &Edge, origin: &str, seq: u64) {
        match Self::edge_rows(edge, origin, seq) {
            Ok((row, transfer)) => {
                self.host(&edge.host);
                self.edges.push(row);
                self.transfers.extend(transfer);
            }
            Err(unfit) => self.refuse(&edge.host.clone(), seq, unfit, FleetItem::Edge(edge.clone())),
        }
    }

    fn edge_rows(edge: &Edge, origin: &str, seq: u64) -> Result<(EdgeRow, Option<TransferRow>), Unfit> {
        let attrs = edge.data.attrs_to_json().map_err(|e| Unfit { reason: "bad_record", detail: e.to_string() })?;
        text_ok(&edge.host, "host")?;
        text_ok(&edge.src, "src")?;
        text_ok(&edge.dst, "dst")?;
        text_ok(&attrs, "attrs")?;
        let row = EdgeRow {
            host: edge.host.clone(),
            origin: origin.into(),
            seq: bigint(seq, "seq")?,
            ts_ns: bigint(edge.ts_ns, "ts_ns")?,
            kind: edge.kind().name(),
            src: edge.src.clone(),
            dst: edge.dst.clone(),
            attrs,
        };
        let transfer = transfer_row(edge, &row);
        Ok((row, transfer))
    }

    /// The days of every edge, for the partitions they need.
    pub fn edge_days(&self) -> impl Iterator<Item = i64> + '_ {
        self.edges.iter().map(|e| super::partitions::day_of(e.ts_ns))
    }
}

/// The file is this host's end of the transfer: the destination of `received_from`, the
/// source of `sent_to`; the remote is the other end.
fn transfer_row(edge: &Edge, row: &EdgeRow) -> Option<TransferRow> {
    let (file, remote) = match &edge.data {
        EdgeData::ReceivedFrom(_) => (&edge.dst, &edge.src),
        EdgeData::SentTo(_) => (&edge.src, &edge.dst),
        _ => return None,
    };
    let attrs = edge.data.transfer()?;
    Some(TransferRow {
        host: row.host.clone(),
        origin: row.origin.clone(),
        seq: row.seq,
        ts_ns: row.ts_ns,
        kind: row.kind,
        file: file.clone(),
        remote: remote.clone(),
        ip: attrs.ip.clone(),
        protocol: attrs.protocol.map(|p| p.name()),
        name: attrs.name.clone(),
    })
}

/// The `kind` column: NodeKind's JSON name (sensor-common names only the id prefixes).
fn node_kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Host => "host",
        NodeKind::Process => "process",
        NodeKind::File => "file",
        NodeKind::Remote => "remote",
        NodeKind::User => "user",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensor_common::graph::{NoAttrs, Protocol, TransferAttrs};

    fn edge(ts_ns: u64, data: EdgeData, src: &str, dst: &str) -> Edge {
        Edge { ts_ns, src: src.into(), dst: dst.into(), host: "h".into(), data }
    }

    #[test]
    fn a_time_past_bigint_is_refused_alone() {
        let mut rows = RowSet::default();
        rows.add_edge(&edge(u64::MAX, EdgeData::Fork(NoAttrs {}), "proc:h:1:1", "proc:h:2:2"), "", 4);
        rows.add_edge(&edge(5, EdgeData::Fork(NoAttrs {}), "proc:h:1:1", "proc:h:2:2"), "", 5);
        assert_eq!(rows.edges.len(), 1);
        assert_eq!(rows.refused.len(), 1);
        assert_eq!((rows.refused[0].reason, rows.refused[0].seq), ("ts_out_of_range", 4));
        assert!(rows.refused[0].detail.contains("18446744073709551615"), "{}", rows.refused[0].detail);
    }

    #[test]
    fn nul_characters_are_refused() {
        let mut rows = RowSet::default();
        rows.add_edge(&edge(5, EdgeData::Fork(NoAttrs {}), "proc:h:1\0:1", "proc:h:2:2"), "", 1);
        assert_eq!(rows.refused[0].reason, "nul_in_text");
        assert!(rows.edges.is_empty());
    }

    #[test]
    fn transfers_name_this_hosts_file_and_the_remote() {
        let mut attrs = TransferAttrs::new("10.0.0.2", Protocol::Smb2);
        attrs.name = Some("a.exe".into());
        let mut rows = RowSet::default();
        rows.add_edge(&edge(5, EdgeData::ReceivedFrom(attrs.clone()), "remote:10.0.0.2", "file:h:1:2"), "", 1);
        rows.add_edge(&edge(6, EdgeData::SentTo(attrs), "file:h:1:3", "remote:10.0.0.2"), "", 2);
        let seen: Vec<_> = rows
            .transfers
            .iter()
            .map(|t| (t.kind, t.file.as_str(), t.remote.as_str(), t.protocol, t.name.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("received_from", "file:h:1:2", "remote:10.0.0.2", Some("smb2"), Some("a.exe")),
                ("sent_to", "file:h:1:3", "remote:10.0.0.2", Some("smb2"), Some("a.exe")),
            ]
        );
        assert_eq!(rows.transfers[0].ip.as_deref(), Some("10.0.0.2"));
    }
}
