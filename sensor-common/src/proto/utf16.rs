//! UTF-16LE (SMB2 names) to UTF-8 into a caller's fixed buffer.
//!
//! No allocation and no panics: a surrogate pair becomes one 4-byte character, a lone
//! surrogate (or a trailing odd byte) becomes U+FFFD, and output that does not fit stops
//! at a character boundary with `truncated` set. The loop runs at most `src.len() / 2 + 1`
//! times.

/// What [`utf16le_to_utf8`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Converted {
    /// Bytes written to the start of the output buffer (always valid UTF-8).
    pub len: usize,
    /// The output buffer filled up before the input ended.
    pub truncated: bool,
    /// Code units (or a trailing odd byte) replaced by U+FFFD.
    pub replaced: usize,
}

const REPLACEMENT: u32 = 0xfffd;

/// Encodes `c` (a valid scalar value) as UTF-8 at `dst[at..]`. Returns the new position,
/// or `None` if it does not fit (nothing written then).
#[inline(always)]
fn put(dst: &mut [u8], at: usize, c: u32) -> Option<usize> {
    let (n, bytes) = if c < 0x80 {
        (1, [c as u8, 0, 0, 0])
    } else if c < 0x800 {
        (2, [0xc0 | (c >> 6) as u8, 0x80 | (c & 0x3f) as u8, 0, 0])
    } else if c < 0x10000 {
        (3, [0xe0 | (c >> 12) as u8, 0x80 | ((c >> 6) & 0x3f) as u8, 0x80 | (c & 0x3f) as u8, 0])
    } else {
        (
            4,
            [
                0xf0 | ((c >> 18) & 0x07) as u8,
                0x80 | ((c >> 12) & 0x3f) as u8,
                0x80 | ((c >> 6) & 0x3f) as u8,
                0x80 | (c & 0x3f) as u8,
            ],
        )
    };
    let end = at.checked_add(n)?;
    let out = dst.get_mut(at..end)?;
    out.copy_from_slice(bytes.get(..n)?);
    Some(end)
}

#[inline(always)]
fn unit(src: &[u8], i: usize) -> Option<u16> {
    let lo = *src.get(i)?;
    let hi = *src.get(i.checked_add(1)?)?;
    Some(u16::from_le_bytes([lo, hi]))
}

/// Converts UTF-16LE `src` to UTF-8 in `dst`.
///
/// ```
/// # use sensor_common::proto::utf16::utf16le_to_utf8;
/// let mut out = [0u8; 16];
/// let r = utf16le_to_utf8(&[b'h', 0, b'i', 0], &mut out);
/// assert_eq!(&out[..r.len], b"hi");
/// ```
pub fn utf16le_to_utf8(src: &[u8], dst: &mut [u8]) -> Converted {
    let mut r = Converted::default();
    let mut i = 0usize;
    // Each round consumes at least 2 input bytes (or the last odd byte), so this bound is
    // never reached; it is there for readers and verifiers.
    let max_rounds = src.len() / 2 + 1;
    let mut rounds = 0usize;
    while i < src.len() && rounds < max_rounds {
        rounds += 1;
        let (c, used) = match unit(src, i) {
            None => {
                // trailing odd byte
                r.replaced += 1;
                (REPLACEMENT, 1)
            }
            Some(u) if (0xd800..0xdc00).contains(&u) => match unit(src, i.saturating_add(2)) {
                Some(l) if (0xdc00..0xe000).contains(&l) => {
                    let c = 0x10000 + (((u as u32) - 0xd800) << 10) + ((l as u32) - 0xdc00);
                    (c, 4)
                }
                _ => {
                    r.replaced += 1;
                    (REPLACEMENT, 2)
                }
            },
            Some(u) if (0xdc00..0xe000).contains(&u) => {
                r.replaced += 1;
                (REPLACEMENT, 2)
            }
            Some(u) => (u as u32, 2),
        };
        match put(dst, r.len, c) {
            Some(end) => r.len = end,
            None => {
                r.truncated = true;
                return r;
            }
        }
        i = i.saturating_add(used);
    }
    r
}

/// `src` as a `String` of at most `max` UTF-8 bytes, and whether it was cut there: SMB2
/// names for userspace (live records and replay).
#[cfg(any(test, feature = "std"))]
pub fn to_string(src: &[u8], max: usize) -> (std::string::String, bool) {
    // A 2-byte unit gives at most 3 bytes, a 4-byte pair 4, a trailing odd byte 3: this
    // buffer cuts nothing that `max` lets through.
    let mut buf = std::vec![0u8; max.min(src.len().saturating_mul(2).saturating_add(3))];
    let r = utf16le_to_utf8(src, &mut buf);
    buf.truncate(r.len);
    // The converter writes whole characters only, so the lossy path is never taken.
    let s = std::string::String::from_utf8(buf).unwrap_or_else(|e| std::string::String::from_utf8_lossy(e.as_bytes()).into_owned());
    (s, r.truncated)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn enc(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    fn conv(src: &[u8], cap: usize) -> (String, Converted) {
        let mut out = std::vec![0u8; cap];
        let r = utf16le_to_utf8(src, &mut out);
        (String::from_utf8(out[..r.len].to_vec()).expect("valid UTF-8"), r)
    }

    #[test]
    fn to_string_cuts_at_max_only() {
        assert_eq!(to_string(&enc("dir\\ü 😀.txt"), 4096), (String::from("dir\\ü 😀.txt"), false));
        assert_eq!(to_string(&enc("abc"), 2), (String::from("ab"), true));
        assert_eq!(to_string(&[0x3d, 0xd8, b'x'], 64), (String::from("\u{fffd}\u{fffd}"), false));
    }

    #[test]
    fn ascii_bmp_and_pairs() {
        for s in ["", "a", "pythonfile2", "dir\\ü é 中文.txt", "emoji 😀 and 𝄞", ":AFP_AfpInfo"] {
            let (got, r) = conv(&enc(s), 256);
            assert_eq!(got, s);
            assert!(!r.truncated);
            assert_eq!(r.replaced, 0);
        }
    }

    #[test]
    fn surrogate_pair_is_four_bytes() {
        let (got, r) = conv(&[0x3d, 0xd8, 0x00, 0xde], 8);
        assert_eq!(got, "😀");
        assert_eq!(r.len, 4);
    }

    #[test]
    fn lone_surrogates_and_odd_bytes() {
        // high surrogate then 'a'
        let (got, r) = conv(&[0x3d, 0xd8, b'a', 0], 16);
        assert_eq!(got, "\u{fffd}a");
        assert_eq!(r.replaced, 1);
        // lone low surrogate
        let (got, _) = conv(&[0x00, 0xde], 16);
        assert_eq!(got, "\u{fffd}");
        // high surrogate at the end
        let (got, _) = conv(&[b'x', 0, 0x3d, 0xd8], 16);
        assert_eq!(got, "x\u{fffd}");
        // odd trailing byte
        let (got, r) = conv(&[b'x', 0, b'y'], 16);
        assert_eq!(got, "x\u{fffd}");
        assert_eq!(r.replaced, 1);
        // two high surrogates then a low: first replaced, second pairs
        let (got, _) = conv(&[0x3d, 0xd8, 0x3d, 0xd8, 0x00, 0xde], 16);
        assert_eq!(got, "\u{fffd}😀");
    }

    #[test]
    fn truncation_at_char_boundary() {
        let (got, r) = conv(&enc("ab😀"), 5);
        assert_eq!(got, "ab");
        assert!(r.truncated);
        let (got, r) = conv(&enc("abc"), 3);
        assert_eq!(got, "abc");
        assert!(!r.truncated);
        let (_, r) = conv(&enc("é"), 0);
        assert!(r.truncated);
    }

    #[test]
    fn thousand_byte_name() {
        let s = "é".repeat(500);
        let src = enc(&s);
        assert_eq!(src.len(), 1000);
        let (got, r) = conv(&src, 256);
        assert_eq!(got.len(), 256);
        assert!(r.truncated);
        let (got, r) = conv(&src, 1000);
        assert_eq!(got, s);
        assert!(!r.truncated);
    }

    #[test]
    fn matches_std_on_all_pairs_of_tricky_units() {
        let units = [0x0041u16, 0x00e9, 0x4e2d, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xfffd, 0xffff];
        for &a in &units {
            for &b in &units {
                for &c in &units {
                    let v = [a, b, c];
                    let want: String = char::decode_utf16(v).map(|r| r.unwrap_or('\u{fffd}')).collect();
                    let src: Vec<u8> = v.iter().flat_map(|u| u.to_le_bytes()).collect();
                    let (got, _) = conv(&src, 64);
                    assert_eq!(got, want, "{v:x?}");
                }
            }
        }
    }
}
