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
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::{bpf_ktime_get_boot_ns, generated::bpf_skb_load_bytes},
    macros::classifier,
    programs::TcContext,
};
use sensor_common::{
    event::{
        EventKind, NAME_LEN, NET_DIR_EGRESS, NET_DIR_INGRESS, NET_PROTO_FTP, NET_PROTO_SMB2,
        NF_BLOCKED, NF_CONTINUES, NF_IPV6, NF_RAW_PDU, NF_NAME_TRUNCATED, NF_PARTIAL, NF_RELATED, NF_WRITE_INTENT,
        NetEvent, net_verb,
    },
    maps::{BlockedKey, CARRY_MAX, FlowKey, FlowState, carry_kind, net_counter},
    proto::{
        nbss,
        quarantine::{self, FtpCommand, FtpSegment, Smb2Request},
        smb2::{self, field},
    },
};

use crate::maps::{BLOCKED, EVENTS, FTP_SCAN, NET_COUNTERS, NET_FLOWS, NET_WALK, TC_JUMP};

const ETH_HLEN: u32 = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const SMB_PORT: u16 = 445;
const NBSS_PORT: u16 = 139;
const FTP_PORT: u16 = 21;

/// NBSS records and compound PDUs looked at per packet (and at most 32 steps in all).
const MAX_RECORDS: u32 = 8;
const MAX_PDUS: u32 = 16;

const SMB2_HDR: u32 = smb2::HEADER_LEN as u32;
const SCRATCH: usize = smb2::HEADER_LEN;
const CREATE_FIXED_END: u32 = field::create_req::BUFFER as u32;
/// SMB2 TREE_CONNECT command code (MS-SMB2 2.2.1.2).
const TREE_CONNECT: u16 = 3;

#[classifier]
pub fn tc_ingress(ctx: TcContext) -> i32 {
    classify(&ctx, NET_DIR_INGRESS)
}

#[classifier]
pub fn tc_egress(ctx: TcContext) -> i32 {
    classify(&ctx, NET_DIR_EGRESS)
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(c) = NET_COUNTERS.get_ptr_mut(slot) {
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn is_service(port: u16) -> bool {
    port == SMB_PORT || port == NBSS_PORT || port == FTP_PORT
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
    if inspect(ctx, direction) { TC_ACT_SHOT as i32 } else { TC_ACT_OK as i32 }
}

/// An IPv4 address mapped into IPv6, as the maps' keys hold addresses.
#[inline(always)]
fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3]]
}

/// A packet whose TCP payload cannot be read here (IP fragment, IPv6 extension headers):
/// dropped when a quarantined sender sends it (counted), passed otherwise.
#[inline(always)]
fn unreadable_from_blocked(direction: u8, saddr: &[u8; 16]) -> bool {
    let blocked = direction == NET_DIR_INGRESS && unsafe { BLOCKED.get(&BlockedKey { addr: *saddr }) }.is_some();
    if blocked {
        count(net_counter::BLOCKED_DROPS);
    }
    blocked
}

/// A quarantined sender's SYN: its flow's state starts at the first data byte.
#[inline(always)]
fn track_from_syn(flow: &FlowKey, seq: u32) {
    if unsafe { BLOCKED.get(&BlockedKey { addr: flow.saddr }) }.is_none() {
        return;
    }
    let first = seq.wrapping_add(1);
    let state = FlowState { next_record_seq: first, cont_seq: first, ..FlowState::default() };
    if NET_FLOWS.insert(flow, &state, 0).is_err() {
        count(net_counter::FLOW_TABLE_FULL);
    }
}

/// A quarantined sender's packet is judged only in the order the server reads the flow:
/// it must start exactly where the last one passed ended (`state.cont_seq`, from the SYN
/// on). Otherwise - a flow whose start was not seen, a retransmission overlapping what
/// passed (the server would read only its new bytes), a segment ahead (queued out of
/// order, or never accepted: a bad checksum) - what the server will read cannot be known
/// here: dropped (counted). Returns whether to drop.
#[inline(always)]
fn out_of_order_from_blocked(state: Option<FlowState>, seq: u32) -> bool {
    let drop = state.is_none_or(|s| s.cont_seq != seq);
    if drop {
        count(net_counter::OUT_OF_ORDER_BLOCKED);
        count(net_counter::BLOCKED_DROPS);
    }
    drop
}

/// After a quarantined sender's packet passed: the flow's next byte.
#[inline(always)]
fn passed_from_blocked(flow: &FlowKey, state: FlowState, next: u32) {
    if NET_FLOWS.insert(flow, &FlowState { cont_seq: next, ..state }, 0).is_err() {
        count(net_counter::FLOW_TABLE_FULL);
    }
}

/// Returns true when the packet must be dropped (quarantine).
#[inline(always)]
fn inspect(ctx: &TcContext, direction: u8) -> bool {
    let proto = u16::from_be(ctx.skb.protocol() as u16);
    let mut len = ctx.len();
    let mut flow = FlowKey::default();
    let l4;
    let ipv6;
    if proto == ETH_P_IP {
        let Some(ip) = read::<[u8; 20]>(ctx, ETH_HLEN) else { return false };
        if ip[9] != IPPROTO_TCP {
            // ESP and AH hide or wrap what they carry: not proven harmless.
            if matches!(ip[9], 50 | 51) {
                return unreadable_from_blocked(direction, &v4_mapped([ip[12], ip[13], ip[14], ip[15]]));
            }
            return false;
        }
        let ihl = ((ip[0] & 0x0f) as u32) * 4;
        if ihl < 20 {
            return false;
        }
        // The frame may carry padding after the IP packet (Ethernet's 60-byte minimum, or
        // an attacker's): the IP stack trims it later, so it is no data of the flow.
        let end = ETH_HLEN + u16::from_be_bytes([ip[2], ip[3]]) as u32;
        if end < len {
            len = end;
        }
        // A non-first fragment has no TCP header; a first one has only part of the payload.
        // Neither can be judged: from a quarantined sender, dropped.
        if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
            count(net_counter::IP_FRAGMENT);
            return unreadable_from_blocked(direction, &v4_mapped([ip[12], ip[13], ip[14], ip[15]]));
        }
        flow.saddr[10] = 0xff;
        flow.saddr[11] = 0xff;
        flow.daddr[10] = 0xff;
        flow.daddr[11] = 0xff;
        flow.saddr[12..16].copy_from_slice(&ip[12..16]);
        flow.daddr[12..16].copy_from_slice(&ip[16..20]);
        l4 = ETH_HLEN + ihl;
        ipv6 = false;
    } else if proto == ETH_P_IPV6 {
        let Some(ip) = read::<[u8; 40]>(ctx, ETH_HLEN) else { return false };
        // Padding after the packet is no data (payload length 0 is a jumbogram: skb length).
        let payload_len = u16::from_be_bytes([ip[4], ip[5]]) as u32;
        if payload_len != 0 && ETH_HLEN + 40 + payload_len < len {
            len = ETH_HLEN + 40 + payload_len;
        }
        if ip[6] != IPPROTO_TCP {
            // Hop-by-hop, routing, fragment, destination options, AH: not walked, so from
            // a quarantined sender not proven harmless.
            if matches!(ip[6], 0 | 43 | 44 | 51 | 60) {
                count(net_counter::IPV6_EXT_HEADER);
                return unreadable_from_blocked(direction, &[ip[8], ip[9], ip[10], ip[11], ip[12], ip[13], ip[14], ip[15], ip[16], ip[17], ip[18], ip[19], ip[20], ip[21], ip[22], ip[23]]);
            }
            return false;
        }
        flow.saddr.copy_from_slice(&ip[8..24]);
        flow.daddr.copy_from_slice(&ip[24..40]);
        l4 = ETH_HLEN + 40;
        ipv6 = true;
    } else {
        return false;
    }
    let Some(tcp) = read::<[u8; 20]>(ctx, l4) else { return false };
    let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
    let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
    if !is_service(dport) && !is_service(sport) {
        return false;
    }
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let payload = l4 + ((tcp[12] >> 4) as u32) * 4;
    flow.sport = sport;
    flow.dport = dport;
    // A connection a quarantined sender opens: its flow is followed from its first byte
    // (`out_of_order_from_blocked`). SYN without ACK: rare, so the lookup costs nothing.
    // (The key is used by value until here: a reference taken earlier made LLVM zero it
    // with a memset call at the top, for every packet.)
    if tcp[13] & 0x12 == 0x02 && is_service(dport) && direction == NET_DIR_INGRESS {
        let key = flow;
        track_from_syn(&key, seq);
    }
    if payload >= len {
        return false;
    }
    count(net_counter::PACKETS_INSPECTED);
    let request = is_service(dport);
    let blocked = request
        && direction == NET_DIR_INGRESS
        && unsafe { BLOCKED.get(&BlockedKey { addr: flow.saddr }) }.is_some();
    let pkt = Packet { flow, ipv6, direction, seq, payload, len, ifindex: unsafe { (*ctx.skb.skb).ifindex } };
    let service = if request { dport } else { sport };
    if service == FTP_PORT {
        ftp(ctx, &pkt, request, blocked)
    } else {
        smb(ctx, &pkt, blocked)
    }
}

/// Reserves a `NetEvent`, fills the common part, lets `fill` add the rest, submits.
/// One function owns the reservation (see `taint::emit` for why).
#[inline(always)]
fn emit(pkt: &Packet, proto: u8, verb: u8, flags: u32, fill: impl FnOnce(&mut NetEvent)) {
    let Some(mut entry) = EVENTS.reserve::<NetEvent>(0) else {
        count(net_counter::RINGBUF_FULL);
        return;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.kind = EventKind::NetFile as u32;
    ev.flags = flags | if pkt.ipv6 { NF_IPV6 } else { 0 };
    ev.ts_boot_ns = unsafe { bpf_ktime_get_boot_ns() };
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
fn copy_name(ctx: &TcContext, ev: &mut NetEvent, off: u32, n: u32) {
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

/// The first `n` payload bytes of the segment that continues a cut CREATE name.
#[inline(always)]
fn continuation(ctx: &TcContext, pkt: &Packet, n: u32) {
    emit(pkt, NET_PROTO_SMB2, net_verb::SMB_CONTINUATION, 0, |ev| {
        copy_name(ctx, ev, pkt.payload, n);
    });
}

// ---------------------------------------------------------------------------------- FTP

/// FTP control segments, both ways, go up raw: userspace reassembles the two streams and
/// answers each command with its reply, in order (`network::ftp_session`; it keeps nothing
/// of a PASS line). A quarantined sender's segment is judged by `tc_ftp_blocked`, its own
/// program (tail call, slot `TC_JUMP_FTP`): verified apart, its byte loop is checked from
/// one entry state instead of once per path through this program (the 6.1 verifier ran
/// out of budget so).
#[inline(always)]
fn ftp(ctx: &TcContext, pkt: &Packet, request: bool, blocked: bool) -> bool {
    if blocked {
        let Some(scan) = FTP_SCAN.get_ptr_mut(0) else { return true };
        unsafe { (*scan).pkt = *pkt };
        let _ = unsafe { TC_JUMP.tail_call(ctx, TC_JUMP_FTP) };
        // Not installed: not judged, so dropped.
        count(net_counter::NO_STEP_PROGRAM);
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
        _ if out_of_order_from_blocked(state, pkt.seq) => true,
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
        if let Some(s) = state {
            passed_from_blocked(&pkt.flow, s, pkt.seq.wrapping_add(avail));
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

// ---------------------------------------------------------------------------------- SMB2

/// State of the walk over a packet's NBSS records and compound PDUs, kept in the per-CPU
/// `NET_WALK` slot between tail calls of `tc_smb_step` (one step per record header or
/// PDU): the verifier checks one step once, instead of every combination of nested-loop
/// iterations (which exceeded its 1M-instruction budget). At most 32 steps (the kernel's
/// tail-call limit) per packet.
#[repr(C)]
pub struct SmbWalk {
    pkt: Packet,
    next_seq: u32,
    pos: u32,
    end: u32,
    in_record: u32,
    drop: u32,
    synced: u32,
    encrypted: u32,
    known: u32,
    /// The flow had state before this packet (its earlier records were judged).
    flow_known: u32,
    records: u32,
    pdus: u32,
    blocked: u32,
    /// Bytes of a PDU cut by the end of this packet, wanted from the next segment.
    cont_bytes: u32,
    /// How many bytes of the header at `pos` came in the previous segment: `pos` is that
    /// many bytes before the payload, and `carry` holds them (`FlowState::carry`).
    carried: u32,
    carry: [u8; CARRY_MAX],
    /// Where `load_joined` puts the headers it reads.
    scratch: [u8; SCRATCH],
    /// The flow's state after this packet, built here rather than on the stack (512 bytes
    /// in all for the step program); `keep` puts a header cut by this packet's end in it.
    next: FlowState,
}

#[inline(always)]
fn smb(ctx: &TcContext, pkt: &Packet, blocked: bool) -> bool {
    let state = unsafe { NET_FLOWS.get(&pkt.flow) }.copied();
    if blocked && out_of_order_from_blocked(state, pkt.seq) {
        return true;
    }
    let (known, next_seq, enc_reported) = match state {
        Some(s) => (true, s.next_record_seq, s.encrypted_reported),
        None => (false, 0u32, 0u32),
    };
    let plen = pkt.len - pkt.payload;
    if let Some(s) = state
        && s.cont_bytes != 0
        && s.cont_seq == pkt.seq
        && plen > 0
    {
        continuation(ctx, pkt, s.cont_bytes.min(plen));
        let _ = NET_FLOWS.insert(&pkt.flow, &FlowState { cont_seq: 0, cont_bytes: 0, ..s }, 0);
    }
    let mut off = pkt.payload;
    // A packet that ends exactly where the next record starts is either the last segment
    // of a record or a retransmission of whole messages (a dropped CREATE comes back like
    // this): parse it, and count a failure as mid-record, not as bad input.
    let mut sure = known;
    let mut carried = 0u32;
    let mut carry = [0u8; CARRY_MAX];
    let (mut in_record, mut end) = (0u32, 0u32);
    if let Some(s) = state
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
        carry = s.carry;
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
                if blocked && let Some(s) = state {
                    passed_from_blocked(&pkt.flow, s, pkt.seq.wrapping_add(plen));
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
        if blocked && !drop && let Some(s) = state {
            passed_from_blocked(&pkt.flow, s, pkt.seq.wrapping_add(plen));
        }
        return drop;
    }
    // (Cannot fail: a one-slot per-CPU array. If it did, a blocked sender is not judged.)
    let Some(w) = NET_WALK.get_ptr_mut(0) else { return blocked };
    let w = unsafe { &mut *w };
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
    w.carry = carry;
    w.next.carry_len = 0;
    w.next.carry_kind = carry_kind::NONE;
    // Does not return if the step program is installed.
    let _ = unsafe { TC_JUMP.tail_call(ctx, 0) };
    count(net_counter::NO_STEP_PROGRAM);
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
        let _ = NET_FLOWS.insert(&w.pkt.flow, &w.next, 0);
    } else if w.drop == 0 && w.blocked != 0
        && let Some(s) = unsafe { NET_FLOWS.get(&w.pkt.flow) }.copied()
    {
        // Passed without a record boundary in it (the tail of a record): the flow's next
        // byte moves on all the same (`out_of_order_from_blocked`).
        passed_from_blocked(&w.pkt.flow, s, w.pkt.seq.wrapping_add(w.pkt.len - w.pkt.payload));
    }
    if w.drop != 0 { TC_ACT_SHOT as i32 } else { TC_ACT_OK as i32 }
}

/// The raw bytes from `start` to the end of the packet of something the packet end cut
/// (`missing` bytes absent), with the flow's next segment asked for (`cont_bytes`):
/// userspace joins the two (`network::reassembly`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn send_cut(ctx: &TcContext, pkt: &Packet, start: u32, verb: u8, smb_command: u16, flags: u32, missing: u32, cont_bytes: &mut u32) {
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
fn keep(ctx: &TcContext, w: &mut SmbWalk, from: u32, kind: u32) -> bool {
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
fn load_joined<const N: usize>(ctx: &TcContext, w: &mut SmbWalk, off: u32) -> bool {
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
fn scratch4(w: &SmbWalk) -> [u8; 4] {
    [w.scratch[0], w.scratch[1], w.scratch[2], w.scratch[3]]
}

/// One step of the SMB walk per tail call (see `SmbWalk`).
#[classifier]
pub fn tc_smb_step(ctx: TcContext) -> i32 {
    let Some(w) = NET_WALK.get_ptr_mut(0) else { return TC_ACT_OK as i32 };
    let w = unsafe { &mut *w };
    if smb_step(&ctx, w) == 0 {
        let _ = unsafe { TC_JUMP.tail_call(&ctx, 0) };
        // Tail-call limit reached: stop here; what is left of the packet is not judged.
        count(net_counter::PDU_LIMIT);
        quarantine_drop(w);
    }
    smb_finish(w)
}

/// One step: an NBSS record header at `pos` (between records) or one PDU (inside one).
/// Returns 1 to stop the loop.
#[inline(always)]
fn smb_step(ctx: &TcContext, w: &mut SmbWalk) -> i64 {
    let len = w.pkt.len;
    if w.in_record == 0 {
        if w.pos >= len {
            return 1;
        }
        if w.records >= MAX_RECORDS {
            count(net_counter::RECORD_LIMIT);
            quarantine_drop(w);
            return 1;
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
            return 1;
        }
        if !load_joined::<4>(ctx, w, w.pos) {
            quarantine_drop(w);
            return 1;
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
                return 1;
            }
            if !load_joined::<4>(ctx, w, body) {
                quarantine_drop(w);
                return 1;
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
                return 0;
            }
            RecordStart::Smb2 => {
                w.synced = 1;
                w.in_record = 1;
                w.pdus = 0;
                w.end = end;
                w.pos = body;
                return 0;
            }
            RecordStart::Opaque => {
                // Compressed SMB2 or SMB1: not read here, so not proven harmless.
                w.synced = 1;
                quarantine_drop(w);
                w.pos = end;
                return 0;
            }
            RecordStart::Skipped => {
                w.synced = 1;
                w.pos = end;
                return 0;
            }
            RecordStart::NotARecord => {
                if no_record_here(w.known != 0, w.flow_known != 0, w.blocked != 0 && w.drop == 0) {
                    w.drop = 1;
                }
                return 1;
            }
        }
    }

    // Inside a record: one PDU of the compound chain at `pos`.
    let pdu = w.pos;
    let end = w.end;
    if w.pdus >= MAX_PDUS {
        count(net_counter::PDU_LIMIT);
        quarantine_drop(w);
        w.in_record = 0;
        w.pos = end;
        return 0;
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
                return 1;
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
                return 1;
            }
        }
        count(net_counter::TRUNCATED_HEADER);
        quarantine_drop(w);
        w.in_record = 0;
        w.pos = end;
        return 1;
    }
    if !load_joined::<{ SMB2_HDR as usize }>(ctx, w, pdu) {
        quarantine_drop(w);
        return 1;
    }
    if scratch4(w) != smb2::PROTOCOL_ID {
        count(net_counter::BAD_MAGIC);
        quarantine_drop(w);
        w.in_record = 0;
        w.pos = end;
        return 0;
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
        return 0;
    }
    // NextCommand must move forward past a header, 8-aligned, inside the record.
    if next < SMB2_HDR || next & 7 != 0 || pdu + next >= end {
        count(net_counter::BAD_NEXT_COMMAND);
        quarantine_drop(w);
        w.in_record = 0;
        w.pos = end;
        return 0;
    }
    w.pos = pdu + next;
    0
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
fn quarantine_drop(w: &mut SmbWalk) {
    if w.blocked != 0 && w.drop == 0 {
        w.drop = 1;
        count(net_counter::BLOCKED_DROPS);
    }
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
    fn set(self, ev: &mut NetEvent) {
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
