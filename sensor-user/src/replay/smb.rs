//! SMB2 state across the messages of a capture: dialect per connection, share per TreeId,
//! file name per FileId, encryption per session, and the transfers they add up to.
//!
//! Keys follow issue 3: a FileId is keyed by (server address, SessionId, FileId), not by
//! TCP connection, because SMB3 multichannel may open a file on one connection and write
//! it on another. Requests wait in `pending` keyed by (connection, MessageId) until their
//! response tells whether they succeeded.

use std::collections::HashMap;
use std::net::IpAddr;

use sensor_common::proto::smb2::{self, Command, FileId, Header, Kind};
use sensor_common::proto::utf16;

use super::{ConnKey, ReplayStats, Transfer};

/// Longest name kept (UTF-8 bytes); longer ones are cut and flagged.
pub const NAME_MAX: usize = 4096;

fn utf16_string(b: &[u8]) -> (String, bool) {
    let mut buf = [0u8; NAME_MAX];
    let r = utf16::utf16le_to_utf8(b, &mut buf);
    // The converter only writes whole characters, so this never fails.
    (String::from_utf8_lossy(&buf[..r.len]).into_owned(), r.truncated)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CreateState {
    Pending,
    Ok,
    Failed(u32),
}

/// An open (or opening) file.
#[derive(Debug)]
struct Handle {
    conn: ConnKey,
    ts_ns: u64,
    session: u64,
    tree: u32,
    message_id: u64,
    /// None when the CREATE was not in the capture (the capture began after it).
    name: Option<String>,
    name_truncated: bool,
    share: Option<String>,
    access: u32,
    disposition: u32,
    options: u32,
    write_intent: bool,
    file_id: Option<FileId>,
    state: CreateState,
    closed: bool,
    first_write_ts: u64,
    writes: u64,
    bytes_written: u64,
    first_read_ts: u64,
    reads: u64,
    bytes_read: u64,
}

#[derive(Debug)]
enum Pending {
    Create(u64),
    Read(u64),
    TreeConnect(String),
}

#[derive(Debug, Default)]
struct Session {
    /// Transform-header messages (client to server, server to client) and their bytes.
    encrypted_msgs: [u64; 2],
    encrypted_bytes: [u64; 2],
    first_encrypted_ts: u64,
    /// CREATE names seen in clear in this session.
    names_seen: u64,
    conn: Option<ConnKey>,
}

/// All SMB2 state of one replay.
#[derive(Debug, Default)]
pub struct SmbTracker {
    dialects: HashMap<ConnKey, u16>,
    trees: HashMap<(IpAddr, u64, u32), String>,
    pending: HashMap<(ConnKey, u64), Pending>,
    handles: HashMap<u64, Handle>,
    by_file_id: HashMap<(IpAddr, u64, FileId), u64>,
    sessions: HashMap<(IpAddr, u64), Session>,
    next_handle: u64,
}

/// Per-message context for a compound chain: what related PDUs inherit.
#[derive(Default)]
struct Chain {
    session: u64,
    tree: u32,
    /// Handle of the CREATE earlier in this chain (for FileId all 0xFF).
    last_create: Option<u64>,
}

impl SmbTracker {
    /// Handles one NBSS session-message payload sent on `conn` (`from_client` is the TCP
    /// direction).
    pub fn message(&mut self, conn: ConnKey, from_client: bool, ts_ns: u64, payload: &[u8], out: &mut Vec<Transfer>, stats: &mut ReplayStats) {
        stats.smb_messages += 1;
        match smb2::classify(payload) {
            Kind::Smb2 => {}
            Kind::Encrypted => {
                stats.smb_encrypted += 1;
                if let Ok(t) = smb2::TransformHeader::new_checked(payload) {
                    let s = self.sessions.entry((conn.server.ip(), t.session_id())).or_default();
                    let d = if from_client { 0 } else { 1 };
                    if s.encrypted_msgs == [0, 0] {
                        s.first_encrypted_ts = ts_ns;
                    }
                    s.encrypted_msgs[d] += 1;
                    s.encrypted_bytes[d] += t.ciphertext().len() as u64;
                    s.conn.get_or_insert(conn);
                } else {
                    stats.parse_errors += 1;
                }
                return;
            }
            Kind::Compressed => {
                stats.smb_compressed += 1;
                return;
            }
            Kind::Smb1 => {
                stats.smb1 += 1;
                return;
            }
            Kind::Unknown => {
                stats.parse_errors += 1;
                return;
            }
        }
        let mut chain = Chain::default();
        let mut it = smb2::pdus(payload);
        for pdu in it.by_ref() {
            let h = match pdu {
                Ok(h) => h,
                Err(_) => {
                    stats.parse_errors += 1;
                    break;
                }
            };
            stats.smb_pdus += 1;
            let (session, tree) = if h.is_related() {
                (chain.session, chain.tree)
            } else {
                (h.session_id(), h.tree_id().unwrap_or(chain.tree))
            };
            chain.session = session;
            chain.tree = tree;
            if h.is_response() {
                self.response(conn, h, out, stats);
            } else {
                self.request(conn, ts_ns, h, session, tree, &mut chain, out, stats);
            }
        }
        if it.hit_limit() {
            stats.smb_chain_limit += 1;
        }
    }

    fn handle_for(&mut self, conn: ConnKey, ts_ns: u64, session: u64, tree: u32, fid: FileId, chain: &Chain) -> u64 {
        if let Some(h) = chain.last_create.filter(|_| fid.is_related()) {
            return h;
        }
        let key = (conn.server.ip(), session, fid);
        if let Some(&h) = self.by_file_id.get(&key) {
            return h;
        }
        // A file opened before the capture began: remember it without a name.
        let id = self.new_handle(Handle {
            conn,
            ts_ns,
            session,
            tree,
            message_id: 0,
            name: None,
            name_truncated: false,
            share: self.trees.get(&(conn.server.ip(), session, tree)).cloned(),
            access: 0,
            disposition: 0,
            options: 0,
            write_intent: false,
            file_id: Some(fid),
            state: CreateState::Ok,
            closed: false,
            first_write_ts: 0,
            writes: 0,
            bytes_written: 0,
            first_read_ts: 0,
            reads: 0,
            bytes_read: 0,
        });
        self.by_file_id.insert(key, id);
        id
    }

    fn new_handle(&mut self, h: Handle) -> u64 {
        let id = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(id, h);
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn request(&mut self, conn: ConnKey, ts_ns: u64, h: Header<&[u8]>, session: u64, tree: u32, chain: &mut Chain, _out: &mut Vec<Transfer>, stats: &mut ReplayStats) {
        let bytes = h.as_bytes();
        match h.command() {
            Command::TreeConnect => match smb2::TreeConnectRequest::new_checked(bytes).and_then(|t| t.path().map(utf16_string)) {
                Ok((path, _)) => {
                    self.pending.insert((conn, h.message_id()), Pending::TreeConnect(path));
                }
                Err(_) => stats.parse_errors += 1,
            },
            Command::Create => {
                let c = match smb2::CreateRequest::new_checked(bytes) {
                    Ok(c) => c,
                    Err(_) => {
                        stats.parse_errors += 1;
                        return;
                    }
                };
                let (name, truncated) = match c.name() {
                    Ok(n) => utf16_string(n),
                    Err(_) => {
                        stats.parse_errors += 1;
                        match c.name_partial() {
                            Ok((n, _)) => (utf16_string(n).0, true),
                            Err(_) => (String::new(), true),
                        }
                    }
                };
                stats.smb_creates += 1;
                let share = self.trees.get(&(conn.server.ip(), session, tree)).cloned();
                if let Some(s) = self.sessions.get_mut(&(conn.server.ip(), session)) {
                    s.names_seen += 1;
                }
                let id = self.new_handle(Handle {
                    conn,
                    ts_ns,
                    session,
                    tree,
                    message_id: h.message_id(),
                    name: Some(name),
                    name_truncated: truncated,
                    share,
                    access: c.desired_access(),
                    disposition: c.create_disposition(),
                    options: c.create_options(),
                    write_intent: c.has_write_intent(),
                    file_id: None,
                    state: CreateState::Pending,
                    closed: false,
                    first_write_ts: 0,
                    writes: 0,
                    bytes_written: 0,
                    first_read_ts: 0,
                    reads: 0,
                    bytes_read: 0,
                });
                self.pending.insert((conn, h.message_id()), Pending::Create(id));
                chain.last_create = Some(id);
            }
            Command::Write => match smb2::WriteRequest::new_checked(bytes) {
                Ok(w) => {
                    let id = self.handle_for(conn, ts_ns, session, tree, w.file_id(), chain);
                    if let Some(hd) = self.handles.get_mut(&id) {
                        if hd.writes == 0 {
                            hd.first_write_ts = ts_ns;
                        }
                        hd.writes += 1;
                        hd.bytes_written += w.length() as u64;
                    }
                }
                Err(_) => stats.parse_errors += 1,
            },
            Command::Read => match smb2::ReadRequest::new_checked(bytes) {
                Ok(r) => {
                    let id = self.handle_for(conn, ts_ns, session, tree, r.file_id(), chain);
                    if let Some(hd) = self.handles.get_mut(&id).filter(|hd| hd.reads == 0) {
                        hd.first_read_ts = ts_ns;
                    }
                    self.pending.insert((conn, h.message_id()), Pending::Read(id));
                }
                Err(_) => stats.parse_errors += 1,
            },
            Command::Close => match smb2::CloseRequest::new_checked(bytes) {
                Ok(c) => {
                    let fid = c.file_id();
                    let id = if fid.is_related() {
                        chain.last_create
                    } else {
                        self.by_file_id.get(&(conn.server.ip(), session, fid)).copied()
                    };
                    if let Some(id) = id {
                        if let Some(hd) = self.handles.get_mut(&id) {
                            hd.closed = true;
                        }
                        self.try_finish(id, _out);
                    }
                }
                Err(_) => stats.parse_errors += 1,
            },
            _ => {}
        }
    }

    fn response(&mut self, conn: ConnKey, h: Header<&[u8]>, out: &mut Vec<Transfer>, stats: &mut ReplayStats) {
        let bytes = h.as_bytes();
        let status = h.status();
        // An interim "pending" response: the real one follows with the same MessageId.
        if status == smb2::status::PENDING && h.is_async() {
            return;
        }
        match h.command() {
            Command::Negotiate => {
                if let Ok(n) = smb2::NegotiateResponse::new_checked(bytes) {
                    self.dialects.insert(conn, n.dialect_revision());
                }
            }
            Command::SessionSetup => {
                if let Ok(s) = smb2::SessionSetupResponse::new_checked(bytes)
                    && s.encrypts_data() {
                        self.sessions.entry((conn.server.ip(), h.session_id())).or_default().conn.get_or_insert(conn);
                    }
            }
            _ => {}
        }
        let Some(p) = self.pending.remove(&(conn, h.message_id())) else { return };
        let ok = status == smb2::status::SUCCESS || status == smb2::status::BUFFER_OVERFLOW;
        match p {
            Pending::TreeConnect(path) => {
                if ok
                    && let Some(tree) = h.tree_id() {
                        self.trees.insert((conn.server.ip(), h.session_id(), tree), path);
                    }
            }
            Pending::Create(id) => {
                let fid = if ok { smb2::CreateResponse::new_checked(bytes).ok().map(|c| c.file_id()) } else { None };
                if ok && fid.is_none() {
                    stats.parse_errors += 1;
                }
                let Some(hd) = self.handles.get_mut(&id) else { return };
                match fid {
                    Some(fid) => {
                        hd.state = CreateState::Ok;
                        hd.file_id = Some(fid);
                        let key = (conn.server.ip(), hd.session, fid);
                        if let Some(hd) = self.handles.get(&id).filter(|hd| hd.write_intent) {
                            let t = self.create_record(hd, true);
                            out.push(t);
                        }
                        // An older handle under the same key is stale (closed without us seeing it).
                        if let Some(old) = self.by_file_id.insert(key, id)
                            && old != id {
                                if let Some(o) = self.handles.get_mut(&old) {
                                    o.closed = true;
                                }
                                self.try_finish(old, out);
                            }
                    }
                    None => {
                        hd.state = CreateState::Failed(status);
                        stats.smb_failed_creates += 1;
                    }
                }
                self.try_finish(id, out);
            }
            Pending::Read(id) => {
                if ok
                    && let (Ok(r), Some(hd)) = (smb2::ReadResponse::new_checked(bytes), self.handles.get_mut(&id)) {
                        hd.reads += 1;
                        hd.bytes_read += r.data_length() as u64;
                    }
            }
        }
    }

    fn base_record(&self, hd: &Handle, ts_ns: u64, direction: &'static str, verb: &'static str) -> Transfer {
        let mut t = Transfer::new(ts_ns, "smb2", direction, verb, hd.conn);
        t.name = hd.name.clone();
        t.name_truncated = hd.name_truncated;
        t.share = hd.share.clone();
        t.session_id = Some(format!("{:#018x}", hd.session));
        t.tree_id = Some(hd.tree);
        t.file_id = hd.file_id.map(|f| format!("{:016x}{:016x}", f.persistent, f.volatile));
        t.dialect = self.dialects.get(&hd.conn).map(|&d| smb2::dialect::name(d));
        t.encrypted = Some(false);
        t
    }

    fn create_record(&self, hd: &Handle, answered: bool) -> Transfer {
        let mut t = self.base_record(hd, hd.ts_ns, "upload", "create");
        t.disposition = Some(smb2::disposition::name(hd.disposition));
        t.access = Some(format!("{:#010x}", hd.access));
        t.create_options = Some(format!("{:#010x}", hd.options));
        t.message_id = Some(hd.message_id);
        if !answered {
            t.status = Some("unanswered".into());
        }
        t
    }

    /// Emits a closed handle's WRITE and READ totals and forgets it, once its CREATE's fate
    /// is known (a handle whose CREATE failed emits nothing).
    fn try_finish(&mut self, id: u64, out: &mut Vec<Transfer>) {
        let Some(hd) = self.handles.get(&id) else { return };
        if !hd.closed || hd.state == CreateState::Pending {
            return;
        }
        let Some(hd) = self.handles.remove(&id) else { return };
        if let Some(fid) = hd.file_id {
            let key = (hd.conn.server.ip(), hd.session, fid);
            if self.by_file_id.get(&key) == Some(&id) {
                self.by_file_id.remove(&key);
            }
        }
        if let CreateState::Failed(_) = hd.state {
            return;
        }
        self.emit_io(&hd, out);
    }

    fn emit_io(&self, hd: &Handle, out: &mut Vec<Transfer>) {
        if hd.writes > 0 {
            let mut t = self.base_record(hd, hd.first_write_ts, "upload", "write");
            t.bytes = Some(hd.bytes_written);
            t.count = Some(hd.writes);
            out.push(t);
        }
        if hd.reads > 0 && hd.bytes_read > 0 {
            let mut t = self.base_record(hd, hd.first_read_ts, "download", "read");
            t.bytes = Some(hd.bytes_read);
            t.count = Some(hd.reads);
            out.push(t);
        }
    }

    /// End of capture: emits what open handles and encrypted sessions add up to.
    pub fn finish(&mut self, out: &mut Vec<Transfer>) {
        let mut ids: Vec<u64> = self.handles.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(hd) = self.handles.remove(&id) else { continue };
            match hd.state {
                CreateState::Failed(_) => {}
                CreateState::Pending => {
                    if hd.write_intent {
                        out.push(self.create_record(&hd, false));
                    }
                    self.emit_io(&hd, out);
                }
                CreateState::Ok => self.emit_io(&hd, out),
            }
        }
        self.by_file_id.clear();
        let mut sess: Vec<_> = self.sessions.iter().filter(|(_, s)| s.encrypted_msgs != [0, 0] && s.names_seen == 0).collect();
        sess.sort_by_key(|(_, s)| s.first_encrypted_ts);
        for ((_, sid), s) in sess {
            let Some(conn) = s.conn else { continue };
            let mut t = Transfer::new(s.first_encrypted_ts, "smb2", "unknown", "encrypted", conn);
            t.encrypted = Some(true);
            t.session_id = Some(format!("{sid:#018x}"));
            t.dialect = self.dialects.get(&conn).map(|&d| smb2::dialect::name(d));
            t.messages_to_server = Some(s.encrypted_msgs[0]);
            t.messages_to_client = Some(s.encrypted_msgs[1]);
            t.bytes_to_server = Some(s.encrypted_bytes[0]);
            t.bytes_to_client = Some(s.encrypted_bytes[1]);
            out.push(t);
        }
    }
}
