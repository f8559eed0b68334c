//! How paths are stored in the graph: text that gives back the exact bytes.

/// How a file path is stored (node `paths`, edge `path`/`from`/`to`): text that gives back
/// the exact bytes the kernel has. Valid UTF-8 is kept as it is, except that a backslash
/// is written `\\`; each byte that is not part of valid UTF-8 is written `\xNN` (two
/// lower-case hex digits). So `caf\xe9` is the Latin-1 name `café`, and [`path_bytes`]
/// turns any stored path back into its bytes. Control characters stay as they are here:
/// text outputs escape them when they print (`vtrail-analysis`).
pub fn path_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The bytes of a path stored by [`path_text`]; None if `text` holds an escape that
/// `path_text` never writes.
pub fn path_bytes(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'\\' {
            out.push(b);
            rest = tail;
            continue;
        }
        match tail {
            [b'\\', more @ ..] => {
                out.push(b'\\');
                rest = more;
            }
            [b'x', h, l, more @ ..] => {
                let hex = |c: u8| (c as char).to_digit(16).filter(|_| !c.is_ascii_uppercase());
                out.push((hex(*h)? * 16 + hex(*l)?) as u8);
                rest = more;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn paths_round_trip_to_their_bytes() {
        let cases: [&[u8]; 7] = [
            b"/srv/share/invoice.pdf",
            b"/srv/caf\xe9.exe",
            b"/srv/a\\b",
            b"/srv/\\x41",
            "/srv/\u{1F600} \u{1b}[2J\n".as_bytes(),
            b"/srv/\xff\xfe\x80",
            b"",
        ];
        for bytes in cases {
            let text = path_text(bytes);
            assert_eq!(path_bytes(&text).as_deref(), Some(bytes), "{text}");
        }
        assert_eq!(path_text(b"/srv/caf\xe9"), "/srv/caf\\xe9");
        assert_eq!(path_text(b"/a\\x41"), "/a\\\\x41");
        assert_eq!(path_text("/plain/ü".as_bytes()), "/plain/ü");
        assert_eq!(path_bytes("\\q"), None);
        assert_eq!(path_bytes("\\xE9"), None);
    }
}
