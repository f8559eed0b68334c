//! Headers cut by a segment end. A record or PDU header the walk must read whole is kept
//! in the flow state (`keep`) and joined to the next segment's first bytes
//! (`load_joined`); a followed PDU cut later is sent raw (`send_cut`) with the next
//! segment's first bytes after it (`continuation`), for userspace to join.
use aya_ebpf::{helpers::generated::bpf_skb_load_bytes, programs::TcContext};
use sensor_common::{
    event::{NAME_LEN, NET_PROTO_SMB2, NF_CONTINUES, NF_PARTIAL, net_verb},
    maps::{CARRY_MAX, net_counter},
};

use super::{
    Packet, copy_name, count, emit,
    smb_walk::{SCRATCH, SmbWalk},
};

/// The first `n` payload bytes of the segment that continues a cut CREATE name.
#[inline(always)]
pub(super) fn continuation(ctx: &TcContext, pkt: &Packet, n: u32) {
    emit(pkt, NET_PROTO_SMB2, net_verb::SMB_CONTINUATION, 0, |ev| {
        copy_name(ctx, ev, pkt.payload, n);
    });
}

/// The raw bytes from `start` to the end of the packet of something the packet end cut
/// (`missing` bytes absent), with the flow's next segment asked for (`cont_bytes`):
/// userspace joins the two (`network::reassembly`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn send_cut(ctx: &TcContext, pkt: &Packet, start: u32, verb: u8, smb_command: u16, flags: u32, missing: u32, cont_bytes: &mut u32) {
    if start < pkt.payload {
        // Cut again in the segment that completed its header (a tiny segment): the bytes
        // before the payload are in the flow state, not the packet. Not followed further.
        count(net_counter::TRUNCATED_HEADER);
        return;
    }
    let have = pkt.len.saturating_sub(start);
    *cont_bytes = missing.min(NAME_LEN as u32);
    emit(pkt, NET_PROTO_SMB2, verb, flags | NF_PARTIAL | NF_CONTINUES, |ev| {
        ev.smb_command = smb_command;
        ev.missing = missing;
        copy_name(ctx, ev, start, have);
    });
}

/// Keeps the bytes from `from` to the end of the packet (fewer than `CARRY_MAX`) for the
/// next segment: the start of a header the walk must read whole (`kind`). Not when the
/// header's start was itself carried (a tiny segment): returns false.
#[inline(always)]
pub(super) fn keep(ctx: &TcContext, w: &mut SmbWalk, from: u32, kind: u32) -> bool {
    if from < w.pkt.payload || from > w.pkt.len {
        return false;
    }
    let n = w.pkt.len - from;
    if n >= CARRY_MAX as u32 {
        return false;
    }
    if n > 0 {
        // Bounded for the verifier as in `copy_name`.
        let n = core::hint::black_box(n);
        let len = (n.wrapping_sub(1) & (CARRY_MAX as u32 - 1)) + 1;
        let ret = unsafe { bpf_skb_load_bytes(ctx.skb.skb as *const _, from, w.next.carry.as_mut_ptr() as *mut _, len) };
        if ret != 0 {
            return false;
        }
    }
    w.next.carry_len = n;
    w.next.carry_kind = kind;
    w.synced = 1;
    true
}

/// Loads `N` (at most 64) bytes of the flow at `off` into `w.scratch` (map memory: the
/// step program's 512-byte stack is spent). Where they start before the payload, their
/// first bytes came in the previous segment (`carry`): the load there read this packet's
/// own headers, which are replaced.
#[inline(always)]
pub(super) fn load_joined<const N: usize>(ctx: &TcContext, w: &mut SmbWalk, off: u32) -> bool {
    const { assert!(N <= SCRATCH) };
    let ret = unsafe { bpf_skb_load_bytes(ctx.skb.skb as *const _, off, w.scratch.as_mut_ptr() as *mut _, N as u32) };
    if ret != 0 {
        return false;
    }
    let payload = w.pkt.payload;
    if off < payload {
        // carry[k] is the flow byte at payload - carried + k.
        let base = payload - w.carried;
        let mut i = 0usize;
        while i < N && i < CARRY_MAX {
            let at = off + i as u32;
            if at >= payload {
                break;
            }
            let k = at.wrapping_sub(base) as usize;
            if k < CARRY_MAX {
                w.scratch[i] = w.carry[k];
            }
            i += 1;
        }
    }
    true
}

/// The first 4 bytes `load_joined` left in `w.scratch`.
#[inline(always)]
pub(super) fn scratch4(w: &SmbWalk) -> [u8; 4] {
    [w.scratch[0], w.scratch[1], w.scratch[2], w.scratch[3]]
}
