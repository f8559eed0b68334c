//! sled storage of the graph (layout: `sensor_common::graph::database`). Nodes are
//! merged on update (a file seen under a new name keeps its old ones) and written by a
//! thread of their own (`node_writer`); edges are append-only, written in chunks
//! (`edge_log`) that readers merge into time order. The untrusted files (in buckets,
//! `buckets`), tainted processes and blocks are what the kernel maps are rebuilt from on
//! restart. Nodes, edges and bucket changes wait in memory until the next commit (at the
//! latest the next flush, every `daemon::FLUSH_INTERVAL`, which also waits for the node
//! writer), so the crash guarantee is the flush's: what was flushed is there.
mod buckets;
mod edge_log;
mod node_writer;
mod upgrade;
mod alerts;
pub use alerts::{AlertsFeed, WEBHOOK_KEY};
mod rules;
pub use rules::Applied;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::fleet::outbox::Outbox;

use sensor_common::{
    graph::{
        Edge, EdgeData, HostInfo, Node, NodeData, TaintedFile,
        database::{BucketEntry, ChunkKey, DATABASE_VERSION, bucket_dev},
        trees,
    },
    maps::InodeKey,
};

use buckets::{Bucket, HeldBuckets};
use edge_log::{EdgesInOrder, PendingEdges};
use node_writer::{NodeBatch, NodeWriter, Written};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the graph database at {path}: {source}. If another vtrail-sensor is \
         running it holds the database: stop it or use its control socket. If the database \
         is corrupt, `vtrail-sensor run --recover` moves it aside (nothing in it is deleted) \
         and starts on a fresh one"
    )]
    Open { path: PathBuf, source: sled::Error },
    #[error(
        "the graph database at {path} has schema version {found}, this sensor knows version \
         {expected}: export it with the vtrail version that wrote it, or move it aside"
    )]
    Schema { path: PathBuf, found: u32, expected: u32 },
    #[error("graph database I/O error: {0}")]
    Io(#[from] sled::Error),
    #[error("graph database holds an unreadable record in tree {tree}: {message}")]
    Corrupt { tree: &'static str, message: String },
    /// sled reads a log cut short (a truncated file, a zeroed page) as a crash and opens
    /// what is left without an error: the counts of the last flush say what is missing.
    #[error(
        "the graph database at {path} holds fewer records than its last flush wrote \
         ({edges_found} of {edges} edges, {nodes_found} of {nodes} nodes, as {CHECKPOINT} \
         recorded): it was truncated or damaged"
    )]
    Lost { path: PathBuf, nodes: u64, edges: u64, nodes_found: u64, edges_found: u64 },
    /// sled panics, instead of returning an error, on some damaged logs.
    #[error("the graph database at {path} is damaged: sled failed reading it ({message})")]
    Unreadable { path: PathBuf, message: String },
    #[error("the graph database's flush record {path} is unreadable ({message}): it was damaged")]
    Checkpoint { path: PathBuf, message: String },
}

pub struct GraphStore {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    nodes: sled::Tree,
    edge_chunks: sled::Tree,
    untrusted: sled::Tree,
    tainted: sled::Tree,
    blocked: sled::Tree,
    /// File node id -> its latest `received_from` edge (`alerts.rs`).
    arrivals: sled::Tree,
    alerts: sled::Tree,
    /// Protected paths and YARA rules from `apply-rules` (`rules.rs`).
    applied_rules: sled::Tree,
    /// What waits for the next commit.
    pending: Mutex<Pending>,
    /// Every node id stored (and, rarely, a few more): an id it does not hold is a new
    /// node, written without first reading the database - a worm's every new file.
    node_ids: fastbloom::AtomicBloomFilter,
    node_writer: NodeWriter,
    /// Nodes, edges, untrusted files and tainted processes, counted as they are written:
    /// sled's `len` walks the whole tree, too slow for every `status` or scrape.
    counts: TreeCounts,
    /// Set when the fleet is on: every node and edge stored is also queued for the fleet.
    outbox: OnceLock<Outbox>,
    /// What the newest checkpoint file says (not rewritten while nothing was added).
    flushed: std::sync::Mutex<Option<Flushed>>,
}

#[derive(Default)]
struct Pending {
    edges: PendingEdges,
    /// Nodes stored since the last batch went to the node writer.
    nodes: NodeBatch,
    /// The number of the next edge chunk.
    next_chunk: u64,
    buckets: HeldBuckets,
}

/// The file, beside sled's own in the database directory, that records how many nodes
/// and edges the last flush made durable. Nodes and edges are never removed, so a
/// database that opens with fewer lost them.
pub const CHECKPOINT: &str = "vtrail-flushed.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Flushed {
    nodes: u64,
    edges: u64,
}

#[derive(Default)]
struct TreeCounts {
    /// Counted by the node writer as it writes.
    nodes: Arc<AtomicU64>,
    edges: AtomicU64,
    untrusted: AtomicU64,
    tainted: AtomicU64,
}

impl TreeCounts {
    /// One more if `old` (what an insert replaced) was nothing; one less if a remove
    /// removed something.
    fn inserted(counter: &AtomicU64, old: &Option<sled::IVec>) {
        if old.is_none() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn removed(counter: &AtomicU64, old: &Option<sled::IVec>) {
        if old.is_some() {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// sled's page cache, at most.
const CACHE_BYTES: u64 = 64 << 20;

/// The node-id filter's size: 8 MiB, for about one false "maybe stored" in 200 at
/// 4 million nodes (then a read finds the node is new); past that it degrades to reading
/// more often, never to a wrong answer.
const NODE_FILTER_BITS: usize = 64 << 20;
const NODE_FILTER_ITEMS: usize = 4_000_000;
/// Nodes sent to the node writer at a time, at most.
const NODES_PER_BATCH: usize = 1024;


/// `config.open()`, with a panic inside sled caught and returned as its message: sled
/// 0.34 panics on some cut logs (a log truncated to a third after a clean stop: "tried to
/// serialize Uninitialized", while rewriting its snapshot at open). The default panic
/// message is kept off stderr meanwhile: this is damage to report, not a crash.
fn open_sled(config: sled::Config) -> Result<sled::Result<sled::Db>, String> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    std::panic::set_hook(previous);
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

fn json_err(tree: &'static str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt { tree, message: e.to_string() }
}

impl GraphStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open { path: path.into(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| open_err(sled::Error::Io(e)))?;
        }
        // The record names every path, process and peer: the database directory is the
        // owner's alone (0700, files 0600), whatever the umask or an older version left.
        private::create_dir(path).map_err(|e| open_err(sled::Error::Io(e)))?;
        let config = sled::Config::new()
            .path(path)
            // sled's default is a 1 GiB page cache; the sensor's memory must stay bounded on
            // a file server (the cache holds hot pages, the rest is read back from disk).
            .cache_capacity(CACHE_BYTES);
        let db = open_sled(config).map_err(|message| StoreError::Unreadable { path: path.into(), message })?.map_err(open_err)?;
        private::restrict_tree(path).map_err(|e| open_err(sled::Error::Io(e)))?;
        let tree = |name: &str| db.open_tree(name).map_err(open_err);
        let counts = TreeCounts::default();
        let node_writer = NodeWriter::start(tree(trees::NODES)?, counts.nodes.clone()).map_err(|e| open_err(sled::Error::Io(e)))?;
        let store = Self {
            path: path.into(),
            meta: tree(trees::META)?,
            nodes: tree(trees::NODES)?,
            edge_chunks: tree(trees::EDGE_CHUNKS)?,
            untrusted: tree(trees::UNTRUSTED_BUCKETS)?,
            tainted: tree(trees::TAINTED_PROCS)?,
            blocked: tree(trees::BLOCKED_HOSTS)?,
            arrivals: tree(trees::ARRIVALS)?,
            alerts: tree(trees::ALERTS)?,
            applied_rules: tree(trees::APPLIED_RULES)?,
            pending: Mutex::default(),
            node_ids: fastbloom::AtomicBloomFilter::with_num_bits(NODE_FILTER_BITS).expected_items(NODE_FILTER_ITEMS),
            counts,
            node_writer,
            outbox: OnceLock::new(),
            flushed: std::sync::Mutex::new(None),
            db,
        };
        match store.meta.get("schema_version")? {
            None => {
                store.meta.insert("schema_version", &DATABASE_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let found = v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX);
                match found {
                    1 => {
                        store.upgrade_from_v1()?;
                        store.upgrade_to_chunks()?;
                    }
                    2 => store.upgrade_to_chunks()?,
                    DATABASE_VERSION => {}
                    _ => return Err(StoreError::Schema { path: path.into(), found, expected: DATABASE_VERSION }),
                }
            }
        }
        store.count_records()?;
        Ok(store)
    }

    /// Counts the records (verify compares them with the last flush's) and continues the
    /// chunk numbers. A damaged chunk key or bucket is left to `verify` to report.
    fn count_records(&self) -> Result<(), StoreError> {
        let mut nodes = 0u64;
        for id in self.nodes.iter().keys() {
            self.node_ids.insert(id?.as_ref());
            nodes += 1;
        }
        self.counts.nodes.store(nodes, Ordering::Relaxed);
        self.counts.tainted.store(self.tainted.len() as u64, Ordering::Relaxed);
        let (mut edges, mut next_chunk) = (0u64, 0u64);
        for record in self.edge_chunks.iter().keys() {
            if let Some(key) = ChunkKey::from_bytes(&record?) {
                edges += u64::from(key.edges);
                next_chunk = next_chunk.max(key.chunk.saturating_add(1));
            }
        }
        self.counts.edges.store(edges, Ordering::Relaxed);
        self.pending().next_chunk = next_chunk;
        let mut untrusted = 0u64;
        for record in self.untrusted.iter().values() {
            untrusted += Bucket::decode(&record?).map_or(0, |b| b.entries().len() as u64);
        }
        self.counts.untrusted.store(untrusted, Ordering::Relaxed);
        Ok(())
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes what waits in memory (edges, changed untrusted-file buckets) to sled.
    pub fn commit(&self) -> Result<(), StoreError> {
        let mut pending = self.pending();
        self.node_writer.send(std::mem::take(&mut pending.nodes));
        self.write_edges(&mut pending)?;
        self.write_buckets(&mut pending)
    }

    fn write_edges(&self, pending: &mut Pending) -> Result<(), StoreError> {
        let mut next_chunk = pending.next_chunk;
        let chunks = pending.edges.chunks(&mut next_chunk);
        for (written, (key, value)) in chunks.into_iter().enumerate() {
            if let Err(e) = self.edge_chunks.insert(key.to_bytes(), value) {
                // What was written leaves the pending edges (a retry must not write it
                // again); the rest waits, numbered past what was used.
                pending.edges.written_first(written);
                pending.next_chunk = key.chunk;
                return Err(e.into());
            }
        }
        pending.next_chunk = next_chunk;
        pending.edges.written_first(usize::MAX);
        Ok(())
    }

    fn write_buckets(&self, pending: &mut Pending) -> Result<(), StoreError> {
        for (key, value) in pending.buckets.changes()? {
            match value {
                Some(value) => self.untrusted.insert(key, value)?,
                None => self.untrusted.remove(key)?,
            };
        }
        pending.buckets.written();
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `path`; if it does not open or does not verify and `recover` is set, moves
    /// it aside (`<path>.corrupt-<unix seconds>`, kept for forensics) and opens a fresh
    /// one. A schema from another version is never "recovered": it is not damage.
    pub fn open_or_recover(path: &Path, recover: bool) -> Result<(Self, Option<(PathBuf, StoreError)>), StoreError> {
        let damaged = match Self::open(path).and_then(|s| s.verify().map(|()| s)) {
            Ok(store) => return Ok((store, None)),
            Err(e @ StoreError::Schema { .. }) => return Err(e),
            Err(e) if !recover || !path.exists() => return Err(e),
            Err(e) => e,
        };
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let aside = PathBuf::from(format!("{}.corrupt-{secs}", path.display()));
        std::fs::rename(path, &aside).map_err(|e| StoreError::Open { path: path.into(), source: sled::Error::Io(e) })?;
        Ok((Self::open(path)?, Some((aside, damaged))))
    }

    /// Counts the nodes and edges against the last flush's record (`CHECKPOINT`), and
    /// reads what a restart restores (host, untrusted files, tainted processes, blocks)
    /// and the newest node and edge: a database cut short or damaged there is refused at
    /// start, not half used.
    pub fn verify(&self) -> Result<(), StoreError> {
        if let Some(flushed) = self.read_checkpoint()? {
            let (nodes_found, edges_found) = (self.counts.nodes.load(Ordering::Relaxed), self.counts.edges.load(Ordering::Relaxed));
            if nodes_found < flushed.nodes || edges_found < flushed.edges {
                return Err(StoreError::Lost { path: self.path.clone(), nodes: flushed.nodes, edges: flushed.edges, nodes_found, edges_found });
            }
        }
        self.host()?;
        self.untrusted_files()?;
        self.tainted_procs()?;
        self.blocked_hosts()?;
        if let Some((k, v)) = self.edge_chunks.last()? {
            let key = ChunkKey::from_bytes(&k).ok_or_else(|| StoreError::Corrupt { tree: trees::EDGE_CHUNKS, message: format!("a chunk key of {} bytes", k.len()) })?;
            let mut records = 0u32;
            for record in sensor_common::graph::database::chunk_records(&v) {
                serde_json::from_slice::<Edge>(record).map_err(|e| json_err(trees::EDGE_CHUNKS, e))?;
                records += 1;
            }
            // The key's count is what the edges are counted by: it must be the value's.
            if records != key.edges {
                return Err(StoreError::Corrupt { tree: trees::EDGE_CHUNKS, message: format!("the newest chunk holds {records} edges, its key says {}", key.edges) });
            }
        }
        if let Some((_, v)) = self.nodes.last()? {
            serde_json::from_slice::<Node>(&v).map_err(|e| json_err(trees::NODES, e))?;
        }
        Ok(())
    }

    /// Turns the fleet outbox on: from now on every record stored is queued for the
    /// fleet too. The first time, what the database already held is queued as well (host,
    /// nodes, then edges in time order), so enabling the fleet on a running host sends
    /// its history.
    pub fn enable_outbox(&self) -> Result<Outbox, StoreError> {
        if let Some(outbox) = self.outbox.get() {
            return Ok(outbox.clone());
        }
        let outbox = Outbox::open(&self.db, &self.meta)?;
        if !outbox.backfilled()? {
            outbox.begin_backfill()?;
            let now = crate::host::procfs::now_wall_ns();
            let mut queued = 0u64;
            if let Some(v) = self.meta.get("host")? {
                outbox.append("host_info", &v, now)?;
            }
            for node in self.nodes() {
                let json = serde_json::to_vec(&node?).map_err(|e| json_err(trees::NODES, e))?;
                outbox.append("node", &json, now)?;
                queued += 1;
            }
            for edge in self.edges_since(0) {
                let json = serde_json::to_vec(&edge?).map_err(|e| json_err(trees::EDGE_CHUNKS, e))?;
                outbox.append("edge", &json, now)?;
                queued += 1;
            }
            outbox.mark_backfilled()?;
            self.db.flush()?;
            if queued > 0 {
                tracing::info!("fleet: queued the {queued} records this database held before the fleet was enabled");
            }
        }
        Ok(self.outbox.get_or_init(|| outbox).clone())
    }

    /// Records the end of this run's sequence numbers (a clean stop leaves no gap).
    pub fn close_outbox(&self) -> Result<(), StoreError> {
        if let Some(outbox) = self.outbox.get() {
            outbox.close()?;
        }
        Ok(())
    }

    fn queue(&self, item_key: &str, json: &[u8]) -> Result<(), StoreError> {
        if let Some(outbox) = self.outbox.get() {
            // Queued before the local write: a crash in between sends a record the local
            // store lacks, never the reverse.
            outbox.append(item_key, json, crate::host::procfs::now_wall_ns())?;
        }
        Ok(())
    }

    pub fn set_host(&self, host: &HostInfo) -> Result<(), StoreError> {
        let json = serde_json::to_vec(host).map_err(|e| json_err(trees::META, e))?;
        self.queue("host_info", &json)?;
        self.meta.insert("host", json)?;
        Ok(())
    }

    pub fn host(&self) -> Result<Option<HostInfo>, StoreError> {
        self.meta
            .get("host")?
            .map(|v| serde_json::from_slice(&v).map_err(|e| json_err(trees::META, e)))
            .transpose()
    }

    pub fn node(&self, id: &str) -> Result<Option<Node>, StoreError> {
        if !self.node_ids.contains(id.as_bytes()) {
            return Ok(None);
        }
        {
            // (Locked across both: a batch moves from pending to the writer under it.)
            let pending = self.pending();
            if let Some(written) = pending.nodes.get(id).cloned().or_else(|| self.node_writer.find(id)) {
                return Ok(Some(written.node.clone()));
            }
        }
        self.nodes
            .get(id)?
            .map(|v| serde_json::from_slice(&v).map_err(|e| json_err(trees::NODES, e)))
            .transpose()
    }

    /// Inserts `node`, or merges it into the stored one: names accumulate, flags that
    /// say "untrusted/tainted/executable" only go up (a relabel uses `replace_node`).
    /// An upsert that changes nothing writes nothing (and queues nothing for the fleet).
    pub fn upsert_node(&self, node: Node) -> Result<Node, StoreError> {
        let merged = match self.node(&node.id)? {
            None => node,
            Some(old) => {
                let mut merged = old.clone();
                merge(&mut merged, node);
                if merged == old {
                    return Ok(merged);
                }
                merged
            }
        };
        self.replace_node(&merged)?;
        Ok(merged)
    }

    pub fn replace_node(&self, node: &Node) -> Result<(), StoreError> {
        let json = serde_json::to_vec(node).map_err(|e| json_err(trees::NODES, e))?;
        self.queue("node", &json)?;
        self.node_ids.insert(node.id.as_bytes());
        let mut pending = self.pending();
        pending.nodes.insert(node.id.clone(), Arc::new(Written { node: node.clone(), json }));
        if pending.nodes.len() >= NODES_PER_BATCH {
            self.node_writer.send(std::mem::take(&mut pending.nodes));
        }
        Ok(())
    }

    /// Adds the edge to the next chunk (written when full, or at the next commit).
    pub fn add_edge(&self, edge: &Edge) -> Result<(), StoreError> {
        let json = serde_json::to_vec(edge).map_err(|e| json_err(trees::EDGE_CHUNKS, e))?;
        self.queue("edge", &json)?;
        if let EdgeData::ReceivedFrom(_) = edge.data {
            // (Arrivals are rare - one per transfer - and a detection asks by file.)
            self.arrivals.insert(edge.dst.as_bytes(), json.as_slice())?;
        }
        let mut pending = self.pending();
        pending.edges.push(edge.ts_ns, json);
        self.counts.edges.fetch_add(1, Ordering::Relaxed);
        if pending.edges.is_full() {
            self.write_edges(&mut pending)?;
        }
        Ok(())
    }

    /// Every node (what waits for the node writer included).
    pub fn nodes(&self) -> impl Iterator<Item = Result<Node, StoreError>> + '_ {
        let not_written = self.commit().and_then(|()| Ok(self.node_writer.sync()?)).err();
        not_written.map(Err).into_iter().chain(self.nodes.iter().map(|r| {
            let (_, v) = r?;
            serde_json::from_slice(&v).map_err(|e| json_err(trees::NODES, e))
        }))
    }

    /// Edges at or after `since_ns`, in time order (what waits for a commit included).
    pub fn edges_since(&self, since_ns: u64) -> impl Iterator<Item = Result<Edge, StoreError>> + '_ {
        let not_committed = self.commit().err();
        EdgesInOrder::new(self.edge_chunks.iter(), since_ns, not_committed)
    }

    /// Edges at or after `since_ns`, in time order, read from the chunks whose earliest
    /// edge is at most `slack_ns` before it: cheap for a recent time, where
    /// [`GraphStore::edges_since`] reads every chunk. A chunk holds the edges of one commit
    /// (a flush apart at most), so only an edge reported later than `slack_ns` after its
    /// time could be missed.
    pub fn edges_recent(&self, since_ns: u64, slack_ns: u64) -> impl Iterator<Item = Result<Edge, StoreError>> + '_ {
        let not_committed = self.commit().err();
        let from = ChunkKey { min_ts_ns: since_ns.saturating_sub(slack_ns), chunk: 0, edges: 0 }.to_bytes();
        EdgesInOrder::new(self.edge_chunks.range(from..), since_ns, not_committed)
    }

    /// (nodes, edges).
    pub fn counts(&self) -> (usize, usize) {
        (self.counts.nodes.load(Ordering::Relaxed) as usize, self.counts.edges.load(Ordering::Relaxed) as usize)
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Makes everything stored so far durable, then records how much that is
    /// (`CHECKPOINT`). The counts are read before sled's flush, after the records they
    /// count were written: they are on disk once the flush returns.
    pub fn flush(&self) -> Result<(), StoreError> {
        // The edges counted under the lock the commit wrote them under: an edge added
        // meanwhile by another caller is neither written nor counted.
        let edges = {
            let mut pending = self.pending();
            self.node_writer.send(std::mem::take(&mut pending.nodes));
            self.write_edges(&mut pending)?;
            self.write_buckets(&mut pending)?;
            self.counts.edges.load(Ordering::Relaxed)
        };
        // The node writer counts what it wrote.
        self.node_writer.sync()?;
        let now = Flushed { nodes: self.counts.nodes.load(Ordering::Relaxed), edges };
        self.db.flush()?;
        let mut last = self.flushed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if *last != Some(now) {
            self.write_checkpoint(now).map_err(sled::Error::Io)?;
            *last = Some(now);
        }
        Ok(())
    }

    /// Written whole or not at all: a temporary file, synced, renamed over the old one.
    fn write_checkpoint(&self, flushed: Flushed) -> std::io::Result<()> {
        use std::{io::Write, os::unix::fs::OpenOptionsExt};
        let tmp = self.path.join(format!("{CHECKPOINT}.tmp"));
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(&serde_json::to_vec(&flushed).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.path.join(CHECKPOINT))
    }

    /// None for a database that never flushed with this version.
    fn read_checkpoint(&self) -> Result<Option<Flushed>, StoreError> {
        let path = self.path.join(CHECKPOINT);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Checkpoint { path, message: e.to_string() }),
        };
        let flushed = serde_json::from_slice(&bytes).map_err(|e| StoreError::Checkpoint { path, message: e.to_string() })?;
        *self.flushed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(flushed);
        Ok(Some(flushed))
    }

    /// Runs `f` on the bucket of `key`'s inode, read from sled if it is not held.
    fn with_bucket<R>(&self, key: &InodeKey, f: impl FnOnce(&mut Bucket) -> R) -> Result<R, StoreError> {
        let mut pending = self.pending();
        let bucket_key = HeldBuckets::key(key.dev, key.ino);
        if let Some(bucket) = pending.buckets.get_mut(&bucket_key) {
            return Ok(f(bucket));
        }
        let bucket = match self.untrusted.get(bucket_key)? {
            Some(value) => Bucket::decode(&value)?,
            None => Bucket::default(),
        };
        if pending.buckets.is_full() {
            pending.buckets.release_unchanged();
            if pending.buckets.is_full() {
                self.write_buckets(&mut pending)?;
            }
        }
        Ok(f(pending.buckets.hold(bucket_key, bucket)))
    }

    pub fn set_untrusted(&self, key: &InodeKey, file: &TaintedFile) -> Result<(), StoreError> {
        if self.with_bucket(key, |b| b.set(key.ino, file))? {
            self.counts.untrusted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The untrusted-file record of `key`, if it is untrusted.
    pub fn untrusted_file(&self, key: &InodeKey) -> Result<Option<TaintedFile>, StoreError> {
        self.with_bucket(key, |b| b.get(key.ino).cloned())
    }

    pub fn clear_untrusted(&self, key: &InodeKey) -> Result<(), StoreError> {
        if self.with_bucket(key, |b| b.remove(key.ino))? {
            self.counts.untrusted.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// How many files are untrusted (without reading them: `status` asks often).
    pub fn untrusted_count(&self) -> usize {
        self.counts.untrusted.load(Ordering::Relaxed) as usize
    }

    pub fn tainted_count(&self) -> usize {
        self.counts.tainted.load(Ordering::Relaxed) as usize
    }

    pub fn untrusted_files(&self) -> Result<Vec<(InodeKey, TaintedFile)>, StoreError> {
        self.commit()?;
        let mut out = Vec::new();
        for r in self.untrusted.iter() {
            let (k, v) = r?;
            let dev = bucket_dev(&k).ok_or_else(|| StoreError::Corrupt { tree: trees::UNTRUSTED_BUCKETS, message: "bad key length".into() })?;
            for BucketEntry { ino, file } in Bucket::decode(&v)?.entries() {
                out.push((InodeKey::new(dev, *ino), file.clone()));
            }
        }
        Ok(out)
    }

    fn proc_key(tgid: u32, start_ticks: u64) -> [u8; 12] {
        let mut k = [0u8; 12];
        k[..4].copy_from_slice(&tgid.to_be_bytes());
        k[4..].copy_from_slice(&start_ticks.to_be_bytes());
        k
    }

    pub fn set_tainted_proc(&self, tgid: u32, start_ticks: u64, node: &str) -> Result<(), StoreError> {
        let old = self.tainted.insert(Self::proc_key(tgid, start_ticks), node.as_bytes())?;
        TreeCounts::inserted(&self.counts.tainted, &old);
        Ok(())
    }

    pub fn clear_tainted_proc(&self, tgid: u32, start_ticks: u64) -> Result<(), StoreError> {
        let old = self.tainted.remove(Self::proc_key(tgid, start_ticks))?;
        TreeCounts::removed(&self.counts.tainted, &old);
        Ok(())
    }

    pub fn tainted_procs(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        let mut out = Vec::new();
        for r in self.tainted.iter() {
            let (k, _) = r?;
            if k.len() == 12 {
                out.push((
                    u32::from_be_bytes(k[..4].try_into().unwrap()),
                    u64::from_be_bytes(k[4..].try_into().unwrap()),
                ));
            }
        }
        Ok(out)
    }
}

impl GraphStore {
    /// Records a quarantine (`block`) or lifts it, so a restart restores it.
    pub fn set_blocked(&self, ip: &str, blocked: bool, by: &str, ts_ns: u64) -> Result<(), StoreError> {
        if blocked {
            let json = serde_json::json!({"by": by, "ts_ns": ts_ns}).to_string();
            self.blocked.insert(ip.as_bytes(), json.as_bytes())?;
        } else {
            self.blocked.remove(ip.as_bytes())?;
        }
        Ok(())
    }

    /// Who blocked `ip` (`by` of its record), None if it is not blocked.
    pub fn blocked_by(&self, ip: &str) -> Result<Option<String>, StoreError> {
        let Some(record) = self.blocked.get(ip.as_bytes())? else { return Ok(None) };
        let by = serde_json::from_slice::<serde_json::Value>(&record)
            .ok()
            .and_then(|v| v["by"].as_str().map(str::to_owned))
            .ok_or_else(|| StoreError::Corrupt { tree: trees::BLOCKED_HOSTS, message: format!("the block record of {ip} has no `by`") })?;
        Ok(Some(by))
    }

    /// The blocked remote addresses, as recorded.
    pub fn blocked_hosts(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for r in self.blocked.iter() {
            let (k, _) = r?;
            out.push(String::from_utf8(k.to_vec()).map_err(|e| StoreError::Corrupt {
                tree: trees::BLOCKED_HOSTS,
                message: e.to_string(),
            })?);
        }
        Ok(out)
    }
}

fn merge(old: &mut Node, new: Node) {
    match (&mut old.data, new.data) {
        (
            NodeData::File { paths, untrusted, executable, sha256, malicious, scan, .. },
            NodeData::File { paths: new_paths, untrusted: u, executable: x, sha256: h, malicious: m, scan: v, .. },
        ) => {
            for p in new_paths {
                if !paths.contains(&p) {
                    paths.push(p);
                }
            }
            *untrusted |= u;
            *executable |= x;
            *malicious |= m;
            if v.is_some() {
                *scan = v;
            }
            if h.is_some() {
                *sha256 = h;
            }
        }
        (
            NodeData::Process { exe, comm, tainted, .. },
            NodeData::Process { exe: e, comm: c, tainted: t, .. },
        ) => {
            // A process that execs keeps its node; the label follows its latest image.
            if !e.is_empty() {
                *exe = e;
            }
            if !c.is_empty() {
                *comm = c;
            }
            *tainted |= t;
        }
        (NodeData::Remote { node_ids, .. }, NodeData::Remote { node_ids: n, .. }) => {
            for id in n {
                if !node_ids.contains(&id) {
                    node_ids.push(id);
                }
            }
        }
        (slot, data) => *slot = data,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{upgrade::UNCONVERTED_V1, *};
    use sensor_common::graph::database::EDGES_PER_CHUNK;
    use sensor_common::graph::{EdgeData, FileWriteAttrs};

    fn file(id: &str, path: &str, untrusted: bool) -> Node {
        Node {
            id: id.into(),
            host: "h".into(),
            first_seen_ns: 1,
            data: NodeData::File { dev: 1, ino: 2, paths: vec![path.into()], untrusted, executable: false, sha256: None, malicious: false, scan: None },
        }
    }

    #[test]
    fn nodes_merge_and_edges_persist_in_order() {
        let dir = tempdir();
        {
            let s = GraphStore::open(&dir).unwrap();
            s.upsert_node(file("f", "/a", true)).unwrap();
            let merged = s.upsert_node(file("f", "/b", false)).unwrap();
            let NodeData::File { paths, untrusted, .. } = merged.data else { panic!() };
            assert_eq!(paths, vec!["/a", "/b"]);
            assert!(untrusted, "merge must not lose taint");
            for ts in [30, 10, 20] {
                s.add_edge(&Edge { ts_ns: ts, src: "p".into(), dst: "f".into(), host: "h".into(), data: EdgeData::Write(FileWriteAttrs::default()) }).unwrap();
            }
            s.flush().unwrap();
        }
        let s = reopen(&dir).unwrap();
        let ts: Vec<u64> = s.edges_since(0).map(|e| e.unwrap().ts_ns).collect();
        assert_eq!(ts, vec![10, 20, 30]);
        assert_eq!(s.edges_since(15).count(), 2);
        // The node stored before the reopen is found (the id filter is rebuilt), and merged.
        let merged = s.upsert_node(file("f", "/c", false)).unwrap();
        let NodeData::File { paths, untrusted, .. } = merged.data else { panic!() };
        assert_eq!((paths, untrusted), (vec!["/a".to_string(), "/b".into(), "/c".into()], true));
        assert_eq!(s.node("g").unwrap(), None);
        std::fs::remove_dir_all(&dir).ok();
    }

    fn edge_at(ts_ns: u64, dst: &str) -> Edge {
        Edge { ts_ns, src: "p".into(), dst: dst.into(), host: "h".into(), data: EdgeData::Write(FileWriteAttrs::default()) }
    }

    /// Chunks that overlap in time (events reported late, commits at any point) read back
    /// in time order, each edge once, and `since` cuts by time, not by chunk.
    #[test]
    fn edges_in_overlapping_chunks_read_back_in_time_order() {
        let dir = tempdir();
        let n = 3 * EDGES_PER_CHUNK as u64 + 17;
        {
            let s = GraphStore::open(&dir).unwrap();
            for i in 0..n {
                // Every seventh edge reported 5,000 ns late; a commit every 700 edges.
                let ts = if i % 7 == 0 { (i * 1000).saturating_sub(5_000) } else { i * 1000 };
                s.add_edge(&edge_at(ts, &format!("f{i}"))).unwrap();
                if i % 700 == 699 {
                    s.commit().unwrap();
                }
            }
            assert_eq!(s.counts().1 as u64, n);
            s.flush().unwrap();
            assert!(s.edge_chunks.len() > 4, "several chunks, overlapping: {}", s.edge_chunks.len());
        }
        let s = reopen(&dir).unwrap();
        assert_eq!(s.counts().1 as u64, n, "counted from the chunk keys");
        let ts: Vec<u64> = s.edges_since(0).map(|e| e.unwrap().ts_ns).collect();
        assert_eq!(ts.len() as u64, n);
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "not in time order");
        let mut dsts: Vec<String> = s.edges_since(0).map(|e| e.unwrap().dst).collect();
        dsts.sort();
        dsts.dedup();
        assert_eq!(dsts.len() as u64, n, "an edge lost or doubled");
        let since = 1_500_000;
        assert_eq!(s.edges_since(since).count(), ts.iter().filter(|&&t| t >= since).count());
        // Edges added after the reopen continue the chunk numbers: nothing is overwritten.
        s.add_edge(&edge_at(1, "late")).unwrap();
        assert_eq!(s.edges_since(0).nth(1).unwrap().unwrap().dst, "late", "after f0 (at 0), before f1 (at 1000)");
        assert_eq!(s.edges_since(0).count() as u64, n + 1);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Nodes stored again while earlier versions wait for the node writer (held: its
    /// batches stay in flight): every read and merge sees the newest version; the count
    /// is exact after a flush and a reopen.
    #[test]
    fn nodes_merge_across_node_writer_batches() {
        let dir = tempdir();
        let n = 2 * NODES_PER_BATCH;
        let upsert_all = |s: &GraphStore, round: usize| {
            for i in 0..n {
                let merged = s.upsert_node(file(&format!("file:{i}"), &format!("/r{round}/{i}"), round == 1)).unwrap();
                let NodeData::File { paths, untrusted, .. } = merged.data else { panic!() };
                assert_eq!(paths.len(), round + 1, "node {i} round {round}: {paths:?}");
                assert_eq!(untrusted, round >= 1, "untrusted only goes up");
            }
        };
        {
            let s = GraphStore::open(&dir).unwrap();
            {
                let _held = s.node_writer.pause();
                upsert_all(&s, 0);
                upsert_all(&s, 1);
                assert_eq!(s.nodes.len(), 0, "nothing written while paused");
            }
            upsert_all(&s, 2);
            s.flush().unwrap();
            assert_eq!(s.counts().0, n);
        }
        let s = reopen(&dir).unwrap();
        assert_eq!(s.counts().0, n);
        let NodeData::File { paths, .. } = s.node("file:5").unwrap().unwrap().data else { panic!() };
        assert_eq!(paths, vec!["/r0/5", "/r1/5", "/r2/5"]);
        assert_eq!(s.nodes().count(), n);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A chunk whose key counts more edges than it holds (the counts, and so the flush
    /// check, go by the keys) is refused as damaged.
    #[test]
    fn a_chunk_key_that_miscounts_is_refused() {
        let dir = tempdir();
        {
            let s = GraphStore::open(&dir).unwrap();
            let line = serde_json::to_vec(&edge_at(5, "f")).unwrap();
            s.edge_chunks.insert(ChunkKey { min_ts_ns: 5, chunk: 0, edges: 5 }.to_bytes(), line).unwrap();
            s.db.flush().unwrap();
        }
        let err = reopen_checked(&dir, false).err().expect("accepted");
        assert!(err.to_string().contains("holds 1 edges, its key says 5"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Untrusted files set, changed and cleared across buckets (more of them than are
    /// held in memory), read back before and after a reopen.
    #[test]
    fn untrusted_files_in_buckets() {
        let dir = tempdir();
        let tf = |i: u64| TaintedFile { node: format!("file:{i}"), generation: i as u32, by_port_program: i % 2 == 0 };
        let n = (buckets::BUCKETS_HELD as u64 + 10) * 3;
        {
            let s = GraphStore::open(&dir).unwrap();
            // Spread over more buckets than are held: every 21st inode.
            for i in 0..n {
                s.set_untrusted(&InodeKey::new(1, i * 21), &tf(i)).unwrap();
            }
            s.set_untrusted(&InodeKey::new(1, 0), &tf(7)).unwrap();
            assert_eq!(s.untrusted_file(&InodeKey::new(1, 0)).unwrap(), Some(tf(7)));
            s.clear_untrusted(&InodeKey::new(1, 21)).unwrap();
            s.clear_untrusted(&InodeKey::new(1, 22)).unwrap();
            assert_eq!(s.untrusted_count() as u64, n - 1);
            assert_eq!(s.untrusted_files().unwrap().len() as u64, n - 1);
            s.flush().unwrap();
        }
        let s = reopen(&dir).unwrap();
        assert_eq!(s.untrusted_count() as u64, n - 1);
        assert_eq!(s.untrusted_file(&InodeKey::new(1, 0)).unwrap(), Some(tf(7)));
        assert_eq!(s.untrusted_file(&InodeKey::new(1, 21)).unwrap(), None);
        assert_eq!(s.untrusted_file(&InodeKey::new(1, 42)).unwrap(), Some(tf(2)));
        assert_eq!(s.untrusted_file(&InodeKey::new(2, 42)).unwrap(), None, "another device");
        let all = s.untrusted_files().unwrap();
        assert_eq!(all.len() as u64, n - 1);
        assert!(all.contains(&(InodeKey::new(1, (n - 1) * 21), tf(n - 1))));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A version-2 database (one record per edge and per untrusted file) is rewritten as
    /// chunks and buckets with everything in it.
    #[test]
    fn version_2_database_is_converted_to_chunks() {
        let dir = tempdir();
        let n = EDGES_PER_CHUNK as u64 + 5;
        {
            let s = GraphStore::open(&dir).unwrap();
            s.meta.insert("schema_version", &2u32.to_be_bytes()).unwrap();
            let (edges, untrusted) = (s.db.open_tree(trees::EDGES).unwrap(), s.db.open_tree(trees::UNTRUSTED_FILES).unwrap());
            for i in 0..n {
                let mut key = (i * 10).to_be_bytes().to_vec();
                key.extend_from_slice(&i.to_be_bytes());
                edges.insert(key, serde_json::to_vec(&edge_at(i * 10, &format!("f{i}"))).unwrap()).unwrap();
            }
            for ino in [5u64, 6, 700] {
                let mut key = 3u32.to_be_bytes().to_vec();
                key.extend_from_slice(&ino.to_be_bytes());
                untrusted.insert(key, serde_json::to_vec(&TaintedFile { node: format!("file:{ino}"), generation: 1, by_port_program: false }).unwrap()).unwrap();
            }
            s.flush().unwrap();
        }
        let s = reopen(&dir).unwrap();
        assert_eq!(s.meta.get("schema_version").unwrap().unwrap().as_ref(), DATABASE_VERSION.to_be_bytes());
        assert_eq!(s.counts().1 as u64, n);
        let edges: Vec<Edge> = s.edges_since(0).map(|e| e.unwrap()).collect();
        assert_eq!(edges.len() as u64, n);
        assert_eq!((edges[0].dst.as_str(), edges[n as usize - 1].ts_ns), ("f0", (n - 1) * 10));
        assert_eq!(s.edge_chunks.len(), 2);
        assert_eq!(s.untrusted_count(), 3);
        assert_eq!(s.untrusted_file(&InodeKey::new(3, 700)).unwrap().unwrap().node, "file:700");
        assert!(!s.db.tree_names().iter().any(|t| t.as_ref() == trees::EDGES.as_bytes()), "the old tree is dropped");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn unknown_schema_version_is_refused() {
        let dir = tempdir();
        {
            let s = GraphStore::open(&dir).unwrap();
            s.meta.insert("schema_version", &99u32.to_be_bytes()).unwrap();
            s.flush().unwrap();
        }
        let err = reopen(&dir).err().unwrap();
        assert!(err.to_string().contains("schema version 99"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn version_1_database_is_converted_in_place() {
        let dir = tempdir();
        {
            let s = GraphStore::open(&dir).unwrap();
            s.meta.insert("schema_version", &1u32.to_be_bytes()).unwrap();
            let v1_edge = br#"{"ts_ns":5,"kind":"chmod","src":"p","dst":"f","host":"h","attrs":{"mode":"0755","executable":true}}"#;
            let edges = s.db.open_tree(trees::EDGES).unwrap();
            edges.insert([0u8; 16], &v1_edge[..]).unwrap();
            edges.insert([1u8; 16], &br#"{"ts_ns":6,"kind":"relabel","src":"u","dst":"f","host":"h","attrs":{"to":"?"}}"#[..]).unwrap();
            s.flush().unwrap();
        }
        let s = reopen(&dir).unwrap();
        let edges: Vec<Edge> = s.edges_since(0).map(|e| e.unwrap()).collect();
        assert_eq!(edges.len(), 1, "{edges:?}");
        let EdgeData::Chmod(c) = &edges[0].data else { panic!("{edges:?}") };
        assert_eq!(c.mode, "755");
        assert_eq!(s.meta.get("schema_version").unwrap().unwrap().as_ref(), DATABASE_VERSION.to_be_bytes());
        assert_eq!(s.db.open_tree(UNCONVERTED_V1).unwrap().len(), 1, "the unconvertible record is kept");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn corrupt_database_is_a_clear_error() {
        let dir = tempdir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("conf"), b"\xff\xfe not a sled config").unwrap();
        std::fs::write(dir.join("db"), vec![0xAB; 4096]).unwrap();
        // sled may recover a garbage file as empty (Ok); it must not panic.
        if let Err(e) = GraphStore::open(&dir) {
            assert!(e.to_string().contains("moves it aside") || e.to_string().contains("I/O"), "{e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A database of 300 nodes and 300 edges, flushed, then closed.
    fn flushed_database(dir: &Path) {
        let s = GraphStore::open(dir).unwrap();
        for i in 0..300u64 {
            s.upsert_node(file(&format!("file:{i}"), &format!("/srv/share/some/longer/path/{i:08}.exe"), true)).unwrap();
            s.add_edge(&Edge { ts_ns: i, src: "p".into(), dst: format!("file:{i}"), host: "h".into(), data: EdgeData::Write(FileWriteAttrs::default()) }).unwrap();
        }
        s.flush().unwrap();
        assert!(dir.join(CHECKPOINT).exists(), "the flush writes its record");
    }

    fn aside_copies(dir: &Path) -> Vec<PathBuf> {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::read_dir(dir.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{name}.corrupt-")))
            .collect()
    }

    #[test]
    fn a_flushed_database_reopens_and_verifies() {
        let dir = tempdir();
        flushed_database(&dir);
        let (s, recovered) = reopen_checked(&dir, false).unwrap();
        assert!(recovered.is_none());
        assert_eq!(s.counts(), (300, 300));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// sled opens a log cut to a third as if it had crashed there; the flush record
    /// says two thirds are missing.
    #[test]
    fn a_truncated_database_is_refused_and_recovered_only_if_asked() {
        let dir = tempdir();
        flushed_database(&dir);
        let log = dir.join("db");
        let len = std::fs::metadata(&log).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(len / 3).unwrap();
        let found = match reopen_checked(&dir, false) {
            Err(StoreError::Lost { nodes: 300, edges: 300, nodes_found, edges_found, .. }) => {
                // (Which records the cut takes depends on the order sled logged them in:
                // nodes and edges are written by two threads.)
                assert!(nodes_found < 300 || edges_found < 300, "{nodes_found} nodes, {edges_found} edges");
                (nodes_found as usize, edges_found as usize)
            }
            Err(e) => panic!("not the flush record's error: {e}"),
            Ok(_) => panic!("a database cut to a third was accepted"),
        };
        assert!(aside_copies(&dir).is_empty(), "nothing moved without --recover");
        let (s, recovered) = reopen_checked(&dir, true).unwrap();
        assert!(matches!(recovered, Some((_, StoreError::Lost { .. }))), "{:?}", recovered.map(|r| r.1.to_string()));
        assert_eq!(s.counts(), (0, 0), "a fresh database");
        let aside = aside_copies(&dir);
        assert_eq!(aside.len(), 1);
        drop(s);
        // (sled's recovery, when it opened the copy, zeroed the torn record at the cut and
        // padded the segment; every record it could read is still there.)
        let kept = reopen(&aside[0]).unwrap();
        assert_eq!(kept.counts(), found, "the copy kept aside holds what was readable");
        drop(kept);
        std::fs::remove_dir_all(&dir).ok();
        std::fs::remove_dir_all(&aside[0]).ok();
    }

    #[test]
    fn a_zeroed_page_is_refused() {
        let dir = tempdir();
        flushed_database(&dir);
        let log = dir.join("db");
        let len = std::fs::metadata(&log).unwrap().len();
        let mut bytes = std::fs::read(&log).unwrap();
        let page = (len as usize / 2) & !4095;
        bytes[page..page + 4096].fill(0);
        std::fs::write(&log, bytes).unwrap();
        if let Ok((s, _)) = reopen_checked(&dir, false) {
            panic!("a database with a zeroed page was accepted: {:?}", s.counts());
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_unreadable_flush_record_is_refused() {
        let dir = tempdir();
        flushed_database(&dir);
        std::fs::write(dir.join(CHECKPOINT), b"{\"nodes\": 3").unwrap();
        let err = reopen_checked(&dir, false).err().expect("accepted");
        assert!(matches!(err, StoreError::Checkpoint { .. }), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `open_or_recover` as the daemon calls it, retried past sled's lingering file lock.
    fn reopen_checked(dir: &Path, recover: bool) -> Result<(GraphStore, Option<(PathBuf, StoreError)>), StoreError> {
        for _ in 0..50 {
            match GraphStore::open_or_recover(dir, recover) {
                Err(e) if e.to_string().to_lowercase().contains("lock") => std::thread::sleep(std::time::Duration::from_millis(40)),
                other => return other,
            }
        }
        GraphStore::open_or_recover(dir, recover)
    }

    /// Opens a database just dropped: sled's background flusher can hold the file lock for
    /// a moment after the drop (a lock error then is not what these tests are about).
    fn reopen(dir: &Path) -> Result<GraphStore, StoreError> {
        for _ in 0..50 {
            match GraphStore::open(dir) {
                Err(e) if e.to_string().to_lowercase().contains("lock") => std::thread::sleep(std::time::Duration::from_millis(40)),
                other => return other,
            }
        }
        GraphStore::open(dir)
    }

    pub(crate) fn tempdir() -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!("vtrail-store-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&d);
        d
    }
}

/// What waits for a commit is written when the store closes (a crash loses it: the
/// guarantee is the flush's).
impl Drop for GraphStore {
    fn drop(&mut self) {
        if let Err(e) = self.commit().and_then(|()| Ok(self.node_writer.sync()?)) {
            tracing::error!("graph database {}: the last records could not be written at close: {e}", self.path.display());
        }
    }
}

/// Owner-only permissions for the state directory and the files in it.
pub mod private {
    use std::{fs, io, os::unix::fs::PermissionsExt, path::Path};

    /// Creates `dir` (and its missing parents' last component) as 0700, or makes an
    /// existing one 0700.
    pub fn create_dir(dir: &Path) -> io::Result<()> {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
    }

    /// Directories under `dir` 0700, files 0600 (bounded: sled keeps a handful of files).
    pub fn restrict_tree(dir: &Path) -> io::Result<()> {
        let mut stack = vec![dir.to_path_buf()];
        let mut seen = 0;
        while let Some(d) = stack.pop() {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700))?;
            for entry in fs::read_dir(&d)? {
                seen += 1;
                if seen > 100_000 {
                    return Ok(());
                }
                let entry = entry?;
                let ty = entry.file_type()?;
                if ty.is_dir() {
                    stack.push(entry.path());
                } else if ty.is_file() {
                    fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o600))?;
                }
            }
        }
        Ok(())
    }
}
