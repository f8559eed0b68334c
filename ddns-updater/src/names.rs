//! The DNS names vtrail keeps in a zone `Z` (pure functions, no I/O).
//!
//! ```text
//! <id>.Z                         A / AAAA   the node's current global addresses (forward)
//! <d>.<c>.<b>.<a>.ip4.Z          PTR <id>.Z one PTR per node ID using IPv4 a.b.c.d (reverse)
//! <32 hex nibbles reversed>.ip6.Z PTR <id>.Z same for IPv6, nibble order as in ip6.arpa
//! ```
//!
//! The reverse names are an index, not the truth: a reader turning an IP into IDs keeps
//! only the IDs whose forward record (`<id>.Z`, writable by that node's key alone) holds
//! the IP ("forward-confirmed", see [`crate::lookup`]). So a node that writes a PTR
//! naming another node at an address that node does not have is ignored by readers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

use crate::id::is_valid_id;

/// A name could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "`{0}` is not a valid node ID (1-63 of a-z, 0-9, '-', not starting or ending with '-')"
    )]
    BadId(String),
    #[error("`{zone}` is not a valid zone name: {message}")]
    BadZone { zone: String, message: String },
}

/// Parses a zone name (absolute, trailing dot optional).
pub fn parse_zone(zone: &str) -> Result<Name, NameError> {
    let mut name = Name::from_ascii(zone.trim()).map_err(|e| NameError::BadZone {
        zone: zone.to_string(),
        message: e.to_string(),
    })?;
    if name.is_root() {
        return Err(NameError::BadZone {
            zone: zone.to_string(),
            message: "the root zone cannot hold node IDs".into(),
        });
    }
    name.set_fqdn(true);
    Ok(name)
}

/// `<id>.<zone>`.
pub fn forward_name(id: &str, zone: &Name) -> Result<Name, NameError> {
    if !is_valid_id(id) {
        return Err(NameError::BadId(id.to_string()));
    }
    Name::from_ascii(id)
        .and_then(|n| n.append_domain(zone))
        .map_err(|_| NameError::BadId(id.to_string()))
}

/// The labels of the reverse name of `ip`, leftmost first, ending with `ip4`/`ip6`.
pub fn reverse_labels(ip: IpAddr) -> Vec<String> {
    match ip {
        IpAddr::V4(v4) => {
            let mut l: Vec<String> = v4.octets().iter().rev().map(|o| o.to_string()).collect();
            l.push("ip4".into());
            l
        }
        IpAddr::V6(v6) => {
            let mut l: Vec<String> = v6
                .octets()
                .iter()
                .rev()
                .flat_map(|b| [format!("{:x}", b & 0x0f), format!("{:x}", b >> 4)])
                .collect();
            l.push("ip6".into());
            l
        }
    }
}

/// `<reversed ip>.ip4.<zone>` or `<nibbles>.ip6.<zone>`.
pub fn reverse_name(ip: IpAddr, zone: &Name) -> Name {
    let labels = reverse_labels(ip);
    // Labels are digits/hex and at most 34 of them: always a valid relative name.
    let rel = Name::from_labels(labels.iter().map(|s| s.as_bytes())).unwrap_or_default();
    rel.append_domain(zone).unwrap_or_else(|_| zone.clone())
}

/// The IP a reverse name under `zone` stands for; `None` if it is not one.
pub fn parse_reverse_name(name: &Name, zone: &Name) -> Option<IpAddr> {
    if !zone.zone_of(name) {
        return None;
    }
    let all: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    let rel = all.get(..all.len().checked_sub(zone.num_labels() as usize)?)?;
    let (kind, digits) = rel.split_last()?;
    match kind.as_str() {
        "ip4" if digits.len() == 4 => {
            let mut o = [0u8; 4];
            for (i, d) in digits.iter().rev().enumerate() {
                o[i] = d.parse().ok()?;
            }
            Some(IpAddr::V4(Ipv4Addr::from(o)))
        }
        "ip6" if digits.len() == 32 => {
            let mut o = [0u8; 16];
            for (i, pair) in digits.chunks(2).rev().enumerate() {
                let lo = u8::from_str_radix(&pair[0], 16).ok()?;
                let hi = u8::from_str_radix(&pair[1], 16).ok()?;
                if pair[0].len() != 1 || pair[1].len() != 1 {
                    return None;
                }
                o[i] = (hi << 4) | lo;
            }
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

/// The node ID a PTR target `<id>.<zone>` names; `None` when it is not directly under `zone`.
pub fn id_from_forward_name(target: &Name, zone: &Name) -> Option<String> {
    if !zone.zone_of(target) || target.num_labels() != zone.num_labels() + 1 {
        return None;
    }
    let first = target.iter().next()?;
    let id = String::from_utf8_lossy(first).to_ascii_lowercase();
    is_valid_id(&id).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let z = parse_zone("nodes.example").unwrap();
        assert_eq!(
            forward_name("abc-1", &z).unwrap().to_ascii(),
            "abc-1.nodes.example."
        );
        assert!(forward_name("Bad_Id", &z).is_err());
        for ip in [
            "192.0.2.7",
            "2001:db8::1",
            "::",
            "255.255.255.255",
            "fe80::abcd:1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let n = reverse_name(ip, &z);
            assert_eq!(parse_reverse_name(&n, &z), Some(ip), "{n}");
        }
        assert_eq!(
            reverse_name("192.0.2.7".parse().unwrap(), &z).to_ascii(),
            "7.2.0.192.ip4.nodes.example."
        );
        let v6 = reverse_name("2001:db8::1".parse().unwrap(), &z).to_ascii();
        assert!(
            v6.starts_with("1.0.0.0.") && v6.ends_with(".8.b.d.0.1.0.0.2.ip6.nodes.example."),
            "{v6}"
        );
    }

    #[test]
    fn bad_reverse_names() {
        let z = parse_zone("z.").unwrap();
        for bad in [
            "1.2.3.ip4.z.",
            "1.2.3.256.ip4.z.",
            "x.ip6.z.",
            "1.2.3.4.ip4.other.",
            "ip4.z.",
            "z.",
        ] {
            let n = Name::from_ascii(bad).unwrap();
            assert_eq!(parse_reverse_name(&n, &z), None, "{bad}");
        }
        assert!(parse_zone(".").is_err());
    }

    #[test]
    fn id_from_target() {
        let z = parse_zone("z").unwrap();
        assert_eq!(
            id_from_forward_name(&Name::from_ascii("a-1.z.").unwrap(), &z).as_deref(),
            Some("a-1")
        );
        assert_eq!(
            id_from_forward_name(&Name::from_ascii("a.b.z.").unwrap(), &z),
            None
        );
        assert_eq!(
            id_from_forward_name(&Name::from_ascii("a.y.").unwrap(), &z),
            None
        );
    }
}
