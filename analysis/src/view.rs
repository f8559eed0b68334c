//! Self-contained views of graph elements for reports: ids resolved to strings, times
//! formatted, so that every output format renders from the same plain data.

use sensor_common::graph::{EdgeKind, Protocol};
use serde::Serialize;

use crate::index::{EdgeIx, Graph, HostIx, NodeIx, NodeKind};
use crate::time::Timestamp;

#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    pub id: String,
    pub kind: &'static str,
    pub host: String,
    pub label: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub first_seen: String,
}

impl NodeView {
    pub fn new(graph: &Graph, n: NodeIx) -> Self {
        let node = graph.node(n);
        let file = graph.file(n);
        NodeView {
            id: graph.id(n).to_owned(),
            kind: node.kind.name(),
            host: graph.host(node.host).id.clone(),
            label: graph.label(n),
            paths: file
                .map(|f| f.paths().map(str::to_owned).collect())
                .unwrap_or_default(),
            sha256: file.and_then(|f| f.sha256_hex()),
            first_seen: Timestamp(node.first_seen_ns).to_string(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EdgeView {
    pub ts_ns: u64,
    pub time: String,
    /// Host that recorded it (times are on its clock).
    pub host: String,
    pub kind: EdgeKind,
    pub src: String,
    pub src_label: String,
    pub dst: String,
    pub dst_label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The attributes as recorded (`sensor_common::graph::edge` lists them per kind).
    pub attrs: Option<serde_json::Map<String, serde_json::Value>>,
}

impl EdgeView {
    pub fn new(graph: &Graph, e: EdgeIx) -> Self {
        let edge = graph.edge(e);
        EdgeView {
            ts_ns: edge.ts_ns,
            time: Timestamp(edge.ts_ns).to_string(),
            host: graph.host(edge.host).id.clone(),
            kind: edge.kind,
            src: graph.id(edge.src).to_owned(),
            src_label: graph.label(edge.src),
            dst: graph.id(edge.dst).to_owned(),
            dst_label: graph.label(edge.dst),
            attrs: graph.attrs_json(e),
        }
    }

    /// `12:00:01.250 fs-01 exec /srv/share/x -> /srv/share/x [4242]`
    pub fn sentence(&self) -> String {
        let kind = self.kind.name();
        let mut text = format!(
            "{} {:<13} {} -> {}",
            self.time, kind, self.src_label, self.dst_label
        );
        if let Some(attrs) = &self.attrs {
            let shown: Vec<String> = attrs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    )
                })
                .collect();
            text.push_str(&format!("  ({})", shown.join(", ")));
        }
        text
    }
}

pub fn edge_kind_name(kind: EdgeKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A network arrival: the `received_from` edge with what it says about the sender.
#[derive(Clone, Debug, Serialize)]
pub struct TransferView {
    pub ts_ns: u64,
    pub time: String,
    /// Receiving host.
    pub host: String,
    pub file: String,
    pub file_id: String,
    pub from_ip: String,
    pub from_node_ids: Vec<String>,
    /// The loaded host the sender is, if any.
    pub from_host: Option<String>,
    pub protocol: Option<Protocol>,
    /// File name as the sender gave it.
    pub name_as_sent: Option<String>,
}

impl TransferView {
    pub fn new(graph: &Graph, received: EdgeIx) -> Self {
        let edge = graph.edge(received);
        let remote = graph.remote(edge.src);
        let transfer = graph.transfer(received);
        TransferView {
            ts_ns: edge.ts_ns,
            time: Timestamp(edge.ts_ns).to_string(),
            host: graph.host(edge.host).id.clone(),
            file: graph.label(edge.dst),
            file_id: graph.id(edge.dst).to_owned(),
            from_ip: remote
                .map(|r| r.ip.to_string())
                .unwrap_or_else(|| graph.id(edge.src).to_owned()),
            from_node_ids: remote
                .map(|r| r.node_ids.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            from_host: graph
                .remote_host(edge.src)
                .map(|h| graph.host(h).id.clone()),
            protocol: transfer.as_ref().and_then(|t| t.protocol),
            name_as_sent: transfer.and_then(|t| t.name),
        }
    }

    pub fn sentence(&self) -> String {
        let sender = match (&self.from_host, self.from_node_ids.is_empty()) {
            (Some(host), _) => format!("host {host} ({})", self.from_ip),
            (None, false) => format!(
                "{} = node {} (dump not loaded)",
                self.from_ip,
                self.from_node_ids.join("/")
            ),
            (None, true) => format!("{} (outside the loaded hosts)", self.from_ip),
        };
        format!(
            "{} on {}: {} received from {} over {} as \"{}\"",
            self.time,
            self.host,
            self.file,
            sender,
            self.protocol.map_or("unknown protocol", Protocol::name),
            self.name_as_sent.as_deref().unwrap_or("?")
        )
    }
}

/// One host in a propagation tree, as drawn by the dot/graphml/html outputs.
#[derive(Clone, Debug, Serialize)]
pub struct TreeHost {
    pub id: String,
    pub label: String,
    /// Parent host id; `None` for roots.
    pub parent: Option<String>,
    /// When it was infected, or for a host that never ran it, when it got it first.
    pub time_ns: Option<u64>,
    pub time: Option<String>,
    /// `patient-zero`, `infected`, `carrier`, `flagged`, `reached`.
    pub role: &'static str,
    /// What the edge from the parent was (protocol and name).
    pub via: Option<String>,
}

impl TreeHost {
    /// Did the host run what it got? Carriers and reached hosts hold it without running
    /// it: the edge to them is drawn as a receive (dashed), not an infection.
    pub fn ran(&self) -> bool {
        !matches!(self.role, "carrier" | "reached")
    }

    /// A host as drawn: labeled by its hostname (its id when it has none), placed by the
    /// time of `time_ns`, the edge from its parent named by the transfer `via`.
    pub fn new(
        id: &str,
        hostname: &str,
        role: &'static str,
        parent: Option<String>,
        time_ns: Option<u64>,
        via: Option<&TransferView>,
    ) -> Self {
        TreeHost {
            id: id.to_owned(),
            label: if hostname.is_empty() { id } else { hostname }.to_owned(),
            parent,
            time_ns,
            time: time_ns.map(|t| Timestamp(t).to_string()),
            role,
            via: via.map(|v| {
                format!(
                    "{} {}",
                    v.protocol.map_or("?", Protocol::name),
                    v.name_as_sent.as_deref().unwrap_or("?")
                )
            }),
        }
    }
}

pub fn host_label(graph: &Graph, h: HostIx) -> String {
    graph.host(h).label().to_owned()
}

pub fn is_file(graph: &Graph, n: NodeIx) -> bool {
    graph.node(n).kind == NodeKind::File
}
