//! The remote peers of a process: its socket fds matched against `/proc/PID/net/tcp{,6}`
//! (read in the process's own network namespace). Used for the encrypted-SMB fallback:
//! a port-program process serving exactly one peer attributes its writes to that peer.
use std::{
    collections::{BTreeSet, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};


/// The socket inodes behind `pid`'s descriptors (`socket:[N]` links).
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return HashSet::new() };
    dir.flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Distinct remote addresses of the established TCP connections `pid` holds.
pub fn remote_peers(pid: u32) -> BTreeSet<IpAddr> {
    let inodes = socket_inodes(pid);
    let mut out = BTreeSet::new();
    for file in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else { continue };
        for (remote, inode) in parse_table(&text) {
            if inodes.contains(&inode) {
                out.insert(remote);
            }
        }
    }
    out
}

/// (remote address, socket inode) of the ESTABLISHED rows of a `/proc/net/tcp*` table.
pub fn parse_table(text: &str) -> Vec<(IpAddr, u64)> {
    established(text).into_iter().map(|r| (r.remote.0, r.inode)).collect()
}

/// An ESTABLISHED row of a `/proc/net/tcp*` table.
#[derive(Debug, PartialEq)]
pub struct TcpRow {
    pub local: (IpAddr, u16),
    pub remote: (IpAddr, u16),
    pub inode: u64,
}

fn established(text: &str) -> Vec<TcpRow> {
    let endpoint = |s: &str| {
        let (addr, port) = s.split_once(':')?;
        Some((parse_hex_addr(addr)?, u16::from_str_radix(port, 16).ok()?))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "01" {
                return None;
            }
            Some(TcpRow { local: endpoint(f[1])?, remote: endpoint(f[2])?, inode: f[9].parse().ok()? })
        })
        .collect()
}

/// The process holding this host's end `(ip, port)` of an established TCP connection, in
/// the sensor's network namespace. Scans every process's descriptors: for the rare
/// outbound upload, not per packet.
pub fn socket_owner(ip: IpAddr, port: u16) -> Option<u32> {
    let inode = ["tcp", "tcp6"].iter().find_map(|file| {
        let text = std::fs::read_to_string(format!("/proc/net/{file}")).ok()?;
        established(&text).into_iter().find(|r| r.local == (ip, port)).map(|r| r.inode)
    })?;
    crate::host::procfs::pids().into_iter().find(|&pid| socket_inodes(pid).contains(&inode))
}

/// Every process holding this host's end `local` of the established connection with
/// `remote` (a server's per-session processes: vsftpd's two, an smbd child).
pub fn connection_owners(local: (IpAddr, u16), remote: (IpAddr, u16)) -> Vec<u32> {
    let Some(inode) = ["tcp", "tcp6"].iter().find_map(|file| {
        let text = std::fs::read_to_string(format!("/proc/net/{file}")).ok()?;
        established(&text).into_iter().find(|r| r.local == local && r.remote == remote).map(|r| r.inode)
    }) else {
        return Vec::new();
    };
    crate::host::procfs::pids().into_iter().filter(|&pid| socket_inodes(pid).contains(&inode)).collect()
}

/// The kernel prints addresses as 32-bit words in host byte order.
fn parse_hex_addr(hex: &str) -> Option<IpAddr> {
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes()))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok()?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)).to_canonical())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_process_that_owns_a_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _server = listener.accept().unwrap();
        let local = client.local_addr().unwrap();
        assert_eq!(socket_owner(local.ip(), local.port()), Some(std::process::id()));
    }

    #[test]
    fn parses_proc_net_tcp() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100E70A:01BD 0200E70A:C350 01 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1\n   1: 00000000:0015 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        assert_eq!(parse_table(v4), vec![("10.231.0.2".parse().unwrap(), 12345)]);
        let v6 = "header\n   0: 0000000000000000FFFF00000100E70A:01BD 0000000000000000FFFF00000200E70A:D431 01 00000000:00000000 00:00000000 00000000 0 0 777 1\n";
        assert_eq!(parse_table(v6), vec![("10.231.0.2".parse().unwrap(), 777)]);
        let rows = established(v4);
        assert_eq!(rows[0].local, ("10.231.0.1".parse().unwrap(), 445));
        assert_eq!(rows[0].remote, ("10.231.0.2".parse().unwrap(), 50000));
    }
}
