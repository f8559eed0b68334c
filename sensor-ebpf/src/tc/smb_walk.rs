//! SMB2 over NBSS (TCP 445/139): the walk over a packet's NBSS records and compound
//! PDUs, one step per tail call of `tc_smb_step`. This module holds the walk's state, its
//! start in `tc_ingress`/`tc_egress`, the record-header step and the verdict; one PDU is
//! `smb_pdu`'s, headers cut by a segment end are `carry`'s.
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    macros::classifier,
    programs::TcContext,
};
use sensor_common::{
    event::{NET_PROTO_SMB2, net_verb},
    maps::{CARRY_MAX, FlowState, carry_kind, net_counter},
    proto::{
        nbss,
        smb2::{self, field},
    },
};

use super::{
    Packet,
    blocked::{flow_table_full, out_of_order_from_blocked, passed_from_blocked},
    carry::{continuation, keep, load_joined, scratch4},
    count, emit, load, read, smb_pdu,
};
use crate::{
    diag::diag,
    maps::{NET_FLOWS, NET_WALK, TC_JUMP},
};

/// NBSS records looked at per packet (and at most 32 steps in all).
const MAX_RECORDS: u32 = 8;
/// Bytes of `SmbWalk::scratch`: the longest header `load_joined` reads.
pub(super) const SCRATCH: usize = smb2::HEADER_LEN;

/// State of the walk over a packet's NBSS records and compound PDUs, kept in the per-CPU
/// `NET_WALK` slot between tail calls of `tc_smb_step` (one step per record header or
/// PDU): the verifier checks one step once, instead of every combination of nested-loop
/// iterations (which exceeded its 1M-instruction budget). At most 32 steps (the kernel's
/// tail-call limit) per packet.
#[repr(C)]
pub struct SmbWalk {
    pub(super) pkt: Packet,
    pub(super) next_seq: u32,
    pub(super) pos: u32,
    pub(super) end: u32,
    pub(super) in_record: u32,
    pub(super) drop: u32,
    pub(super) synced: u32,
    pub(super) encrypted: u32,
    pub(super) known: u32,
    /// The flow had state before this packet (its earlier records were judged).
    pub(super) flow_known: u32,
    pub(super) records: u32,
    pub(super) pdus: u32,
    pub(super) blocked: u32,
    /// Bytes of a PDU cut by the end of this packet, wanted from the next segment.
    pub(super) cont_bytes: u32,
    /// How many bytes of the header at `pos` came in the previous segment: `pos` is that
    /// many bytes before the payload, and `carry` holds them (`FlowState::carry`).
    pub(super) carried: u32,
    pub(super) carry: [u8; CARRY_MAX],
    /// The flow's state before this packet (`known`), copied here rather than onto the
    /// stack: `tc_ingress` had 8 of its 512 stack bytes left.
    pub(super) prev: FlowState,
    /// Where `load_joined` puts the headers it reads.
    pub(super) scratch: [u8; SCRATCH],
    /// The flow's state after this packet, built here rather than on the stack (512 bytes
    /// in all for the step program); `keep` puts a header cut by this packet's end in it.
    pub(super) next: FlowState,
}

/// The start of the walk, in `tc_ingress`/`tc_egress`: where in this packet the next
/// record (or a header the last segment cut) begins, from the flow's state. Returns
/// whether to drop, when the walk does not start (its tail call does not return).
#[inline(always)]
pub(super) fn smb(ctx: &TcContext, pkt: &Packet, blocked: bool) -> bool {
    // (Cannot fail: a one-slot per-CPU array. If it did, a blocked sender is not judged.)
    let Some(w) = NET_WALK.get_ptr_mut(0) else { return blocked };
    let w = unsafe { &mut *w };
    let known = match unsafe { NET_FLOWS.get(&pkt.flow) } {
        Some(s) => {
            w.prev = *s;
            true
        }
        None => false,
    };
    if blocked && out_of_order_from_blocked(known.then_some(&w.prev), pkt.seq) {
        return true;
    }
    let (next_seq, enc_reported) = if known { (w.prev.next_record_seq, w.prev.encrypted_reported) } else { (0u32, 0u32) };
    let plen = pkt.len - pkt.payload;
    if known && w.prev.cont_bytes != 0 && w.prev.cont_seq == pkt.seq && plen > 0 {
        continuation(ctx, pkt, w.prev.cont_bytes.min(plen));
        // Built in `next` (it is rebuilt before the walk writes it): `prev` stays as it was.
        w.next = w.prev;
        w.next.cont_seq = 0;
        w.next.cont_bytes = 0;
        if NET_FLOWS.insert(&pkt.flow, &w.next, 0).is_err() {
            flow_table_full();
        }
    }
    let mut off = pkt.payload;
    // A packet that ends exactly where the next record starts is either the last segment
    // of a record or a retransmission of whole messages (a dropped CREATE comes back like
    // this): parse it, and count a failure as mid-record, not as bad input.
    let mut sure = known;
    let mut carried = 0u32;
    let (mut in_record, mut end) = (0u32, 0u32);
    let s = &w.prev;
    if known
        && s.carry_kind != carry_kind::NONE
        && s.cont_seq == pkt.seq
        && s.carry_len < CARRY_MAX as u32
        && (s.carry_kind == carry_kind::PDU || pkt.seq.wrapping_sub(next_seq) == s.carry_len)
        && (s.carry_kind == carry_kind::RECORD || next_seq.wrapping_sub(pkt.seq) < 0x8000_0000)
    {
        // The previous segment ended inside a header: the walk starts at that header, its
        // first bytes taken from the flow state (a record's, or a PDU's inside the record
        // that ends at `next_seq`).
        carried = s.carry_len;
        off = pkt.payload - carried;
        if s.carry_kind == carry_kind::PDU {
            in_record = 1;
            end = pkt.payload + next_seq.wrapping_sub(pkt.seq);
        }
    } else if known && next_seq != pkt.seq {
        let ahead = next_seq.wrapping_sub(pkt.seq);
        if ahead == plen {
            sure = false;
        } else if ahead < 0x8000_0000 {
            if ahead > plen {
                // The whole packet lies inside a record that started earlier (WRITE data;
                // from a quarantined sender, the rest of a request judged harmless).
                count(net_counter::MID_RECORD);
                if blocked && known {
                    passed_from_blocked(&pkt.flow, &mut w.prev, pkt.seq.wrapping_add(plen));
                }
                return false;
            }
            off = pkt.payload + ahead;
        }
        // Else the packet starts past the expected record (lost capture, or the record
        // length was garbage): try to resynchronise at its start.
    }
    // A packet whose walk would start at its first byte with no record there (data of a
    // connection older than the sensor, a flow out of step, other traffic on the port)
    // leaves here, as the walk's first step would, without its tail call.
    if carried == 0
        && off == pkt.payload
        && plen >= 8
        && let Some(b) = read::<[u8; 8]>(ctx, off)
        && record_start([b[0], b[1], b[2], b[3]], [b[4], b[5], b[6], b[7]]) == RecordStart::NotARecord
    {
        let drop = no_record_here(sure, known, blocked);
        if blocked && !drop && known {
            passed_from_blocked(&pkt.flow, &mut w.prev, pkt.seq.wrapping_add(plen));
        }
        return drop;
    }
    w.pkt = *pkt;
    w.next_seq = next_seq;
    w.pos = off;
    w.end = end;
    w.in_record = in_record;
    w.synced = 0;
    w.encrypted = enc_reported;
    w.known = sure as u32;
    w.flow_known = known as u32;
    w.records = 0;
    w.pdus = 0;
    w.blocked = blocked as u32;
    w.drop = 0;
    w.cont_bytes = 0;
    w.carried = carried;
    if carried != 0 {
        w.carry = w.prev.carry;
    } else {
        w.carry = [0; CARRY_MAX];
    }
    w.next.carry_len = 0;
    w.next.carry_kind = carry_kind::NONE;
    // Does not return if the step program is installed.
    let _ = unsafe { TC_JUMP.tail_call(ctx, 0) };
    diag!(count(net_counter::NO_STEP_PROGRAM), "tail call to tc_smb_step failed (TC_JUMP slot 0 empty): SMB2 not parsed");
    blocked
}

/// Records where the flow's next NBSS record starts and gives the verdict.
#[inline(always)]
fn smb_finish(w: &mut SmbWalk) -> i32 {
    // A dropped packet was not delivered: its retransmission must be parsed (and dropped) again.
    if w.drop == 0 && w.synced != 0 {
        w.next.next_record_seq = w.pkt.seq.wrapping_add(w.pos.wrapping_sub(w.pkt.payload));
        w.next.encrypted_reported = w.encrypted;
        w.next.cont_seq = w.pkt.seq.wrapping_add(w.pkt.len - w.pkt.payload);
        w.next.cont_bytes = w.cont_bytes;
        if NET_FLOWS.insert(&w.pkt.flow, &w.next, 0).is_err() {
            flow_table_full();
        }
    } else if w.drop == 0 && w.blocked != 0
        && let Some(s) = unsafe { NET_FLOWS.get(&w.pkt.flow) }
    {
        // Passed without a record boundary in it (the tail of a record): the flow's next
        // byte moves on all the same (`out_of_order_from_blocked`).
        w.prev = *s;
        passed_from_blocked(&w.pkt.flow, &mut w.prev, w.pkt.seq.wrapping_add(w.pkt.len - w.pkt.payload));
    }
    if w.drop != 0 { TC_ACT_SHOT as i32 } else { TC_ACT_OK as i32 }
}

/// One step of the SMB walk per tail call (see `SmbWalk`).
#[classifier]
pub fn tc_smb_step(ctx: TcContext) -> i32 {
    let Some(w) = NET_WALK.get_ptr_mut(0) else { return TC_ACT_OK as i32 };
    let w = unsafe { &mut *w };
    if smb_step(&ctx, w) == Step::Next {
        let _ = unsafe { TC_JUMP.tail_call(&ctx, 0) };
        // Tail-call limit reached: stop here; what is left of the packet is not judged.
        count(net_counter::PDU_LIMIT);
        quarantine_drop(w);
    }
    smb_finish(w)
}

/// What a step of the walk says about the next one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Another record header or PDU follows at `pos`: tail-call the step program again.
    Next,
    /// The walk is over for this packet (its end, a limit, a header kept for the next
    /// segment, or input that stops it): give the verdict.
    Stop,
}

/// One step: an NBSS record header at `pos` (between records) or one PDU (inside one).
#[inline(always)]
fn smb_step(ctx: &TcContext, w: &mut SmbWalk) -> Step {
    if w.in_record == 0 { record_step(ctx, w) } else { smb_pdu::pdu_step(ctx, w) }
}

/// Between records: the NBSS record header at `pos`, and what its record starts with.
#[inline(always)]
fn record_step(ctx: &TcContext, w: &mut SmbWalk) -> Step {
    let len = w.pkt.len;
    if w.pos >= len {
        return Step::Stop;
    }
    if w.records >= MAX_RECORDS {
        count(net_counter::RECORD_LIMIT);
        quarantine_drop(w);
        return Step::Stop;
    }
    w.records += 1;
    if w.pos + 4 > len {
        // Only where a record is known to start here (not in data of a flow first seen
        // mid-stream): its bytes wait in the flow state, and the next segment's walk
        // starts with this header, in step (and judges a quarantined sender's request
        // there).
        if !((w.known != 0 || w.synced != 0) && keep(ctx, w, w.pos, carry_kind::RECORD)) {
            count(net_counter::TRUNCATED_HEADER);
            quarantine_drop(w);
        }
        return Step::Stop;
    }
    if !load_joined::<4>(ctx, w, w.pos) {
        quarantine_drop(w);
        return Step::Stop;
    }
    let h = scratch4(w);
    let rlen = nbss::Packet::new_unchecked(&h[..]).length();
    let body = w.pos + 4;
    let end = body + rlen;
    let mut magic = [0u8; 4];
    if h[0] == 0 && rlen >= 4 {
        if body + 4 > len {
            // The protocol id is cut: the record header and what there is of it wait
            // for the next segment, as above.
            if !keep(ctx, w, w.pos, carry_kind::RECORD) {
                count(net_counter::TRUNCATED_HEADER);
                quarantine_drop(w);
                w.synced = 1;
                w.pos = end;
            }
            return Step::Stop;
        }
        if !load_joined::<4>(ctx, w, body) {
            quarantine_drop(w);
            return Step::Stop;
        }
        magic = scratch4(w);
    }
    match record_start(h, magic) {
        RecordStart::Transform => {
            w.synced = 1;
            // An encrypted message's command cannot be read: from a quarantined
            // sender it is dropped (the client may ask for encryption itself).
            quarantine_drop(w);
            if w.encrypted == 0 {
                w.encrypted = 1;
                let session = load::<[u8; 8]>(ctx, body + field::transform::SESSION_ID.start as u32)
                    .map_or(0, u64::from_le_bytes);
                let missing = end.saturating_sub(len);
                emit(&w.pkt, NET_PROTO_SMB2, net_verb::SMB_ENCRYPTED, 0, |ev| {
                    ev.session_id = session;
                    ev.missing = missing;
                });
            }
            w.pos = end;
            return Step::Next;
        }
        RecordStart::Smb2 => {
            w.synced = 1;
            w.in_record = 1;
            w.pdus = 0;
            w.end = end;
            w.pos = body;
            return Step::Next;
        }
        RecordStart::Opaque => {
            // Compressed SMB2 or SMB1: not read here, so not proven harmless.
            w.synced = 1;
            quarantine_drop(w);
            w.pos = end;
            return Step::Next;
        }
        RecordStart::Skipped => {
            w.synced = 1;
            w.pos = end;
            return Step::Next;
        }
        RecordStart::NotARecord => {
            if no_record_here(w.known != 0, w.flow_known != 0, w.blocked != 0 && w.drop == 0) {
                w.drop = 1;
            }
            return Step::Stop;
        }
    }
}

/// What starts at an NBSS record header `h`, given the 4 bytes after it (`magic`, read
/// when the header announces a session message of 4 bytes or more). One answer for the walk
/// and for the check that keeps an unknown flow's packets that start no record out of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RecordStart {
    Smb2,
    Transform,
    /// Compressed or SMB1 messages: stepped over (dropped from a quarantined sender).
    Opaque,
    /// Empty session messages, and the session service's request/response/keep-alive
    /// records (port 139): stepped over.
    Skipped,
    NotARecord,
}

#[inline(always)]
fn record_start(h: [u8; 4], magic: [u8; 4]) -> RecordStart {
    let rlen = nbss::Packet::new_unchecked(&h[..]).length();
    if h[0] == 0 && rlen >= 4 {
        return if magic == smb2::PROTOCOL_ID {
            RecordStart::Smb2
        } else if magic == smb2::TRANSFORM_PROTOCOL_ID {
            RecordStart::Transform
        } else if magic == smb2::COMPRESSION_PROTOCOL_ID || magic == smb2::SMB1_PROTOCOL_ID {
            RecordStart::Opaque
        } else {
            RecordStart::NotARecord
        };
    }
    if h[0] == 0 || matches!(h[0], 0x81 | 0x82 | 0x83 | 0x84 | 0x85) { RecordStart::Skipped } else { RecordStart::NotARecord }
}

/// No record starts where the walk expected one. Where the flow's state said one would
/// (`sure`), that is counted as bad magic and, from a quarantined sender (`blocked`), is
/// not proven harmless: dropped (as `quarantine_drop`). Otherwise it is data of a record that began
/// before the sensor saw the flow: counted as mid-record, and dropped from a quarantined
/// sender too when the flow is unknown (`!flow_known`: its record headers were never
/// judged; the client reconnects, and the new flow is read from its first record).
/// Returns whether to drop.
#[inline(always)]
fn no_record_here(sure: bool, flow_known: bool, blocked: bool) -> bool {
    if !sure {
        count(net_counter::MID_RECORD);
        if blocked && !flow_known {
            count(net_counter::BLOCKED_DROPS);
            return true;
        }
        return false;
    }
    count(net_counter::BAD_MAGIC);
    if blocked {
        count(net_counter::BLOCKED_DROPS);
    }
    blocked
}

/// From a quarantined sender, the packet is dropped (counted once): what it holds is
/// not proven harmless (an encrypted, compressed or SMB1 message, a header cut by the
/// packet end, a flow out of sync, a command that can change files). The sender's
/// retransmission is read again, so nothing is lost but its time.
#[inline(always)]
pub(super) fn quarantine_drop(w: &mut SmbWalk) {
    if w.blocked != 0 && w.drop == 0 {
        w.drop = 1;
        count(net_counter::BLOCKED_DROPS);
    }
}
