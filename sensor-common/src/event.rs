//! The record every kernel program sends to userspace through the `EVENTS` ring buffer.
//!
//! One fixed-size struct for every kind keeps the kernel side simple (one reserve, no
//! variable-length encoding the verifier has to follow); names are bounded and carry a
//! truncation flag so a hostile 4 KiB path is recorded as truncated, never dropped.

use crate::maps::InodeKey;

/// Bytes kept of a path or name. Longer ones are cut and flagged.
pub const NAME_LEN: usize = 256;
pub const COMM_LEN: usize = 16;

/// What happened. The numeric values are part of the ring-buffer ABI and index `DROPS`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "user", serde(rename_all = "snake_case"))]
pub enum EventKind {
    /// A tracked process executed a file (`inode`); `name` is the path given to exec.
    Exec = 0,
    /// A tracked process forked; `tgid` is the child, `parent_tgid` the parent.
    Fork = 1,
    /// A tracked process exited.
    Exit = 2,
    /// A tracked process created or truncated a file at open (`O_CREAT`/`O_TRUNC`).
    Create = 3,
    /// A tracked process wrote to a file (`vfs_write` hooks), opened one for writing, or
    /// held one open for writing when it became tainted (see `EF_AT_OPEN`, `EF_INHERITED_FD`).
    Write = 4,
    /// A tracked process renamed a file: `name` -> `name2`.
    Rename = 5,
    /// A tracked process removed a name.
    Unlink = 6,
    /// A tracked process changed a file's mode; `aux` is the new mode.
    Chmod = 7,
    /// A tracked process truncated a file (truncate/ftruncate).
    Truncate = 8,
    /// A process became tainted; `aux` holds a `TaintReason`, `inode` the file that did it.
    Taint = 9,
    /// A tracked process made a hard link: `name` -> `name2`.
    Link = 10,
    /// A TC program saw a file named or opened on the wire (SMB2/FTP): a [`NetEvent`],
    /// not an [`Event`], follows in the ring buffer record.
    NetFile = 11,
    /// A process that just became tainted held files open for writing (inherited
    /// descriptors such as `./evil > out.txt`); they are now untrusted. `name` packs up to
    /// `PACKED_INODES` `PackedInode`s, `aux` says how many, `fd` how many did not fit.
    InheritedFds = 12,
    /// A tainted process or a port program changed a TCP connection's state in its own
    /// context: it connected out (`SYN_SENT`) or closed a connection (`FIN_WAIT1`,
    /// `LAST_ACK`). `name` holds a [`PackedConnection`], `aux` the new TCP state. This
    /// names the peer a process served even when it has exited by the time userspace
    /// looks, and the hosts a tainted process reached.
    Connection = 13,
}

pub const EVENT_KIND_COUNT: usize = 14;

/// TCP states (`include/net/tcp_states.h`) a `Connection` event is sent for: the ones
/// entered only in the owning process's context (connect, close, shutdown), never in
/// softirq, where the current task is whoever was interrupted.
pub const TCP_SYN_SENT: u32 = 2;
pub const TCP_FIN_WAIT1: u32 = 4;
pub const TCP_LAST_ACK: u32 = 9;

/// The connection of a `Connection` event, in the first bytes of `name`. Addresses in
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

impl Event {
    /// The connection of a `Connection` event.
    pub fn packed_connection(&self) -> PackedConnection {
        // SAFETY: `name` is longer than PackedConnection, which is plain old data.
        unsafe { core::ptr::read_unaligned(self.name.as_ptr() as *const PackedConnection) }
    }
}

/// Inodes an `InheritedFds` event carries (16 bytes each in `name`).
pub const PACKED_INODES: usize = NAME_LEN / 16;

/// One entry of an `InheritedFds` event: an inode key with its generation in the pad.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackedInode {
    pub ino: u64,
    pub dev: u32,
    pub generation: u32,
}

impl Event {
    /// The inodes of an `InheritedFds` event.
    pub fn packed_inodes(&self) -> impl Iterator<Item = PackedInode> + '_ {
        let n = (self.aux as usize).min(PACKED_INODES);
        (0..n).map(move |i| {
            let b = &self.name[i * 16..i * 16 + 16];
            PackedInode {
                ino: u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
                dev: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
                generation: u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
            }
        })
    }
}

impl EventKind {
    pub const ALL: [EventKind; EVENT_KIND_COUNT] = [
        EventKind::Exec,
        EventKind::Fork,
        EventKind::Exit,
        EventKind::Create,
        EventKind::Write,
        EventKind::Rename,
        EventKind::Unlink,
        EventKind::Chmod,
        EventKind::Truncate,
        EventKind::Taint,
        EventKind::Link,
        EventKind::NetFile,
        EventKind::InheritedFds,
        EventKind::Connection,
    ];

    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::Create => "create",
            EventKind::Write => "write",
            EventKind::Rename => "rename",
            EventKind::Unlink => "unlink",
            EventKind::Chmod => "chmod",
            EventKind::Truncate => "truncate",
            EventKind::Taint => "taint",
            EventKind::Link => "link",
            EventKind::NetFile => "net_file",
            EventKind::InheritedFds => "inherited_fds",
            EventKind::Connection => "connection",
        }
    }
}

/// Why a process became tainted (`Event.aux` of a `Taint` event).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintReason {
    /// Rule 2: it executed an untrusted file.
    ExecUntrusted = 1,
    /// Rule 3: an interpreter opened an untrusted file for reading.
    InterpreterRead = 2,
}

/// `Event.flags`: `name` was cut at `NAME_LEN`.
pub const EF_NAME_TRUNCATED: u32 = 1 << 0;
/// `Event.flags`: `name2` was cut at `NAME_LEN`.
pub const EF_NAME2_TRUNCATED: u32 = 1 << 1;
/// `Event.flags`: the process was tainted when this happened.
pub const EF_TAINTED: u32 = 1 << 2;
/// `Event.flags`: the process runs a port program.
pub const EF_PORT_PROGRAM: u32 = 1 << 3;
/// `Event.flags`: the file (`inode`) was untrusted before this event.
pub const EF_FILE_WAS_UNTRUSTED: u32 = 1 << 4;
/// `Event.flags`: this event made the file untrusted.
pub const EF_FILE_NEWLY_UNTRUSTED: u32 = 1 << 5;
/// `Event.flags`: `inode` is valid.
pub const EF_HAS_INODE: u32 = 1 << 6;
/// `Event.flags`: the file could not be added to `INODES` (map full): counted, and userspace
/// still records it as untrusted in the graph.
pub const EF_INODE_MAP_FULL: u32 = 1 << 7;

/// `Event.flags` of a `Write`: the file was opened for writing (no write seen yet).
pub const EF_AT_OPEN: u32 = 1 << 8;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Event {
    pub kind: u32,
    pub flags: u32,
    /// `bpf_ktime_get_boot_ns()`; userspace adds the boot time to get wall-clock time.
    pub ts_boot_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub start_boottime_ns: u64,
    pub parent_tgid: u32,
    pub uid: u32,
    pub parent_start_boottime_ns: u64,
    pub inode: InodeKey,
    pub generation: u32,
    /// Kind-specific: open flags, chmod mode, taint reason, byte count.
    pub aux: u32,
    /// Kind-specific: fd or dirfd the name is relative to (`AT_FDCWD` = -100).
    pub fd: i32,
    pub name_len: u16,
    pub name2_len: u16,
    pub comm: [u8; COMM_LEN],
    pub name: [u8; NAME_LEN],
    pub name2: [u8; NAME_LEN],
}

impl Event {
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_u32(self.kind)
    }
    pub fn name_bytes(&self) -> &[u8] {
        &self.name[..(self.name_len as usize).min(NAME_LEN)]
    }
    pub fn name2_bytes(&self) -> &[u8] {
        &self.name2[..(self.name2_len as usize).min(NAME_LEN)]
    }
    pub fn comm_bytes(&self) -> &[u8] {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        &self.comm[..end]
    }
}

/// `NetEvent.direction`: the packet came in (TC ingress) / went out (TC egress).
pub const NET_DIR_INGRESS: u8 = 0;
pub const NET_DIR_EGRESS: u8 = 1;

/// `NetEvent.proto`.
pub const NET_PROTO_SMB2: u8 = 1;
pub const NET_PROTO_FTP: u8 = 2;

/// `NetEvent.verb`: what the TC program found.
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

/// `NetEvent.flags`: `name` was cut at `NAME_LEN` (or at the end of the packet).
pub const NF_NAME_TRUNCATED: u32 = 1 << 0;
/// `NetEvent.flags`: the message continues past this packet (the name may be partial).
pub const NF_PARTIAL: u32 = 1 << 1;
/// `NetEvent.flags`: the source address is quarantined and the packet was dropped.
pub const NF_BLOCKED: u32 = 1 << 2;
/// `NetEvent.flags`: SMB2 CREATE with write intent (`create_has_write_intent`); for FTP,
/// an upload verb (STOR/APPE/STOU) at the start of the line.
pub const NF_WRITE_INTENT: u32 = 1 << 3;
/// `NetEvent.flags`: the SMB2 header had the related-operations flag (compound chain).
pub const NF_RELATED: u32 = 1 << 4;
/// `NetEvent.flags`: the addresses are IPv6 (else IPv4 in the first 4 bytes).
pub const NF_IPV6: u32 = 1 << 5;
/// `NetEvent.flags`: the kernel asked for the rest of this record from the flow's next
/// segment; an `SMB_CONTINUATION` record follows if that segment passes.
pub const NF_CONTINUES: u32 = 1 << 6;
/// `NetEvent.flags`: a PDU cut inside its header or fixed part: `name` holds the raw
/// bytes of the PDU from its SMB2 header to the end of the packet, not a name; userspace
/// parses them with the continuation's bytes (`network::reassembly`). The fields past
/// the cut (a CREATE's access and name, a READ's or WRITE's FileId) are unknown until then.
pub const NF_RAW_PDU: u32 = 1 << 7;

/// A file named on the wire, as the TC classifier saw it. Same ring buffer as [`Event`];
/// `kind` (always `EventKind::NetFile`) comes first in both so userspace can tell them
/// apart. Addresses are in network byte order.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NetEvent {
    pub kind: u32,
    pub flags: u32,
    pub ts_boot_ns: u64,
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

impl NetEvent {
    pub fn name_bytes(&self) -> &[u8] {
        &self.name[..(self.name_len as usize).min(NAME_LEN)]
    }
}
