//! One SMB2 PDU of a compound chain, inside an NBSS record: its header read with the
//! userspace parser's accessors, the quarantine's judgement of a request, and the events
//! for the PDUs the sensor follows (CREATE, READ, WRITE, TREE_CONNECT).
use aya_ebpf::programs::TcContext;
use sensor_common::{
    event::{NAME_LEN, NET_PROTO_SMB2, NF_BLOCKED, NF_CONTINUES, NF_NAME_TRUNCATED, NF_PARTIAL, NF_RAW_PDU, NF_RELATED, NF_WRITE_INTENT, NetPayload, net_verb},
    maps::{carry_kind, net_counter},
    proto::{
        quarantine::{self, Smb2Request},
        smb2::{self, field},
    },
};

use super::{
    Packet,
    carry::{keep, load_joined, scratch4, send_cut},
    copy_name, count, emit, load,
    smb_walk::{SmbWalk, Step, quarantine_drop},
};

/// Compound PDUs looked at per packet.
const MAX_PDUS: u32 = 16;
const SMB2_HDR: u32 = smb2::HEADER_LEN as u32;
const CREATE_FIXED_END: u32 = field::create_req::BUFFER as u32;
/// SMB2 TREE_CONNECT command code (MS-SMB2 2.2.1.2).
const TREE_CONNECT: u16 = 3;

/// Inside a record: the PDU at `pos`, and where the next one of the chain starts.
#[inline(always)]
pub(super) fn pdu_step(ctx: &TcContext, w: &mut SmbWalk) -> Step {
    let len = w.pkt.len;
    let pdu = w.pos;
    let end = w.end;
    if w.pdus >= MAX_PDUS {
        count(net_counter::PDU_LIMIT);
        quarantine_drop(w);
        w.in_record = 0;
        w.pos = end;
        return Step::Next;
    }
    w.pdus += 1;
    if pdu + SMB2_HDR > len {
        // A cut header still says whether this is a PDU to follow once its command and
        // flags (the first 20 bytes) are here. Before that, its bytes wait in the flow
        // state and the next segment's walk starts with this PDU, in step.
        const COMMAND_AND_FLAGS: u32 = smb2::field::FLAGS.end as u32;
        if pdu + COMMAND_AND_FLAGS > len {
            w.in_record = 0;
            // (A header that would run past its record is malformed: not kept.)
            if pdu + SMB2_HDR <= end && keep(ctx, w, pdu, carry_kind::PDU) {
                w.pos = end;
                return Step::Stop;
            }
            quarantine_drop(w);
        } else if load_joined::<{ COMMAND_AND_FLAGS as usize }>(ctx, w, pdu) && scratch4(w) == smb2::PROTOCOL_ID {
            // Its NextCommand (bytes 20-23) is not here: the rest of the chain, in the next
            // segment, would go unread. From a quarantined sender, not proven harmless.
            quarantine_drop(w);
            let header = smb2::Header::new_unchecked(&w.scratch[..COMMAND_AND_FLAGS as usize]);
            let command = header.command_code();
            let followed = net_verb::of_smb2(command, header.is_response(), header.status());
            let related = if header.is_related() { NF_RELATED } else { 0 };
            if let Some(verb) = followed {
                cut_pdu(ctx, w, pdu, end, verb, command, related);
                w.in_record = 0;
                w.pos = end;
                return Step::Stop;
            }
        }
        count(net_counter::TRUNCATED_HEADER);
        quarantine_drop(w);
        w.in_record = 0;
        w.pos = end;
        return Step::Stop;
    }
    if !load_joined::<{ SMB2_HDR as usize }>(ctx, w, pdu) {
        quarantine_drop(w);
        return Step::Stop;
    }
    if scratch4(w) != smb2::PROTOCOL_ID {
        count(net_counter::BAD_MAGIC);
        quarantine_drop(w);
        w.in_record = 0;
        w.pos = end;
        return Step::Next;
    }
    // The userspace parser's accessors, on the bytes loaded from the packet.
    let header = smb2::Header::new_unchecked(&w.scratch[..]);
    let command = header.command_code();
    let next = header.next_command();
    let status = header.status();
    let message_id = header.message_id();
    let tree_id = header.tree_id().unwrap_or(0); // none in an async header
    let session_id = header.session_id();
    let response = header.is_response();
    let ids = SmbIds { command, message_id, tree_id, session_id };
    let related = if header.is_related() { NF_RELATED } else { 0 };
    let verb = if w.blocked != 0 && blocked_request_drops(ctx, pdu, len, command, response) {
        // Dropped whole: nothing of it happens, nothing to attribute.
        quarantine_drop(w);
        None
    } else {
        net_verb::of_smb2(command, response, status)
    };
    if command == TREE_CONNECT && w.drop == 0 {
        tree_connect(ctx, &w.pkt, pdu, end, response, status, related, ids);
    }
    if verb == Some(net_verb::SMB_CREATE) {
        if pdu + CREATE_FIXED_END > len {
            cut_pdu(ctx, w, pdu, end, net_verb::SMB_CREATE, command, related);
        } else if create_request(ctx, &w.pkt, pdu, end, w.blocked != 0, related, ids, &mut w.cont_bytes) {
            w.drop = 1;
        }
    } else if verb == Some(net_verb::SMB_CREATE_RESPONSE) {
        if pdu + field::create_resp::FILE_ID.end as u32 > len {
            cut_pdu(ctx, w, pdu, end, net_verb::SMB_CREATE_RESPONSE, command, related);
        } else if let Some(fid) = load::<[u8; 16]>(ctx, pdu + field::create_resp::FILE_ID.start as u32) {
            emit(&w.pkt, NET_PROTO_SMB2, net_verb::SMB_CREATE_RESPONSE, related, |ev| {
                ids.set(ev);
                ev.file_id = fid;
            });
        }
    } else if let Some(verb) = verb {
        // READ and WRITE requests share Length/Offset/FileId offsets.
        const READ_WRITE_FIXED_END: usize = field::write_req::FILE_ID.end;
        if pdu + READ_WRITE_FIXED_END as u32 > len {
            cut_pdu(ctx, w, pdu, end, verb, command, related);
        } else if let Some(b) = load::<[u8; READ_WRITE_FIXED_END]>(ctx, pdu) {
            let (length, offset, fid) = if verb == net_verb::SMB_WRITE {
                let req = smb2::WriteRequest::new_unchecked(&b[..]);
                (req.length(), req.offset(), req.file_id().to_bytes())
            } else {
                let req = smb2::ReadRequest::new_unchecked(&b[..]);
                (req.length(), req.offset(), req.file_id().to_bytes())
            };
            emit(&w.pkt, NET_PROTO_SMB2, verb, related, |ev| {
                ids.set(ev);
                ev.length = length;
                ev.offset = offset;
                ev.file_id = fid;
            });
        }
    }
    if next == 0 {
        w.in_record = 0;
        w.pos = end;
        return Step::Next;
    }
    // NextCommand must move forward past a header, 8-aligned, inside the record.
    if next < SMB2_HDR || next & 7 != 0 || pdu + next >= end {
        count(net_counter::BAD_NEXT_COMMAND);
        quarantine_drop(w);
        w.in_record = 0;
        w.pos = end;
        return Step::Next;
    }
    w.pos = pdu + next;
    Step::Next
}

/// Must a quarantined sender's PDU with this header (whole in the packet) be dropped
/// before its body is read? Every command but the harmless ones, a CREATE flagged as a
/// response (it would not be judged as a request), and an IOCTL whose control code is
/// not on `quarantine::ioctl_is_harmless`'s list or is not in the packet. A request
/// CREATE is judged on its fixed part in `create_request`.
#[inline(always)]
fn blocked_request_drops(ctx: &TcContext, pdu: u32, len: u32, command: u16, response: bool) -> bool {
    match quarantine::smb2_request(command) {
        Smb2Request::Harmless => false,
        Smb2Request::Create => response,
        Smb2Request::Ioctl => {
            let at = pdu + quarantine::IOCTL_CTL_CODE_AT as u32;
            !(at + 4 <= len && load::<[u8; 4]>(ctx, at).is_some_and(|c| quarantine::ioctl_is_harmless(u32::from_le_bytes(c))))
        }
        Smb2Request::Modifies => true,
    }
}

/// The SMB2 header fields every SMB event carries.
#[derive(Clone, Copy)]
struct SmbIds {
    command: u16,
    message_id: u64,
    tree_id: u32,
    session_id: u64,
}

impl SmbIds {
    #[inline(always)]
    fn set(self, ev: &mut NetPayload) {
        ev.smb_command = self.command;
        ev.message_id = self.message_id;
        ev.tree_id = self.tree_id;
        ev.session_id = self.session_id;
    }
}

/// A followed PDU (`verb`) cut by the end of the packet before the fields it is followed
/// for (in its header, or in its fixed part). Sends the PDU's bytes so far and asks for
/// the next segment's first bytes; userspace parses the two together (ids included). A
/// CREATE's intent is unknown here, so a blocked sender's cut CREATE is dropped as if it
/// wrote: cutting a request at a segment boundary must not get around the quarantine.
#[inline(always)]
fn cut_pdu(ctx: &TcContext, w: &mut SmbWalk, pdu: u32, end: u32, verb: u8, command: u16, related: u32) {
    let mut flags = related | NF_RAW_PDU;
    if verb == net_verb::SMB_CREATE {
        quarantine_drop(w);
    }
    if w.drop != 0 {
        flags |= NF_BLOCKED;
    }
    send_cut(ctx, &w.pkt, pdu, verb, command, flags, end.saturating_sub(w.pkt.len), &mut w.cont_bytes);
}

/// A TREE_CONNECT request (its share path) or successful response (the TreeId), whole in
/// the packet: userspace learns which share each TreeId names. Not followed when cut (a
/// tree connect is small and comes early in a connection), counted.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tree_connect(ctx: &TcContext, pkt: &Packet, pdu: u32, end: u32, response: bool, status: u32, related: u32, ids: SmbIds) {
    if response {
        if status == 0 {
            emit(pkt, NET_PROTO_SMB2, net_verb::SMB_TREE_CONNECT_RESPONSE, related, |ev| ids.set(ev));
        }
        return;
    }
    const FIXED: usize = field::tree_connect_req::END;
    if pdu + FIXED as u32 > pkt.len {
        count(net_counter::TRUNCATED_HEADER);
        return;
    }
    let Some(b) = load::<[u8; FIXED]>(ctx, pdu) else { return };
    let req = smb2::TreeConnectRequest::new_unchecked(&b[..]);
    let off = req.path_offset() as u32;
    let n = req.path_length() as u32;
    if off < FIXED as u32 || pdu + off + n > end || pdu + off + n > pkt.len || n > NAME_LEN as u32 {
        count(net_counter::NAME_OUT_OF_BOUNDS);
        return;
    }
    emit(pkt, NET_PROTO_SMB2, net_verb::SMB_TREE_CONNECT, related, |ev| {
        ids.set(ev);
        copy_name(ctx, ev, pdu + off, n);
    });
}

/// A CREATE request whose header and fixed part are in the packet (the name may run past
/// it). Returns whether to drop.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn create_request(
    ctx: &TcContext,
    pkt: &Packet,
    pdu: u32,
    end: u32,
    blocked: bool,
    related: u32,
    ids: SmbIds,
    cont_bytes: &mut u32,
) -> bool {
    // Header and fixed part, read with the userspace parser's accessors.
    let Some(b) = load::<[u8; field::create_req::BUFFER]>(ctx, pdu) else { return false };
    let req = smb2::CreateRequest::new_unchecked(&b[..]);
    let access = req.desired_access();
    let disposition = req.create_disposition();
    let options = req.create_options();
    let name_offset = req.name_offset() as u32;
    let name_length = req.name_length() as u32;
    let write_intent = req.has_write_intent();
    let may_modify = quarantine::create_may_modify(access, disposition, options);
    let mut flags = related;
    if write_intent {
        flags |= NF_WRITE_INTENT;
    }
    let name_start = pdu + name_offset;
    let mut n = 0u32;
    let mut missing = 0u32;
    if name_length > 0 {
        if name_offset < CREATE_FIXED_END || name_start + name_length > end {
            // The name overlaps the fixed part or runs past the record: malformed.
            count(net_counter::NAME_OUT_OF_BOUNDS);
            flags |= NF_NAME_TRUNCATED;
        } else {
            n = name_length;
            if name_start + n > pkt.len {
                // The record continues in the next segment: what is here, marked partial.
                n = pkt.len.saturating_sub(name_start);
                flags |= NF_PARTIAL;
                missing = name_length - n;
            }
            if n > NAME_LEN as u32 {
                n = NAME_LEN as u32;
                flags |= NF_NAME_TRUNCATED;
                count(net_counter::NAME_TRUNCATED);
            } else if missing != 0 && name_start <= pkt.len {
                // The next segment starts with the rest of the name: ask for what fits.
                *cont_bytes = missing.min(NAME_LEN as u32 - n);
                flags |= NF_CONTINUES;
            }
        }
    }
    let drop = blocked && may_modify;
    if drop {
        flags |= NF_BLOCKED;
        count(net_counter::BLOCKED_DROPS);
    }
    emit(pkt, NET_PROTO_SMB2, net_verb::SMB_CREATE, flags, |ev| {
        ids.set(ev);
        ev.access = access;
        ev.disposition = disposition;
        ev.options = options;
        ev.missing = missing;
        copy_name(ctx, ev, name_start, n);
    });
    drop
}
