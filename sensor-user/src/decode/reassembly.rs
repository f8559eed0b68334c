//! SMB2 PDUs cut by the end of a TCP segment, made whole again.
//!
//! The TC program sees one packet at a time. When a PDU it follows (CREATE request or
//! response, READ or WRITE request: `net_verb::of_smb2`) runs past the end of its packet
//! before the fields it is followed for, it reports what is there (`NF_PARTIAL`,
//! `missing` bytes absent), flags that it asked for the rest (`NF_CONTINUES`), and
//! reports the first bytes of the flow's next segment as an `SMB_CONTINUATION` record.
//! What is there is either a CREATE's name so far (its fixed part was complete) or the
//! raw PDU bytes (`NF_RAW_PDU`), which are parsed here together with the continuation by
//! the shared parser (`smb2::Header`, `CreateRequest`, `CreateResponse`, `ReadRequest`,
//! `WriteRequest`). (A cut before the command, in an SMB2 header's first 20 bytes or in an
//! NBSS header, never comes here: the kernel carries those bytes to the next segment and
//! reads the header whole there.) The record is held until that continuation comes, then
//! released completed. Nothing waits for long: the record goes out as it is when anything
//! else happens on the connection, or after `WAIT`, since the continuation can be lost
//! (ring buffer full, segment dropped). As it is, a CREATE still names a file (partial);
//! a cut READ, WRITE or CREATE response without its FileId says nothing usable: dropped,
//! counted.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use sensor_common::{
    event::{
        NAME_LEN, NF_BLOCKED, NF_CONTINUES, NF_NAME_TRUNCATED, NF_PARTIAL, NF_RAW_PDU, NF_WRITE_INTENT,
        NetEvent, net_verb,
    },
    proto::smb2::{self, field},
};
use serde::Serialize;

/// How long a cut PDU waits for its continuation.
pub const WAIT: Duration = Duration::from_millis(500);

/// Held PDUs at most; past it the oldest goes out as it is.
const MAX_HELD: usize = 4096;

/// Both directions of one TCP connection: (lower endpoint, higher endpoint).
type Connection = (([u8; 16], u16), ([u8; 16], u16));

fn connection(ev: &NetEvent) -> Connection {
    let a = (ev.payload.saddr, ev.payload.sport);
    let b = (ev.payload.daddr, ev.payload.dport);
    if a <= b { (a, b) } else { (b, a) }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReassemblyStats {
    /// Cut PDUs completed from a continuation.
    pub completed: u64,
    /// Cut CREATEs released without one (timeout, or other traffic came first): partial.
    pub released_partial: u64,
    /// Continuations with nothing held (it was released already).
    pub unmatched: u64,
    /// Cut READs, WRITEs and CREATE responses whose continuation never came or was too
    /// short: their FileId is unknown, so they are dropped.
    pub lost: u64,
}

#[derive(Default)]
pub struct Reassembly {
    held: HashMap<Connection, (NetEvent, Instant)>,
    pub stats: ReassemblyStats,
}

impl Reassembly {
    /// One record from the kernel; returns the records ready for attribution, in order.
    pub fn push(&mut self, ev: NetEvent, now: Instant) -> Vec<NetEvent> {
        let mut ready = self.expire(now);
        let key = connection(&ev);
        if ev.payload.verb == net_verb::SMB_CONTINUATION {
            match self.held.remove(&key) {
                Some((held, _)) => match join(held, ev.payload.name_bytes()) {
                    Some(done) => {
                        self.stats.completed += 1;
                        ready.push(done);
                    }
                    None => self.stats.lost += 1,
                },
                None => self.stats.unmatched += 1,
            }
            return ready;
        }
        if let Some((held, _)) = self.held.remove(&key) {
            // The connection moved on without the continuation: the held record goes first.
            ready.extend(self.as_is(held));
        }
        // A dropped (quarantined) packet is retransmitted, never continued.
        if ev.header.flags & NF_CONTINUES != 0 && ev.header.flags & NF_BLOCKED == 0 {
            if self.held.len() >= MAX_HELD {
                ready.extend(self.release_oldest());
            }
            self.held.insert(key, (ev, now));
        } else {
            ready.extend(self.as_is(ev));
        }
        ready
    }

    /// The held records that waited `WAIT`, released as they are (oldest first).
    pub fn expire(&mut self, now: Instant) -> Vec<NetEvent> {
        self.release(|since| now.duration_since(since) >= WAIT)
    }

    /// Everything held, released as it is (oldest first): the sensor is stopping, and a
    /// cut CREATE must still reach the graph.
    pub fn release_all(&mut self) -> Vec<NetEvent> {
        self.release(|_| true)
    }

    fn release(&mut self, due: impl Fn(Instant) -> bool) -> Vec<NetEvent> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let mut late: Vec<(Connection, Instant)> =
            self.held.iter().filter(|(_, (_, t))| due(*t)).map(|(k, (_, t))| (*k, *t)).collect();
        late.sort_by_key(|(_, t)| *t);
        let mut out = Vec::new();
        for (key, _) in late {
            if let Some((ev, _)) = self.held.remove(&key) {
                out.extend(self.as_is(ev));
            }
        }
        out
    }

    fn release_oldest(&mut self) -> Option<NetEvent> {
        let key = *self.held.iter().min_by_key(|(_, (_, t))| *t)?.0;
        let (ev, _) = self.held.remove(&key)?;
        self.as_is(ev)
    }

    /// A record released without its continuation: a cut CREATE goes out partial (raw PDU
    /// bytes are not a name); a cut READ, WRITE or CREATE response is dropped, counted.
    fn as_is(&mut self, mut ev: NetEvent) -> Option<NetEvent> {
        let cut = ev.header.flags & NF_CONTINUES != 0;
        if cut && ev.header.flags & NF_RAW_PDU != 0 && ev.payload.verb != net_verb::SMB_CREATE {
            self.stats.lost += 1;
            return None;
        }
        if cut && ev.header.flags & NF_BLOCKED == 0 {
            self.stats.released_partial += 1;
        }
        if ev.header.flags & NF_RAW_PDU != 0 {
            ev.payload.name_len = 0;
        }
        ev.header.flags &= !(NF_CONTINUES | NF_RAW_PDU);
        Some(ev)
    }
}

/// Completes a held record with the first bytes of the next segment; `None` when they
/// still do not reach the fields it is followed for.
fn join(mut held: NetEvent, more: &[u8]) -> Option<NetEvent> {
    let have = (held.payload.name_len as usize).min(NAME_LEN);
    let take = more.len().min(held.payload.missing as usize);
    if held.header.flags & NF_RAW_PDU == 0 && held.payload.verb == net_verb::SMB_CREATE {
        complete_name(&mut held, more, have, take);
        return Some(held);
    }
    let mut pdu = held.payload.name[..have].to_vec();
    pdu.extend_from_slice(&more[..take]);
    held.payload.missing -= take as u32;
    held.header.flags &= !(NF_CONTINUES | NF_RAW_PDU);
    held.payload.name_len = 0;
    let header = smb2::Header::new_unchecked(&pdu[..]);
    if pdu.len() >= smb2::HEADER_LEN {
        // The kernel had no ids when the header itself was cut.
        held.payload.message_id = header.message_id();
        held.payload.tree_id = header.tree_id().unwrap_or(0);
        held.payload.session_id = header.session_id();
    }
    let known = match held.payload.verb {
        net_verb::SMB_CREATE => {
            complete_create(&mut held, &pdu);
            true
        }
        net_verb::SMB_CREATE_RESPONSE => fixed_part(&mut held, &pdu, field::create_resp::FILE_ID.end, |ev, pdu| {
            ev.payload.file_id = smb2::CreateResponse::new_unchecked(pdu).file_id().to_bytes();
        }),
        net_verb::SMB_WRITE => fixed_part(&mut held, &pdu, field::write_req::FILE_ID.end, |ev, pdu| {
            let req = smb2::WriteRequest::new_unchecked(pdu);
            (ev.payload.length, ev.payload.offset, ev.payload.file_id) = (req.length(), req.offset(), req.file_id().to_bytes());
        }),
        net_verb::SMB_READ => fixed_part(&mut held, &pdu, field::read_req::FILE_ID.end, |ev, pdu| {
            let req = smb2::ReadRequest::new_unchecked(pdu);
            (ev.payload.length, ev.payload.offset, ev.payload.file_id) = (req.length(), req.offset(), req.file_id().to_bytes());
        }),
        _ => false,
    };
    known.then_some(held)
}

/// A READ, WRITE or CREATE response: its fields up to `end` (the FileId's end) read by
/// `read` once the joined bytes reach that far. Such a record is then whole, as the
/// kernel would have reported it uncut.
fn fixed_part(ev: &mut NetEvent, pdu: &[u8], end: usize, read: impl Fn(&mut NetEvent, &[u8])) -> bool {
    if pdu.len() < end {
        return false;
    }
    read(ev, pdu);
    ev.header.flags &= !NF_PARTIAL;
    ev.payload.missing = 0;
    true
}

/// Appends the continuation's bytes the CREATE lacks to its name.
fn complete_name(create: &mut NetEvent, more: &[u8], have: usize, take: usize) {
    let take = take.min(NAME_LEN - have);
    create.payload.name[have..have + take].copy_from_slice(&more[..take]);
    create.payload.name_len = (have + take) as u16;
    create.payload.missing -= take as u32;
    create.header.flags &= !NF_CONTINUES;
    if create.payload.missing == 0 {
        create.header.flags &= !NF_PARTIAL;
    } else if have + take == NAME_LEN {
        // Whole segments, but the name is longer than a record holds.
        create.header.flags |= NF_NAME_TRUNCATED;
    }
}

/// A CREATE cut inside its header or fixed part: the PDU bytes from both segments, parsed
/// by the shared parser. Fields it cannot reach stay unknown and the record stays partial.
fn complete_create(create: &mut NetEvent, pdu: &[u8]) {
    if pdu.len() < field::create_req::BUFFER {
        return;
    }
    let req = smb2::CreateRequest::new_unchecked(pdu);
    create.payload.access = req.desired_access();
    create.payload.disposition = req.create_disposition();
    create.payload.options = req.create_options();
    if req.has_write_intent() {
        create.header.flags |= NF_WRITE_INTENT;
    }
    match req.name_partial() {
        Ok((name, cut)) => {
            let n = name.len().min(NAME_LEN);
            create.payload.name[..n].copy_from_slice(&name[..n]);
            create.payload.name_len = n as u16;
            if n < name.len() {
                create.header.flags |= NF_NAME_TRUNCATED;
            }
            if !cut {
                create.header.flags &= !NF_PARTIAL;
                create.payload.missing = 0;
            }
        }
        // NameOffset inside the fixed part, or past what the two segments hold.
        Err(_) => create.header.flags |= NF_NAME_TRUNCATED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smb2::build::utf16;

    fn record(verb: u8, from_client: bool, name: &[u8], flags: u32, missing: u32) -> NetEvent {
        let mut ev: NetEvent = unsafe { std::mem::zeroed() };
        let (client, server) = (([10, 0, 0, 2], 40000u16), ([10, 0, 0, 1], 445u16));
        let ((s, sp), (d, dp)) = if from_client { (client, server) } else { (server, client) };
        ev.payload.saddr[..4].copy_from_slice(&s);
        ev.payload.daddr[..4].copy_from_slice(&d);
        (ev.payload.sport, ev.payload.dport) = (sp, dp);
        ev.payload.verb = verb;
        ev.header.flags = flags;
        ev.payload.missing = missing;
        let name = &name[..name.len().min(NAME_LEN)]; // as the kernel sends at most
        ev.payload.name[..name.len()].copy_from_slice(name);
        ev.payload.name_len = name.len() as u16;
        ev
    }

    #[test]
    fn a_cut_name_is_completed_by_its_continuation() {
        let name = utf16("dir\\evil.exe");
        let (head, tail) = name.split_at(7); // cut inside a UTF-16 unit
        let t0 = Instant::now();
        let mut r = Reassembly::default();
        let cut = record(net_verb::SMB_CREATE, true, head, NF_PARTIAL | NF_CONTINUES, tail.len() as u32);
        assert!(r.push(cut, t0).is_empty(), "held until the rest comes");
        // The continuation segment carries the rest of the name and what follows it.
        let mut rest = tail.to_vec();
        rest.extend_from_slice(&[0xAA; 40]);
        let out = r.push(record(net_verb::SMB_CONTINUATION, true, &rest, 0, 0), t0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload.name_bytes(), &name[..]);
        assert_eq!(out[0].header.flags & (NF_PARTIAL | NF_CONTINUES | NF_NAME_TRUNCATED), 0);
        assert_eq!(out[0].payload.missing, 0);
        assert_eq!(r.stats, ReassemblyStats { completed: 1, ..Default::default() });
    }

    #[test]
    fn without_a_continuation_the_create_goes_out_partial_and_in_order() {
        let t0 = Instant::now();
        let mut r = Reassembly::default();
        let cut = record(net_verb::SMB_CREATE, true, b"a\0", NF_PARTIAL | NF_CONTINUES, 10);
        assert!(r.push(cut, t0).is_empty());
        // The server's response on the same connection comes first: release, then it.
        let out = r.push(record(net_verb::SMB_CREATE_RESPONSE, false, b"", 0, 0), t0);
        assert_eq!(out.iter().map(|e| e.payload.verb).collect::<Vec<_>>(), [net_verb::SMB_CREATE, net_verb::SMB_CREATE_RESPONSE]);
        assert_ne!(out[0].header.flags & NF_PARTIAL, 0);
        // A late continuation finds nothing to complete.
        assert!(r.push(record(net_verb::SMB_CONTINUATION, true, b"b\0", 0, 0), t0).is_empty());
        // Another cut CREATE expires after WAIT.
        assert!(r.push(record(net_verb::SMB_CREATE, true, b"c\0", NF_PARTIAL | NF_CONTINUES, 4), t0).is_empty());
        assert!(r.expire(t0 + WAIT / 2).is_empty());
        assert_eq!(r.expire(t0 + WAIT).len(), 1);
        // At stop nothing held is lost: it goes out before its time.
        assert!(r.push(record(net_verb::SMB_CREATE, true, b"d\0", NF_PARTIAL | NF_CONTINUES, 4), t0).is_empty());
        let out = r.release_all();
        assert_eq!((out.len(), out[0].payload.name_bytes()), (1, &b"d\0"[..]));
        assert_eq!(r.stats, ReassemblyStats { released_partial: 3, unmatched: 1, ..Default::default() });
    }

    #[test]
    fn a_name_longer_than_a_record_stays_truncated() {
        let t0 = Instant::now();
        let mut r = Reassembly::default();
        let head = vec![b'x'; NAME_LEN - 6];
        let cut = record(net_verb::SMB_CREATE, true, &head, NF_PARTIAL | NF_CONTINUES, 600);
        assert!(r.push(cut, t0).is_empty());
        let out = r.push(record(net_verb::SMB_CONTINUATION, true, &[b'y'; 100], 0, 0), t0);
        assert_eq!(out[0].payload.name_len as usize, NAME_LEN);
        assert_eq!(out[0].payload.missing, 594);
        assert_ne!(out[0].header.flags & NF_NAME_TRUNCATED, 0);
        assert_ne!(out[0].header.flags & NF_PARTIAL, 0);
    }

    #[test]
    fn a_create_cut_in_its_fixed_part_is_parsed_from_both_halves() {
        let name = "dir\\payload.exe";
        let pdu = smb2::build::create_request(&utf16(name), 0x12_0116, 5, 0x40, 9);
        for cut in [20, 33, 64, 65, 100, 119, 120, 121] {
            let t0 = Instant::now();
            let mut r = Reassembly::default();
            let (head, tail) = pdu.split_at(cut);
            let held = record(net_verb::SMB_CREATE, true, head, NF_PARTIAL | NF_CONTINUES | NF_RAW_PDU, tail.len() as u32);
            assert!(r.push(held, t0).is_empty());
            let out = r.push(record(net_verb::SMB_CONTINUATION, true, tail, 0, 0), t0);
            assert_eq!(out.len(), 1, "cut at {cut}");
            let ev = &out[0];
            assert_eq!(ev.payload.name_bytes(), &utf16(name)[..], "cut at {cut}");
            assert_eq!((ev.payload.access, ev.payload.disposition, ev.payload.options), (0x12_0116, 5, 0x40), "cut at {cut}");
            assert_eq!((ev.payload.message_id, ev.payload.tree_id, ev.payload.session_id), (9, 7, 0x1122), "cut at {cut}");
            assert_ne!(ev.header.flags & NF_WRITE_INTENT, 0);
            assert_eq!(ev.header.flags & (NF_PARTIAL | NF_RAW_PDU | NF_CONTINUES), 0, "cut at {cut}");
        }
        // Without the continuation, raw bytes are never taken for a name.
        let mut r = Reassembly::default();
        let t0 = Instant::now();
        let held = record(net_verb::SMB_CREATE, true, &pdu[..80], NF_PARTIAL | NF_CONTINUES | NF_RAW_PDU, 50);
        assert!(r.push(held, t0).is_empty());
        let out = r.expire(t0 + WAIT);
        assert_eq!((out[0].payload.name_len, out[0].header.flags & NF_RAW_PDU), (0, 0));
        assert_ne!(out[0].header.flags & NF_PARTIAL, 0);
        // A continuation too short for the fixed part leaves it unknown, not invented.
        let held = record(net_verb::SMB_CREATE, true, &pdu[..70], NF_PARTIAL | NF_CONTINUES | NF_RAW_PDU, 60);
        assert!(r.push(held, t0).is_empty());
        let out = r.push(record(net_verb::SMB_CONTINUATION, true, &pdu[70..90], 0, 0), t0);
        assert_eq!((out[0].payload.name_len, out[0].payload.access), (0, 0));
        assert_ne!(out[0].header.flags & NF_PARTIAL, 0);
    }

    #[test]
    fn cut_reads_writes_and_create_responses_get_their_file_ids() {
        let fid = smb2::FileId { persistent: 0x1111, volatile: 0x2222 };
        let write = smb2::build::write_request(21, fid, &[0x5a; 300]);
        let read = smb2::build::read_request(22, fid, 65536, 4096);
        let response = smb2::build::create_response(23, fid);
        for (verb, pdu, from_client, message_id) in [
            (net_verb::SMB_WRITE, &write, true, 21),
            (net_verb::SMB_READ, &read, true, 22),
            (net_verb::SMB_CREATE_RESPONSE, &response, false, 23),
        ] {
            // In the fixed part, and in the header after its command.
            for cut in [70, 30] {
                let t0 = Instant::now();
                let mut r = Reassembly::default();
                let missing = (pdu.len() - cut) as u32;
                let held = record(verb, from_client, &pdu[..cut], NF_PARTIAL | NF_CONTINUES | NF_RAW_PDU, missing);
                assert!(r.push(held, t0).is_empty());
                let out = r.push(record(net_verb::SMB_CONTINUATION, from_client, &pdu[cut..], 0, 0), t0);
                assert_eq!(out.len(), 1, "{verb} cut at {cut}");
                let ev = &out[0];
                assert_eq!((ev.payload.verb, ev.payload.file_id, ev.payload.message_id, ev.payload.session_id), (verb, fid.to_bytes(), message_id, 0x1122));
                assert_eq!(ev.header.flags & (NF_PARTIAL | NF_RAW_PDU | NF_CONTINUES), 0, "{verb} cut at {cut}");
                if verb == net_verb::SMB_WRITE {
                    assert_eq!((ev.payload.length, ev.payload.offset), (300, 0));
                }
                if verb == net_verb::SMB_READ {
                    assert_eq!((ev.payload.length, ev.payload.offset), (65536, 4096));
                }
            }
            // Without the continuation there is no FileId: dropped, counted, never zeros.
            let t0 = Instant::now();
            let mut r = Reassembly::default();
            let held = record(verb, from_client, &pdu[..70], NF_PARTIAL | NF_CONTINUES | NF_RAW_PDU, 100);
            assert!(r.push(held, t0).is_empty());
            assert!(r.expire(t0 + WAIT).is_empty());
            assert_eq!(r.stats, ReassemblyStats { lost: 1, ..Default::default() });
        }
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let t0 = Instant::now();
        let mut r = Reassembly::default();
        let mut cut = record(net_verb::SMB_CREATE, true, b"", NF_PARTIAL | NF_CONTINUES, u32::MAX);
        cut.payload.name_len = u16::MAX; // more than the buffer: clamped
        assert!(r.push(cut, t0).is_empty());
        let mut more = record(net_verb::SMB_CONTINUATION, true, b"zz", 0, 0);
        more.payload.name_len = u16::MAX;
        let out = r.push(more, t0);
        assert_eq!(out[0].payload.name_len as usize, NAME_LEN);
    }
}
