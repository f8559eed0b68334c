//! Edges in chunks (database version 3, `sensor_common::graph::database`): edges added
//! wait in memory until a chunk is full or the store commits (every flush, and before any
//! read of edges), then go to sled as one record per chunk. Reading merges the chunks back
//! into time order.
use std::{
    cmp::Reverse,
    collections::{BinaryHeap, VecDeque},
};

use sensor_common::graph::{
    Edge,
    database::{ChunkKey, EDGES_PER_CHUNK, chunk_records},
    trees,
};

use super::{StoreError, json_err};

/// Edges added and not yet written, in the order added.
#[derive(Default)]
pub(super) struct PendingEdges {
    edges: Vec<(u64, Vec<u8>)>,
}

impl PendingEdges {
    pub(super) fn push(&mut self, ts_ns: u64, json: Vec<u8>) {
        self.edges.push((ts_ns, json));
    }

    /// Another chunk's worth added (when writes fail, the retry comes a chunk later, not
    /// at every edge).
    pub(super) fn is_full(&self) -> bool {
        !self.edges.is_empty() && self.edges.len().is_multiple_of(EDGES_PER_CHUNK)
    }

    /// The chunks these edges make (sorted by time, the order added kept among equal
    /// times), numbered from `next_chunk`; the edges stay pending until `written`.
    pub(super) fn chunks(&mut self, next_chunk: &mut u64) -> Vec<(ChunkKey, Vec<u8>)> {
        self.edges.sort_by_key(|(ts, _)| *ts);
        self.edges
            .chunks(EDGES_PER_CHUNK)
            .map(|chunk| {
                let key = ChunkKey { min_ts_ns: chunk[0].0, chunk: *next_chunk, edges: chunk.len() as u32 };
                *next_chunk += 1;
                let mut value = Vec::with_capacity(chunk.iter().map(|(_, j)| j.len() + 1).sum());
                for (_, json) in chunk {
                    value.extend_from_slice(json);
                    value.push(b'\n');
                }
                (key, value)
            })
            .collect()
    }

    /// The first `chunks` chunks (as `chunks` made them, from the sorted edges) were
    /// written.
    pub(super) fn written_first(&mut self, chunks: usize) {
        let n = chunks.saturating_mul(EDGES_PER_CHUNK).min(self.edges.len());
        self.edges.drain(..n);
    }
}

/// An edge read, ordered by time, then by the order read (chunk key order, then line).
struct Read {
    ts_ns: u64,
    order: u64,
    edge: Edge,
}

impl PartialEq for Read {
    fn eq(&self, other: &Self) -> bool {
        (self.ts_ns, self.order) == (other.ts_ns, other.order)
    }
}
impl Eq for Read {}
impl PartialOrd for Read {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Read {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts_ns, self.order).cmp(&(other.ts_ns, other.order))
    }
}

/// The edges of the `edge_chunks` tree at or after `since_ns`, in time order. Chunks come
/// sorted by their earliest edge, so an edge older than the next chunk's earliest can be
/// given out: only chunks that overlap in time are held in memory together. A damaged
/// chunk key or line is an error in its place and the rest is still read; a sled read
/// error is the last item. Edges of equal time come in chunk key order, then as added.
pub(super) struct EdgesInOrder {
    chunks: sled::Iter,
    since_ns: u64,
    /// The next chunk's key and value, read ahead.
    next: Option<(ChunkKey, sled::IVec)>,
    ready: BinaryHeap<Reverse<Read>>,
    errors: VecDeque<StoreError>,
    order: u64,
}

impl EdgesInOrder {
    pub(super) fn new(chunks: sled::Iter, since_ns: u64, first_error: Option<StoreError>) -> Self {
        let mut me = Self { chunks, since_ns, next: None, ready: BinaryHeap::new(), errors: first_error.into_iter().collect(), order: 0 };
        me.read_ahead();
        me
    }

    fn read_ahead(&mut self) {
        self.next = None;
        for record in self.chunks.by_ref() {
            match record {
                Err(e) => {
                    self.errors.push_back(e.into());
                    return;
                }
                Ok((key, value)) => match ChunkKey::from_bytes(&key) {
                    Some(key) => {
                        self.next = Some((key, value));
                        return;
                    }
                    None => self.errors.push_back(StoreError::Corrupt { tree: trees::EDGE_CHUNKS, message: format!("a chunk key of {} bytes", key.len()) }),
                },
            }
        }
    }

    fn take_next_chunk(&mut self) {
        let Some((_, value)) = self.next.take() else { return };
        for record in chunk_records(&value) {
            self.order += 1;
            match serde_json::from_slice::<Edge>(record) {
                Ok(edge) if edge.ts_ns >= self.since_ns => self.ready.push(Reverse(Read { ts_ns: edge.ts_ns, order: self.order, edge })),
                Ok(_) => {}
                Err(e) => self.errors.push_back(json_err(trees::EDGE_CHUNKS, e)),
            }
        }
        self.read_ahead();
    }
}

impl Iterator for EdgesInOrder {
    type Item = Result<Edge, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.errors.pop_front() {
                return Some(Err(e));
            }
            let earliest_ready = self.ready.peek().map(|Reverse(r)| r.ts_ns);
            match (earliest_ready, &self.next) {
                (None, None) => return None,
                (Some(ts), Some((next, _))) if ts < next.min_ts_ns => {}
                (Some(_), None) => {}
                _ => {
                    self.take_next_chunk();
                    continue;
                }
            }
            return self.ready.pop().map(|Reverse(r)| Ok(r.edge));
        }
    }
}
