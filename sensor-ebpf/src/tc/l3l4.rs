//! Ethernet, IPv4/IPv6 and TCP headers: the flow, where its payload starts, and the port
//! check every packet passes. Only TCP 445/139 and 21 go on to `smb_walk` and `ftp`.
use aya_ebpf::programs::TcContext;
use sensor_common::{event::NET_DIR_INGRESS, maps::{FlowKey, net_counter}};

use super::{
    Packet,
    blocked::{is_blocked, track_from_syn, unreadable_from_blocked},
    count, ftp, read, smb_walk,
};

const ETH_HLEN: u32 = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const SMB_PORT: u16 = 445;
const NBSS_PORT: u16 = 139;
const FTP_PORT: u16 = 21;

#[inline(always)]
fn is_service(port: u16) -> bool {
    port == SMB_PORT || port == NBSS_PORT || port == FTP_PORT
}

/// An IPv4 address mapped into IPv6, as the maps' keys hold addresses.
#[inline(always)]
fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3]]
}

/// Returns true when the packet must be dropped (quarantine).
#[inline(always)]
pub(super) fn inspect(ctx: &TcContext, direction: u8) -> bool {
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
        && is_blocked(&flow.saddr);
    let pkt = Packet { flow, ipv6, direction, seq, payload, len, ifindex: unsafe { (*ctx.skb.skb).ifindex } };
    let service = if request { dport } else { sport };
    if service == FTP_PORT {
        ftp::ftp(ctx, &pkt, request, blocked)
    } else {
        smb_walk::smb(ctx, &pkt, blocked)
    }
}
