//! Links what the TC programs saw on the wire to the files port programs write.
//!
//! - SMB2: what a TreeId and a FileId name is `sensor_common::session::smb`, the state
//!   replay reads captures with: a CREATE waits by (connection, MessageId) for the response
//!   that gives its FileId; opens are then keyed by (server, SessionId, FileId) (not by TCP
//!   flow: multichannel sessions use several). A CREATE with write intent, or a WRITE to a
//!   FileId opened by any CREATE, is an upload; named pipes (the `IPC$` share) are not.
//! - FTP: per control connection, both directions joined into lines (`ftp_stream`: a
//!   command split across segments, several in one), then read by
//!   `sensor_common::session::ftp` as replay reads them: the working directory (CWD +
//!   `250`, `257` with RFC 959 quoting), STOR/APPE/STOU/RETR started on the server's `1xx`
//!   or refused, STOU's server-chosen name.
//! - An upload and a port-program create/write of a path that ends with the name sent
//!   (share-relative for SMB, working directory + name for FTP), within `WINDOW_NS` in
//!   either order, make a `received_from` edge `remote:<ip>` -> file.
//! - SMB3-encrypted sessions show no names: a port-program process whose established
//!   connections all go to one peer that sent a transform header attributes what it writes
//!   to that peer, with `inferred: true`.
//!   If the process has exited before /proc could be asked, the kernel's `connection`
//!   event for its close names the peer instead.
//! - A tainted process's TCP connections (kernel `connection` events) become `connect`
//!   edges process -> `remote:<ip>`: the hosts it reached.
//! - An SMB2 READ / FTP RETR of a file known untrusted (it arrived or was written by a
//!   port program while the sensor ran) makes a `sent_to` edge file -> `remote:<ip>`.
use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    net::{IpAddr, SocketAddr},
};

use anyhow::Result;
use sensor_common::{
    event::EventKind,
    graph::{
        self, ConnectAttrs, ConnectDirection, EdgeData, InferenceReason, MatchedBy, NodeData,
        PeerSeenBy, Protocol, QuarantineAttrs, TransferAttrs,
    },
    proto::{
        ftp::{self, Verb},
        smb2::FileId,
    },
    session::{
        ftp::join as ftp_join,
        smb::{self, Channel, Create, SmbSession},
    },
};

use super::peers;
use crate::decode::net::{NetDirection, NetFileEvent, NetVerb};
use crate::{
    decode::events::{ConnectionAction, SensorEvent},
    graph::GraphWriter,
};

/// How far apart the packet and the write may be.
const WINDOW_NS: u64 = 120 * 1_000_000_000;
const MAX_PENDING: usize = 4096;
const MAX_DONE: usize = 1 << 20;
/// Untrusted files remembered by base name for name matching, at most: a worm writing a
/// million files must not grow the sensor without bound. When full, the index starts
/// again (counted: `name_index_resets`); the graph keeps every file.
const MAX_NAMED_FILES: usize = 200_000;
/// A tainted process reading more untrusted files than this keeps the newest: an uploader
/// opens what it sends just before sending it.
const READS_PER_PROCESS: usize = 64;

#[derive(Clone, Debug)]
struct Transfer {
    ts_ns: u64,
    client: IpAddr,
    client_port: u16,
    server: IpAddr,
    server_port: u16,
    proto: Protocol,
    verb: graph::Verb,
    /// As sent (UTF-8).
    name: String,
    /// Path components joined with '/', no leading '/': what a disk path must end with.
    norm: String,
    partial: bool,
    session_id: u64,
    /// This host is the client: a local process sends (or fetches) the file.
    outbound: bool,
    /// SMB: the share the CREATE's TreeId names (from the session's TREE_CONNECT).
    share: Option<String>,
    /// An outbound FTP upload: what was being sent, found when the command went out (the
    /// sending process may be gone by the server's 150).
    sending: Option<Vec<SentHit>>,
}

impl Transfer {
    /// The attributes every edge of this transfer carries, with `remote` the other end;
    /// the caller adds what its side knows (ports, path, how the file was found).
    fn attrs(&self, remote: IpAddr) -> TransferAttrs {
        TransferAttrs {
            verb: Some(self.verb),
            name: Some(self.name.clone()),
            session_id: (self.session_id != 0).then_some(self.session_id),
            partial: self.partial,
            ..TransferAttrs::new(remote.to_string(), self.proto)
        }
    }
}

/// (path, file node, matched_by, process) of a file a local client sends.
type SentHit = (String, String, MatchedBy, Option<u32>);

#[derive(Clone, Debug)]
struct PortWrite {
    ts_ns: u64,
    tgid: u32,
    path: String,
    file: String,
}

/// An FTP control connection; a transfer command carries what a local client was
/// sending when it issued it (outbound uploads) and whether its line was cut.
type FtpConn = super::ftp_session::FtpConn<(Option<Vec<SentHit>>, bool)>;

/// SMB2 opens as the shared session state names them (share by TreeId, FileId from the
/// CREATE response, named pipes); each carries its upload record and whether a WRITE to it
/// was seen. Bounded: a flood of requests never answered forgets the older state.
struct SmbOpens(SmbSession<(Transfer, bool)>);

impl Default for SmbOpens {
    fn default() -> Self {
        Self(SmbSession::bounded(MAX_PENDING))
    }
}

#[derive(Default)]
pub struct Attribution {
    uploads: VecDeque<Transfer>,
    smb: SmbOpens,
    /// smb.conf shares: name (lower case) -> root.
    shares: HashMap<String, String>,
    encrypted_peers: HashMap<IpAddr, u64>,
    ftp: HashMap<(IpAddr, u16), FtpConn>,
    port_writes: VecDeque<PortWrite>,
    /// Untrusted files by base name: (path, node id), for READ/RETR -> sent_to.
    untrusted_by_name: HashMap<String, Vec<(String, String)>>,
    /// Entries in `untrusted_by_name`.
    named_files: usize,
    done: HashSet<(String, String, &'static str)>,
    /// Share roots from smb.conf or the config: a match under one is marked `exact`.
    share_roots: Vec<String>,
    /// Peers whose connections a port-program process (tgid, start ticks) closed.
    served: HashMap<(u32, u64), BTreeSet<IpAddr>>,
    /// Outbound connections of tainted processes, so their close is not recorded again
    /// (and an upload on one names its process when /proc no longer can).
    connects: HashMap<((u32, u64), SocketAddr), u32>,
    /// Untrusted files each tainted process opened for reading (kernel `read` records):
    /// (path, node id), at most `READS_PER_PROCESS` each, newest last. What an uploader
    /// that exited before its upload was seen was sending.
    reads: HashMap<(u32, u64), Vec<(String, String)>>,
    /// Remote IP -> node ids (DNS reverse mapping of `vtrail-ddns`).
    pub naming: crate::correlate::naming::Naming,
    pub stats: Stats,
}

#[derive(Default, Debug, serde::Serialize, serde::Deserialize, Clone)]
pub struct Stats {
    pub net_events: u64,
    pub uploads_seen: u64,
    /// Uploads by local clients to remote servers.
    pub uploads_out: u64,
    pub received_from: u64,
    pub received_from_inferred: u64,
    pub sent_to: u64,
    pub blocked_packets: u64,
    pub encrypted_sessions: u64,
    /// `connect` edges: TCP connections of tainted processes.
    pub connections: u64,
    /// FTP command bytes that never reached userspace (a lost event, a segment longer
    /// than the kernel copies): the line they belonged to was not read whole.
    pub ftp_stream_gaps: u64,
    /// Reads or outbound uploads that matched several untrusted files and no way to tell
    /// which one was sent: no `sent_to` edge.
    pub sent_to_ambiguous: u64,
    /// FTP transfers the server refused (4xx/5xx): not attributed.
    pub ftp_refused_transfers: u64,
    /// Times the by-name index of untrusted files was full and started again: a file
    /// sent later under an older name can then be matched only by what its sender read.
    #[serde(default)]
    pub name_index_resets: u64,
}

/// `a\b\c` or `/a/b/c` -> `a/b/c` (empty components and `.` dropped).
pub fn normalize(name: &str) -> String {
    name.split(['/', '\\']).filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/")
}

/// Does disk path `path` hold the name sent (`norm`, share- or FTP-root-relative)?
pub fn path_matches(path: &str, norm: &str) -> bool {
    !norm.is_empty() && (path.trim_start_matches('/') == norm || path.ends_with(&format!("/{norm}")))
}


impl Attribution {
    /// With the smb.conf shares by name, a READ is resolved in the share its TreeId names.
    pub fn with_shares(mut self, shares: Vec<(String, String)>) -> Self {
        self.shares = shares.into_iter().collect();
        self
    }

    pub fn new(share_roots: Vec<String>) -> Self {
        Self { share_roots, ..Default::default() }
    }

    pub fn with_naming(mut self, naming: crate::correlate::naming::Naming) -> Self {
        self.naming = naming;
        self
    }

    /// The `remote:<ip>` node, with the node ids known for `ip` now (cached); a miss
    /// starts a lookup whose answer [`Self::named`] applies later. Returns the node id and
    /// the ids known now.
    fn remote(&mut self, graph: &GraphWriter, ts: u64, ip: IpAddr) -> Result<(String, Vec<String>)> {
        let node_ids = self.naming.ids(ip);
        let id = graph.remote(ts, ip, node_ids.clone())?;
        Ok((id, node_ids))
    }

    /// A background lookup answered: its ids go on the `remote:<ip>` node (merged with
    /// those it had). Failures are counted in `naming` and logged, never fatal.
    pub fn named(&mut self, graph: &GraphWriter, ip: IpAddr, answer: Result<Vec<String>, String>) -> Result<()> {
        let Some(node_ids) = self.naming.answered(ip, answer) else { return Ok(()) };
        tracing::info!("remote {ip} is node {}", node_ids.join(", "));
        graph.remote(crate::host::procfs::now_wall_ns(), ip, node_ids)?;
        Ok(())
    }

    /// A block/unblock edge from this host to the remote node.
    pub fn quarantine_edge(&mut self, graph: &GraphWriter, ip: IpAddr, block: bool, by: &str) -> Result<String> {
        let ts = crate::host::procfs::now_wall_ns();
        let (remote, _) = self.remote(graph, ts, ip)?;
        let host = graph.host_node();
        let attrs = QuarantineAttrs { ip: ip.to_string(), by: by.into() };
        let data = if block { EdgeData::Block(attrs) } else { EdgeData::Unblock(attrs) };
        graph.edge(ts, &host, &remote, data)?;
        Ok(remote)
    }

    fn push_upload(&mut self, graph: &GraphWriter, t: Transfer) -> Result<()> {
        if t.outbound {
            return self.sent_out(graph, &t);
        }
        self.stats.uploads_seen += 1;
        // A port program may have written the file before this packet's event arrived.
        let cutoff = t.ts_ns.saturating_sub(WINDOW_NS);
        let hits: Vec<PortWrite> = self
            .port_writes
            .iter()
            .filter(|w| w.ts_ns >= cutoff && path_matches(&w.path, &t.norm))
            .cloned()
            .collect();
        for w in hits {
            self.received(graph, &t, &w.file, &w.path, w.ts_ns)?;
        }
        if self.uploads.len() >= MAX_PENDING {
            self.uploads.pop_front();
        }
        self.uploads.push_back(t);
        Ok(())
    }

    /// A relative path (the writer exited before its dirfd could be read): the share root
    /// + name, if that is the same file.
    fn absolute(&self, graph: &GraphWriter, file: &str, path: &str, norm: &str) -> String {
        if path.starts_with('/') {
            return path.to_string();
        }
        for root in &self.share_roots {
            let candidate = format!("{root}/{norm}");
            if let Ok((key, _)) = crate::host::procfs::inode_of(std::path::Path::new(&candidate))
                && graph.file_id(&key) == file
            {
                if let Ok(Some(mut node)) = graph.store().node(file)
                    && let NodeData::File { paths, .. } = &mut node.data
                {
                    paths.push(candidate.clone());
                    let _ = graph.store().upsert_node(node);
                }
                return candidate;
            }
        }
        path.to_string()
    }

    fn received(&mut self, graph: &GraphWriter, t: &Transfer, file: &str, path: &str, _write_ts: u64) -> Result<()> {
        let remote_ip = t.client;
        let key = (file.to_string(), remote_ip.to_string(), "received_from");
        if !self.done.insert(key) {
            return Ok(());
        }
        let path = &self.absolute(graph, file, path, &t.norm);
        let (remote, node_ids) = self.remote(graph, t.ts_ns, remote_ip)?;
        let exact = self.share_roots.iter().any(|r| *path == format!("{r}/{}", t.norm));
        let attrs = TransferAttrs {
            port: Some(t.client_port),
            server: Some(t.server.to_string()),
            server_port: Some(t.server_port),
            path: Some(path.clone()),
            share_root_match: exact,
            node_ids,
            ..t.attrs(remote_ip)
        };
        graph.edge(t.ts_ns, &remote, file, EdgeData::ReceivedFrom(attrs))?;
        self.stats.received_from += 1;
        Ok(())
    }


    /// A record from the TC programs.
    pub fn on_net(&mut self, graph: &GraphWriter, ev: &NetFileEvent) -> Result<()> {
        self.stats.net_events += 1;
        if ev.blocked {
            self.stats.blocked_packets += 1;
            return Ok(());
        }
        // Requests go client -> server (dport is the service port), responses back. This
        // host is the client when its requests leave or the responses come in.
        let request = matches!(ev.dport, 445 | 139 | 21);
        let outbound = request == (ev.direction == NetDirection::Egress);
        let (client, client_port, server, server_port) =
            if request { (ev.src, ev.sport, ev.dst, ev.dport) } else { (ev.dst, ev.dport, ev.src, ev.sport) };
        let proto = ev.proto.unwrap_or(Protocol::Smb2);
        let transfer = |verb: graph::Verb, name: &str, norm: String| Transfer {
            ts_ns: ev.ts_ns,
            client,
            client_port,
            server,
            server_port,
            proto,
            verb,
            name: name.into(),
            norm,
            partial: ev.partial || ev.name_truncated,
            session_id: ev.session_id,
            outbound,
            sending: None,
            share: None,
        };
        let channel = Channel { client: SocketAddr::new(client, client_port), server: SocketAddr::new(server, server_port) };
        match ev.verb {
            NetVerb::TreeConnect => self.smb.0.tree_connect_request(channel, ev.message_id, ev.name.clone()),
            NetVerb::TreeConnectResponse => {
                self.smb.0.tree_connect_response(channel, ev.session_id, ev.message_id, ev.tree_id);
            }
            NetVerb::Create => {
                let mut t = transfer(graph::Verb::SmbCreate, &ev.name, normalize(&ev.name));
                // `\\server\share`: smb.conf knows the share by its last component.
                t.share = self.smb.0.share(server, ev.session_id, ev.tree_id).map(|p| smb::share_name(p).to_ascii_lowercase());
                let create = Create {
                    session: ev.session_id,
                    tree: ev.tree_id,
                    name: ev.name.clone(),
                    name_truncated: ev.name_truncated,
                    access: ev.access,
                    disposition: ev.disposition,
                    options: 0,
                    write_intent: ev.write_intent,
                };
                let open = self.smb.0.create_request(channel, ev.message_id, create, (t.clone(), false));
                if ev.write_intent && !open.pipe && !t.norm.is_empty() {
                    self.push_upload(graph, t)?;
                }
            }
            NetVerb::CreateResponse => {
                self.smb.0.create_response(channel, ev.message_id, Some(FileId::from_bytes(&ev.file_id_raw)));
            }
            NetVerb::Write => {
                if let Some(open) = self.smb.0.file(server, ev.session_id, FileId::from_bytes(&ev.file_id_raw))
                    && !open.pipe
                    && !open.data.1
                {
                    open.data.1 = true;
                    let mut t = open.data.0.clone();
                    t.verb = graph::Verb::SmbWrite;
                    t.ts_ns = ev.ts_ns;
                    self.push_upload(graph, t)?;
                }
            }
            NetVerb::Read => {
                if let Some(open) = self.smb.0.file(server, ev.session_id, FileId::from_bytes(&ev.file_id_raw))
                    && !open.pipe
                {
                    let mut t = open.data.0.clone();
                    t.verb = graph::Verb::SmbRead;
                    t.ts_ns = ev.ts_ns;
                    self.sent(graph, &t)?;
                }
            }
            NetVerb::Encrypted if self.encrypted_peers.insert(client, ev.ts_ns).is_none() => {
                self.stats.encrypted_sessions += 1;
            }
            NetVerb::Command | NetVerb::Reply => {
                let command = ev.verb == NetVerb::Command;
                // Bounded memory: control connections are few; a flood of spoofed ones
                // forgets the others' state.
                if self.ftp.len() >= MAX_PENDING && !self.ftp.contains_key(&(client, client_port)) {
                    self.ftp.clear();
                }
                let conn = self.ftp.entry((client, client_port)).or_default();
                let stream = if command { &mut conn.commands } else { &mut conn.replies };
                let gaps = stream.gaps;
                let lines = stream.push(ev.tcp_seq, &ev.line, ev.missing);
                self.stats.ftp_stream_gaps += stream.gaps - gaps;
                for (line, cut) in lines {
                    if command {
                        // What a local client sends is asked of /proc now: it may be gone
                        // by the server's 150.
                        let sending = match ftp::parse_request(&line) {
                            Some(req) if outbound && req.verb.is_upload() => graph::Verb::of_ftp(req.verb).map(|verb| {
                                let arg = String::from_utf8_lossy(req.arg).into_owned();
                                self.being_sent(graph, &transfer(verb, &arg, ftp_join("", &arg)))
                            }),
                            _ => None,
                        };
                        if let Some(conn) = self.ftp.get_mut(&(client, client_port)) {
                            conn.session.command(&line, |_| (sending, cut));
                        }
                        continue;
                    }
                    let Some(fact) = self.ftp.get_mut(&(client, client_port)).and_then(|conn| conn.session.reply(&line)) else { continue };
                    if let Some((started, cwd)) = fact.began() {
                        let Some(transfer_verb) = graph::Verb::of_ftp(started.verb) else { continue };
                        let name = started.name();
                        let (sending, cut) = started.payload.clone();
                        let mut t = transfer(transfer_verb, name, cwd.join(name));
                        t.partial |= cut;
                        t.sending = sending;
                        if started.verb == Verb::Retr {
                            self.sent(graph, &t)?;
                        } else {
                            self.push_upload(graph, t)?;
                        }
                    } else if fact.refused().is_some() {
                        self.stats.ftp_refused_transfers += 1;
                    }
                }
            }
            _ => {}
        }
        self.expire(ev.ts_ns);
        Ok(())
    }

    fn expire(&mut self, now: u64) {
        // Bounded memory on a busy server: forgetting which edges were made only risks a
        // repeated edge for a transfer still in flight.
        if self.done.len() >= MAX_DONE {
            self.done.clear();
        }
        let cutoff = now.saturating_sub(WINDOW_NS);
        while self.uploads.front().is_some_and(|t| t.ts_ns < cutoff) {
            self.uploads.pop_front();
        }
        while self.port_writes.front().is_some_and(|w| w.ts_ns < cutoff) {
            self.port_writes.pop_front();
        }
    }

    /// A create/write event, after `Ingest` recorded it: port-program writes are matched
    /// against uploads (and remembered for uploads whose packets arrive later).
    pub fn on_file(&mut self, graph: &GraphWriter, ev: &SensorEvent, file: &str) -> Result<()> {
        if ev.kind == EventKind::Read {
            self.note_read(ev, file);
            return Ok(());
        }
        if !matches!(ev.kind, EventKind::Create | EventKind::Write) {
            return Ok(());
        }
        let Some(path) = ev.path.clone() else { return Ok(()) };
        if ev.port_program || ev.tainted || ev.file_newly_untrusted {
            let base = path.rsplit('/').next().unwrap_or("").to_string();
            if self.named_files >= MAX_NAMED_FILES && !self.untrusted_by_name.contains_key(&base) {
                self.untrusted_by_name.clear();
                self.named_files = 0;
                self.stats.name_index_resets += 1;
            }
            let entry = self.untrusted_by_name.entry(base).or_default();
            if !entry.iter().any(|(p, f)| p == &path && f == file) {
                entry.push((path.clone(), file.to_string()));
                self.named_files += 1;
            }
        }
        if !ev.port_program {
            return Ok(());
        }
        let cutoff = ev.ts_ns.saturating_sub(WINDOW_NS);
        let hit = self.uploads.iter().rev().find(|t| t.ts_ns >= cutoff && path_matches(&path, &t.norm)).cloned();
        if let Some(t) = hit {
            return self.received(graph, &t, file, &path, ev.ts_ns);
        }
        if self.port_writes.len() >= MAX_PENDING {
            self.port_writes.pop_front();
        }
        let write = PortWrite { ts_ns: ev.ts_ns, tgid: ev.tgid, path, file: file.to_string() };
        self.port_writes.push_back(write.clone());
        // Encrypted fallback: the process serves one peer that sent a transform header.
        // Asked of /proc while the process lives. If it has exited already, the kernel's
        // `connection` event for its close, which follows this write, names the peer
        // (`on_connection`).
        if !self.encrypted_peers.is_empty() {
            let peers = peers::remote_peers(ev.tgid);
            if peers.len() == 1
                && let Some(ip) = peers.first().copied()
            {
                self.infer_encrypted(graph, &write, ip, PeerSeenBy::Proc)?;
            }
        }
        Ok(())
    }

    /// Encrypted-session fallback for one port-program write: attributed to `peer`, the
    /// one peer its process served, if that peer sent a transform header and the file is
    /// under a share (with share roots known: not smbd's own lock files).
    fn infer_encrypted(&mut self, graph: &GraphWriter, w: &PortWrite, peer: IpAddr, seen_by: PeerSeenBy) -> Result<()> {
        let in_share = self.share_roots.is_empty() || self.share_roots.iter().any(|r| w.path.starts_with(&format!("{r}/")));
        if !in_share || !self.encrypted_peers.contains_key(&peer) {
            return Ok(());
        }
        if !self.done.insert((w.file.clone(), peer.to_string(), "received_from")) {
            return Ok(());
        }
        let (remote, node_ids) = self.remote(graph, w.ts_ns, peer)?;
        let attrs = TransferAttrs {
            verb: Some(graph::Verb::SmbWrite),
            path: Some(w.path.clone()),
            inferred: true,
            reason: Some(InferenceReason::Smb3Encrypted),
            peer_seen_by: Some(seen_by),
            process: Some(w.tgid),
            node_ids,
            ..TransferAttrs::new(peer.to_string(), Protocol::Smb2)
        };
        graph.edge(w.ts_ns, &remote, &w.file, EdgeData::ReceivedFrom(attrs))?;
        self.stats.received_from_inferred += 1;
        Ok(())
    }

    /// A `connection` event. A port program closing a connection names the peer it
    /// served (its pending writes may now be attributed); a tainted process connecting
    /// out, or closing a connection it accepted, reached that remote: a `connect` edge.
    pub fn on_connection(&mut self, graph: &GraphWriter, ev: &SensorEvent) -> Result<()> {
        let Some(c) = &ev.connection else { return Ok(()) };
        let peer = c.remote.ip();
        let proc_key = (ev.tgid, ev.start_ticks);
        if ev.port_program && c.action == ConnectionAction::Close {
            if self.served.len() >= MAX_PENDING && !self.served.contains_key(&proc_key) {
                self.served.clear();
            }
            let peers = self.served.entry(proc_key).or_default();
            peers.insert(peer);
            if peers.len() == 1 && self.encrypted_peers.contains_key(&peer) {
                let cutoff = ev.ts_ns.saturating_sub(WINDOW_NS);
                let writes: Vec<PortWrite> =
                    self.port_writes.iter().filter(|w| w.tgid == ev.tgid && w.ts_ns >= cutoff).cloned().collect();
                for w in writes {
                    self.infer_encrypted(graph, &w, peer, PeerSeenBy::ConnectionClose)?;
                }
            }
        }
        if !ev.tainted {
            return Ok(());
        }
        // Keyed without the local port: at SYN_SENT the kernel has not bound it yet.
        let conn_key = (proc_key, c.remote);
        let direction = if c.action == ConnectionAction::Connect {
            if self.connects.len() >= MAX_PENDING {
                self.connects.clear();
            }
            *self.connects.entry(conn_key).or_default() += 1;
            ConnectDirection::Out
        } else if let Some(open) = self.connects.get_mut(&conn_key) {
            // The close of a connection it made was recorded at connect time.
            *open -= 1;
            if *open == 0 {
                self.connects.remove(&conn_key);
            }
            return Ok(());
        } else {
            ConnectDirection::In
        };
        let (remote, node_ids) = self.remote(graph, ev.ts_ns, peer)?;
        let process = graph.process_id(ev.tgid, ev.start_ticks);
        let attrs = ConnectAttrs {
            ip: peer.to_string(),
            port: c.remote.port(),
            local_port: (c.local.port() != 0).then_some(c.local.port()),
            protocol: Protocol::Tcp,
            direction,
            node_ids,
        };
        graph.edge(ev.ts_ns, &process, &remote, EdgeData::Connect(attrs))?;
        self.stats.connections += 1;
        Ok(())
    }
}

#[cfg(test)]
mod agreement;
mod sent;
#[cfg(test)]
mod tests;
