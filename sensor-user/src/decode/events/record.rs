//! A process event's ring-buffer record (`Event<T>`, one payload type per kind) read into
//! one owned shape, so that `decode` asks each field by its meaning, whatever payload
//! carried it.
use sensor_common::event::{
    ChangePayload, ConnectionPayload, Event, EventHeader, EventKind, ExecPayload, ExitPayload, FileId,
    ForkPayload, InheritedFdsPayload, OpenPayload, PackedConnection, Process, RenamePayload,
    TaintPayload, WritePayload,
};

/// A process event as the kernel sent it. Fields its kind's payload does not have are
/// empty (0, `None`, no bytes).
#[derive(Clone, Debug)]
pub struct KernelEvent {
    pub kind: EventKind,
    /// `EF_*`.
    pub flags: u32,
    pub ts_boot_ns: u64,
    pub process: Process,
    /// Fork: the parent's tgid and start time.
    pub parent: Option<(u32, u64)>,
    /// Valid with `EF_HAS_INODE`.
    pub file: FileId,
    /// The descriptor the event is about (write, ftruncate, fchmod: no name), or the
    /// directory `name` is relative to.
    pub fd: i32,
    /// Rename, link: the directory `name2` is relative to.
    pub new_dirfd: i32,
    /// Exec, taint: a `TaintReason` (0: none).
    pub reason: u32,
    /// Chmod: the new mode.
    pub mode: u32,
    /// Create: the open flags.
    pub open_flags: u32,
    pub name: Vec<u8>,
    /// Rename, link: the new name.
    pub name2: Vec<u8>,
    pub inherited: Vec<FileId>,
    /// InheritedFds: files marked in the kernel that did not fit in the record.
    pub inherited_overflow: u32,
    /// Connection: the connection and the TCP state it entered.
    pub connection: Option<(PackedConnection, u32)>,
}

impl KernelEvent {
    fn new(kind: EventKind, header: EventHeader, process: Process) -> Self {
        Self {
            kind,
            flags: header.flags,
            ts_boot_ns: header.ts_boot_ns,
            process,
            parent: None,
            file: FileId::default(),
            fd: 0,
            new_dirfd: 0,
            reason: 0,
            mode: 0,
            open_flags: 0,
            name: Vec::new(),
            name2: Vec::new(),
            inherited: Vec::new(),
            inherited_overflow: 0,
            connection: None,
        }
    }
}

/// `T` from the first bytes of `bytes`, if they hold one.
pub(crate) fn read<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; `T` is plain old data (any bit pattern is valid).
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

/// The payload of a `kind` record (`bytes` holds `kind.record_len()` bytes at least).
/// `None` for `NetFile`, which is no process event.
pub(super) fn payload(kind: EventKind, header: EventHeader, bytes: &[u8]) -> Option<KernelEvent> {
    fn body<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
        read::<Event<T>>(bytes).map(|e| e.payload)
    }
    Some(match kind {
        EventKind::Exec => {
            let p: ExecPayload = body(bytes)?;
            KernelEvent { file: p.file, reason: p.reason, name: p.name.as_bytes().to_vec(), ..KernelEvent::new(kind, header, p.process) }
        }
        EventKind::Fork => {
            let p: ForkPayload = body(bytes)?;
            KernelEvent { parent: Some((p.parent_tgid, p.parent_start_boottime_ns)), ..KernelEvent::new(kind, header, p.process) }
        }
        EventKind::Exit => KernelEvent::new(kind, header, body::<ExitPayload>(bytes)?.process),
        EventKind::Create | EventKind::Read => {
            let p: OpenPayload = body(bytes)?;
            KernelEvent {
                file: p.file,
                fd: p.dirfd,
                open_flags: p.open_flags,
                name: p.name.as_bytes().to_vec(),
                ..KernelEvent::new(kind, header, p.process)
            }
        }
        EventKind::Taint => {
            let p: TaintPayload = body(bytes)?;
            KernelEvent {
                file: p.file,
                fd: p.dirfd,
                reason: p.reason,
                name: p.name.as_bytes().to_vec(),
                ..KernelEvent::new(kind, header, p.process)
            }
        }
        EventKind::Write => {
            let p: WritePayload = body(bytes)?;
            KernelEvent { file: p.file, fd: p.fd, ..KernelEvent::new(kind, header, p.process) }
        }
        EventKind::Unlink | EventKind::Chmod | EventKind::Truncate => {
            let p: ChangePayload = body(bytes)?;
            KernelEvent {
                file: p.file,
                fd: p.fd,
                mode: p.mode,
                name: p.name.as_bytes().to_vec(),
                ..KernelEvent::new(kind, header, p.process)
            }
        }
        EventKind::Rename | EventKind::Link => {
            let p: RenamePayload = body(bytes)?;
            KernelEvent {
                fd: p.dirfd,
                new_dirfd: p.new_dirfd,
                name: p.name.as_bytes().to_vec(),
                name2: p.new_name.as_bytes().to_vec(),
                ..KernelEvent::new(kind, header, p.process)
            }
        }
        EventKind::InheritedFds => {
            let p: InheritedFdsPayload = body(bytes)?;
            KernelEvent { inherited: p.files().to_vec(), inherited_overflow: p.overflow, ..KernelEvent::new(kind, header, p.process) }
        }
        EventKind::Connection => {
            let p: ConnectionPayload = body(bytes)?;
            KernelEvent { connection: Some((p.connection, p.tcp_state)), ..KernelEvent::new(kind, header, p.process) }
        }
        EventKind::NetFile => return None,
    })
}
