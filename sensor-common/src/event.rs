//! The records kernel programs send to userspace through the `EVENTS` ring buffer.
//!
//! Every record is an [`Event<T>`]: an [`EventHeader`] (kind, flags, time) that every
//! kind shares, then the kind's own payload, reserved at its own size
//! (`EVENTS.reserve::<Event<ExecPayload>>()`), so no field means different things per kind
//! and a write event does not take the ring space of two paths. Userspace reads the
//! header, then the payload its kind names (`EventKind::payload_len`). Names are bounded
//! and carry a truncation flag so a hostile 4 KiB path is recorded as truncated, never
//! dropped. The sizes of the records are asserted below: they are the ring buffer's ABI.

/// Bytes kept of a path or name. Longer ones are cut and flagged.
pub const NAME_LEN: usize = 256;
pub const COMM_LEN: usize = 16;

/// Declares `EventKind` from one list: the variant, its value (part of the ring-buffer
/// ABI, and the index of its `DROPS` slot), its name (logs, JSON, counters) and its
/// payload type.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident = $value:literal, $name:literal, $payload:ty;)*) => {
        /// What happened. See each payload for what the record carries.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
        pub enum EventKind {
            $($(#[$doc])* #[cfg_attr(feature = "user", serde(rename = $name))] $variant = $value,)*
        }

        pub const EVENT_KIND_COUNT: usize = [$($value),*].len();

        impl EventKind {
            pub const ALL: [EventKind; EVENT_KIND_COUNT] = [$(EventKind::$variant),*];

            pub const fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $($value => Some(EventKind::$variant),)*
                    _ => None,
                }
            }

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)*
                }
            }

            /// Bytes of this kind's record (`Event<payload>`).
            pub const fn record_len(self) -> usize {
                match self {
                    $(EventKind::$variant => size_of::<Event<$payload>>(),)*
                }
            }
        }
    };
}

event_kinds! {
    /// A tracked process executed a file: [`ExecPayload`].
    Exec = 0, "exec", ExecPayload;
    /// A tracked process forked: [`ForkPayload`] (`process` is the child).
    Fork = 1, "fork", ForkPayload;
    /// A tracked process exited: [`ExitPayload`].
    Exit = 2, "exit", ExitPayload;
    /// A tracked process created or truncated a file at open (`O_CREAT`/`O_TRUNC`):
    /// [`OpenPayload`].
    Create = 3, "create", OpenPayload;
    /// A tracked process wrote to a file (`vfs_write` hooks), opened one for writing
    /// (`EF_AT_OPEN`): [`WritePayload`].
    Write = 4, "write", WritePayload;
    /// A tracked process renamed a file: [`RenamePayload`], `name` -> `new_name`.
    Rename = 5, "rename", RenamePayload;
    /// A tracked process removed a name: [`ChangePayload`].
    Unlink = 6, "unlink", ChangePayload;
    /// A tracked process changed a file's mode: [`ChangePayload`] with the new `mode`.
    Chmod = 7, "chmod", ChangePayload;
    /// A tracked process truncated a file (truncate/ftruncate): [`ChangePayload`].
    Truncate = 8, "truncate", ChangePayload;
    /// An interpreter became tainted by opening an untrusted file: [`TaintPayload`].
    Taint = 9, "taint", TaintPayload;
    /// A tracked process made a hard link: [`RenamePayload`], `name` -> `new_name`.
    Link = 10, "link", RenamePayload;
    /// A TC program saw a file named or opened on the wire (SMB2/FTP): [`NetPayload`].
    NetFile = 11, "net_file", NetPayload;
    /// A process that just became tainted held files open for writing (inherited
    /// descriptors such as `./evil > out.txt`); they are now untrusted:
    /// [`InheritedFdsPayload`].
    InheritedFds = 12, "inherited_fds", InheritedFdsPayload;
    /// A tainted process or a port program changed a TCP connection's state in its own
    /// context: it connected out (`SYN_SENT`) or closed a connection (`FIN_WAIT1`,
    /// `LAST_ACK`): [`ConnectionPayload`]. This names the peer a process served even
    /// when it has exited by the time userspace looks, and the hosts a tainted process
    /// reached.
    Connection = 13, "connection", ConnectionPayload;
    /// A tainted process opened an untrusted file for reading: [`OpenPayload`]. Once per
    /// (process, file). What a tainted process reads is what it may send on: a worm's
    /// uploader opening its own copy names the file an upload carried after the uploader
    /// has exited, when /proc can no longer tell.
    Read = 14, "read", OpenPayload;
}

// `DROPS` is indexed by kind: the values must be 0..EVENT_KIND_COUNT in order.
const _: () = {
    let mut i = 0;
    while i < EVENT_KIND_COUNT {
        assert!(EventKind::ALL[i] as usize == i);
        i += 1;
    }
};

/// Shared by every record: what it is (`EventKind`), its flags (`EF_*` for process
/// events, `NF_*` for `NetFile`) and when it happened.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EventHeader {
    pub kind: u32,
    pub flags: u32,
    /// `bpf_ktime_get_boot_ns()`; userspace adds the boot time to get wall-clock time.
    pub ts_boot_ns: u64,
}

impl EventHeader {
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_u32(self.kind)
    }
}

/// One ring-buffer record: the header, then the payload of its kind.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Event<T> {
    pub header: EventHeader,
    pub payload: T,
}

/// The process a process event is about, first in each of their payloads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Process {
    pub tgid: u32,
    pub tid: u32,
    /// `task_struct.start_boottime` in ns: with the tgid, the process identity.
    pub start_boottime_ns: u64,
    pub uid: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
}

impl Process {
    pub fn comm_bytes(&self) -> &[u8] {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        &self.comm[..end]
    }
}

/// A payload that starts with its [`Process`] (every kind but `NetFile`): the kernel
/// fills that part once for all of them.
pub trait ProcessPayload {
    fn process_mut(&mut self) -> &mut Process;
}

/// A file: its inode on its device (the kernel's `dev_t`, as `maps::InodeKey`) and its
/// `i_generation`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileId {
    pub ino: u64,
    pub dev: u32,
    pub generation: u32,
}

/// A name as the kernel copied it: `len` bytes of `bytes`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Name {
    pub len: u16,
    pub _pad: [u8; 6],
    pub bytes: [u8; NAME_LEN],
}

impl Name {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(NAME_LEN)]
    }
}

/// `Exec`: the image a tracked process executed.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecPayload {
    pub process: Process,
    /// The executed image (`EF_HAS_INODE`); for a `#!` script, its interpreter.
    pub file: FileId,
    /// A `TaintReason` when this exec tainted the process, else 0.
    pub reason: u32,
    pub _pad: u32,
    /// The path given to exec.
    pub name: Name,
}

/// `Fork`: `process` is the child.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkPayload {
    pub process: Process,
    pub parent_tgid: u32,
    pub _pad: u32,
    pub parent_start_boottime_ns: u64,
}

/// `Exit`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitPayload {
    pub process: Process,
}

/// `Create`: a file opened with `O_CREAT` or `O_TRUNC`; `Read`: an untrusted file a tainted
/// process opened for reading.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpenPayload {
    pub process: Process,
    pub file: FileId,
    /// The directory `name` is relative to (`AT_FDCWD` = -100).
    pub dirfd: i32,
    pub open_flags: u32,
    pub name: Name,
}

/// `Taint`: an interpreter opened the untrusted `file` for reading.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TaintPayload {
    pub process: Process,
    pub file: FileId,
    /// The directory `name` is relative to.
    pub dirfd: i32,
    /// A `TaintReason`.
    pub reason: u32,
    pub name: Name,
}

/// `Write`: the file written through descriptor `fd` (-1 from the `vfs_write` hooks,
/// which see the file, not the descriptor).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WritePayload {
    pub process: Process,
    pub file: FileId,
    pub fd: i32,
    pub _pad: u32,
}

/// `Unlink`, `Chmod`, `Truncate`: through a path (`name`, relative to `fd` as a dirfd) or
/// through the descriptor `fd` (no name; `file` set).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ChangePayload {
    pub process: Process,
    /// Set when the change went through a descriptor (`EF_HAS_INODE`).
    pub file: FileId,
    /// The descriptor changed, or with a name the directory it is relative to.
    pub fd: i32,
    /// `Chmod`: the new mode.
    pub mode: u32,
    pub name: Name,
}

/// `Rename`, `Link`: `name` (relative to `dirfd`) -> `new_name` (relative to `new_dirfd`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RenamePayload {
    pub process: Process,
    pub dirfd: i32,
    pub new_dirfd: i32,
    pub name: Name,
    pub new_name: Name,
}

/// Files an `InheritedFds` record carries.
pub const INHERITED_FILES: usize = 16;

/// `InheritedFds`: the regular files a process held open for writing when it became
/// tainted (the first `count`; `overflow` more did not fit, marked in the kernel all the same).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InheritedFdsPayload {
    pub process: Process,
    pub count: u32,
    pub overflow: u32,
    pub files: [FileId; INHERITED_FILES],
}

impl InheritedFdsPayload {
    pub fn files(&self) -> &[FileId] {
        &self.files[..(self.count as usize).min(INHERITED_FILES)]
    }
}

/// `Connection`: the new TCP state and the connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectionPayload {
    pub process: Process,
    pub tcp_state: u32,
    pub _pad: u32,
    pub connection: PackedConnection,
}

macro_rules! process_payloads {
    ($($t:ty),*) => {$(
        impl ProcessPayload for $t {
            #[inline(always)]
            fn process_mut(&mut self) -> &mut Process {
                &mut self.process
            }
        }
    )*};
}
pod!(
    EventHeader, ExecPayload, ForkPayload, ExitPayload, OpenPayload, TaintPayload, WritePayload,
    ChangePayload, RenamePayload, InheritedFdsPayload, ConnectionPayload, NetPayload,
);
#[cfg(feature = "user")]
// SAFETY: a header and a payload, both `#[repr(C)]` plain old data.
unsafe impl<T: aya::Pod> aya::Pod for Event<T> {}

process_payloads!(
    ExecPayload, ForkPayload, ExitPayload, OpenPayload, TaintPayload, WritePayload, ChangePayload,
    RenamePayload, InheritedFdsPayload, ConnectionPayload
);

/// TCP states (`include/net/tcp_states.h`) a `Connection` event is sent for: the ones
/// entered only in the owning process's context (connect, close, shutdown), never in
/// softirq, where the current task is whoever was interrupted.
pub const TCP_SYN_SENT: u32 = 2;
pub const TCP_FIN_WAIT1: u32 = 4;
pub const TCP_LAST_ACK: u32 = 9;

/// The connection of a `Connection` event. Addresses in
/// network byte order, IPv4 as its 4 bytes then zeros; ports in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackedConnection {
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub _pad: u16,
    pub local: [u8; 16],
    pub remote: [u8; 16],
}

/// Why a process became tainted (`reason` of an `Exec` or `Taint` payload).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintReason {
    /// Rule 2: it executed an untrusted file.
    ExecUntrusted = 1,
    /// Rule 3: an interpreter opened an untrusted file for reading.
    InterpreterRead = 2,
}

/// `header.flags` of a process event: `name` was cut at `NAME_LEN`.
pub const EF_NAME_TRUNCATED: u32 = 1 << 0;
/// `header.flags` of a process event: `name2` (a rename's or link's new name) was cut at `NAME_LEN`.
pub const EF_NAME2_TRUNCATED: u32 = 1 << 1;
/// `header.flags` of a process event: the process was tainted when this happened.
pub const EF_TAINTED: u32 = 1 << 2;
/// `header.flags` of a process event: the process runs a port program.
pub const EF_PORT_PROGRAM: u32 = 1 << 3;
/// `header.flags` of a process event: the file (`inode`) was untrusted before this event.
pub const EF_FILE_WAS_UNTRUSTED: u32 = 1 << 4;
/// `header.flags` of a process event: this event made the file untrusted.
pub const EF_FILE_NEWLY_UNTRUSTED: u32 = 1 << 5;
/// `header.flags` of a process event: `inode` is valid.
pub const EF_HAS_INODE: u32 = 1 << 6;
/// `header.flags` of a process event: the file could not be added to `INODES` (map full): counted, and userspace
/// still records it as untrusted in the graph.
pub const EF_INODE_MAP_FULL: u32 = 1 << 7;

/// `header.flags` of a process event of a `Write`: the file was opened for writing (no write seen yet).
pub const EF_AT_OPEN: u32 = 1 << 8;
/// `header.flags` of an `Exec`: the image is flagged (`INODE_FLAGGED`) and the process was
/// sent SIGKILL before it ran. Of a `Read` or `Taint`: an interpreter opened a flagged file
/// (a script) and was sent SIGKILL before the open returned.
pub const EF_EXEC_PREVENTED: u32 = 1 << 9;
/// `header.flags` of a `Create` or `Write` (at open): the file or its directory is protected
/// (`INODE_PROTECTED`) and the tainted process was sent SIGKILL before the open returned.
pub const EF_WRITE_PREVENTED: u32 = 1 << 10;

/// `NetPayload.direction`: the packet came in (TC ingress) / went out (TC egress).
pub const NET_DIR_INGRESS: u8 = 0;
pub const NET_DIR_EGRESS: u8 = 1;

/// `NetPayload.proto`.
pub const NET_PROTO_SMB2: u8 = 1;
pub const NET_PROTO_FTP: u8 = 2;

/// `NetPayload.verb`: what the TC program found.
pub mod net_verb {
    /// SMB2 CREATE request: `name` (UTF-16LE as sent), access, disposition, options, ids.
    pub const SMB_CREATE: u8 = 1;
    /// SMB2 CREATE response: `file_id`, `status`, ids (MessageId matches the request).
    pub const SMB_CREATE_RESPONSE: u8 = 2;
    /// SMB2 WRITE request: `file_id`, `length`, `offset`.
    pub const SMB_WRITE: u8 = 3;
    /// SMB2 READ request: `file_id`, `length`, `offset`.
    pub const SMB_READ: u8 = 4;
    /// SMB3 transform header (encrypted session): `session_id`. Once per flow.
    pub const SMB_ENCRYPTED: u8 = 5;
    /// The rest of a PDU cut by the end of a packet (`NF_CONTINUES`): `name` holds the
    /// first bytes of the flow's next segment (`tcp_seq`), which userspace joins to the
    /// held record (`sensor-user/src/network/reassembly.rs`).
    pub const SMB_CONTINUATION: u8 = 6;
    /// SMB2 TREE_CONNECT request (whole in its packet): `name` = the share path
    /// `\\server\share` (UTF-16LE as sent), ids.
    pub const SMB_TREE_CONNECT: u8 = 7;
    /// Successful TREE_CONNECT response: ids, the new TreeId in `tree_id` (MessageId
    /// matches the request). With the request, which share a CREATE's TreeId names.
    pub const SMB_TREE_CONNECT_RESPONSE: u8 = 8;
    /// FTP control line from the client (`name` = the raw line, parsed in userspace).
    pub const FTP_COMMAND: u8 = 16;
    /// FTP control reply from the server (`name` = the raw reply text).
    pub const FTP_REPLY: u8 = 17;

    /// The verb of an SMB2 PDU the sensor follows, from its header: CREATE requests and
    /// successful responses (the FileId), READ and WRITE requests. `None` for the rest.
    /// One decision for the TC program and for userspace's completion of cut PDUs.
    #[inline(always)]
    pub fn of_smb2(command: u16, response: bool, status: u32) -> Option<u8> {
        match (command, response) {
            (5, false) => Some(SMB_CREATE),
            (5, true) if status == 0 => Some(SMB_CREATE_RESPONSE),
            (8, false) => Some(SMB_READ),
            (9, false) => Some(SMB_WRITE),
            _ => None,
        }
    }
}

/// `NetEvent` `header.flags`: `name` was cut at `NAME_LEN` (or at the end of the packet).
pub const NF_NAME_TRUNCATED: u32 = 1 << 0;
/// `NetEvent` `header.flags`: the message continues past this packet (the name may be partial).
pub const NF_PARTIAL: u32 = 1 << 1;
/// `NetEvent` `header.flags`: the source address is quarantined and the packet was dropped.
pub const NF_BLOCKED: u32 = 1 << 2;
/// `NetEvent` `header.flags`: SMB2 CREATE with write intent (`create_has_write_intent`); for FTP,
/// an upload verb (STOR/APPE/STOU) at the start of the line.
pub const NF_WRITE_INTENT: u32 = 1 << 3;
/// `NetEvent` `header.flags`: the SMB2 header had the related-operations flag (compound chain).
pub const NF_RELATED: u32 = 1 << 4;
/// `NetEvent` `header.flags`: the addresses are IPv6 (else IPv4 in the first 4 bytes).
pub const NF_IPV6: u32 = 1 << 5;
/// `NetEvent` `header.flags`: the kernel asked for the rest of this record from the flow's next
/// segment; an `SMB_CONTINUATION` record follows if that segment passes.
pub const NF_CONTINUES: u32 = 1 << 6;
/// `NetEvent` `header.flags`: a PDU cut inside its header or fixed part: `name` holds the raw
/// bytes of the PDU from its SMB2 header to the end of the packet, not a name; userspace
/// parses them with the continuation's bytes (`network::reassembly`). The fields past
/// the cut (a CREATE's access and name, a READ's or WRITE's FileId) are unknown until then.
pub const NF_RAW_PDU: u32 = 1 << 7;

/// `Event<NetPayload>`, the record of a file named on the wire, as the TC classifier saw
/// it (`EventKind::NetFile`; `header.flags` holds `NF_*`). Addresses are in network byte
/// order.
pub type NetEvent = Event<NetPayload>;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct NetPayload {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub direction: u8,
    pub proto: u8,
    pub verb: u8,
    pub _pad: u8,
    pub ifindex: u32,
    /// SMB2: NT status of a response.
    pub status: u32,
    pub smb_command: u16,
    pub name_len: u16,
    pub tree_id: u32,
    pub session_id: u64,
    pub message_id: u64,
    /// SMB2 CREATE: DesiredAccess, CreateDisposition, CreateOptions.
    pub access: u32,
    pub disposition: u32,
    pub options: u32,
    /// SMB2 READ/WRITE: bytes asked for or sent.
    pub length: u32,
    pub offset: u64,
    /// SMB2 FileId (persistent ++ volatile, little-endian as on the wire).
    pub file_id: [u8; 16],
    /// TCP sequence number of the packet.
    pub tcp_seq: u32,
    /// Bytes of the NBSS record / FTP line not in this packet.
    pub missing: u32,
    pub name: [u8; NAME_LEN],
}

impl NetPayload {
    pub fn name_bytes(&self) -> &[u8] {
        &self.name[..(self.name_len as usize).min(NAME_LEN)]
    }
}

// The ring buffer's ABI: the size of every record that crosses it. A change here is a
// change of the format userspace reads (and `tc_ingress`'s stack budget for `NetEvent`).
const _: () = {
    assert!(size_of::<EventHeader>() == 16);
    assert!(size_of::<Process>() == 40);
    assert!(size_of::<Name>() == 8 + NAME_LEN);
    assert!(size_of::<Event<ExecPayload>>() == 344);
    assert!(size_of::<Event<ForkPayload>>() == 72);
    assert!(size_of::<Event<ExitPayload>>() == 56);
    assert!(size_of::<Event<OpenPayload>>() == 344);
    assert!(size_of::<Event<TaintPayload>>() == 344);
    assert!(size_of::<Event<WritePayload>>() == 80);
    assert!(size_of::<Event<ChangePayload>>() == 344);
    assert!(size_of::<Event<RenamePayload>>() == 592);
    assert!(size_of::<Event<InheritedFdsPayload>>() == 320);
    assert!(size_of::<Event<ConnectionPayload>>() == 104);
    assert!(size_of::<Event<NetPayload>>() == 392);
};

#[cfg(all(test, feature = "user"))]
mod tests {
    use super::*;

    #[test]
    fn kind_names_values_and_serde_agree() {
        for (i, kind) in EventKind::ALL.iter().enumerate() {
            assert_eq!(EventKind::from_u32(i as u32), Some(*kind));
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), *kind);
        }
        assert_eq!(EventKind::from_u32(EVENT_KIND_COUNT as u32), None);
        assert_eq!(EventKind::InheritedFds.as_str(), "inherited_fds");
        assert_eq!(EventKind::Write.record_len(), size_of::<Event<WritePayload>>());
    }
}
