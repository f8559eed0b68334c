//! Capture file reading. pcap-parser reads pcap (micro- and nanosecond, either byte order)
//! and pcapng (sections in either byte order; interface blocks with their link type and
//! `if_tsresol`; enhanced, simple and obsolete packet blocks); gzip-compressed captures are
//! undone by flate2 on the way in. The format is detected from the magic number, not the
//! file name.
//!
//! The reader streams: pcap-parser parses in place in one buffer (64 KiB, grown for a larger
//! record up to [`MAX_RECORD`]) and a [`Frame`] borrows its bytes from there, so a capture
//! of any size replays in constant memory (apart from the TCP state).

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use anyhow::{Result, anyhow, bail};
use pcap_parser::pcapng::Block;
use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError, PcapNGReader};

/// Link-layer header types (LINKTYPE_* values) the replay decodes.
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    /// OpenBSD's number for raw IP.
    pub const RAW_OPENBSD: u32 = 12;
    pub const RAW_BSD: u32 = 14;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// Largest record accepted; a bigger one means a corrupt file.
const MAX_RECORD: usize = 256 << 20;

/// The parse buffer's first size: many records per refill, few enough bytes to stay in cache.
const BUFFER: usize = 1 << 16;

/// One captured frame.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Nanoseconds since the Unix epoch (0 if the capture has no timestamp, as in pcapng SPB).
    pub ts_ns: u64,
    pub linktype: u32,
    pub data: &'a [u8],
    /// Length on the wire (may exceed `data.len()` when the snap length cut it).
    pub orig_len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    /// The raw `if_tsresol` (pcap-parser gives 6, microseconds, when the option is absent).
    tsresol: u8,
}

/// What the capture said so far that later records need.
#[derive(Debug, Default)]
struct Context {
    // pcap
    pcap_linktype: u32,
    nanos: bool,
    // pcapng: the current section's interfaces
    interfaces: Vec<Interface>,
}

/// A packet record found in the parse buffer: its bytes are located by address, because
/// the block that holds them must be let go before the buffer can be borrowed again.
struct Packet {
    ts_ns: u64,
    linktype: u32,
    data_addr: usize,
    data_len: usize,
    orig_len: u32,
}

/// Streaming reader over a pcap or pcapng capture.
pub struct CaptureReader {
    // A concrete reader per format rather than `Box<dyn PcapReaderIterator>`, so that
    // pcap-parser's per-record calls inline.
    reader: Reader,
    state: State,
    gzip: bool,
}

enum Reader {
    Pcap(LegacyPcapReader<Input>),
    PcapNg(PcapNGReader<Input>),
}

struct State {
    context: Context,
    /// Size of the record returned last: consumed when the next one is asked for.
    pending: usize,
    /// The parse buffer's size: [`BUFFER`], doubled for each record that did not fit.
    buffer_size: usize,
    /// The I/O error behind pcap-parser's bare `ReadError`.
    read_error: Rc<Cell<Option<io::Error>>>,
}

/// The input as pcap-parser reads it. Each `read` fills the buffer as far as the input
/// goes, so the header check in the reader's constructor (a single `read`) sees a whole
/// header even through gzip, and a refill brings in many records at once. pcap-parser
/// drops the I/O error itself (`ReadError`); it is kept here for the message.
struct Input {
    inner: Box<dyn Read>,
    error: Rc<Cell<Option<io::Error>>>,
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = e.kind();
                    self.error.set(Some(e));
                    return Err(kind.into());
                }
            }
        }
        Ok(got)
    }
}

/// The first bytes of `input` (4, fewer only at its end), and `input` with them put back.
/// (No `BufReader` for this: pcap-parser's buffer is the only copy the bytes go through.)
fn peek(mut input: Box<dyn Read>) -> io::Result<([u8; 4], usize, Box<dyn Read>)> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((head, got, Box::new(io::Cursor::new(head).take(got as u64).chain(input))))
}

impl CaptureReader {
    /// Opens a capture from any reader; gzip is detected and undone.
    pub fn new(input: Box<dyn Read>) -> Result<Self> {
        let (head, got, mut input) = peek(input).map_err(|e| anyhow!("reading the capture's first bytes: {e}"))?;
        let gzip = got >= 2 && head[..2] == [0x1f, 0x8b];
        if gzip {
            input = Box::new(flate2::read::MultiGzDecoder::new(input));
        }
        let (magic, got, input) = peek(input).map_err(|e| anyhow!("reading the capture's magic number: {e}"))?;
        match got {
            0 => bail!("the capture is empty"),
            1..4 => bail!("the capture ends inside its header ({got} bytes)"),
            _ => {}
        }
        let read_error = Rc::new(Cell::new(None));
        let input = Input { inner: input, error: read_error.clone() };
        let header_error = |what: &str, e: PcapError<&[u8]>| match e {
            PcapError::Incomplete(_) | PcapError::Eof => anyhow!("the capture ends inside its {what}"),
            PcapError::ReadError => anyhow!("reading the capture's {what}: {}", read_error.take().map(|e| e.to_string()).unwrap_or_default()),
            e => anyhow!("the capture's {what} is malformed: {e}"),
        };
        let reader = match magic {
            [0x0a, 0x0d, 0x0d, 0x0a] => Reader::PcapNg(PcapNGReader::new(BUFFER, input).map_err(|e| header_error("pcapng section header", e))?),
            [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] | [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] => {
                Reader::Pcap(LegacyPcapReader::new(BUFFER, input).map_err(|e| header_error("pcap file header", e))?)
            }
            other => bail!(
                "not a pcap or pcapng capture (magic {:02x}{:02x}{:02x}{:02x}); gzip-compressed captures are accepted too",
                other[0],
                other[1],
                other[2],
                other[3]
            ),
        };
        let state = State { context: Context::default(), pending: 0, buffer_size: BUFFER, read_error };
        Ok(CaptureReader { reader, state, gzip })
    }

    pub fn format(&self) -> Format {
        match self.reader {
            Reader::Pcap(_) => Format::Pcap,
            Reader::PcapNg(_) => Format::PcapNg,
        }
    }

    /// Was the capture gzip-compressed?
    pub fn gzip(&self) -> bool {
        self.gzip
    }

    /// Bytes of whole records read from the (decompressed) input.
    pub fn bytes_read(&self) -> u64 {
        let consumed = match &self.reader {
            Reader::Pcap(r) => r.consumed(),
            Reader::PcapNg(r) => r.consumed(),
        };
        (consumed + self.state.pending) as u64
    }

    /// The next frame, or `None` at the end of the capture.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        match &mut self.reader {
            Reader::Pcap(r) => self.state.next_frame(r),
            Reader::PcapNg(r) => self.state.next_frame(r),
        }
    }
}

impl State {
    fn next_frame<'r>(&mut self, reader: &'r mut impl PcapReaderIterator) -> Result<Option<Frame<'r>>> {
        // The previous frame's bytes are no longer borrowed: let the buffer reuse them
        // (without moving what is left: a refill does that once).
        reader.consume_noshift(std::mem::take(&mut self.pending));
        loop {
            let (len, packet) = match reader.next() {
                Ok((len, block)) => (len, packet(&mut self.context, block)?),
                Err(PcapError::Eof) => return Ok(None),
                Err(PcapError::Incomplete(_)) => {
                    self.refill(reader)?;
                    continue;
                }
                Err(PcapError::BufferTooSmall) => {
                    self.buffer_size *= 2;
                    if self.buffer_size > 2 * MAX_RECORD || !reader.grow(self.buffer_size) {
                        bail!("a record larger than {MAX_RECORD} bytes at input offset {}: the capture is corrupt", reader.consumed());
                    }
                    self.refill(reader)?;
                    continue;
                }
                Err(PcapError::UnexpectedEof) => bail!("capture ends inside a record at input offset {}", reader.consumed()),
                Err(PcapError::ReadError) => bail!("reading the capture at input offset {}: {}", reader.consumed(), self.read_error_text()),
                Err(e) => {
                    let what = e.to_string();
                    bail!("malformed record at input offset {}: {what}; the capture is corrupt", reader.consumed())
                }
            };
            let Some(p) = packet else {
                reader.consume_noshift(len);
                continue;
            };
            self.pending = len;
            let buf = reader.data();
            let data = p
                .data_addr
                .checked_sub(buf.as_ptr() as usize)
                .and_then(|start| buf.get(start..start + p.data_len))
                .ok_or_else(|| anyhow!("packet data outside the parse buffer at input offset {}", reader.consumed()))?;
            return Ok(Some(Frame { ts_ns: p.ts_ns, linktype: p.linktype, data, orig_len: p.orig_len }));
        }
    }

    fn refill(&self, reader: &mut impl PcapReaderIterator) -> Result<()> {
        if reader.refill().is_err() {
            bail!("reading the capture at input offset {}: {}", reader.consumed(), self.read_error_text());
        }
        Ok(())
    }

    fn read_error_text(&self) -> String {
        self.read_error.take().map(|e| e.to_string()).unwrap_or_else(|| "read error".into())
    }
}

/// Notes what a header block says; for a packet record, where its bytes are.
fn packet(cx: &mut Context, block: PcapBlockOwned<'_>) -> Result<Option<Packet>> {
    let located = |ts_ns, linktype, data: &[u8], orig_len| Packet { ts_ns, linktype, data_addr: data.as_ptr() as usize, data_len: data.len(), orig_len };
    Ok(match block {
        PcapBlockOwned::LegacyHeader(h) => {
            // The upper bits of the link type field carry the FCS length (pcap-linktype(7)).
            cx.pcap_linktype = h.network.0 as u32 & 0x0fff_ffff;
            cx.nanos = h.is_nanosecond_precision();
            None
        }
        PcapBlockOwned::Legacy(b) => {
            let frac = if cx.nanos { b.ts_usec as u64 } else { b.ts_usec as u64 * 1000 };
            Some(located(b.ts_sec as u64 * 1_000_000_000 + frac, cx.pcap_linktype, b.data, b.origlen))
        }
        PcapBlockOwned::NG(Block::SectionHeader(_)) => {
            cx.interfaces.clear();
            None
        }
        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
            cx.interfaces.push(Interface { linktype: idb.linktype.0 as u32, tsresol: idb.if_tsresol });
            None
        }
        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
            let i = interface(cx, epb.if_id as usize)?;
            Some(located(ts_ns(epb.ts_high, epb.ts_low, i.tsresol), i.linktype, epb.packet_data(), epb.origlen))
        }
        // Interface 0, no timestamp.
        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
            let Some(i) = cx.interfaces.first() else {
                bail!("pcapng simple packet block before any interface block");
            };
            Some(located(0, i.linktype, spb.packet_data(), spb.origlen))
        }
        PcapBlockOwned::NG(Block::Unknown(b)) if b.block_type == OPB || b.block_type == OPB.swap_bytes() => {
            obsolete_packet(cx, b.block_type != OPB, b.data, located)?
        }
        _ => None, // statistics, name resolution, custom blocks...
    })
}

fn interface(cx: &Context, id: usize) -> Result<Interface> {
    cx.interfaces.get(id).copied().ok_or_else(|| anyhow!("pcapng packet names interface {id}, which no interface block described"))
}

/// The obsolete Packet Block's type; its type field is read little-endian whatever the
/// section's byte order, so a big-endian one shows as `OPB.swap_bytes()`.
const OPB: u32 = 2;

/// pcap-parser does not decode the obsolete Packet Block (pcapng draft, still written by
/// old tools): interface (u16), drops (u16), timestamp (2 x u32), captured and original
/// length (u32), data.
fn obsolete_packet(
    cx: &Context,
    be: bool,
    body: &[u8],
    located: impl Fn(u64, u32, &[u8], u32) -> Packet,
) -> Result<Option<Packet>> {
    let u32_at = |at: usize| {
        let b: [u8; 4] = body.get(at..at + 4).and_then(|b| b.try_into().ok()).unwrap_or_default();
        if be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    };
    let iface: [u8; 2] = body.get(0..2).and_then(|b| b.try_into().ok()).unwrap_or_default();
    let iface = (if be { u16::from_be_bytes(iface) } else { u16::from_le_bytes(iface) }) as usize;
    let i = interface(cx, iface)?;
    let data = body.get(20..).unwrap_or_default();
    let data = &data[..(u32_at(12) as usize).min(data.len())];
    Ok(Some(located(ts_ns(u32_at(4), u32_at(8), i.tsresol), i.linktype, data, u32_at(16))))
}

/// A pcapng timestamp in nanoseconds. pcap-parser's `build_ts` returns the fraction as a
/// u32, which overflows for units finer than 2^-32 s (picoseconds, say); this keeps the
/// arithmetic in u64/u128.
fn ts_ns(hi: u32, lo: u32, tsresol: u8) -> u64 {
    let raw = ((hi as u64) << 32) | lo as u64;
    let exp = tsresol & 0x7f;
    if tsresol & 0x80 != 0 {
        ((raw as u128 * 1_000_000_000u128) >> exp.min(127)) as u64
    } else if exp <= 9 {
        raw.saturating_mul(10u64.pow(9 - exp as u32))
    } else {
        raw / 10u64.pow((exp as u32 - 9).min(19))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcapng file with one section, one Ethernet interface (ns resolution), one packet.
    pub(crate) fn pcapng_one(packet: &[u8], ts_ns: u64) -> Vec<u8> {
        let mut v = Vec::new();
        // SHB
        v.extend_from_slice(&0x0a0d0d0au32.to_le_bytes());
        v.extend_from_slice(&28u32.to_le_bytes());
        v.extend_from_slice(&0x1a2b3c4du32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&(-1i64).to_le_bytes());
        v.extend_from_slice(&28u32.to_le_bytes());
        // IDB with if_tsresol = 9
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&32u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&9u16.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&[9, 0, 0, 0]);
        v.extend_from_slice(&0u32.to_le_bytes()); // opt_endofopt
        v.extend_from_slice(&32u32.to_le_bytes());
        // EPB
        let pad = packet.len().div_ceil(4) * 4;
        let total = 32 + pad as u32;
        v.extend_from_slice(&6u32.to_le_bytes());
        v.extend_from_slice(&total.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
        v.extend_from_slice(&(ts_ns as u32).to_le_bytes());
        v.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        v.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        v.extend_from_slice(packet);
        v.resize(v.len() + pad - packet.len(), 0);
        v.extend_from_slice(&total.to_le_bytes());
        v
    }

    #[test]
    fn pcapng_with_ns_resolution() {
        let file = pcapng_one(b"abcde", 1_500_000_000_123_456_789);
        let mut r = CaptureReader::new(Box::new(io::Cursor::new(file))).unwrap();
        assert_eq!(r.format(), Format::PcapNg);
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(f.data, b"abcde");
        assert_eq!(f.ts_ns, 1_500_000_000_123_456_789);
        assert_eq!(f.linktype, linktype::ETHERNET);
        assert!(r.next_frame().unwrap().is_none());
    }

    /// One pcapng block in the given byte order: type, length, body (padded), length.
    fn block(be: bool, btype: u32, body: &[u8]) -> Vec<u8> {
        let w32 = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        let pad = body.len().div_ceil(4) * 4;
        let total = (12 + pad) as u32;
        let mut v = [w32(btype), w32(total)].concat();
        v.extend_from_slice(body);
        v.resize(8 + pad, 0);
        v.extend_from_slice(&w32(total));
        v
    }

    /// A pcapng capture in the given byte order: SHB, IDBs (link type, if_tsresol), records.
    fn section(be: bool, interfaces: &[(u16, Option<u8>)], records: &[Vec<u8>]) -> Vec<u8> {
        let w16 = |x: u16| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        let w32 = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        let mut shb = w32(0x1a2b3c4d).to_vec();
        shb.extend_from_slice(&[w16(1), w16(0)].concat());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut v = block(be, 0x0a0d0d0a, &shb);
        for (lt, tsresol) in interfaces {
            let mut idb = [w16(*lt), w16(0)].concat();
            idb.extend_from_slice(&w32(65535));
            if let Some(r) = tsresol {
                idb.extend_from_slice(&[w16(9), w16(1)].concat());
                idb.extend_from_slice(&[*r, 0, 0, 0]);
                idb.extend_from_slice(&0u32.to_le_bytes());
            }
            v.extend_from_slice(&block(be, 1, &idb));
        }
        for r in records {
            v.extend_from_slice(r);
        }
        v
    }

    /// An enhanced (6) or obsolete (2) packet block.
    fn packet_block(be: bool, btype: u32, iface: u32, ts: u64, data: &[u8]) -> Vec<u8> {
        let w32 = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        let mut body = if btype == 2 {
            let w16 = |x: u16| if be { x.to_be_bytes() } else { x.to_le_bytes() };
            [w16(iface as u16), w16(0)].concat()
        } else {
            w32(iface).to_vec()
        };
        for x in [(ts >> 32) as u32, ts as u32, data.len() as u32, data.len() as u32 + 10] {
            body.extend_from_slice(&w32(x));
        }
        body.extend_from_slice(data);
        block(be, btype, &body)
    }

    fn all_frames(file: Vec<u8>) -> Vec<(u64, u32, Vec<u8>, u32)> {
        let mut r = CaptureReader::new(Box::new(io::Cursor::new(file))).unwrap();
        let mut v = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            v.push((f.ts_ns, f.linktype, f.data.to_vec(), f.orig_len));
        }
        v
    }

    /// Per-interface link types and timestamp units (default microseconds, 10^-9, 2^-10),
    /// simple and obsolete packet blocks, and a second section in the other byte order
    /// with interfaces of its own.
    #[test]
    fn pcapng_interfaces_sections_and_old_blocks() {
        let mut file = section(
            false,
            &[(1, None), (101, Some(9)), (113, Some(0x80 | 10))],
            &[
                packet_block(false, 6, 0, 5, b"eth"),
                packet_block(false, 6, 1, 7_000_000_001, b"raw"),
                packet_block(false, 6, 2, 3 << 10, b"sll"),
                packet_block(false, 2, 1, 8, b"opb"),
                block(false, 3, &[&4u32.to_le_bytes()[..], b"spb!"].concat()),
                block(false, 5, &[0; 12]), // interface statistics: skipped
            ],
        );
        file.extend_from_slice(&section(true, &[(276, Some(3))], &[packet_block(true, 6, 0, 2, b"be"), packet_block(true, 2, 0, 1, b"old")]));
        let got = all_frames(file);
        let want: Vec<(u64, u32, Vec<u8>, u32)> = vec![
            (5_000, 1, b"eth".to_vec(), 13),
            (7_000_000_001, 101, b"raw".to_vec(), 13),
            (3_000_000_000, 113, b"sll".to_vec(), 13),
            (8, 101, b"opb".to_vec(), 13),
            (0, 1, b"spb!".to_vec(), 4),
            (2_000_000, 276, b"be".to_vec(), 12),
            (1_000_000, 276, b"old".to_vec(), 13),
        ];
        assert_eq!(got, want);
        // A packet naming an interface the section did not describe.
        let mut r = CaptureReader::new(Box::new(io::Cursor::new(section(false, &[(1, None)], &[packet_block(false, 6, 1, 0, b"x")])))).unwrap();
        let e = r.next_frame().unwrap_err().to_string();
        assert!(e.contains("interface 1"), "{e}");
    }

    /// A record larger than the parse buffer grows it; a corrupt length stops with an error.
    #[test]
    fn records_larger_than_the_buffer() {
        let big = vec![0x5a; 5 * BUFFER + 3];
        let file = section(false, &[(1, None)], &[packet_block(false, 6, 0, 1, b"a"), packet_block(false, 6, 0, 2, &big), packet_block(false, 6, 0, 3, b"b")]);
        let got = all_frames(file);
        assert_eq!(got.iter().map(|f| f.2.len()).collect::<Vec<_>>(), [1, big.len(), 1]);
        assert!(got[1].2 == big);
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0];
        pcap.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        pcap.resize(pcap.len() + 3 * BUFFER, 0);
        let mut r = CaptureReader::new(Box::new(io::Cursor::new(pcap))).unwrap();
        assert!(r.next_frame().is_err());
    }

    #[test]
    fn pcap_big_endian_nanos_and_gzip() {
        let mut v = Vec::new();
        v.extend_from_slice(&[0xa1, 0xb2, 0x3c, 0x4d]);
        v.extend_from_slice(&2u16.to_be_bytes());
        v.extend_from_slice(&4u16.to_be_bytes());
        v.extend_from_slice(&[0u8; 8]);
        v.extend_from_slice(&65535u32.to_be_bytes());
        v.extend_from_slice(&101u32.to_be_bytes());
        v.extend_from_slice(&7u32.to_be_bytes());
        v.extend_from_slice(&5u32.to_be_bytes());
        v.extend_from_slice(&3u32.to_be_bytes());
        v.extend_from_slice(&3u32.to_be_bytes());
        v.extend_from_slice(b"xyz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &v).unwrap();
        let gz = gz.finish().unwrap();
        for input in [v, gz] {
            let mut r = CaptureReader::new(Box::new(io::Cursor::new(input))).unwrap();
            let f = r.next_frame().unwrap().unwrap();
            assert_eq!((f.ts_ns, f.linktype, f.data), (7_000_000_005, linktype::RAW, &b"xyz"[..]));
            assert!(r.next_frame().unwrap().is_none());
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(CaptureReader::new(Box::new(io::Cursor::new(b"hello world".to_vec()))).is_err());
        assert!(CaptureReader::new(Box::new(io::Cursor::new(Vec::new()))).is_err());
        let mut file = pcapng_one(b"abcde", 1);
        file.truncate(file.len() - 6);
        let mut r = CaptureReader::new(Box::new(io::Cursor::new(file))).unwrap();
        assert!(r.next_frame().is_err());
    }
}
