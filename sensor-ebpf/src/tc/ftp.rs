//! FTP control segments (TCP 21): sent up raw, parsed in userspace; a quarantined
//! sender's command segment judged here, in its own program (`tc_ftp_blocked`).
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::generated::bpf_skb_load_bytes,
    macros::classifier,
    programs::TcContext,
};
use sensor_common::{
    event::{NAME_LEN, NET_PROTO_FTP, NF_BLOCKED, NF_NAME_TRUNCATED, net_verb},
    maps::net_counter,
    proto::quarantine::{self, FtpCommand, FtpSegment},
};

use super::{
    Packet,
    blocked::{out_of_order_from_blocked, passed_from_blocked},
    copy_name, count, emit,
};
use crate::{
    diag::diag,
    maps::{FTP_SCAN, NET_FLOWS, TC_JUMP},
};

/// FTP control segments, both ways, go up raw: userspace reassembles the two streams and
/// answers each command with its reply, in order (`network::ftp_session`; it keeps nothing
/// of a PASS line). A quarantined sender's segment is judged by `tc_ftp_blocked`, its own
/// program (tail call, slot `TC_JUMP_FTP`): verified apart, its byte loop is checked from
/// one entry state instead of once per path through this program (the 6.1 verifier ran
/// out of budget so).
#[inline(always)]
pub(super) fn ftp(ctx: &TcContext, pkt: &Packet, request: bool, blocked: bool) -> bool {
    if blocked {
        let Some(scan) = FTP_SCAN.get_ptr_mut(0) else { return true };
        unsafe { (*scan).pkt = *pkt };
        let _ = unsafe { TC_JUMP.tail_call(ctx, TC_JUMP_FTP) };
        // Not installed: not judged, so dropped.
        diag!(count(net_counter::NO_STEP_PROGRAM), "tail call to tc_ftp_blocked failed (TC_JUMP slot 1 empty): quarantined FTP dropped");
        count(net_counter::BLOCKED_DROPS);
        return true;
    }
    let avail = pkt.len - pkt.payload;
    let (n, truncated) = if avail > NAME_LEN as u32 { (NAME_LEN as u32, true) } else { (avail, false) };
    let verb = if request { net_verb::FTP_COMMAND } else { net_verb::FTP_REPLY };
    emit(pkt, NET_PROTO_FTP, verb, if truncated { NF_NAME_TRUNCATED } else { 0 }, |ev| {
        copy_name(ctx, ev, pkt.payload, n);
        ev.missing = avail - n;
    });
    false
}

/// `TC_JUMP` slot of `tc_ftp_blocked`.
const TC_JUMP_FTP: u32 = 1;

/// A quarantined sender's FTP command segment (`ftp` put its `Packet` in `FTP_SCAN`).
#[classifier]
pub fn tc_ftp_blocked(ctx: TcContext) -> i32 {
    let Some(scan) = FTP_SCAN.get_ptr_mut(0) else { return TC_ACT_SHOT as i32 };
    let pkt = unsafe { (*scan).pkt };
    if ftp_blocked_command(&ctx, &pkt) { TC_ACT_SHOT as i32 } else { TC_ACT_OK as i32 }
}

/// From a quarantined sender, a segment that is not one whole line of a harmless command
/// (`proto::quarantine::ftp_command`), or not the flow's next byte, is dropped, so
/// `ST` + `OR x`, `NOOP\r\nSTOR x` or an overlapping retransmission cannot get around the
/// block. Returns whether to drop.
#[inline(always)]
fn ftp_blocked_command(ctx: &TcContext, pkt: &Packet) -> bool {
    let avail = pkt.len.wrapping_sub(pkt.payload);
    if avail == 0 || avail > 0xffff {
        return true;
    }
    let (n, truncated) = if avail > NAME_LEN as u32 { (NAME_LEN as u32, true) } else { (avail, false) };
    let missing = avail - n;
    let state = unsafe { NET_FLOWS.get(&pkt.flow) }.copied();
    let mut flags = NF_BLOCKED | if truncated { NF_NAME_TRUNCATED } else { 0 };
    let drop = match state {
        _ if out_of_order_from_blocked(state.as_ref(), pkt.seq) => true,
        _ => match ftp_segment(ctx, pkt, n, truncated) {
            Some(seg) => seg.blocked_must_drop(),
            // Unreadable: not proven harmless.
            None => {
                count(net_counter::TRUNCATED_HEADER);
                true
            }
        },
    };
    if drop {
        count(net_counter::BLOCKED_DROPS);
    } else {
        flags &= !NF_BLOCKED;
        if let Some(mut s) = state {
            passed_from_blocked(&pkt.flow, &mut s, pkt.seq.wrapping_add(avail));
        }
    }
    emit(pkt, NET_PROTO_FTP, net_verb::FTP_COMMAND, flags, |ev| {
        copy_name(ctx, ev, pkt.payload, n);
        ev.missing = missing;
    });
    drop
}

/// The kernel's half of `proto::quarantine::ftp_segment`: the first `n` (1..=NAME_LEN)
/// payload bytes copied to the per-CPU `FTP_SCAN` buffer, their line ends and control
/// bytes counted, the verb read from the first bytes.
#[inline(always)]
fn ftp_segment(ctx: &TcContext, pkt: &Packet, n: u32, truncated: bool) -> Option<FtpSegment> {
    if n == 0 {
        return None;
    }
    let scan = FTP_SCAN.get_ptr_mut(0)?;
    let scan = unsafe { &mut *scan };
    // Spaces first (no line end, no control byte), then the segment: the count runs over
    // all NAME_LEN bytes with no test of the length, so the verifier leaves the loop in one
    // state and checks what follows once (an exit per length, 256 of them, ran the 6.1
    // verifier past its budget, and a bound test marks the length precise, so its
    // branches never merge).
    scan.bytes = [b' '; NAME_LEN];
    let n = core::hint::black_box(n);
    let len = (n.wrapping_sub(1) & (NAME_LEN as u32 - 1)) + 1;
    let ret = unsafe { bpf_skb_load_bytes(ctx.skb.skb as *const _, pkt.payload, scan.bytes.as_mut_ptr() as *mut _, len) };
    if ret != 0 {
        return None;
    }
    // The counts live in map memory, read and written through volatile accesses: in
    // registers they would be constants the verifier tracks per path, and the branches of
    // every byte's test would never merge. From memory they are unknown values.
    let lfs = &raw mut scan.lfs;
    let crs = &raw mut scan.crs;
    let others = &raw mut scan.others;
    unsafe {
        core::ptr::write_volatile(lfs, 0);
        core::ptr::write_volatile(crs, 0);
        core::ptr::write_volatile(others, 0);
    }
    let mut i = 0usize;
    while i < NAME_LEN {
        let b = scan.bytes[i];
        let counter = if b == b'\n' {
            lfs
        } else if b == b'\r' {
            crs
        } else if quarantine::is_other_control(b) {
            others
        } else {
            core::ptr::null_mut()
        };
        if !counter.is_null() {
            unsafe { core::ptr::write_volatile(counter, core::ptr::read_volatile(counter) + 1) };
        }
        i += 1;
    }
    let (lfs, crs, others) = unsafe { (core::ptr::read_volatile(lfs), core::ptr::read_volatile(crs), core::ptr::read_volatile(others)) };
    let buf = &scan.bytes;
    let last = buf[((len - 1) & (NAME_LEN as u32 - 1)) as usize];
    // Its own masked index (LLVM would derive it from `last`'s minus one, which the
    // verifier cannot bound).
    let before = core::hint::black_box(len.wrapping_sub(2)) & (NAME_LEN as u32 - 1);
    let before_last = if len >= 2 { buf[before as usize] } else { 0 };
    let clean_end = others == 0 && (crs == 0 || (crs == 1 && before_last == b'\r'));
    // Bytes past `len` are a previous packet's: read as spaces.
    let at = |k: usize| if (k as u32) < len { buf[k & (NAME_LEN - 1)] } else { b' ' };
    let (verb, vlen) = quarantine::ftp_verb([at(0), at(1), at(2), at(3)]);
    let longer = vlen == 4 && !matches!(at(4), b' ' | b'\r' | b'\n');
    let command = if longer { FtpCommand::Modifies } else { quarantine::ftp_command(verb, vlen) };
    Some(FtpSegment { single_line: !truncated && lfs == 1 && last == b'\n' && clean_end, command })
}

/// `FTP_SCAN`'s value.
#[repr(C)]
pub struct FtpScan {
    /// The packet `tc_ftp_blocked` judges (set by `ftp` before the tail call).
    pkt: Packet,
    bytes: [u8; NAME_LEN],
    lfs: u32,
    crs: u32,
    others: u32,
}

