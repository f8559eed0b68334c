//! SMB2 across the messages of a capture: dialect per connection, encryption per session,
//! and the transfers the opens add up to. What a TreeId or a FileId names (and whether it
//! is a named pipe) is `sensor_common::session::smb`, the state live attribution uses too;
//! this module adds the byte counts of each open and its records.

use std::collections::HashMap;
use std::net::IpAddr;

use sensor_common::proto::smb2::{self, Command, FileId, Header, Kind};
use sensor_common::proto::utf16;
use sensor_common::session::smb::{Channel, Create, Created, Open, SmbSession};

use super::{ConnKey, ReplayStats, Transfer};

/// Longest name kept (UTF-8 bytes); longer ones are cut and flagged.
pub const NAME_MAX: usize = 4096;

fn channel(conn: ConnKey) -> Channel {
    Channel { client: conn.client, server: conn.server }
}

/// What replay keeps with each open: where and when it was opened, and its I/O.
#[derive(Debug)]
struct Io {
    /// Order of creation: the opens left at the end are reported in this order.
    ordinal: u64,
    conn: ConnKey,
    ts_ns: u64,
    message_id: u64,
    /// Closed by a CLOSE in the same compound as its CREATE, before the response.
    closed: bool,
    first_write_ts: u64,
    writes: u64,
    bytes_written: u64,
    first_read_ts: u64,
    reads: u64,
    bytes_read: u64,
}

impl Io {
    fn new(ordinal: &mut u64, conn: ConnKey, ts_ns: u64, message_id: u64) -> Io {
        *ordinal += 1;
        Io { ordinal: *ordinal, conn, ts_ns, message_id, closed: false, first_write_ts: 0, writes: 0, bytes_written: 0, first_read_ts: 0, reads: 0, bytes_read: 0 }
    }
}

/// The open a READ waiting for its response reads.
#[derive(Debug, Clone, Copy)]
enum ReadOf {
    File(u64, FileId),
    /// The CREATE (by MessageId) earlier in the READ's compound.
    Create(u64),
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
    opens: SmbSession<Io>,
    reads: HashMap<(ConnKey, u64), ReadOf>,
    /// CREATEs (connection, MessageId) that a READ of their compound reads, with their
    /// (SessionId, FileId) once answered: the READ's response comes after the CREATE's.
    related_reads: HashMap<(ConnKey, u64), Option<(u64, FileId)>>,
    sessions: HashMap<(IpAddr, u64), Session>,
    ordinal: u64,
}

/// Per-message context for a compound chain: what related PDUs inherit.
#[derive(Default)]
struct Chain {
    session: u64,
    tree: u32,
    /// MessageId of the CREATE earlier in this chain (for FileId all 0xFF).
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

    /// The open a WRITE or READ names: the CREATE of its compound (FileId all 0xFF), else
    /// the one under its FileId, else a nameless one (opened before the capture began).
    fn open_for(&mut self, conn: ConnKey, ts_ns: u64, session: u64, tree: u32, fid: FileId, chain: &Chain) -> Option<(&mut Open<Io>, ReadOf)> {
        if let Some(mid) = chain.last_create.filter(|_| fid.is_related()) {
            return self.opens.pending_create(channel(conn), mid).map(|open| (open, ReadOf::Create(mid)));
        }
        let ordinal = &mut self.ordinal;
        let open = self.opens.file_or_adopt(conn.server.ip(), session, tree, fid, || Io::new(ordinal, conn, ts_ns, 0));
        Some((open, ReadOf::File(session, fid)))
    }

    #[allow(clippy::too_many_arguments)]
    fn request(&mut self, conn: ConnKey, ts_ns: u64, h: Header<&[u8]>, session: u64, tree: u32, chain: &mut Chain, out: &mut Vec<Transfer>, stats: &mut ReplayStats) {
        let bytes = h.as_bytes();
        match h.command() {
            Command::TreeConnect => match smb2::TreeConnectRequest::new_checked(bytes).and_then(|t| t.path().map(|p| utf16::to_string(p, NAME_MAX).0)) {
                Ok(path) => self.opens.tree_connect_request(channel(conn), h.message_id(), path),
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
                let (name, name_truncated) = match c.name() {
                    Ok(n) => utf16::to_string(n, NAME_MAX),
                    Err(_) => {
                        stats.parse_errors += 1;
                        match c.name_partial() {
                            Ok((n, _)) => (utf16::to_string(n, NAME_MAX).0, true),
                            Err(_) => (String::new(), true),
                        }
                    }
                };
                stats.smb_creates += 1;
                if let Some(s) = self.sessions.get_mut(&(conn.server.ip(), session)) {
                    s.names_seen += 1;
                }
                let create = Create {
                    session,
                    tree,
                    name,
                    name_truncated,
                    access: c.desired_access(),
                    disposition: c.create_disposition(),
                    options: c.create_options(),
                    write_intent: c.has_write_intent(),
                };
                let io = Io::new(&mut self.ordinal, conn, ts_ns, h.message_id());
                self.opens.create_request(channel(conn), h.message_id(), create, io);
                chain.last_create = Some(h.message_id());
            }
            Command::Write => match smb2::WriteRequest::new_checked(bytes) {
                Ok(w) => {
                    let Some((open, _)) = self.open_for(conn, ts_ns, session, tree, w.file_id(), chain) else { return };
                    let io = &mut open.data;
                    if io.writes == 0 {
                        io.first_write_ts = ts_ns;
                    }
                    io.writes += 1;
                    io.bytes_written += w.length() as u64;
                }
                Err(_) => stats.parse_errors += 1,
            },
            Command::Read => match smb2::ReadRequest::new_checked(bytes) {
                Ok(r) => {
                    let Some((open, of)) = self.open_for(conn, ts_ns, session, tree, r.file_id(), chain) else { return };
                    if open.data.reads == 0 {
                        open.data.first_read_ts = ts_ns;
                    }
                    if let ReadOf::Create(create) = of {
                        self.related_reads.entry((conn, create)).or_default();
                    }
                    self.reads.insert((conn, h.message_id()), of);
                }
                Err(_) => stats.parse_errors += 1,
            },
            Command::Close => match smb2::CloseRequest::new_checked(bytes) {
                Ok(c) => {
                    let fid = c.file_id();
                    if fid.is_related() {
                        // Its CREATE is still unanswered: it is reported once it is.
                        if let Some(open) = chain.last_create.and_then(|mid| self.opens.pending_create(channel(conn), mid)) {
                            open.data.closed = true;
                        }
                    } else if let Some(open) = self.opens.close(conn.server.ip(), session, fid) {
                        emit_io(&self.dialects, &open, out);
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
        let ok = status == smb2::status::SUCCESS || status == smb2::status::BUFFER_OVERFLOW;
        let mid = h.message_id();
        match h.command() {
            Command::Negotiate => {
                if let Ok(n) = smb2::NegotiateResponse::new_checked(bytes) {
                    self.dialects.insert(conn, n.dialect_revision());
                }
            }
            Command::SessionSetup => {
                if let Ok(s) = smb2::SessionSetupResponse::new_checked(bytes)
                    && s.encrypts_data()
                {
                    self.sessions.entry((conn.server.ip(), h.session_id())).or_default().conn.get_or_insert(conn);
                }
            }
            Command::TreeConnect => {
                if ok && let Some(tree) = h.tree_id() {
                    self.opens.tree_connect_response(channel(conn), h.session_id(), mid, tree);
                }
            }
            Command::Create if self.opens.pending_create(channel(conn), mid).is_some() => {
                let fid = if ok { smb2::CreateResponse::new_checked(bytes).ok().map(|c| c.file_id()) } else { None };
                if ok && fid.is_none() {
                    stats.parse_errors += 1;
                }
                match self.opens.create_response(channel(conn), mid, fid) {
                    Created::Opened { open, replaced } => {
                        if open.write_intent && !open.pipe {
                            out.push(create_record(&self.dialects, open, true));
                        }
                        let (session, closed) = (open.session, open.data.closed);
                        if let (Some(slot), Some(fid)) = (self.related_reads.get_mut(&(conn, mid)), fid) {
                            *slot = Some((session, fid));
                        }
                        // An older open under the same key is stale (closed without us seeing it).
                        if let Some(old) = replaced {
                            emit_io(&self.dialects, &old, out);
                        }
                        if closed && let Some(open) = fid.and_then(|fid| self.opens.close(conn.server.ip(), session, fid)) {
                            emit_io(&self.dialects, &open, out);
                        }
                    }
                    Created::Failed(_) => stats.smb_failed_creates += 1,
                    Created::Unknown => {}
                }
            }
            Command::Read => {
                let Some(of) = self.reads.remove(&(conn, mid)) else { return };
                let (true, Ok(r)) = (ok, smb2::ReadResponse::new_checked(bytes)) else { return };
                let open = match of {
                    ReadOf::File(session, fid) => self.opens.file(conn.server.ip(), session, fid),
                    ReadOf::Create(create) => match self.related_reads.get(&(conn, create)) {
                        Some(&Some((session, fid))) => self.opens.file(conn.server.ip(), session, fid),
                        _ => self.opens.pending_create(channel(conn), create),
                    },
                };
                if let Some(open) = open {
                    open.data.reads += 1;
                    open.data.bytes_read += r.data_length() as u64;
                }
            }
            _ => {}
        }
    }

    /// End of capture: emits what open handles and encrypted sessions add up to.
    pub fn finish(&mut self, out: &mut Vec<Transfer>) {
        let mut left = self.opens.drain();
        left.sort_by_key(|(open, _)| open.data.ordinal);
        for (open, answered) in left {
            if !answered && open.write_intent && !open.pipe {
                out.push(create_record(&self.dialects, &open, false));
            }
            emit_io(&self.dialects, &open, out);
        }
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

fn base_record(dialects: &HashMap<ConnKey, u16>, open: &Open<Io>, ts_ns: u64, direction: &'static str, verb: &'static str) -> Transfer {
    let mut t = Transfer::new(ts_ns, "smb2", direction, verb, open.data.conn);
    t.name = open.name.clone();
    t.name_truncated = open.name_truncated;
    t.share = open.share.clone();
    t.session_id = Some(format!("{:#018x}", open.session));
    t.tree_id = Some(open.tree);
    t.file_id = open.file_id.map(|f| format!("{:016x}{:016x}", f.persistent, f.volatile));
    t.dialect = dialects.get(&open.data.conn).map(|&d| smb2::dialect::name(d));
    t.encrypted = Some(false);
    t
}

fn create_record(dialects: &HashMap<ConnKey, u16>, open: &Open<Io>, answered: bool) -> Transfer {
    let mut t = base_record(dialects, open, open.data.ts_ns, "upload", "create");
    t.disposition = Some(smb2::disposition::name(open.disposition));
    t.access = Some(format!("{:#010x}", open.access));
    t.create_options = Some(format!("{:#010x}", open.options));
    t.message_id = Some(open.data.message_id);
    if !answered {
        t.status = Some("unanswered".into());
    }
    t
}

/// The WRITE and READ totals of an open that is done (closed, replaced, or the capture
/// ended). A named pipe's are RPC, not file content: none.
fn emit_io(dialects: &HashMap<ConnKey, u16>, open: &Open<Io>, out: &mut Vec<Transfer>) {
    if open.pipe {
        return;
    }
    let io = &open.data;
    if io.writes > 0 {
        let mut t = base_record(dialects, open, io.first_write_ts, "upload", "write");
        t.bytes = Some(io.bytes_written);
        t.count = Some(io.writes);
        out.push(t);
    }
    if io.reads > 0 && io.bytes_read > 0 {
        let mut t = base_record(dialects, open, io.first_read_ts, "download", "read");
        t.bytes = Some(io.bytes_read);
        t.count = Some(io.reads);
        out.push(t);
    }
}
