//! Offline replay of captures through the same parsers the TC program uses (issue 3).
//!
//! `vtrail-sensor replay FILE [--json]` reads a pcap or pcapng file (gzip allowed, detected
//! by magic) and prints one line per file transfer it finds in SMB2 (TCP 445 and 139) and
//! FTP (control on TCP 21, data connections found from PORT/EPRT/227/229):
//!
//! ```text
//! capture -> capture.rs (pcap/pcapng by pcap-parser, gzip by flate2) -> link.rs (Ethernet+VLAN,
//!   SLL, SLL2, NULL/LOOP, raw IP; IPv4/IPv6; TCP; etherparse) -> tcp.rs (per-direction
//!   reassembly) -> NBSS records / FTP lines
//!   -> sensor_common::proto::{nbss, smb2, ftp} -> smb.rs / ftp.rs (session state) -> Transfer
//! ```
//!
//! # What counts as a transfer
//!
//! **SMB2** (`proto: "smb2"`):
//! - `verb: "create"`, `direction: "upload"`: a CREATE request *with write intent*, emitted
//!   when its response reports success (a CREATE that fails creates nothing; one whose
//!   response is not in the capture is emitted at the end with `status: "unanswered"`).
//!   Write intent ([`smb2::create_has_write_intent`], shared with the TC program): not a
//!   directory open (`FILE_DIRECTORY_FILE`), and either a disposition that creates or
//!   replaces content (SUPERSEDE, CREATE, OVERWRITE, OVERWRITE_IF) or a DesiredAccess with
//!   `FILE_WRITE_DATA`, `FILE_APPEND_DATA`, `GENERIC_WRITE` or `GENERIC_ALL`.
//!   `MAXIMUM_ALLOWED` alone does not count (Explorer asks for it on almost every open), nor
//!   do attribute-only or delete opens. Read-only opens are not reported by themselves.
//! - `verb: "write"`, `direction: "upload"`: the WRITE requests to one open file, summed
//!   (`bytes` = sum of WRITE lengths, `count` = number of WRITEs), emitted when the file is
//!   closed (CLOSE, also a related CLOSE in a compound) or at the end of the capture.
//! - `verb: "read"`, `direction: "download"`: the READs of one open file, summed the same
//!   way from the READ *responses'* DataLength; reads that returned nothing are not reported.
//! - Names come from the CREATE, looked up by (server, SessionId, FileId); a FileId of all
//!   0xFF in a related compound PDU means the CREATE earlier in the same chain. A WRITE or
//!   READ to a file opened before the capture began is reported without a name (`file_id`
//!   still identifies it). `share` is the TREE_CONNECT path for the TreeId, when seen.
//! - `verb: "encrypted"`, `direction: "unknown"`, `encrypted: true`: one line per SMB3
//!   session whose messages were sent under a transform header (0xFD 'SMB') and in which no
//!   CREATE was readable, with the message and byte counts each way. The names in such a
//!   session cannot be seen; the sensor then falls back to attributing by process.
//!
//! **FTP** (`proto: "ftp"`): STOR, APPE, STOU (`direction: "upload"`) and RETR
//! (`"download"`), emitted when the final reply arrives and only if it is 2xx; `verb` is
//! the command, `name` its argument (for STOU the name from `150/125 FILE: name`, with the
//! argument, if any, in `requested_name`), `path` the name resolved against the working
//! directory (tracked from CWD/CDUP/PWD replies), `bytes` what the data connection
//! carried, `data_mode` active or passive. The uploader is the control connection's client.
//!
//! Every record has `ts` (seconds since the epoch, of the request), `client`,
//! `client_port`, `server`, `server_port`. Output is sorted by `ts`.

pub mod capture;
pub mod ftp;
pub mod link;
pub mod smb;
pub mod tcp;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sensor_common::proto::{nbss, smb2};
use serde::Serialize;

use self::capture::CaptureReader;
use self::link::Skip;
use self::tcp::Stream;

/// A TCP connection, oriented: `client` is the side that talks to the service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// One transfer, one output line.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Transfer {
    /// Seconds since the Unix epoch (of the request that started the transfer).
    pub ts: f64,
    #[serde(skip)]
    pub ts_ns: u64,
    /// "smb2" or "ftp".
    pub proto: &'static str,
    /// "upload" (client to server), "download" (server to client), "unknown" (encrypted).
    pub direction: &'static str,
    /// SMB2: "create", "write", "read", "encrypted". FTP: the command ("STOR", ...).
    pub verb: String,
    pub client: String,
    pub client_port: u16,
    pub server: String,
    pub server_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub name_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disposition: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_options: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Number of WRITE/READ requests summed into `bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_mode: Option<&'static str>,
    /// FTP reply code, or "unanswered" when the capture ends before the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_to_server: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_to_client: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_to_server: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_to_client: Option<u64>,
}

impl Transfer {
    pub fn new(ts_ns: u64, proto: &'static str, direction: &'static str, verb: &str, conn: ConnKey) -> Self {
        Transfer {
            ts: (ts_ns / 1000) as f64 / 1e6,
            ts_ns,
            proto,
            direction,
            verb: verb.to_string(),
            client: conn.client.ip().to_string(),
            client_port: conn.client.port(),
            server: conn.server.ip().to_string(),
            server_port: conn.server.port(),
            name: None,
            name_truncated: false,
            path: None,
            share: None,
            disposition: None,
            access: None,
            create_options: None,
            bytes: None,
            count: None,
            encrypted: None,
            dialect: None,
            session_id: None,
            tree_id: None,
            message_id: None,
            file_id: None,
            requested_name: None,
            cwd: None,
            user: None,
            data_mode: None,
            status: None,
            messages_to_server: None,
            messages_to_client: None,
            bytes_to_server: None,
            bytes_to_client: None,
        }
    }

    /// The human-readable line: `TIME PROTO DIRECTION VERB CLIENT -> SERVER:PORT key=value...`.
    pub fn to_text(&self) -> String {
        let server = if self.server.contains(':') { format!("[{}]", self.server) } else { self.server.clone() };
        let mut s = format!(
            "{} {} {} {} {} -> {}:{}",
            rfc3339(self.ts_ns),
            self.proto,
            self.direction,
            self.verb,
            self.client,
            server,
            self.server_port
        );
        // Strings are quoted (Rust escapes, so a name with spaces or control bytes stays
        // one field); numbers and flags are not.
        let mut kv = |k: &str, v: &str| {
            s.push(' ');
            s.push_str(k);
            s.push('=');
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'/') && k != "name" && k != "path" {
                s.push_str(v);
            } else {
                s.push_str(&format!("{v:?}"));
            }
        };
        if let Some(v) = &self.name {
            kv("name", v);
        }
        if self.name_truncated {
            kv("name_truncated", "true");
        }
        if let Some(v) = &self.path {
            kv("path", v);
        }
        if let Some(v) = &self.requested_name {
            kv("requested", v);
        }
        if let Some(v) = &self.share {
            kv("share", v);
        }
        if let Some(v) = self.disposition {
            kv("disposition", v);
        }
        if let Some(v) = &self.access {
            kv("access", v);
        }
        if let Some(v) = self.bytes {
            kv("bytes", &v.to_string());
        }
        if let Some(v) = &self.user {
            kv("user", v);
        }
        if let Some(v) = self.dialect {
            kv("dialect", v);
        }
        if self.encrypted == Some(true) {
            kv("encrypted", "true");
            if let Some(v) = &self.session_id {
                kv("session", v);
            }
            if let (Some(a), Some(b)) = (self.messages_to_server, self.messages_to_client) {
                kv("messages", &format!("{a}/{b}"));
            }
        }
        if let Some(v) = &self.status {
            kv("status", v);
        }
        s
    }
}

/// `2015-06-22T16:39:55.123456Z` (UTC, microseconds).
pub fn rfc3339(ts_ns: u64) -> String {
    let secs = ts_ns / 1_000_000_000;
    let micros = (ts_ns % 1_000_000_000) / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// What a replay saw, for the summary line and for tests.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ReplayStats {
    /// Capture bytes read (after decompression).
    pub capture_bytes: u64,
    /// The capture ended inside a record (or its data could not be read further): why.
    /// Everything before that point was replayed.
    pub truncated: Option<String>,
    pub frames: u64,
    pub tcp_segments: u64,
    pub skipped_unsupported_link: u64,
    pub skipped_not_ip: u64,
    pub skipped_not_tcp: u64,
    pub skipped_fragments: u64,
    pub skipped_truncated: u64,
    pub tcp_flows: u64,
    /// Holes in a TCP stream that never filled (bytes lost, parser resynchronized).
    pub tcp_gaps: u64,
    pub smb_messages: u64,
    pub smb_pdus: u64,
    pub smb_creates: u64,
    pub smb_failed_creates: u64,
    pub smb_encrypted: u64,
    pub smb_compressed: u64,
    pub smb1: u64,
    /// Compound chains cut at `smb2::MAX_PDUS`.
    pub smb_chain_limit: u64,
    pub ftp_lines: u64,
    pub ftp_failed_transfers: u64,
    pub parse_errors: u64,
    pub transfers: u64,
    #[serde(skip)]
    pub elapsed: Duration,
}

impl ReplayStats {
    /// Capture MB (10^6 bytes) per second of replay.
    pub fn mb_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.capture_bytes as f64 / 1e6 / s } else { 0.0 }
    }
}

/// Which ports carry what.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub smb_ports: Vec<u16>,
    pub ftp_ports: Vec<u16>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions { smb_ports: vec![445, 139], ftp_ports: vec![sensor_common::proto::ftp::PORT] }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlowKind {
    Smb,
    FtpControl,
    FtpData(ConnKey),
}

/// Reassembled bytes waiting to form whole NBSS records or FTP lines.
#[derive(Debug, Default)]
struct AppBuf {
    data: Vec<u8>,
    start: usize,
    /// After a hole: skip to something that looks like a record start.
    resync: bool,
}

#[derive(Debug)]
struct Flow {
    kind: FlowKind,
    streams: [Stream; 2],
    bufs: [AppBuf; 2],
    fin: [bool; 2],
}

/// Runs frames through link decoding, TCP reassembly and the protocol trackers.
pub struct Replayer {
    opts: ReplayOptions,
    flows: HashMap<ConnKey, Flow>,
    smb: smb::SmbTracker,
    ftp: ftp::FtpTracker,
    transfers: Vec<Transfer>,
    stats: ReplayStats,
}

impl Default for Replayer {
    fn default() -> Self {
        Self::new(ReplayOptions::default())
    }
}

impl Replayer {
    pub fn new(opts: ReplayOptions) -> Self {
        Replayer {
            opts,
            flows: HashMap::new(),
            smb: smb::SmbTracker::default(),
            ftp: ftp::FtpTracker::default(),
            transfers: Vec::new(),
            stats: ReplayStats::default(),
        }
    }

    /// One captured frame.
    pub fn frame(&mut self, ts_ns: u64, linktype: u32, data: &[u8]) {
        self.stats.frames += 1;
        match link::decode(linktype, data) {
            Ok(seg) => {
                self.stats.tcp_segments += 1;
                self.segment(ts_ns, seg);
            }
            Err(Skip::UnsupportedLinkType(_)) => self.stats.skipped_unsupported_link += 1,
            Err(Skip::NotIp) => self.stats.skipped_not_ip += 1,
            Err(Skip::NotTcp) => self.stats.skipped_not_tcp += 1,
            Err(Skip::Fragment) => self.stats.skipped_fragments += 1,
            Err(Skip::Truncated) => self.stats.skipped_truncated += 1,
        }
    }

    /// Orients a segment and says what its connection carries; `None` for other traffic.
    fn classify(&self, seg: &link::Segment) -> Option<(ConnKey, bool, FlowKind)> {
        let fwd = ConnKey { client: seg.src, server: seg.dst };
        let rev = ConnKey { client: seg.dst, server: seg.src };
        if let Some(f) = self.flows.get(&fwd) {
            return Some((fwd, true, f.kind));
        }
        if let Some(f) = self.flows.get(&rev) {
            return Some((rev, false, f.kind));
        }
        let (sp, dp) = (seg.src.port(), seg.dst.port());
        if self.opts.smb_ports.contains(&dp) {
            return Some((fwd, true, FlowKind::Smb));
        }
        if self.opts.smb_ports.contains(&sp) {
            return Some((rev, false, FlowKind::Smb));
        }
        if self.opts.ftp_ports.contains(&dp) {
            return Some((fwd, true, FlowKind::FtpControl));
        }
        if self.opts.ftp_ports.contains(&sp) {
            return Some((rev, false, FlowKind::FtpControl));
        }
        let ctrl = self.ftp.data_owner(seg.dst, seg.src)?;
        Some((fwd, true, FlowKind::FtpData(ctrl)))
    }

    fn segment(&mut self, ts_ns: u64, seg: link::Segment) {
        let Some((key, from_client, kind)) = self.classify(&seg) else { return };
        let flow = self.flows.entry(key).or_insert_with(|| {
            self.stats.tcp_flows += 1;
            Flow { kind, streams: Default::default(), bufs: Default::default(), fin: [false; 2] }
        });
        let dir = if from_client { 0 } else { 1 };
        let syn = seg.syn;
        match flow.kind {
            FlowKind::FtpData(ctrl) => {
                let d = flow.streams[dir].accept(seg.seq, syn, seg.payload, None);
                if d.gap {
                    self.stats.tcp_gaps += 1;
                }
                if d.bytes > 0 {
                    self.ftp.data(ctrl, d.bytes as u64);
                }
            }
            FlowKind::Smb | FlowKind::FtpControl => {
                let buf = &mut flow.bufs[dir];
                let d = flow.streams[dir].accept(seg.seq, syn, seg.payload, Some(&mut buf.data));
                if let Some(at) = d.gap_at {
                    self.stats.tcp_gaps += 1;
                    buf.data.drain(..at.min(buf.data.len()));
                    buf.start = 0;
                    buf.resync = true;
                }
                if d.bytes > 0 || d.gap {
                    drain(flow.kind, buf, key, from_client, ts_ns, &mut self.smb, &mut self.ftp, &mut self.transfers, &mut self.stats);
                }
            }
        }
        if seg.fin {
            flow.fin[dir] = true;
        }
        if (seg.rst || flow.fin == [true, true])
            && let Some(flow) = self.flows.remove(&key) {
                self.close_flow(key, flow, ts_ns);
            }
    }

    /// Delivers what a flow still holds (skipping holes) and forgets it.
    fn close_flow(&mut self, key: ConnKey, mut flow: Flow, ts_ns: u64) {
        for dir in 0..2 {
            let from_client = dir == 0;
            match flow.kind {
                FlowKind::FtpData(ctrl) => {
                    let d = flow.streams[dir].flush(None);
                    if d.bytes > 0 {
                        self.ftp.data(ctrl, d.bytes as u64);
                    }
                }
                _ => {
                    let buf = &mut flow.bufs[dir];
                    let d = flow.streams[dir].flush(Some(&mut buf.data));
                    if let Some(at) = d.gap_at {
                        self.stats.tcp_gaps += 1;
                        buf.data.drain(..at.min(buf.data.len()));
                        buf.start = 0;
                        buf.resync = true;
                    }
                    drain(flow.kind, buf, key, from_client, ts_ns, &mut self.smb, &mut self.ftp, &mut self.transfers, &mut self.stats);
                    // An FTP line without its line ending at the close still counts.
                    if flow.kind == FlowKind::FtpControl
                        && let Some(rest) = buf.data.get(buf.start..).filter(|r| !r.is_empty()) {
                            self.ftp.line(key, from_client, ts_ns, rest, &mut self.transfers, &mut self.stats);
                        }
                }
            }
        }
    }

    /// Ends the replay: flushes every flow and tracker; returns the transfers sorted by time.
    pub fn finish(mut self) -> (Vec<Transfer>, ReplayStats) {
        let mut keys: Vec<ConnKey> = self.flows.keys().copied().collect();
        keys.sort();
        // Control connections last, so their data connections' bytes are counted first.
        keys.sort_by_key(|k| self.flows.get(k).map(|f| f.kind == FlowKind::FtpControl));
        for k in keys {
            if let Some(f) = self.flows.remove(&k) {
                self.close_flow(k, f, 0);
            }
        }
        self.smb.finish(&mut self.transfers);
        self.ftp.finish(&mut self.transfers);
        let mut t = std::mem::take(&mut self.transfers);
        t.sort_by_key(|x| x.ts_ns);
        self.stats.transfers = t.len() as u64;
        (t, self.stats)
    }
}

/// Does `b` start like an NBSS session message carrying an SMB message?
fn looks_like_record(b: &[u8]) -> bool {
    b.first() == Some(&0)
        && b.get(5..8) == Some(b"SMB")
        && matches!(b.get(4), Some(0xfe) | Some(0xfd) | Some(0xfc) | Some(0xff))
}

/// Hands every complete NBSS record or FTP line in `buf` to its tracker.
#[allow(clippy::too_many_arguments)]
fn drain(
    kind: FlowKind,
    buf: &mut AppBuf,
    key: ConnKey,
    from_client: bool,
    ts_ns: u64,
    smb: &mut smb::SmbTracker,
    ftp: &mut ftp::FtpTracker,
    out: &mut Vec<Transfer>,
    stats: &mut ReplayStats,
) {
    match kind {
        FlowKind::Smb => loop {
            let avail = buf.data.get(buf.start..).unwrap_or(&[]);
            if buf.resync {
                match (0..avail.len().saturating_sub(7)).find(|&i| looks_like_record(&avail[i..])) {
                    Some(i) => {
                        buf.start += i;
                        buf.resync = false;
                        continue;
                    }
                    None => {
                        buf.start += avail.len().saturating_sub(7);
                        break;
                    }
                }
            }
            let Ok(rec) = nbss::Packet::new_checked(avail) else { break };
            match rec.msg_type() {
                nbss::MessageType::SessionMessage
                    // Check the magic early so a desynchronized stream does not wait for a
                    // bogus 16 MiB record.
                    if avail.len() >= 8 && !looks_like_record(avail) => {
                        stats.parse_errors += 1;
                        buf.resync = true;
                        buf.start += 1;
                        continue;
                    }
                nbss::MessageType::Unknown(_) => {
                    stats.parse_errors += 1;
                    buf.resync = true;
                    buf.start += 1;
                    continue;
                }
                _ => {}
            }
            if !rec.is_complete() {
                break;
            }
            if rec.msg_type() == nbss::MessageType::SessionMessage {
                smb.message(key, from_client, ts_ns, rec.payload(), out, stats);
            }
            buf.start += rec.total_len();
        },
        FlowKind::FtpControl => loop {
            let avail = buf.data.get(buf.start..).unwrap_or(&[]);
            match avail.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    ftp.line(key, from_client, ts_ns, &avail[..=nl], out, stats);
                    buf.start += nl + 1;
                }
                None => {
                    if avail.len() > ftp::MAX_LINE {
                        stats.parse_errors += 1;
                        buf.start = buf.data.len();
                    }
                    break;
                }
            }
        },
        FlowKind::FtpData(_) => {}
    }
    if buf.start >= buf.data.len() {
        buf.data.clear();
        buf.start = 0;
    } else if buf.start > (1 << 16) {
        buf.data.drain(..buf.start);
        buf.start = 0;
    }
}

/// Replays a capture from any reader into transfers.
pub fn replay_reader(input: Box<dyn Read>, opts: ReplayOptions) -> Result<(Vec<Transfer>, ReplayStats)> {
    let started = Instant::now();
    let mut reader = CaptureReader::new(input)?;
    let mut r = Replayer::new(opts);
    let mut last_ts = 0;
    let mut cut = None;
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                // pcapng SPB frames have no timestamp: give them the previous one.
                let ts = if f.ts_ns == 0 { last_ts } else { f.ts_ns };
                last_ts = ts;
                r.frame(ts, f.linktype, f.data);
            }
            Ok(None) => break,
            // A capture cut short (a copy in progress, a full disk): what came before the
            // cut is still replayed, and the cut is reported.
            Err(e) => {
                cut = Some(format!("{e:#}"));
                break;
            }
        }
    }
    let (t, mut stats) = r.finish();
    stats.truncated = cut;
    stats.capture_bytes = reader.bytes_read();
    stats.elapsed = started.elapsed();
    Ok((t, stats))
}

/// Replays the capture at `path` into transfers (for callers that want the records).
pub fn transfers_from_file(path: &Path) -> Result<(Vec<Transfer>, ReplayStats)> {
    let f = File::open(path).with_context(|| format!("opening capture {}", path.display()))?;
    replay_reader(Box::new(f), ReplayOptions::default()).with_context(|| format!("replaying capture {}", path.display()))
}

/// `vtrail-sensor replay FILE [--json]`: writes one transfer per line to `out`, as text or
/// as one JSON object per line.
pub fn replay_file(path: &Path, out: &mut dyn Write, json: bool) -> Result<ReplayStats> {
    let (transfers, stats) = transfers_from_file(path)?;
    write_transfers(&transfers, out, json)?;
    Ok(stats)
}

/// Writes transfers one per line.
pub fn write_transfers(transfers: &[Transfer], out: &mut dyn Write, json: bool) -> Result<()> {
    for t in transfers {
        if json {
            serde_json::to_writer(&mut *out, t).context("writing a JSON record")?;
            out.write_all(b"\n").context("writing output")?;
        } else {
            writeln!(out, "{}", t.to_text()).context("writing output")?;
        }
    }
    out.flush().context("flushing output")?;
    Ok(())
}

// Keep the type reachable for callers that match on it.
pub use smb2::create_has_write_intent;
