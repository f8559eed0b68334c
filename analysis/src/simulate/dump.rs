//! Writing one host's log as a sensor's JSON-lines dump (a `DumpHeader`, then one
//! `DumpLine` per node and edge). DNS fails for a quarter of the remote addresses a host records (empty
//! `node_ids`), but every address is resolved by at least one host, so merging by address
//! recovers it.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use sensor_common::graph::{
    DUMP_FORMAT, DumpHeader, DumpLine, HostInfo, Node, NodeData, SCHEMA_VERSION, host_node_id,
    remote_node_id,
};

use super::EPOCH_NS;
use super::host_log::HostLog;
use super::rng::Rng;
use super::topology::SimHost;

/// Which (recorder, address) pairs got a node id from DNS: 3 in 4, and every simulated host's
/// address by at least one recorder.
pub(super) fn dns_resolution(logs: &[HostLog], rng: &mut Rng) -> HashSet<(usize, usize)> {
    let mut resolved = HashSet::new();
    let mut by_target: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (recorder, log) in logs.iter().enumerate() {
        for target in log.remotes.values().flatten() {
            by_target.entry(*target).or_default().push(recorder);
        }
    }
    for (target, recorders) in by_target {
        let before = resolved.len();
        for &recorder in &recorders {
            if rng.below(4) != 0 {
                resolved.insert((recorder, target));
            }
        }
        if resolved.len() == before {
            resolved.insert((recorders[0], target));
        }
    }
    resolved
}

/// Writes `log` as `host`'s dump (header, host node, remotes, nodes, edges by time);
/// returns the number of edges written.
pub(super) fn write_dump(
    path: &Path,
    host: &SimHost,
    log: &mut HostLog,
    hosts: &[SimHost],
    resolved: &HashSet<(usize, usize)>,
    horizon: u64,
    gzip: bool,
) -> std::io::Result<u64> {
    let file = File::create(path)?;
    let mut out: Box<dyn Write> = if gzip {
        Box::new(BufWriter::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        )))
    } else {
        Box::new(BufWriter::with_capacity(1 << 16, file))
    };
    let me = hosts.iter().position(|h| h.id == host.id).unwrap_or(0);
    let header = DumpHeader {
        format: DUMP_FORMAT.to_owned(),
        schema_version: SCHEMA_VERSION,
        host: HostInfo {
            id: host.id.clone(),
            hostname: host.hostname.clone(),
            disk_ids: vec![host.id.clone()],
        },
        exported_ns: host.clock(horizon),
        since_ns: None,
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let host_node = Node {
        id: host_node_id(&host.id),
        host: host.id.clone(),
        first_seen_ns: host.boot_ns,
        data: NodeData::Host {
            hostname: host.hostname.clone(),
            disk_ids: vec![host.id.clone()],
        },
    };
    let remote_nodes = log.remotes.iter().map(|(ip, target)| Node {
        id: remote_node_id(ip),
        host: host.id.clone(),
        first_seen_ns: host.clock(EPOCH_NS),
        data: NodeData::Remote {
            ip: ip.clone(),
            node_ids: target
                .filter(|&t| resolved.contains(&(me, t)))
                .map(|t| vec![hosts[t].id.clone()])
                .unwrap_or_default(),
        },
    });
    let nodes = std::mem::take(&mut log.nodes);
    for node in std::iter::once(host_node)
        .chain(remote_nodes)
        .chain(nodes.into_values())
    {
        serde_json::to_writer(&mut out, &DumpLine::Node(node))?;
        out.write_all(b"\n")?;
    }
    let mut edges = std::mem::take(&mut log.edges);
    edges.sort_by_key(|e| e.ts_ns);
    for edge in &edges {
        serde_json::to_writer(&mut out, &DumpLine::Edge(edge.clone()))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(edges.len() as u64)
}
