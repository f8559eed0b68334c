//! TC classifiers (clsact ingress and egress): the "open packet" technique. Only the
//! packets of TCP 445/139 (SMB2 over NBSS) and 21 (FTP control) are read; everything else
//! leaves after the port check.
//!
//! What is read here is a bounded *extractor* over the shared parser: each structure
//! (NBSS header, SMB2 header, CREATE / READ / WRITE fixed parts) is copied from the packet
//! into a fixed stack buffer with `bpf_skb_load_bytes` and decoded there by the same
//! `sensor_common::proto` views userspace uses (`nbss::Packet`, `smb2::Header`,
//! `smb2::CreateRequest`, ...: constant offsets, so the verifier sees fixed loads). The
//! walk over NBSS records and compound PDUs is its own, one step per tail call, because
//! the slice-based walk (`smb2::pdus`) over a whole packet does not pass the verifier.
//! FTP lines go to userspace raw and are parsed there; SMB2 names go as the UTF-16LE
//! bytes sent.
//!
//! Per flow, `NET_FLOWS` remembers the TCP sequence number at which the next NBSS record
//! starts, so the data segments of a large WRITE are skipped instead of misparsed, and the
//! first bytes of a header cut by a segment end before it can be read (an NBSS header and
//! the protocol id after it, or an SMB2 header's command and flags), joined to the next
//! segment's first bytes (`load_joined`) so the walk goes on in step there. A followed PDU
//! cut later, before the fields it is followed for, is sent raw, and the next segment's
//! first bytes after it (`SMB_CONTINUATION`): userspace joins and parses the two
//! (`sensor-user/src/network/reassembly.rs`).
//! Whatever cannot be parsed is counted in `NET_COUNTERS` by reason and passed - except
//! from a quarantined sender.
//!
//! Quarantine: from a source in `BLOCKED`, on the file-transfer ports, what is not proven
//! harmless by `sensor_common::proto::quarantine` is dropped (`TC_ACT_SHOT`): a CREATE
//! that may modify, WRITE, SET_INFO, most IOCTLs, encrypted/compressed/SMB1 messages,
//! headers cut or out of step, FTP segments that are not one whole harmless line.
//!
//! Modules, in the order a packet meets them: `l3l4` (Ethernet, IP and TCP headers, the
//! port check), `blocked` (a quarantined sender's flow order), `ftp`, `smb_walk` (NBSS
//! records, one tail call per step), `smb_pdu` (one SMB2 PDU of a compound chain) and
//! `carry` (headers cut by a segment end, joined to the next segment).
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::{bpf_ktime_get_boot_ns, generated::bpf_skb_load_bytes},
    macros::classifier,
    programs::TcContext,
};
use sensor_common::{
    event::{EventHeader, EventKind, NAME_LEN, NET_DIR_EGRESS, NET_DIR_INGRESS, NF_IPV6, NetEvent, NetPayload},
    maps::{FlowKey, net_counter},
};

use crate::maps::{EVENTS, NET_COUNTERS};

mod blocked;
mod carry;
pub mod ftp;
mod l3l4;
mod smb_pdu;
pub mod smb_walk;

#[classifier]
pub fn tc_ingress(ctx: TcContext) -> i32 {
    classify(&ctx, NET_DIR_INGRESS)
}

#[classifier]
pub fn tc_egress(ctx: TcContext) -> i32 {
    classify(&ctx, NET_DIR_EGRESS)
}

/// Counts one in `slot` of `NET_COUNTERS`; returns this CPU's count so far (0 if the slot
/// is missing), which `diag!` rate-limits its messages by.
#[inline(always)]
fn count(slot: u32) -> u64 {
    let Some(c) = NET_COUNTERS.get_ptr_mut(slot) else { return 0 };
    unsafe {
        *c += 1;
        *c
    }
}

/// The parts of a packet every event carries; plain scalars only.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Packet {
    flow: FlowKey,
    ipv6: bool,
    direction: u8,
    seq: u32,
    /// Offset of the TCP payload in the skb, and the skb length.
    payload: u32,
    len: u32,
    ifindex: u32,
}

#[inline(always)]
fn load<T>(ctx: &TcContext, off: u32) -> Option<T> {
    ctx.load::<T>(off as usize).ok()
}

/// `T` at `off`, read in place when the skb's linear part holds it (headers almost always
/// are): every packet passes here, and a helper call costs more than the rest of the port
/// check. Otherwise copied with `bpf_skb_load_bytes`, which also reads paged data.
#[inline(always)]
fn read<T: Copy>(ctx: &TcContext, off: u32) -> Option<T> {
    // The verifier grants direct packet access only where offset + size stays below
    // 64 KiB, and here the offset derives from packet fields: the mask bounds it (the test
    // before it keeps the meaning; headers lie far below).
    if off < 0x8000 {
        let at = ctx.data() + (off & 0x7fff) as usize;
        if at + core::mem::size_of::<T>() <= ctx.data_end() {
            return Some(unsafe { core::ptr::read_unaligned(at as *const T) });
        }
    }
    load(ctx, off)
}

// Inlined: as a BPF-to-BPF call taking `&TcContext` (a stack pointer), the 6.1 verifier
// refuses it ("reg type unsupported for arg#0").
#[inline(always)]
fn classify(ctx: &TcContext, direction: u8) -> i32 {
    if l3l4::inspect(ctx, direction) { TC_ACT_SHOT as i32 } else { TC_ACT_OK as i32 }
}

/// Reserves a `NetEvent`, fills the header and the packet's part of the payload, lets
/// `fill` add the rest, submits. One function owns the reservation (see `taint::emit` for why).
#[inline(always)]
fn emit(pkt: &Packet, proto: u8, verb: u8, flags: u32, fill: impl FnOnce(&mut NetPayload)) {
    let Some(mut entry) = EVENTS.reserve::<NetEvent>(0) else {
        count(net_counter::RINGBUF_FULL);
        return;
    };
    let record = unsafe { &mut *entry.as_mut_ptr() };
    record.header = EventHeader {
        kind: EventKind::NetFile as u32,
        flags: flags | if pkt.ipv6 { NF_IPV6 } else { 0 },
        ts_boot_ns: unsafe { bpf_ktime_get_boot_ns() },
    };
    let ev = &mut record.payload;
    ev.saddr = pkt.flow.saddr;
    ev.daddr = pkt.flow.daddr;
    ev.sport = pkt.flow.sport;
    ev.dport = pkt.flow.dport;
    ev.direction = pkt.direction;
    ev.proto = proto;
    ev.verb = verb;
    ev._pad = 0;
    ev.ifindex = pkt.ifindex;
    ev.status = 0;
    ev.smb_command = 0;
    ev.name_len = 0;
    ev.tree_id = 0;
    ev.session_id = 0;
    ev.message_id = 0;
    ev.access = 0;
    ev.disposition = 0;
    ev.options = 0;
    ev.length = 0;
    ev.offset = 0;
    ev.file_id = [0; 16];
    ev.tcp_seq = pkt.seq;
    ev.missing = 0;
    fill(ev);
    entry.submit(0);
}

/// Copies `n` packet bytes at `off` into `ev.name` (n already clamped to `NAME_LEN`).
#[inline(always)]
fn copy_name(ctx: &TcContext, ev: &mut NetPayload, off: u32, n: u32) {
    if n == 0 || n > NAME_LEN as u32 {
        return;
    }
    // Hide the range LLVM knows so it keeps the mask: the verifier needs the length
    // register itself bounded to [1, NAME_LEN] at the call.
    let n = core::hint::black_box(n);
    let len = (n.wrapping_sub(1) & (NAME_LEN as u32 - 1)) + 1;
    let ret = unsafe { bpf_skb_load_bytes(ctx.skb.skb as *const _, off, ev.name.as_mut_ptr() as *mut _, len) };
    if ret == 0 {
        ev.name_len = len as u16;
    }
}
