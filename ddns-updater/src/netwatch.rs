//! The host's global addresses and their changes, through rtnetlink.
//!
//! [`parse_netlink`] decodes `RTM_NEWADDR`/`RTM_DELADDR` messages (pure, bounds-checked);
//! [`dump_addresses`] asks the kernel for all addresses; [`Watcher`] listens to the
//! IPv4/IPv6 address multicast groups. The watcher does not keep state from events: any
//! event (or an overrun, `ENOBUFS`, when events were lost) means "dump again", so the
//! published set is always a fresh dump.
//!
//! Published addresses ([`AddrInfo::is_publishable`]): scope global, not tentative,
//! deprecated, temporary (privacy extensions) or DAD-failed, and not loopback, link-local,
//! multicast or unspecified.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

const NLMSG_HDR: usize = 16;
const IFADDRMSG: usize = 8;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

pub const IFA_F_TEMPORARY: u32 = 0x01;
pub const IFA_F_DADFAILED: u32 = 0x08;
pub const IFA_F_DEPRECATED: u32 = 0x20;
pub const IFA_F_TENTATIVE: u32 = 0x40;
pub const RT_SCOPE_UNIVERSE: u8 = 0;

/// One address of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrInfo {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub scope: u8,
    /// `IFA_F_*` flags (the 32-bit `IFA_FLAGS` attribute when present).
    pub flags: u32,
}

impl AddrInfo {
    /// Whether this address names the host to others (see module docs).
    pub fn is_publishable(&self) -> bool {
        if self.scope != RT_SCOPE_UNIVERSE {
            return false;
        }
        if self.flags & (IFA_F_TEMPORARY | IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE)
            != 0
        {
            return false;
        }
        match self.addr {
            IpAddr::V4(a) => {
                !(a.is_loopback()
                    || a.is_link_local()
                    || a.is_multicast()
                    || a.is_unspecified()
                    || a.is_broadcast())
            }
            IpAddr::V6(a) => {
                !(a.is_loopback()
                    || a.is_multicast()
                    || a.is_unspecified()
                    || (a.segments()[0] & 0xffc0) == 0xfe80)
            }
        }
    }
}

/// What a netlink buffer held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetlinkItem {
    New(AddrInfo),
    Del(AddrInfo),
    Done,
    /// `NLMSG_ERROR` with this (negative errno, 0 = ack) code.
    Error(i32),
    Other(u16),
}

/// Decodes every message in a netlink datagram. Truncated or malformed parts end the
/// parse; nothing panics.
pub fn parse_netlink(buf: &[u8]) -> Vec<NetlinkItem> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + NLMSG_HDR <= buf.len() {
        let len = u32_at(buf, off) as usize;
        let ty = u16_at(buf, off + 4);
        if len < NLMSG_HDR || off + len > buf.len() {
            break;
        }
        let body = &buf[off + NLMSG_HDR..off + len];
        match ty {
            NLMSG_DONE => out.push(NetlinkItem::Done),
            NLMSG_ERROR => out.push(NetlinkItem::Error(if body.len() >= 4 {
                u32_at(body, 0) as i32
            } else {
                -libc::EBADMSG
            })),
            RTM_NEWADDR | RTM_DELADDR => {
                if let Some(info) = parse_ifaddr(body) {
                    out.push(if ty == RTM_NEWADDR {
                        NetlinkItem::New(info)
                    } else {
                        NetlinkItem::Del(info)
                    });
                }
            }
            other => out.push(NetlinkItem::Other(other)),
        }
        off += (len + 3) & !3;
    }
    out
}

fn parse_ifaddr(body: &[u8]) -> Option<AddrInfo> {
    if body.len() < IFADDRMSG {
        return None;
    }
    let family = i32::from(body[0]);
    let prefix_len = body[1];
    let mut flags = u32::from(body[2]);
    let scope = body[3];
    let ifindex = u32_at(body, 4);
    let mut local = None;
    let mut address = None;
    let mut off = IFADDRMSG;
    while off + 4 <= body.len() {
        let alen = usize::from(u16_at(body, off));
        let aty = u16_at(body, off + 2) & 0x3fff;
        if alen < 4 || off + alen > body.len() {
            break;
        }
        let data = &body[off + 4..off + alen];
        match aty {
            IFA_LOCAL => local = ip_from(family, data),
            IFA_ADDRESS => address = ip_from(family, data),
            IFA_FLAGS if data.len() >= 4 => flags = u32_at(data, 0),
            _ => {}
        }
        off += (alen + 3) & !3;
    }
    // IPv4: IFA_LOCAL is the local address (IFA_ADDRESS is the peer on point-to-point links).
    let addr = local.or(address)?;
    Some(AddrInfo {
        ifindex,
        addr,
        prefix_len,
        scope,
        flags,
    })
}

fn ip_from(family: i32, data: &[u8]) -> Option<IpAddr> {
    match family {
        libc::AF_INET if data.len() >= 4 => Some(IpAddr::V4(Ipv4Addr::new(
            data[0], data[1], data[2], data[3],
        ))),
        libc::AF_INET6 if data.len() >= 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&data[..16]);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn netlink_socket(groups: u32, nonblocking: bool) -> io::Result<OwnedFd> {
    let mut ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
    if nonblocking {
        ty |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: plain socket(2) call; the fd is owned right after.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, ty, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = groups;
    // SAFETY: sa is a valid sockaddr_nl of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn recv(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// All addresses of all interfaces (one RTM_GETADDR dump; blocking, fast).
pub fn dump_addresses() -> io::Result<Vec<AddrInfo>> {
    let fd = netlink_socket(0, false)?;
    let mut req = [0u8; NLMSG_HDR + IFADDRMSG];
    let total = req.len() as u32;
    req[0..4].copy_from_slice(&total.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETADDR.to_ne_bytes());
    req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[NLMSG_HDR] = libc::AF_UNSPEC as u8;
    // SAFETY: req is a valid buffer of the given length.
    let n = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf)?;
        for item in parse_netlink(&buf[..n]) {
            match item {
                NetlinkItem::New(a) => out.push(a),
                NetlinkItem::Done => return Ok(out),
                NetlinkItem::Error(code) if code != 0 => {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                _ => {}
            }
        }
        if n == 0 {
            return Ok(out);
        }
    }
}

/// Interface index of `name`, if it exists.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// The publishable addresses now, optionally only of the given interface indexes; sorted.
pub fn publishable_addresses(only_ifindex: &[u32]) -> io::Result<Vec<IpAddr>> {
    let mut v: Vec<IpAddr> = dump_addresses()?
        .into_iter()
        .filter(|a| a.is_publishable())
        .filter(|a| only_ifindex.is_empty() || only_ifindex.contains(&a.ifindex))
        .map(|a| a.addr)
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

/// After an event, further events within this quiet time are folded into one change
/// (an address change is often a delete plus an add).
pub const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(10);

/// Why the watcher woke up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Addresses were added or removed.
    Addresses,
    /// The kernel dropped events (`ENOBUFS`): state must be re-read.
    Overrun,
}

/// Listens to address changes.
pub struct Watcher {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

impl Watcher {
    /// Needs a tokio runtime.
    pub fn new() -> io::Result<Self> {
        let fd = netlink_socket(RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR, true)?;
        // SAFETY: fd is a valid netlink socket owned by the OwnedFd moved into AsyncFd, which
        // keeps it open for as long as it is registered.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self {
            fd,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Waits for the next change, then drains what is queued so that a burst of events
    /// counts once.
    pub async fn next(&mut self) -> io::Result<Change> {
        let mut seen: Option<Change> = None;
        loop {
            let mut guard = match seen {
                None => self.fd.readable().await?,
                Some(c) => match tokio::time::timeout(DEBOUNCE, self.fd.readable()).await {
                    Ok(g) => g?,
                    Err(_) => return Ok(c),
                },
            };
            let raw = self.fd.get_ref().as_raw_fd();
            match guard.try_io(|_| recv(raw, &mut self.buf)) {
                Err(_would_block) => continue,
                Ok(Ok(n)) => {
                    let any = parse_netlink(&self.buf[..n])
                        .iter()
                        .any(|i| matches!(i, NetlinkItem::New(_) | NetlinkItem::Del(_)));
                    if any && seen.is_none() {
                        seen = Some(Change::Addresses);
                    }
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    seen = Some(Change::Overrun)
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, family: u8, scope: u8, flags8: u8, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![family, 24, flags8, scope];
        body.extend_from_slice(&3u32.to_ne_bytes());
        for (t, d) in attrs {
            let l = 4 + d.len();
            body.extend_from_slice(&(l as u16).to_ne_bytes());
            body.extend_from_slice(&t.to_ne_bytes());
            body.extend_from_slice(d);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn parses_new_and_del() {
        let mut buf = msg(
            RTM_NEWADDR,
            libc::AF_INET as u8,
            0,
            0,
            &[
                (IFA_ADDRESS, vec![10, 0, 0, 9]),
                (IFA_LOCAL, vec![192, 0, 2, 5]),
            ],
        );
        let v6: Ipv6Addr = "2001:db8::7".parse().unwrap();
        buf.extend(msg(
            RTM_DELADDR,
            libc::AF_INET6 as u8,
            0,
            0,
            &[
                (IFA_ADDRESS, v6.octets().to_vec()),
                (IFA_FLAGS, IFA_F_TENTATIVE.to_ne_bytes().to_vec()),
            ],
        ));
        let items = parse_netlink(&buf);
        assert_eq!(items.len(), 2);
        match items[0] {
            NetlinkItem::New(a) => {
                assert_eq!(a.addr, "192.0.2.5".parse::<IpAddr>().unwrap());
                assert_eq!(a.ifindex, 3);
                assert!(a.is_publishable());
            }
            ref o => panic!("{o:?}"),
        }
        match items[1] {
            NetlinkItem::Del(a) => {
                assert_eq!(a.addr, IpAddr::V6(v6));
                assert!(!a.is_publishable(), "tentative");
            }
            ref o => panic!("{o:?}"),
        }
    }

    #[test]
    fn filters_non_global() {
        let base = AddrInfo {
            ifindex: 1,
            addr: "192.0.2.1".parse().unwrap(),
            prefix_len: 24,
            scope: 0,
            flags: 0,
        };
        assert!(base.is_publishable());
        assert!(!AddrInfo { scope: 253, ..base }.is_publishable());
        assert!(
            !AddrInfo {
                flags: IFA_F_DEPRECATED,
                ..base
            }
            .is_publishable()
        );
        assert!(
            !AddrInfo {
                flags: IFA_F_TEMPORARY,
                ..base
            }
            .is_publishable()
        );
        assert!(
            !AddrInfo {
                addr: "fe80::1".parse().unwrap(),
                ..base
            }
            .is_publishable()
        );
        assert!(
            !AddrInfo {
                addr: "127.0.0.1".parse().unwrap(),
                ..base
            }
            .is_publishable()
        );
    }

    #[test]
    fn truncated_input_never_panics() {
        let full = msg(
            RTM_NEWADDR,
            libc::AF_INET as u8,
            0,
            0,
            &[(IFA_LOCAL, vec![192, 0, 2, 5])],
        );
        for cut in 0..full.len() {
            let _ = parse_netlink(&full[..cut]);
        }
        let mut bad = full.clone();
        bad[NLMSG_HDR + IFADDRMSG] = 200; // attribute length past the end
        let _ = parse_netlink(&bad);
        bad[0] = 3; // message length below the header size
        assert!(parse_netlink(&bad).is_empty());
    }

    #[test]
    fn dumps_live_addresses() {
        // lo always has 127.0.0.1, which is not publishable
        let all = dump_addresses().expect("RTM_GETADDR dump");
        assert!(
            all.iter()
                .any(|a| a.addr == IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{all:?}"
        );
        assert!(
            publishable_addresses(&[])
                .unwrap()
                .iter()
                .all(|a| !a.is_loopback())
        );
    }
}
