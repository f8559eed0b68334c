//! Keys and values of the BPF maps through which the kernel decides taint.
//!
//! The taint rules run in the kernel so that a program that writes a file and executes it
//! a microsecond later is caught without a round trip to userspace. Userspace only seeds
//! these maps (configured programs, state restored from the graph, manual relabels).

/// Identity of a file: the inode on its device. `dev` is the kernel's internal `dev_t`
/// (`MAJOR << 20 | MINOR`), not the userspace `st_dev` encoding; userspace converts.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InodeKey {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}

impl InodeKey {
    pub const fn new(dev: u32, ino: u64) -> Self {
        Self { ino, dev, _pad: 0 }
    }
}

/// `i_generation` value meaning "unknown, match any": used for entries userspace adds for
/// filesystems that do not report a generation.
pub const GENERATION_ANY: u32 = u32::MAX;

/// The file is untrusted: it arrived through a port program or was written by a tainted process.
pub const INODE_UNTRUSTED: u32 = 1 << 0;
/// Executing this file makes a process a port program (network-facing daemon).
pub const INODE_PORT_PROGRAM: u32 = 1 << 1;
/// Executing this file makes a process an interpreter: it is tainted when it opens an
/// untrusted file for reading.
pub const INODE_INTERPRETER: u32 = 1 << 2;
/// A scan flagged this file and `[response] deny_exec` is on: an exec of it is stopped in
/// the exec hook (SIGKILL before the new image runs its first instruction). Set with
/// `INODE_UNTRUSTED`, never alone.
pub const INODE_FLAGGED: u32 = 1 << 3;
/// A protected path (`vtrail-sensor apply-rules`, `[response] protected_paths`): a tainted
/// process that opens this file for writing, or creates or opens one for writing in this
/// directory, is sent SIGKILL by the open hook. May stand alone.
pub const INODE_PROTECTED: u32 = 1 << 4;

/// Value of the `INODES` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct InodeState {
    pub flags: u32,
    /// `i_generation` when the entry was made; an inode number reused by a new file has a
    /// different generation, so a stale entry does not taint the new file.
    pub generation: u32,
}

/// The process is tainted (rules 2-4).
pub const PROC_TAINTED: u32 = 1 << 0;
/// The process runs a port program: files it creates or writes become untrusted.
pub const PROC_PORT_PROGRAM: u32 = 1 << 1;
/// The process runs an interpreter: opening an untrusted file for reading taints it.
pub const PROC_INTERPRETER: u32 = 1 << 2;

/// Set by the bprm hook (kprobe/fentry strategies) when the file being executed - a `#!`
/// script included - is untrusted; the exec tracepoint turns it into `PROC_TAINTED` even
/// when taint does not survive exec.
pub const PROC_EXEC_TAINT: u32 = 1 << 3;

/// Value of the `PROCS` map, keyed by tgid. Only processes with some flag are present,
/// so the fast path for everything else is one failed lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProcState {
    /// `task_struct.start_boottime` in ns: with the tgid, the process identity. An entry
    /// whose start time differs from the current task's is stale (pid reused).
    pub start_boottime_ns: u64,
    pub flags: u32,
    pub _pad: u32,
}

/// Sensor-wide switches, one array element read by every program.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SensorConfig {
    /// Rule 4: does taint survive exec of a trusted binary? (1 = yes, the default)
    pub taint_survives_exec: u32,
    /// Write events are de-duplicated per (process, inode) while this is 1.
    pub dedup_writes: u32,
}

/// Key of the de-duplication LRU map: one write event and one read event per process
/// and file.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WriteSeenKey {
    pub inode: InodeKey,
    pub tgid: u32,
    /// `SEEN_WRITE` or `SEEN_READ`.
    pub access: u32,
}

/// `WriteSeenKey::access` of a write.
pub const SEEN_WRITE: u32 = 0;
/// `WriteSeenKey::access` of a read of an untrusted file by a tainted process.
pub const SEEN_READ: u32 = 1;

/// A path syscall of a tracked process, stashed at entry and finished at exit, so that
/// only calls that succeeded are reported and an open's fd can be turned into an inode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingCall {
    /// The `EventKind` to emit at exit.
    pub kind: u32,
    /// Open flags or chmod mode.
    pub flags: u32,
    pub dirfd: i32,
    pub _pad: u32,
    /// User pointers to the path(s).
    pub name: u64,
    pub name2: u64,
}

/// `DROPS` slots: the first `EVENT_KIND_COUNT` count events lost because the ring buffer was
/// full, by kind; the ones below count state the kernel could not record because a map was
/// full (userspace still learns of it from the event, but the kernel's decision is weaker).
pub const DROP_PROCS_FULL: u32 = crate::event::EVENT_KIND_COUNT as u32;
pub const DROP_INODES_FULL: u32 = DROP_PROCS_FULL + 1;
pub const DROP_PENDING_FULL: u32 = DROP_PROCS_FULL + 2;
/// A kernel struct read through the BTF offsets failed where it cannot fail with the
/// right offsets (the descriptor an open just returned is not in the task's fd table):
/// the running kernel's layout is not what the offsets say.
pub const DROP_KERNEL_READ_FAILED: u32 = DROP_PROCS_FULL + 3;
pub const DROP_SLOTS: u32 = DROP_PROCS_FULL + 4;
pub const DROP_SLOT_NAMES: [&str; 4] = ["procs_map_full", "inodes_map_full", "pending_map_full", "kernel_read_failed"];

/// Map names, shared so that userspace and kernel cannot drift apart.
pub mod names {
    pub const PROCS: &str = "PROCS";
    pub const INODES: &str = "INODES";
    pub const EVENTS: &str = "EVENTS";
    pub const DROPS: &str = "DROPS";
    pub const CONFIG: &str = "CONFIG";
    pub const OFFSETS: &str = "OFFSETS";
    pub const PENDING: &str = "PENDING";
    pub const WRITE_SEEN: &str = "WRITE_SEEN";
    pub const BLOCKED: &str = "BLOCKED";
    pub const NET_COUNTERS: &str = "NET_COUNTERS";
    pub const TC_JUMP: &str = "TC_JUMP";
}

/// Key of the `BLOCKED` quarantine map: an IPv6 address, or an IPv4 one mapped into
/// IPv6 (`::ffff:a.b.c.d`), network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct BlockedKey {
    pub addr: [u8; 16],
}

/// Key of the TC program's per-flow state (`NET_FLOWS`): where the next NBSS record
/// starts, so that data segments in the middle of a record are skipped, not misparsed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub _pad: u32,
}

/// Value of `NET_FLOWS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowState {
    /// TCP sequence number at which the next NBSS record header is expected.
    pub next_record_seq: u32,
    /// 1 once a transform header was reported for this flow (report once).
    pub encrypted_reported: u32,
    /// A PDU ran past the end of a packet: the segment starting at `cont_seq` carries its
    /// next `cont_bytes` bytes, sent to userspace as `SMB_CONTINUATION`.
    pub cont_seq: u32,
    pub cont_bytes: u32,
    /// The packet ended inside a header the walk must read whole (`carry_kind`): its
    /// first `carry_len` bytes, joined in the kernel to the start of the segment at
    /// `cont_seq`, so the walk goes on in step there.
    pub carry: [u8; CARRY_MAX],
    pub carry_len: u32,
    pub carry_kind: u32,
}

/// Bytes `FlowState::carry` holds (a power of two: the kernel masks lengths with it).
pub const CARRY_MAX: usize = 32;

/// `FlowState::carry_kind`.
pub mod carry_kind {
    pub const NONE: u32 = 0;
    /// An NBSS record header, with up to 3 bytes of the protocol id after it, of the
    /// record starting at `next_record_seq`.
    pub const RECORD: u32 = 1;
    /// The first bytes (fewer than 20: command and flags not there yet) of an SMB2 header
    /// inside the record that ends at `next_record_seq`.
    pub const PDU: u32 = 2;
}

/// `NET_COUNTERS` slots: what the TC program could not parse, by reason, and what it did.
pub mod net_counter {
    pub const PACKETS_INSPECTED: u32 = 0;
    pub const TRUNCATED_HEADER: u32 = 1;
    pub const NAME_OUT_OF_BOUNDS: u32 = 2;
    pub const BAD_NEXT_COMMAND: u32 = 3;
    pub const BAD_MAGIC: u32 = 4;
    pub const PDU_LIMIT: u32 = 5;
    pub const RECORD_LIMIT: u32 = 6;
    pub const NAME_TRUNCATED: u32 = 7;
    pub const MID_RECORD: u32 = 8;
    pub const IPV6_EXT_HEADER: u32 = 9;
    pub const BLOCKED_DROPS: u32 = 10;
    pub const RINGBUF_FULL: u32 = 11;
    pub const IP_FRAGMENT: u32 = 12;
    pub const NO_STEP_PROGRAM: u32 = 13;
    /// A quarantined sender's packet not at the flow's next byte (or of a flow whose SYN
    /// was not seen): dropped.
    pub const OUT_OF_ORDER_BLOCKED: u32 = 14;
    /// `NET_FLOWS` refused an insert.
    pub const FLOW_TABLE_FULL: u32 = 15;
    pub const SLOTS: u32 = 16;
    pub const NAMES: [&str; SLOTS as usize] = [
        "packets_inspected", "truncated_header", "name_out_of_bounds", "bad_next_command",
        "bad_magic", "pdu_limit", "record_limit", "name_truncated", "mid_record_skipped",
        "ipv6_extension_header", "blocked_drops", "ringbuf_full", "ip_fragment", "no_step_program",
        "out_of_order_from_blocked", "flow_table_full",
    ];
    /// Counters that mean "input the parser could not make sense of".
    pub const UNPARSABLE: [u32; 6] =
        [TRUNCATED_HEADER, NAME_OUT_OF_BOUNDS, BAD_NEXT_COMMAND, BAD_MAGIC, PDU_LIMIT, RECORD_LIMIT];
}

/// Default capacity of the maps (userspace may change them at load time).
pub const MAX_PROCS: u32 = 65_536;
pub const MAX_INODES: u32 = 262_144;

pod!(InodeKey, InodeState, ProcState, SensorConfig, WriteSeenKey, PendingCall, BlockedKey, FlowKey, FlowState);
