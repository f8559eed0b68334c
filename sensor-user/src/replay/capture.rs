//! Capture file reading: pcap (micro- and nanosecond, either byte order) and pcapng
//! (SHB/IDB/EPB/SPB/OPB, per-interface link type and `if_tsresol`), optionally gzip
//! compressed. The format is detected from the magic number, not the file name.
//!
//! The reader streams: one record is in memory at a time, so a capture of any size replays
//! in constant memory (apart from the TCP state).

use std::io::{self, BufRead, BufReader, Read};

use anyhow::{Context, Result, bail};

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

/// Largest record accepted; a bigger length means a corrupt file.
const MAX_RECORD: usize = 256 << 20;

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
    /// Timestamp units: (is_power_of_two, exponent).
    tsresol: (bool, u8),
}

/// Streaming reader over a pcap or pcapng capture.
pub struct CaptureReader {
    input: Box<dyn BufRead>,
    format: Format,
    // pcap
    big_endian: bool,
    nanos: bool,
    pcap_linktype: u32,
    // pcapng
    interfaces: Vec<Interface>,
    buf: Vec<u8>,
    /// Bytes consumed from the (decompressed) input.
    pub bytes_read: u64,
    pub gzip: bool,
}

fn read_exact_or_eof(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                if got == 0 {
                    return Ok(false);
                }
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "capture ends inside a record"));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let x = [b.get(at).copied().unwrap_or(0), b.get(at + 1).copied().unwrap_or(0)];
    if be { u16::from_be_bytes(x) } else { u16::from_le_bytes(x) }
}

fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let mut x = [0u8; 4];
    for (i, o) in x.iter_mut().enumerate() {
        *o = b.get(at + i).copied().unwrap_or(0);
    }
    if be { u32::from_be_bytes(x) } else { u32::from_le_bytes(x) }
}

impl CaptureReader {
    /// Opens a capture from any reader; gzip is detected and undone.
    pub fn new(input: Box<dyn Read>) -> Result<Self> {
        let mut input: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 16, input));
        let mut gzip = false;
        {
            let head = input.fill_buf().context("reading the capture's first bytes")?;
            if head.starts_with(&[0x1f, 0x8b]) {
                gzip = true;
            }
        }
        if gzip {
            input = Box::new(BufReader::with_capacity(1 << 16, flate2::bufread::MultiGzDecoder::new(input)));
        }
        let mut magic = [0u8; 4];
        if !read_exact_or_eof(&mut input, &mut magic).context("reading the capture's magic number")? {
            bail!("the capture is empty");
        }
        let mut r = CaptureReader {
            input,
            format: Format::Pcap,
            big_endian: false,
            nanos: false,
            pcap_linktype: 0,
            interfaces: Vec::new(),
            buf: Vec::with_capacity(1 << 16),
            bytes_read: 4,
            gzip,
        };
        match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => r.pcap_header(false, false)?,
            [0xa1, 0xb2, 0xc3, 0xd4] => r.pcap_header(true, false)?,
            [0x4d, 0x3c, 0xb2, 0xa1] => r.pcap_header(false, true)?,
            [0xa1, 0xb2, 0x3c, 0x4d] => r.pcap_header(true, true)?,
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                r.format = Format::PcapNg;
                r.section_header()?;
            }
            other => bail!(
                "not a pcap or pcapng capture (magic {:02x}{:02x}{:02x}{:02x}); gzip-compressed captures are accepted too",
                other[0],
                other[1],
                other[2],
                other[3]
            ),
        }
        Ok(r)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    fn read_n(&mut self, n: usize) -> Result<()> {
        if n > MAX_RECORD {
            bail!("record of {n} bytes at input offset {}: the capture is corrupt", self.bytes_read);
        }
        self.buf.resize(n, 0);
        if !read_exact_or_eof(&mut self.input, &mut self.buf[..n])? {
            bail!("capture ends inside a record at input offset {}", self.bytes_read);
        }
        self.bytes_read += n as u64;
        Ok(())
    }

    fn pcap_header(&mut self, be: bool, nanos: bool) -> Result<()> {
        self.big_endian = be;
        self.nanos = nanos;
        self.read_n(20).context("reading the pcap file header")?;
        self.pcap_linktype = u32_at(&self.buf, 16, be) & 0x0fff_ffff;
        Ok(())
    }

    /// Reads the rest of a pcapng Section Header Block (its type was already read).
    fn section_header(&mut self) -> Result<()> {
        let mut len = [0u8; 4];
        if !read_exact_or_eof(&mut self.input, &mut len)? {
            bail!("pcapng section header cut short");
        }
        self.bytes_read += 4;
        self.section_body(len)
    }

    /// Reads a Section Header Block after its type and (not yet decoded) length: the
    /// byte-order magic decides how to read the length and everything up to the next section.
    fn section_body(&mut self, len: [u8; 4]) -> Result<()> {
        let mut bom = [0u8; 4];
        if !read_exact_or_eof(&mut self.input, &mut bom)? {
            bail!("pcapng section header cut short");
        }
        self.bytes_read += 4;
        let be = match bom {
            [0x1a, 0x2b, 0x3c, 0x4d] => true,
            [0x4d, 0x3c, 0x2b, 0x1a] => false,
            _ => bail!("pcapng section header has a bad byte-order magic at input offset {}", self.bytes_read),
        };
        self.big_endian = be;
        let total = u32_at(&len, 0, be) as usize;
        if total < 28 || !total.is_multiple_of(4) {
            bail!("pcapng section header has a bad length {total}");
        }
        self.read_n(total - 12)?;
        self.interfaces.clear();
        Ok(())
    }

    /// The next frame, or `None` at the end of the capture.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        match self.format {
            Format::Pcap => self.next_pcap(),
            Format::PcapNg => self.next_pcapng(),
        }
    }

    fn next_pcap(&mut self) -> Result<Option<Frame<'_>>> {
        let mut hdr = [0u8; 16];
        if !read_exact_or_eof(&mut self.input, &mut hdr).context("reading a pcap record header")? {
            return Ok(None);
        }
        self.bytes_read += 16;
        let be = self.big_endian;
        let sec = u32_at(&hdr, 0, be) as u64;
        let frac = u32_at(&hdr, 4, be) as u64;
        let incl = u32_at(&hdr, 8, be) as usize;
        let orig = u32_at(&hdr, 12, be);
        self.read_n(incl).context("reading a pcap record")?;
        let ts_ns = sec * 1_000_000_000 + if self.nanos { frac } else { frac * 1000 };
        Ok(Some(Frame { ts_ns, linktype: self.pcap_linktype, data: &self.buf[..incl], orig_len: orig }))
    }

    fn ts(&self, iface: usize, hi: u32, lo: u32) -> u64 {
        let raw = ((hi as u64) << 32) | lo as u64;
        let (pow2, exp) = self.interfaces.get(iface).map(|i| i.tsresol).unwrap_or((false, 6));
        if pow2 {
            ((raw as u128 * 1_000_000_000u128) >> exp.min(127)) as u64
        } else if exp <= 9 {
            raw.saturating_mul(10u64.pow(9 - exp as u32))
        } else {
            raw / 10u64.pow((exp as u32 - 9).min(19))
        }
    }

    fn next_pcapng(&mut self) -> Result<Option<Frame<'_>>> {
        loop {
            let mut hdr = [0u8; 8];
            if !read_exact_or_eof(&mut self.input, &mut hdr).context("reading a pcapng block header")? {
                return Ok(None);
            }
            self.bytes_read += 8;
            let btype = u32_at(&hdr, 0, self.big_endian);
            if btype == 0x0a0d_0d0a {
                // A new section, perhaps in the other byte order.
                self.section_body([hdr[4], hdr[5], hdr[6], hdr[7]])?;
                continue;
            }
            let total = u32_at(&hdr, 4, self.big_endian) as usize;
            if total < 12 || !total.is_multiple_of(4) {
                bail!("pcapng block of type {btype:#x} has a bad length {total} at input offset {}", self.bytes_read);
            }
            self.read_n(total - 8)?;
            let be = self.big_endian;
            let body_len = total - 12;
            match btype {
                // Interface Description Block
                1 => {
                    let linktype = u16_at(&self.buf, 0, be) as u32;
                    let mut tsresol = (false, 6u8);
                    let mut at = 8;
                    while at + 4 <= body_len {
                        let code = u16_at(&self.buf, at, be);
                        let len = u16_at(&self.buf, at + 2, be) as usize;
                        if code == 0 {
                            break;
                        }
                        if code == 9 && len >= 1 {
                            let v = self.buf.get(at + 4).copied().unwrap_or(6);
                            tsresol = (v & 0x80 != 0, v & 0x7f);
                        }
                        at += 4 + len.div_ceil(4) * 4;
                    }
                    self.interfaces.push(Interface { linktype, tsresol });
                }
                // Enhanced Packet Block
                6 => {
                    let iface = u32_at(&self.buf, 0, be) as usize;
                    let hi = u32_at(&self.buf, 4, be);
                    let lo = u32_at(&self.buf, 8, be);
                    let cap = (u32_at(&self.buf, 12, be) as usize).min(body_len.saturating_sub(20));
                    let orig = u32_at(&self.buf, 16, be);
                    let Some(i) = self.interfaces.get(iface) else {
                        bail!("pcapng packet names interface {iface}, which no interface block described");
                    };
                    let linktype = i.linktype;
                    let ts_ns = self.ts(iface, hi, lo);
                    return Ok(Some(Frame { ts_ns, linktype, data: &self.buf[20..20 + cap], orig_len: orig }));
                }
                // Simple Packet Block: interface 0, no timestamp.
                3 => {
                    let orig = u32_at(&self.buf, 0, be);
                    let cap = (orig as usize).min(body_len.saturating_sub(4));
                    let Some(i) = self.interfaces.first() else {
                        bail!("pcapng simple packet block before any interface block");
                    };
                    return Ok(Some(Frame { ts_ns: 0, linktype: i.linktype, data: &self.buf[4..4 + cap], orig_len: orig }));
                }
                // Obsolete Packet Block
                2 => {
                    let iface = u16_at(&self.buf, 0, be) as usize;
                    let hi = u32_at(&self.buf, 4, be);
                    let lo = u32_at(&self.buf, 8, be);
                    let cap = (u32_at(&self.buf, 12, be) as usize).min(body_len.saturating_sub(20));
                    let orig = u32_at(&self.buf, 16, be);
                    let Some(i) = self.interfaces.get(iface) else {
                        bail!("pcapng packet names interface {iface}, which no interface block described");
                    };
                    let linktype = i.linktype;
                    let ts_ns = self.ts(iface, hi, lo);
                    return Ok(Some(Frame { ts_ns, linktype, data: &self.buf[20..20 + cap], orig_len: orig }));
                }
                _ => {} // statistics, name resolution, custom blocks...
            }
        }
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
