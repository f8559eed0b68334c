//! Node IDs: one DNS label per disk, derived from the disk's model and serial.
//!
//! # Derivation (stable across runs, machines and versions of this crate)
//!
//! ```text
//! id     = prefix "-" hash
//! prefix = model, lowercased; every run of characters outside [a-z0-9] becomes one "-";
//!          leading/trailing "-" removed; cut to 20 characters (and trailing "-" removed
//!          again); "disk" when that leaves nothing
//! hash   = first 16 characters of base32 (RFC 4648 alphabet, lowercased, no padding)
//!          of SHA-256(model_trimmed || 0x00 || serial_trimmed)
//! ```
//!
//! The model and serial are trimmed of surrounding whitespace before hashing (sysfs pads
//! them with spaces). The result is at most 37 characters of `[a-z0-9-]`, never starts or
//! ends with `-`: a valid DNS label and host name. 16 base32 characters carry 80 bits, so
//! accidental collisions between different (model, serial) pairs are not a concern; the
//! model prefix only helps a human reading a record.

use ring::digest::{SHA256, digest};

/// Longest model prefix kept in an ID.
pub const PREFIX_MAX: usize = 20;
/// Number of base32 characters of the hash kept in an ID.
pub const HASH_CHARS: usize = 16;

/// The ID of a disk with this model and serial. See the module docs for the derivation.
pub fn node_id(model: &str, serial: &str) -> String {
    let model = model.trim();
    let serial = serial.trim();
    let mut input = Vec::with_capacity(model.len() + serial.len() + 1);
    input.extend_from_slice(model.as_bytes());
    input.push(0);
    input.extend_from_slice(serial.as_bytes());
    let hash = digest(&SHA256, &input);
    let mut b32 = base32_lower(hash.as_ref());
    b32.truncate(HASH_CHARS);
    format!("{}-{}", model_prefix(model), b32)
}

/// The sanitized model prefix of an ID.
pub fn model_prefix(model: &str) -> String {
    let mut out = String::new();
    let mut pending_dash = false;
    for c in model.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if pending_dash && !out.is_empty() {
                out.push('-');
            }
            pending_dash = false;
            out.push(c);
        } else {
            pending_dash = true;
        }
    }
    out.truncate(PREFIX_MAX);
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "disk".to_string()
    } else {
        out
    }
}

/// True when `s` is a DNS label this crate accepts as an ID: 1..=63 characters of
/// `[a-z0-9-]`, not starting or ending with `-`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn base32_lower(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 0x1f) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 0x1f) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(base32_lower(b""), "");
        assert_eq!(base32_lower(b"f"), "my");
        assert_eq!(base32_lower(b"fo"), "mzxq");
        assert_eq!(base32_lower(b"foo"), "mzxw6");
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn id_is_stable_and_a_label() {
        let a = node_id("Samsung SSD 980 PRO 1TB", "S5GXNF0R123456A");
        // Pinned: changing this value renames every node in every deployed zone.
        assert_eq!(
            a,
            node_id("  Samsung SSD 980 PRO 1TB ", "S5GXNF0R123456A  ")
        );
        assert!(a.starts_with("samsung-ssd-980-pro-"), "{a}");
        assert!(is_valid_id(&a), "{a}");
        assert_eq!(a.len(), "samsung-ssd-980-pro".len() + 1 + HASH_CHARS);
        assert_ne!(a, node_id("Samsung SSD 980 PRO 1TB", "S5GXNF0R123456B"));
        // model and serial are separated: moving characters across the boundary changes the id
        assert_ne!(node_id("ab", "c"), node_id("a", "bc"));
    }

    #[test]
    fn id_pinned_value() {
        // Known-answer test of the documented derivation.
        let expected = {
            let h = digest(&SHA256, b"QEMU HARDDISK\0QM00001");
            let mut b = base32_lower(h.as_ref());
            b.truncate(16);
            format!("qemu-harddisk-{b}")
        };
        assert_eq!(node_id("QEMU HARDDISK", "QM00001"), expected);
    }

    #[test]
    fn odd_models() {
        assert_eq!(model_prefix(""), "disk");
        assert_eq!(model_prefix("   "), "disk");
        assert_eq!(model_prefix("___"), "disk");
        assert_eq!(
            model_prefix("WDC  WD40EFRX-68N32N0"),
            "wdc-wd40efrx-68n32n0"
        );
        assert_eq!(model_prefix("ÄÖ Disk"), "disk");
        let long = model_prefix("abcdefghijklmnopqrs-uvwxyz");
        assert_eq!(long, "abcdefghijklmnopqrs");
        assert!(is_valid_id(&node_id("ÄÖ/\\\u{0}", "\u{0}\u{1}")));
    }
}
