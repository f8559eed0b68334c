//! From a captured frame to a TCP segment. etherparse reads the headers (Ethernet and up to
//! three 802.1Q/802.1ad tags, IPv4 with options, IPv6 with extension headers, TCP), with lax
//! IP length checks, so a packet cut by the snap length still gives the bytes captured. The
//! link headers it does not read as captures carry them (Linux SLL with any hardware type,
//! SLL2, DLT_NULL/LOOP) are stripped here to an EtherType. Non-first IP fragments and
//! anything that is not TCP are skipped and counted by the caller from the [`Skip`] reason.
//!
//! The layers are sliced one by one rather than with `LaxSlicedPacket`, which builds a
//! result of several hundred bytes for every frame: 120 ns a frame against 53 ns sliced
//! layer by layer, over the public captures' frames (release build, 2-core VM).

use std::net::{IpAddr, SocketAddr};

use etherparse::err::{ipv4, ipv6};
use etherparse::{
    EtherPayloadSlice, EtherType, Ethernet2Slice, Ipv6ExtensionSlice, Ipv6ExtensionsSlice, LaxIpPayloadSlice, LaxIpv4Slice, LaxIpv6Slice,
    SingleVlanSlice, TcpSlice, ether_type, ip_number,
};

use super::capture::linktype;

/// A TCP segment from one frame.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
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

/// Decodes `frame` of link type `lt` down to TCP.
pub fn decode(lt: u32, frame: &[u8]) -> Result<Segment<'_>, Skip> {
    let (ether_type, l3) = match lt {
        linktype::ETHERNET => ethernet(frame)?,
        // etherparse's SLL reader refuses hardware types other than Ethernet, netlink, GRE,
        // radiotap and FRAD, but `tcpdump -i any` also records loopback (772), tun (65534)
        // and PPP devices: the protocol field is read whatever the hardware type.
        linktype::LINUX_SLL => (Some(ether_type_at(frame, 14)?), frame.get(16..).ok_or(Skip::Truncated)?),
        // etherparse has no SLL2 (`-i any` since libpcap 1.10); the protocol leads its 20 bytes.
        linktype::LINUX_SLL2 => (Some(ether_type_at(frame, 0)?), frame.get(20..).ok_or(Skip::Truncated)?),
        // etherparse has no BSD loopback header: a 4-byte address family.
        linktype::NULL | linktype::LOOP => (Some(loopback_ether_type(lt, frame)?), &frame[4..]),
        linktype::RAW | linktype::RAW_BSD | linktype::RAW_OPENBSD | linktype::IPV4 | linktype::IPV6 => (None, frame),
        other => return Err(Skip::UnsupportedLinkType(other)),
    };
    ip(ether_type, l3)
}

fn ether_type_at(b: &[u8], at: usize) -> Result<EtherType, Skip> {
    Ok(EtherType(u16::from_be_bytes([*b.get(at).ok_or(Skip::Truncated)?, *b.get(at + 1).ok_or(Skip::Truncated)?])))
}

/// The EtherType and payload behind an Ethernet header and its VLAN tags.
fn ethernet(frame: &[u8]) -> Result<(Option<EtherType>, &[u8]), Skip> {
    let mut p: EtherPayloadSlice = Ethernet2Slice::from_slice_without_fcs(frame).map_err(|_| Skip::Truncated)?.payload();
    // as many tags as etherparse's own packet slicer takes (`LaxSlicedPacket::LINK_EXTS_CAP`)
    for _ in 0..3 {
        if !matches!(p.ether_type, ether_type::VLAN_TAGGED_FRAME | ether_type::PROVIDER_BRIDGING | ether_type::VLAN_DOUBLE_TAGGED_FRAME) {
            break;
        }
        p = SingleVlanSlice::from_slice(p.payload).map_err(|_| Skip::Truncated)?.payload();
    }
    Ok((Some(p.ether_type), p.payload))
}

/// The EtherType for a DLT_NULL / DLT_LOOP address family (AF_INET; AF_INET6 as the BSDs
/// number it: 24, 28 or 30). DLT_LOOP's family is big-endian; DLT_NULL's is in the capturing
/// machine's byte order, so either is accepted.
fn loopback_ether_type(lt: u32, frame: &[u8]) -> Result<EtherType, Skip> {
    let fam: [u8; 4] = frame.get(0..4).and_then(|f| f.try_into().ok()).ok_or(Skip::Truncated)?;
    let family = if lt == linktype::LOOP {
        u32::from_be_bytes(fam)
    } else {
        let le = u32::from_le_bytes(fam);
        if le < 256 { le } else { u32::from_be_bytes(fam) }
    };
    match family {
        2 => Ok(ether_type::IPV4),
        24 | 28 | 30 => Ok(ether_type::IPV6),
        _ => Err(Skip::NotIp),
    }
}

/// The IP packet in `l3`, of the version the EtherType names, down to TCP. Raw IP has no
/// EtherType: the header's first nibble says (as `LaxIpSlice` reads it).
fn ip(ether_type: Option<EtherType>, l3: &[u8]) -> Result<Segment<'_>, Skip> {
    let ether_type = match ether_type {
        Some(et) => et,
        None => match l3.first().map(|b| b >> 4) {
            Some(4) => ether_type::IPV4,
            Some(6) => ether_type::IPV6,
            Some(_) => return Err(Skip::NotIp),
            None => return Err(Skip::Truncated),
        },
    };
    match ether_type {
        ether_type::IPV4 => match LaxIpv4Slice::from_slice(l3) {
            Ok((v4, auth_error)) => {
                let h = v4.header();
                let first_fragment = h.fragments_offset().value() == 0;
                tcp(IpAddr::V4(h.source_addr()), IpAddr::V4(h.destination_addr()), v4.payload(), first_fragment, auth_error.is_some())
            }
            Err(ipv4::HeaderSliceError::Content(ipv4::HeaderError::UnexpectedVersion { .. })) => Err(Skip::NotIp),
            Err(_) => Err(Skip::Truncated),
        },
        ether_type::IPV6 => match LaxIpv6Slice::from_slice(l3) {
            Ok((v6, extension_error)) => {
                let h = v6.header();
                let first_fragment = !v6.payload().fragmented || first_ipv6_fragment(v6.extensions());
                tcp(IpAddr::V6(h.source_addr()), IpAddr::V6(h.destination_addr()), v6.payload(), first_fragment, extension_error.is_some())
            }
            Err(ipv6::HeaderSliceError::Content(ipv6::HeaderError::UnexpectedVersion { .. })) => Err(Skip::NotIp),
            Err(_) => Err(Skip::Truncated),
        },
        _ => Err(Skip::NotIp),
    }
}

/// The TCP segment in an IP payload. `extension_error`: an IPv4 AH or IPv6 extension
/// header was cut short or malformed.
fn tcp<'a>(src: IpAddr, dst: IpAddr, ip: &LaxIpPayloadSlice<'a>, first_fragment: bool, extension_error: bool) -> Result<Segment<'a>, Skip> {
    if ip.fragmented && !first_fragment {
        return Err(Skip::Fragment);
    }
    if extension_error {
        return Err(Skip::Truncated);
    }
    if ip.ip_number != ip_number::TCP {
        return Err(Skip::NotTcp);
    }
    // etherparse's packet slicer leaves a fragment's transport header unread; the first
    // fragment does carry the whole TCP header and the segment's first bytes (the rest is a
    // hole the reassembly reports), so TCP is sliced here.
    let tcp = TcpSlice::from_slice(ip.payload).map_err(|_| Skip::Truncated)?;
    Ok(Segment {
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
    })
}

/// Every fragment header at offset 0: the payload starts with the transport header.
fn first_ipv6_fragment(extensions: &Ipv6ExtensionsSlice) -> bool {
    extensions.clone().into_iter().all(|ext| match ext {
        Ipv6ExtensionSlice::Fragment(f) => f.fragment_offset().value() == 0,
        _ => true,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use etherparse::{IpHeaders, Ipv4Header, Ipv6FragmentHeader, Ipv6Header, PacketBuilder, PacketBuilderStep, TcpHeader};

    /// An IPv4/TCP data segment (ACK|PSH, no link header), to be finished by [`build`]
    /// (with `.syn()`, `.fin()`, `.rst()` added as needed).
    pub(crate) fn ipv4_tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, seq: u32) -> PacketBuilderStep<TcpHeader> {
        PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, seq, 0xffff).ack(0).psh()
    }

    /// Writes the packet `builder` describes around `payload`.
    pub(crate) fn build(builder: PacketBuilderStep<TcpHeader>, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut v, payload).expect("a test packet fits in one IP packet");
        v
    }

    #[test]
    fn link_types() {
        let ip = build(ipv4_tcp([10, 0, 0, 1], 1234, [10, 0, 0, 2], 445, 7), b"hello");
        let mut eth = build(
            PacketBuilder::ethernet2([0; 6], [0; 6]).single_vlan(5.try_into().unwrap()).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(1234, 445, 7, 0xffff).ack(0),
            b"hello",
        );
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        // ARPHRD_LOOPBACK, as `tcpdump -i any` records lo: etherparse's own SLL reader refuses it
        sll[2..4].copy_from_slice(&772u16.to_be_bytes());
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
        // An IPv6 header behind the IPv4 EtherType is not IP.
        let v6 = build(PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64).tcp(5000, 21, 1, 0xffff), b"x");
        eth.truncate(18);
        eth.extend_from_slice(&v6);
        assert_eq!(decode(linktype::ETHERNET, &eth).unwrap_err(), Skip::NotIp);
    }

    #[test]
    fn ipv6_with_extension_header() {
        let hop_by_hop = etherparse::Ipv6RawExtHeader::new_raw(ip_number::TCP, &[0; 6]).unwrap();
        let ip = IpHeaders::Ipv6(
            Ipv6Header { source: [0xfd; 16], destination: [0xfe; 16], hop_limit: 64, ..Default::default() },
            etherparse::Ipv6Extensions { hop_by_hop_options: Some(hop_by_hop), ..Default::default() },
        );
        let v = build(PacketBuilder::ip(ip).tcp(5000, 21, 1, 0xffff).ack(0), b"STOR x\r\n");
        assert_eq!(v[6], 0, "a hop-by-hop header follows the IPv6 header");
        let s = decode(linktype::RAW, &v).unwrap();
        assert_eq!(s.payload, b"STOR x\r\n");
        assert!(s.src.is_ipv6());
    }

    /// Fragments are told apart by their offset: a first fragment (offset 0, more to come)
    /// still carries the TCP header and gives a segment; a later one is skipped as a
    /// fragment, never read as TCP.
    #[test]
    fn fragments() {
        let v4 = |more: bool, offset_units: u16| {
            let mut h = Ipv4Header::new(0, 64, ip_number::TCP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
            h.dont_fragment = false;
            h.more_fragments = more;
            h.fragment_offset = offset_units.try_into().unwrap();
            build(PacketBuilder::ip(IpHeaders::Ipv4(h, Default::default())).tcp(5000, 21, 9, 0xffff).ack(0), b"STOR x\r\n")
        };
        let first = v4(true, 0);
        let first = decode(linktype::RAW, &first).unwrap();
        assert_eq!((first.seq, first.payload), (9, &b"STOR x\r\n"[..]));
        assert_eq!(decode(linktype::RAW, &v4(true, 1)).unwrap_err(), Skip::Fragment);
        assert_eq!(decode(linktype::RAW, &v4(false, 1)).unwrap_err(), Skip::Fragment);
        // 0x1fff: the highest offset, all 13 bits set
        assert_eq!(decode(linktype::RAW, &v4(false, 0x1fff)).unwrap_err(), Skip::Fragment);

        let v6 = |more: bool, offset_units: u16| {
            let frag = Ipv6FragmentHeader::new(ip_number::TCP, offset_units.try_into().unwrap(), more, 7);
            let ip = IpHeaders::Ipv6(
                Ipv6Header { source: [0xfd; 16], destination: [0xfe; 16], hop_limit: 64, ..Default::default() },
                etherparse::Ipv6Extensions { fragment: Some(frag), ..Default::default() },
            );
            build(PacketBuilder::ip(ip).tcp(5000, 21, 9, 0xffff).ack(0), b"STOR x\r\n")
        };
        let first = v6(true, 0);
        let first = decode(linktype::RAW, &first).unwrap();
        assert_eq!((first.seq, first.payload), (9, &b"STOR x\r\n"[..]));
        assert_eq!(decode(linktype::RAW, &v6(true, 1)).unwrap_err(), Skip::Fragment);
        assert_eq!(decode(linktype::RAW, &v6(false, 0x1fff)).unwrap_err(), Skip::Fragment);
        // An atomic fragment (offset 0, no more fragments) is a whole packet.
        assert_eq!(decode(linktype::RAW, &v6(false, 0)).unwrap().payload, b"STOR x\r\n");
    }

    #[test]
    fn skip_reasons() {
        let udp = {
            let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(53, 53);
            let mut v = Vec::new();
            b.write(&mut v, b"q").unwrap();
            v
        };
        assert_eq!(decode(linktype::RAW, &udp).unwrap_err(), Skip::NotTcp);
        assert_eq!(decode(linktype::RAW, &[0x50; 40]).unwrap_err(), Skip::NotIp);
        assert_eq!(decode(linktype::RAW, &[]).unwrap_err(), Skip::Truncated);
        let arp = [&[0u8; 12][..], &[0x08, 0x06], &[0; 28]].concat();
        assert_eq!(decode(linktype::ETHERNET, &arp).unwrap_err(), Skip::NotIp);
        assert_eq!(decode(linktype::NULL, &[7, 0, 0, 0, 0x45]).unwrap_err(), Skip::NotIp);
        let ip = build(ipv4_tcp([10, 0, 0, 1], 1234, [10, 0, 0, 2], 445, 7), b"hello");
        assert_eq!(decode(linktype::RAW, &ip[..30]).unwrap_err(), Skip::Truncated, "TCP header cut");
        assert_eq!(decode(linktype::RAW, &ip[..19]).unwrap_err(), Skip::Truncated, "IP header cut");
        // a snap length that cuts the payload keeps what was captured
        assert_eq!(decode(linktype::RAW, &ip[..42]).unwrap().payload, b"he");
    }
}
