//! What the graph already holds about a flagged file when its alert is raised: the
//! processes that ran it (and those they started), what they wrote, and the hosts it was
//! sent to. Read forward from the edges since the file was first seen, with a budget in
//! edges and time: alerts are raised on the event loop, and a file flagged long after it
//! arrived on a busy server has many edges after it. What the budget leaves out, the
//! graph keeps (`vtrail-analysis trace` walks all of it).
use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use sensor_common::graph::{
    Edge, EdgeData, NodeData,
    alert::{KNOWN_LIST_MAX, Known, KnownProcess, KnownTransfer, KnownWrite},
};

use crate::graph::store::{GraphStore, StoreError};

/// The most edges read for one alert.
const EDGES_MAX: u64 = 200_000;
/// The longest time spent reading them (checked every `CHECK_EVERY` edges).
const TIME_MAX: Duration = Duration::from_millis(50);
const CHECK_EVERY: u64 = 1024;
/// Chunks whose earliest edge is up to this long before the file's first sighting are read
/// ([`GraphStore::edges_recent`]).
const CHUNK_SLACK_NS: u64 = 60_000_000_000;

/// What is known of `file` (a file node id). A damaged edge record is skipped and makes
/// the answer incomplete; a store that cannot be read is an error.
pub fn known(store: &GraphStore, file: &str) -> Result<Known, StoreError> {
    let Some(node) = store.node(file)? else { return Ok(Known { complete: true, ..Known::default() }) };
    let started = Instant::now();
    let mut found = Found::new(file);
    let mut complete = true;
    for edge in store.edges_recent(node.first_seen_ns, CHUNK_SLACK_NS) {
        found.known.edges_read += 1;
        let n = found.known.edges_read;
        if n > EDGES_MAX || (n.is_multiple_of(CHECK_EVERY) && started.elapsed() >= TIME_MAX) {
            complete = false;
            break;
        }
        match edge {
            Ok(edge) => found.add(&edge),
            Err(_) => complete = false,
        }
    }
    found.known.complete = complete;
    found.describe_processes(store)?;
    Ok(found.known)
}

/// The reading so far.
struct Found<'a> {
    file: &'a str,
    /// Processes that ran the file, or descend from one that did (listed or not).
    processes: HashSet<String>,
    writes_seen: HashSet<(String, String, &'static str)>,
    known: Known,
}

impl<'a> Found<'a> {
    fn new(file: &'a str) -> Self {
        Self { file, processes: HashSet::new(), writes_seen: HashSet::new(), known: Known::default() }
    }

    fn add(&mut self, edge: &Edge) {
        match &edge.data {
            EdgeData::Exec(_) if edge.src == self.file => self.process(&edge.dst, "exec", edge.ts_ns),
            EdgeData::Read(r) if edge.src == self.file && r.taint_reason.is_some() => self.process(&edge.dst, "script", edge.ts_ns),
            EdgeData::Fork(_) if self.processes.contains(&edge.src) => self.process(&edge.dst, "fork", edge.ts_ns),
            EdgeData::SentTo(t) if edge.src == self.file => {
                let transfer = KnownTransfer {
                    remote: edge.dst.clone(),
                    ip: t.ip.clone(),
                    protocol: t.protocol.map(|p| p.name().to_owned()).unwrap_or_default(),
                    name: t.name.clone(),
                    ts_ns: edge.ts_ns,
                };
                push_capped(&mut self.known.sent_to, transfer, &mut self.known.left_out);
            }
            data if self.processes.contains(&edge.src) => {
                let Some((path, activation_point)) = written(data) else { return };
                let kind = data.kind().name();
                // One entry per (process, file, kind): a process writing a file a thousand
                // times wrote it.
                if !self.writes_seen.insert((edge.src.clone(), edge.dst.clone(), kind)) {
                    return;
                }
                let write = KnownWrite { process: edge.src.clone(), file: edge.dst.clone(), action: kind.into(), path, activation_point, ts_ns: edge.ts_ns };
                push_capped(&mut self.known.wrote, write, &mut self.known.left_out);
            }
            _ => {}
        }
    }

    fn process(&mut self, node: &str, how: &str, ts_ns: u64) {
        // (Followed whether listed or not: what a descendant wrote counts.)
        if !self.processes.insert(node.to_owned()) {
            return;
        }
        let process = KnownProcess { node: node.to_owned(), how: how.into(), pid: None, exe: None, comm: None, ts_ns };
        push_capped(&mut self.known.ran, process, &mut self.known.left_out);
    }

    /// The listed processes' pid, image and name, from their nodes.
    fn describe_processes(&mut self, store: &GraphStore) -> Result<(), StoreError> {
        for p in &mut self.known.ran {
            if let Some(NodeData::Process { tgid, exe, comm, .. }) = store.node(&p.node)?.map(|n| n.data) {
                (p.pid, p.exe, p.comm) = (Some(tgid), Some(exe), Some(comm));
            }
        }
        Ok(())
    }
}

/// The path and activation point of an edge that changes a file, or None for another kind.
fn written(data: &EdgeData) -> Option<(Option<String>, Option<String>)> {
    let ap = data.activation_point().map(str::to_owned);
    match data {
        EdgeData::Create(a) | EdgeData::Write(a) | EdgeData::Truncate(a) => Some((a.path.clone(), ap)),
        EdgeData::Chmod(a) => Some((a.path.clone(), ap)),
        EdgeData::Rename(a) | EdgeData::Link(a) => Some((Some(a.to.clone()), ap)),
        EdgeData::Unlink(a) => Some((a.path.clone(), ap)),
        _ => None,
    }
}

fn push_capped<T>(list: &mut Vec<T>, item: T, left_out: &mut u64) {
    if list.len() < KNOWN_LIST_MAX {
        list.push(item);
    } else {
        *left_out += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensor_common::graph::{ExecAttrs, FileWriteAttrs, NoAttrs, Node, Protocol, TransferAttrs};

    fn file_node(id: &str, first_seen_ns: u64) -> Node {
        Node {
            id: id.into(),
            host: "h".into(),
            first_seen_ns,
            data: NodeData::File { dev: 1, ino: 1, paths: vec![], untrusted: true, executable: true, sha256: None, malicious: false, scan: None },
        }
    }

    fn edge(ts_ns: u64, src: &str, dst: &str, data: EdgeData) -> Edge {
        Edge { ts_ns, src: src.into(), dst: dst.into(), host: "h".into(), data }
    }

    fn write(path: &str) -> EdgeData {
        EdgeData::Write(FileWriteAttrs { path: Some(path.into()), ..FileWriteAttrs::default() })
    }

    /// Run by a process whose child wrote two files (one many times), sent to a host;
    /// what others did, and what came before the file, is not listed.
    #[test]
    fn follows_what_ran_the_file_and_where_it_went() {
        let dir = crate::graph::store::tests::tempdir();
        let store = GraphStore::open(&dir).unwrap();
        store.upsert_node(file_node("file:worm", 1_000)).unwrap();
        let edges = [
            edge(900, "proc:before", "file:x", write("/tmp/before")),
            edge(1_000, "proc:dropper", "file:worm", write("/srv/worm")),
            edge(1_100, "file:worm", "proc:w", EdgeData::Exec(ExecAttrs::default())),
            edge(1_200, "proc:w", "proc:child", EdgeData::Fork(NoAttrs {})),
            edge(1_300, "proc:child", "file:cron", write("/etc/cron.d/w")),
            edge(1_301, "proc:child", "file:cron", write("/etc/cron.d/w")),
            edge(1_400, "proc:other", "file:y", write("/tmp/other")),
            edge(1_500, "file:worm", "remote:10.0.0.9", EdgeData::SentTo(TransferAttrs { ip: Some("10.0.0.9".into()), protocol: Some(Protocol::Smb2), name: Some("w.exe".into()), ..TransferAttrs::default() })),
        ];
        for e in &edges {
            store.add_edge(e).unwrap();
        }
        let k = known(&store, "file:worm").unwrap();
        let ran: Vec<(&str, &str)> = k.ran.iter().map(|p| (p.node.as_str(), p.how.as_str())).collect();
        assert_eq!(ran, [("proc:w", "exec"), ("proc:child", "fork")]);
        let wrote: Vec<&str> = k.wrote.iter().map(|w| w.path.as_deref().unwrap()).collect();
        assert_eq!(wrote, ["/etc/cron.d/w"], "once, by the child; not the dropper's write or another's");
        assert_eq!(k.sent_to.len(), 1);
        assert_eq!((k.sent_to[0].ip.as_deref(), k.sent_to[0].protocol.as_str(), k.sent_to[0].name.as_deref()), (Some("10.0.0.9"), "smb2", Some("w.exe")));
        assert!(k.complete);
        assert_eq!(k.left_out, 0);
        assert_eq!(k.edges_read, 7, "from the file's first sighting on");
    }

    #[test]
    fn lists_are_capped_and_what_is_left_out_counted() {
        let dir = crate::graph::store::tests::tempdir();
        let store = GraphStore::open(&dir).unwrap();
        store.upsert_node(file_node("file:worm", 10)).unwrap();
        let n = KNOWN_LIST_MAX + 5;
        for i in 0..n {
            store.add_edge(&edge(10 + i as u64, "file:worm", &format!("proc:{i}"), EdgeData::Exec(ExecAttrs::default()))).unwrap();
        }
        let k = known(&store, "file:worm").unwrap();
        assert_eq!(k.ran.len(), KNOWN_LIST_MAX);
        assert_eq!(k.left_out, 5);
        // An unknown node: nothing known, nothing missed.
        let none = known(&store, "file:absent").unwrap();
        assert!(none.ran.is_empty() && none.complete);
    }
}
