//! Turns decoded events into graph nodes and edges (and the few kernel map updates that
//! only userspace can make, for path-based changes whose inode the kernel did not see).
use std::{collections::HashMap, path::Path, sync::Arc};

use anyhow::Result;
use sensor_common::{
    event::EventKind,
    graph::{
        ChmodAttrs, EdgeData, ExecAttrs, FileWriteAttrs, HostInfo, NoAttrs, Node, NodeData, PreventedAction, PreventedAttrs, ReadAttrs,
        RelabelAttrs, RenameAttrs, Severity, TaintReason, TaintedFile, Trust, UnlinkAttrs, WriteVia,
    },
    maps::InodeKey,
};

use crate::{
    config::Config,
    decode::events::SensorEvent,
    graph::{GraphStore, GraphWriter, ProcessFacts},
    host::procfs,
};

/// A change to the kernel maps the daemon must make after ingesting an event.
#[derive(Debug, PartialEq, Eq)]
pub enum KernelAction {
    /// Rule 5 for renames/links, known only by path in the kernel.
    MarkUntrusted { key: InodeKey, generation: u32 },
    /// A port program's write to its own state (`port_program_state`): the kernel marked
    /// it untrusted by rule 1; it is not an arrival.
    NotAnArrival { key: InodeKey },
    /// A file is untrusted now (written by a tainted process or a port program, renamed by
    /// a tainted process, held open for writing when its holder became tainted) or was run
    /// untrusted: scanning asks the kernel to report its closes (a fanotify inode mark) and
    /// scans it.
    WatchCloses { key: InodeKey, generation: u32, pid: u32, path: Option<String> },
}

/// Where port programs keep their own state (patterns of `config::path_pattern`), and the
/// share roots that are arrivals whatever those patterns say.
#[derive(Default, Debug, Clone)]
pub struct PortState {
    pub patterns: Vec<String>,
    pub share_roots: Vec<String>,
}

impl PortState {
    /// The configured patterns and what the smb.conf text (if any) names.
    pub fn new(config: &Config, smb_conf: Option<&str>) -> Self {
        let mut patterns = config.port_program_state.clone();
        let mut share_roots = Vec::new();
        if let Some(text) = smb_conf {
            patterns.extend(crate::host::smb_conf::state_paths(text));
            share_roots = crate::host::smb_conf::share_roots(text);
        }
        Self { patterns, share_roots }
    }

    pub fn holds(&self, path: &str) -> bool {
        !self.share_roots.iter().any(|r| path.starts_with(&format!("{r}/")))
            && self.patterns.iter().any(|p| crate::config::path_pattern(p, path))
    }
}

/// Paths remembered for `unlink`, which names a file that can no longer be stat'ed.
const PATH_INDEX_LIMIT: usize = 100_000;
/// Processes whose node is known to be up to date, at most (then forgotten, and read again).
const PROCESS_CACHE_LIMIT: usize = 65_536;

/// What the graph already says of a live process: an event that says the same (the usual
/// case: a worm's thousandth create) writes nothing and reads neither /proc nor the
/// database.
struct KnownProcess {
    comm: String,
    uid: u32,
    tainted: bool,
}

pub struct Ingest<'a> {
    /// Writes nodes and edges under this host's ids; holds the store.
    graph: GraphWriter<'a>,
    host: HostInfo,
    /// Shared with the daemon, replaced whole at a reload (`reconfigure`).
    config: Arc<Config>,
    path_index: HashMap<String, String>,
    known_processes: HashMap<(u32, u64), KnownProcess>,
    port_state: PortState,
    /// Port-program writes to their own state, not recorded (`status`).
    pub state_writes_ignored: u64,
}

impl<'a> Ingest<'a> {
    pub fn new(store: &'a GraphStore, host: HostInfo, config: Arc<Config>) -> Self {
        Self { graph: GraphWriter::new(store, &host.id), host, config, path_index: HashMap::new(), known_processes: HashMap::new(), port_state: PortState::default(), state_writes_ignored: 0 }
    }

    pub fn with_port_state(mut self, port_state: PortState) -> Self {
        self.port_state = port_state;
        self
    }

    /// A reloaded configuration (activation points, port programs' state) from the next
    /// event on.
    pub fn reconfigure(&mut self, config: Arc<Config>, port_state: PortState) {
        self.config = config;
        self.port_state = port_state;
    }

    pub fn store(&self) -> &'a GraphStore {
        self.graph.store()
    }

    pub fn host(&self) -> &HostInfo {
        &self.host
    }

    /// Where the other recording stages write (network attribution, naming).
    pub fn graph(&self) -> &GraphWriter<'a> {
        &self.graph
    }

    fn process_id(&self, tgid: u32, start_ticks: u64) -> String {
        self.graph.process_id(tgid, start_ticks)
    }

    fn file_id(&self, key: &InodeKey) -> String {
        self.graph.file_id(key)
    }

    fn upsert_process(&mut self, ev: &SensorEvent, tgid: u32, start_ticks: u64, tainted: bool) -> Result<String> {
        let own = tgid == ev.tgid;
        let comm = if own { ev.comm.as_str() } else { "" };
        // Flags only go up and the image changes only by exec: a process whose node
        // already says all this event says needs no write.
        let key = (tgid, start_ticks);
        let unchanged = |k: &KnownProcess| k.comm == comm && k.uid == ev.uid && k.tainted == tainted;
        if ev.kind != EventKind::Exec && own && self.known_processes.get(&key).is_some_and(unchanged) {
            return Ok(self.process_id(tgid, start_ticks));
        }
        // The image an exec event names; otherwise whatever the process runs now.
        let exe = match (ev.kind, &ev.path) {
            (EventKind::Exec, Some(path)) if own && !ev.path_incomplete => path.clone(),
            _ => procfs::exe(tgid).unwrap_or_default(),
        };
        let id = self.graph.process(ev.ts_ns, ProcessFacts { tgid, start_ticks, exe, comm, uid: ev.uid, tainted })?;
        if own {
            if self.known_processes.len() >= PROCESS_CACHE_LIMIT {
                self.known_processes.clear();
            }
            self.known_processes.insert(key, KnownProcess { comm: comm.to_owned(), uid: ev.uid, tainted });
        }
        Ok(id)
    }

    fn upsert_file(&mut self, ts_ns: u64, key: &InodeKey, path: Option<&str>, untrusted: bool, executable: bool) -> Result<String> {
        let id = self.graph.file(ts_ns, key, path, untrusted, executable)?;
        if let Some(p) = path {
            if self.path_index.len() >= PATH_INDEX_LIMIT {
                self.path_index.clear();
            }
            self.path_index.insert(p.to_string(), id.clone());
        }
        Ok(id)
    }

    /// Records the sha256 of an executed untrusted file: hashed at every such exec, since
    /// the file may have been rewritten since the last one (sizes are capped by
    /// `procfs::HASH_LIMIT_BYTES`).
    fn record_hash(&self, file: &str, content: &Path) -> Result<()> {
        let Some(mut node) = self.graph.store().node(file)? else { return Ok(()) };
        let NodeData::File { sha256, .. } = &mut node.data else { return Ok(()) };
        if let Some(hash) = procfs::sha256_file(content) {
            *sha256 = Some(hash);
            self.graph.store().replace_node(&node)?;
        }
        Ok(())
    }

    /// A script run untrusted (`#!` exec, or read by an interpreter): hashed from its path,
    /// so that `rules` can write a content rule for script viruses too.
    fn hash_script(&self, file: &str, path: Option<&str>) -> Result<()> {
        match path.and_then(procfs::fs_path) {
            Some(p) => self.record_hash(file, &p),
            None => Ok(()),
        }
    }

    fn edge(&self, ts_ns: u64, src: &str, dst: &str, data: EdgeData) -> Result<()> {
        self.graph.edge(ts_ns, src, dst, data)
    }

    /// deny_exec stopped an interpreter at its open of a flagged script.
    fn record_interpret_prevented(&self, ev: &SensorEvent, file: &str, proc: &str, path: Option<String>) -> Result<()> {
        if !ev.exec_prevented {
            return Ok(());
        }
        self.record_prevented(ev, file, proc, PreventedAttrs { action: PreventedAction::Interpret, path, by: "deny_exec".into() }, "opened the flagged script to run it")
    }

    /// The kernel killed a process at what it was doing: said in the journal (`did` what it
    /// was doing) and kept as a `prevented` edge (file -> process).
    fn record_prevented(&self, ev: &SensorEvent, file: &str, proc: &str, attrs: PreventedAttrs, did: &str) -> Result<()> {
        tracing::warn!(pid = ev.tgid, "{}: process {} ({}) {did} {} and was killed before it could", attrs.by, ev.tgid, ev.comm, attrs.path.as_deref().unwrap_or("?"));
        self.edge(ev.ts_ns, file, proc, EdgeData::Prevented(attrs))
    }

    /// Rule 6 annotations for a change to `path` by a tainted process:
    /// `(activation_point, severity)`.
    fn activation(&self, ev: &SensorEvent, path: Option<&str>) -> (Option<String>, Option<Severity>) {
        match path.and_then(|p| self.config.activation_point(p)) {
            Some(point) if ev.tainted => (Some(point.into()), Some(Severity::High)),
            _ => (None, None),
        }
    }

    fn mark_untrusted_file(&self, key: &InodeKey, generation: u32, node: &str) -> Result<()> {
        self.graph.store().set_untrusted(key, &TaintedFile { node: node.into(), generation, by_port_program: false })?;
        Ok(())
    }

    /// A port program's own state file, first recorded as an arrival when its path could
    /// not be known (its writer gone): the untrusted mark is lifted.
    fn forget_state_file(&self, key: &InodeKey) -> Result<()> {
        self.graph.store().clear_untrusted(key)?;
        if let Some(mut node) = self.graph.store().node(&self.file_id(key))?
            && let NodeData::File { untrusted, .. } = &mut node.data
        {
            *untrusted = false;
            self.graph.store().replace_node(&node)?;
        }
        Ok(())
    }

    pub fn apply(&mut self, ev: &SensorEvent) -> Result<Vec<KernelAction>> {
        let mut actions = Vec::new();
        let path = ev.path.as_deref();
        // Only a whole path becomes one of the file's paths; an incomplete one (cut, or
        // relative to a directory that could not be known) stays on the edge, flagged.
        let node_path = path.filter(|_| !ev.path_incomplete);
        let incomplete = ev.path_incomplete;
        let path_text = path.map(str::to_owned);
        match ev.kind {
            EventKind::Exec => {
                let proc = self.upsert_process(ev, ev.tgid, ev.start_ticks, ev.tainted)?;
                let Some(f) = &ev.file else { return Ok(actions) };
                let image = f.key();
                // For a `#!` script the kernel reports the interpreter's inode with the
                // script's path: the file executed is the script, its interpreter an attribute.
                let script = node_path.and_then(procfs::fs_path).and_then(|p| procfs::inode_of(&p).ok()).filter(|(k, _)| *k != image);
                let tainted_by_this_exec = ev.taint_reason == Some(TaintReason::ExecUntrusted);
                let (file, interpreter) = match script {
                    Some((key, _)) => {
                        let untrusted = tainted_by_this_exec && !ev.file_was_untrusted;
                        let file = self.upsert_file(ev.ts_ns, &key, node_path, untrusted, true)?;
                        if tainted_by_this_exec {
                            // The script is the virus, not its interpreter: its content is hashed.
                            self.hash_script(&file, node_path)?;
                        }
                        (file, procfs::exe(ev.tgid))
                    }
                    None => {
                        let file = self.upsert_file(ev.ts_ns, &image, node_path, ev.file_was_untrusted, true)?;
                        if ev.file_was_untrusted {
                            // /proc/PID/exe is the very file that ran, even if renamed since.
                            self.record_hash(&file, Path::new(&format!("/proc/{}/exe", ev.tgid)))?;
                        }
                        (file, None)
                    }
                };
                if ev.file_was_untrusted || tainted_by_this_exec {
                    // Run untrusted: scanned now if no close was seen (written and removed
                    // before a mark could be set, it is still there as /proc/PID/exe).
                    let (key, generation) = script.unwrap_or((image, f.generation));
                    actions.push(KernelAction::WatchCloses { key, generation, pid: ev.tgid, path: node_path.map(str::to_owned) });
                }
                let attrs = ExecAttrs {
                    path: path_text.clone(),
                    path_incomplete: incomplete,
                    taint_reason: ev.taint_reason,
                    uid: Some(ev.uid),
                    interpreter,
                };
                self.edge(ev.ts_ns, &file, &proc, EdgeData::Exec(attrs))?;
                if ev.exec_prevented {
                    let attrs = PreventedAttrs { action: PreventedAction::Exec, path: path_text.clone(), by: "deny_exec".into() };
                    self.edge(ev.ts_ns, &file, &proc, EdgeData::Prevented(attrs))?;
                }
            }
            EventKind::Fork => {
                let child = self.upsert_process(ev, ev.tgid, ev.start_ticks, ev.tainted)?;
                if let Some((ptgid, pticks)) = ev.parent {
                    let parent = self.process_id(ptgid, pticks);
                    self.edge(ev.ts_ns, &parent, &child, EdgeData::Fork(NoAttrs {}))?;
                }
            }
            EventKind::Exit => {
                self.known_processes.remove(&(ev.tgid, ev.start_ticks));
                self.graph.store().clear_tainted_proc(ev.tgid, ev.start_ticks)?;
            }
            EventKind::Taint => {
                let proc = self.upsert_process(ev, ev.tgid, ev.start_ticks, true)?;
                if let Some(f) = &ev.file {
                    let file = self.upsert_file(ev.ts_ns, &f.key(), node_path, true, false)?;
                    self.hash_script(&file, node_path)?;
                    let attrs = ReadAttrs { path: path_text.clone(), path_incomplete: incomplete, taint_reason: ev.taint_reason };
                    self.edge(ev.ts_ns, &file, &proc, EdgeData::Read(attrs))?;
                    self.record_interpret_prevented(ev, &file, &proc, path_text)?;
                }
            }
            EventKind::Read => {
                // A tainted process read an untrusted file: data flowed file -> process
                // (no new taint: the process had it already, so no `taint_reason`).
                let Some(f) = &ev.file else { return Ok(actions) };
                let proc = self.upsert_process(ev, ev.tgid, ev.start_ticks, true)?;
                let file = self.upsert_file(ev.ts_ns, &f.key(), node_path, true, false)?;
                let attrs = ReadAttrs { path: path_text.clone(), path_incomplete: incomplete, taint_reason: None };
                self.edge(ev.ts_ns, &file, &proc, EdgeData::Read(attrs))?;
                self.record_interpret_prevented(ev, &file, &proc, path_text)?;
            }
            EventKind::Create | EventKind::Write | EventKind::Truncate => {
                let Some(f) = &ev.file else { return Ok(actions) };
                // (A file the graph holds untrusted because a tainted process wrote it is
                // kept; one marked only by port-program writes whose path was not known
                // then - its writer gone - is released now that it is.)
                if ev.port_program && !ev.tainted && node_path.is_some_and(|p| self.port_state.holds(p)) {
                    let marked = self.graph.store().untrusted_file(&f.key())?;
                    if marked.as_ref().is_none_or(|t| t.by_port_program) {
                        if marked.is_some() {
                            self.forget_state_file(&f.key())?;
                        }
                        self.state_writes_ignored += 1;
                        actions.push(KernelAction::NotAnArrival { key: f.key() });
                        return Ok(actions);
                    }
                }
                let proc = self.upsert_process(ev, ev.tgid, ev.start_ticks, ev.tainted)?;
                let file = self.upsert_file(ev.ts_ns, &f.key(), node_path, true, false)?;
                // A tainted writer always (re)marks it: it is no port program's state then.
                if ev.file_newly_untrusted || !ev.file_was_untrusted || ev.tainted {
                    let by_port_program = ev.port_program && !ev.tainted;
                    self.graph.store().set_untrusted(&f.key(), &TaintedFile { node: file.clone(), generation: f.generation, by_port_program })?;
                }
                let (activation_point, severity) = self.activation(ev, path);
                let attrs = FileWriteAttrs {
                    path: path_text,
                    path_incomplete: incomplete,
                    by_port_program: ev.port_program && !ev.tainted,
                    newly_untrusted: Some(ev.file_newly_untrusted),
                    via: ev.write_via,
                    kernel_map_full: ev.inode_map_full,
                    activation_point,
                    severity,
                };
                let prevented_path = ev.write_prevented.then(|| attrs.path.clone());
                actions.push(KernelAction::WatchCloses { key: f.key(), generation: f.generation, pid: ev.tgid, path: node_path.map(str::to_owned) });
                let data = match ev.kind {
                    EventKind::Create => EdgeData::Create(attrs),
                    EventKind::Write => EdgeData::Write(attrs),
                    _ => EdgeData::Truncate(attrs),
                };
                self.edge(ev.ts_ns, &proc, &file, data)?;
                if let Some(path) = prevented_path {
                    let attrs = PreventedAttrs { action: PreventedAction::Write, path, by: "protected path".into() };
                    self.record_prevented(ev, &file, &proc, attrs, "opened for writing")?;
                }
            }
            EventKind::Chmod => {
                let mode = ev.mode.unwrap_or(0);
                let executable = mode & 0o111 != 0;
                let key = ev.file.as_ref().map(|f| f.key()).or_else(|| node_path.and_then(procfs::fs_path).and_then(|p| procfs::inode_of(&p).ok().map(|(k, _)| k)));
                let Some(key) = key else { return Ok(actions) };
                let proc = self.upsert_process(ev, ev.tgid, ev.start_ticks, ev.tainted)?;
                let file = self.upsert_file(ev.ts_ns, &key, node_path, false, executable)?;
                let (activation_point, severity) = self.activation(ev, path);
                let attrs = ChmodAttrs {
                    path: path_text,
                    path_incomplete: incomplete,
                    mode: format!("{:o}", mode & 0o7777),
                    executable,
                    activation_point,
                    severity,
                };
                self.edge(ev.ts_ns, &proc, &file, EdgeData::Chmod(attrs))?;
            }
            EventKind::Rename | EventKind::Link => {
                let Some(to) = ev.path2.as_deref() else { return Ok(actions) };
                let Some((key, generation)) = procfs::fs_path(to).and_then(|p| procfs::inode_of(&p).ok()) else { return Ok(actions) };
                let proc = self.upsert_process(ev, ev.tgid, ev.start_ticks, ev.tainted)?;
                let rename = ev.kind == EventKind::Rename;
                // Rule 5: what a tainted process (or a port program) renames becomes untrusted.
                let file = self.upsert_file(ev.ts_ns, &key, Some(to), rename, false)?;
                if rename {
                    self.mark_untrusted_file(&key, generation, &file)?;
                    actions.push(KernelAction::MarkUntrusted { key, generation });
                    actions.push(KernelAction::WatchCloses { key, generation, pid: ev.tgid, path: Some(to.into()) });
                }
                let (activation_point, severity) = self.activation(ev, Some(to));
                let attrs = RenameAttrs { from: path_text, to: to.into(), activation_point, severity };
                let data = if rename { EdgeData::Rename(attrs) } else { EdgeData::Link(attrs) };
                self.edge(ev.ts_ns, &proc, &file, data)?;
            }
            EventKind::InheritedFds => {
                let proc = self.upsert_process(ev, ev.tgid, ev.start_ticks, true)?;
                if let Some(n) = ev.inherited_overflow {
                    tracing::warn!("pid {} became tainted holding {n} more writable files than one event carries: they are untrusted in the kernel, not in the graph", ev.tgid);
                }
                for f in &ev.inherited {
                    let key = f.key();
                    let fd_path = procfs::path_of_fd(ev.tgid, -1, &key)
                        .or_else(|| procfs::path_of_inode(&key, f.generation));
                    let file = self.upsert_file(ev.ts_ns, &key, fd_path.as_deref(), true, false)?;
                    self.mark_untrusted_file(&key, f.generation, &file)?;
                    actions.push(KernelAction::WatchCloses { key, generation: f.generation, pid: ev.tgid, path: fd_path.clone() });
                    let (activation_point, severity) = self.activation(ev, fd_path.as_deref());
                    let attrs = FileWriteAttrs {
                        path: fd_path,
                        via: Some(WriteVia::InheritedFd),
                        activation_point,
                        severity,
                        ..Default::default()
                    };
                    self.edge(ev.ts_ns, &proc, &file, EdgeData::Write(attrs))?;
                }
            }
            // NetEvent records never get here: `network::attribution` handles them.
            EventKind::NetFile => {}
            // The `connect` edge is network attribution's (it owns remote nodes); the
            // process it starts from must exist.
            EventKind::Connection => {
                if ev.tainted {
                    self.upsert_process(ev, ev.tgid, ev.start_ticks, true)?;
                }
            }
            EventKind::Unlink => {
                let Some(file) = path.and_then(|p| self.path_index.get(p)).cloned() else { return Ok(actions) };
                let proc = self.upsert_process(ev, ev.tgid, ev.start_ticks, ev.tainted)?;
                self.edge(ev.ts_ns, &proc, &file, EdgeData::Unlink(UnlinkAttrs { path: path_text }))?;
            }
        }
        Ok(actions)
    }

    /// Manual relabel (`vtrail-sensor trust|taint PATH`), recorded with who asked.
    pub fn relabel(&mut self, key: &InodeKey, generation: u32, path: &str, untrusted: bool, by: &str) -> Result<String> {
        let ts = procfs::now_wall_ns();
        let file = self.file_id(key);
        let mut node = self.graph.store().node(&file)?.unwrap_or(Node {
            id: file.clone(),
            host: self.host.id.clone(),
            first_seen_ns: ts,
            data: NodeData::File { dev: key.dev, ino: key.ino, paths: vec![], untrusted, executable: false, sha256: None, malicious: false, scan: None },
        });
        if let NodeData::File { paths, untrusted: u, .. } = &mut node.data {
            if !paths.iter().any(|p| p == path) {
                paths.push(path.into());
            }
            *u = untrusted;
        }
        self.graph.store().replace_node(&node)?;
        if untrusted {
            self.mark_untrusted_file(key, generation, &file)?;
        } else {
            self.graph.store().clear_untrusted(key)?;
        }
        let actor = self.graph.user(ts, by)?;
        let to = if untrusted { Trust::Untrusted } else { Trust::Trusted };
        self.edge(ts, &actor, &file, EdgeData::Relabel(RelabelAttrs { to, by: by.into(), path: Some(path.into()) }))?;
        Ok(file)
    }
}
