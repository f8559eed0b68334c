//! An FTP client's command stream rebuilt from the segments the TC program sent up, so
//! that a command split across segments (`ST` + `OR name`) or several pipelined in one
//! (`NOOP\r\nSTOR name`) is read as the server reads it.
//!
//! The kernel sends every segment of the control connection (both ways, each its own
//! stream), so a segment that does not follow the last one (by TCP sequence number) means
//! an event was lost (ring buffer full) or the segment was dropped by the quarantine: a
//! line begun before it is dropped, counted as a gap, and the stream resumes. A
//! retransmitted segment is not read twice. Memory is bounded by `MAX_LINE`.
use std::num::Wrapping;

/// Longest command line buffered while waiting for its end (the replay's limit too).
pub use sensor_common::proto::ftp::MAX_LINE;

#[derive(Default, Debug)]
pub struct LineStream {
    /// Sequence number just past the last byte read.
    next_seq: Option<Wrapping<u32>>,
    /// The start of a line whose end has not come yet.
    pending: Vec<u8>,
    /// The bytes after a gap belong to a line whose start was lost: skipped to its end.
    skip_to_eol: bool,
    /// Lines (or parts of lines) lost: the kernel's copy was cut, or a segment was missed
    /// in the middle of a line.
    pub gaps: u64,
}

impl LineStream {
    /// One segment: `bytes` as copied at TCP sequence number `seq`, `missing` bytes of it
    /// not copied. Returns the complete lines it ends, each with whether it was cut (its
    /// end lost: read as far as it goes).
    pub fn push(&mut self, seq: u32, bytes: &[u8], missing: u32) -> Vec<(Vec<u8>, bool)> {
        let seq = Wrapping(seq);
        let mut data = bytes;
        match self.next_seq {
            Some(next) if next != seq => {
                let behind = (next - seq).0;
                if behind < 1 << 30 {
                    // A retransmission: only what lies past what was read is new.
                    let seen = behind as usize;
                    if seen >= bytes.len() + missing as usize {
                        return Vec::new();
                    }
                    data = bytes.get(seen..).unwrap_or(&[]);
                } else {
                    // Ahead: the segments between were lost (or dropped by the quarantine).
                    // A line begun before them is incomplete.
                    if !self.pending.is_empty() {
                        self.gaps += 1;
                        self.pending.clear();
                    }
                }
            }
            _ => {}
        }
        self.next_seq = Some(seq + Wrapping(bytes.len() as u32 + missing));
        let mut out = Vec::new();
        for piece in data.split_inclusive(|&b| b == b'\n') {
            let whole = piece.last() == Some(&b'\n');
            if self.skip_to_eol {
                self.skip_to_eol = !whole;
                continue;
            }
            self.pending.extend_from_slice(piece);
            if whole {
                out.push((std::mem::take(&mut self.pending), false));
            } else if self.pending.len() > MAX_LINE {
                self.gaps += 1;
                self.pending.clear();
                self.skip_to_eol = true;
            }
        }
        if missing > 0 {
            // The kernel copied only the segment's start: what is pending is a line cut
            // here, read as it is; the rest of it, in the next segment, is skipped.
            self.gaps += 1;
            if !self.pending.is_empty() {
                out.push((std::mem::take(&mut self.pending), true));
            }
            self.skip_to_eol = true;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(out: Vec<(Vec<u8>, bool)>) -> Vec<(String, bool)> {
        out.into_iter().map(|(l, c)| (String::from_utf8(l).unwrap(), c)).collect()
    }

    #[test]
    fn split_and_pipelined_commands() {
        let mut s = LineStream::default();
        assert!(s.push(100, b"ST", 0).is_empty());
        assert_eq!(lines(s.push(102, b"OR evil.exe\r\n", 0)), [("STOR evil.exe\r\n".into(), false)]);
        let mut s = LineStream::default();
        assert_eq!(
            lines(s.push(7, b"NOOP\r\nSTOR a b.txt\r\nRETR", 0)),
            [("NOOP\r\n".into(), false), ("STOR a b.txt\r\n".into(), false)]
        );
        assert_eq!(lines(s.push(31, b" x\n", 0)), [("RETR x\n".into(), false)]);
        assert_eq!(s.gaps, 0);
    }

    #[test]
    fn retransmissions_and_gaps() {
        let mut s = LineStream::default();
        assert!(s.push(0, b"STOR ab", 0).is_empty());
        // The same segment again, then one overlapping it.
        assert!(s.push(0, b"STOR ab", 0).is_empty());
        assert_eq!(lines(s.push(5, b"abc\r\n", 0)), [("STOR abc\r\n".into(), false)]);
        // A hole at a line boundary (a lost segment that held whole lines): no line is
        // cut, the stream resumes at the next line.
        assert_eq!(lines(s.push(100, b"DELE x\r\n", 0)), [("DELE x\r\n".into(), false)]);
        assert_eq!(s.gaps, 0);
        // A hole in the middle of a line: the half line is dropped, counted.
        assert!(s.push(108, b"STOR pa", 0).is_empty());
        assert_eq!(lines(s.push(200, b"CWD /\r\n", 0)), [("CWD /\r\n".into(), false)]);
        assert_eq!(s.gaps, 1);
        // Sequence numbers wrap.
        let mut s = LineStream::default();
        assert!(s.push(u32::MAX - 1, b"ST", 0).is_empty());
        assert_eq!(lines(s.push(0, b"OR w\n", 0)), [("STOR w\n".into(), false)]);
    }

    #[test]
    fn a_segment_longer_than_the_kernel_copies_is_read_as_far_as_it_goes() {
        let mut s = LineStream::default();
        let out = lines(s.push(0, b"NOOP\r\nSTOR verylong", 500));
        assert_eq!(out, [("NOOP\r\n".into(), false), ("STOR verylong".into(), true)]);
        // The next segment starts with the rest of that line: skipped, then in step.
        assert_eq!(lines(s.push(519, b"name.exe\r\nRETR y\r\n", 0)), [("RETR y\r\n".into(), false)]);
        assert_eq!(s.gaps, 1);
    }

    #[test]
    fn a_line_without_end_is_bounded() {
        let mut s = LineStream::default();
        let big = vec![b'a'; MAX_LINE + 10];
        assert!(s.push(0, &big, 0).is_empty());
        assert_eq!(s.gaps, 1);
        assert_eq!(lines(s.push(big.len() as u32, b"aaa\r\nPWD\r\n", 0)), [("PWD\r\n".into(), false)]);
    }
}
