//! Just enough TCP reassembly for replay: one [`Stream`] per direction of a connection
//! delivers bytes in sequence order, drops retransmitted bytes, holds out-of-order segments
//! (up to [`MAX_BUFFERED`] bytes) until the hole fills, and when a hole never fills skips
//! it and says so ([`Delivery::gap`]), so the protocol layer can resynchronize.

use std::collections::BTreeMap;

/// Out-of-order bytes held per direction before giving up on a hole.
pub const MAX_BUFFERED: usize = 4 << 20;

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of the next byte expected (None until the first segment).
    next_seq: Option<u32>,
    /// Bytes delivered so far (stream offset of `next_seq`).
    offset: u64,
    /// Out-of-order segments by stream offset.
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    /// Bytes skipped over holes.
    pub lost: u64,
    /// Retransmitted bytes dropped.
    pub duplicate: u64,
}

/// What one call delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// New in-order bytes appended to the output.
    pub bytes: usize,
    /// Bytes were lost before (some of) them: the output is not contiguous with what came before.
    pub gap: bool,
    /// Length of the output buffer at the last hole: bytes from here on follow the hole.
    pub gap_at: Option<usize>,
}

impl Stream {
    /// Offset of the next byte expected.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Feeds one segment. In-order bytes are appended to `out` (pass `None` to count only).
    pub fn accept(&mut self, seq: u32, syn: bool, payload: &[u8], mut out: Option<&mut Vec<u8>>) -> Delivery {
        let mut d = Delivery::default();
        if syn {
            // The SYN takes one sequence number; data on a SYN (TFO) follows it.
            if self.next_seq.is_none() {
                self.next_seq = Some(seq.wrapping_add(1));
            }
            if payload.is_empty() {
                return d;
            }
            return self.accept(seq.wrapping_add(1), false, payload, out);
        }
        if payload.is_empty() {
            return d;
        }
        let next = *self.next_seq.get_or_insert(seq);
        let rel = seq.wrapping_sub(next) as i32 as i64;
        let start = self.offset as i64 + rel;
        let end = start + payload.len() as i64;
        if end <= self.offset as i64 {
            self.duplicate += payload.len() as u64;
            return d;
        }
        if start <= self.offset as i64 {
            let skip = (self.offset as i64 - start) as usize;
            self.duplicate += skip as u64;
            self.deliver(&payload[skip..], &mut out, &mut d);
            self.drain(&mut out, &mut d);
        } else {
            let key = start as u64;
            let keep = match self.pending.get(&key) {
                Some(old) => old.len() < payload.len(),
                None => true,
            };
            if keep {
                if let Some(old) = self.pending.insert(key, payload.to_vec()) {
                    self.pending_bytes -= old.len();
                }
                self.pending_bytes += payload.len();
            } else {
                self.duplicate += payload.len() as u64;
            }
            if self.pending_bytes > MAX_BUFFERED {
                self.skip_hole(&mut out, &mut d);
            }
        }
        d
    }

    /// Delivers everything still held, skipping holes (end of capture or connection).
    pub fn flush(&mut self, mut out: Option<&mut Vec<u8>>) -> Delivery {
        let mut d = Delivery::default();
        while !self.pending.is_empty() {
            self.skip_hole(&mut out, &mut d);
        }
        d
    }

    fn deliver(&mut self, bytes: &[u8], out: &mut Option<&mut Vec<u8>>, d: &mut Delivery) {
        if let Some(o) = out.as_deref_mut() {
            o.extend_from_slice(bytes);
        }
        self.offset += bytes.len() as u64;
        self.next_seq = self.next_seq.map(|s| s.wrapping_add(bytes.len() as u32));
        d.bytes += bytes.len();
    }

    /// Delivers held segments that now start at or before the expected offset.
    fn drain(&mut self, out: &mut Option<&mut Vec<u8>>, d: &mut Delivery) {
        while let Some((&key, _)) = self.pending.first_key_value() {
            if key > self.offset {
                break;
            }
            let Some((key, seg)) = self.pending.pop_first() else { break };
            self.pending_bytes -= seg.len();
            let end = key + seg.len() as u64;
            if end <= self.offset {
                self.duplicate += seg.len() as u64;
                continue;
            }
            let skip = (self.offset - key) as usize;
            self.duplicate += skip as u64;
            self.deliver(&seg[skip..], out, d);
        }
    }

    /// Jumps over the hole before the first held segment.
    fn skip_hole(&mut self, out: &mut Option<&mut Vec<u8>>, d: &mut Delivery) {
        if let Some((&key, _)) = self.pending.first_key_value() {
            if key > self.offset {
                let hole = key - self.offset;
                self.lost += hole;
                self.offset = key;
                self.next_seq = self.next_seq.map(|s| s.wrapping_add(hole as u32));
                d.gap = true;
                d.gap_at = out.as_deref().map(|o| o.len());
            }
            self.drain(out, d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_retransmit_out_of_order() {
        let mut s = Stream::default();
        let mut out = Vec::new();
        s.accept(999, true, b"", Some(&mut out));
        s.accept(1000, false, b"abc", Some(&mut out));
        s.accept(1000, false, b"abc", Some(&mut out)); // retransmit
        s.accept(1006, false, b"ghi", Some(&mut out)); // early
        assert_eq!(out, b"abc");
        s.accept(1002, false, b"cdef", Some(&mut out)); // overlapping fill
        assert_eq!(out, b"abcdefghi");
        assert_eq!(s.offset(), 9);
        assert!(s.duplicate >= 4);
    }

    #[test]
    fn sequence_wraps() {
        let mut s = Stream::default();
        let mut out = Vec::new();
        s.accept(u32::MAX - 1, false, b"ab", Some(&mut out));
        s.accept(0, false, b"cd", Some(&mut out));
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn hole_is_skipped_on_flush() {
        let mut s = Stream::default();
        let mut out = Vec::new();
        s.accept(1, false, b"ab", Some(&mut out));
        let d = s.accept(10, false, b"xy", Some(&mut out));
        assert_eq!(d.bytes, 0);
        let d = s.flush(Some(&mut out));
        assert!(d.gap);
        assert_eq!(out, b"abxy");
        assert_eq!(s.lost, 7);
    }
}
