//! sled storage of the graph. Nodes are merged on update (a file seen under a new name
//! keeps its old ones); edges are append-only, keyed by time so exports and analysis read
//! them in order. Two small trees hold what the kernel maps are rebuilt from on restart.
use std::{
    path::{Path, PathBuf},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::fleet::outbox::Outbox;

use sensor_common::{
    graph::{Edge, HostInfo, Node, NodeData, SCHEMA_VERSION, TaintedFile, trees, v1},
    maps::InodeKey,
};

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
    edges: sled::Tree,
    untrusted: sled::Tree,
    tainted: sled::Tree,
    blocked: sled::Tree,
    seq: AtomicU64,
    /// Records per tree, kept as they are written: sled's `len` walks the whole tree,
    /// too slow for every `status` or scrape of a database with millions of records.
    counts: TreeCounts,
    /// Set when the fleet is on: every node and edge stored is also queued for the fleet.
    outbox: OnceLock<Outbox>,
    /// What the newest checkpoint file says (not rewritten while nothing was added).
    flushed: std::sync::Mutex<Option<Flushed>>,
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
    nodes: AtomicU64,
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

/// Edges of a version-1 database that did not convert (see `upgrade_from_v1`).
const UNCONVERTED_V1: &str = "edges_unconverted_v1";

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
        let store = Self {
            path: path.into(),
            meta: tree(trees::META)?,
            nodes: tree(trees::NODES)?,
            edges: tree(trees::EDGES)?,
            untrusted: tree(trees::UNTRUSTED_FILES)?,
            tainted: tree(trees::TAINTED_PROCS)?,
            blocked: tree(trees::BLOCKED_HOSTS)?,
            seq: AtomicU64::new(0),
            counts: TreeCounts::default(),
            outbox: OnceLock::new(),
            flushed: std::sync::Mutex::new(None),
            db,
        };
        match store.meta.get("schema_version")? {
            None => {
                store.meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let found = v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX);
                if found == 1 {
                    store.upgrade_from_v1()?;
                } else if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema { path: path.into(), found, expected: SCHEMA_VERSION });
                }
            }
        }
        for (counter, tree) in [
            (&store.counts.nodes, &store.nodes),
            (&store.counts.edges, &store.edges),
            (&store.counts.untrusted, &store.untrusted),
            (&store.counts.tainted, &store.tainted),
        ] {
            counter.store(tree.len() as u64, Ordering::Relaxed);
        }
        // Continue the edge sequence after the last stored edge.
        if let Some((key, _)) = store.edges.last()? {
            let seq = key.get(8..16).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
            store.seq.store(seq.unwrap_or(0) + 1, Ordering::Relaxed);
        }
        Ok(store)
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
        if let Some((_, v)) = self.edges.last()? {
            serde_json::from_slice::<Edge>(&v).map_err(|e| json_err(trees::EDGES, e))?;
        }
        if let Some((_, v)) = self.nodes.last()? {
            serde_json::from_slice::<Node>(&v).map_err(|e| json_err(trees::NODES, e))?;
        }
        Ok(())
    }

    /// Rewrites a version-1 database's edges as version 2 (`graph::v1` says what differs),
    /// in one atomic batch, then records the new version. An edge that does not convert is
    /// moved, as it was, to the `edges_unconverted_v1` tree - kept, not lost - and logged.
    /// Running it again on converted edges changes nothing, so a crash before the version
    /// is written only repeats it.
    fn upgrade_from_v1(&self) -> Result<(), StoreError> {
        let unconverted = self.db.open_tree(UNCONVERTED_V1)?;
        let (mut batch, mut moved, mut converted) = (sled::Batch::default(), sled::Batch::default(), 0u64);
        let mut failed = 0u64;
        for record in self.edges.iter() {
            let (key, value) = record?;
            match v1::edge_from_v1(&value).and_then(|edge| serde_json::to_vec(&edge)) {
                Ok(json) => {
                    batch.insert(key, json);
                    converted += 1;
                }
                Err(e) => {
                    tracing::warn!("graph database {}: edge record not converted from schema 1 ({e}); kept in tree {UNCONVERTED_V1}", self.path.display());
                    moved.insert(key.clone(), value);
                    batch.remove(key);
                    failed += 1;
                }
            }
        }
        unconverted.apply_batch(moved)?;
        self.edges.apply_batch(batch)?;
        self.meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
        self.db.flush()?;
        tracing::info!("graph database {}: converted {converted} edges from schema 1 to {SCHEMA_VERSION} ({failed} kept aside)", self.path.display());
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
            for entry in self.nodes.iter() {
                outbox.append("node", &entry?.1, now)?;
                queued += 1;
            }
            for entry in self.edges.iter() {
                outbox.append("edge", &entry?.1, now)?;
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
        let old = self.nodes.insert(node.id.as_bytes(), json)?;
        TreeCounts::inserted(&self.counts.nodes, &old);
        Ok(())
    }

    pub fn add_edge(&self, edge: &Edge) -> Result<(), StoreError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&edge.ts_ns.to_be_bytes());
        key[8..].copy_from_slice(&seq.to_be_bytes());
        let json = serde_json::to_vec(edge).map_err(|e| json_err(trees::EDGES, e))?;
        self.queue("edge", &json)?;
        let old = self.edges.insert(key, json)?;
        TreeCounts::inserted(&self.counts.edges, &old);
        Ok(())
    }

    pub fn nodes(&self) -> impl Iterator<Item = Result<Node, StoreError>> + '_ {
        self.nodes.iter().map(|r| {
            let (_, v) = r?;
            serde_json::from_slice(&v).map_err(|e| json_err(trees::NODES, e))
        })
    }

    /// Edges at or after `since_ns`, in time order.
    pub fn edges_since(&self, since_ns: u64) -> impl Iterator<Item = Result<Edge, StoreError>> + '_ {
        self.edges.range(since_ns.to_be_bytes()..).map(|r| {
            let (_, v) = r?;
            serde_json::from_slice(&v).map_err(|e| json_err(trees::EDGES, e))
        })
    }

    /// (nodes, edges).
    pub fn counts(&self) -> (usize, usize) {
        (self.counts.nodes.load(Ordering::Relaxed) as usize, self.counts.edges.load(Ordering::Relaxed) as usize)
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Makes everything written so far durable, then records how much that is
    /// (`CHECKPOINT`). The counts are read before sled's flush: what they count was
    /// written before it, so it is on disk once the flush returns.
    pub fn flush(&self) -> Result<(), StoreError> {
        let now = Flushed { nodes: self.counts.nodes.load(Ordering::Relaxed), edges: self.counts.edges.load(Ordering::Relaxed) };
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

    fn inode_key_bytes(key: &InodeKey) -> [u8; 12] {
        let mut k = [0u8; 12];
        k[..4].copy_from_slice(&key.dev.to_be_bytes());
        k[4..].copy_from_slice(&key.ino.to_be_bytes());
        k
    }

    pub fn set_untrusted(&self, key: &InodeKey, file: &TaintedFile) -> Result<(), StoreError> {
        let json = serde_json::to_vec(file).map_err(|e| json_err(trees::UNTRUSTED_FILES, e))?;
        let old = self.untrusted.insert(Self::inode_key_bytes(key), json)?;
        TreeCounts::inserted(&self.counts.untrusted, &old);
        Ok(())
    }

    /// The untrusted-file record of `key`, if it is untrusted.
    pub fn untrusted_file(&self, key: &InodeKey) -> Result<Option<TaintedFile>, StoreError> {
        match self.untrusted.get(Self::inode_key_bytes(key))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(|e| json_err(trees::UNTRUSTED_FILES, e))?)),
            None => Ok(None),
        }
    }

    pub fn clear_untrusted(&self, key: &InodeKey) -> Result<(), StoreError> {
        let old = self.untrusted.remove(Self::inode_key_bytes(key))?;
        TreeCounts::removed(&self.counts.untrusted, &old);
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
        let mut out = Vec::new();
        for r in self.untrusted.iter() {
            let (k, v) = r?;
            if k.len() != 12 {
                return Err(StoreError::Corrupt { tree: trees::UNTRUSTED_FILES, message: "bad key length".into() });
            }
            let dev = u32::from_be_bytes(k[..4].try_into().unwrap());
            let ino = u64::from_be_bytes(k[4..].try_into().unwrap());
            let file = serde_json::from_slice(&v).map_err(|e| json_err(trees::UNTRUSTED_FILES, e))?;
            out.push((InodeKey::new(dev, ino), file));
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
            NodeData::File { paths, untrusted, executable, sha256, .. },
            NodeData::File { paths: new_paths, untrusted: u, executable: x, sha256: h, .. },
        ) => {
            for p in new_paths {
                if !paths.contains(&p) {
                    paths.push(p);
                }
            }
            *untrusted |= u;
            *executable |= x;
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
    use super::*;
    use sensor_common::graph::{EdgeData, FileWriteAttrs};

    fn file(id: &str, path: &str, untrusted: bool) -> Node {
        Node {
            id: id.into(),
            host: "h".into(),
            first_seen_ns: 1,
            data: NodeData::File { dev: 1, ino: 2, paths: vec![path.into()], untrusted, executable: false, sha256: None },
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
            s.edges.insert([0u8; 16], &v1_edge[..]).unwrap();
            s.edges.insert([1u8; 16], &br#"{"ts_ns":6,"kind":"relabel","src":"u","dst":"f","host":"h","attrs":{"to":"?"}}"#[..]).unwrap();
            s.flush().unwrap();
        }
        let s = reopen(&dir).unwrap();
        let edges: Vec<Edge> = s.edges_since(0).map(|e| e.unwrap()).collect();
        assert_eq!(edges.len(), 1, "{edges:?}");
        let EdgeData::Chmod(c) = &edges[0].data else { panic!("{edges:?}") };
        assert_eq!(c.mode, "755");
        assert_eq!(s.meta.get("schema_version").unwrap().unwrap().as_ref(), SCHEMA_VERSION.to_be_bytes());
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
                assert!(edges_found < 300, "{edges_found}");
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
