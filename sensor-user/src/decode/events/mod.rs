//! Kernel records decoded into `SensorEvent`: owned, with wall-clock time, process ids
//! in /proc units and paths made absolute while the process is still there to ask.
use serde::Serialize;
use sensor_common::{
    event::{
        EF_AT_OPEN, EF_EXEC_PREVENTED, EF_WRITE_PREVENTED, EF_FILE_NEWLY_UNTRUSTED, EF_FILE_WAS_UNTRUSTED, EF_HAS_INODE,
        EF_INODE_MAP_FULL,
        EF_NAME2_TRUNCATED, EF_NAME_TRUNCATED, EF_PORT_PROGRAM, EF_TAINTED, EventHeader, EventKind,
        PackedConnection, TCP_SYN_SENT, TaintReason,
    },
    graph,
    maps::InodeKey,
};

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::host::procfs::{self, WallClock};

mod record;
pub use record::KernelEvent;
pub(crate) use record::read as read_record;

#[derive(Clone, Debug, Serialize)]
pub struct FileRef {
    pub dev: u32,
    pub ino: u64,
    pub generation: u32,
}

impl FileRef {
    pub fn key(&self) -> InodeKey {
        InodeKey::new(self.dev, self.ino)
    }
}

/// The TCP connection of a `connection` event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Connection {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub action: ConnectionAction,
}

/// What a process did to a TCP connection in its own context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionAction {
    /// It connected out (`SYN_SENT`).
    Connect,
    /// It closed the connection (`FIN_WAIT1`, `LAST_ACK`).
    Close,
}

impl Connection {
    /// No I/O: addresses arrive IPv4-mapped or IPv6, ports in host order.
    pub fn from_packed(c: &PackedConnection, tcp_state: u32) -> Self {
        let ip = |b: [u8; 16]| IpAddr::V6(Ipv6Addr::from(b)).to_canonical();
        Self {
            local: SocketAddr::new(ip(c.local), c.local_port),
            remote: SocketAddr::new(ip(c.remote), c.remote_port),
            action: if tcp_state == TCP_SYN_SENT { ConnectionAction::Connect } else { ConnectionAction::Close },
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SensorEvent {
    pub ts_ns: u64,
    pub kind: EventKind,
    pub tgid: u32,
    pub tid: u32,
    pub start_ticks: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<(u32, u64)>,
    pub uid: u32,
    pub comm: String,
    pub tainted: bool,
    pub port_program: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileRef>,
    /// The path as given (made absolute), or the descriptor's path for writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path2: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub name_truncated: bool,
    /// `path` is not a whole path of the file: the kernel cut the name, it could not be
    /// made absolute (the process was gone, or its directory is longer than PATH_MAX), or
    /// it no longer names the file and the file's own name could not be found. Recorded
    /// on the edge, never added to the file's paths.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_incomplete: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub file_was_untrusted: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub file_newly_untrusted: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inode_map_full: bool,
    /// exec: the image was flagged and the kernel killed the process before it ran; read
    /// and taint: an interpreter opened a flagged script and was killed before reading it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exec_prevented: bool,
    /// create/write at open: the path is protected and the kernel killed the tainted
    /// process before the open returned.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub write_prevented: bool,
    /// Why the process became tainted (exec and taint events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taint_reason: Option<graph::TaintReason>,
    /// chmod: the new mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// open: the flags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_flags: Option<u32>,
    /// write: how it was seen: a `write`-family call or an open for writing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_via: Option<graph::WriteVia>,
    /// inherited_fds: the files held open for writing when the process became tainted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inherited: Vec<FileRef>,
    /// inherited_fds: how many more did not fit in the record (marked in the kernel all the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inherited_overflow: Option<u32>,
    /// connection: the TCP connection and what the process did with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("ring buffer record of {0} bytes is shorter than an event header")]
    Short(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("{kind:?} record of {len} bytes is shorter than its payload ({want} bytes): kernel programs and sensor of different builds?")]
    Truncated { kind: EventKind, len: usize, want: usize },
    #[error("a net_file record is the network monitor's (`network::events`), not a process event")]
    NetRecord,
}

/// Parses the raw record (no I/O): the header, then the payload its kind names.
pub fn parse(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    let header: EventHeader = record::read(bytes).ok_or(DecodeError::Short(bytes.len()))?;
    let kind = header.kind().ok_or(DecodeError::UnknownKind(header.kind))?;
    let want = kind.record_len();
    if bytes.len() < want {
        return Err(DecodeError::Truncated { kind, len: bytes.len(), want });
    }
    record::payload(kind, header, bytes).ok_or(DecodeError::NetRecord)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Decodes and enriches an event; path resolution asks /proc about the live process.
pub fn decode(event: &KernelEvent, clock: &WallClock) -> SensorEvent {
    let kind = event.kind;
    let flags = event.flags;
    let file = (flags & EF_HAS_INODE != 0).then_some(FileRef {
        dev: event.file.dev,
        ino: event.file.ino,
        generation: event.file.generation,
    });
    let name = (!event.name.is_empty()).then_some(&event.name[..]);
    let name2 = (!event.name2.is_empty()).then_some(&event.name2[..]);
    let pid = event.process.tgid;
    let cut = flags & (EF_NAME_TRUNCATED | EF_NAME2_TRUNCATED) != 0;
    let whole = |p: &Option<String>| p.as_deref().is_some_and(|p| p.starts_with('/'));
    let (path, path2, exact) = match kind {
        EventKind::Write | EventKind::Truncate | EventKind::Chmod if name.is_none() => {
            let fd_path = file.as_ref().and_then(|f| {
                procfs::path_of_fd(pid, event.fd, &f.key()).or_else(|| procfs::path_of_inode(&f.key(), f.generation))
            });
            (fd_path, None, true)
        }
        // A renamed file's one name is the new one.
        EventKind::Rename | EventKind::Link => {
            let from = name.and_then(|n| procfs::resolve(pid, event.fd, n));
            let (to, exact) = match (kind, name2) {
                (EventKind::Rename, Some(n)) => absolute_name(pid, event.new_dirfd, n, file.as_ref()),
                (_, Some(n)) => (procfs::resolve(pid, event.new_dirfd, n), true),
                (_, None) => (None, true),
            };
            let exact = exact && whole(&from) && whole(&to);
            (from, to, exact)
        }
        EventKind::InheritedFds | EventKind::Connection => (None, None, true),
        // The name is gone from the file system; only the dirfd can make it absolute.
        EventKind::Unlink => {
            let p = name.and_then(|n| procfs::resolve(pid, event.fd, n));
            let exact = whole(&p);
            (p, None, exact)
        }
        // exec: the file name as execve(2) got it, relative to the working directory (the
        // kernel sets no dirfd: `fd` is 0 there, which is not the file's directory).
        // For a `#!` script the inode is the interpreter's and the name the script's, so the
        // name is not checked against the inode here (ingest tells the two apart).
        // A process gone before its cwd could be read: the image's own path by its handle,
        // when it has the name executed (so not a script's interpreter).
        EventKind::Exec => {
            let mut p = name.and_then(|n| procfs::resolve(pid, procfs::AT_FDCWD, n));
            // The name resolved is not the image if it now names another file that is no
            // `#!` script (whose inode the kernel does not report): the process changed
            // directory, or the file was replaced, before the name was resolved. A name that
            // no longer exists (a dropper that deleted itself) is kept.
            let named = |p: &Option<String>| {
                p.as_deref().is_some_and(|p| {
                    file.as_ref().is_none_or(|f| {
                        procfs::names_inode(p, &f.key()) || procfs::is_script(p) || !procfs::fs_path(p).is_some_and(|x| x.exists())
                    })
                })
            };
            if !(whole(&p) && named(&p))
                && let (Some(f), Some(n)) = (&file, name)
                && let Some(q) = procfs::path_of_inode(&f.key(), f.generation)
                && sensor_common::graph::path_bytes(&q).is_some_and(|b| b.rsplit(|&c| c == b'/').next() == n.rsplit(|&c| c == b'/').next())
            {
                p = Some(q);
            }
            let exact = whole(&p) && named(&p);
            (p, None, exact)
        }
        _ => match name {
            Some(n) => {
                let (p, exact) = absolute_name(pid, event.fd, n, file.as_ref());
                (p, None, exact)
            }
            None => (None, None, true),
        },
    };
    let taint_reason = match kind {
        EventKind::Exec | EventKind::Taint => match event.reason {
            x if x == TaintReason::ExecUntrusted as u32 => Some(graph::TaintReason::ExecUntrusted),
            x if x == TaintReason::InterpreterRead as u32 => Some(graph::TaintReason::InterpreterRead),
            _ => None,
        },
        _ => None,
    };
    SensorEvent {
        ts_ns: clock.wall_ns(event.ts_boot_ns),
        kind,
        tgid: event.process.tgid,
        tid: event.process.tid,
        start_ticks: procfs::boot_ns_to_ticks(event.process.start_boottime_ns),
        parent: event.parent.filter(|&(tgid, _)| tgid != 0).map(|(tgid, start)| (tgid, procfs::boot_ns_to_ticks(start))),
        uid: event.process.uid,
        comm: lossy(event.process.comm_bytes()),
        tainted: flags & EF_TAINTED != 0,
        port_program: flags & EF_PORT_PROGRAM != 0,
        file,
        path,
        path2,
        name_truncated: cut,
        path_incomplete: cut || !exact,
        file_was_untrusted: flags & EF_FILE_WAS_UNTRUSTED != 0,
        file_newly_untrusted: flags & EF_FILE_NEWLY_UNTRUSTED != 0,
        inode_map_full: flags & EF_INODE_MAP_FULL != 0,
        exec_prevented: matches!(kind, EventKind::Exec | EventKind::Read | EventKind::Taint) && flags & EF_EXEC_PREVENTED != 0,
        write_prevented: matches!(kind, EventKind::Create | EventKind::Write) && flags & EF_WRITE_PREVENTED != 0,
        taint_reason,
        mode: matches!(kind, EventKind::Chmod).then_some(event.mode),
        open_flags: matches!(kind, EventKind::Create).then_some(event.open_flags),
        write_via: matches!(kind, EventKind::Write).then_some(if flags & EF_AT_OPEN != 0 { graph::WriteVia::OpenForWrite } else { graph::WriteVia::Write }),
        inherited: if kind == EventKind::InheritedFds {
            event.inherited.iter().map(|p| FileRef { dev: p.dev, ino: p.ino, generation: p.generation }).collect()
        } else {
            Vec::new()
        },
        inherited_overflow: (kind == EventKind::InheritedFds && event.inherited_overflow > 0).then_some(event.inherited_overflow),
        connection: event.connection.map(|(c, tcp_state)| Connection::from_packed(&c, tcp_state)),
    }
}

/// `name` made absolute against the process's dirfd or working directory, and whether it
/// is exact (absolute). A path that does not name the file now (the process exited and
/// could not be asked, a rename since) gives way to the path of the file itself, found by
/// its handle; failing that, what there is (exact only if absolute).
fn absolute_name(pid: u32, dirfd: i32, name: &[u8], file: Option<&FileRef>) -> (Option<String>, bool) {
    let path = procfs::resolve(pid, dirfd, name);
    let Some(f) = file else {
        let exact = path.as_deref().is_some_and(|p| p.starts_with('/'));
        return (path, exact);
    };
    if let Some(p) = &path
        && p.starts_with('/')
        && procfs::names_inode(p, &f.key())
    {
        return (path, true);
    }
    match procfs::path_of_inode(&f.key(), f.generation) {
        Some(p) => (Some(p), true),
        // Gone since (a dropper that deleted itself): the absolute name it had is kept.
        None => {
            let exact = path.as_deref().is_some_and(|p| p.starts_with('/'));
            (path, exact)
        }
    }
}

#[cfg(test)]
mod tests {
    use sensor_common::event::{Event, ExecPayload};

    use super::*;

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert_eq!(parse(&[0u8; 10]).err(), Some(DecodeError::Short(10)));
        let mut raw = vec![0u8; size_of::<EventHeader>()];
        raw[0] = 200;
        assert_eq!(parse(&raw).err(), Some(DecodeError::UnknownKind(200)));
    }

    #[test]
    fn a_payload_shorter_than_its_kind_is_an_error() {
        // An exec header followed by less than an exec payload.
        let mut raw = vec![0u8; 40];
        raw[0] = EventKind::Exec as u8;
        let want = size_of::<Event<ExecPayload>>();
        assert_eq!(parse(&raw).err(), Some(DecodeError::Truncated { kind: EventKind::Exec, len: 40, want }));
        raw[0] = EventKind::NetFile as u8;
        raw.resize(EventKind::NetFile.record_len(), 0);
        assert_eq!(parse(&raw).err(), Some(DecodeError::NetRecord));
    }

    #[test]
    fn connections_decode_v4_mapped_and_v6() {
        let mut c = PackedConnection { family: 2, local_port: 445, remote_port: 50000, ..Default::default() };
        c.local = "::ffff:10.0.0.1".parse::<Ipv6Addr>().unwrap().octets();
        c.remote = "::ffff:10.0.0.2".parse::<Ipv6Addr>().unwrap().octets();
        let d = Connection::from_packed(&c, sensor_common::event::TCP_LAST_ACK);
        assert_eq!((d.local.to_string().as_str(), d.remote.to_string().as_str(), d.action), ("10.0.0.1:445", "10.0.0.2:50000", ConnectionAction::Close));
        c.family = 10;
        c.remote = "fd00::2".parse::<Ipv6Addr>().unwrap().octets();
        let d = Connection::from_packed(&c, TCP_SYN_SENT);
        assert_eq!((d.remote.to_string().as_str(), d.action), ("[fd00::2]:50000", ConnectionAction::Connect));
    }
}
