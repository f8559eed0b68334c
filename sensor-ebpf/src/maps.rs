//! The maps shared by all programs. Names and value types come from `sensor_common::maps`.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use sensor_common::{
    maps::{
        BlockedKey, FlowKey, FlowState, net_counter,
        DROP_SLOTS, InodeKey, InodeState, MAX_INODES, MAX_PROCS, PendingCall, ProcState,
        SensorConfig, WriteSeenKey,
    },
    offsets::KernelOffsets,
};

/// Tracked processes (tainted, port programs, interpreters) by tgid. Absent = untracked.
#[map]
pub static PROCS: HashMap<u32, ProcState> = HashMap::with_max_entries(MAX_PROCS, 0);

/// Files with a flag (untrusted, port program binary, interpreter binary).
#[map]
pub static INODES: HashMap<InodeKey, InodeState> = HashMap::with_max_entries(MAX_INODES, 0);

/// Path syscalls of tracked threads between entry and exit, by pid_tgid.
#[map]
pub static PENDING: HashMap<u64, PendingCall> = HashMap::with_max_entries(16_384, 0);

/// One write event per (process, file): a tainted process writing a log line by line
/// must not flood the ring buffer.
#[map]
pub static WRITE_SEEN: LruHashMap<WriteSeenKey, u8> = LruHashMap::with_max_entries(65_536, 0);

/// Events to userspace. Size set by userspace at load time (`ring_buffer_bytes`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Lost events by kind, and map-full counts; see `sensor_common::maps::DROP_SLOTS`.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DROP_SLOTS, 0);

#[map]
pub static CONFIG: Array<SensorConfig> = Array::with_max_entries(1, 0);

#[map]
pub static OFFSETS: Array<KernelOffsets> = Array::with_max_entries(1, 0);

/// Counts one in `slot` of `DROPS`; returns this CPU's count so far (0 if the slot is
/// missing), which `diag!` rate-limits its messages by.
#[inline(always)]
pub fn count_drop(slot: u32) -> u64 {
    let Some(counter) = DROPS.get_ptr_mut(slot) else { return 0 };
    // Per-CPU slot: no other writer while this program runs on this CPU.
    unsafe {
        *counter += 1;
        *counter
    }
}

/// Quarantined remote addresses (IPv4 mapped into IPv6); value unused. Set by userspace.
#[map]
pub static BLOCKED: HashMap<BlockedKey, u32> = HashMap::with_max_entries(4096, 0);

/// TC: per TCP flow, where the next NBSS record starts (see `tc`).
#[map]
pub static NET_FLOWS: LruHashMap<FlowKey, FlowState> = LruHashMap::with_max_entries(16_384, 0);

/// TC: packets inspected and input not parsed, by reason (`net_counter`).
#[map]
pub static NET_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(net_counter::SLOTS, 0);

/// TC: slot 0 = `tc_smb_step`, tail-called once per NBSS record header or SMB2 PDU;
/// slot 1 = `tc_ftp_blocked`, a quarantined sender's FTP command segment.
#[map]
pub static TC_JUMP: ProgramArray = ProgramArray::with_max_entries(2, 0);

/// TC: the SMB walk's state between tail calls (per CPU: one packet at a time).
#[map]
pub static NET_WALK: PerCpuArray<crate::tc::smb_walk::SmbWalk> = PerCpuArray::with_max_entries(1, 0);

/// TC: an FTP control segment's first bytes, scanned for line ends (per CPU).
#[map]
pub static FTP_SCAN: PerCpuArray<crate::tc::ftp::FtpScan> = PerCpuArray::with_max_entries(1, 0);
