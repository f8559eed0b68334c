//! The UTF-16LE converter against std's decoder: same text when the output fits, a valid
//! UTF-8 prefix of it when it does not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_common::proto::utf16;

fuzz_target!(|data: &[u8]| {
    let cap = data.first().map_or(0, |&b| b as usize * 4);
    let src = data.get(1..).unwrap_or(&[]);
    let mut out = vec![0u8; cap];
    let r = utf16::utf16le_to_utf8(src, &mut out);
    let got = core::str::from_utf8(&out[..r.len]).expect("valid UTF-8");
    let units = src.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    let mut want: String = char::decode_utf16(units).map(|c| c.unwrap_or('\u{fffd}')).collect();
    if src.len() % 2 == 1 {
        want.push('\u{fffd}');
    }
    if r.truncated {
        assert!(want.starts_with(got) && got.len() < want.len());
    } else {
        assert_eq!(got, want);
    }
});
