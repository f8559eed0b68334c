//! From a captured frame to a TCP segment: link layer (Ethernet with 802.1Q/802.1ad tags,
//! Linux SLL and SLL2, DLT_NULL/LOOP, raw IP), IPv4 (options, padding), IPv6 (extension
//! headers), TCP. Non-first IP fragments and anything that is not TCP are skipped and
//! counted by the caller from the [`Skip`] reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::capture::linktype;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// A TCP segment from one frame.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

/// Why a frame gave no segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    UnsupportedLinkType(u32),
    NotIp,
    NotTcp,
    /// A non-first IPv4/IPv6 fragment (fragments are not reassembled).
    Fragment,
    /// A header was cut short by the snap length or is malformed.
    Truncated,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*b.get(at)?, *b.get(at + 1)?, *b.get(at + 2)?, *b.get(at + 3)?]))
}

/// Decodes `frame` of link type `lt` down to TCP.
pub fn decode(lt: u32, frame: &[u8]) -> Result<Segment<'_>, Skip> {
    let (ethertype, l3) = match lt {
        linktype::ETHERNET => {
            let mut et = be16(frame, 12).ok_or(Skip::Truncated)?;
            let mut at = 14;
            // up to 3 stacked VLAN tags
            for _ in 0..3 {
                if !ETHERTYPE_VLAN.contains(&et) {
                    break;
                }
                et = be16(frame, at + 2).ok_or(Skip::Truncated)?;
                at += 4;
            }
            (Some(et), frame.get(at..).ok_or(Skip::Truncated)?)
        }
        linktype::LINUX_SLL => (Some(be16(frame, 14).ok_or(Skip::Truncated)?), frame.get(16..).ok_or(Skip::Truncated)?),
        linktype::LINUX_SLL2 => (Some(be16(frame, 0).ok_or(Skip::Truncated)?), frame.get(20..).ok_or(Skip::Truncated)?),
        linktype::NULL | linktype::LOOP => {
            let fam = frame.get(0..4).ok_or(Skip::Truncated)?;
            let fam = if lt == linktype::LOOP {
                u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]])
            } else {
                // host byte order of the capturing machine: accept either
                let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
                if le < 256 { le } else { u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]) }
            };
            let et = match fam {
                2 => ETHERTYPE_IPV4,
                24 | 28 | 30 => ETHERTYPE_IPV6,
                _ => return Err(Skip::NotIp),
            };
            (Some(et), &frame[4..])
        }
        linktype::RAW | linktype::RAW_BSD | linktype::RAW_OPENBSD | linktype::IPV4 | linktype::IPV6 => (None, frame),
        other => return Err(Skip::UnsupportedLinkType(other)),
    };
    let version = match ethertype {
        Some(ETHERTYPE_IPV4) => 4,
        Some(ETHERTYPE_IPV6) => 6,
        Some(_) => return Err(Skip::NotIp),
        None => l3.first().ok_or(Skip::Truncated)? >> 4,
    };
    match version {
        4 => ipv4(l3),
        6 => ipv6(l3),
        _ => Err(Skip::NotIp),
    }
}

fn ipv4(b: &[u8]) -> Result<Segment<'_>, Skip> {
    let vihl = *b.first().ok_or(Skip::Truncated)?;
    if vihl >> 4 != 4 {
        return Err(Skip::NotIp);
    }
    let ihl = ((vihl & 0x0f) as usize) * 4;
    if ihl < 20 || b.len() < ihl {
        return Err(Skip::Truncated);
    }
    let total = be16(b, 2).ok_or(Skip::Truncated)? as usize;
    // total length 0 happens with TSO captures; trust the frame then.
    let end = if total >= ihl { total.min(b.len()) } else { b.len() };
    let frag = be16(b, 6).ok_or(Skip::Truncated)?;
    if frag & 0x1fff != 0 {
        return Err(Skip::Fragment);
    }
    if b[9] != 6 {
        return Err(Skip::NotTcp);
    }
    let src = IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(b[16], b[17], b[18], b[19]));
    tcp(src, dst, &b[ihl..end])
}

fn ipv6(b: &[u8]) -> Result<Segment<'_>, Skip> {
    if b.len() < 40 {
        return Err(Skip::Truncated);
    }
    if b[0] >> 4 != 6 {
        return Err(Skip::NotIp);
    }
    let plen = be16(b, 4).ok_or(Skip::Truncated)? as usize;
    let end = if plen == 0 { b.len() } else { (40 + plen).min(b.len()) };
    let mut next = b[6];
    let src: [u8; 16] = b[8..24].try_into().map_err(|_| Skip::Truncated)?;
    let dst: [u8; 16] = b[24..40].try_into().map_err(|_| Skip::Truncated)?;
    let mut at = 40;
    // extension headers, bounded
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                let nh = *b.get(at).ok_or(Skip::Truncated)?;
                let len = (*b.get(at + 1).ok_or(Skip::Truncated)? as usize + 1) * 8;
                next = nh;
                at += len;
            }
            44 => {
                let nh = *b.get(at).ok_or(Skip::Truncated)?;
                let off = be16(b, at + 2).ok_or(Skip::Truncated)?;
                if off & 0xfff8 != 0 {
                    return Err(Skip::Fragment);
                }
                next = nh;
                at += 8;
            }
            _ => break,
        }
    }
    if next != 6 {
        return Err(Skip::NotTcp);
    }
    let seg = b.get(at..end).ok_or(Skip::Truncated)?;
    tcp(IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(Ipv6Addr::from(dst)), seg)
}

fn tcp(src: IpAddr, dst: IpAddr, b: &[u8]) -> Result<Segment<'_>, Skip> {
    let sport = be16(b, 0).ok_or(Skip::Truncated)?;
    let dport = be16(b, 2).ok_or(Skip::Truncated)?;
    let seq = be32(b, 4).ok_or(Skip::Truncated)?;
    let off = ((*b.get(12).ok_or(Skip::Truncated)? >> 4) as usize) * 4;
    let flags = *b.get(13).ok_or(Skip::Truncated)?;
    if off < 20 {
        return Err(Skip::Truncated);
    }
    let payload = b.get(off..).ok_or(Skip::Truncated)?;
    Ok(Segment { src: SocketAddr::new(src, sport), dst: SocketAddr::new(dst, dport), seq, flags, payload })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An IPv4/TCP packet (no link header).
    pub(crate) fn ipv4_tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
        v.extend_from_slice(&src);
        v.extend_from_slice(&dst);
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.push(0x50);
        v.push(flags);
        v.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        v.extend_from_slice(payload);
        let total = v.len() as u16;
        v[2..4].copy_from_slice(&total.to_be_bytes());
        v
    }

    #[test]
    fn link_types() {
        let ip = ipv4_tcp([10, 0, 0, 1], 1234, [10, 0, 0, 2], 445, 7, TCP_ACK, b"hello");
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
        eth.extend_from_slice(&ip);
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        let mut lo = 2u32.to_be_bytes().to_vec();
        lo.extend_from_slice(&ip);
        // Ethernet padding after the IP packet is ignored
        let mut padded = eth.clone();
        padded.extend_from_slice(&[0u8; 6]);
        for (lt, f) in [
            (linktype::ETHERNET, &eth),
            (linktype::ETHERNET, &padded),
            (linktype::LINUX_SLL, &sll),
            (linktype::LINUX_SLL2, &sll2),
            (linktype::NULL, &null),
            (linktype::LOOP, &lo),
            (linktype::RAW, &ip),
        ] {
            let s = decode(lt, f).unwrap_or_else(|e| panic!("linktype {lt}: {e:?}"));
            assert_eq!(s.payload, b"hello", "linktype {lt}");
            assert_eq!(s.dst.port(), 445);
            assert_eq!(s.seq, 7);
        }
        assert_eq!(decode(9999, &ip).unwrap_err(), Skip::UnsupportedLinkType(9999));
        for n in 0..ip.len() - 5 {
            let _ = decode(linktype::RAW, &ip[..n]);
        }
    }

    #[test]
    fn ipv6_with_extension_header() {
        let mut v = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        v.extend_from_slice(&[0xfd; 16]);
        v.extend_from_slice(&[0xfe; 16]);
        // hop-by-hop header, 8 bytes, next = TCP
        v.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        let t = &ipv4_tcp([0; 4], 5000, [0; 4], 21, 1, TCP_ACK, b"STOR x\r\n")[20..];
        v.extend_from_slice(t);
        let plen = (v.len() - 40) as u16;
        v[4..6].copy_from_slice(&plen.to_be_bytes());
        let s = decode(linktype::RAW, &v).unwrap();
        assert_eq!(s.payload, b"STOR x\r\n");
        assert!(s.src.is_ipv6());
    }
}
